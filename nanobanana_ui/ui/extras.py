"""The Advanced settings that depend on the host: keeping photo metadata, and Vertex AI's output controls.

`ExtraControls` lays them out inside the Studio's Advanced accordion, drawn from `Studio.capabilities` (JPEG output
with a quality and person generation exist only on Vertex AI, so on the Gemini API they are hidden and send
nothing); `PageExtras` carries their values to the Runner, which builds the request with them. The public API's
events do not take them: an API caller's request is built as before (keep_metadata from the setting).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import gradio as gr
from gradio.components import Component

from ..backends.capabilities import BackendCapabilities
from ..domain.request import ImageOptions

__all__ = ["JPEG", "KEEP_METADATA_LABEL", "MODEL_DEFAULT", "PNG", "STORE_LABEL", "ExtraControls", "PageExtras"]

KEEP_METADATA_LABEL = "Keep photo metadata (GPS, camera serials, owner names)"
STORE_LABEL = "Let Google store these requests"
PNG, JPEG = "PNG", "JPEG"
MODEL_DEFAULT = ""  # person generation: not sent (the service's default)
_MIME = {PNG: None, JPEG: "image/jpeg"}  # PNG is the default format: sent as absent


@dataclass(frozen=True)
class PageExtras:
    """The page's extra settings for one run: keep_metadata for the Studio, the Vertex options for ImageOptions."""

    keep_metadata: bool | None = None  # None: the host's setting (NANOBANANA_KEEP_METADATA)
    output_format: str = PNG
    jpeg_quality: int | None = None
    person_generation: str = MODEL_DEFAULT
    store: bool | None = None  # let Google store this request (the Gemini API's `store`); None: the host's setting

    def apply(self, options: ImageOptions) -> ImageOptions:
        """The options with the Vertex output controls set (PNG and the defaults leave them absent)."""
        jpeg = self.output_format == JPEG
        quality = self.jpeg_quality if jpeg and self.jpeg_quality is not None else None
        return replace(options, output_mime_type=_MIME.get(self.output_format, self.output_format),
                       output_quality=int(quality) if quality is not None else None,
                       person_generation=self.person_generation or None)


class ExtraControls:
    """The components (call `layout` inside the Advanced accordion); their values become a `PageExtras`."""

    def __init__(self, capabilities: BackendCapabilities, keep_metadata: bool, store: bool = False) -> None:
        self.capabilities, self.keep_metadata_default, self.store_default = capabilities, keep_metadata, store

    def layout(self) -> None:
        """The keep-metadata checkbox, and the output format, JPEG quality and person generation where offered."""
        caps = self.capabilities
        self.keep_metadata = gr.Checkbox(
            value=self.keep_metadata_default, label=KEEP_METADATA_LABEL, elem_id="keep-metadata",
            info="Edit and Compose: off, these are removed from your photos before they are sent or kept")
        # The Gemini API's `store`: off, requests are sent with store=false (Google does not keep them). Vertex AI
        # has no such field (its project's settings decide), so it is hidden there.
        self.store = gr.Checkbox(
            value=self.store_default, label=STORE_LABEL, elem_id="store-requests",
            visible=self.capabilities.name == "gemini",
            info="Off: your prompts and photos are sent with store=false, so Google does not keep them")
        jpeg_offered = "image/jpeg" in caps.output_mime_types
        # Hidden (and sending their "absent" defaults) where the backend has no such controls.
        with gr.Row(visible=jpeg_offered or bool(caps.person_generation), elem_id="vertex-options"):
            self.output_format = gr.Radio([PNG, JPEG], value=PNG, label="Output format", visible=jpeg_offered,
                                          elem_id="output-format")
            self.jpeg_quality = gr.Slider(0, 100, value=90, step=1, precision=0, label="JPEG quality",
                                          visible=jpeg_offered and caps.output_quality, elem_id="jpeg-quality")
            self.person_generation = gr.Dropdown(
                [("Model default", MODEL_DEFAULT), *((value, value) for value in caps.person_generation)],
                value=MODEL_DEFAULT, label="Person generation", visible=bool(caps.person_generation),
                elem_id="person-generation")

    @property
    def inputs(self) -> list[Component]:
        """The components in `values`' order, to append to an event's inputs."""
        return [self.keep_metadata, self.output_format, self.jpeg_quality, self.person_generation, self.store]

    def values(self, keep_metadata: bool | None, output_format: str | None, jpeg_quality: float | None,
               person_generation: str | None, store: bool | None = None) -> PageExtras:
        """The run's PageExtras from the components' values (the quality only where the backend takes one)."""
        quality = jpeg_quality if self.capabilities.output_quality and jpeg_quality is not None else None
        return PageExtras(keep_metadata=bool(keep_metadata), output_format=output_format or PNG,
                          jpeg_quality=int(quality) if quality is not None else None,
                          person_generation=person_generation or MODEL_DEFAULT,
                          store=None if store is None or self.capabilities.name != "gemini" else bool(store))
