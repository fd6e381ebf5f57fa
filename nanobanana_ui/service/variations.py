"""Several variations of one request made in parallel, each outcome an image result or the error that stopped it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..domain.errors import StudioError
from ..domain.request import ImageRequest, ImageResult

__all__ = ["Outcome", "gather_variations"]

Outcome = ImageResult | StudioError


async def gather_variations(request: ImageRequest, count: int, make: Callable[[ImageRequest], Awaitable[ImageResult]],
                            on_result: Callable[[Outcome], None] | None = None) -> list[Outcome]:
    """`make` on variations n, n+1, ... of `request` at once; errors are returned, not raised.

    `on_result` is called with each outcome as it arrives (for progress), in the order they finish.
    """

    async def one(variation: int) -> Outcome:
        try:
            outcome: Outcome = await make(request.with_variation(variation))
        except StudioError as error:
            outcome = error
        if on_result is not None:
            on_result(outcome)
        return outcome

    first = request.options.variation
    return list(await asyncio.gather(*(one(first + i) for i in range(count))))
