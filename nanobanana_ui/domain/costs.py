"""What a request costs: from the response's token counts and the registry's prices; and how a cost reads."""

from __future__ import annotations

from .models import ModelSpec
from .request import ImageRequest, Usage

__all__ = ["CACHED_TEXT", "cost_from_usage", "cost_text", "estimate_cost", "estimate_request_cost", "search_cost",
           "status_text"]

CACHED_TEXT = "cached · $0"  # a cache hit: no call was made, nothing was paid


def cost_from_usage(spec: ModelSpec, usage: Usage, *, size: str | None = None, images: int = 1) -> float | None:
    """USD for one response, or None when the model's price is unknown.

    A per-image price (a user's models.json `price_per_image`) for this `size` prices the `images` output images
    instead of their tokens; input and text are then priced by the token prices when known.
    """
    per_image = spec.per_image_usd.get(size or spec.default_size)
    if per_image is not None:
        rest = 0.0 if spec.price is None else (
            usage.prompt_tokens * spec.price.input + (usage.text_tokens + usage.thought_tokens) * spec.price.output_text
        ) / 1e6
        return round(per_image * images + rest, 6)
    if spec.price is None:
        return None
    # Output tokens the response did not attribute to a modality are charged as image tokens (the dearer kind).
    unattributed = max(usage.output_tokens - usage.image_tokens - usage.text_tokens, 0)
    # Thinking (thoughtsTokenCount, not part of the candidates' count) is billed as text output: Google's price list
    # reads "text and thinking" for the Gemini 3 image models. Interim thought images themselves are free.
    dollars = (
        usage.prompt_tokens * spec.price.input
        + (usage.image_tokens + unattributed) * spec.price.output_image
        + (usage.text_tokens + usage.thought_tokens) * spec.price.output_text
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


def cost_text(cost_usd: float | None, *, cached: bool = False) -> str:
    """How a result's cost reads everywhere: "cached · $0" for a cache hit, else "$0.0387", or "cost unknown"."""
    if cached:
        return CACHED_TEXT
    return "cost unknown" if cost_usd is None else f"${cost_usd:.4f}"


def elapsed_text(seconds: float | None) -> str:
    """How long a call took: "12 ms" under a tenth of a second (the emulator, the cache), else "3.4 s"."""
    seconds = seconds or 0.0
    return f"{max(seconds * 1000, 1):.0f} ms" if seconds < 0.1 else f"{seconds:.1f} s"


def finish_text(reason: str | None) -> str:
    """The finish reason in words: nothing for a normal finish (STOP), else the reason as Gemini gave it."""
    return "" if reason in (None, "", "STOP") else f"finished: {reason}"


def status_text(*, cost_usd: float | None, cached: bool, finish_reason: str | None, elapsed_s: float | None,
                text: str = "") -> str:
    """A result's status in one line: cost (or the cache badge), an unusual finish reason, time, the model's words."""
    parts = [cost_text(cost_usd, cached=cached), finish_text(finish_reason), elapsed_text(elapsed_s), text.strip()]
    return " · ".join(part for part in parts if part)


def estimate_request_cost(spec: ModelSpec, request: ImageRequest) -> float | None:
    """Estimated USD for one request as it will be sent: its text and every input image actually sent (for a region
    edit, the crop or canvas and its mask, not the original), plus the output image."""
    output = spec.image_price(request.options.size)
    if output is None:
        return None
    if spec.price is None:  # a user's per-image price alone: the output image is what is known
        return round(output, 6)
    sent = len(request.images) + (len(request.kit.references) if request.kit is not None else 0)
    tokens = len(request.model_prompt()) // 4 + 1 + spec.input_image_tokens * sent
    return round(output + tokens * spec.price.input / 1e6, 6)
