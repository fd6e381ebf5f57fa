"""Transparent results on the page: the Studio tab's "Transparent background" controls, and a checkerboard backdrop.

`TransparentControls` lays out the checkbox, the method (difference matting: 2 calls; chroma key: 1 call) and the
backdrop toggle. The result gallery shows every image over a checkerboard (an opaque result covers it; a transparent
one shows it through), light or dark as the toggle says: CSS on the result component, switched by a class in the
browser (no server round trip). The gallery is `format="png"`, so the RGBA file is what is shown and downloaded.
"""

from __future__ import annotations

import gradio as gr
from gradio.components import Component

from ..domain.errors import StudioError
from ..domain.models import get_model
from ..domain.request import ImageOptions, ImageRequest, Mode
from ..service.transparency import Transparency, estimate_calls

__all__ = ["BACKDROP_CSS", "DIFFERENCE", "KEY", "TransparentControls", "estimate_text", "transparent_value"]

DIFFERENCE = "Difference matting (2 calls)"
KEY = "Chroma key (1 call)"
_CHECKS = ("linear-gradient(45deg, var(--nb-a) 25%, transparent 25%, transparent 75%, var(--nb-a) 75%),"
           "linear-gradient(45deg, var(--nb-a) 25%, var(--nb-b) 25%, var(--nb-b) 75%, var(--nb-a) 75%)")
BACKDROP_CSS = (
    "<style>"
    f"#out-gallery img {{--nb-a: #d0d0d0; --nb-b: #ffffff; background-image: {_CHECKS};"
    " background-size: 16px 16px; background-position: 0 0, 8px 8px;}"
    "#out-gallery.nb-dark img {--nb-a: #2a2a2a; --nb-b: #4a4a4a;}"
    "#transparent-style {display: none;}"
    "</style>"
)
_TOGGLE = """(backdrop) => {
  document.getElementById('out-gallery')?.classList.toggle('nb-dark', backdrop === 'Dark');
  return [];
}"""


def transparent_value(enabled: bool | None, method: str | None) -> str:
    """The Runner's `transparent` value for the checkbox and method: "" (off), "difference" or "key"."""
    if not enabled:
        return ""
    return "key" if method == KEY else "difference"


def estimate_text(enabled: bool | None, method: str | None, model: str, size: str | None) -> str:
    """What one transparent image takes, e.g. "2 calls per image · about $0.1355", or "" when the box is off."""
    if not enabled:
        return ""
    transparency = Transparency("key" if method == KEY else "difference")
    try:
        spec = get_model(model)
        request = ImageRequest(Mode.GENERATE, spec.id, "", options=ImageOptions(size=size or None))
        calls, cost = estimate_calls(request, transparency)
    except (StudioError, KeyError, ValueError):
        return ""
    price = "price unknown" if cost is None else f"about ${cost:.4f}"
    words = "the second reads the first's picture" if calls == 2 else "on a key colour"
    return f"<small>{calls} call{'s' if calls > 1 else ''} per image ({words}) · {price}</small>"


class TransparentControls:
    """The checkbox, the method and the backdrop toggle (call `layout` inside the settings, `wire` once)."""

    def layout(self) -> None:
        """Lay out the controls and the backdrop's style."""
        with gr.Row(elem_id="transparent-controls"):
            self.enabled = gr.Checkbox(False, label="Transparent background", elem_id="transparent",
                                       info="An RGBA PNG: stickers, logos, cut-outs")
            self.method = gr.Radio([DIFFERENCE, KEY], value=DIFFERENCE, label="Method", elem_id="transparent-method",
                                   info="Matting keeps glass and hair; a key works on every model")
            self.backdrop = gr.Radio(["Light", "Dark"], value="Light", label="Backdrop", elem_id="backdrop")
        self.estimate = gr.Markdown("", elem_id="transparent-estimate")
        gr.HTML(BACKDROP_CSS, elem_id="transparent-style", padding=False)

    @property
    def inputs(self) -> list[Component]:
        """The components `transparent_value` reads, to append to a run's inputs."""
        return [self.enabled, self.method]

    def wire(self, model: gr.Dropdown, size: gr.Dropdown) -> None:
        """The backdrop toggle (a class on the result gallery, set in the browser) and the calls-and-cost line."""
        self.backdrop.change(None, [self.backdrop], None, js=_TOGGLE, api_visibility="private")
        for source in (self.enabled, self.method, model, size):
            source.change(estimate_text, [self.enabled, self.method, model, size], self.estimate,
                          api_visibility="private")
