"""A region edit as data: the original it applies to, its crop or canvas, its blend settings, and the words sent.

The request model carries a `Region` (`ImageRequest.region`); building one from a mask or an extend ratio is the
service's job (`service.regions`), blending the answer back is imaging's (`imaging.region_blend`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import InputError

__all__ = ["Region", "region_words"]

# Why the mask goes as a second image, and not as an overlay or in words: a tint or outline painted onto the picture
# tends to come back in the answer (the model reproduces what it sees), and words cannot carry an arbitrary shape
# (the models do not ground pixel coordinates reliably). A clean crop plus a black-and-white mask of the same size is
# the form image models are trained on for inpainting, keeps the picture itself untouched, and costs one more input
# image's tokens (258-560, counted in the estimate). The crop is tight around the region, so the model's attention is
# on it anyway; and whatever the model changes outside the mask is discarded by the blend.
_MASK_WORDS = (
    "Edit only part of this picture. The first image is the picture. The second image is a black-and-white mask of "
    "the same size: change only the area that is white in the mask and keep the black area as it is. Keep the "
    "framing, scale and perspective identical (no cropping, zooming, padding or shifting), so the result lines up "
    "pixel for pixel with the first image. The change to make: {prompt}")
_EXTEND_WORDS = (
    "Extend this picture (outpainting). The first image is a canvas: the original picture, with an empty grey area "
    "around it. The second image is a mask of the same size: white marks the empty area to fill, black the original "
    "picture. Fill the white area so that the scene continues naturally beyond the original edges (same light, "
    "perspective and style), keep the original part as it is, at the same place and scale, and leave no grey border "
    "or frame. Direction for the new area: {prompt}")
# A refinement continues the conversation about the crop or canvas: the picture and mask were given in the first turn,
# so the follow-up only restates the rule (the model's last answer is the picture now). The blend enforces it anyway.
_MASK_FOLLOW_UP = (
    "Edit the picture you made last, again only inside the area that is white in the mask given earlier; keep the "
    "framing, scale and perspective identical, so the result still lines up pixel for pixel. The change to make: "
    "{prompt}")
_EXTEND_FOLLOW_UP = (
    "Change the picture you made last, keeping the original part (black in the mask given earlier) as it is, at the "
    "same place and scale, with no border or frame. The change to make: {prompt}")


def region_words(kind: str, prompt: str, *, follow_up: bool = False) -> str:
    """The text a region edit sends: how to read the crop (or canvas) and mask, then `prompt` verbatim.

    `follow_up`: the words of a refinement of a region edit, sent after the conversation's earlier turns.
    """
    if follow_up:
        return (_MASK_FOLLOW_UP if kind == "mask" else _EXTEND_FOLLOW_UP).format(prompt=prompt)
    return (_MASK_WORDS if kind == "mask" else _EXTEND_WORDS).format(prompt=prompt)


@dataclass(frozen=True)
class Region:
    """A region edit: the original it applies to, where the model's answer goes back, and how it is blended."""

    kind: str  # "mask" or "extend"
    source_sha256: str  # SHA-256 of the original file's exact bytes
    source_name: str
    size: tuple[int, int]  # the original, upright (EXIF orientation applied)
    box: tuple[int, int, int, int]  # mask: the crop sent, in the original; extend: the original's place on the canvas
    canvas: tuple[int, int]  # what the model's answer is scaled to: the crop's size, or the extended canvas's
    feather: int
    mask_sha256: str | None = None  # SHA-256 of the thresholded mask as a 1-bit PNG (`mask_png`)
    extend_to: str | None = None
    anchor: str | None = None
    source: bytes = field(default=b"", repr=False, compare=False)
    mask_png: bytes | None = field(default=None, repr=False, compare=False)

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance (also the region's part of the cache key): hashes, boxes and settings, no bytes."""
        out: dict[str, Any] = {"kind": self.kind, "source_sha256": self.source_sha256, "source_name": self.source_name,
                               "size": list(self.size), "feather": self.feather}
        if self.kind == "mask":
            out.update(mask_sha256=self.mask_sha256, crop_box=list(self.box))
        else:
            out.update(extend_to=self.extend_to, anchor=self.anchor, canvas=list(self.canvas),
                       original_box=list(self.box))
        return out

    def cache_part(self) -> dict[str, Any]:
        """What of the region shapes the answer (the file name does not)."""
        return {k: v for k, v in self.describe().items() if k != "source_name"}

    def model_prompt(self, prompt: str, *, follow_up: bool = False) -> str:
        """The text sent to the model: how to read the two images (or, `follow_up`, the rule restated for a
        refinement), then the user's instruction verbatim."""
        return region_words(self.kind, prompt, follow_up=follow_up)

    @classmethod
    def from_record(cls, record: dict[str, Any], *, source: bytes, mask_png: bytes | None) -> Region:
        """The region a history entry recorded (`describe()`'s form), with the original's and the mask's bytes.

        The crop box (or the original's place on the canvas) is the recorded one, never worked out again, so a
        refinement blends into the very region its conversation is about. A malformed record raises InputError.
        """
        try:
            kind = str(record["kind"])
            size = _pair(record["size"])
            feather = int(record["feather"])
            if kind == "mask":
                box = _box(record["crop_box"])
                return cls("mask", str(record["source_sha256"]), str(record.get("source_name") or "image"), size, box,
                           (box[2] - box[0], box[3] - box[1]), feather, mask_sha256=str(record["mask_sha256"]),
                           source=source, mask_png=mask_png)
            if kind == "extend":
                return cls("extend", str(record["source_sha256"]), str(record.get("source_name") or "image"), size,
                           _box(record["original_box"]), _pair(record["canvas"]), feather,
                           extend_to=str(record["extend_to"]), anchor=str(record["anchor"]), source=source)
        except (KeyError, TypeError, ValueError):
            pass
        raise InputError("This entry's region edit record is incomplete, so it cannot be repeated or refined: run "
                         "the region edit again from the original image.")


def _pair(value: Any) -> tuple[int, int]:
    a, b = (int(v) for v in value)
    return a, b


def _box(value: Any) -> tuple[int, int, int, int]:
    a, b, c, d = (int(v) for v in value)
    return a, b, c, d
