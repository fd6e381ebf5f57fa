"""What a request costs: from the response's token counts and the registry's prices."""

from __future__ import annotations

from .models import ModelSpec
from .request import Usage

__all__ = ["cost_from_usage", "estimate_cost", "search_cost"]


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


def search_cost(spec: ModelSpec, queries: int) -> float:
    """USD for the Google Search queries of one answer, at the registry's paid rate.

    Google's monthly free allowance (5,000 queries shared by the Gemini 3 models) is not tracked here, so the meter
    shows the paid rate: an upper bound.
    """
    price = spec.search_price
    return 0.0 if price is None or queries <= 0 else round(queries * price, 6)


def estimate_cost(spec: ModelSpec, size: str | None, count: int = 1) -> float | None:
    """Estimated USD for `count` images of this size, before sending (output images only)."""
    price = spec.image_price(size)
    return None if price is None else round(price * count, 6)
