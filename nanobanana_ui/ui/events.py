"""The page's own events (private, no API): model-driven controls, history selection, reuse, send and reorder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr

from ..models import get_model
from ..request import Mode
from . import text
from .controls import (
    AUTO,
    IMAGE_AND_TEXT,
    IMAGE_ONLY,
    aspect_choices,
    aspect_value,
    gallery_paths,
    size_choices,
    size_value,
)
from .history import Session, existing

__all__ = ["TAB_IDS", "PageEvents"]

TAB_IDS = {Mode.GENERATE: "generate", Mode.EDIT: "edit", Mode.COMPOSE: "compose"}


class PageEvents:
    """Event functions that change only the page and the visitor's session, never call the model."""

    def __init__(self, default_model: str) -> None:
        self.default_model = default_model

    def _spec(self, model: str | None):
        return get_model((model or "").strip() or self.default_model)

    def model_changed(self, model: str, aspect_ratio: str, size: str, compose_images: Sequence | None) -> tuple:
        """Redraw the controls from the model's capabilities, keeping the current choices it still offers.

        The model line (its price depends on the size) is drawn after this, by size_changed, from the values then.
        """
        spec = self._spec(model)
        # A value still offered is not sent back: when another event (Reuse, PNG Info) sets the model, aspect and
        # size together, this event may have read their old values, and must not put those back over the new.
        aspect, kept_size = aspect_value(spec, aspect_ratio), size_value(spec, size)
        new_aspect: dict[str, Any] = {} if aspect == aspect_ratio else {"value": aspect}
        new_size: dict[str, Any] = {} if kept_size == size else {"value": kept_size}
        return (gr.update(choices=aspect_choices(spec), **new_aspect),
                gr.update(choices=size_choices(spec), **new_size),
                text.compose_limit(spec, len(gallery_paths(compose_images))))

    def size_changed(self, model: str, size: str) -> str:
        """The model line for a new size (the price depends on it)."""
        return text.model_info(self._spec(model), size)

    def compose_changed(self, model: str, compose_images: Sequence | None) -> str:
        """The compose limit line for the images now in the compose tab."""
        return text.compose_limit(self._spec(model), len(gallery_paths(compose_images)))

    def show_session(self, session: Session) -> tuple:
        """History gallery, summary and details, and the output files to download, from the session."""
        thumbnails = [(entry.thumbnail, text.entry_caption(entry)) for entry in session.entries]
        details = text.entry_details(session.entry(session.selected)) if session.selected is not None else (
            "Select an image in the history to see its details.")
        return thumbnails, text.history_summary(session), details, list(session.shown) or None

    def history_selected(self, session: Session, evt: gr.SelectData) -> tuple[str, Session]:
        """Show the details of the history entry the visitor picked."""
        session.selected = evt.index if isinstance(evt.index, int) else None
        return text.entry_details(session.entry(session.selected)), session

    def output_selected(self, session: Session, evt: gr.SelectData) -> Session:
        """Remember which output image is picked (for Send to Edit)."""
        session.shown_selected = evt.index if isinstance(evt.index, int) else 0
        return session

    def compose_selected(self, session: Session, evt: gr.SelectData) -> Session:
        """Remember which compose input is picked (for the move and remove buttons)."""
        session.compose_selected = evt.index if isinstance(evt.index, int) else None
        return session

    def form_values(self, settings: dict[str, Any], current_model: str | None = None, *,
                    complete: bool = True) -> dict[str, Any]:
        """Form values (by field name) for settings as PNG Info or the history give them, and the tab to show.

        Keys: prompt, mode, model, aspect_ratio, size, temperature, top_p, top_k, seed (any may be missing). With
        `complete`, a missing option means "the model's default" and resets its field; without, it is left alone
        (an AUTOMATIC1111 image restores its prompt and seed only).
        """
        mode = next((m for m in Mode if m.value == settings.get("mode")), Mode.GENERATE)
        model = settings.get("model") if isinstance(settings.get("model"), str) else None
        spec = self._spec(model or current_model)
        values: dict[str, Any] = {"main_tabs": gr.Tabs(selected="studio"), "tabs": gr.Tabs(selected=TAB_IDS[mode])}
        if model:
            values["model"] = model
        defaults = {"aspect_ratio": None, "size": None, "temperature": 1.0, "top_p": 0.95, "top_k": None,
                    "seed": None}
        given = {k: settings[k] for k in defaults if settings.get(k) is not None}
        if complete:
            given = {**defaults, **given}
        if "aspect_ratio" in given:
            ratio = given["aspect_ratio"]
            values["aspect_ratio"] = gr.update(choices=aspect_choices(spec),
                                               value=ratio if ratio in spec.aspect_ratios else AUTO)
        if "size" in given:
            values["size"] = gr.update(choices=size_choices(spec), value=size_value(spec, given["size"]))
        for name in ("temperature", "top_p"):
            if name in given:
                values[name] = given[name]
        if "top_k" in given:
            values["top_k"] = given["top_k"] or 0
        if "seed" in given:
            values["seed"] = -1 if given["seed"] is None else given["seed"]
        if isinstance(settings.get("prompt"), str):
            values[{Mode.GENERATE: "prompt", Mode.EDIT: "edit_prompt", Mode.COMPOSE: "compose_prompt"}[mode]] = \
                settings["prompt"]
        return values

    def reuse(self, session: Session) -> dict[str, Any]:
        """Form values (by field name) that repeat the selected history entry's request."""
        entry = session.selected_entry
        if entry is None:
            raise gr.Error("The history is empty: make an image first.")
        options = entry.options
        values = self.form_values({"mode": entry.mode.value, "model": entry.model, "prompt": entry.prompt,
                                   "aspect_ratio": options.aspect_ratio, "size": options.size,
                                   "temperature": options.temperature, "top_p": options.top_p,
                                   "top_k": options.top_k, "seed": options.seed})
        values["output"] = IMAGE_AND_TEXT if options.with_text else IMAGE_ONLY
        inputs = existing(entry.inputs)
        if entry.mode is Mode.EDIT and inputs:
            values["edit_image"] = inputs[0]
        if entry.mode is Mode.COMPOSE and len(inputs) == len(entry.inputs):
            values["compose_images"] = inputs
        return values

    def send_to_edit(self, session: Session) -> tuple:
        """Put the selected history image into the Edit tab and show that tab."""
        entry = session.selected_entry
        if entry is None or entry.thumbnail is None:
            raise gr.Error("The history is empty: make an image first.")
        return entry.thumbnail, gr.Tabs(selected=TAB_IDS[Mode.EDIT])

    def output_to_edit(self, session: Session) -> tuple:
        """Put the picked output image into the Edit tab and show that tab."""
        if session.shown_image is None:
            raise gr.Error("There is no output image yet: make one first.")
        return session.shown_image, gr.Tabs(selected=TAB_IDS[Mode.EDIT])

    def add_to_compose(self, session: Session, compose_images: Sequence | None, model: str) -> tuple:
        """Append the selected history image to the Compose tab, refusing beyond the model's input limit."""
        entry = session.selected_entry
        if entry is None or entry.thumbnail is None:
            raise gr.Error("The history is empty: make an image first.")
        spec, images = self._spec(model), list(gallery_paths(compose_images))
        if len(images) >= spec.max_input_images:
            raise gr.Error(f"{spec.label} takes at most {spec.max_input_images} input images, and Compose has "
                           f"{len(images)}. Remove one first, or pick a model that takes more.")
        return images + [entry.thumbnail], gr.Tabs(selected=TAB_IDS[Mode.COMPOSE])

    def compose_move(self, session: Session, compose_images: Sequence | None, step: int) -> tuple:
        """Move the picked compose input earlier (step -1) or later (+1); order matters to the prompt."""
        images, index = list(gallery_paths(compose_images)), session.compose_selected
        if index is None or not 0 <= index < len(images):
            raise gr.Error("Click an image in Compose first, then move it.")
        target = min(max(index + step, 0), len(images) - 1)
        images.insert(target, images.pop(index))
        session.compose_selected = target
        return images, session

    def compose_earlier(self, session: Session, compose_images: Sequence | None) -> tuple:
        """Move the picked compose input one place earlier."""
        return self.compose_move(session, compose_images, -1)

    def compose_later(self, session: Session, compose_images: Sequence | None) -> tuple:
        """Move the picked compose input one place later."""
        return self.compose_move(session, compose_images, 1)

    def compose_remove(self, session: Session, compose_images: Sequence | None) -> tuple:
        """Remove the picked compose input."""
        images, index = list(gallery_paths(compose_images)), session.compose_selected
        if index is None or not 0 <= index < len(images):
            raise gr.Error("Click an image in Compose first, then remove it.")
        images.pop(index)
        session.compose_selected = None
        return images or None, session
