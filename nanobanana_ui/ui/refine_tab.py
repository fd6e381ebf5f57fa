"""The Refine tab: a result's conversation (its path as thumbnails, its branches, before/after) and the next turn.

`RefineTab` lays it out and wires it, reading conversations through a `RefineView` (refine_view.py). Refining goes
through the Runner (the same checks, limits and key as the /refine endpoint). The tab remembers where the visitor is
in a `Place`: the line of turns shown as the path strip (root to its tip) and the turn selected on it; Undo selects
the parent and keeps the line, so a later turn is one click away again. Every handler returns a dict keyed by
component; a refusal is a warning toast.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import gradio as gr
from gradio.components import Component

from ..storage.history import HistoryEntry
from . import actions
from .actions import StudioForm, no_change, refusals_as_warnings, refuse
from .history_library import Browse
from .refine_view import (
    ESTIMATE_NOTE,
    NOTHING_OPEN,
    Place,
    RefineView,
    branch_note,
    caption,
    first_image,
    refine_label,
)
from .runner import Runner
from .session import Session
from .style import SCROLL_TO_SELECTED_TURN

__all__ = ["RefineTab"]

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
NOTHING_TO_DOWNLOAD = "Nothing to download yet: open a result first, then Download original gives its file."
ROOT_ALREADY = "This is the root of its conversation: there is no earlier turn."


class RefineTab:
    """The Refine tab's layout and events."""

    def __init__(self, view: RefineView, runner: Runner, form: StudioForm | None = None) -> None:
        self.view = view
        self.runner = runner
        self.form = form  # the Studio tab's form, for Send to Edit and Add to Compose

    def layout(self) -> None:
        """Lay the tab out (inside gr.Tabs)."""
        with gr.Tab("Refine", id="refine", elem_id="refine-tab"):
            with gr.Row():
                self.entry_id = gr.Textbox(label="Result id", placeholder="an id from History or --json", scale=3,
                                           max_lines=1, elem_id="refine-id")
                self.load = gr.Button("Open", scale=1, elem_id="refine-open")
            self.summary = gr.Markdown(NOTHING_OPEN, elem_id="refine-summary")
            with gr.Row():
                with gr.Column(scale=1):
                    self.current = gr.Image(label="Selected turn", type="filepath", interactive=False, height=440,
                                            buttons=["fullscreen"], elem_id="refine-current")
                with gr.Column(scale=1):
                    self.slider = gr.ImageSlider(label="Before / after", type="filepath", interactive=False,
                                                 max_height=440, elem_id="refine-slider")
                    with gr.Row():
                        self.compare_a = gr.Dropdown([], label="Before", elem_id="refine-compare-a")
                        self.compare_b = gr.Dropdown([], label="After", elem_id="refine-compare-b")
            self.path = gr.Gallery(label="Path, root first (click a turn to select it)", columns=6, height=230,
                                   fit_columns=False, allow_preview=False, object_fit="contain", interactive=False,
                                   elem_id="refine-path")
            self.instruction = gr.Textbox(label="Instruction", placeholder="make it night", lines=2,
                                          elem_id="refine-instruction")
            self.branch_note = gr.Markdown("", elem_id="refine-branch-note")
            self.estimate = gr.Markdown(ESTIMATE_NOTE, elem_id="refine-estimate")
            with gr.Row():
                self.refine = gr.Button("Refine", variant="primary", elem_id="refine-button")
                self.undo = gr.Button("Undo (select the parent)", elem_id="refine-undo")
            self.status = gr.Markdown(elem_id="refine-status")
            with gr.Row():
                self.to_edit = gr.Button("Send to Edit", size="sm", elem_id="refine-to-edit")
                self.to_compose = gr.Button("Add to Compose", size="sm", elem_id="refine-to-compose")
                self.download = gr.DownloadButton("Download original", size="sm", elem_id="refine-download")
            self.branches = gr.Gallery(label="Branches of the selected turn (click one to follow it)", columns=6,
                                       height=230, fit_columns=False, allow_preview=False, object_fit="contain",
                                       interactive=False, elem_id="refine-branches")
            self.place = gr.State(Place())

    @property
    def views(self) -> list[Component]:
        """Everything selecting a turn changes."""
        return [self.entry_id, self.summary, self.current, self.slider, self.compare_a, self.compare_b, self.path,
                self.branch_note, self.estimate, self.refine, self.download, self.branches, self.place]

    # -- showing a turn --------------------------------------------------------------------------------------

    async def show(self, entry_id: str, instruction: str, request: gr.Request | None,
                   place: Place | None = None) -> dict[Component, Any]:
        """The views for a selected turn (refused, gr.Error, when the id is not the visitor's)."""
        turns = await asyncio.to_thread(self.view.turns, entry_id, request, line=place.line if place else ())
        estimate = await self.view.estimate(turns.entry.id, instruction, request)
        choices = [(caption(e), e.id) for e in turns.strip]
        parent = turns.parent
        branches = turns.branches
        place = Place(tuple(e.id for e in turns.line), turns.entry.id, tuple(e.id for e in turns.strip),
                      tuple(c.id for c in branches))
        return {
            self.entry_id: turns.entry.id, self.summary: turns.summary, self.current: turns.image,
            self.slider: turns.before_after,
            self.compare_a: gr.update(choices=choices, value=parent.id if parent else None),
            self.compare_b: gr.update(choices=choices, value=turns.entry.id),
            self.path: gr.update(value=turns.path, selected_index=turns.strip_position),
            self.branch_note: branch_note(turns), self.estimate: estimate, self.refine: refine_label(turns),
            self.download: first_image(turns.entry),
            self.branches: [(first_image(c), caption(c)) for c in branches] or None,
            self.place: place,
        }

    async def opened(self, entry_id: str, instruction: str, request: gr.Request) -> Any:
        """Open clicked (or Enter in the id box): that turn, on the path to it."""
        with refusals_as_warnings():
            return await self.show(entry_id, instruction, request)
        return no_change()

    async def path_selected(self, place: Place, instruction: str, evt: gr.SelectData, request: gr.Request) -> Any:
        """A path thumbnail clicked: select that turn, keeping the line."""
        with refusals_as_warnings():
            picked = place.at(evt.index, place.strip)
            if picked is None:
                raise refuse(NOTHING_OPEN)
            return await self.show(picked, instruction, request, place)
        return no_change()

    async def branch_selected(self, place: Place, instruction: str, evt: gr.SelectData,
                              request: gr.Request) -> Any:
        """A branch thumbnail clicked: follow that branch (it becomes the line's tip)."""
        with refusals_as_warnings():
            picked = place.at(evt.index, place.branches)
            if picked is None:
                raise refuse(NOTHING_OPEN)
            return await self.show(picked, instruction, request)
        return no_change()

    def download_clicked(self, place: Place | None) -> Any:
        """Download original with no turn open: say what to do (with one open, the browser downloads the file)."""
        if place is None or place.selected is None:
            gr.Warning(NOTHING_TO_DOWNLOAD)
        return no_change()

    async def undone(self, place: Place, instruction: str, request: gr.Request) -> Any:
        """Undo: select the parent of the selected turn (the later turns stay on the strip, one click away)."""
        with refusals_as_warnings():
            if place.selected is None:
                raise refuse(NOTHING_OPEN)
            index = place.line.index(place.selected)
            if index == 0:
                raise refuse(ROOT_ALREADY)
            return await self.show(place.line[index - 1], instruction, request, place)
        return no_change()

    async def compared(self, before: str | None, after: str | None, request: gr.Request) -> Any:
        """The slider for any two turns picked."""
        with refusals_as_warnings():
            images = (await asyncio.to_thread(self.view.image_of, before, request),
                      await asyncio.to_thread(self.view.image_of, after, request))
            return {self.slider: images if all(images) else None}
        return no_change()

    async def estimated(self, place: Place, instruction: str, request: gr.Request) -> Any:
        """The estimate again, for the instruction as typed."""
        if place.selected is None:
            return no_change()
        return {self.estimate: await self.view.estimate(place.selected, instruction, request)}

    # -- actions ---------------------------------------------------------------------------------------------

    async def refined(self, place: Place, instruction: str, api_key: str, request: gr.Request,
                      progress: gr.Progress = gr.Progress()) -> Any:  # noqa: B008 (how Gradio asks for it)
        """Refine (or Branch from here): the selected turn's path and the instruction; the new turn is selected."""
        with refusals_as_warnings():
            if place.selected is None:
                raise refuse(NOTHING_OPEN)
            outputs = await self.runner.refine(place.selected, instruction, api_key=api_key, request=request,
                                               progress=progress)
            new_id = outputs.session.last_ids[0]  # the first branch made; count is 1 on the page
            return {**await self.show(new_id, "", request), self.status: outputs.status, self.instruction: ""}
        return no_change()

    def _selected(self, place: Place, request: gr.Request | None) -> HistoryEntry:
        if place.selected is None:
            raise refuse(actions.NOTHING_PICKED)
        return self.view.turns(place.selected, request).entry

    def sent_to_edit(self, place: Place, request: gr.Request) -> Any:
        """Send to Edit: the selected turn's image into the Studio's Edit tab."""
        with refusals_as_warnings():
            assert self.form is not None
            return self.form.updates(actions.send_to_edit(self._selected(place, request)))
        return no_change()

    def added_to_compose(self, place: Place, compose_images: Sequence[Any] | None, model: str,
                         request: gr.Request) -> Any:
        """Add to Compose: the selected turn's image appended to the Studio's Compose tab."""
        with refusals_as_warnings():
            assert self.form is not None
            return self.form.updates(actions.add_to_compose(self._selected(place, request), compose_images, model,
                                                            self.runner.studio.settings.model))
        return no_change()

    async def from_studio(self, session: Session | None, instruction: str, request: gr.Request) -> Any:
        """The Studio result's Refine button: open the picked result here and show this tab."""
        with refusals_as_warnings():
            entry_id = session.shown_id if session is not None else None
            if entry_id is None:
                raise refuse(actions.NOTHING_PICKED)
            views = await self.show(entry_id, instruction, request)
            assert self.form is not None
            return {**views, self.form["main_tabs"]: gr.Tabs(selected="refine")}
        return no_change()

    async def from_history(self, browse: Browse | None, instruction: str, request: gr.Request) -> Any:
        """The History tab's Refine button: open the opened entry here and show this tab."""
        with refusals_as_warnings():
            if browse is None or browse.selected is None:
                raise refuse("Open an entry first: click its thumbnail.")
            views = await self.show(browse.selected, instruction, request)
            assert self.form is not None
            return {**views, self.form["main_tabs"]: gr.Tabs(selected="refine")}
        return no_change()

    def wire(self, api_key: gr.Textbox, *, opener: gr.Button | None = None, session: gr.State | None = None,
             history: tuple[gr.Button, gr.State] | None = None) -> None:
        """Connect the tab's events (all private: /refine is the public one); `opener` (the Studio result's Refine
        button) opens the picked result of `session` here, `history` (the History tab's Refine button and its
        browse state) the opened entry."""
        views = self.views
        shown = [self.load.click(self.opened, [self.entry_id, self.instruction], views, **PRIVATE),
                 self.entry_id.submit(self.opened, [self.entry_id, self.instruction], views, **PRIVATE),
                 self.path.select(self.path_selected, [self.place, self.instruction], views, **PRIVATE),
                 self.branches.select(self.branch_selected, [self.place, self.instruction], views, **PRIVATE),
                 self.undo.click(self.undone, [self.place, self.instruction], views, **PRIVATE)]
        self.download.click(self.download_clicked, [self.place], None, **PRIVATE)
        for dropdown in (self.compare_a, self.compare_b):
            dropdown.input(self.compared, [self.compare_a, self.compare_b], [self.slider], **PRIVATE)
        self.instruction.blur(self.estimated, [self.place, self.instruction], [self.estimate], **PRIVATE)
        runs = {**self.runner.events,
                "show_progress_on": [self.current, self.status], **PRIVATE}
        shown.append(self.refine.click(self.refined, [self.place, self.instruction, api_key],
                                       [*views, self.status, self.instruction], **runs))
        if self.form is not None:
            self.to_edit.click(self.sent_to_edit, [self.place],
                               self.form.components("edit_image", "main_tabs", "mode_tabs"), **PRIVATE)
            self.to_compose.click(self.added_to_compose, [self.place, self.form["compose_images"],
                                                          self.form["model"]],
                                  self.form.components("compose_images", "compose_limit", "main_tabs", "mode_tabs"),
                                  **PRIVATE)
            if opener is not None and session is not None:
                shown.append(opener.click(self.from_studio, [session, self.instruction],
                                          [*views, self.form["main_tabs"]], **PRIVATE))
            if history is not None:
                button, browse = history
                shown.append(button.click(self.from_history, [browse, self.instruction],
                                          [*views, self.form["main_tabs"]], **PRIVATE))
        for event in shown:  # the selected turn, brought into the path strip's view (see style.py)
            event.then(None, js=SCROLL_TO_SELECTED_TURN, **PRIVATE)
