"""Emulator cut-outs: a known RGBA subject drawn over the flat background a prompt asks for (white, black, a key).

When a prompt asks for a pure white, pure black or flat key-colour background (by name, or by hex such as #00FF00),
the emulator answers with one synthetic subject composited over that colour, the same subject on every turn of a
conversation (it follows the conversation's first prompt). The subject has hard edges (a disc and a text label),
soft edges (a glow), fine "hair" lines and a semi-transparent "glass" panel, so a matte can be checked against the
true alpha, which `cutout_truth` hands to tests and benchmarks. `Cutouts` holds the test knobs: shift the subject of
a later turn by a few pixels (to exercise the alignment check), or ignore the background instruction.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["COLOUR_WORDS", "CutoutTruth", "Cutouts", "asked_background", "cutout_picture", "cutout_truth"]

_HEX = re.compile(r"#([0-9a-f]{6})\b")
_NAMED = {"pure white": (255, 255, 255), "pure black": (0, 0, 0), "chroma-key green": (0, 255, 0),
          "chroma-key magenta": (255, 0, 255)}
COLOUR_WORDS = {"red": (220, 40, 40), "orange": (240, 140, 40), "yellow": (245, 215, 50), "green": (40, 190, 60),
                "blue": (40, 90, 220), "purple": (140, 60, 200), "pink": (240, 110, 180), "brown": (140, 90, 50)}
_DEFAULT_BODY = COLOUR_WORDS["orange"]
_GLASS = ((170, 210, 255), 0.35)  # colour and alpha of the semi-transparent panel
_HAIR_ALPHA = 0.85


def asked_background(prompt: str) -> tuple[int, int, int] | None:
    """The flat background colour a prompt asks for (hex like #00FF00, or "pure white"/"pure black"), else None."""
    text = prompt.lower()
    if "background" not in text:
        return None
    found = _HEX.search(text)
    if found:
        value = found.group(1)
        return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
    return next((colour for name, colour in _NAMED.items() if name in text), None)


@dataclass(frozen=True)
class CutoutTruth:
    """The subject as it really is: straight colour (0-255), alpha (0-1) and where the glass panel is."""

    rgb: NDArray[np.float32]
    alpha: NDArray[np.float32]
    glass: NDArray[np.bool_]  # the semi-transparent panel's inside (its border pixels left out)


def _body_colour(subject_prompt: str) -> tuple[int, int, int]:
    words = re.findall(r"[a-z]+", subject_prompt.lower())
    return next((COLOUR_WORDS[word] for word in words if word in COLOUR_WORDS), _DEFAULT_BODY)


def _over(colour: NDArray[np.float32], alpha: NDArray[np.float32], layer: NDArray[np.float32] | tuple[int, ...],
          coverage: NDArray[np.float32], box: tuple[slice, slice]) -> None:
    """Paint a layer over (premultiplied colour, alpha) inside box, in place."""
    layer_rgb = np.asarray(layer, dtype=np.float32)
    c, a = colour[box], alpha[box]
    c *= (1.0 - coverage)[..., None]
    c += coverage[..., None] * layer_rgb
    a *= 1.0 - coverage
    a += coverage


def _segment_coverage(x: NDArray[np.float32], y: NDArray[np.float32], p0: tuple[float, float],
                      p1: tuple[float, float], width: float) -> NDArray[np.float32]:
    """Anti-aliased coverage of a line segment of this width."""
    dx, dy = p1[0] - p0[0], p1[1] - p0[1]
    t = np.clip(((x - p0[0]) * dx + (y - p0[1]) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    distance = np.hypot(x - (p0[0] + t * dx), y - (p0[1] + t * dy))
    return np.clip(width / 2 + 0.5 - distance, 0.0, 1.0).astype(np.float32)


@lru_cache(maxsize=2)
def cutout_truth(width: int, height: int, subject_prompt: str = "") -> CutoutTruth:
    """The known subject for a picture of this size (the body's colour follows a colour word in the prompt)."""
    s = min(width, height)
    seed = hashlib.sha256(subject_prompt.encode("utf-8", "surrogatepass")).digest()
    colour = np.zeros((height, width, 3), dtype=np.float32)  # premultiplied while painting
    alpha = np.zeros((height, width), dtype=np.float32)
    cx, cy = width / 2, height * 0.58
    # Glass: a semi-transparent panel with hard edges, behind the body (left of it).
    gx0, gx1 = int(cx - 0.36 * s), int(cx - 0.10 * s)
    gy0, gy1 = int(cy - 0.42 * s), int(cy - 0.02 * s)
    glass_cover = np.full((gy1 - gy0, gx1 - gx0), _GLASS[1], dtype=np.float32)
    _over(colour, alpha, _GLASS[0], glass_cover, (slice(gy0, gy1), slice(gx0, gx1)))
    glass = np.zeros((height, width), dtype=bool)
    glass[gy0 + 1:gy1 - 1, gx0 + 1:gx1 - 1] = True
    # Soft edge: a glow whose coverage falls off smoothly (no hard boundary at all).
    sigma, gx, gy = 0.07 * s, cx + 0.27 * s, cy - 0.27 * s
    box = (slice(max(0, int(gy - 4 * sigma)), min(height, int(gy + 4 * sigma))),
           slice(max(0, int(gx - 4 * sigma)), min(width, int(gx + 4 * sigma))))
    yy, xx = np.mgrid[box[0], box[1]].astype(np.float32)
    glow = 0.95 * np.exp(-((xx - gx) ** 2 + (yy - gy) ** 2) / (2 * sigma * sigma))
    glow[glow < 0.01] = 0.0
    _over(colour, alpha, (250, 220, 70), glow.astype(np.float32), box)
    # Body: an opaque disc with an anti-aliased hard edge and a vertical shade.
    radius = 0.22 * s
    box = (slice(int(cy - radius - 2), int(cy + radius + 2)), slice(int(cx - radius - 2), int(cx + radius + 2)))
    yy, xx = np.mgrid[box[0], box[1]].astype(np.float32)
    disc = np.clip(radius + 0.5 - np.hypot(xx + 0.5 - cx, yy + 0.5 - cy), 0.0, 1.0).astype(np.float32)
    base = np.asarray(_body_colour(subject_prompt), dtype=np.float32)
    shade = (0.75 + 0.25 * (yy - (cy - radius)) / (2 * radius))[..., None] * base
    colour_box = colour[box]
    colour_box *= (1.0 - disc)[..., None]
    colour_box += disc[..., None] * np.clip(shade, 0, 255)
    alpha[box] = alpha[box] * (1.0 - disc) + disc
    # Hair: thin strands from the top of the body, one pixel wide or less (partial coverage all along).
    for n in range(16):
        angle = np.pi * (0.15 + 0.7 * n / 15) + (seed[n] / 255 - 0.5) * 0.1
        start = (cx + 0.9 * radius * np.cos(angle + np.pi), cy - 0.9 * radius * abs(np.sin(angle)))
        end = (start[0] + 0.25 * s * np.cos(angle + np.pi), start[1] - 0.25 * s * abs(np.sin(angle)) - 0.05 * s)
        x0, x1 = sorted((start[0], end[0]))
        y0, y1 = sorted((start[1], end[1]))
        box = (slice(max(0, int(y0) - 2), min(height, int(y1) + 3)),
               slice(max(0, int(x0) - 2), min(width, int(x1) + 3)))
        yy, xx = np.mgrid[box[0], box[1]].astype(np.float32)
        strand = _segment_coverage(xx + 0.5, yy + 0.5, start, end, 0.6 + 0.4 * (n % 3) / 2) * _HAIR_ALPHA
        _over(colour, alpha, (60, 35, 20), strand, box)
    # Label: the emulator's placeholder mark, drawn as part of the subject (opaque text, anti-aliased).
    text_px = max(10, s // 24)
    label = Image.new("L", (width, text_px * 2), 0)
    ImageDraw.Draw(label).text((width // 2, text_px), "OFFLINE EMULATOR · cut-out", anchor="mm", fill=255,
                               font=ImageFont.load_default(size=text_px))
    top = int(cy + radius + 0.04 * s)
    rows = slice(top, min(height, top + text_px * 2))
    ink = np.asarray(label, dtype=np.float32)[: rows.stop - rows.start] / 255.0
    _over(colour, alpha, (30, 30, 30), ink, (rows, slice(0, width)))
    rgb = np.zeros_like(colour)
    np.divide(colour, alpha[..., None], out=rgb, where=alpha[..., None] > 0)
    return CutoutTruth(np.clip(rgb, 0, 255), alpha, glass)


def _shifted(array: NDArray[np.float32], dx: int, dy: int) -> NDArray[np.float32]:
    out = np.zeros_like(array)
    h, w = array.shape[:2]
    src = array[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[max(0, dy):max(0, dy) + src.shape[0], max(0, dx):max(0, dx) + src.shape[1]] = src
    return out


def cutout_picture(size: tuple[int, int], background: tuple[int, int, int], subject_prompt: str,
                   shift: tuple[int, int] = (0, 0)) -> Image.Image:
    """The known subject composited over a flat background (8-bit RGB), moved by `shift` pixels if asked."""
    truth = cutout_truth(size[0], size[1], subject_prompt)
    rgb, alpha = truth.rgb, truth.alpha
    if shift != (0, 0):
        rgb, alpha = _shifted(rgb, *shift), _shifted(alpha, *shift)
    out = alpha[..., None] * rgb + (1.0 - alpha[..., None]) * np.asarray(background, dtype=np.float32)
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8), "RGB")


class Cutouts:
    """Test knobs for cut-out answers: shift the subject of later turns, or ignore the background instruction."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._shifts: list[tuple[int, int]] = []
        self._ignore = 0

    def shift_next(self, dx: int, dy: int = 0, *, times: int = 1) -> None:
        """Move the subject by (dx, dy) pixels in the next `times` cut-out answers of a later turn (turn 2 on)."""
        with self._lock:
            self._shifts += [(int(dx), int(dy))] * times

    def ignore_next(self, times: int = 1) -> None:
        """Answer the next `times` background instructions with an ordinary placeholder (as if ignored)."""
        with self._lock:
            self._ignore += times

    def reset(self) -> None:
        """Forget queued shifts and ignores."""
        with self._lock:
            self._shifts.clear()
            self._ignore = 0

    def take(self, turn: int) -> tuple[bool, tuple[int, int]]:
        """For one cut-out answer: (ignore the instruction?, the shift to apply)."""
        with self._lock:
            if self._ignore:
                self._ignore -= 1
                return True, (0, 0)
            if turn > 1 and self._shifts:
                return False, self._shifts.pop(0)
            return False, (0, 0)
