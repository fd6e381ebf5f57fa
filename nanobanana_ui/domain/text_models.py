"""The text models (models.json's `text_models`, `kind: text`): what the prompt enhancer and image to prompt call."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from .request import Usage

__all__ = ["TextModel", "default_text_model_id", "find_text_model", "text_cost", "text_models"]


@dataclass(frozen=True)
class TextModel:
    """One text model: its id, label, lifecycle and USD per million input and output tokens (None: unknown)."""

    id: str
    label: str
    status: str = "ga"
    since: str | None = None
    input_price: float | None = None
    output_price: float | None = None
    input_image_tokens: int = 258
    default: bool = False


@lru_cache(maxsize=1)
def text_models() -> tuple[TextModel, ...]:
    """The registry's text models, in file order."""
    data = json.loads(resources.files(__package__).joinpath("models.json").read_text("utf-8"))
    models = []
    for entry in data.get("text_models") or ():
        price = entry.get("price_per_million") or {}
        models.append(TextModel(id=entry["id"], label=entry.get("label") or entry["id"],
                                status=entry.get("status", "ga"), since=entry.get("since"),
                                input_price=price.get("input"), output_price=price.get("output_text"),
                                input_image_tokens=int(entry.get("input_image_tokens", 258)),
                                default=bool(entry.get("default"))))
    return tuple(models)


def default_text_model_id() -> str:
    """The registry's default text model (NANOBANANA_TEXT_MODEL overrides it in Settings)."""
    models = text_models()
    return next((m.id for m in models if m.default), models[0].id if models else "gemini-3.1-flash-lite")


def find_text_model(model_id: str) -> TextModel | None:
    """The registry's entry for a text model id, or None (an unknown id may still be called: no price then)."""
    return next((m for m in text_models() if m.id == model_id), None)


def text_cost(model_id: str, usage: Usage) -> float | None:
    """USD for one text answer from its token counts (thinking billed as output); None when the price is unknown."""
    spec = find_text_model(model_id)
    if spec is None or spec.input_price is None or spec.output_price is None:
        return None
    output = max(usage.output_tokens, usage.text_tokens) + usage.thought_tokens
    return round((usage.prompt_tokens * spec.input_price + output * spec.output_price) / 1e6, 9)
