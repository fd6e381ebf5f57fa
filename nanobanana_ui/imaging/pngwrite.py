"""Fast PNG writing for large 8-bit pictures: rows Sub-filtered with numpy, deflated by ISA-L, in independent bands.

A region edit's output is the original with a band of rows changed. The bands of rows that do not change can be
deflated while the model is still answering (`deflate_rows`), so once the answer arrives only the changed band is
left to compress. Each band is a raw deflate stream ended by a sync flush (byte-aligned, no final bit), so bands can be
joined in order into one zlib stream; the Adler-32 of the whole is combined from each band's. ISA-L's level 1 is about
five times faster than zlib's (`isal`, in requirements.txt); without it, zlib level 1 is used.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

_deflate: ModuleType
try:
    from isal import isal_zlib as _deflate
except ImportError:  # pragma: no cover - isal is in requirements.txt; zlib still writes the same PNG, slower
    _deflate = zlib

__all__ = ["FAST_MODES", "Band", "RowFrame", "deflate_rows", "fill_rows", "frame_rows", "write_png"]

FAST_MODES = {"L": (0, 1), "LA": (4, 2), "RGB": (2, 3), "RGBA": (6, 4)}  # mode: (PNG colour type, bytes per pixel)
_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_ADLER_BASE = 65521
_LEVEL = 1


@dataclass(frozen=True)
class Band:
    """Some consecutive rows, filtered and deflated: joinable with the bands before and after it."""

    rows: int
    data: bytes = field(repr=False)  # raw deflate, ending in a sync flush
    adler: int  # Adler-32 of the filtered (uncompressed) bytes
    length: int  # how many filtered bytes


def deflate_rows(pixels: NDArray[np.uint8]) -> Band:
    """Filter rows of an 8-bit (height, width[, channels]) array with PNG's Sub filter and deflate them."""
    import numpy as np

    flat, bpp = _flat(pixels)
    filtered = np.empty((flat.shape[0], flat.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = 1  # filter type Sub: each byte minus the same channel of the pixel to its left
    filtered[:, 1:] = _sub(flat, 0, flat.shape[1], bpp)
    return _segment(_deflate.compressobj(_LEVEL, zlib.DEFLATED, -15), filtered.tobytes(), flat.shape[0])


@dataclass(frozen=True)
class RowFrame:
    """Rows whose columns x0:x1 will change, with the parts of each row that will not, deflated ahead."""

    x0: int
    x1: int
    left: tuple[Band, ...] = field(repr=False)  # per row: the filter byte and the pixels before x0
    right: tuple[Band, ...] = field(repr=False)  # per row: from pixel x1 + 1 on (pixel x1's Sub value changes too)


def frame_rows(pixels: NDArray[np.uint8], x0: int, x1: int) -> RowFrame:
    """Deflate, row by row, the parts of these rows outside columns x0:x1 (and pixel x1, whose Sub value depends on
    the changed pixel before it); `fill_rows` adds the middles once they are known."""
    import numpy as np

    flat, bpp = _flat(pixels)
    start, end = x0 * bpp, min((x1 + 1) * bpp, flat.shape[1])
    lefts = np.empty((flat.shape[0], start + 1), dtype=np.uint8)
    lefts[:, 0] = 1
    lefts[:, 1:] = _sub(flat, 0, start, bpp)
    rights = _sub(flat, end, flat.shape[1], bpp)
    packer = _deflate.compressobj(_LEVEL, zlib.DEFLATED, -15)
    left = tuple(_segment(packer, row.tobytes(), 0, full=True) for row in lefts)
    right = tuple(_segment(packer, row.tobytes(), 1, full=True) for row in rights)
    return RowFrame(x0, x1, left, right)


def fill_rows(frame: RowFrame, pixels: NDArray[np.uint8]) -> list[Band]:
    """The framed rows as bands, each row's middle (columns x0:x1 of `pixels`, the final rows) deflated now."""
    flat, bpp = _flat(pixels)
    start, end = frame.x0 * bpp, min((frame.x1 + 1) * bpp, flat.shape[1])
    middles = _sub(flat, start, end, bpp)
    packer = _deflate.compressobj(_LEVEL, zlib.DEFLATED, -15)
    bands: list[Band] = []
    for left, middle, right in zip(frame.left, middles, frame.right, strict=True):
        bands += [left, _segment(packer, middle.tobytes(), 0, full=True), right]
    return bands


def write_png(mode: str, size: tuple[int, int], bands: Sequence[Band], *, icc_profile: bytes | None = None) -> bytes:
    """A complete PNG from bands covering every row, top to bottom (8-bit L, LA, RGB or RGBA)."""
    colour, _ = FAST_MODES[mode]
    if sum(band.rows for band in bands) != size[1]:  # a row split in parts counts once, on its last part
        raise ValueError("the bands do not cover the image's rows exactly")
    adler, stream = 1, [b"\x78\x01"]  # zlib header: deflate, 32K window, fastest
    for band in bands:
        adler = _adler_combine(adler, band.adler, band.length)
        stream.append(band.data)
    stream += [b"\x03\x00", struct.pack(">I", adler)]  # an empty final block, then the checksum
    head = [_SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", size[0], size[1], 8, colour, 0, 0, 0))]
    if icc_profile:
        head.append(_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)))
    crc = zlib.crc32(b"IDAT")  # the IDAT chunk is written in pieces: its bytes are copied once, in the final join
    for piece in stream:
        crc = zlib.crc32(piece, crc)
    idat = struct.pack(">I", sum(map(len, stream))) + b"IDAT"
    return b"".join([*head, idat, *stream, struct.pack(">I", crc), _chunk(b"IEND", b"")])


def _flat(pixels: NDArray[np.uint8]) -> tuple[NDArray[np.uint8], int]:
    """Rows as (height, width * channels) bytes, and the bytes per pixel."""
    import numpy as np

    bpp = pixels.shape[2] if pixels.ndim == 3 else 1
    # explicit widths: a band of no rows (a region touching the top or bottom edge) must not be reshaped by -1
    return np.ascontiguousarray(pixels).reshape(pixels.shape[0], pixels.shape[1] * bpp), bpp


def _sub(flat: NDArray[np.uint8], start: int, end: int, bpp: int) -> NDArray[np.uint8]:
    """PNG's Sub filter of bytes start:end of each row: each byte minus the byte one pixel to its left (mod 256)."""
    import numpy as np

    out = np.empty((flat.shape[0], end - start), dtype=np.uint8)
    first = min(max(start, bpp), end)  # the first pixel of a row has no left neighbour: its bytes go as they are
    out[:, :first - start] = flat[:, start:first]
    np.subtract(flat[:, first:end], flat[:, first - bpp:end - bpp], out=out[:, first - start:])
    return out


def _segment(packer: Any, raw: bytes, rows: int, *, full: bool = False) -> Band:
    """Deflate `raw` to a byte-aligned segment; `full` resets the history, so the segment stands on its own."""
    data = packer.compress(raw) + packer.flush(zlib.Z_FULL_FLUSH if full else zlib.Z_SYNC_FLUSH)
    return Band(rows, data, zlib.adler32(raw), len(raw))


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def _adler_combine(first: int, second: int, second_length: int) -> int:
    """Adler-32 of two byte strings joined, from each one's (zlib's adler32_combine)."""
    rem = second_length % _ADLER_BASE
    sum1 = first & 0xFFFF
    sum2 = (rem * sum1) % _ADLER_BASE
    sum1 = (sum1 + (second & 0xFFFF) + _ADLER_BASE - 1) % _ADLER_BASE
    sum2 = (sum2 + ((first >> 16) & 0xFFFF) + ((second >> 16) & 0xFFFF) + _ADLER_BASE - rem) % _ADLER_BASE
    return sum1 | (sum2 << 16)
