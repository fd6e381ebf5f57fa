"""The Studio tab's layout: Generate, Edit and Compose, the shared settings, the result, this session's panel."""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.components import Component

from ..domain.models import ModelSpec, get_model
from ..domain.request import Mode
from . import text
from .actions import TAB_IDS, StudioForm
from .compare_view import CompareView
from .components import let_studio_judge_uploads
from .controls import (
    AUTO,
    IMAGE_AND_TEXT,
    MAX_UI_COUNT,
    MODEL_DEFAULT,
    OUTPUT_CHOICES,
    aspect_choices,
    model_choices,
    size_choices,
    thinking_choices,
)
from .extras import ExtraControls
from .prompt_craft import PromptCraftPanel
from .region_panel import RegionPanel, before_after, slider_component
from .result_extras import thought_pictures
from .runner import Outputs, Runner
from .session import Session
from .transparent_view import TransparentControls

__all__ = ["NO_SESSION_PICK", "StudioLayout"]

NO_SESSION_PICK = "Select an image in the session panel to see its details."
DISCOVERY_TICK_S = 2.0  # how often the page asks whether this key's model listing has arrived (until it has)
RESULT_HEIGHT = 720  # px: the result gallery's box; images are fitted inside it whole (object_fit="contain")


class StudioLayout:
    """The Studio tab's components (built by `layout`) and what a run shows in them; `StudioTab` wires them."""

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
