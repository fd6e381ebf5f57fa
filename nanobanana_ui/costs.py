"""What a request costs: from the response's token counts and the registry's prices."""

from __future__ import annotations

from .models import ModelSpec
from .request import Usage

__all__ = ["cost_from_usage", "estimate_cost"]


def cost_from_usage(spec: ModelSpec, usage: Usage) -> float | None:
    """USD for one response, or None when the model's price is unknown."""
    if spec.price is None:
        return None
    # Output tokens the response did not attribute to a modality are charged as image tokens (the dearer kind).
    unattributed = max(usage.output_tokens - usage.image_tokens - usage.text_tokens, 0)
    dollars = (
        usage.prompt_tokens * spec.price.input
        + (usage.image_tokens + unattributed) * spec.price.output_image
        + usage.text_tokens * spec.price.output_text
    ) / 1e6
    return round(dollars, 6)


def estimate_cost(spec: ModelSpec, size: str | None, count: int = 1) -> float | None:
    """Estimated USD for `count` images of this size, before sending (output images only)."""
    price = spec.image_price(size)
    return None if price is None else round(price * count, 6)
