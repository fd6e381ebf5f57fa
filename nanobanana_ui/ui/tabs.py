"""The History and PNG Info tabs: their layout and events, wired to the Studio tab's form (built in layout.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..models import known_models
from ..request import Mode
from .library import PAGE_SIZE, Browse, Library
from .pnginfo import EMPTY, PngInfo

__all__ = ["StudioForm", "history_tab", "pnginfo_tab"]

PRIVATE: dict[str, Any] = {"api_visibility": "private"}


@dataclass
class StudioForm:
    """The Studio tab's components the other tabs fill or read, by field name (see PageEvents.form_values)."""

    fields: dict[str, Any]  # main_tabs, tabs, prompt, edit_prompt, compose_prompt, model, aspect_ratio, ...
    run_outputs: list  # out_gallery, status, session
    session_views: list  # the session panel's components (refreshed after a run)
    meter: Any
    api: dict  # concurrency settings shared by every generation event
    api_key: Any = None  # the visitor's own key (password field): an input of every event that sends a request

    def __getattr__(self, name: str) -> Any:
        try:
            return self.fields[name]
        except KeyError:
            raise AttributeError(name) from None


def history_tab(library: Library, form: StudioForm, show_session, meter_fn) -> gr.Tab:
    """Everything made on this data directory: a page of thumbnails, filters, and the opened entry's actions."""
    with gr.Tab("History", id="history", elem_id="history-tab") as tab:
        browse = gr.State(Browse())
        with gr.Row():
            search = gr.Textbox(label="Search prompts", placeholder="fox watercolour", scale=3,
                                elem_id="history-search")
            model = gr.Dropdown([("All models", ""), *((spec.label, spec.id) for spec in known_models())], value="",
                                label="Model", allow_custom_value=True, scale=2, elem_id="history-model")
            mode = gr.Dropdown([("All modes", ""), *((m.value.capitalize(), m.value) for m in Mode)], value="",
                               label="Mode", scale=1, elem_id="history-mode")
        with gr.Row():
            with gr.Column(scale=3):
                gallery = gr.Gallery(label=f"Newest first, {PAGE_SIZE} per page", columns=6, height=520,
                                     fit_columns=False, object_fit="contain", allow_preview=False,
                                     interactive=False, elem_id="history-page-gallery")
                with gr.Row():
                    previous = gr.Button("◀ Newer", size="sm", elem_id="history-prev")
                    info = gr.Markdown(elem_id="history-page-info")
                    following = gr.Button("Older ▶", size="sm", elem_id="history-next")
                with gr.Row():
                    export = gr.Button("Export this page (ZIP)", size="sm", elem_id="history-export")
                    export_file = gr.File(label="Export", interactive=False, visible=False,  # until there is one
                                          elem_id="history-export-file")
            with gr.Column(scale=2):
                details = gr.Markdown("Click a thumbnail to see everything about that request.",
                                      elem_id="history-item-details")
                with gr.Row():
                    rerun = gr.Button("Re-run", elem_id="history-rerun")
                    variation = gr.Button("New variation", elem_id="history-variation")
                with gr.Row():
                    to_edit = gr.Button("Send to Edit", elem_id="history-send-to-edit")
                    to_compose = gr.Button("Add to Compose", elem_id="history-add-to-compose")
                with gr.Row():
                    download = gr.DownloadButton("Download original", elem_id="history-download")
                    delete = gr.Button("Delete", elem_id="history-delete")

    views = [gallery, info, details, download, delete, browse]
    tab.select(library.refresh, [browse], views, **PRIVATE)
    for trigger in (search.submit, model.change, mode.change):
        trigger(library.search, [browse, search, model, mode], views, **PRIVATE)
    previous.click(library.previous, [browse], views, **PRIVATE)
    following.click(library.next, [browse], views, **PRIVATE)
    gallery.select(library.select, [browse], [details, download, delete, browse], **PRIVATE)
    delete.click(library.delete, [browse], views, **PRIVATE)

    def export_page(state: Browse, request: gr.Request) -> dict:
        return gr.update(value=library.export(state, request), visible=True)

    export.click(export_page, [browse], [export_file], **PRIVATE)
    to_edit.click(library.send_to_edit, [browse], [form.edit_image, form.main_tabs, form.tabs], **PRIVATE)
    to_compose.click(library.add_to_compose, [browse, form.compose_images, form.model],
                     [form.compose_images, form.main_tabs, form.tabs], **PRIVATE)
    session = form.run_outputs[-1]
    for button, fn in ((rerun, library.rerun), (variation, library.variation)):
        run = button.click(fn, [browse, session, form.api_key], [*form.run_outputs, form.main_tabs], **form.api,
                           **PRIVATE)
        run.success(show_session, [session], form.session_views, **PRIVATE)
        run.then(meter_fn, None, form.meter, **PRIVATE)
    return tab


def pnginfo_tab(pnginfo: PngInfo, form: StudioForm) -> gr.Tab:
    """Drop any image to read its generation parameters; "Use these settings" fills the Studio's form."""
    with gr.Tab("PNG Info", id="pnginfo", elem_id="pnginfo-tab") as tab:
        found = gr.State({})
        with gr.Row():
            with gr.Column(scale=2):
                # gr.File, not gr.Image: the handler needs the bytes as dropped (gr.Image re-encodes, losing chunks).
                image = gr.File(label="Image", file_types=["image"], type="filepath", elem_id="pnginfo-image")
                # Display only: shown from the uploaded file as it is (an output path is not re-encoded).
                preview = gr.Image(label="Preview", type="filepath", interactive=False, height=320,
                                   buttons=["fullscreen"], elem_id="pnginfo-preview")
            with gr.Column(scale=3):
                message = gr.Markdown(EMPTY, elem_id="pnginfo-message")
                text = gr.Textbox(label="Parameters", lines=8, interactive=False, buttons=["copy"],
                                  elem_id="pnginfo-text")
                use = gr.Button("Use these settings", variant="primary", elem_id="pnginfo-use-button")
    image.change(pnginfo.inspect, [image], [message, text, found, preview], **PRIVATE)
    targets = {name: form.fields[name] for name in ("main_tabs", "tabs", "prompt", "edit_prompt", "compose_prompt",
                                                     "model", "aspect_ratio", "size", "temperature", "top_p",
                                                     "top_k", "seed")}

    def use_settings(state: dict, current_model: str) -> dict:
        return {targets[name]: value for name, value in pnginfo.use(state, current_model).items()}

    use.click(use_settings, [found, form.model], list(targets.values()), **PRIVATE)
    return tab
