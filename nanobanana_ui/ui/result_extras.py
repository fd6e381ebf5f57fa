"""What the result area shows beside the output images: the interim thought images, for their collapsed strip."""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image

from ..domain.request import ImageResult

__all__ = ["thought_pictures"]


def thought_pictures(results: Sequence[ImageResult]) -> list[tuple[Image.Image, str]]:
    """The thought images of a run's results, in order, as (picture, caption) for a Gallery.

    Pictures, not files: Gradio keeps them in its own temporary cache, so they never join the saved outputs (the
    output gallery and Original files list only the saved PNGs). One that cannot be decoded is skipped.
    """
    pictures: list[tuple[Image.Image, str]] = []
    for number, result in enumerate(results, start=1):
        for step, thought in enumerate(result.thought_images, start=1):
            try:
                picture = Image.open(io.BytesIO(thought.data))
                picture.load()
            except (OSError, ValueError):
                continue
            caption = f"thought {step}" if len(results) == 1 else f"image {number}, thought {step}"
            pictures.append((picture, caption))
    return pictures
