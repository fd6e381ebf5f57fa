"""The settings panel as data: choices drawn from the selected model, and the form's values turned into ImageOptions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..models import ModelSpec, get_model, known_models
from ..request import ImageOptions

__all__ = [
    "AUTO", "IMAGE_AND_TEXT", "IMAGE_ONLY", "MAX_UI_COUNT", "OUTPUT_CHOICES", "FormSettings", "aspect_choices",
    "aspect_value", "gallery_paths", "model_choices", "size_choices", "size_value",
]

AUTO = "auto"  # aspect ratio: keep the input's shape (edit, compose) or the model's default (generate)
IMAGE_AND_TEXT = "Image + text"
IMAGE_ONLY = "Image only"
OUTPUT_CHOICES = (IMAGE_AND_TEXT, IMAGE_ONLY)
MAX_UI_COUNT = 4  # images per click in the page; the CLI's --count goes higher


def model_choices(current: str) -> list[tuple[str, str]]:
    """(label, id) pairs for the model dropdown: the registry, plus the configured model if it is not in it."""
    choices = [(spec.label, spec.id) for spec in known_models()]
    if current not in [model_id for _, model_id in choices]:
        choices.append((get_model(current).label, current))
    return choices


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
        )

    def image_count(self) -> int:
        """How many images to make, as an int (sliders may send floats)."""
        return int(self.count or 1)
