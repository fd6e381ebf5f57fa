"""An input image as a request carries it: normalised bytes, hash, size, and what was changed to get there."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["InputImage"]


@dataclass(frozen=True)
class InputImage:
    """One normalised input image, exactly as it will be sent, plus what was changed to get there."""

    data: bytes = field(repr=False)
    mime_type: str
    sha256: str
    width: int
    height: int
    name: str
    notes: tuple[str, ...] = ()
    stripped: tuple[str, ...] = ()  # personal metadata fields removed (names like "EXIF:GPSLatitude", never values)
