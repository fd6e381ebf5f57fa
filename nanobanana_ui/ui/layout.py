"""The page: build_app() lays out the Blocks (Studio, History, Batch and PNG Info tabs) and wires the events."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import gradio as gr
from gradio.blocks import Block

from ..models import ModelSpec, get_model
from ..request import Mode
from ..studio import Studio
from ..visitors import KeyRing
from . import text
from .batch import BatchPage
from .batch_tab import batch_tab
from .components import let_studio_judge_uploads
from .controls import (
    AUTO,
    IMAGE_AND_TEXT,
    MAX_UI_COUNT,
    OUTPUT_CHOICES,
    aspect_choices,
    model_choices,
    size_choices,
)
from .events import TAB_IDS, PageEvents
from .handlers import Runner, no_owner, visitor_owner
from .history import Session
from .library import Library
from .pnginfo import PngInfo
from .tabs import StudioForm, history_tab, pnginfo_tab

__all__ = ["QUEUE_MAX_SIZE", "build_app"]

QUEUE_MAX_SIZE = 64  # requests waiting beyond that are refused at once ("queue full") rather than left to time out
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
TITLE = "# 🍌 Nano Banana Studio\nGenerate, edit and compose images with Google's Gemini image models."


def studio_tab(spec: ModelSpec, default_model: str) -> dict[str, Any]:
    """The Studio tab: Generate, Edit and Compose, the shared settings, the outputs and this session's panel.

    Returns its components by name (the events are wired in build_app).
    """
    with gr.Tab("Studio", id="studio", elem_id="studio-tab"):
        with gr.Row():
            with gr.Column(scale=5):
                with gr.Tabs(elem_id="mode-tabs") as tabs:
                    with gr.Tab("Generate", id=TAB_IDS[Mode.GENERATE], elem_id="generate-tab"):
                        # No value: the prompt is a required API parameter (DESIGN.md: the first one has none).
                        prompt = gr.Textbox(label="Prompt", lines=3, elem_id="prompt",
                                            placeholder="A red fox in the snow, watercolour")
                        generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                    with gr.Tab("Edit", id=TAB_IDS[Mode.EDIT], elem_id="edit-tab"):
                        # filepath + image_mode=None: Gradio hands over the uploaded file untouched, so the Studio
                        # sends the exact bytes (or normalises them itself, with its own messages).
                        edit_image = let_studio_judge_uploads(gr.Image(
                            label="Image to edit", type="filepath", image_mode=None, format="png",
                            sources=["upload", "clipboard", "webcam"], elem_id="edit-image"))
                        edit_prompt = gr.Textbox(label="Change to make", lines=2, elem_id="edit-prompt",
                                                 placeholder="Make the sky stormy")
                        edit_button = gr.Button("Edit", variant="primary", elem_id="edit-button")
                    with gr.Tab("Compose", id=TAB_IDS[Mode.COMPOSE], elem_id="compose-tab"):
                        compose_limit = gr.Markdown(text.compose_limit(spec, 0), elem_id="compose-limit")
                        compose_images = gr.Gallery(label="Images to combine, in order", type="filepath",
                                                    format="png", interactive=True, columns=4, height=260,
                                                    allow_preview=False, fit_columns=False,
                                                    sources=["upload", "clipboard"], file_types=["image"],
                                                    elem_id="compose-images")
                        with gr.Row():
                            earlier = gr.Button("◀ Earlier", size="sm", elem_id="compose-earlier")
                            later = gr.Button("Later ▶", size="sm", elem_id="compose-later")
                            remove = gr.Button("Remove", size="sm", elem_id="compose-remove")
                        compose_prompt = gr.Textbox(label="How to combine them", lines=2, elem_id="compose-prompt",
                                                    placeholder="The cat from the first image wearing the hat")
                        compose_button = gr.Button("Compose", variant="primary", elem_id="compose-button")
                with gr.Group(elem_id="settings"):
                    model = gr.Dropdown(model_choices(default_model), value=default_model, label="Model",
                                        allow_custom_value=True, elem_id="model")
                    model_info = gr.Markdown(text.model_info(spec, spec.default_size), elem_id="model-info")
                    # allow_custom_value: an API caller may name another model's ratio or size; the Studio judges
                    # it against the model actually asked for (these choices are the default model's).
                    with gr.Row():
                        aspect = gr.Dropdown(aspect_choices(spec), value=AUTO, label="Aspect ratio",
                                             allow_custom_value=True, elem_id="aspect-ratio")
                        size = gr.Dropdown(size_choices(spec), value=spec.default_size, label="Image size",
                                           allow_custom_value=True, elem_id="size")
                    with gr.Row():
                        temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature",
                                                elem_id="temperature")
                        top_p = gr.Slider(0, 1, value=0.95, step=0.01, label="Top-p", elem_id="top-p")
                    with gr.Accordion("Advanced", open=False, elem_id="advanced"):
                        with gr.Row():
                            top_k = gr.Number(value=0, precision=0, minimum=0, maximum=1000,
                                              label="Top-k (0: model default)", elem_id="top-k")
                            seed = gr.Number(value=-1, precision=0, minimum=-1, maximum=2**31 - 1,
                                             label="Seed (-1: none; best effort)", elem_id="seed")
                        count = gr.Slider(1, MAX_UI_COUNT, value=1, step=1, label="Number of images (parallel calls)",
                                          elem_id="count")
                        output = gr.Radio(list(OUTPUT_CHOICES), value=IMAGE_AND_TEXT, label="Output",
                                          elem_id="output-mode")
            with gr.Column(scale=6):
                out_gallery = gr.Gallery(label="Result", format="png", columns=2, interactive=False,
                                         object_fit="contain",  # show a wide or tall result whole, not cropped
                                         buttons=["download", "fullscreen"], elem_id="out-gallery")
                status = gr.Markdown(label="Status", elem_id="status")
                meter = gr.Markdown(elem_id="meter")
                with gr.Row():
                    variation_button = gr.Button("New variation", elem_id="new-variation-button")
                    output_to_edit = gr.Button("Send to Edit", elem_id="output-to-edit-button")
                out_files = gr.File(label="Original files", file_count="multiple", interactive=False,
                                    elem_id="out-files")
        gr.Markdown("## This session")
        history_summary = gr.Markdown(text.history_summary(Session()), elem_id="history-summary")
        with gr.Row():
            history_gallery = gr.Gallery(label="This session, newest first", format="png", columns=6, height=300,
                                         fit_columns=False, object_fit="contain", allow_preview=False,
                                         interactive=False, elem_id="history-gallery", scale=3)
            with gr.Column(scale=2):
                history_details = gr.Markdown(text.entry_details(None), elem_id="history-details")
                with gr.Row():
                    reuse = gr.Button("Reuse settings", elem_id="reuse-button")
                    send_to_edit = gr.Button("Send to Edit", elem_id="send-to-edit-button")
                    add_to_compose = gr.Button("Add to Compose", elem_id="add-to-compose-button")
    made = dict(locals())
    return {name: value for name, value in made.items() if isinstance(value, Block)}


def build_app(studio: Studio, owner_of: Callable[[gr.Request | None], str | None] | None = None,
              keys: KeyRing | None = None) -> gr.Blocks:
    """The Blocks app for one Studio: the Studio tab (Generate, Edit and Compose, settings, outputs and this
    session's panel), the History tab (everything made on this data directory), Batch and PNG Info.

    `owner_of(request)` limits the History tab and every request's history entry to one owner (None: everything,
    a private install); by default the visitor (login name, else browser session) in public mode, else nobody.
    `keys` holds the visitors' own keys' Studios (bring your own key); one is made for `studio` by default.
    Public mode (studio.settings.public) also expires Gradio's file cache (delete_cache); launch() should pass
    `max_file_size=studio.settings.max_file_size`.
    """
    settings = studio.settings
    owner_of = owner_of or (visitor_owner if settings.public else no_owner)
    default_model = settings.model
    spec = get_model(default_model)
    runner, events = Runner(studio, keys, owner_of), PageEvents(default_model)
    library, pnginfo = Library(studio, runner, owner_of), PngInfo(events)

    with gr.Blocks(title="Nano Banana Studio", delete_cache=settings.delete_cache) as demo:
        gr.Markdown(TITLE)
        if settings.public:
            gr.Markdown(text.PUBLIC_BANNER, elem_id="public-banner")
        elif studio.offline:
            gr.Markdown(text.OFFLINE_BANNER, elem_id="offline-banner")
        # Never given a value by the server, never stored: sent by the browser with each request that needs it.
        api_key = gr.Textbox(label="Your Gemini API key" + ("" if settings.public else " (optional)"),
                             type="password", value="", placeholder="AIza...", info=text.KEY_HELP,
                             max_lines=1, elem_id="api-key")
        session = gr.State(Session())
        with gr.Tabs(elem_id="main-tabs") as main_tabs:
            s = SimpleNamespace(**studio_tab(spec, default_model))
            settings_inputs = [s.model, s.aspect, s.size, s.temperature, s.top_p, s.top_k, s.seed, s.count, s.output]
            run_outputs = [s.out_gallery, s.status, session]
            session_views = [s.history_gallery, s.history_summary, s.history_details, s.out_files]
            # One pool for every generation event: they all wait on the same API and quota, not on this machine.
            api = {"concurrency_limit": studio.settings.concurrency, "concurrency_id": "studio"}
            form_fields = {"main_tabs": main_tabs, "tabs": s.tabs, "prompt": s.prompt, "edit_prompt": s.edit_prompt,
                           "edit_image": s.edit_image, "compose_prompt": s.compose_prompt,
                           "compose_images": s.compose_images, "model": s.model, "aspect_ratio": s.aspect,
                           "size": s.size, "temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k,
                           "seed": s.seed, "output": s.output}
            form = StudioForm(form_fields, run_outputs, session_views, s.meter, api, api_key)
            history_tab(library, form, events.show_session, runner.meter)
            batch_tab(BatchPage(studio, owner_of, runner=runner), settings_inputs, settings.concurrency, api_key)
            pnginfo_tab(pnginfo, form)

        for button, fn, inputs, name in (
            (s.generate_button, runner.generate, [s.prompt], "generate"),
            (s.edit_button, runner.edit, [s.edit_image, s.edit_prompt], "edit"),
            (s.compose_button, runner.compose, [s.compose_images, s.compose_prompt], "compose"),
        ):
            # api_key comes last of the API's parameters: callers that pass the others by position keep working.
            run = button.click(fn, [*inputs, *settings_inputs, api_key, session], run_outputs, api_name=name,
                               api_visibility="public", **api)
            run.success(events.show_session, [session], session_views, **PRIVATE)
            run.then(runner.meter, None, s.meter, **PRIVATE)  # failures count against the budget too
        variation = s.variation_button.click(runner.new_variation, [session, api_key], run_outputs, **api, **PRIVATE)
        variation.success(events.show_session, [session], session_views, **PRIVATE)
        variation.then(runner.meter, None, s.meter, **PRIVATE)
        demo.load(runner.meter, None, s.meter, **PRIVATE)
        demo.unload(runner.forget)  # the visitor's key's client is closed when their page goes

        s.model.change(events.model_changed, [s.model, s.aspect, s.size, s.compose_images],
                       [s.aspect, s.size, s.compose_limit], **PRIVATE).then(
            events.size_changed, [s.model, s.size], [s.model_info], **PRIVATE)
        s.size.change(events.size_changed, [s.model, s.size], [s.model_info], **PRIVATE)
        s.compose_images.change(events.compose_changed, [s.model, s.compose_images], [s.compose_limit], **PRIVATE)
        s.compose_images.select(events.compose_selected, [session], [session], **PRIVATE)
        for move_button, move in ((s.earlier, events.compose_earlier), (s.later, events.compose_later),
                                  (s.remove, events.compose_remove)):
            move_button.click(move, [session, s.compose_images], [s.compose_images, session], **PRIVATE)
        s.out_gallery.select(events.output_selected, [session], [session], **PRIVATE)
        s.output_to_edit.click(events.output_to_edit, [session], [s.edit_image, s.tabs], **PRIVATE)
        s.history_gallery.select(events.history_selected, [session], [s.history_details, session], **PRIVATE)
        s.send_to_edit.click(events.send_to_edit, [session], [s.edit_image, s.tabs], **PRIVATE)
        s.add_to_compose.click(events.add_to_compose, [session, s.compose_images, s.model],
                               [s.compose_images, s.tabs], **PRIVATE)

        def reuse_settings(state: Session) -> dict:
            return {form_fields[name]: value for name, value in events.reuse(state).items()}

        s.reuse.click(reuse_settings, [session], list(form_fields.values()), **PRIVATE)
    demo.queue(max_size=QUEUE_MAX_SIZE)
    return demo
