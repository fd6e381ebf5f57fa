"""The History tab: every request ever made on this data directory, from the persistent HistoryStore.

Layout, wiring and handlers are here (HistoryTab); the page data and re-runs in Library (history_library.py).
Send to Edit and Add to Compose are the shared actions (actions.py); Re-run and New variation go through the Runner.


Pages of PAGE_SIZE entries, newest first, with small cached thumbnails (so a first page costs the same with twenty or
thousands of entries); search by prompt, filters by model and mode; an opened entry can be re-run (the same request:
a cache hit), varied (the next variation number the cache does not hold), sent to Edit or Compose, downloaded,
deleted (a second click confirms) or exported with the rest of its page as a ZIP.

A re-run repeats the request exactly: a region edit with the original and mask the history keeps (same crop, feather,
extend ratio and anchor), a refinement as a new branch of the same parent (a region edit's refinement blended into
its original again); when a kept file is gone, it says so and nothing is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import gradio as gr

from ..domain.models import known_models
from ..domain.request import Mode
from ..service.studio import Studio
from ..storage.history import HistoryEntry
from . import actions
from .actions import StudioForm, no_change, refusals_as_warnings
from .history_library import NO_SELECTION, PAGE_SIZE, REFINE, Browse, Library, details, original, page_info
from .runner import Runner
from .runner_base import studio_errors
from .session import Session, image_options
from .studio_tab import StudioTab

__all__ = ["HistoryTab"]

PRIVATE: dict[str, Any] = {"api_visibility": "private"}


class HistoryTab:
    """The History tab's components and events; generation goes through the Runner, into the Studio tab."""

    def __init__(self, library: Library, runner: Runner, studio_tab: StudioTab) -> None:
        self.library, self.runner, self.studio_tab = library, runner, studio_tab
        self.form: StudioForm = studio_tab.form
        self.owner_of = library.owner_of

    # -- layout ----------------------------------------------------------------------------------------------

    def layout(self) -> gr.Tab:
        """Everything made on this data directory: a page of thumbnails, filters, and the opened entry's actions."""
        with gr.Tab("History", id="history", elem_id="history-tab") as self.tab:
            self.browse = gr.State(Browse())
            with gr.Row():
                self.search = gr.Textbox(label="Search prompts", placeholder="fox watercolour", scale=3,
                                         elem_id="history-search")
                self.model = gr.Dropdown([("All models", ""), *((spec.label, spec.id) for spec in known_models())],
                                         value="", label="Model", allow_custom_value=True, scale=2,
                                         elem_id="history-model")
                self.mode = gr.Dropdown([("All modes", ""), *((m.value.capitalize(), m.value) for m in Mode),
                                         ("Refine", REFINE)],
                                        value="", label="Mode", scale=1, elem_id="history-mode")
            with gr.Row():
                with gr.Column(scale=3):
                    self.gallery = gr.Gallery(label=f"Newest first, {PAGE_SIZE} per page", columns=6, height=520,
                                              fit_columns=False, object_fit="contain", allow_preview=False,
                                              interactive=False, elem_id="history-page-gallery")
                    with gr.Row():
                        self.previous = gr.Button("◀ Newer", size="sm", elem_id="history-prev")
                        self.info = gr.Markdown(elem_id="history-page-info")
                        self.following = gr.Button("Older ▶", size="sm", elem_id="history-next")
                    with gr.Row():
                        self.export = gr.Button("Export this page (ZIP)", size="sm", elem_id="history-export")
                        self.export_file = gr.File(label="Export", interactive=False, visible=False,  # until one
                                                   elem_id="history-export-file")
                with gr.Column(scale=2):
                    self.details = gr.Markdown(NO_SELECTION, elem_id="history-item-details")
                    with gr.Row():
                        self.rerun_button = gr.Button("Re-run", elem_id="history-rerun")
                        self.variation_button = gr.Button("New variation", elem_id="history-variation")
                    with gr.Row():
                        self.to_edit = gr.Button("Send to Edit", elem_id="history-send-to-edit")
                        self.to_compose = gr.Button("Add to Compose", elem_id="history-add-to-compose")
                        # Opens the entry in the Refine tab (wired there: refine_tab.RefineTab.wire).
                        self.to_refine = gr.Button("Refine", elem_id="history-refine")
                        # Adds the entry's image to the Kits tab's images to add (wired there: kits_tab.KitsTab.wire).
                        self.to_kit = gr.Button("Add to kit", elem_id="history-add-to-kit")
                    with gr.Row():
                        self.download = gr.DownloadButton("Download original", elem_id="history-download")
                        self.delete = gr.Button("Delete", elem_id="history-delete")
        return self.tab

    @property
    def views(self) -> list[Any]:
        """What showing a page changes."""
        return [self.gallery, self.info, *self.entry_views]

    @property
    def entry_views(self) -> list[Any]:
        """What opening an entry changes: details, its action buttons, the browse state."""
        return [self.details, self.to_edit, self.to_compose, self.download, self.delete, self.browse]

    # -- wiring ----------------------------------------------------------------------------------------------

    def wire(self) -> None:
        """Connect the tab's events."""
        self.tab.select(self.refresh, [self.browse], self.views, **PRIVATE)
        for trigger in (self.search.submit, self.model.change, self.mode.change):
            trigger(self.filter, [self.browse, self.search, self.model, self.mode], self.views, **PRIVATE)
        self.previous.click(self.newer, [self.browse], self.views, **PRIVATE)
        self.following.click(self.older, [self.browse], self.views, **PRIVATE)
        self.gallery.select(self.select, [self.browse], self.entry_views, **PRIVATE)
        self.delete.click(self.delete_clicked, [self.browse], self.views, **PRIVATE)
        self.export.click(self.export_clicked, [self.browse], [self.export_file], **PRIVATE)
        self.to_edit.click(self.send_to_edit, [self.browse],
                           self.form.components("edit_image", "main_tabs", "mode_tabs"), **PRIVATE)
        self.to_compose.click(self.add_to_compose, [self.browse, self.form["compose_images"], self.form["model"]],
                              self.form.components("compose_images", "compose_limit", "main_tabs", "mode_tabs"),
                              **PRIVATE)
        studio = self.studio_tab
        runs = {**self.runner.events,
                "show_progress_on": [studio.out_gallery, studio.status], **PRIVATE}
        for button, handler in ((self.rerun_button, self.rerun_clicked),
                                (self.variation_button, self.variation_clicked)):
            button.click(handler, [self.browse, studio.session, studio.api_key],
                         [*studio.run_outputs, self.form["main_tabs"]], **runs).then(
                self.runner.meter, None, studio.meter, **PRIVATE)

    # -- pages -----------------------------------------------------------------------------------------------

    def show(self, browse: Browse, request: gr.Request | None, note: str | None = None) -> dict[Any, Any]:
        """The page the browse state says, with the opened entry (if it is still there)."""
        data = self.library.page_data(browse.search, browse.model, browse.mode, browse.page, self.owner_of(request))
        browse.page, browse.ids, browse.armed = data.page, data.ids, None
        if browse.selected not in data.ids:
            browse.selected = None
        entry = self.library.entry(browse, request) if browse.selected else None
        return {self.gallery: data.items, self.info: data.info, **self.opened(entry, browse, note)}

    def opened(self, entry: HistoryEntry | None, browse: Browse, note: str | None = None) -> dict[Any, Any]:
        """The opened entry's details and actions: a failed one has no image to send or download."""
        has_image = original(entry) is not None
        return {self.details: details(entry) if entry else (note or NO_SELECTION),
                self.to_edit: gr.update(visible=entry is None or has_image),
                self.to_compose: gr.update(visible=entry is None or has_image),
                self.download: gr.update(value=original(entry), visible=entry is None or has_image),
                self.delete: _delete_button(False), self.browse: browse}

    def filter(self, browse: Browse, search: str, model: str, mode: str,
               request: gr.Request | None = None) -> dict[Any, Any]:
        """New filters: back to the first page."""
        browse.search, browse.model, browse.mode, browse.page = search or "", model or "", mode or "", 0
        return self.show(browse, request)

    def refresh(self, browse: Browse, request: gr.Request | None = None) -> dict[Any, Any]:
        """The same page again (the tab was opened: new entries may have arrived)."""
        return self.show(browse, request)

    def newer(self, browse: Browse, request: gr.Request | None = None) -> dict[Any, Any]:
        """The page before (newer entries); at the first page (or on an empty history) a toast says why not."""
        if browse.page <= 0:
            gr.Warning(self._edge_note(browse, request, "This is the first page: nothing is newer."))
        browse.page = max(browse.page - 1, 0)
        return self.show(browse, request)

    def older(self, browse: Browse, request: gr.Request | None = None) -> dict[Any, Any]:
        """The page after (older entries); at the last page (or on an empty history) a toast says why not."""
        before = browse.page
        browse.page += 1
        shown = self.show(browse, request)  # clamps the page to the last one
        if browse.page == before:
            gr.Warning(self._edge_note(browse, request, "This is the last page: nothing is older."))
        return shown

    def _edge_note(self, browse: Browse, request: gr.Request | None, at_edge: str) -> str:
        data = self.library.page_data(browse.search, browse.model, browse.mode, 0, self.owner_of(request))
        return at_edge if data.total else page_info(0, 1, 0, bool(browse.search or browse.model or browse.mode))

    def select(self, browse: Browse, evt: gr.SelectData, request: gr.Request | None = None) -> dict[Any, Any]:
        """Open the entry the visitor clicked: details and the original file to download."""
        index = evt.index if isinstance(evt.index, int) else -1
        browse.selected = browse.ids[index] if 0 <= index < len(browse.ids) else None
        browse.armed = None
        return self.opened(self.library.entry(browse, request) if browse.selected else None, browse)

    # -- actions on the opened entry -------------------------------------------------------------------------

    def delete_clicked(self, browse: Browse, request: gr.Request | None = None) -> Any:
        """First click: ask to confirm. Second click on the same entry: delete it and its files."""
        with refusals_as_warnings():
            entry = self.library.selected(browse, request)
            if browse.armed != entry.id:
                browse.armed = entry.id
                files = len(entry.images)
                warning = (f"**Click Delete again to delete this entry** and its {files} image file"
                           f"{'s' if files != 1 else ''} for good (files other entries share are kept).\n\n")
                return {self.details: warning + details(entry), self.delete: _delete_button(True),
                        self.browse: browse}
            self.library.store.delete(entry.id, owner=self.owner_of(request))
            browse.selected = None
            return self.show(browse, request, note=f"Deleted the {entry.mode} of {entry.created:%Y-%m-%d %H:%M}.")
        return no_change()

    def export_clicked(self, browse: Browse, request: gr.Request | None = None) -> Any:
        """A ZIP of this page's entries, offered for download."""
        with refusals_as_warnings():
            return gr.update(value=self.library.export(browse, request), visible=True)
        return no_change()

    def send_to_edit(self, browse: Browse, request: gr.Request | None = None) -> Any:
        """Put the opened entry's image into the Edit tab and show it."""
        with refusals_as_warnings():
            return self.form.updates(actions.send_to_edit(self.library.selected(browse, request)))
        return no_change()

    def add_to_compose(self, browse: Browse, compose_images: Sequence[Any] | None, model: str,
                       request: gr.Request | None = None) -> Any:
        """Append the opened entry's image to the Compose tab (within the model's input limit) and show it."""
        with refusals_as_warnings():
            return self.form.updates(actions.add_to_compose(self.library.selected(browse, request), compose_images,
                                                            model, self.library.studio.settings.model))
        return no_change()

    async def rerun_clicked(self, browse: Browse, session: Session | None, api_key: str = "",
                            request: gr.Request | None = None,
                            progress: gr.Progress = gr.Progress()) -> Any:  # noqa: B008
        """Re-run: the very same request again, answered by the cache when it still holds it; or why not."""
        with refusals_as_warnings():
            return await self.rerun(browse, session, api_key, request, progress, vary=False)
        return no_change()

    async def variation_clicked(self, browse: Browse, session: Session | None, api_key: str = "",
                                request: gr.Request | None = None,
                                progress: gr.Progress = gr.Progress()) -> Any:  # noqa: B008
        """New variation: the same request under the next variation number the cache does not hold; or why not."""
        with refusals_as_warnings():
            return await self.rerun(browse, session, api_key, request, progress, vary=True)
        return no_change()

    async def rerun(self, browse: Browse, session: Session | None, api_key: str, request: gr.Request | None,
                    progress: gr.Progress, *, vary: bool) -> dict[Any, Any]:
        """The opened entry's request again (`vary`: under a new variation number), shown in the Studio tab;
        refused (gr.Error) when it cannot be repeated."""
        studio = self.runner.studio_for(api_key, request)
        entry = self.library.selected(browse, request)
        if entry.parent is not None:  # a refinement: the same turn again, a new branch of the same parent
            return await self._rerun_refinement(entry, studio, session, request, progress, vary=vary)
        image_request, inputs = await asyncio.to_thread(self.library.rebuild, entry, session)
        if vary:
            number = await asyncio.to_thread(self.library.next_variation, image_request, studio)
            image_request = image_request.with_variation(number)
        outputs = await self.runner.run(image_request, inputs, 1, session or Session(), progress,
                                        owner=self.owner_of(request), studio=studio, visitor=request)
        return {**self.studio_tab.shown(outputs), self.form["main_tabs"]: gr.Tabs(selected="studio")}

    async def _rerun_refinement(self, entry: HistoryEntry, studio: Studio, session: Session | None,
                                request: gr.Request | None, progress: gr.Progress, *, vary: bool) -> dict[Any, Any]:
        """A refinement's turn sent again after its whole path (a region edit's stays in its region: blended into
        its original); `vary`: under the next variation number the cache does not hold."""
        owner = self.owner_of(request)
        with studio_errors(self.runner.public):
            plan = await studio.prepare_refine(parent_id=entry.parent or "", instruction=entry.prompt,
                                               images=[file.path for file in entry.inputs], model=entry.model,
                                               options=image_options(entry.options), owner=owner,
                                               kit=studio.entry_kit(entry))
        if vary:
            number = await asyncio.to_thread(self.library.next_variation, plan.request, studio)
            plan = replace(plan, request=plan.request.with_variation(number))
        outputs = await self.runner.run_refinement(plan, session or Session(), progress, owner=owner, studio=studio,
                                                   visitor=request)
        return {**self.studio_tab.shown(outputs), self.form["main_tabs"]: gr.Tabs(selected="studio")}


def _delete_button(armed: bool) -> dict[str, Any]:
    return gr.update(value="Confirm delete" if armed else "Delete", variant="stop" if armed else "secondary")
