"""The Studio tab: Generate, Edit and Compose, the shared settings, the result, and this session's panel.

Layout is in studio_layout.py (`StudioLayout`, which `StudioTab` extends), wiring and handlers are here; the shared
actions (send to Edit, add to Compose, reuse settings) are in actions.py, the runs in runner.py, the public API's
events in api.py. Every handler returns a dict keyed by component; a refusal is a warning toast and leaves the page
as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr

from ..domain.models import ModelSpec, get_model
from . import actions, text
from .actions import no_change, refusals_as_warnings, refuse
from .controls import (
    MODEL_DEFAULT,
    aspect_choices,
    aspect_value,
    available_choices,
    gallery_paths,
    gemini3_controls,
    size_choices,
    size_value,
)
from .model_panel import visitor_models
from .prompt_craft import craft_arguments
from .region_panel import region_arguments
from .session import Session
from .studio_layout import NO_SESSION_PICK, StudioLayout
from .transparent_view import DIFFERENCE, transparent_value

__all__ = ["SCROLL_TO_RESULT", "StudioTab", "compose_move", "compose_remove", "model_controls"]

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
# The compose tab's edits (upload, pick, move, remove, and the limit line that follows every change) run one at a
# time, in the order they were made: otherwise the line a change computed for two images could land after a quick
# second Remove and say "(1 added)" under an empty gallery. Each takes milliseconds and sends nothing.
COMPOSE_EDITS: dict[str, Any] = {**PRIVATE, "concurrency_id": "compose-edits", "concurrency_limit": 1}
# On a narrow screen the result is below the form: bring it (and its progress) into view when a run starts.
SCROLL_TO_RESULT = """() => {
  if (window.innerWidth < 900) {
    document.getElementById('out-gallery')?.scrollIntoView({behavior: 'smooth', block: 'start'});
  }
}"""


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


class StudioTab(StudioLayout):
    """The Studio tab's components (built by `layout`) and its events (wired by `wire`)."""

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
                                   compose_views, **COMPOSE_EDITS)
        self.compose_images.change(self.compose_changed, [self.model, self.compose_images], [self.compose_limit],
                                   **COMPOSE_EDITS)
        self.compose_images.select(self.compose_selected, [self.session], [self.session], **COMPOSE_EDITS)
        for button, step in ((self.earlier, -1), (self.later, 1)):
            button.click(self.compose_mover(step), [self.model, self.session, self.compose_images], compose_views,
                         **COMPOSE_EDITS)
        self.remove.click(self.compose_removed, [self.model, self.session, self.compose_images], compose_views,
                          **COMPOSE_EDITS)

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
