"""The image model registry: what each Gemini image model can do and what it costs, loaded from models.json."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = ["ModelSpec", "Price", "default_model_id", "get_model", "known_models", "pixel_size"]

# Gemini's published 1K pixel sizes; other sizes scale these, other ratios are derived below.
_ONE_K_PIXELS = {
    "1:1": (1024, 1024), "2:3": (832, 1248), "3:2": (1248, 832), "3:4": (864, 1184),
    "4:3": (1184, 864), "4:5": (896, 1152), "5:4": (1152, 896), "9:16": (768, 1344),
    "16:9": (1344, 768), "21:9": (1536, 672),
}
_SIZE_SCALE = {"512": 0.5, "1K": 1, "2K": 2, "4K": 4}


@dataclass(frozen=True)
class Price:
    """USD per million tokens, by kind of token."""

    input: float
    output_text: float
    output_image: float


@dataclass(frozen=True)
class ModelSpec:
    """One image model's capabilities and price, as the UI and validation use them."""

    id: str
    label: str
    sizes: tuple[str, ...]
    aspect_ratios: tuple[str, ...]
    max_input_images: int
    input_image_tokens: int
    output_image_tokens: dict[str, int]
    price: Price | None
    aliases: tuple[str, ...] = ()
    known: bool = True

    @property
    def default_size(self) -> str:
        """The size used when the request names none: 1K where the model has it."""
        return "1K" if "1K" in self.sizes else self.sizes[0]

    def image_price(self, size: str | None) -> float | None:
        """Estimated USD for one output image of this size, or None when the price is unknown."""
        if self.price is None:
            return None
        tokens = self.output_image_tokens.get(size or self.default_size)
        return None if tokens is None else tokens * self.price.output_image / 1e6


def _spec_from_entry(entry: dict[str, Any]) -> ModelSpec:
    return ModelSpec(
        id=entry["id"],
        label=entry["label"],
        sizes=tuple(entry["sizes"]),
        aspect_ratios=tuple(entry["aspect_ratios"]),
        max_input_images=int(entry["max_input_images"]),
        input_image_tokens=int(entry["input_image_tokens"]),
        output_image_tokens={k: int(v) for k, v in entry["output_image_tokens"].items()},
        price=Price(**entry["price_per_million"]),
        aliases=tuple(entry.get("aliases", ())),
    )


@lru_cache(maxsize=1)
def _registry() -> tuple[str, tuple[ModelSpec, ...]]:
    data = json.loads(resources.files(__package__).joinpath("models.json").read_text("utf-8"))
    return data["default"], tuple(_spec_from_entry(e) for e in data["models"])


def known_models() -> tuple[ModelSpec, ...]:
    """Every model in the registry, in display order."""
    return _registry()[1]


def default_model_id() -> str:
    """The registry's default model id (NANOBANANA_MODEL overrides it in Settings)."""
    return _registry()[0]


def get_model(model_id: str) -> ModelSpec:
    """The spec for a model id or alias; an unknown id gets conservative capabilities and no price."""
    for spec in known_models():
        if model_id == spec.id or model_id in spec.aliases:
            return spec
    # Unknown ids (new releases, relays' names) are allowed, but only with what every image model supports.
    return ModelSpec(
        id=model_id, label=model_id, sizes=("1K",), aspect_ratios=tuple(_ONE_K_PIXELS),
        max_input_images=3, input_image_tokens=258, output_image_tokens={"1K": 1290},
        price=None, known=False,
    )


def pixel_size(aspect_ratio: str, size: str = "1K") -> tuple[int, int]:
    """Width and height in pixels of an output image of this aspect ratio and size."""
    scale = _SIZE_SCALE.get(size, 1)
    if aspect_ratio in _ONE_K_PIXELS:
        w, h = _ONE_K_PIXELS[aspect_ratio]
    else:  # e.g. 1:4 or 8:1 on Nano Banana 2: about one megapixel, sides multiples of 16
        a, b = (int(x) for x in aspect_ratio.split(":"))
        w = round(math.sqrt(1024 * 1024 * a / b) / 16) * 16
        h = round(math.sqrt(1024 * 1024 * b / a) / 16) * 16
    return int(w * scale), int(h * scale)
