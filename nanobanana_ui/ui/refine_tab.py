"""The Refine tab: a result's conversation (its path as thumbnails, its branches, before/after) and the next turn.

`RefineView` reads a conversation from the history for one visitor (their owner id); `RefineTab` lays it out and
wires it. Refining goes through the Runner (the same checks, limits and key as the /refine endpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import gradio as gr

from ..errors import StudioError
from ..history import HistoryEntry
from ..studio import Studio
from .runner import Runner

__all__ = ["ESTIMATE_NOTE", "RefineTab", "RefineView", "Turns"]

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
ESTIMATE_NOTE = ("Each refinement sends the whole path again: input tokens (and the cost of a turn) grow with "
                 "every turn.")


class Turns(NamedTuple):
    """What the tab shows for a selected entry."""

    selected: str  # the selected entry's id
    image: str | None  # its first image file
    path: list[tuple[str, str]]  # (image file, "turn N: instruction"), root first
    branches: str  # markdown: the selected turn's children
    before_after: tuple[str, str] | None  # (parent's image, selected image) for the slider; None for a root
    summary: str  # turn count, the path's cost, the estimate note
    parent: str | None


def _first_image(entry: HistoryEntry) -> str | None:
    return str(entry.images[0].path) if entry.images else None


class RefineView:
    """Conversations from the history, as one visitor may see them (`owner_of` their request)."""

    def __init__(self, studio: Studio, owner_of: Callable[[gr.Request | None], str | None]) -> None:
        self.studio = studio
        self.owner_of = owner_of

    def turns(self, entry_id: str, request: gr.Request | None = None) -> Turns:
        """The selected entry's path, branches and before/after; gr.Error for an unknown (or another's) id."""
        owner = self.owner_of(request)
        try:
            path = self.studio.conversation_path((entry_id or "").strip(), owner=owner)
            children = self.studio.branches(path[-1].id, owner=owner)
        except StudioError as error:
            raise gr.Error(error.message, print_exception=False) from None
        entry = path[-1]
        shown = [(image, f"turn {e.turn}: {e.prompt}") for e in path if (image := _first_image(e))]
        branches = "\n".join(f"- `{c.id}` turn {c.turn}: {c.prompt}" for c in children) or "No branches yet."
        before = _first_image(path[-2]) if len(path) > 1 else None
        after = _first_image(entry)
        cost = sum(e.cost_usd or 0.0 for e in path)
        summary = f"Turn {entry.turn} of this path · the path cost ${cost:.4f}. {ESTIMATE_NOTE}"
        return Turns(entry.id, after, shown, branches, (before, after) if before and after else None, summary,
                     entry.parent)


class RefineTab:
    """The Refine tab's layout and events."""

    def __init__(self, view: RefineView, runner: Runner) -> None:
        self.view = view
        self.runner = runner

    def layout(self) -> None:
        """Lay the tab out (inside gr.Tabs)."""
        with gr.Tab("Refine", id="refine"):
            with gr.Row():
                self.entry_id = gr.Textbox(label="Result id", placeholder="an id from History or --json", scale=3)
                self.load = gr.Button("Open", scale=1)
            with gr.Row():
                self.current = gr.Image(label="Current image", type="filepath", interactive=False, height=480)
                self.slider = gr.ImageSlider(label="Before / after (parent · this turn)", type="filepath")
            self.instruction = gr.Textbox(label="Instruction", placeholder="make it night", lines=2)
            with gr.Row():
                self.refine = gr.Button("Refine", variant="primary")
                self.undo = gr.Button("Undo (select the parent)")
            self.summary = gr.Markdown(ESTIMATE_NOTE)
            self.path = gr.Gallery(label="Path (root first)", columns=6, height=180)
            self.branches = gr.Markdown()
            self.status = gr.Markdown()
            self.parent = gr.State(None)

    def _show(self, entry_id: str, request: gr.Request) -> tuple[Any, ...]:
        turns = self.view.turns(entry_id, request)
        return (turns.selected, turns.image, turns.before_after, turns.path, turns.branches, turns.summary,
                turns.parent)

    def _undo(self, parent: str | None, request: gr.Request) -> tuple[Any, ...]:
        if not parent:
            raise gr.Error("This is the root of its conversation: there is no earlier turn.", print_exception=False)
        return self._show(parent, request)

    async def _refine(self, entry_id: str, instruction: str, api_key: str, request: gr.Request) -> tuple[Any, ...]:
        outputs = await self.runner.refine(entry_id, instruction, api_key=api_key, request=request)
        new_id = outputs.status.split(" · id ", 1)[1].split("\n", 1)[0].split(",")[0].strip()
        return (*self._show(new_id, request), outputs.status)

    def wire(self, api_key: gr.Textbox) -> None:
        """Connect the tab's events (all private: /refine is the public one)."""
        shown = [self.entry_id, self.current, self.slider, self.path, self.branches, self.summary, self.parent]
        self.load.click(self._show, [self.entry_id], shown, **PRIVATE)
        self.entry_id.submit(self._show, [self.entry_id], shown, **PRIVATE)
        self.undo.click(self._undo, [self.parent], shown, **PRIVATE)
        self.refine.click(self._refine, [self.entry_id, self.instruction, api_key], [*shown, self.status],
                          **PRIVATE)
