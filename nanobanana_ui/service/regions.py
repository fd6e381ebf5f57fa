"""Region edits before the call: check a mask or an extend ratio, choose the crop or canvas, and build what is sent.

A masked edit sends the model a crop around the mask's region (with context padding, grown to one of the model's
aspect ratios) plus the mask for that crop; an extend (outpaint) sends the original on a larger canvas of the ratio
asked for, plus a mask of the new area. The model's answer is put back by `region_blend.blend_answer`.

Masks: white marks the region. Any image the same size as the (EXIF-upright) original is accepted: it is read as
greyscale and thresholded at 50% (grey 128 and above is in the region). A mask with transparency is a brush layer:
its painted pixels (at least 50% opaque), in any colour, are the region, as an editor's layer of strokes on a clear
background is saved. An empty mask is refused (nothing to change); so is
a full one (nothing would stay untouched: that is a plain edit, whose output has the model's size, not the
original's, so we refuse rather than silently change what the result is).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from dataclasses import replace
from pathlib import Path

from PIL import Image

from ..domain.errors import ImageInputError, InputError
from ..domain.inputs import InputImage
from ..domain.models import get_model
from ..domain.region import Region
from ..domain.request import ImageOptions, ImageRequest, Mode
from ..imaging.images import MAX_SIDE, MAX_SOURCE_PIXELS, fit_size, load_input_image, open_oriented, to_8bit
from ..imaging.privacy import strip_personal
from ..imaging.region_blend import original_image
from .validation import build_request

__all__ = ["ANCHORS", "CONTEXT", "DEFAULT_FEATHER", "MAX_FEATHER", "MIN_CONTEXT", "build_region_request",
           "crop_box", "extend_placement", "load_mask", "parse_ratio", "sendable", "with_source_name"]

ANCHORS = ("center", "left", "right", "top", "bottom")
DEFAULT_FEATHER = 8  # px: enough to hide a seam on a 1-4K picture, small enough to keep the edit where it was painted
MAX_FEATHER = 256
CONTEXT = 0.25  # context padding on each side of the region, as a share of the region's longer side ...
MIN_CONTEXT = 32  # ... and at least this many pixels: the model needs surroundings to match light and style
_THRESHOLD = 128  # mask grey levels from 128 up are in the region (50%)
_FILL = 128  # the empty part of an extend canvas as sent: flat mid-grey, which the mask marks as "to fill"
ImageSourceLike = InputImage | bytes | str | os.PathLike[str]

def parse_ratio(text: str) -> tuple[int, int]:
    """'16:9' as (16, 9); anything else raises InputError."""
    parts = str(text).strip().split(":")
    if len(parts) == 2 and all(p.isdigit() and 0 < int(p) <= 100 for p in parts):
        return int(parts[0]), int(parts[1])
    raise InputError(f"{text!r} is not an aspect ratio: write it as W:H, e.g. 16:9.")


def load_mask(data: bytes, name: str, size: tuple[int, int]) -> Image.Image:
    """A mask file as an 'L' image of 0 and 255 (white = region), checked against the original's size."""
    try:
        im = open_oriented(data, name)
    except ImageInputError as error:
        raise ImageInputError(f"The mask is not usable: {error.message} Save the mask as a black-and-white PNG "
                              "(white = the region to change).") from None
    if im.size != size:
        raise InputError(
            f"The mask {name} is {im.width}x{im.height} but the image is {size[0]}x{size[1]} (upright): paint the mask "
            f"on this image, or resize it to {size[0]}x{size[1]}.")
    if im.mode == "P":
        im = im.convert("RGBA")
    if "A" in im.getbands() and im.getchannel("A").getextrema() != (255, 255):
        grey = im.getchannel("A")  # a brush layer on a clear background: what is painted, in any colour, is the region
    elif im.mode.startswith("I") or im.mode == "F":
        grey = to_8bit(im)
    else:
        grey = im.convert("L")
    mask = grey.point(lambda v: 255 if v >= _THRESHOLD else 0)
    low, high = mask.getextrema()
    if high == 0:
        raise InputError(f"The mask {name} is empty (no white pixels): paint the region to change in white.")
    if low == 255:
        raise InputError(f"The mask {name} covers the whole image, so nothing would stay untouched: for a "
                         "whole-picture change, edit without a mask; otherwise paint only the region to change.")
    return mask


def crop_box(mask: Image.Image, feather: int, ratios: tuple[str, ...]) -> tuple[tuple[int, int, int, int], str]:
    """The crop to send: the mask's bounds plus feather and context, grown towards the nearest model aspect ratio."""
    width, height = mask.size
    x0, y0, x1, y1 = mask.getbbox() or (0, 0, width, height)
    pad = feather + max(MIN_CONTEXT, round(CONTEXT * max(x1 - x0, y1 - y0)))
    box = (max(0, x0 - pad), max(0, y0 - pad), min(width, x1 + pad), min(height, y1 + pad))
    box = _grow_to(box, _nearest(ratios, box), mask.size)
    return box, _nearest(ratios, box)


def extend_placement(size: tuple[int, int], ratio: str, anchor: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """The canvas of `ratio` that holds the original at its own scale, and the original's top-left on it.

    The canvas grows in one direction only. left/right (top/bottom) put the original against that edge when the
    canvas grows sideways (vertically); otherwise, and for center, the original is centred.
    """
    a, b = parse_ratio(ratio)
    width, height = size
    if width * b < height * a:  # too narrow: widen
        canvas = (math.ceil(height * a / b), height)
        slack = canvas[0] - width
        x = {"left": 0, "right": slack}.get(anchor, slack // 2)
        return canvas, (x, 0)
    canvas = (width, math.ceil(width * b / a))
    slack = canvas[1] - height
    y = {"top": 0, "bottom": slack}.get(anchor, slack // 2)
    return canvas, (0, y)


def build_region_request(image: ImageSourceLike, prompt: str, *, model: str, options: ImageOptions | None = None,
                         mask: ImageSourceLike | None = None, feather: int | None = None,
                         extend_to: str | None = None, anchor: str | None = None,
                         keep_metadata: bool = False) -> ImageRequest:
    """Check a masked edit or an extend and build its request (crop or canvas, plus mask); all before any call.

    The original is kept (in the history, to re-run and refine) without its personal metadata unless
    `keep_metadata`: its pixels are untouched, so the crop sent and the blend are the same either way.
    """
    options = options or ImageOptions()
    if mask is not None and extend_to is not None:
        raise InputError("A mask and extend-to cannot be combined in one edit: extend the canvas first, then edit "
                         "the result with a mask.")
    if anchor is not None and extend_to is None:
        raise InputError("The anchor only applies when extending the canvas: add extend-to, or leave the anchor out.")
    if mask is None and extend_to is None:
        raise InputError("The feather applies to a region edit: add a mask (the region to change) or extend-to.")
    if anchor is not None and anchor not in ANCHORS:
        raise InputError(f"Unknown anchor {anchor!r}: choose one of {', '.join(ANCHORS)}.")
    feather = DEFAULT_FEATHER if feather is None else feather
    if isinstance(feather, bool) or not isinstance(feather, int) or not 0 <= feather <= MAX_FEATHER:
        raise InputError(f"The feather must be a whole number of pixels from 0 to {MAX_FEATHER} (got {feather!r}).")
    spec = get_model(model)
    data, name = _read(image, "image")
    if not keep_metadata:
        data = _without_personal_metadata(data)
    source_sha = hashlib.sha256(data).hexdigest()
    original = original_image(data, source_sha, name)
    if mask is not None:
        mask_data, mask_name = _read(mask, "mask")
        binary = load_mask(mask_data, mask_name, original.size)
        box, ratio = crop_box(binary, feather, spec.aspect_ratios)
        if options.aspect_ratio not in (None, ratio):  # the recorded one (a re-run) is the crop's own: accepted
            raise InputError("A masked edit keeps the image's size, so an aspect ratio does not apply: leave it out.")
        mask_png = _png(binary.convert("1"))
        region = Region("mask", source_sha, name, original.size, box, (box[2] - box[0], box[3] - box[1]), feather,
                        mask_sha256=hashlib.sha256(mask_png).hexdigest(), source=data, mask_png=mask_png)
        picture, hint = original.crop(box), binary.crop(box)
    else:
        ratio = str(extend_to).strip()
        _check_extend(ratio, original.size, spec.aspect_ratios, spec.label, options.aspect_ratio)
        canvas, (x, y) = extend_placement(original.size, ratio, anchor or "center")
        if canvas[0] * canvas[1] > MAX_SOURCE_PIXELS:  # the output is the canvas, at the original's own scale
            raise InputError(f"Extending {original.width}x{original.height} to {ratio} makes a {canvas[0]}x{canvas[1]} "
                             f"canvas, over the {MAX_SOURCE_PIXELS // 1_000_000} megapixel limit: choose a ratio "
                             "nearer the image's, or downscale the image first.")
        box = (x, y, x + original.width, y + original.height)
        region = Region("extend", source_sha, name, original.size, box, canvas, feather, extend_to=ratio,
                        anchor=anchor or "center", source=data)
        placed = sendable(original)
        fill: int | tuple[int, ...] = _FILL if placed.mode == "L" else (_FILL, _FILL, _FILL, 255)[:len(placed.mode)]
        picture = Image.new(placed.mode, canvas, fill)
        picture.paste(placed, (x, y))
        hint = Image.new("L", canvas, 255)
        hint.paste(0, box)
    crop_input, mask_input = _inputs(picture, hint, name)
    base = build_request(Mode.EDIT, prompt, (crop_input,), model=model, options=replace(options, aspect_ratio=ratio))
    return replace(base, images=(crop_input, mask_input), region=region)


def _without_personal_metadata(data: bytes) -> bytes:
    """The original's bytes without GPS, serials and owner names (the container edited, never the pixels)."""
    try:
        return strip_personal(data).data
    except ValueError:  # a container the stripper cannot edit: Pillow still reads it, and it is kept as given
        return data


def with_source_name(request: ImageRequest, name: str) -> ImageRequest:
    """A region request whose original is called `name` (a re-run from the history's copy keeps the name it had)."""
    if request.region is None or len(request.images) != 2:
        return request
    crop, hint = request.images
    images = (replace(crop, name=_sent_name(name, "region")), replace(hint, name=_sent_name(name, "mask")))
    return replace(request, region=replace(request.region, source_name=name), images=images)


def _sent_name(name: str, what: str) -> str:
    return f"{name} ({what})"


def _check_extend(ratio: str, size: tuple[int, int], ratios: tuple[str, ...], label: str, asked: str | None) -> None:
    a, b = parse_ratio(ratio)
    if ratio not in ratios:
        raise InputError(f"{label} does not make {ratio} images, so it cannot extend to {ratio}; "
                         f"choose one of: {', '.join(ratios)}.")
    if asked is not None and asked != ratio:
        raise InputError(f"Extend-to {ratio} sets the aspect ratio; leave the aspect ratio out (it was {asked}).")
    if abs(math.log(size[0] / size[1]) - math.log(a / b)) < 0.01:
        others = [r for r in ratios if r != ratio][:3]
        raise InputError(f"The image is already {ratio} ({size[0]}x{size[1]}), so there is nothing to extend: choose "
                         f"another ratio, e.g. {', '.join(others)}.")


def _read(source: ImageSourceLike, what: str) -> tuple[bytes, str]:
    """The exact bytes of an image given as bytes, a path or an InputImage, and a name for messages."""
    if isinstance(source, InputImage):
        return source.data, source.name
    if isinstance(source, (bytes, bytearray)):
        return bytes(source), what
    path = Path(source)
    try:
        return path.read_bytes(), path.name
    except FileNotFoundError:
        raise ImageInputError(f"The {what} {path} does not exist. Check the path and try again.") from None
    except IsADirectoryError:
        raise ImageInputError(f"The {what} {path} is a folder, not an image file.") from None
    except OSError as exc:
        raise ImageInputError(f"The {what} {path} cannot be read ({exc.strerror or exc}).") from None


def _nearest(ratios: tuple[str, ...], box: tuple[int, int, int, int]) -> str:
    shape = math.log((box[2] - box[0]) / (box[3] - box[1]))
    return min(ratios, key=lambda r: abs(shape - math.log(parse_ratio(r)[0] / parse_ratio(r)[1])))


def _grow_to(box: tuple[int, int, int, int], ratio: str, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Widen or heighten the box (never shrink it) towards `ratio`, as far as the image allows, keeping it centred."""
    a, b = parse_ratio(ratio)
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w * b < h * a:
        new = min(size[0], round(h * a / b))
        x0 = min(max(0, x0 - (new - w) // 2), size[0] - new)
        return x0, y0, x0 + new, y1
    new = min(size[1], round(w * b / a))
    y0 = min(max(0, y0 - (new - h) // 2), size[1] - new)
    return x0, y0, x1, y0 + new


def sendable(im: Image.Image) -> Image.Image:
    """The picture as the model can take it: 8-bit L, RGB or RGBA (palette expanded, 16-bit scaled, CMYK to RGB)."""
    if im.mode in ("L", "RGB", "RGBA"):
        return im
    if im.mode in ("P", "PA", "LA"):
        return im.convert("RGBA" if im.mode != "P" or "transparency" in im.info else "RGB")
    if im.mode.startswith("I") or im.mode == "F":
        return to_8bit(im)
    return im.convert("L" if im.mode == "1" else "RGB")


def _inputs(picture: Image.Image, hint: Image.Image, name: str) -> tuple[InputImage, InputImage]:
    """The picture and its mask as input images of the same size (downscaled together to the model's limit)."""
    picture = sendable(picture)
    if max(picture.size) > MAX_SIDE:
        target = fit_size(picture.size, MAX_SIDE)
        picture = picture.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        hint = hint.resize(target, Image.Resampling.NEAREST)
    # JPEG q95 for opaque pictures: a reference for the model only (the original's pixels never come from it), and
    # several times faster to encode than PNG for a large crop. Alpha needs PNG.
    data = _png(picture) if picture.mode == "RGBA" else _jpeg(picture)
    return load_input_image(data, _sent_name(name, "region")), load_input_image(_png(hint), _sent_name(name, "mask"))


def _png(im: Image.Image) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, "PNG", compress_level=6)
    return buffer.getvalue()


def _jpeg(im: Image.Image) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, "JPEG", quality=95)
    return buffer.getvalue()
