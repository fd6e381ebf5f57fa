"""The Studio tab: Generate, Edit and Compose, the shared settings, the result, and this session's panel.

Layout, wiring and handlers are all here; the shared actions (send to Edit, add to Compose, reuse settings) are in
actions.py, the runs in runner.py, the public API's events in api.py. Every handler returns a dict keyed by
component; a refusal is a warning toast and leaves the page as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr
from gradio.components import Component

from ..domain.models import ModelSpec, get_model
from ..domain.request import Mode
from . import actions, text
from .actions import TAB_IDS, StudioForm, no_change, refusals_as_warnings, refuse
from .compare_view import CompareView
from .components import let_studio_judge_uploads
from .controls import (
    AUTO,
    IMAGE_AND_TEXT,
    MAX_UI_COUNT,
    MODEL_DEFAULT,
    OUTPUT_CHOICES,
    aspect_choices,
    aspect_value,
    available_choices,
    gallery_paths,
    gemini3_controls,
    model_choices,
    size_choices,
    size_value,
    thinking_choices,
)
from .extras import ExtraControls
from .model_panel import visitor_models
from .prompt_craft import PromptCraftPanel, craft_arguments
from .region_panel import RegionPanel, before_after, region_arguments, slider_component
from .result_extras import thought_pictures
from .runner import Outputs, Runner
from .session import Session
from .transparent_view import DIFFERENCE, TransparentControls, transparent_value

__all__ = ["SCROLL_TO_RESULT", "StudioTab", "compose_move", "compose_remove", "model_controls"]

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
NO_SESSION_PICK = "Select an image in the session panel to see its details."
# On a narrow screen the result is below the form: bring it (and its progress) into view when a run starts.
SCROLL_TO_RESULT = """() => {
  if (window.innerWidth < 900) {
    document.getElementById('out-gallery')?.scrollIntoView({behavior: 'smooth', block: 'start'});
  }
}"""
DISCOVERY_TICK_S = 2.0  # how often the page asks whether this key's model listing has arrived (until it has)
RESULT_HEIGHT = 720  # px: the result gallery's box; images are fitted inside it whole (object_fit="contain")


def compose_move(images: Sequence[str], index: int | None, step: int) -> tuple[list[str], int]:
    """Move the picked compose input earlier (step -1) or later (+1): the new order and where the image went."""
    images = list(images)
    if index is None or not 0 <= index < len(images):
        raise refuse("Click an image in Compose first, then move it.")
    target = min(max(index + step, 0), len(images) - 1)
    images.insert(target, images.pop(index))
    return images, target


def compose_remove(images: Sequence[str], index: int | None) -> list[str]:
    """Remove the picked compose input: the images left."""
    images = list(images)
    if index is None or not 0 <= index < len(images):
        raise refuse("Click an image in Compose first, then remove it.")
    images.pop(index)
    return images


def model_controls(model: str, aspect_ratio: str, size: str, default_model: str) -> dict[str, Any]:
    """The aspect and size controls (by field name) drawn from the model, keeping the choices it still offers.

    A value still offered is not sent back: when another event (Reuse, PNG Info) sets the model, aspect and size
    together, this one may have read their old values, and must not put those back over the new.
    """
    spec = get_model((model or "").strip() or default_model)
    aspect, kept_size = aspect_value(spec, aspect_ratio), size_value(spec, size)
    new_aspect: dict[str, Any] = {} if aspect == aspect_ratio else {"value": aspect}
    new_size: dict[str, Any] = {} if kept_size == size else {"value": kept_size}
    return {"aspect_ratio": gr.update(choices=aspect_choices(spec), **new_aspect),
            "size": gr.update(choices=size_choices(spec), **new_size)}


class StudioTab:
    """The Studio tab's components (built by `layout`) and its events (wired by `wire`)."""

    def __init__(self, runner: Runner, default_model: str) -> None:
        self.runner, self.default_model = runner, default_model
        self.spec: ModelSpec = get_model(default_model)
        studio = runner.studio
        self.extras = ExtraControls(studio.capabilities, studio.settings.keep_metadata, studio.settings.store)
        self.transparency = TransparentControls()
        self.region, self.compare = RegionPanel(), CompareView()
        self.craft = PromptCraftPanel(runner)  # styles, {variables}, Enhance, Describe (prompt_craft.py)

    # -- layout ----------------------------------------------------------------------------------------------

    def layout(self, main_tabs: gr.Tabs, session: gr.State, api_key: gr.Textbox) -> StudioForm:
        """Lay out the tab inside the main Tabs; returns the form other tabs fill."""
        spec = self.spec
        self.session, self.api_key = session, api_key
        with gr.Tab("Studio", id="studio", elem_id="studio-tab"):
            with gr.Row():
                with gr.Column(scale=5):
                    with gr.Tabs(elem_id="mode-tabs") as self.mode_tabs:
                        with gr.Tab("Generate", id=TAB_IDS[Mode.GENERATE], elem_id="generate-tab"):
                            self.prompt = gr.Textbox(label="Prompt", lines=3, elem_id="prompt",
                                                     placeholder="A red fox in the snow, watercolour")
                            self.generate_button = gr.Button("Generate", variant="primary", elem_id="generate-button")
                        with gr.Tab("Edit", id=TAB_IDS[Mode.EDIT], elem_id="edit-tab"):
                            # filepath + image_mode=None: Gradio hands over the uploaded file untouched, so the
                            # Studio sends the exact bytes (or normalises them itself, with its own messages).
                            self.edit_image = let_studio_judge_uploads(gr.Image(
                                label="Image to edit", type="filepath", image_mode=None, format="png",
                                sources=["upload", "clipboard", "webcam"], elem_id="edit-image"))
                            self.edit_prompt = gr.Textbox(label="Change to make", lines=2, elem_id="edit-prompt",
                                                          placeholder="Make the sky stormy")
                            self.region.layout(spec)  # paint a region, feather, extend the canvas (optional)
                            self.edit_button = gr.Button("Edit", variant="primary", elem_id="edit-button")
                        with gr.Tab("Compose", id=TAB_IDS[Mode.COMPOSE], elem_id="compose-tab"):
                            self.compose_limit = gr.Markdown(text.compose_limit(spec, 0), elem_id="compose-limit")
                            self.compose_images = gr.Gallery(
                                label="Images to combine, in order (click one to move or remove it)",
                                type="filepath", format="png", interactive=True, columns=4, height=260,
                                allow_preview=False, fit_columns=False, sources=["upload", "clipboard"],
                                file_types=["image"], elem_id="compose-images")
                            with gr.Row():
                                self.earlier = gr.Button("◀ Earlier", size="sm", elem_id="compose-earlier")
                                self.later = gr.Button("Later ▶", size="sm", elem_id="compose-later")
                                self.remove = gr.Button("Remove", size="sm", elem_id="compose-remove")
                            self.compose_prompt = gr.Textbox(
                                label="How to combine them", lines=2, elem_id="compose-prompt",
                                placeholder="The cat from the first image wearing the hat")
                            self.compose_button = gr.Button("Compose", variant="primary", elem_id="compose-button")
                    self.craft.layout()
                    self._settings(spec)
                with gr.Column(scale=6):
                    self.out_gallery = gr.Gallery(
                        label="Result", format="png", columns=2, interactive=False, height=RESULT_HEIGHT,
                        object_fit="contain",  # a wide or tall result is shown whole, never cropped
                        buttons=["download", "fullscreen"], elem_id="out-gallery")
                    self.before_after = slider_component()  # every edit: its input and output
                    self.status = gr.Markdown(label="Status", elem_id="status")
                    self.meter = gr.Markdown(elem_id="meter")
                    with gr.Row():
                        self.variation_button = gr.Button("New variation", elem_id="new-variation-button")
                        self.output_to_edit = gr.Button("Send to Edit", elem_id="output-to-edit-button")
                        # Opens the picked result in the Refine tab (wired there: refine_tab.RefineTab.wire).
                        self.output_to_refine = gr.Button("Refine", elem_id="output-to-refine-button")
                    self.out_files = gr.File(label="Original files", file_count="multiple", interactive=False,
                                             elem_id="out-files")
                    self._result_extras()
            self.compare.layout()  # a run of several images: two of them side by side, full width
            self._session_panel()
        self.form = StudioForm({
            "main_tabs": main_tabs, "mode_tabs": self.mode_tabs, "prompt": self.prompt,
            "edit_image": self.edit_image, "edit_prompt": self.edit_prompt, "compose_images": self.compose_images,
            "compose_prompt": self.compose_prompt, "compose_limit": self.compose_limit, "model": self.model,
            "aspect_ratio": self.aspect, "size": self.size, "temperature": self.temperature, "top_p": self.top_p,
            "top_k": self.top_k, "seed": self.seed, "output": self.output, "thinking": self.thinking,
            "show_thoughts": self.show_thoughts, "search": self.search, "image_search": self.image_search})
        return self.form

    def _settings(self, spec: ModelSpec) -> None:
        with gr.Group(elem_id="settings"):
            self.model = gr.Dropdown(model_choices(self.default_model), value=self.default_model, label="Model",
                                     allow_custom_value=True, elem_id="model")
            self.model_info = gr.Markdown(text.model_info(spec, spec.default_size), elem_id="model-info")
            # Why a registry model is missing from the dropdown (this key's listing), filled once discovery answers.
            self.model_notes = gr.Markdown("", elem_id="model-notes")
            self.discovery_timer = gr.Timer(DISCOVERY_TICK_S, active=True)
            with gr.Row():
                # The page offers the chosen model's ratios and sizes (the API advertises every model's).
                self.aspect = gr.Dropdown(aspect_choices(spec), value=AUTO, label="Aspect ratio",
                                          info="Auto: the model's default; Edit and Compose keep the input's shape",
                                          allow_custom_value=True, elem_id="aspect-ratio")
                self.size = gr.Dropdown(size_choices(spec), value=spec.default_size, label="Image size",
                                        allow_custom_value=True, elem_id="size")
            self.transparency.layout()  # "Transparent background": transparent_view.py
            with gr.Row(elem_id="gemini3-controls"):
                # Gemini 3 controls, drawn from the model's capabilities like the sizes: hidden where it lacks them.
                self.thinking = gr.Dropdown(thinking_choices(spec), value=MODEL_DEFAULT, label="Thinking level",
                                            visible=bool(spec.thinking_levels), min_width=180,  # "Model default"
                                            elem_id="thinking")
                self.show_thoughts = gr.Checkbox(False, label="Show thinking", visible=spec.thoughts,
                                                 info="The interim images, in a strip beside the result (free)",
                                                 elem_id="show-thoughts")
                self.search = gr.Checkbox(False, label="Google Search grounding", visible=spec.search,
                                          info="Sources appear under the result", elem_id="search")
                self.image_search = gr.Checkbox(False, label="Image search", visible=spec.image_search,
                                                elem_id="image-search")
            # Your kits (kits.md): its references are sent after your own images; NAME@3 picks a version.
            self.kit = gr.Dropdown([""], value="", label="Kit", allow_custom_value=True, elem_id="kit",
                                   info="Reference images sent after yours, each named (NAME, or NAME@3)")
            with gr.Row():
                self.temperature = gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature", elem_id="temperature")
                self.top_p = gr.Slider(0, 1, value=0.95, step=0.01, label="Top-p", elem_id="top-p")
            with gr.Accordion("Advanced", open=False, elem_id="advanced"):
                with gr.Row():
                    self.top_k = gr.Number(value=0, precision=0, minimum=0, maximum=1000,
                                           label="Top-k (0: model default)", elem_id="top-k")
                    self.seed = gr.Number(value=-1, precision=0, minimum=-1, maximum=2**31 - 1,
                                          label="Seed (-1: none; best effort)", elem_id="seed")
                self.count = gr.Slider(1, MAX_UI_COUNT, value=1, step=1, precision=0,
                                       label="Number of images (parallel calls)", elem_id="count")
                self.output = gr.Radio(list(OUTPUT_CHOICES), value=IMAGE_AND_TEXT, label="Output",
                                       elem_id="output-mode")
                self.extras.layout()  # keep photo metadata; Vertex AI's output controls (hidden elsewhere)

    def _result_extras(self) -> None:
        # Thought images are shown here only, never in the output gallery or the original files.
        with gr.Accordion("Thinking (interim images)", open=False, visible=False,
                          elem_id="thoughts") as self.thoughts_box:
            self.thought_gallery = gr.Gallery(label="The model's interim images", format="png", columns=4,
                                              height=220, interactive=False, object_fit="contain",
                                              elem_id="thought-gallery")
        self.sources = gr.HTML("", elem_id="sources")

    def _session_panel(self) -> None:
        gr.Markdown("## This session")
        self.session_summary = gr.Markdown(text.history_summary(Session()), elem_id="history-summary")
        with gr.Row():
            self.session_gallery = gr.Gallery(
                label="This session, newest first", format="png", columns=6, height=300, fit_columns=False,
                object_fit="contain", allow_preview=False, interactive=False, elem_id="history-gallery", scale=3)
            with gr.Column(scale=2):
                self.session_details = gr.Markdown(NO_SESSION_PICK, elem_id="history-details")
                with gr.Row():
                    self.reuse = gr.Button("Reuse settings", elem_id="reuse-button")
                    self.send_to_edit = gr.Button("Send to Edit", elem_id="send-to-edit-button")
                    self.add_to_compose = gr.Button("Add to Compose", elem_id="add-to-compose-button")

    @property
    def settings_inputs(self) -> list[Component]:
        """The shared settings, in the API's parameter order (the Batch tab uses them as its defaults)."""
        return [self.model, self.aspect, self.size, self.temperature, self.top_p, self.top_k, self.seed, self.count,
                self.output]

    @property
    def gemini3_inputs(self) -> list[Component]:
        """The Gemini 3 controls, in the API's parameter order (after the settings, before api_key)."""
        return [self.thinking, self.show_thoughts, self.search, self.image_search]

    @property
    def run_outputs(self) -> list[Component]:
        """Everything a run changes: the result, the status, the session and its panel."""
        return [self.out_gallery, self.status, self.session, self.session_gallery, self.session_summary,
                self.session_details, self.out_files, self.sources, self.thoughts_box, self.thought_gallery,
                self.before_after, *self.compare.outputs]

    def shown(self, outputs: Outputs) -> dict[Component, Any]:
        """A run's outputs on the page: the result and status, its sources and thought images, the session."""
        session = outputs.session
        thoughts = thought_pictures(session.last_results)
        return {self.out_gallery: outputs.files, self.status: outputs.status, self.session: session,
                **self.session_views(session), self.out_files: list(session.shown) or None,
                self.sources: text.sources_html(session.last_results),
                self.thoughts_box: gr.Accordion(visible=bool(thoughts), open=False),
                self.thought_gallery: thoughts or None, self.before_after: before_after(session),
                **self.compare.shown(session)}

    def session_views(self, session: Session) -> dict[Component, Any]:
        """The session panel from the session: thumbnails, totals, the picked entry's details."""
        picked = session.entry(session.selected)
        return {self.session_gallery: [(str(e.images[0].path), text.entry_caption(e)) for e in session.entries],
                self.session_summary: text.history_summary(session),
                self.session_details: text.entry_details(picked) if picked else NO_SESSION_PICK}

    # -- wiring ----------------------------------------------------------------------------------------------

    def wire(self) -> None:
        """Connect the tab's events (the public API's are in api.py)."""
        runs = {**self.runner.events,
                "show_progress_on": [self.out_gallery, self.status], **PRIVATE}
        settings, tail = [*self.settings_inputs, *self.gemini3_inputs], [self.api_key, self.session]
        for button, handler, inputs in (
            (self.generate_button, self.generate, [self.prompt]),
            (self.edit_button, self.edit, [self.edit_image, self.edit_prompt, *self.region.inputs]),
            (self.compose_button, self.compose, [self.compose_images, self.compose_prompt]),
        ):
            button.click(None, None, None, js=SCROLL_TO_RESULT, **PRIVATE)
            # The kit picker comes last: each handler's `kit` follows its request and progress (Gradio fills those).
            button.click(handler, [*inputs, *settings, *tail, *self.extras.inputs, *self.craft.inputs,
                                  *self.transparency.inputs, self.kit],
                         self.run_outputs, **runs).then(
                self.runner.meter, None, self.meter, **PRIVATE)  # failures count against the budget too
        self.variation_button.click(None, None, None, js=SCROLL_TO_RESULT, **PRIVATE)
        self.variation_button.click(self.new_variation, [self.session, self.api_key], self.run_outputs,
                                    **runs).then(self.runner.meter, None, self.meter, **PRIVATE)

        self.transparency.wire(self.model, self.size)
        self.model.change(self.model_changed,
                          [self.model, self.aspect, self.size, self.compose_images, *self.gemini3_inputs],
                          [self.aspect, self.size, self.compose_limit, *self.gemini3_inputs], **PRIVATE).then(
            self.size_changed, [self.model, self.size], [self.model_info], **PRIVATE)
        self.size.change(self.size_changed, [self.model, self.size], [self.model_info], **PRIVATE)
        self.kit.focus(self.kit_choices, [self.kit], [self.kit], **PRIVATE)  # the visitor's own kits, fresh
        # The dropdown follows this key's listing: asked on a short timer from page load until it has answered,
        # and again when the visitor enters another key.
        models_out = [self.model, self.model_notes, self.discovery_timer]
        self.discovery_timer.tick(self.refresh_models, [self.model, self.api_key], models_out, **PRIVATE)
        self.api_key.blur(self.refresh_models, [self.model, self.api_key], models_out, **PRIVATE)
        self.edit_image.upload(self.edit_uploaded, [self.edit_image], [self.edit_image], **PRIVATE)
        self.region.wire(self.edit_image, self.model, self._spec)
        self.compare.wire(self.session)
        self.craft.wire(self.prompt, self.edit_image, self.api_key)
        compose_views = [self.compose_images, self.compose_limit, self.session]
        self.compose_images.upload(self.compose_uploaded, [self.model, self.compose_images, self.session],
                                   compose_views, **PRIVATE)
        self.compose_images.change(self.compose_changed, [self.model, self.compose_images], [self.compose_limit],
                                   **PRIVATE)
        self.compose_images.select(self.compose_selected, [self.session], [self.session], **PRIVATE)
        for button, step in ((self.earlier, -1), (self.later, 1)):
            button.click(self.compose_mover(step), [self.model, self.session, self.compose_images], compose_views,
                         **PRIVATE)
        self.remove.click(self.compose_removed, [self.model, self.session, self.compose_images], compose_views,
                          **PRIVATE)

        self.out_gallery.select(self.output_selected, [self.session], [self.session], **PRIVATE)
        self.output_to_edit.click(self.output_sent_to_edit, [self.session], self.form.components(
            "edit_image", "mode_tabs"), **PRIVATE)
        self.session_gallery.select(self.session_selected, [self.session], [self.session_details, self.session],
                                    **PRIVATE)
        self.send_to_edit.click(self.entry_sent_to_edit, [self.session], self.form.components(
            "edit_image", "main_tabs", "mode_tabs"), **PRIVATE)
        self.add_to_compose.click(self.entry_added_to_compose, [self.session, self.compose_images, self.model],
                                  self.form.components("compose_images", "compose_limit", "main_tabs", "mode_tabs"),
                                  **PRIVATE)
        reuse_targets = [name for name in self.form.fields if name != "compose_limit"]
        self.reuse.click(self.reuse_clicked, [self.session], self.form.components(*reuse_targets), **PRIVATE)

    # -- runs (the page's; api.py wires the public endpoints straight to the Runner) ---------------------------

    async def generate(self, prompt: str, model: str, aspect_ratio: str, size: str, temperature: float,
                       top_p: float, top_k: int, seed: int, count: int, output: str, thinking: str,
                       show_thoughts: bool, search: bool, image_search: bool, api_key: str,
                       session: Session | None, keep_metadata: bool, output_format: str, jpeg_quality: float,
                       person_generation: str, store: bool = False, style: str | None = None,
                       values: dict[str, str] | None = None,
                       request: gr.Request | None = None,
                       progress: gr.Progress = gr.Progress(),  # noqa: B008 (how Gradio asks for it)
                       transparent: bool = False, transparent_method: str = DIFFERENCE, kit: str = "") -> Any:
        """Generate clicked: run it, or say why not in a toast (the page keeps what it showed)."""
        with refusals_as_warnings():
            return self.shown(await self.runner.generate(prompt, model, aspect_ratio, size, temperature, top_p,
                                                         top_k, seed, count, output, thinking, show_thoughts,
                                                         search, image_search, kit=kit, api_key=api_key,
                                                         session=session,
                                                         transparent=transparent_value(transparent,
                                                                                       transparent_method),
                                                         request=request, progress=progress, extras=self.extras.values(
                                                             keep_metadata, output_format, jpeg_quality,
                                                             person_generation, store),
                                                         **craft_arguments(prompt, style, values)))
        return no_change()

    async def edit(self, image: str | None, prompt: str, painted: dict[str, Any] | None, feather: float,
                   extend_to: str | None, anchor: str | None, model: str, aspect_ratio: str, size: str,
                   temperature: float, top_p: float, top_k: int, seed: int, count: int, output: str,
                   thinking: str, show_thoughts: bool, search: bool, image_search: bool, api_key: str,
                   session: Session | None, keep_metadata: bool, output_format: str, jpeg_quality: float,
                   person_generation: str, store: bool = False, style: str | None = None,
                   values: dict[str, str] | None = None,
                   request: gr.Request | None = None,
                   progress: gr.Progress = gr.Progress(),  # noqa: B008
                   transparent: bool = False, transparent_method: str = DIFFERENCE, kit: str = "") -> Any:
        """Edit clicked: run it (a region edit when a region is painted or the canvas extended), or say why not in
        a toast."""
        with refusals_as_warnings(), region_arguments(image, painted, feather, extend_to, anchor) as region:
            mask = region.pop("mask", None)
            return self.shown(await self.runner.edit(image, prompt, model, aspect_ratio, size, temperature, top_p,
                                                     top_k, seed, count, output, thinking, show_thoughts, search,
                                                     image_search, mask, kit=kit, api_key=api_key, session=session,
                                                     transparent=transparent_value(transparent,
                                                                                   transparent_method),
                                                     request=request, progress=progress,
                                                     extras=self.extras.values(keep_metadata, output_format,
                                                                               jpeg_quality, person_generation, store),
                                                     **region, **craft_arguments(prompt, style, values)))
        return no_change()

    async def compose(self, images: list[Any] | None, prompt: str, model: str, aspect_ratio: str, size: str,
                      temperature: float, top_p: float, top_k: int, seed: int, count: int, output: str,
                      thinking: str, show_thoughts: bool, search: bool, image_search: bool,
                      api_key: str, session: Session | None, keep_metadata: bool, output_format: str,
                      jpeg_quality: float, person_generation: str, store: bool = False, style: str | None = None,
                      values: dict[str, str] | None = None,
                      request: gr.Request | None = None, progress: gr.Progress = gr.Progress(),  # noqa: B008
                      transparent: bool = False, transparent_method: str = DIFFERENCE, kit: str = "") -> Any:
        """Compose clicked: run it, or say why not in a toast."""
        with refusals_as_warnings():
            return self.shown(await self.runner.compose(images, prompt, model, aspect_ratio, size, temperature,
                                                        top_p, top_k, seed, count, output, thinking, show_thoughts,
                                                        search, image_search, kit=kit, api_key=api_key,
                                                        session=session,
                                                        transparent=transparent_value(transparent,
                                                                                   transparent_method),
                                                        request=request, progress=progress, extras=self.extras.values(
                                                            keep_metadata, output_format, jpeg_quality,
                                                            person_generation, store),
                                                        **craft_arguments(prompt, style, values)))
        return no_change()

    async def new_variation(self, session: Session | None, api_key: str, request: gr.Request,
                            progress: gr.Progress = gr.Progress()) -> Any:  # noqa: B008
        """New variation clicked: the last request again under new variation numbers, or why not."""
        with refusals_as_warnings():
            return self.shown(await self.runner.new_variation(session, api_key, request, progress))
        return no_change()

    # -- the settings ----------------------------------------------------------------------------------------

    def model_changed(self, model: str, aspect_ratio: str, size: str, compose_images: Sequence[Any] | None,
                      thinking: str = MODEL_DEFAULT, show_thoughts: bool = False, search: bool = False,
                      image_search: bool = False) -> Any:
        """Redraw the controls from the model's capabilities (the price line follows, from size_changed): the
        Gemini 3 controls it lacks are hidden and reset, so nothing it cannot do is sent."""
        values = model_controls(model, aspect_ratio, size, self.default_model)
        extras = gemini3_controls(self._spec(model), thinking, show_thoughts, search, image_search)
        return {self.aspect: values["aspect_ratio"], self.size: values["size"],
                self.compose_limit: self.compose_changed(model, compose_images),
                **{component: gr.update(**extras[name]) for name, component in
                   zip(("thinking", "show_thoughts", "search", "image_search"), self.gemini3_inputs, strict=True)}}

    def kit_choices(self, kit: str, request: gr.Request) -> Any:
        """The kit picker's choices: none, then the visitor's own kits (public mode: only theirs)."""
        return gr.update(choices=["", *self.runner.kit_names(request)], value=kit or "")

    def refresh_models(self, model: str, api_key: str, request: gr.Request) -> Any:
        """The dropdown's choices from the models this visitor's key can use, the note on hidden ones; the timer
        stops once the listing has answered (or cannot)."""
        choices = visitor_models(self.runner, api_key, request)
        return {self.model: gr.update(choices=available_choices(choices.availability, model or self.default_model)),
                self.model_notes: text.model_notes(choices.availability.notes),
                self.discovery_timer: gr.Timer(active=choices.pending)}

    def size_changed(self, model: str, size: str) -> str:
        """The model line for a new size (the price depends on it)."""
        return text.model_info(self._spec(model), size)

    def _spec(self, model: str | None) -> ModelSpec:
        return get_model((model or "").strip() or self.default_model)

    # -- uploads and compose order ---------------------------------------------------------------------------

    def edit_uploaded(self, path: str | None) -> Any:
        """A file that is not an image is refused as it arrives, with the Studio's own message."""
        problem = actions.not_an_image(path)
        if problem is None:
            return no_change()
        gr.Warning(problem)
        return None

    def compose_uploaded(self, model: str, compose_images: Sequence[Any] | None, session: Session) -> Any:
        """Uploads that are not images are dropped as they arrive, each with the Studio's own message."""
        images = list(gallery_paths(compose_images))
        kept = []
        for path in images:
            problem = actions.not_an_image(path)
            if problem is None:
                kept.append(path)
            else:
                gr.Warning(problem)
        if len(kept) == len(images):
            return no_change()
        session.compose_selected = None
        return self._compose_views(model, kept, None, session)

    def compose_changed(self, model: str, compose_images: Sequence[Any] | None) -> str:
        """The compose limit line for the images now in the compose tab."""
        return text.compose_limit(self._spec(model), len(gallery_paths(compose_images)))

    def compose_selected(self, session: Session, evt: gr.SelectData) -> Session:
        """Remember which compose input is picked (for the move and remove buttons)."""
        session.compose_selected = evt.index if isinstance(evt.index, int) else None
        return session

    def compose_mover(self, step: int) -> Any:
        """The handler of ◀ Earlier (step -1) or Later ▶ (+1): the highlight moves with the image."""
        def move(model: str, session: Session, compose_images: Sequence[Any] | None) -> Any:
            with refusals_as_warnings():
                images, target = compose_move(gallery_paths(compose_images), session.compose_selected, step)
                session.compose_selected = target
                return self._compose_views(model, images, target, session)
            return no_change()

        move.__doc__ = f"Move the picked compose input one place {'earlier' if step < 0 else 'later'}."
        return move

    def compose_removed(self, model: str, session: Session, compose_images: Sequence[Any] | None) -> Any:
        """Remove the highlighted compose input."""
        with refusals_as_warnings():
            images = compose_remove(gallery_paths(compose_images), session.compose_selected)
            session.compose_selected = None
            return self._compose_views(model, images, None, session)
        return no_change()

    def _compose_views(self, model: str, images: list[str], selected: int | None, session: Session) -> Any:
        return {self.compose_images: gr.update(value=images or None, selected_index=selected),
                self.compose_limit: text.compose_limit(self._spec(model), len(images)), self.session: session}

    # -- the result and the session panel ------------------------------------------------------------------

    def output_selected(self, session: Session, evt: gr.SelectData) -> Session:
        """Remember which output image is picked (for Send to Edit)."""
        session.shown_selected = evt.index if isinstance(evt.index, int) else 0
        return session

    def output_sent_to_edit(self, session: Session) -> Any:
        """The result's Send to Edit: the picked output image into the Edit tab."""
        with refusals_as_warnings():
            return self.form.updates(actions.send_path_to_edit(session.shown_image))
        return no_change()

    def session_selected(self, session: Session, evt: gr.SelectData) -> Any:
        """Show the details of the session entry the visitor picked."""
        session.selected = evt.index if isinstance(evt.index, int) else None
        picked = session.entry(session.selected)
        return {self.session_details: text.entry_details(picked) if picked else NO_SESSION_PICK,
                self.session: session}

    def entry_sent_to_edit(self, session: Session) -> Any:
        """The session panel's Send to Edit."""
        with refusals_as_warnings():
            return self.form.updates(actions.send_to_edit(session.selected_entry))
        return no_change()

    def entry_added_to_compose(self, session: Session, compose_images: Sequence[Any] | None, model: str) -> Any:
        """The session panel's Add to Compose."""
        with refusals_as_warnings():
            return self.form.updates(actions.add_to_compose(session.selected_entry, compose_images, model,
                                                            self.default_model))
        return no_change()

    def reuse_clicked(self, session: Session) -> Any:
        """Reuse settings: the picked (else newest) entry's request back in the form."""
        with refusals_as_warnings():
            entry = session.selected_entry
            inputs = session.inputs.get(entry.id, ()) if entry else ()
            return self.form.updates(actions.reuse_settings(entry, inputs, self.default_model))
        return no_change()
