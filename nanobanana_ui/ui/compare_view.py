"""The result's side-by-side view: two images of a run with several, each at half the page's width, picked freely.

The result gallery fits every image of a run into one box, which makes four variations small; this view, under the
Studio's form and result, shows the two picked at full column width (each with its full-screen button), so details
can be compared. It appears only when the last run made two images or more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
from gradio.components import Component

from .session import Session

__all__ = ["CompareView", "compare_choices"]


def compare_choices(files: Sequence[str]) -> list[tuple[str, str]]:
    """(label, value) pairs for a picker: "Image 1", "Image 2" ... in the result gallery's order."""
    return [(f"Image {number}", str(number - 1)) for number in range(1, len(files) + 1)]


class CompareView:
    """Two pickers and two full-width images, filled from the visitor's last run (`shown`)."""

    def layout(self) -> None:
        """Lay out the (hidden until needed) view; call inside the Studio tab, below its form and result."""
        with gr.Accordion("Compare results side by side", open=True, visible=False, elem_id="compare") as self.box:
            with gr.Row(equal_height=False):
                self.picks: list[gr.Dropdown] = []
                self.images: list[gr.Image] = []
                for side in ("left", "right"):
                    with gr.Column(min_width=320):
                        self.picks.append(gr.Dropdown([], label=side.capitalize(), elem_id=f"compare-{side}-pick"))
                        self.images.append(gr.Image(type="filepath", format="png", interactive=False,
                                                    show_label=False, buttons=["download", "fullscreen"],
                                                    elem_id=f"compare-{side}"))

    @property
    def outputs(self) -> list[Component]:
        """What a run changes here."""
        return [self.box, *self.picks, *self.images]

    def shown(self, session: Session) -> dict[Component, Any]:
        """The view for the last run: its first two images side by side, or hidden when it made fewer than two."""
        files = list(session.shown)
        if len(files) < 2:
            return {self.box: gr.Accordion(visible=False), **{pick: gr.update(choices=[], value=None)
                                                              for pick in self.picks},
                    **dict.fromkeys(self.images)}
        choices = compare_choices(files)
        return {self.box: gr.Accordion(visible=True),
                **{pick: gr.update(choices=choices, value=str(index)) for index, pick in enumerate(self.picks)},
                **{image: files[index] for index, image in enumerate(self.images)}}

    def wire(self, session: gr.State) -> None:
        """A picker's choice shows that image on its side."""
        for pick, image in zip(self.picks, self.images, strict=True):
            pick.input(self.picked, [session, pick], [image], api_visibility="private")

    @staticmethod
    def picked(session: Session | None, value: str | None) -> Any:
        """The file of the picked image of the last run (nothing changes when it is gone)."""
        files = list(session.shown) if session is not None else []
        try:
            return files[int(value or "")]
        except (ValueError, IndexError):
            return gr.skip()
