"""Transparent results on the page: the Studio tab's "Transparent background" controls, and a checkerboard backdrop.

`TransparentControls` lays out the checkbox, the method (difference matting: 2 calls; chroma key: 1 call) and the
backdrop toggle. The result gallery shows every image over a checkerboard (an opaque result covers it; a transparent
one shows it through), light or dark as the toggle says: CSS on the result component, switched by a class in the
browser (no server round trip). The gallery is `format="png"`, so the RGBA file is what is shown and downloaded.
"""

from __future__ import annotations

import gradio as gr
from gradio.components import Component

__all__ = ["BACKDROP_CSS", "DIFFERENCE", "KEY", "TransparentControls", "transparent_value"]

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
        gr.HTML(BACKDROP_CSS, elem_id="transparent-style", padding=False)

    @property
    def inputs(self) -> list[Component]:
        """The components `transparent_value` reads, to append to a run's inputs."""
        return [self.enabled, self.method]

    def wire(self) -> None:
        """The backdrop toggle: a class on the result gallery, set in the browser."""
        self.backdrop.change(None, [self.backdrop], None, js=_TOGGLE, api_visibility="private")
