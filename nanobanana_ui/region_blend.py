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
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageFilter

from .errors import BadResponseError
from .images import _to_8bit, open_oriented

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from .regions import Region

__all__ = ["PNG_MODES", "blend_answer", "feather_alpha", "original_image"]

PNG_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B")  # modes a PNG stores exactly: kept as they are
_PNG_LEVEL = 1  # zlib level for the output: a 12 MP photo takes several times longer at the default 6, for ~8% less
_decoded: OrderedDict[str, Image.Image] = OrderedDict()  # the last originals, decoded once for the crop and the blend
_decoded_lock = threading.Lock()


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


def blend_answer(region: Region, answer: bytes) -> bytes:
    """The model's answer put back into the original: a PNG of the original's size and mode."""
    original = original_image(region.source, region.source_sha256, region.source_name)
    try:
        with Image.open(io.BytesIO(answer)) as reply:
            patch = reply.convert("RGB")
    except (OSError, ValueError) as error:
        raise BadResponseError(f"Gemini returned an image that cannot be read ({error}). Try again.") from None
    if patch.size != region.canvas:  # the answer has the model's size, not the crop's
        patch = patch.resize(region.canvas, Image.Resampling.BICUBIC)
    if region.kind == "mask":
        assert region.mask_png is not None
        with Image.open(io.BytesIO(region.mask_png)) as mask_file:
            mask = mask_file.convert("L").crop(region.box)
        out = _blend_crop(original, patch, feather_alpha(mask, region.feather), region.box)
    else:
        out = _extend(original, patch, region)
    return _encode(out, original.info)


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
        return _to_8bit(image)
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
    if base.ndim == 3:
        weight = weight[..., None]
    floor = base.astype(np.float32)
    mixed = np.rint(floor + (top.astype(np.float32) - floor) * weight)
    return mixed.astype(base.dtype)


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


def _blend_crop(original: Image.Image, patch: Image.Image, alpha: NDArray[np.uint8],
                box: tuple[int, int, int, int]) -> Image.Image:
    """The original with the crop at `box` blended with the answer by `alpha`; every pixel with alpha 0 untouched."""
    import numpy as np

    crop = original.crop(box)
    work = _work(crop)
    mixed = _back(_mix(work, _answer_as(patch, crop, work), alpha), crop)
    own = np.asarray(crop)
    keep = alpha == 0 if own.ndim == 2 else (alpha == 0)[..., None]
    out = original.copy()
    out.paste(_image(np.where(keep, own, mixed), crop.mode, crop.size), box[:2])  # same mode: values copied as is
    return out


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
    options: dict[str, Any] = {"compress_level": _PNG_LEVEL}
    if info.get("icc_profile"):
        options["icc_profile"] = info["icc_profile"]
    if image.mode in ("P", "L", "RGB") and "transparency" in info:
        options["transparency"] = info["transparency"]
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **options)
    return buffer.getvalue()
