"""What several tabs do alike: send an image to Edit, add it to Compose, reuse settings; and refusing kindly.

Each action works on a `HistoryEntry` (the session panel and the History tab hold the same type) and returns the
Studio form's new values by field name; `StudioForm.updates` turns them into a dict keyed by component, which is
what an event handler returns. A refusal is a `gr.Error` raised inside `refusals_as_warnings()`: the visitor sees a
warning toast and the page stays as it was (no red "Error" over the outputs; see `NO_CHANGE`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.components import Component

from ..domain.errors import StudioError
from ..domain.models import get_model
from ..domain.request import Mode
from ..imaging.images import load_input_path
from ..storage.history import HistoryEntry
from . import text
from .controls import (
    AUTO,
    IMAGE_AND_TEXT,
    IMAGE_ONLY,
    MODEL_DEFAULT,
    aspect_choices,
    gallery_paths,
    gemini3_controls,
    size_choices,
    size_value,
)
from .session import existing, image_options

__all__ = [
    "NOTHING_PICKED", "TAB_IDS", "StudioForm", "add_to_compose", "entry_image", "form_values", "no_change",
    "not_an_image", "refuse", "refusals_as_warnings", "reuse_settings", "send_to_edit",
]

TAB_IDS = {Mode.GENERATE: "generate", Mode.EDIT: "edit", Mode.COMPOSE: "compose"}
STUDIO = "studio"  # the main tab's id
NOTHING_PICKED = "There is no image to use yet: make one (or click a thumbnail) first."


def refuse(message: str) -> gr.Error:
    """The page's refusal: raise it inside refusals_as_warnings() (a toast), or from an API event (AppError)."""
    return gr.Error(message, print_exception=False)


@contextmanager
def refusals_as_warnings() -> Iterator[None]:
    """Show a refusal (gr.Error) as a warning toast instead of painting "Error" over the event's outputs.

    Use: `with refusals_as_warnings(): return ...` followed by `return no_change()`.
    """
    try:
        yield
    except gr.Error as error:
        gr.Warning(str(error.message))


def no_change() -> Any:
    """What a handler returns to leave every output of its event as it was."""
    return gr.skip()


def not_an_image(path: str | None) -> str | None:
    """The Studio's message when an uploaded file is not an image it can send (None when it is fine)."""
    if not path:
        return None
    try:
        load_input_path(path)
    except StudioError as error:
        return error.message
    return None


@dataclass(frozen=True)
class StudioForm:
    """The Studio tab's components that other tabs fill, by field name (main_tabs, mode_tabs, prompt, model ...)."""

    fields: dict[str, Any]  # components, and the Tabs the actions switch

    def __getitem__(self, name: str) -> Component:
        return self.fields[name]

    def updates(self, values: dict[str, Any]) -> dict[Component, Any]:
        """Values by field name -> the dict keyed by component that an event handler returns."""
        return {self.fields[name]: value for name, value in values.items()}

    def components(self, *names: str) -> list[Component]:
        """The components for these field names (an event's outputs)."""
        return [self.fields[name] for name in names]


def _spec(model: str | None, default_model: str) -> Any:
    return get_model((model or "").strip() or default_model)


def entry_image(entry: HistoryEntry | None) -> str:
    """The entry's first image file that still exists; refused (with why) when there is none."""
    if entry is None:
        raise refuse(NOTHING_PICKED)
    found = [str(image.path) for image in entry.images if Path(image.path).is_file()]
    if not found:
        raise refuse("This entry has no image" + (" (the request failed)." if entry.error else
                                                 " file any more (see `history --verify`)."))
    return found[0]


def send_to_edit(entry: HistoryEntry | None) -> dict[str, Any]:
    """Put the entry's image into the Edit tab and show that tab."""
    return {"edit_image": entry_image(entry), "main_tabs": gr.Tabs(selected=STUDIO),
            "mode_tabs": gr.Tabs(selected=TAB_IDS[Mode.EDIT])}


def send_path_to_edit(path: str | None) -> dict[str, Any]:
    """Put an output image (by path) into the Edit tab and show that tab."""
    if path is None:
        raise refuse(NOTHING_PICKED)
    return {"edit_image": path, "mode_tabs": gr.Tabs(selected=TAB_IDS[Mode.EDIT])}


def add_to_compose(entry: HistoryEntry | None, compose_images: Sequence[Any] | None, model: str,
                   default_model: str) -> dict[str, Any]:
    """Append the entry's image to the Compose tab (within the model's input limit) and show that tab."""
    path = entry_image(entry)
    spec, images = _spec(model, default_model), list(gallery_paths(compose_images))
    if len(images) >= spec.max_input_images:
        raise refuse(f"{spec.label} takes at most {spec.max_input_images} input images, and Compose has "
                     f"{len(images)}. Remove one first, or pick a model that takes more.")
    images.append(path)
    return {"compose_images": images, "compose_limit": text.compose_limit(spec, len(images)),
            "main_tabs": gr.Tabs(selected=STUDIO), "mode_tabs": gr.Tabs(selected=TAB_IDS[Mode.COMPOSE])}


def form_values(settings: dict[str, Any], current_model: str | None, default_model: str, *,
                complete: bool = True) -> dict[str, Any]:
    """Form values (by field name) for settings as PNG Info or the history give them, and the tab to show.

    Keys: prompt, mode, model, aspect_ratio, size, temperature, top_p, top_k, seed (any may be missing). With
    `complete`, a missing option means "the model's default" and resets its field; without, it is left alone
    (an AUTOMATIC1111 image restores its prompt and seed only).
    """
    mode = next((m for m in Mode if m.value == settings.get("mode")), Mode.GENERATE)
    model = settings.get("model") if isinstance(settings.get("model"), str) else None
    spec = _spec(model or current_model, default_model)
    values: dict[str, Any] = {"main_tabs": gr.Tabs(selected=STUDIO), "mode_tabs": gr.Tabs(selected=TAB_IDS[mode])}
    if model:
        values["model"] = model
    defaults = {"aspect_ratio": None, "size": None, "temperature": 1.0, "top_p": 0.95, "top_k": None, "seed": None}
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
    values.update(_gemini3_values(settings, spec, complete))
    if isinstance(settings.get("prompt"), str):
        values[{Mode.GENERATE: "prompt", Mode.EDIT: "edit_prompt", Mode.COMPOSE: "compose_prompt"}[mode]] = \
            settings["prompt"]
    return values


def _gemini3_values(settings: dict[str, Any], spec: Any, complete: bool) -> dict[str, Any]:
    """The Gemini 3 controls for restored settings: shown as the model has them, a value it lacks reset."""
    defaults: dict[str, Any] = {"thinking": MODEL_DEFAULT, "show_thoughts": False, "search": False,
                                "image_search": False}
    given = {k: settings[k] for k in defaults if settings.get(k) is not None}
    if not complete and not given:
        return {}
    values = {**defaults, **given}
    controls = gemini3_controls(spec, values["thinking"], values["show_thoughts"], values["search"],
                                values["image_search"])
    return {name: gr.update(**{"value": values[name], **controls[name]})
            for name in defaults if complete or name in given}


def reuse_settings(entry: HistoryEntry | None, inputs: tuple[str, ...], default_model: str) -> dict[str, Any]:
    """Form values (by field name) that repeat an entry's request, its input images too while they still exist."""
    if entry is None:
        raise refuse(NOTHING_PICKED)
    options = image_options(entry.options)
    values = form_values({"mode": entry.mode, "model": entry.model, "prompt": entry.prompt,
                          "aspect_ratio": options.aspect_ratio, "size": options.size,
                          "temperature": options.temperature, "top_p": options.top_p, "top_k": options.top_k,
                          "seed": options.seed, "thinking": options.thinking, "show_thoughts": options.show_thoughts,
                          "search": options.search, "image_search": options.image_search}, None, default_model)
    values["output"] = IMAGE_AND_TEXT if options.with_text else IMAGE_ONLY
    found = existing(inputs)
    if entry.mode == Mode.EDIT.value and found:
        values["edit_image"] = found[0]
    if entry.mode == Mode.COMPOSE.value and found and len(found) == len(inputs):
        values["compose_images"] = found
    return values
