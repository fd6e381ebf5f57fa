"""Transparency from opaque pictures: difference matting (one subject on white and on black) and chroma keying.

Pure numpy, no model weights. Both take 8-bit RGB arrays (height, width, 3) and give an 8-bit RGBA array whose
colour is straight (not premultiplied), as PNG wants it.

Difference matting: a pixel with coverage a and colour F shows w = a*F + (1 - a)*255 on white and b = a*F on black,
so a = 1 - (w - b)/255 in every channel, and F = b/a (the premultiplication undone; averaged with the white
picture's own estimate (w - (1 - a)*255)/a, which halves the rounding noise). The three channels must agree: where
they do not, or where the black picture is brighter than the white one, the two pictures do not show the same
subject in the same place (the model moved it), which `Matte.misaligned` reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["MISALIGNED", "Matte", "background_share", "chroma_key", "difference_matte", "encode_rgba",
           "key_for", "to_rgb_array"]

WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
# Misaligned: disagreeing pixels above this share of the outline's length. Measured on the emulator's subject at 1K:
# 0.004 for an aligned pair after JPEG quality 75, 0.37 for a one-pixel shift, 0.82 for four (bench/transparent.py).
MISALIGNED = 0.1
_DISAGREE = 40  # channel spread (or black above white) in 0-255 units beyond rounding, JPEG noise and small drift
_SNAP = 0.012  # alpha within this of 0 or 1 is rounding noise: snapped, so flat areas come out exactly clear or solid


@dataclass(frozen=True)
class Matte:
    """A solved matte: the RGBA pixels, and how well the two pictures agreed (difference matting only)."""

    rgba: NDArray[np.uint8]
    subject_pixels: int  # pixels with any coverage
    disagreeing_pixels: int  # of those, pixels the two pictures disagree about (the subject moved, or changed)
    outline_pixels: int = 0  # the solid subject's outline length (a moved subject disagrees along it)

    @property
    def disagreement(self) -> float:
        """Disagreeing pixels per pixel of the subject's outline (0 for a pair that agrees; about 0.4 for 1 px)."""
        return self.disagreeing_pixels / max(self.outline_pixels, 1)

    @property
    def misaligned(self) -> bool:
        """True when the subject moved (or changed) between the two pictures (disagreement above MISALIGNED)."""
        return self.disagreement > MISALIGNED


def to_rgb_array(image: object) -> NDArray[np.uint8]:
    """A Pillow image as an 8-bit (height, width, 3) array."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise TypeError("a Pillow image is needed")
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def _snap(alpha: NDArray[np.float32]) -> NDArray[np.float32]:
    alpha = np.clip(alpha, 0.0, 1.0)
    alpha[alpha < _SNAP] = 0.0
    alpha[alpha > 1.0 - _SNAP] = 1.0
    return alpha


def _straight(premultiplied: NDArray[np.float32], alpha: NDArray[np.float32]) -> NDArray[np.uint8]:
    """RGBA bytes from premultiplied colour (0-255) and alpha (0-1); a clear pixel's colour is 0."""
    out = np.zeros((*alpha.shape, 4), dtype=np.uint8)
    seen = alpha > 0
    colour = np.zeros_like(premultiplied)
    np.divide(premultiplied, alpha[..., None], out=colour, where=seen[..., None])
    out[..., :3] = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
    out[..., 3] = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def _outline(solid: NDArray[np.bool_]) -> int:
    """How many pixels of a mask touch a pixel outside it (its outline's length, in pixels)."""
    inner = solid.copy()
    inner[1:] &= solid[:-1]
    inner[:-1] &= solid[1:]
    inner[:, 1:] &= solid[:, :-1]
    inner[:, :-1] &= solid[:, 1:]
    return int(solid.sum() - inner.sum())


def _busy_box(white: NDArray[np.uint8], black: NDArray[np.uint8]) -> tuple[slice, slice]:
    """The rows and columns where either picture is not its clean background (outside: alpha snaps to 0)."""
    height, width = white.shape[:2]
    rows = np.flatnonzero((white.reshape(height, -1).min(axis=1) < 254) | (black.reshape(height, -1).max(axis=1) > 1))
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    band = slice(int(rows[0]), int(rows[-1]) + 1)
    cols = np.flatnonzero((white[band].min(axis=0).min(axis=1) < 254) | (black[band].max(axis=0).max(axis=1) > 1))
    return band, slice(int(cols[0]), int(cols[-1]) + 1)


# 255 / (2a) for each alpha a: twice the premultiplied colour times this is the straight colour (0 for a clear pixel).
_UNPREMULTIPLY = np.concatenate([[0.0], 255.0 / (2.0 * np.arange(1, 256))]).astype(np.float32)


def _solve_rows(white: NDArray[np.uint8], black: NDArray[np.uint8], out: NDArray[np.uint8]) -> tuple[int, int]:
    """Solve some rows into `out` (RGBA); (subject pixels, disagreeing pixels) among them.

    Channel by channel (planes, not interleaved pixels): numpy is about twice as fast on them.
    """
    d0, d1, d2 = (white[..., c].astype(np.int16) - black[..., c] for c in range(3))  # (1 - alpha) * 255 each
    low, high = np.minimum(d0, d1), np.maximum(d0, d1)
    middle = np.maximum(low, np.minimum(high, d2))  # the median of the three: robust to one clipped channel
    least, most = np.minimum(low, d2), np.maximum(high, d2)
    alpha = np.clip(255 - middle, 0, 255)
    snap = round(_SNAP * 255)
    alpha[alpha <= snap] = 0
    alpha[alpha >= 255 - snap] = 255
    subject = alpha > 0
    # Channels that disagree, or black brighter than white: not one subject in one place (it moved, or changed).
    most -= least
    disagreeing = subject & ((most > _DISAGREE) | (least < -_DISAGREE))
    # Twice the premultiplied colour is black itself plus white less its background share (two estimates,
    # averaged): white + black - 255 * (1 - alpha); times 255 / (2 alpha) it is the straight colour.
    shift = alpha - 255
    scale = _UNPREMULTIPLY[alpha]
    for c in range(3):
        twice = white[..., c].astype(np.int16)
        twice += black[..., c]
        twice += shift
        colour = twice * scale
        np.clip(colour, 0.0, 255.0, out=colour)
        colour += 0.5
        out[..., c] = colour
    out[..., 3] = alpha
    return int(np.count_nonzero(subject)), int(np.count_nonzero(disagreeing))


_ROWS = 64  # rows solved at once: their temporaries stay in the processor's cache


def difference_matte(white: NDArray[np.uint8], black: NDArray[np.uint8]) -> Matte:
    """Solve alpha and colour from the same subject on pure white and on pure black (same size, RGB).

    Only the box where either picture differs from its clean background is solved (outside it alpha snaps to 0),
    in bands of rows on two threads (numpy lets go of the GIL): a 4K picture is 17 million pixels.
    """
    if white.shape != black.shape or white.ndim != 3 or white.shape[2] != 3:
        raise ValueError(f"the two pictures differ in size ({white.shape[:2]} and {black.shape[:2]})")
    out = np.zeros((*white.shape[:2], 4), dtype=np.uint8)
    rows, cols = _busy_box(white, black)
    if rows.stop <= rows.start:
        return Matte(out, 0, 0, 0)
    bands = [slice(top, min(top + _ROWS, rows.stop)) for top in range(rows.start, rows.stop, _ROWS)]

    def solve(band: slice) -> tuple[int, int]:
        return _solve_rows(white[band, cols], black[band, cols], out[band, cols])

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = list(pool.map(solve, bands))
    solid = out[rows, cols, 3] >= 128
    return Matte(out, sum(c[0] for c in counts), sum(c[1] for c in counts), _outline(solid))


def key_for(colour: tuple[int, int, int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The key colour's strong and weak channels (green: (1,), (0, 2); magenta: (0, 2), (1,); white: all, none)."""
    high = tuple(i for i, value in enumerate(colour) if value >= 128)
    low = tuple(i for i, value in enumerate(colour) if value < 128)
    return high, low


def chroma_key(image: NDArray[np.uint8], colour: tuple[int, int, int], *, gain: float | None = None) -> Matte:
    """Key out a flat background colour with soft edges and spill suppression (green, magenta, or white).

    The key's excess (its strong channels above its weak ones, Vlahos style) gives alpha: a pixel as strongly the key
    as the background is clear, one with no excess is solid, and a mix is in between. The key's share is then taken
    out of each pixel's colour, and what key colour is left (spill on edges and hair) is clamped away.
    """
    high, low = key_for(colour)
    if not high:
        raise ValueError("the key colour must be bright in at least one channel")
    out = np.zeros((*image.shape[:2], 4), dtype=np.uint8)
    rows, cols = _off_key_box(image, colour)  # outside it every pixel is the key: clear
    if rows.stop <= rows.start:
        return Matte(out, 0, 0)
    p = image[rows, cols].astype(np.float32)
    planes = [p[..., c] for c in range(3)]
    excess = _least([planes[c] for c in high]) - (_most([planes[c] for c in low]) if low else 0.0)
    span = float(min(colour[i] for i in high) - (max(colour[i] for i in low) if low else 0))
    gain = gain if gain is not None else (1.0 if low else 4.0)  # white has no weak channels: a steeper ramp
    alpha = _snap((1.0 - excess / span) * gain)
    key = np.asarray(colour, dtype=np.float32)
    premultiplied = np.clip(p - (1.0 - alpha[..., None]) * key, 0.0, 255.0 * alpha[..., None])
    if low:  # spill suppression: no strong channel above the weak ones' maximum where the subject shows
        ceiling = _most([premultiplied[..., c] for c in low])
        spill = np.maximum(_least([premultiplied[..., c] for c in high]) - ceiling, 0.0)
        for c in high:
            premultiplied[..., c] -= spill
    out[rows, cols] = _straight(premultiplied, alpha)
    return Matte(out, int((alpha > 0).sum()), 0)


def _off_key_box(image: NDArray[np.uint8], colour: tuple[int, int, int]) -> tuple[slice, slice]:
    """The rows and columns holding a pixel more than 1 away from the key colour in some channel."""
    def off(axis: int, part: NDArray[np.uint8]) -> NDArray[np.bool_]:
        found = np.zeros(part.shape[1 - axis], dtype=bool)
        for c, value in enumerate(colour):
            plane = part[..., c]
            found |= plane.min(axis=axis) < value - 1 if value >= 128 else plane.max(axis=axis) > value + 1
        return found

    rows = np.flatnonzero(off(1, image))
    if rows.size == 0:
        return slice(0, 0), slice(0, 0)
    band = slice(int(rows[0]), int(rows[-1]) + 1)
    cols = np.flatnonzero(off(0, image[band]))
    return band, slice(int(cols[0]), int(cols[-1]) + 1)


def _least(planes: list[NDArray[np.float32]]) -> NDArray[np.float32]:
    out: NDArray[np.float32] = planes[0].copy()
    for plane in planes[1:]:
        np.minimum(out, plane, out=out)
    return out


def _most(planes: list[NDArray[np.float32]]) -> NDArray[np.float32]:
    out: NDArray[np.float32] = planes[0].copy()
    for plane in planes[1:]:
        np.maximum(out, plane, out=out)
    return out


def background_share(image: NDArray[np.uint8], colour: tuple[int, int, int], *, tolerance: float = 40.0) -> float:
    """The share of the picture's border (its outer 2%) within `tolerance` of `colour`: is it on that background?"""
    height, width = image.shape[:2]
    band = max(1, min(height, width) // 50)
    ring = np.concatenate([image[:band].reshape(-1, 3), image[-band:].reshape(-1, 3),
                           image[:, :band].reshape(-1, 3), image[:, -band:].reshape(-1, 3)]).astype(np.float32)
    distance = np.abs(ring - np.asarray(colour, dtype=np.float32)).max(axis=1)
    return float((distance <= tolerance).mean())


def encode_rgba(rgba: NDArray[np.uint8]) -> bytes:
    """An RGBA array as PNG bytes (fast: numpy filtering and ISA-L deflate, see pngwrite)."""
    from .pngwrite import deflate_rows, write_png

    height, width = rgba.shape[:2]
    return write_png("RGBA", (width, height), [deflate_rows(np.ascontiguousarray(rgba))])
