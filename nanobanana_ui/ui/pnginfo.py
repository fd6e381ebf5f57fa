"""The PNG Info tab: what a dropped image says about how it was made, and the settings "Use these settings" restores.

The image arrives through a gr.File, so these are the exact bytes the visitor dropped: gr.Image would re-encode it
(webp by default) and drop the PNG text chunks this reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from ..pngmeta import ImageInfo, read_image_info
from .events import PageEvents

__all__ = ["EMPTY", "MAX_BYTES", "PngInfo"]

EMPTY = "Drop an image (PNG, JPEG or WebP; ours or from another tool) to see how it was made."
MAX_BYTES = 60 * 1024 * 1024
_PREVIEWABLE = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # PNG, JPEG (WebP: RIFF....WEBP)
_FIELDS = {"prompt": "prompt", "mode": "mode", "model": "model", "aspect_ratio": "aspect ratio", "size": "size",
           "temperature": "temperature", "top_p": "top-p", "top_k": "top-k", "seed": "seed"}


def describe(info: ImageInfo) -> str:
    """The one-line message, plus what "Use these settings" would restore."""
    if not info.settings:
        return info.message + " Nothing here for *Use these settings*."
    restored = ", ".join(label for key, label in _FIELDS.items() if key in info.settings)
    inputs = (" Its input images are not in the file: add them in that tab." if info.settings.get("mode") in
              ("edit", "compose") else "")
    return f"{info.message} *Use these settings* restores: {restored}.{inputs}"


class PngInfo:
    """The tab's events; the restorable settings travel in a gr.State between them."""

    def __init__(self, events: PageEvents) -> None:
        self.events = events

    def inspect(self, path: str | None) -> tuple[str, str, dict, str | None]:
        """Message, the image's parameters text, its restorable settings (with where they came from), and the file
        to preview (None when it is not a PNG, JPEG or WebP a browser can show)."""
        if not path:
            return EMPTY, "", {}, None
        file = Path(path)
        if file.stat().st_size > MAX_BYTES:
            return f"{file.name} is over {MAX_BYTES // 2**20} MB: too large to inspect here.", "", {}, None
        data = file.read_bytes()
        info = read_image_info(data, file.name)
        shown = path if data.startswith(_PREVIEWABLE) or data[8:12] == b"WEBP" else None
        return describe(info), info.parameters or "", {"settings": info.settings, "source": info.source}, shown

    def use(self, found: dict | None, current_model: str) -> dict[str, Any]:
        """Form values (by field name) from the inspected image's settings; switches to the Studio's right tab."""
        found = found or {}
        settings = found.get("settings") or {}
        if not settings:
            raise gr.Error("This image has no settings to use: drop an image made by this app (or one with "
                           "generation parameters) first.", print_exception=False)
        # Ours says everything that was sent (absent = the model's default); others give the prompt and seed.
        return self.events.form_values(settings, current_model, complete=found.get("source") == "nanobanana")
