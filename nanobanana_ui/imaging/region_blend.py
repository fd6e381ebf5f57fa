"""Region edits after the call: scale the model's answer back and blend it into the original, in the original's mode.

Guarantee: every pixel outside the mask and its feather band (a masked edit), or inside the original (an extend),
is byte-identical to the original, upright by EXIF. The blend works on the original's own pixel values (8-bit or
16-bit, with alpha where it has it); a palette image is blended in RGB and the changed pixels mapped back to its own
palette, so the pixels outside keep their exact indices. The output is a PNG of the original's size and mode.

The feather band is the set of pixels within `feather` pixels (Chebyshev distance: a square around each mask pixel)
outside the mask; inside the mask the answer is taken whole, and across the band it fades linearly to the original.
"""

from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageFilter

from ..domain.errors import BadResponseError
from .images import open_oriented, to_8bit
from .pngwrite import FAST_MODES, Band, RowFrame, deflate_rows, fill_rows, frame_rows, write_png

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from ..domain.region import Region

__all__ = ["PNG_MODES", "blend_answer", "feather_alpha", "original_image", "prepare_blend"]

PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B")  # modes a PNG stores exactly: kept as they are
_PNG_LEVEL = 1  # zlib level for the output: a 12 MP photo takes several times longer at the default 6, for ~8% less
_decoded: OrderedDict[str, Image.Image] = OrderedDict()  # the last originals, decoded once for the crop and the blend
_prepared: OrderedDict[tuple[object, ...], _Plan] = OrderedDict()  # plans made ahead of the answer
_decoded_lock = threading.Lock()
log = logging.getLogger(__name__)


def original_image(data: bytes, sha256: str, name: str) -> Image.Image:
    """An original, upright, in a mode a PNG keeps exactly; kept decoded, so the blend does not decode it again."""
    with _decoded_lock:
        if sha256 in _decoded:
            _decoded.move_to_end(sha256)
            return _decoded[sha256]
    image = _storable(open_oriented(data, name))
    with _decoded_lock:
        _decoded[sha256] = image
        while len(_decoded) > 2:  # a 12 MP photo is 36 MB decoded: keep only the last two
            _decoded.popitem(last=False)
    return image


@dataclass(frozen=True)
class _Plan:
    """What a masked edit's blend needs before the answer: where it changes, with what weights, the rows it keeps."""

    changed: tuple[int, int, int, int]  # the mask's bounds plus the feather, in the original
    alpha: NDArray[np.uint8] = field(repr=False)  # the answer's weight on `changed`
    # Deflated ahead: the rows above `changed`, the unchanged parts of its rows, the rows below; None: Pillow writes
    outer: tuple[Band, RowFrame, Band] | None = field(repr=False)


def prepare_blend(region: Region) -> None:
    """Work out a masked edit's blend and deflate the rows it keeps, ahead of the answer (run while the model works)."""
    try:
        if region.kind == "mask":
            _plan(region)
    except Exception as error:  # noqa: BLE001 - only a head start: the blend does the work itself if this failed
        log.warning("could not prepare the blend ahead of the answer: %s: %s", type(error).__name__, error)


def blend_answer(region: Region, answer: bytes) -> bytes:
    """The model's answer put back into the original: a PNG of the original's size and mode."""
    original = original_image(region.source, region.source_sha256, region.source_name)
    try:
        with Image.open(io.BytesIO(answer)) as reply:
            patch = reply.convert("RGB")
    except (OSError, ValueError) as error:
        raise BadResponseError(f"Gemini returned an image that cannot be read ({error}). Try again.") from None
    if region.kind == "extend":
        return _encode(_extend(original, _scaled(patch, region.canvas), region), original.info)
    plan = _plan(region)
    x0, y0, x1, y1 = plan.changed
    left, top = region.box[:2]
    # Only the part that changes is scaled back: the answer's pixels for `changed`, in the answer's own coordinates.
    sx, sy = patch.width / region.canvas[0], patch.height / region.canvas[1]
    source = ((x0 - left) * sx, (y0 - top) * sy, (x1 - left) * sx, (y1 - top) * sy)
    part = patch.resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC, box=source)
    pixels = _blend_part(original.crop(plan.changed), part, plan.alpha)
    if plan.outer is not None:  # the changed rows, between the rows deflated ahead (our own PNG writer)
        import numpy as np

        rows = np.array(original.crop((0, y0, original.width, y1)))
        rows[:, x0:x1] = pixels
        above, frame, below = plan.outer
        bands = [above, *fill_rows(frame, rows), below]
        return write_png(original.mode, original.size, bands, icc_profile=original.info.get("icc_profile"))
    out = original.copy()
    out.paste(_image(pixels, original.mode, (x1 - x0, y1 - y0)), (x0, y0))  # same mode: values copied as they are
    return _encode(out, original.info)


def _plan(region: Region) -> _Plan:
    """The blend's plan for a masked edit, made once per original, mask, crop and feather, then reused."""
    import numpy as np

    key = (region.source_sha256, region.mask_sha256, region.box, region.feather)
    with _decoded_lock:
        if key in _prepared:
            return _prepared[key]
    original = original_image(region.source, region.source_sha256, region.source_name)
    assert region.mask_png is not None
    with Image.open(io.BytesIO(region.mask_png)) as mask_file:
        crop = mask_file.crop(region.box).convert("L")  # the crop holds the mask and its whole band
    left, top = region.box[:2]
    x0, y0, x1, y1 = crop.getbbox() or (0, 0, crop.width, crop.height)
    f = region.feather
    inner = (max(0, x0 - f), max(0, y0 - f), min(crop.width, x1 + f), min(crop.height, y1 + f))
    changed = (left + inner[0], top + inner[1], left + inner[2], top + inner[3])
    alpha = feather_alpha(crop, f)[inner[1]:inner[3], inner[0]:inner[2]]
    outer = None
    if _fast(original):
        width, height = original.size
        outer = (deflate_rows(np.asarray(original.crop((0, 0, width, changed[1])))),
                 frame_rows(np.asarray(original.crop((0, changed[1], width, changed[3]))), changed[0], changed[2]),
                 deflate_rows(np.asarray(original.crop((0, changed[3], width, height)))))
    plan = _Plan(changed, alpha, outer)
    with _decoded_lock:
        _prepared[key] = plan
        while len(_prepared) > 2:
            _prepared.popitem(last=False)
    return plan


def feather_alpha(mask: Image.Image, feather: int) -> NDArray[np.uint8]:
    """Per-pixel weight of the answer: 255 in the mask, fading to 0 over `feather` pixels outside it, 0 beyond."""
    import numpy as np

    inside = np.asarray(mask) >= 128
    if feather <= 0:
        return np.where(inside, 255, 0).astype(np.uint8)
    # A box blur's support is exactly `feather` pixels, so nothing beyond the band gets any weight; doubling makes the
    # fade run from about 255 at the mask's edge to 0 at the band's edge.
    spread = np.asarray(mask.filter(ImageFilter.BoxBlur(feather)), dtype=np.uint16) * 2
    return np.where(inside, 255, np.minimum(spread, 255)).astype(np.uint8)


def _storable(image: Image.Image) -> Image.Image:
    """The original in a mode PNG stores as is; others (CMYK, 32-bit, float, ...) become the nearest that does."""
    if image.mode in PNG_MODES:
        return image
    if image.mode in ("I;16L", "I;16N"):
        return image.convert("I;16")
    if image.mode == "I" and 0 <= image.getextrema()[0] and image.getextrema()[1] <= 65535:  # type: ignore[operator]
        return image.convert("I;16")
    if image.mode.startswith("I") or image.mode == "F":
        return to_8bit(image)
    alpha = "A" in image.getbands() or "transparency" in image.info
    return image.convert("RGBA" if alpha else "RGB")


def _work(image: Image.Image) -> NDArray[Any]:
    """The pixels as numbers a blend can mix: the image's own values; palette and 1-bit images as RGB(A) / L."""
    import numpy as np

    if image.mode == "P":
        return np.asarray(image.convert("RGBA" if "transparency" in image.info else "RGB"))
    if image.mode == "1":
        return np.asarray(image.convert("L"))
    return np.asarray(image)


def _answer_as(patch: Image.Image, like: Image.Image, work: NDArray[Any]) -> NDArray[Any]:
    """The answer's RGB pixels in the same layout and depth as `_work(like)` (new pixels are opaque)."""
    import numpy as np

    channels = work.shape[2] if work.ndim == 3 else 1
    if channels in (3, 4):
        rgb = np.asarray(patch)
    else:
        rgb = np.asarray(patch.convert("L"))
        if like.mode.startswith("I;16"):
            return (rgb.astype(np.uint16) * 257).astype(work.dtype)  # 8-bit 0-255 onto 16-bit 0-65535
    if channels in (2, 4):
        opaque = np.full(rgb.shape[:2], np.iinfo(work.dtype).max, dtype=work.dtype)
        return np.dstack([rgb.astype(work.dtype), opaque])
    return rgb.astype(work.dtype)


def _mix(base: NDArray[Any], top: NDArray[Any], alpha: NDArray[np.uint8]) -> NDArray[Any]:
    """base where alpha is 0, top where 255, linear in between (rounded, in base's depth)."""
    import numpy as np

    weight = alpha.astype(np.float32) * np.float32(1 / 255)
    if base.ndim > weight.ndim:  # one weight for every channel of a pixel
        weight = weight[..., None]
    floor = base.astype(np.float32)
    mixed: NDArray[Any] = np.rint(floor + (top.astype(np.float32) - floor) * weight).astype(base.dtype)
    return mixed


def _back(work: NDArray[Any], like: Image.Image) -> NDArray[Any]:
    """Mixed work pixels in `like`'s own pixel values (palette indices for P, on/off for 1-bit)."""
    import numpy as np

    if like.mode == "P":
        rgb = Image.fromarray(np.ascontiguousarray(work[..., :3]))
        return np.asarray(rgb.quantize(palette=like, dither=Image.Dither.NONE))
    if like.mode == "1":
        return work >= 128
    return work


def _image(pixels: NDArray[Any], mode: str, size: tuple[int, int]) -> Image.Image:
    import numpy as np

    if mode == "1":
        return Image.fromarray(pixels.astype(bool))
    return Image.frombytes(mode, size, np.ascontiguousarray(pixels).tobytes())


def _blend_part(crop: Image.Image, patch: Image.Image, alpha: NDArray[np.uint8]) -> NDArray[Any]:
    """The crop's pixel values blended with the answer by `alpha`; exactly the crop's own where alpha is 0."""
    import numpy as np

    own = np.asarray(crop)
    if crop.mode in ("P", "1"):  # blended in RGB / grey, then mapped back to the palette or to on/off
        work = _work(crop)
        mixed = _back(_mix(work, _answer_as(patch, crop, work), alpha), crop)
        return np.where(alpha == 0, own, mixed) if own.ndim == 2 else np.where((alpha == 0)[..., None], own, mixed)
    answer = _answer_as(patch, crop, own)
    whole = alpha == 255
    out = np.where(whole if own.ndim == 2 else whole[..., None], answer, own)
    fading = np.nonzero((alpha > 0) & ~whole)  # only the feather band needs arithmetic: copy the rest
    out[fading] = _mix(own[fading], answer[fading], alpha[fading])
    return out


def _fast(original: Image.Image) -> bool:
    """True when our own PNG writer can write this picture (8-bit grey or colour, no palette transparency)."""
    return original.mode in FAST_MODES and "transparency" not in original.info


def _scaled(patch: Image.Image, size: tuple[int, int]) -> Image.Image:
    return patch if patch.size == size else patch.resize(size, Image.Resampling.BICUBIC)


def _extend(original: Image.Image, patch: Image.Image, region: Region) -> Image.Image:
    """The answer as the canvas, faded into the original's edge pixels across the band, the original pasted back."""
    import numpy as np

    work = _work(original)
    canvas = np.array(_answer_as(patch, original, work))  # writable copy
    left, top, right, bottom = region.box
    width, height, band = region.canvas[0], region.canvas[1], region.feather
    x0, y0, x1, y1 = max(0, left - band), max(0, top - band), min(width, right + band), min(height, bottom + band)
    strips = ((x0, y0, x1, top), (x0, bottom, x1, y1), (x0, top, left, bottom), (right, top, x1, bottom))
    for sx0, sy0, sx1, sy1 in strips:  # the band outside the original, strip by strip (the rest is untouched)
        if sx1 <= sx0 or sy1 <= sy0:
            continue
        xs, ys = np.arange(sx0, sx1), np.arange(sy0, sy1)
        edge = work[np.clip(ys, top, bottom - 1)[:, None] - top, np.clip(xs, left, right - 1)[None, :] - left]
        dx = np.maximum(np.maximum(left - xs, xs - (right - 1)), 0)
        dy = np.maximum(np.maximum(top - ys, ys - (bottom - 1)), 0)
        distance = np.maximum(dx[None, :], dy[:, None])
        alpha = np.clip(255 * (1 - distance / (band + 1)), 0, 255).astype(np.uint8)
        canvas[sy0:sy1, sx0:sx1] = _mix(canvas[sy0:sy1, sx0:sx1], edge, alpha)
    out = _image(_back(canvas, original), original.mode, region.canvas)
    if original.mode == "P":
        out.putpalette(original.getpalette() or [])
    out.paste(original, region.box[:2])  # the original's own pixel values, exactly
    return out


def _encode(image: Image.Image, info: dict[Any, Any]) -> bytes:
    """A PNG of the image, keeping its colour profile and palette transparency."""
    if _fast(image) and "transparency" not in info:
        import numpy as np

        return write_png(image.mode, image.size, [deflate_rows(np.asarray(image))],
                         icc_profile=info.get("icc_profile"))
    options: dict[str, Any] = {"compress_level": _PNG_LEVEL}
    if info.get("icc_profile"):
        options["icc_profile"] = info["icc_profile"]
    if image.mode in ("P", "L", "RGB") and "transparency" in info:
        options["transparency"] = info["transparency"]
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()
