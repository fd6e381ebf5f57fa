"""The PNG Info tab: what a dropped image says about how it was made, and the settings "Use these settings" restores.

Layout, wiring and handlers are here; the restored values are the shared actions' form values (actions.py).

It also says which personal metadata (GPS, serials, owner names) was taken off the inputs of an image this app made,
or, for a photo from elsewhere, which personal fields it holds that would be taken off before sending: names only,
never values (privacy.py).

The image arrives through a gr.File, so these are the exact bytes the visitor dropped: gr.Image would re-encode it
(webp by default) and drop the PNG text chunks this reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from ..imaging.pngmeta import ImageInfo, read_image_info
from ..imaging.privacy import personal_fields, stripped_inputs
from . import text
from .actions import StudioForm, form_values, no_change, refusals_as_warnings, refuse

__all__ = ["EMPTY", "MAX_BYTES", "PngInfo", "PngInfoTab", "describe", "privacy_note", "restorable"]

PRIVATE: dict[str, Any] = {"api_visibility": "private"}

EMPTY = "Drop an image (PNG, JPEG or WebP; ours or from another tool) to see how it was made."
MAX_BYTES = 60 * 1024 * 1024
_PREVIEWABLE = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")  # PNG, JPEG (WebP: RIFF....WEBP)
_FIELDS = {"prompt": "prompt", "mode": "mode", "model": "model", "aspect_ratio": "aspect ratio", "size": "size",
           "temperature": "temperature", "top_p": "top-p", "top_k": "top-k", "seed": "seed"}


def _region(settings: dict[str, Any]) -> bool:
    """True for a region edit's settings (a masked edit or an extend-to)."""
    return any(key in settings for key in ("mask_sha256", "extend_to"))


def restorable(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings "Use these settings" puts in the form: a region edit's aspect ratio is its crop's (or the
    extend's), not a choice to carry over to the next edit, so it is left at auto."""
    return {k: v for k, v in settings.items() if k != "aspect_ratio"} if _region(settings) else settings


def describe(info: ImageInfo) -> str:
    """The one-line message, plus what "Use these settings" would restore."""
    if not info.settings:
        return info.message + " Nothing here for *Use these settings*."
    settings = restorable(info.settings)
    restored = ", ".join(label for key, label in _FIELDS.items() if key in settings)
    inputs = (" Its input images are not in the file: add them in that tab." if info.settings.get("mode") in
              ("edit", "compose") else "")
    if _region(info.settings):  # the mask is not in the file; the history keeps it with the original
        what = (f"a masked edit (mask sha256 {str(info.settings.get('mask_sha256'))[:12]}..., feather "
                f"{info.settings.get('feather')})" if "mask_sha256" in info.settings else
                f"an extend to {info.settings.get('extend_to')} (anchor {info.settings.get('anchor')})")
        inputs = (f" It is {what}: its original and mask are not in the file. To repeat it exactly, open it in the "
                  "History tab and click *Re-run* (the history keeps both).")
    return f"{info.message} *Use these settings* restores: {restored}.{inputs}"


def _names(fields: tuple[str, ...]) -> str:
    return ", ".join(text.plain(name) for name in fields)  # names come from the file: shown as typed


def privacy_note(info: ImageInfo, data: bytes) -> str:
    """Which personal fields were stripped from an app-made image's inputs, or which a dropped photo holds that
    would be stripped before sending ("" when none); field names only, never their values."""
    if info.source == "nanobanana":
        stripped = stripped_inputs(info.request)
        if not stripped:
            return ""
        inputs = "; ".join(f"{text.plain(name)}: {_names(fields)}" for name, fields in stripped)
        return f"Personal metadata removed from its inputs before they were sent: {inputs}."
    fields = personal_fields(data)
    if not fields:
        return ""
    return (f"This image holds personal metadata that is removed before it is sent for editing (unless *Keep photo "
            f"metadata* is on): {_names(fields)}.")


class PngInfo:
    """The tab's work: read a dropped file; the restorable settings travel in a gr.State between its events."""

    def __init__(self, default_model: str) -> None:
        self.default_model = default_model

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
        message = "\n\n".join(filter(None, [describe(info), privacy_note(info, data)]))
        return message, info.parameters or "", {"settings": info.settings, "source": info.source}, shown

    def use(self, found: dict | None, current_model: str) -> dict[str, Any]:
        """Form values (by field name) from the inspected image's settings; switches to the Studio's right tab."""
        settings = (found or {}).get("settings") or {}
        if not settings:
            raise refuse("This image has no settings to use: drop an image made by this app (or one with "
                         "generation parameters) first.")
        # Ours says everything that was sent (absent = the model's default); others give the prompt and seed.
        return form_values(restorable(settings), current_model, self.default_model,
                           complete=(found or {}).get("source") == "nanobanana")


class PngInfoTab:
    """The PNG Info tab's components and events; "Use these settings" fills the Studio's form."""

    def __init__(self, pnginfo: PngInfo, form: StudioForm) -> None:
        self.pnginfo, self.form = pnginfo, form

    def layout(self) -> gr.Tab:
        """Drop any image to read its generation parameters."""
        with gr.Tab("PNG Info", id="pnginfo", elem_id="pnginfo-tab") as tab:
            self.found = gr.State({})
            with gr.Row():
                with gr.Column(scale=2):
                    # gr.File, not gr.Image: the handler needs the bytes as dropped (gr.Image re-encodes them).
                    self.image = gr.File(label="Image", file_types=["image"], type="filepath",
                                         elem_id="pnginfo-image")
                    # Display only: shown from the uploaded file as it is (an output path is not re-encoded).
                    self.preview = gr.Image(label="Preview", type="filepath", interactive=False, height=320,
                                            buttons=["fullscreen"], elem_id="pnginfo-preview")
                with gr.Column(scale=3):
                    self.message = gr.Markdown(EMPTY, elem_id="pnginfo-message")
                    self.text = gr.Textbox(label="Parameters", lines=8, interactive=False, buttons=["copy"],
                                           elem_id="pnginfo-text")
                    self.use = gr.Button("Use these settings", variant="primary", elem_id="pnginfo-use-button")
        return tab

    def wire(self) -> None:
        """Connect the tab's events."""
        self.image.change(self.inspected, [self.image], [self.message, self.text, self.found, self.preview],
                          **PRIVATE)
        self.targets = ["main_tabs", "mode_tabs", "prompt", "edit_prompt", "compose_prompt", "model", "aspect_ratio",
                        "size", "temperature", "top_p", "top_k", "seed", "thinking", "show_thoughts", "search",
                        "image_search"]
        self.use.click(self.use_clicked, [self.found, self.form["model"]], self.form.components(*self.targets),
                       **PRIVATE)

    def inspected(self, path: str | None) -> dict[Any, Any]:
        """A file was dropped (or cleared): what it says, its parameters, and a preview."""
        message, parameters, found, preview = self.pnginfo.inspect(path)
        return {self.message: message, self.text: parameters, self.found: found, self.preview: preview}

    def use_clicked(self, found: dict[str, Any] | None, current_model: str) -> Any:
        """Use these settings: the image's settings into the Studio's form, or why not (a toast)."""
        with refusals_as_warnings():
            return self.form.updates(self.pnginfo.use(found, current_model))
        return no_change()
