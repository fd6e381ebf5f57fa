"""What a request costs: from the response's token counts and the registry's prices."""

from __future__ import annotations

from .models import ModelSpec
from .request import ImageRequest, Usage

__all__ = ["cost_from_usage", "estimate_cost", "estimate_request_cost"]


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


def estimate_request_cost(spec: ModelSpec, request: ImageRequest) -> float | None:
    """Estimated USD for one request as it will be sent: its text and every input image actually sent (for a region
    edit, the crop or canvas and its mask, not the original), plus the output image."""
    output = spec.image_price(request.options.size)
    if output is None or spec.price is None:
        return None
    tokens = len(request.model_prompt()) // 4 + 1 + spec.input_image_tokens * len(request.images)
    return round(output + tokens * spec.price.input / 1e6, 6)
