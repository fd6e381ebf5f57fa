"""Prompt craft through a text model: enhance a short idea into a full prompt, and turn an image back into a prompt.

Each call goes through the Studio's limiter, retry policy, cache, cost meter and history, like an image request:
a repeated request is answered from the cache ($0), and every outcome (failures too) is a history entry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from ..domain.errors import InputError, ModelNotFoundError, StudioError
from ..domain.request import Usage
from ..domain.text_models import text_cost
from ..domain.text_request import TextRequest, TextResult
from ..storage.history.store import new_entry_id
from .sending import EventSink
from .studio import Studio
from .validation import ImageSource, load_inputs

__all__ = ["DESCRIBE_EDIT_INSTRUCTION", "DESCRIBE_INSTRUCTION", "ENHANCE_INSTRUCTION", "MAX_IDEA_CHARS",
           "PromptCrafter"]

log = logging.getLogger(__name__)
MAX_IDEA_CHARS = 4000

ENHANCE_INSTRUCTION = (
    "You write prompts for an image generation model. Rewrite the user's idea into one complete image prompt that "
    "states: the subject; the composition; the lighting; the colour palette; the lens or the medium; and any text "
    "to render in the picture, quoted exactly as the user quoted it. Keep the user's meaning and every word they "
    "quoted; do not add people, brands or text they did not ask for. Answer with the prompt only, no preamble.")
DESCRIBE_INSTRUCTION = (
    "Write one prompt for an image generation model that would remake this picture. State: the subject; the style; "
    "the composition; the lighting; the colour palette; the camera or medium; and any visible text, quoted exactly. "
    "Answer with the prompt only, no preamble.")
DESCRIBE_EDIT_INSTRUCTION = (
    "The first image is BEFORE, the second is AFTER. Write the one editing instruction that would turn BEFORE into "
    "AFTER for an image editing model: say what changes and what stays. Quote any text exactly. Answer with the "
    "instruction only, no preamble.")


class PromptCrafter:
    """The prompt enhancer and image to prompt, for one Studio (its key, cache, limits and history)."""

    def __init__(self, studio: Studio) -> None:
        self.studio = studio

    def enhance_request(self, text: str, *, style: str | None = None, model: str | None = None) -> TextRequest:
        """Check an idea and build its request (nothing sent): with `style`, the idea wrapped in its template."""
        idea = (text or "").strip()
        if not idea:
            raise InputError("Nothing to enhance: type an idea first (a few words are enough).")
        if len(idea) > MAX_IDEA_CHARS:
            raise InputError(f"The idea is {len(idea):,} characters; the enhancer takes at most {MAX_IDEA_CHARS:,}.")
        chosen = self.studio.styles.get(style) if style and style.strip() else None
        return TextRequest(kind="enhance", model=self._model(model), text=chosen.apply(idea) if chosen else idea,
                           instruction=ENHANCE_INSTRUCTION, style=chosen.id if chosen else None)

    def describe_request(self, images: Sequence[ImageSource], *, for_edit: bool = False,
                         model: str | None = None) -> TextRequest:
        """Check the image(s) and build the request (nothing sent); inputs lose their personal metadata."""
        wanted = 2 if for_edit else 1
        if len(images) != wanted:
            raise InputError("--for-edit takes two images, BEFORE and AFTER." if for_edit else
                             f"Describe takes one image (got {len(images)}); for two, add --for-edit.")
        inputs = load_inputs(tuple(images))  # sniffed, oriented, downscaled, GPS and serials stripped
        kind = "describe-edit" if for_edit else "describe"
        words = ("Write the instruction that turns BEFORE into AFTER." if for_edit
                 else "Write a prompt that would remake this picture.")
        return TextRequest(kind=kind, model=self._model(model), text=words,
                           instruction=DESCRIBE_EDIT_INSTRUCTION if for_edit else DESCRIBE_INSTRUCTION,
                           images=inputs)

    async def enhance(self, text: str, *, style: str | None = None, model: str | None = None,
                      use_cache: bool = True, owner: str | None = None,
                      on_event: EventSink | None = None) -> TextResult:
        """Rewrite an idea into a full image prompt (subject, composition, lighting, palette, lens, quoted text)."""
        request = self.enhance_request(text, style=style, model=model)
        return await self.run(request, use_cache=use_cache, owner=owner, on_event=on_event)

    async def describe(self, images: Sequence[ImageSource], *, for_edit: bool = False, model: str | None = None,
                       use_cache: bool = True, owner: str | None = None,
                       on_event: EventSink | None = None) -> TextResult:
        """A prompt that would remake the image; with `for_edit`, the instruction that turns one image into another."""
        request = await asyncio.to_thread(self.describe_request, images, for_edit=for_edit, model=model)
        return await self.run(request, use_cache=use_cache, owner=owner, on_event=on_event)

    async def run(self, request: TextRequest, *, use_cache: bool = True, owner: str | None = None,
                  on_event: EventSink | None = None) -> TextResult:
        """Answer a text request from the cache ($0) or the model; meter its cost and record it in the history."""
        started = time.perf_counter()
        try:
            result = await self._answer(request, use_cache, on_event, started)
        except StudioError as error:
            await self._record(request, error=error, elapsed_s=time.perf_counter() - started, owner=owner)
            raise
        entry_id = new_entry_id()
        await self._record(request, result=result, elapsed_s=result.elapsed_s, owner=owner, entry_id=entry_id)
        return TextResult(id=entry_id, request=request, prompt=result.prompt, finish_reason=result.finish_reason,
                          usage=result.usage, cost_usd=result.cost_usd, cached=result.cached,
                          saved_usd=result.saved_usd, elapsed_s=result.elapsed_s)

    def _model(self, model: str | None) -> str:
        return (model or "").strip() or self.studio.settings.text_model

    async def _answer(self, request: TextRequest, use_cache: bool, on_event: EventSink | None,
                      started: float) -> TextResult:
        studio = self.studio
        key = request.cache_key()
        entry = await asyncio.to_thread(studio.cache.lookup, key) if use_cache else None
        if entry is not None:
            saved = entry.cost_usd or 0.0
            await asyncio.to_thread(studio.budget.add_cost, 0.0, saved)
            return TextResult(id="", request=request, prompt=entry.text, finish_reason=entry.finish_reason,
                              usage=Usage(**entry.usage), cost_usd=0.0, cached=True, saved_usd=saved,
                              elapsed_s=time.perf_counter() - started)
        try:
            reply = await studio.text_sender.send(request, on_event)
        except ModelNotFoundError as error:
            raise ModelNotFoundError(f"{error.message} The prompt enhancer and image to prompt use the text model "
                                     f"{request.model}; set NANOBANANA_TEXT_MODEL (or --model) to a text model this "
                                     "key can use.", model=request.model) from error
        cost = 0.0 if studio.offline else text_cost(request.model, reply.usage)
        usage = {name: getattr(reply.usage, name) for name in Usage.__dataclass_fields__}
        await asyncio.to_thread(studio.cache.store, key, [], {"text": reply.text, "finish_reason": reply.finish_reason,
                                                              "usage": usage, "cost_usd": cost})
        if not studio.offline and cost:
            await asyncio.to_thread(studio.budget.add_cost, cost)
        return TextResult(id="", request=request, prompt=reply.text, finish_reason=reply.finish_reason,
                          usage=reply.usage, cost_usd=cost, elapsed_s=time.perf_counter() - started)

    async def _record(self, request: TextRequest, **fields: object) -> None:
        """Write the history entry off the event loop; a failed write is logged, never the request's failure."""
        try:
            await asyncio.to_thread(lambda: self.studio.history.record_text(request, **fields))  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - the answer is made; only its history line is lost
            log.warning("could not record the request in the history: %s: %s", type(exc).__name__, exc)
