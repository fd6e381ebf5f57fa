"""The Studio service: generate, edit and compose, with the result cache, limits, history and saved outputs.

Every front end (CLI, Gradio UI, HTTP API) goes through this class and nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Protocol

from .cache import CachedEntry, ResultCache
from .config import Settings
from .costs import cost_from_usage, estimate_request_cost
from .errors import InputError, ModelNotFoundError, StudioError
from .gemini import BackendReply
from .history import HistoryStore
from .limits import DailyBudget, DailyUsage, shared_rate_limiter
from .models import get_model
from .outputs import dimensions, save_images, with_provenance
from .region_blend import blend_answer, prepare_blend
from .regions import build_region_request
from .request import ImageOptions, ImageRequest, ImageResult, Mode, Usage
from .retry import RetryPolicy
from .sending import EventSink, GuardedSender
from .transport import SendObserver
from .validation import ImageSource, build_request

__all__ = ["MAX_COUNT", "Backend", "Studio"]

MAX_COUNT = 100
log = logging.getLogger(__name__)


class Backend(Protocol):
    """What the Studio needs from a backend (GeminiBackend, or a test double)."""

    async def generate(self, request: ImageRequest, *, observer: SendObserver | None = None) -> BackendReply:
        """Send one request; tell `observer` when its last byte left; a failure raises a StudioError."""
    async def list_image_models(self) -> tuple[str, ...]:
        """Ids of the image models the key can use."""

    async def aclose(self) -> None:
        """Release the client."""


class Studio:
    """Generate, edit and compose images; one instance per key (it owns that key's client)."""

    def __init__(self, settings: Settings, *, backend: Backend | None = None, cache: ResultCache | None = None,
                 retry_policy: RetryPolicy | None = None) -> None:
        self.settings = settings
        # Decided once: the backend, once created, must not change the answer (meter, limits, banner all ask).
        self._offline = backend is None and settings.uses_emulator
        self.retry_policy = retry_policy or RetryPolicy(max_attempts=settings.max_attempts,
                                                        max_total_wait_s=settings.max_retry_wait_s)
        self._backend = backend
        self._cache = cache
        self._history: HistoryStore | None = None
        self._history_lock = threading.Lock()  # opened in a worker thread; two at once must not open it twice
        self._budget: DailyBudget | None = None
        self._sender: GuardedSender | None = None
        self._in_flight: dict[str, asyncio.Task[ImageResult]] = {}
        self.emulator_url: str | None = None

    @property
    def offline(self) -> bool:
        """True when requests go to the embedded emulator rather than Gemini."""
        return self._offline

    @property
    def busy(self) -> bool:
        """True while a request is being answered (a Studio is closed only when it is not)."""
        return bool(self._in_flight)

    @property
    def backend(self) -> Backend:
        """The backend, created on first use (starting the emulator only when it is needed)."""
        if self._backend is None:
            from .gemini import GeminiBackend

            if self.settings.uses_emulator:
                from .emulator import OFFLINE_API_KEY, shared_emulator

                self.emulator_url = shared_emulator().base_url
                self._backend = GeminiBackend(api_key=OFFLINE_API_KEY, base_url=self.emulator_url,
                                              timeout_s=self.settings.timeout_s)
            else:
                self._backend = GeminiBackend(api_key=self.settings.api_key or "", base_url=self.settings.base_url,
                                              timeout_s=self.settings.timeout_s)
        return self._backend

    @property
    def cache(self) -> ResultCache:
        """The result cache, opened on first use."""
        if self._cache is None:
            self._cache = ResultCache(self.settings.cache_dir, self.settings.cache_size_bytes)
        return self._cache

    @property
    def history(self) -> HistoryStore:
        """The persistent history of this data directory, opened on first use (the key is redacted from it)."""
        with self._history_lock:
            if self._history is None:
                self._history = HistoryStore(self.settings.home, redact=(self.settings.api_key or "",))
        return self._history

    @property
    def budget(self) -> DailyBudget:
        """Today's request and cost counters on this data directory (NANOBANANA_RPD)."""
        if self._budget is None:
            self._budget = DailyBudget(self.settings.quota_dir, self.settings.rpd)
        return self._budget

    @property
    def sender(self) -> GuardedSender:
        """Budget, rate limit and retries around the backend; the offline emulator has no quota to guard."""
        if self._sender is None:
            limiter = budget = None
            if not self.offline:
                endpoint = self.settings.base_url or "https://generativelanguage.googleapis.com"
                limiter = shared_rate_limiter(endpoint, self.settings.rpm, self.settings.rate_window_s)
                budget = self.budget
            self._sender = GuardedSender(self._generate, policy=self.retry_policy, limiter=limiter, budget=budget)
        return self._sender

    def usage_today(self) -> DailyUsage:
        """Requests sent today against the budget, today's cost and cache savings (Pacific days)."""
        return self.budget.usage()

    def build_request(self, mode: Mode, prompt: str, images: Sequence[ImageSource] = (), *,
                      model: str | None = None, options: ImageOptions | None = None,
                      mask: ImageSource | None = None, feather: int | None = None, extend_to: str | None = None,
                      anchor: str | None = None) -> ImageRequest:
        """Validate everything that can be checked before a call, and build the request.

        With `mask` (white = the region) or `extend_to` (a ratio; `anchor` center/left/right/top/bottom), an edit
        becomes a region edit: a crop or a larger canvas is sent, and the answer is blended back (regions.py).
        """
        if mask is None and extend_to is None and feather is None and anchor is None:
            return build_request(mode, prompt, images, model=model or self.settings.model, options=options)
        if mode is not Mode.EDIT or len(images) != 1:
            raise InputError("A mask, feather, extend-to or anchor applies to an edit of one image only.")
        return build_region_request(images[0], prompt, model=model or self.settings.model, options=options,
                                    mask=mask, feather=feather, extend_to=extend_to, anchor=anchor)

    def estimate(self, request: ImageRequest) -> float | None:
        """Estimated USD of sending this request once, counting what is sent (a region edit's crop and mask)."""
        return estimate_request_cost(get_model(request.model), request)

    async def generate(self, prompt: str, *, model: str | None = None, options: ImageOptions | None = None,
                       use_cache: bool = True, out_dir: Path | None = None, on_event: EventSink | None = None,
                       owner: str | None = None) -> ImageResult:
        """Text to image (the other keywords as for `run`)."""
        request = self.build_request(Mode.GENERATE, prompt, (), model=model, options=options)
        return await self.run(request, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner)

    async def edit(self, image: ImageSource, prompt: str, *, model: str | None = None,
                   options: ImageOptions | None = None, use_cache: bool = True, out_dir: Path | None = None,
                   on_event: EventSink | None = None, owner: str | None = None, mask: ImageSource | None = None,
                   feather: int | None = None, extend_to: str | None = None, anchor: str | None = None) -> ImageResult:
        """One image plus an instruction; with `mask` or `extend_to`, a region edit (see build_request); the other
        keywords as for `run`."""
        request = self.build_request(Mode.EDIT, prompt, (image,), model=model, options=options, mask=mask,
                                     feather=feather, extend_to=extend_to, anchor=anchor)
        return await self.run(request, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner)

    async def compose(self, images: Sequence[ImageSource], prompt: str, *, model: str | None = None,
                      options: ImageOptions | None = None, use_cache: bool = True, out_dir: Path | None = None,
                      on_event: EventSink | None = None, owner: str | None = None) -> ImageResult:
        """Several images plus an instruction (the other keywords as for `run`)."""
        request = self.build_request(Mode.COMPOSE, prompt, tuple(images), model=model, options=options)
        return await self.run(request, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner)

    async def run(self, request: ImageRequest, *, use_cache: bool = True, out_dir: Path | None = None,
                  on_event: EventSink | None = None, owner: str | None = None) -> ImageResult:
        """Answer one request: from the cache when possible (no call, $0), else from the API; save the images.

        `on_event` receives a line for each rate-limit wait and retry. An identical request already in flight is
        not sent again: this call shares its answer. Outcomes, failures too, go into the history under `owner`.
        """
        started = time.perf_counter()
        try:
            result = await self._answer(request, use_cache, out_dir, on_event, started)
        except StudioError as error:
            await self._record("record_failure", request, error, elapsed_s=time.perf_counter() - started, owner=owner)
            raise
        await self._record("record_result", result, owner=owner)
        return result

    async def _record(self, method: str, *args: object, **kwargs: object) -> None:
        """Write to the history off the event loop; a failed write is logged, never the request's failure."""
        try:
            await asyncio.to_thread(lambda: getattr(self.history, method)(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - the image is made and saved; only its history line is lost
            log.warning("could not record the request in the history: %s: %s", type(exc).__name__, exc)

    async def _answer(self, request: ImageRequest, use_cache: bool, out_dir: Path | None,
                      on_event: EventSink | None, started: float) -> ImageResult:
        out_dir = out_dir or self.settings.output_dir
        key = request.cache_key()
        # Disk work (hashing, cache, fsync'd saves) runs in a thread so other visitors' requests keep flowing.
        entry = await asyncio.to_thread(self.cache.lookup, key) if use_cache else None
        if entry is not None:
            result = await asyncio.to_thread(self._replay, request, entry, out_dir, started)
            await asyncio.to_thread(self.budget.add_cost, 0.0, result.saved_usd)
            return result
        task = self._in_flight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._fetch(request, out_dir, started, on_event))
            task.add_done_callback(lambda done: done.cancelled() or done.exception())  # mark failures as seen
            self._in_flight[key] = task
            task.add_done_callback(lambda _: self._in_flight.pop(key, None))
        return await asyncio.shield(task)  # a caller who gives up does not cancel the others' answer

    async def _fetch(self, request: ImageRequest, out_dir: Path, started: float,
                     on_event: EventSink | None) -> ImageResult:
        # A region edit gets a head start on its output while the model works (see region_blend.prepare_blend).
        ahead = None if request.region is None else asyncio.ensure_future(
            asyncio.to_thread(prepare_blend, request.region))
        reply = await self.sender.send(request, on_event)
        if ahead is not None:
            await ahead
        result = await asyncio.to_thread(self._keep, request, reply, out_dir, started)
        if not self.offline:
            await asyncio.to_thread(self.budget.add_cost, result.cost_usd)
        return result

    def _replay(self, request: ImageRequest, entry: CachedEntry, out_dir: Path, started: float) -> ImageResult:
        pairs = zip(entry.paths, entry.images, strict=True)
        images: list[tuple[bytes, str, Path | None]] = [(path.read_bytes(), mime, path) for path, (_, mime) in pairs]
        return self._result(request, images, entry.text, entry.finish_reason, Usage(**entry.usage),
                            cost=0.0, cached=True, saved=entry.cost_usd or 0.0, out_dir=out_dir, started=started)

    def _keep(self, request: ImageRequest, reply: BackendReply, out_dir: Path, started: float) -> ImageResult:
        for data, _ in reply.images:  # an unreadable image must fail here, before it is cached
            dimensions(data)
        if request.region is not None:  # the answer is a crop or canvas: put it back into the original
            reply = replace(reply, images=tuple((blend_answer(request.region, data), "image/png")
                                                for data, _ in reply.images))
        # The emulator's placeholders are free: its token counts say what Gemini would have charged, not a cost.
        cost = 0.0 if self.offline else cost_from_usage(get_model(request.model), reply.usage)
        # Cached as saved (provenance included), so the saved files and the cache share one copy of the bytes.
        marked = [(with_provenance(data, mime, request, reply.text, reply.finish_reason), mime)
                  for data, mime in reply.images]
        paths = self.cache.store(request.cache_key(), marked, {
            "text": reply.text, "finish_reason": reply.finish_reason, "usage": asdict(reply.usage), "cost_usd": cost})
        stored = [(data, mime, path) for (data, mime), path in zip(marked, paths, strict=True)]
        return self._result(request, stored, reply.text, reply.finish_reason, reply.usage,
                            cost=cost, cached=False, saved=0.0, out_dir=out_dir, started=started)

    async def run_variations(self, request: ImageRequest, count: int, *,
                             on_result: Callable[[ImageResult | StudioError], None] | None = None,
                             use_cache: bool = True, out_dir: Path | None = None, on_event: EventSink | None = None,
                             owner: str | None = None) -> list[ImageResult | StudioError]:
        """`count` variations (variation numbers n, n+1, ...) as parallel calls; errors are returned, not raised.

        `on_result` is called with each outcome as it arrives (for progress), in the order they finish.
        """
        if not 1 <= count <= MAX_COUNT:
            raise InputError(f"The number of images must be between 1 and {MAX_COUNT} (got {count}).")

        async def one(variation: int) -> ImageResult | StudioError:
            try:
                outcome: ImageResult | StudioError = await self.run(
                    request.with_variation(variation), use_cache=use_cache, out_dir=out_dir, on_event=on_event,
                    owner=owner)
            except StudioError as error:
                outcome = error
            if on_result is not None:
                on_result(outcome)
            return outcome

        first = request.options.variation
        return list(await asyncio.gather(*(one(first + i) for i in range(count))))

    async def _generate(self, request: ImageRequest, *, observer: SendObserver | None = None) -> BackendReply:
        try:
            return await self.backend.generate(request, observer=observer)
        except ModelNotFoundError as exc:
            raise await self._with_available_models(exc) from exc

    async def _with_available_models(self, exc: ModelNotFoundError) -> ModelNotFoundError:
        """Add the image models this key can use to a 404 message (best effort: a listing failure is ignored)."""
        try:
            available = await asyncio.wait_for(self.backend.list_image_models(), timeout=10)
        except (StudioError, asyncio.TimeoutError):
            return exc
        if not available:
            return exc
        return ModelNotFoundError(f"{exc.message} Image models this key can use: {', '.join(available)}.",
                                  model=exc.model, available=available)

    @staticmethod
    def _result(request: ImageRequest, images: list[tuple[bytes, str, Path | None]], text: str,
                finish_reason: str | None, usage: Usage, *, cost: float | None, cached: bool, saved: float,
                out_dir: Path, started: float) -> ImageResult:
        saved_images = save_images(request, images, text, finish_reason, out_dir)
        return ImageResult(id=uuid.uuid4().hex, request=request, images=saved_images, text=text,
                           finish_reason=finish_reason, usage=usage, cost_usd=cost, cached=cached,
                           saved_usd=saved if cached else 0.0, elapsed_s=time.perf_counter() - started)

    async def __aenter__(self) -> Studio:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release the client, the cache and the counters."""
        if self._backend is not None:
            await self._backend.aclose()
        if self._cache is not None:
            self._cache.close()
        if self._budget is not None:
            self._budget.close()
        if self._history is not None:
            self._history.close()
