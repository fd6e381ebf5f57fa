"""The settings panel as data: choices drawn from the selected model, and the form's values turned into ImageOptions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..backends.discovery import Availability
from ..domain.models import DEPRECATED, ModelSpec, get_model, known_models
from ..domain.request import ImageOptions

__all__ = [
    "AUTO", "IMAGE_AND_TEXT", "IMAGE_ONLY", "MAX_UI_COUNT", "MODEL_DEFAULT", "OUTPUT_CHOICES", "FormSettings",
    "aspect_choices", "aspect_value", "available_choices", "choice_label", "gallery_paths", "gemini3_controls",
    "model_choices", "size_choices", "size_value", "thinking_choices",
]

AUTO = "auto"  # aspect ratio: keep the input's shape (edit, compose) or the model's default (generate)
IMAGE_AND_TEXT = "Image + text"
IMAGE_ONLY = "Image only"
OUTPUT_CHOICES = (IMAGE_AND_TEXT, IMAGE_ONLY)
MAX_UI_COUNT = 4  # images per click in the page; the CLI's --count goes higher
MODEL_DEFAULT = ""  # thinking level: not sent, the model decides (the CLI without --thinking: one cache entry)


def choice_label(spec: ModelSpec) -> str:
    """A model's dropdown label: its name, "(deprecated)" when it is, and its price per image at its default size,
    or "price unknown"."""
    price = spec.image_price(spec.default_size)
    flag = " (deprecated)" if spec.status == DEPRECATED else ""  # still works, but Google recommends its successor
    return f"{spec.label}{flag} · " + (f"${price:.4f} per image" if price is not None else "price unknown")


def available_choices(availability: Availability, current: str | None = None) -> list[tuple[str, str]]:
    """(label, id) pairs for the model dropdown from what a key can use (registry models first, then unknown
    image models), plus the current model if it is not among them (the page never drops a value it shows)."""
    choices = [(choice_label(spec), spec.id) for spec in availability.models]
    if current and current not in [model_id for _, model_id in choices]:
        choices.append((choice_label(get_model(current)), current))
    return choices


def model_choices(current: str) -> list[tuple[str, str]]:
    """(label, id) pairs for the model dropdown: the registry, plus the configured model if it is not in it."""
    return available_choices(Availability(models=known_models()), current)


def thinking_choices(spec: ModelSpec) -> list[tuple[str, str]]:
    """(label, value) pairs for the thinking-level control: the model's default (not sent), then its levels."""
    return [("Model default", MODEL_DEFAULT), *((level, level) for level in spec.thinking_levels)]


def gemini3_controls(spec: ModelSpec, thinking: str | None, show_thoughts: bool, search: bool,
                     image_search: bool) -> dict[str, dict[str, Any]]:
    """Gradio update kwargs (by field name) for the Gemini 3 controls: shown only where the model has them, and
    reset where it lacks them, so nothing unsupported is sent. A value still offered is left alone (see
    studio_tab.model_controls for why)."""
    def control(offered: bool, value: object, default: object) -> dict[str, object]:
        update: dict[str, object] = {"visible": offered}
        if not offered and value != default:
            update["value"] = default
        return update

    thinking_update = control(bool(spec.thinking_levels), thinking or MODEL_DEFAULT, MODEL_DEFAULT)
    if spec.thinking_levels and (thinking or MODEL_DEFAULT) not in (MODEL_DEFAULT, *spec.thinking_levels):
        thinking_update["value"] = MODEL_DEFAULT
    return {"thinking": {**thinking_update, "choices": thinking_choices(spec)},
            "show_thoughts": control(spec.thoughts, bool(show_thoughts), False),
            "search": control(spec.search, bool(search), False),
            "image_search": control(spec.image_search, bool(image_search), False)}


def aspect_choices(spec: ModelSpec) -> list[tuple[str, str]]:
    """(label, value) pairs for the aspect-ratio dropdown: "auto" first, then what the model offers."""
    return [("Auto", AUTO), *((ratio, ratio) for ratio in spec.aspect_ratios)]


def size_choices(spec: ModelSpec) -> list[str]:
    """The image sizes the model makes; never one it does not."""
    return list(spec.sizes)


def gallery_paths(gallery: Sequence | None) -> tuple[str, ...]:
    """File paths from a Gallery value (a list of (path, caption) pairs, or of paths)."""
    return tuple(str(item[0] if isinstance(item, (tuple, list)) else item) for item in gallery or ())


def aspect_value(spec: ModelSpec, current: str | None) -> str:
    """The aspect-ratio value to keep after a model change: the current one if still offered, else auto."""
    return current if current in spec.aspect_ratios else AUTO


def size_value(spec: ModelSpec, current: str | None) -> str:
    """The size to keep after a model change: the current one if still offered, else the model's default."""
    return current if current in spec.sizes else spec.default_size


@dataclass(frozen=True)
class FormSettings:
    """The shared settings panel's values, as the page (or an API caller) sent them."""

    model: str = ""
    aspect_ratio: str = AUTO
    size: str = ""
    temperature: float | None = 1.0
    top_p: float | None = 0.95
    top_k: int | None = 0
    seed: int | None = -1
    count: int = 1
    output: str = IMAGE_AND_TEXT
    thinking: str | None = MODEL_DEFAULT
    show_thoughts: bool = False
    search: bool = False
    image_search: bool = False

    def model_id(self, default: str) -> str:
        """The model to use: the form's, or the configured default when the form left it empty."""
        return (self.model or "").strip() or default

    def options(self, spec: ModelSpec) -> ImageOptions:
        """The ImageOptions these values mean for this model (sentinels such as seed -1 become "not sent")."""
        size = self.size or None
        # A model's only size is sent as "absent": there is nothing to choose, and the request then matches the
        # CLI's default one (same cache entry). Any other value is passed on for the Studio to judge.
        if size is not None and spec.sizes == (size,):
            size = None
        return ImageOptions(
            aspect_ratio=None if self.aspect_ratio in (AUTO, "", None) else self.aspect_ratio,
            size=size,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=int(self.top_k) if self.top_k else None,  # 0 or empty: the model's default
            seed=None if self.seed is None or self.seed < 0 else int(self.seed),  # -1: no seed
            with_text=self.output != IMAGE_ONLY,
            # Gemini 3 controls as given: one the model lacks is refused by the Studio, naming who has it.
            thinking=(self.thinking or "").strip() or None,
            show_thoughts=bool(self.show_thoughts),
            search=bool(self.search),
            image_search=bool(self.image_search),
        )

    def image_count(self) -> int:
        """How many images to make, as an int (sliders may send floats)."""
        return int(self.count or 1)
