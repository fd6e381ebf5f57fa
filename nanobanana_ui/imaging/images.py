"""Input images: sniff, validate and normalise user-supplied images before they are sent to a Gemini image model.

Originals that are already fine (PNG/JPEG/WebP, upright, one frame, small enough) are sent byte-for-byte; anything
else is decoded once, fixed (EXIF rotation, first frame, colour mode, size), re-encoded and each change noted.
Personal metadata (GPS, serial numbers, owner names...) is removed unless the caller keeps it (see privacy.py):
from an original sent as-is without re-encoding, and a re-encoded image carries no EXIF at all.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import cast

from PIL import Image, ImageOps, UnidentifiedImageError

from ..domain.errors import ImageInputError
from ..domain.inputs import InputImage
from .privacy import personal_fields, strip_personal

__all__ = [
    "MAX_INLINE_BYTES", "MAX_REQUEST_BYTES", "MAX_SIDE", "MAX_SOURCE_PIXELS", "check_request_size", "fit_size",
    "image_size", "load_input_image", "load_input_path", "open_oriented", "to_8bit", "upright_size",
]


MAX_INLINE_BYTES = 7 * 1024 * 1024  # Gemini accepts about 7 MB per inline image (FACTS, "Image models")
MAX_REQUEST_BYTES = 19 * 1024 * 1024  # a whole request must stay under 20 MB; keep 1 MB for prompt and JSON
# Long side after downscaling. Inputs are tokenised at a fixed budget (258-560 tokens per image), so extra pixels
# add upload time, not detail; 3072 keeps headroom for 2K/4K edits while a q90 JPEG of it is usually 1-3 MB,
# so several inputs still fit one request.
MAX_SIDE = 3072
MAX_SOURCE_PIXELS = 90_000_000  # beyond this we refuse before decoding (decompression bomb); 50 MP photos pass

_HINT = "Use a PNG, JPEG or WebP file."
_MIME = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
_SENDABLE_MODES = {"PNG": ("RGB", "RGBA", "L", "LA", "P"), "JPEG": ("RGB", "L"), "WEBP": ("RGB", "RGBA")}
_LOSSY_FORMATS = ("JPEG", "WEBP", "AVIF", "HEIF", "JPEG2000")
_ANIMATED = {"GIF": "an animated GIF", "PNG": "an animated PNG", "WEBP": "an animated WebP"}
_SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")
_HEIF_BRANDS = (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1")
_TEXT_BYTES = bytes(sorted({7, 8, 9, 10, 12, 13, 27} | set(range(0x20, 0x100)) - {0x7F}))
_BROKEN = (OSError, SyntaxError, EOFError, ValueError, IndexError, struct.error)
_MODE_NAMES = {
    "1": "1-bit", "P": "palette", "PA": "palette with alpha", "L": "8-bit greyscale", "LA": "greyscale with alpha",
    "I": "32-bit greyscale", "F": "floating-point greyscale",
    **dict.fromkeys(("I;16", "I;16B", "I;16L", "I;16N"), "16-bit greyscale"),
}
_ORIENTATION_TAG = 0x0112




def load_input_path(path: str | os.PathLike[str], *, keep_metadata: bool = False) -> InputImage:
    """Read an image file and normalise it with `load_input_image`; a bad path raises ImageInputError."""
    p = Path(path)
    if p.is_dir():
        raise ImageInputError(f"{p} is a folder, not an image file. {_HINT}")
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ImageInputError(f"{p} does not exist. Check the path and try again.") from None
    except OSError as exc:
        raise ImageInputError(f"{p} cannot be read ({exc.strerror or exc}). Check its permissions.") from None
    return load_input_image(data, p.name, keep_metadata=keep_metadata)


def load_input_image(data: bytes, name: str = "image", *, keep_metadata: bool = False) -> InputImage:
    """Validate an image's bytes and return them ready to send: untouched if already fine, else fixed and re-encoded.

    Personal metadata is removed (and its field names recorded in `stripped`) unless `keep_metadata` is set.
    """
    data, name = bytes(data), name or "image"
    with warnings.catch_warnings():
        # Pillow warns from 89.5 MP; MAX_SOURCE_PIXELS is enforced by _open instead (Pillow still errors at 179 MP).
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = _open(data, name)
        fmt = "JPEG" if im.format == "MPO" else str(im.format)  # MPO: a camera JPEG with extra preview/gain images
        animated = bool(getattr(im, "is_animated", False)) and fmt != "JPEG"
        size = im.size
        if fmt == "JPEG" and max(size) > MAX_SIDE:
            im.draft(None, _fit(size, MAX_SIDE))  # let libjpeg decode at 1/2, 1/4 or 1/8 scale: much faster
        _decode(im, name)
        orientation = _orientation(im)
        if (not animated and orientation == 1 and im.mode in _SENDABLE_MODES.get(fmt, ())
                and max(size) <= MAX_SIDE and len(data) <= MAX_INLINE_BYTES):
            if keep_metadata:
                return _make(data, fmt, size, name, [])
            try:
                private = strip_personal(data)  # segments edited, the compressed pixels copied byte for byte
            except ValueError:  # a container we cannot edit safely: re-encode (which drops all metadata)
                private = None
            if private is not None:
                notes = [_stripped_note(private.removed)] if private.removed else []
                return _make(private.data, fmt, size, name, notes, private.removed)
        removed = () if keep_metadata else personal_fields(data)
        image = _convert(im, fmt, animated, orientation, size, len(data), name, keep_metadata)
        if not removed:
            return image
        return replace(image, notes=(*image.notes, _stripped_note(removed)), stripped=removed)


def check_request_size(images: Sequence[InputImage]) -> None:
    """Raise ImageInputError if the images together exceed MAX_REQUEST_BYTES."""
    total = sum(len(image.data) for image in images)
    if total > MAX_REQUEST_BYTES:
        biggest = max(images, key=lambda image: len(image.data))
        raise ImageInputError(
            f"The {len(images)} input images add up to {_mb(total)}, over the {_mb(MAX_REQUEST_BYTES)} one request "
            f"may carry (the largest is {biggest.name}, {_mb(len(biggest.data))}). Use fewer or smaller images."
        )


def image_size(data: bytes) -> tuple[int, int]:
    """Return (width, height) of an image's bytes, reading only its header."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with _open(bytes(data), "image") as im:
            return im.size


def upright_size(data: bytes) -> tuple[int, int]:
    """(width, height) of an image's bytes once its EXIF orientation is applied, reading only its header."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with _open(bytes(data), "image") as im:
            width, height = im.size
            return (height, width) if _orientation(im) in (5, 6, 7, 8) else (width, height)  # 5-8 turn a quarter


def open_oriented(data: bytes, name: str = "image") -> Image.Image:
    """Decode an image's first frame fully, upright by its EXIF orientation, at full size and in its own mode."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        im = _open(bytes(data), name or "image")
        _decode(im, name or "image")
        return ImageOps.exif_transpose(im) if _orientation(im) != 1 else im


def _open(data: bytes, name: str) -> Image.Image:
    """Identify the format from the bytes (lazily: no pixels decoded) and refuse bombs by their header size."""
    try:
        im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise _too_large(name, None) from None
    except UnidentifiedImageError:
        raise _unidentified(name, data) from None
    except _BROKEN as exc:
        raise _damaged(name, exc) from None
    if im.format in ("EPS", "WMF"):  # Pillow identifies these, but decoding needs Ghostscript or Windows
        raise ImageInputError(f"{name} is a vector drawing ({im.format}), which cannot be read here. {_HINT}")
    if im.width * im.height > MAX_SOURCE_PIXELS:
        raise _too_large(name, im.size)
    return im


def _decode(im: Image.Image, name: str) -> None:
    """Decode every pixel now, so a truncated or corrupt file fails here and not halfway through a request."""
    try:
        im.load()
    except Image.DecompressionBombError:
        raise _too_large(name, None) from None
    except _BROKEN as exc:
        raise _damaged(name, exc) from None


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1 = upright); malformed EXIF counts as upright rather than blocking the image."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # noqa: BLE001 - Pillow's EXIF parser raises many types on bad data
        return 1
    return value if value in range(1, 9) else 1


def _stripped_note(removed: tuple[str, ...]) -> str:
    """The note for removed personal metadata: how many fields, never their values."""
    return f"removed personal metadata ({len(removed)} field{'s' if len(removed) != 1 else ''})"


def _kept_exif(im: Image.Image) -> bytes | None:
    """The EXIF to carry into a re-encoded image when metadata is kept (call after exif_transpose, which drops the
    orientation tag from the image it returns)."""
    try:
        exif = im.getexif()
        return exif.tobytes() if len(exif) else None
    except Exception:  # noqa: BLE001 - unreadable EXIF is not worth failing the image for
        return None


def _convert(im: Image.Image, fmt: str, animated: bool, orientation: int, size: tuple[int, int],
             nbytes: int, name: str, keep_metadata: bool = False) -> InputImage:
    """Fix what the fast path could not send as-is, then re-encode; every change is noted."""
    notes: list[str] = []
    icc = im.info.get("icc_profile") if im.mode in ("RGB", "RGBA", "L", "LA", "P") else None
    if animated:
        notes.append(f"first frame of {_ANIMATED.get(fmt, f'a multi-frame {fmt} file')}")
    if orientation != 1:
        im = ImageOps.exif_transpose(im)
        notes.append("rotated upright from EXIF")
        size = (size[1], size[0]) if orientation >= 5 else size
    exif = _kept_exif(im) if keep_metadata else None
    if nbytes > MAX_INLINE_BYTES:
        notes.append(f"re-encoded: the file was {_mb(nbytes)}, over the {_mb(MAX_INLINE_BYTES)} limit")
    im = _sendable_mode(im, notes)
    if max(size) > MAX_SIDE:
        target = _fit(size, MAX_SIDE)
        im = im.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        notes.append(f"downscaled from {size[0]}x{size[1]} to {target[0]}x{target[1]}")
    data, out_fmt, out_size = _encode(im, fmt not in _LOSSY_FORMATS, icc, notes, exif)
    if out_fmt != fmt:
        notes.append(f"converted {fmt} to {out_fmt}")
    return _make(data, out_fmt, out_size, name, notes)


def _sendable_mode(im: Image.Image, notes: list[str]) -> Image.Image:
    """Convert to L, LA, RGB or RGBA: CMYK to RGB, 16-bit and float to 8-bit, palette/1-bit expanded, alpha kept."""
    alpha = "transparency" in im.info or bool({"A", "a"} & set(im.getbands()))
    grey = im.mode in ("1", "L", "LA", "La", "F") or im.mode.startswith("I")
    target = ("LA" if alpha else "L") if grey else ("RGBA" if alpha else "RGB")
    if im.mode == target:
        return im
    out = _to_8bit(im) if im.mode == "F" or im.mode.startswith("I") else im.convert(target)
    notes.append(f"converted {_MODE_NAMES.get(im.mode, im.mode)} to {_MODE_NAMES.get(out.mode, out.mode)}")
    return out


def _to_8bit(im: Image.Image) -> Image.Image:
    """Scale a 16-bit, 32-bit or float greyscale image to 8-bit L by its nominal range (not by clipping)."""
    lo, hi = cast("tuple[float, float]", im.getextrema())  # single-band modes: (min, max)
    if im.mode.startswith("I;16") or (lo >= 0 and 255 < hi <= 65535):
        lo, hi = 0, 65535  # 16-bit data: full range 0-65535 maps to 0-255
    elif im.mode == "F" and lo >= 0 and hi <= 1:
        lo, hi = 0, 1  # float data normalised to 0-1
    elif lo >= 0 and hi <= 255:
        lo, hi = 0, 255  # already 8-bit values in a wider container
    scale = 255 / (hi - lo) if hi > lo else 1.0
    offset = 0.5 - lo * scale  # +0.5 because Pillow truncates F -> L
    return im.convert("F").point(lambda v: v * scale + offset).convert("L")


def _encode(im: Image.Image, lossless: bool, icc: bytes | None,
            notes: list[str], exif: bytes | None = None) -> tuple[bytes, str, tuple[int, int]]:
    """PNG for alpha or lossless sources if it fits, else JPEG q90 (WebP q90 to keep alpha), halving until it fits."""
    alpha = im.mode in ("LA", "RGBA") and cast("tuple[int, int]", im.getchannel("A").getextrema())[0] < 255
    if im.mode in ("LA", "RGBA") and not alpha:
        im = im.convert(im.mode[:-1])  # fully opaque: the alpha channel only costs bytes
    if alpha or lossless:
        data = _save(im, "PNG", icc, exif)
        if len(data) <= MAX_INLINE_BYTES:
            return data, "PNG", im.size
    fmt = "WEBP" if alpha else "JPEG"
    if im.mode == "LA":
        im, icc = im.convert("RGBA"), None  # WebP has no greyscale; a grey ICC profile no longer applies
    start = im.size
    while len(data := _save(im, fmt, icc, exif, quality=90)) > MAX_INLINE_BYTES and min(im.size) > 1:
        im = im.resize((max(1, im.width // 2), max(1, im.height // 2)), Image.Resampling.LANCZOS)
    if im.size != start:
        notes.append(f"downscaled further to {im.width}x{im.height} to fit the {_mb(MAX_INLINE_BYTES)} limit")
    return data, fmt, im.size


def _save(im: Image.Image, fmt: str, icc: bytes | None, exif: bytes | None = None, **options: object) -> bytes:
    """Encode `im` as `fmt`, keeping the colour profile but no other metadata (EXIF, GPS) unless `exif` is given."""
    buf = io.BytesIO()
    im.save(buf, fmt, **({"icc_profile": icc} if icc else {}), **({"exif": exif} if exif else {}), **options)
    return buf.getvalue()


def _make(data: bytes, fmt: str, size: tuple[int, int], name: str, notes: list[str],
          stripped: tuple[str, ...] = ()) -> InputImage:
    """Wrap encoded bytes with their mime type, hash and size."""
    digest = hashlib.sha256(data).hexdigest()
    return InputImage(data, _MIME[fmt], digest, size[0], size[1], name, tuple(notes), stripped)


def _fit(size: tuple[int, int], limit: int) -> tuple[int, int]:
    """The aspect-preserving size whose long side is `limit`."""
    scale = limit / max(size)
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def _unidentified(name: str, data: bytes) -> ImageInputError:
    """The error for bytes Pillow cannot identify, saying what they look like instead."""
    if not data:
        return ImageInputError(f"{name} is empty (0 bytes). {_HINT}")
    if data.startswith(_SIGNATURES) or data[8:12] == b"WEBP":
        return _damaged(name, None)
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return ImageInputError(f"{name} is a HEIC/HEIF photo, which cannot be read here. Export it as JPEG or PNG.")
    head = data[:1024].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")):
        kind = "a web page (HTML)"
    elif head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        kind = "an SVG drawing"
    elif head.startswith(b"%pdf"):
        kind = "a PDF document"
    else:
        kind = "text" if not data[:1024].translate(None, _TEXT_BYTES) else "an unknown format"
    return ImageInputError(f"{name} is not an image (it looks like {kind}). {_HINT}")


def _damaged(name: str, exc: BaseException | None) -> ImageInputError:
    """The error for a file that starts like an image but does not decode."""
    detail = f" ({exc})" if exc is not None and str(exc) else ""
    return ImageInputError(f"{name} is damaged or truncated{detail}. Re-export or re-download it and try again.")


def _too_large(name: str, size: tuple[int, int] | None) -> ImageInputError:
    """The error for an image over MAX_SOURCE_PIXELS, refused before its pixels are decoded."""
    dims = f" ({size[0]}x{size[1]} pixels, {size[0] * size[1] / 1e6:.0f} megapixels)" if size else ""
    return ImageInputError(
        f"{name} is too large{dims}; the limit is {MAX_SOURCE_PIXELS / 1e6:.0f} megapixels. Resize it and try again."
    )


def _mb(nbytes: int) -> str:
    """Bytes as megabytes for messages, e.g. '7.0 MB'."""
    return f"{nbytes / 2**20:.1f} MB"


def to_8bit(im: Image.Image) -> Image.Image:
    """A 16-bit, 32-bit or float greyscale image as 8-bit L, scaled by its nominal range (not clipped)."""
    return _to_8bit(im)


def fit_size(size: tuple[int, int], limit: int) -> tuple[int, int]:
    """The aspect-preserving size whose long side is `limit`."""
    return _fit(size, limit)
