"""The Studio's foundation: settings, backend and client, cache, history, limits and the model listing.

One link of the Studio's chain (StudioBase -> MakingStudio -> Studio): each adds one capability; `Studio` in
studio.py is the facade every front end uses.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, Self, runtime_checkable

from ..backends.capabilities import BackendCapabilities, capabilities_for
from ..backends.discovery import Availability, ListedModel, ListingStore, ModelDiscovery
from ..backends.gemini_wire import BackendReply
from ..backends.text import TextReply
from ..backends.transport import SendObserver
from ..backends.vertex import VertexAccess, resolve_vertex_access
from ..domain.config import Settings
from ..domain.costs import estimate_request_cost
from ..domain.errors import ModelNotFoundError, SentTimeoutError, StudioError
from ..domain.models import get_model
from ..domain.request import ImageRequest, ImageResult
from ..domain.styles import StyleBook, load_styles
from ..domain.text_request import TextRequest
from ..quota.limits import DailyBudget, DailyUsage, RateLimiter
from ..quota.partitions import key_partition
from ..quota.retry import RetryPolicy
from ..quota.shared_limits import shared_limiter_for
from ..storage.cache import ResultCache
from ..storage.history import HistoryStore
from .kits import KitLibrary
from .sending import GuardedSender
from .storage_choice import request_store
from .successors import ModelFollower, RetiredModels

__all__ = ["MAX_COUNT", "Backend", "ModelLister", "StudioBase", "TextBackend"]

MAX_COUNT = 100

_GEMINI_ENDPOINT = "https://generativelanguage.googleapis.com"


class Backend(Protocol):
    """What the Studio needs from a backend (GeminiBackend, or a test double)."""

    async def generate(self, request: ImageRequest, *, observer: SendObserver | None = None) -> BackendReply:
        """Send one request; tell `observer` when its last byte left; a failure raises a StudioError."""
    async def list_image_models(self) -> tuple[str, ...]:
        """Ids of the image models the key can use."""

    async def aclose(self) -> None:
        """Release the client."""

@runtime_checkable
class TextBackend(Protocol):
    """A backend that can call text models (GeminiBackend does; a test double may not)."""

    async def generate_text(self, request: TextRequest, *, observer: SendObserver | None = None) -> TextReply:
        """Send one text-model request; a failure raises a StudioError."""

@runtime_checkable
class ModelLister(Protocol):
    """A backend that can list its key's models (GeminiBackend does; a test double may not)."""

    def list_generate_models(self) -> Sequence[str | ListedModel]: ...  # noqa: D102


class StudioBase:
    """What every capability of the Studio stands on: its settings, backend, cache, history and limits."""

    def __init__(self, settings: Settings, *, backend: Backend | None = None, cache: ResultCache | None = None,
                 retry_policy: RetryPolicy | None = None, clock: Callable[[], float] | None = None) -> None:
        self.settings = settings
        # Decided once: the backend, once created, must not change the answer (meter, limits, banner all ask).
        self._offline = backend is None and settings.uses_emulator
        self.retry_policy = retry_policy or RetryPolicy(max_attempts=settings.max_attempts,
                                                        max_total_wait_s=settings.max_retry_wait_s,
                                                        retry_sent_timeouts=settings.retry_timeouts)
        self._backend = backend
        self._backend_lock = threading.Lock()  # model discovery may ask for the backend from its own thread
        self._clock = clock or time.time  # wall clock for the model listing's age (tests move it)
        self._discovery: ModelDiscovery | None = None
        self._retired: RetiredModels | None = None
        self._cache = cache
        self._history: HistoryStore | None = None
        self._history_lock = threading.Lock()  # opened in a worker thread; two at once must not open it twice
        self._budget: DailyBudget | None = None
        self._sender: GuardedSender[ImageRequest, BackendReply] | None = None
        self._text_sender: GuardedSender[TextRequest, TextReply] | None = None
        self._in_flight: dict[str, tuple[asyncio.Task[ImageResult], Path]] = {}  # cache key -> (answer, its folder)
        self._holds = 0  # operations (a batch, a queued request) that keep this Studio open: see hold()
        self.emulator_url: str | None = None
        self._vertex_access: VertexAccess | None = None

    @property
    def offline(self) -> bool:
        """True when requests go to the embedded emulator rather than Gemini."""
        return self._offline

    @property
    def busy(self) -> bool:
        """True while a request is being answered (a Studio is closed only when it is not)."""
        return bool(self._in_flight) or self.held

    @property
    def held(self) -> bool:
        """True while an operation holds this Studio (it is not closed before the operation ends)."""
        return self._holds > 0

    def hold(self) -> Callable[[], None]:
        """Keep this Studio open for a whole operation (a batch's rows, a request waiting its turn); returns the
        release function (calling it again does nothing)."""
        self._holds += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released, self._holds = True, self._holds - 1

        return release

    @property
    def backend(self) -> Backend:
        """The backend, created on first use (starting the emulator only when it is needed)."""
        with self._backend_lock:
            return self._make_backend()

    def _make_backend(self) -> Backend:
        if self._backend is None:
            from ..backends.gemini import GeminiBackend

            if self.settings.uses_emulator:
                from ..emulator import OFFLINE_API_KEY, shared_emulator

                self.emulator_url = shared_emulator(record_limit=self.settings.emulator_log,
                                                    delay_s=self.settings.emulator_delay_s or None).base_url
                self._backend = GeminiBackend(api_key=OFFLINE_API_KEY, base_url=self.emulator_url,
                                              timeout_s=self.settings.timeout_s, store=self.settings.store)
            elif self.settings.vertex:
                request_store(self.settings, vertex=True)  # --store on Vertex: refused, saying why
                self._backend = GeminiBackend(base_url=self.settings.base_url, timeout_s=self.settings.timeout_s,
                                              vertex=self.vertex_access)
            else:
                backend = GeminiBackend(api_key=self.settings.api_key or "", base_url=self.settings.base_url,
                                        timeout_s=self.settings.timeout_s, store=self.settings.store)
                # Kit uploads, remembered per key (its salted partition name) and endpoint: uploaded once per key.
                endpoint = self.settings.base_url or _GEMINI_ENDPOINT
                name = (f"{key_partition(self.settings.home, self.settings.api_key or '')}-"
                        f"{hashlib.sha256(endpoint.encode()).hexdigest()[:8]}")
                backend.remember_files(self.settings.home / "uploads" / f"{name}.json")
                self._backend = backend
        return self._backend

    @property
    def capabilities(self) -> BackendCapabilities:
        """What this Studio's backend offers (output formats, person generation, Batch Mode, Files API...)."""
        return capabilities_for("vertex" if self.settings.vertex and not self.offline else "gemini")

    @property
    def vertex_access(self) -> VertexAccess:
        """Vertex AI's project, location and credentials, resolved once; a ConfigError names what is missing."""
        if self._vertex_access is None:
            self._vertex_access = resolve_vertex_access(self.settings)
        return self._vertex_access

    def connect(self) -> None:
        """Create the backend now, so that a setup problem (Vertex project or credentials) shows before any work."""
        _ = self.backend

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
    def kits(self) -> KitLibrary:
        """The kits of this data directory (kits.py), each owner's apart."""
        return KitLibrary(self.history.kits)

    @property
    def budget(self) -> DailyBudget:
        """Today's request and cost counters on this data directory (NANOBANANA_RPD)."""
        if self._budget is None:
            self._budget = DailyBudget(self.settings.quota_dir, self.settings.rpd)
        return self._budget

    @property
    def sender(self) -> GuardedSender[ImageRequest, BackendReply]:
        """Budget, rate limit and retries around the backend; the offline emulator has no quota to guard."""
        if self._sender is None:
            limiter, budget = self._guards()
            self._sender = GuardedSender(self._generate, policy=self.retry_policy, limiter=limiter, budget=budget)
        return self._sender

    @property
    def text_sender(self) -> GuardedSender[TextRequest, TextReply]:
        """The same budget, rate limit and retry policy around the text model (prompt enhancer, image to prompt)."""
        if self._text_sender is None:
            limiter, budget = self._guards()
            self._text_sender = GuardedSender(self._generate_text, policy=self.retry_policy, limiter=limiter,
                                              budget=budget)
        return self._text_sender

    def _guards(self) -> tuple[RateLimiter | None, DailyBudget | None]:
        """The shared rate limiter and the daily budget (none offline: the emulator has no quota to guard)."""
        if self.offline:
            return None, None
        endpoint = self.settings.base_url or (self.vertex_access.endpoint if self.settings.vertex
                                              else _GEMINI_ENDPOINT)
        # One window for every process on this data directory using the same key and endpoint.
        return shared_limiter_for(endpoint, self.settings.rpm, self.settings.rate_window_s, home=self.settings.home,
                                  key=self.settings.api_key or ""), self.budget

    def usage_today(self) -> DailyUsage:
        """Requests sent today against the budget, today's cost and cache savings (Pacific days)."""
        return self.budget.usage()

    def _partition_name(self) -> str:
        """This key and endpoint's file name stem under NANOBANANA_HOME/models/ (a salted hash, never the key)."""
        # The emulator's listing is the registry's: one partition for it; a key's is named by its salted hash.
        key = "offline emulator" if self.offline else (self.settings.api_key or "")
        endpoint = "emulator" if self.offline else (self.settings.base_url or _GEMINI_ENDPOINT)
        # One file per key and endpoint (a relay may offer other models than Google does).
        return f"{key_partition(self.settings.home, key)}-{hashlib.sha256(endpoint.encode()).hexdigest()[:8]}"

    @property
    def retired(self) -> RetiredModels:
        """The models that answered 404 for this key in the last day (sent as their successors meanwhile)."""
        if self._retired is None:
            self._retired = RetiredModels(self.settings.home / "models" / f"{self._partition_name()}-404.json",
                                          clock=self._clock)
        return self._retired

    @property
    def follower(self) -> ModelFollower:
        """Which model a request goes to when the one asked for is gone for this key (see successors.py)."""
        return ModelFollower(self.settings, self.retired, self.discovery.current, offline=self.offline)

    @property
    def discovery(self) -> ModelDiscovery:
        """This key's model listing (models.list() once, in the background, kept a day on disk)."""
        if self._discovery is None:
            endpoint = "emulator" if self.offline else (self.settings.base_url or _GEMINI_ENDPOINT)
            store = ListingStore(self.settings.home / "models", self._partition_name())
            self._discovery = ModelDiscovery(lister=self._list_generate_models, store=store, endpoint=endpoint,
                                             clock=self._clock)
        return self._discovery

    def _list_generate_models(self) -> Sequence[str | ListedModel]:
        """Run in discovery's thread: every model id this key can call with generateContent."""
        if self.settings.vertex and not self.offline:  # Vertex lists publisher models, not the Gemini API's ids
            raise StudioError("model listing is not used on Vertex AI")
        backend = self.backend
        if not isinstance(backend, ModelLister):
            raise StudioError("this backend cannot list models")
        return backend.list_generate_models()

    def available_models(self) -> Availability:
        """The image models this key can use: registry models first, then unknown image models the key offers.

        Never waits for the network: until this key's listing has arrived (it is started here, in the background),
        or when it failed, the registry is returned, with a note saying so. Hidden registry models come with a note.
        """
        return self.discovery.availability()

    @property
    def styles(self) -> StyleBook:
        """The style library: shipped styles merged with NANOBANANA_HOME/styles.json (read again each time)."""
        return load_styles(self.settings.home)

    async def _generate(self, request: ImageRequest, *, observer: SendObserver | None = None) -> BackendReply:
        try:
            return await self.backend.generate(request, observer=observer)
        except ModelNotFoundError as exc:
            raise await self._with_available_models(exc) from exc
        except SentTimeoutError:  # each such attempt, retried or not, may have been billed: the meter says so
            if not self.offline:
                cost = estimate_request_cost(get_model(request.model), request)
                await asyncio.to_thread(self.budget.add_maybe, cost)
            raise

    async def _generate_text(self, request: TextRequest, *, observer: SendObserver | None = None) -> TextReply:
        backend = self.backend
        if not isinstance(backend, TextBackend):
            raise StudioError("this backend cannot call text models")
        return await backend.generate_text(request, observer=observer)

    async def _with_available_models(self, exc: ModelNotFoundError) -> ModelNotFoundError:
        """Add the image models this key can use to a 404 message (best effort: a listing failure is ignored)."""
        try:
            available = await asyncio.wait_for(self.backend.list_image_models(), timeout=10)
        except (TimeoutError, StudioError):
            return exc
        if not available:
            return exc
        return ModelNotFoundError(f"{exc.message} Image models this key can use: {', '.join(available)}.",
                                  model=exc.model, available=available)

    async def __aenter__(self) -> Self:
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
