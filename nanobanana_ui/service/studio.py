"""The Studio service: generate, edit and compose, with the result cache, limits, history and saved outputs.

Every front end (CLI, Gradio UI, HTTP API) goes through this class and nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..backends.capabilities import BackendCapabilities, capabilities_for
from ..backends.discovery import Availability, ListedModel, ListingStore, ModelDiscovery
from ..backends.gemini_wire import BackendReply
from ..backends.text import TextReply
from ..backends.transport import SendObserver
from ..backends.vertex import VertexAccess, resolve_vertex_access
from ..domain.config import Settings
from ..domain.costs import cost_from_usage, estimate_request_cost, search_cost
from ..domain.errors import InputError, ModelNotFoundError, SentTimeoutError, ShutDownModelError, StudioError
from ..domain.kits import KitUse
from ..domain.models import get_model
from ..domain.region import Region
from ..domain.request import ImageOptions, ImageRequest, ImageResult, Mode, Source, Usage
from ..domain.styles import StyleBook, load_styles
from ..domain.templates import PromptCraft
from ..domain.text_request import TextRequest
from ..domain.turns import TurnPart, parts_from_json, parts_to_json
from ..imaging.images import check_request_size
from ..imaging.outputs import dimensions, save_images, save_thought_images, with_provenance
from ..imaging.region_blend import blend_answer, prepare_blend
from ..imaging.workers import on_cpu
from ..quota.limits import DailyBudget, DailyUsage, RateLimiter
from ..quota.partitions import key_partition
from ..quota.retry import RetryPolicy
from ..quota.shared_limits import shared_limiter_for
from ..storage.cache import CachedEntry, ResultCache
from ..storage.history import HistoryEntry, HistoryStore
from ..storage.history.store import new_entry_id
from .conversation import ConversationError, Refinement, UnknownResultError, build_refinement
from .kits import KitLibrary, kit_from_record
from .regions import build_region_request, with_source_name
from .sending import EventSink, GuardedSender
from .storage_choice import request_store
from .successors import ModelFollower, RetiredModels, answered_by
from .transparency import with_alpha_note
from .validation import ImageSource, build_request, check_kit_limits, load_inputs

__all__ = ["MAX_COUNT", "Backend", "ModelLister", "Studio"]

MAX_COUNT = 100
_GEMINI_ENDPOINT = "https://generativelanguage.googleapis.com"
log = logging.getLogger(__name__)


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


def _entry_options(entry: HistoryEntry) -> ImageOptions:
    """The options a history entry recorded, as ImageOptions (keys this version does not know are left out)."""
    return ImageOptions(**{key: value for key, value in entry.options.items()
                           if key in ImageOptions.__dataclass_fields__})


class Studio:
    """Generate, edit and compose images; one instance per key (it owns that key's client)."""

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

    def build_request(self, mode: Mode, prompt: str, images: Sequence[ImageSource] = (), *,
                      model: str | None = None, options: ImageOptions | None = None,
                      keep_metadata: bool | None = None, mask: ImageSource | None = None,
                      feather: int | None = None, extend_to: str | None = None,
                      anchor: str | None = None, craft: PromptCraft | None = None,
                      store: bool | None = None, kit: str | KitUse | None = None,
                      owner: str | None = None) -> ImageRequest:
        """Validate everything that can be checked before a call, and build the request.

        A shut-down model id is sent as its replacement (the request's `note` says so), or refused with the models
        this key can use. Input images lose their personal metadata unless `keep_metadata` (default: the setting)
        says otherwise; an output option the backend lacks (JPEG output on the Gemini API...) is refused here.
        With `mask` (white = the region) or `extend_to` (a ratio; `anchor` center/left/right/top/bottom), an edit
        becomes a region edit: a crop or a larger canvas is sent, and the answer is blended back (regions.py).
        `craft` records how `prompt` (already the final text) was made: see domain.styles.craft_prompt.
        `kit` (NAME, NAME@V, or a loaded version) adds that kit's references, read from `owner`'s kits (kits.py).
        """
        request = replace(self._build_request(mode, prompt, images, model=model, options=options,
                                              keep_metadata=keep_metadata, mask=mask, feather=feather,
                                              extend_to=extend_to, anchor=anchor, store=store), craft=craft)
        if isinstance(kit, str) and kit.strip():
            if self.settings.public and owner is None:  # never the host's own kits
                raise InputError("Kits need a visitor session on a public demo: reload the page and try again.")
            kit = self.kits.use(kit, owner=owner)
        if not isinstance(kit, KitUse):
            return request
        check_kit_limits(get_model(request.model), kit, len(request.images))
        if not self.capabilities.files_api:  # Vertex: the kit goes inline, so it counts toward the request's size
            check_request_size((*request.images, *(reference.image for reference in kit.references)))
        return replace(request, kit=kit)

    @property
    def styles(self) -> StyleBook:
        """The style library: shipped styles merged with NANOBANANA_HOME/styles.json (read again each time)."""
        return load_styles(self.settings.home)

    def _build_request(self, mode: Mode, prompt: str, images: Sequence[ImageSource] = (), *,
                       model: str | None = None, options: ImageOptions | None = None,
                       keep_metadata: bool | None = None, mask: ImageSource | None = None,
                       feather: int | None = None, extend_to: str | None = None,
                       anchor: str | None = None, store: bool | None = None) -> ImageRequest:
        options = options or ImageOptions()
        self.capabilities.check_options(options)
        if options.output_mime_type == self.capabilities.output_mime_types[0]:
            options = replace(options, output_mime_type=None)  # the default format: sent as absent
        keep = self.settings.keep_metadata if keep_metadata is None else keep_metadata
        region = not (mask is None and extend_to is None and feather is None and anchor is None)
        if region and (mode is not Mode.EDIT or len(images) != 1):
            raise InputError("A mask, feather, extend-to or anchor applies to an edit of one image only.")
        # `store` (the page's setting) overrides the host's NANOBANANA_STORE for this request.
        chosen = self.settings if store is None else replace(self.settings, store=store)
        store = request_store(chosen, vertex=self.settings.vertex and not self.offline)
        try:
            if not region:  # an input with alpha gets a note: the answer will be opaque (transparency.py)
                built = with_alpha_note(build_request(mode, prompt, images, model=model or self.settings.model,
                                                      options=options, keep_metadata=keep))
            else:
                # A region edit sends a crop or canvas re-encoded from pixels alone: no metadata of the original.
                # Its original is kept for re-runs: without personal metadata, unless asked (never in public mode).
                built = build_region_request(images[0], prompt, model=model or self.settings.model, options=options,
                                             mask=mask, feather=feather, extend_to=extend_to, anchor=anchor,
                                             keep_metadata=keep and not self.settings.public)
            return self.follower.followed(replace(built, store=store))
        except ShutDownModelError as error:
            available = self.available_models().ids
            raise ShutDownModelError(f"{error.message} Image models this key can use: {', '.join(available)}.",
                                     model=error.model, available=available) from None

    def estimate(self, request: ImageRequest) -> float | None:
        """Estimated USD of sending this request once, counting what is sent (a region edit's crop and mask)."""
        return estimate_request_cost(get_model(request.model), request)

    async def generate(self, prompt: str, *, model: str | None = None, options: ImageOptions | None = None,
                       use_cache: bool = True, out_dir: Path | None = None, on_event: EventSink | None = None,
                       owner: str | None = None, kit: str | KitUse | None = None) -> ImageResult:
        """Text to image (`kit` as for build_request; the other keywords as for `run`)."""
        request = self.build_request(Mode.GENERATE, prompt, (), model=model, options=options, kit=kit, owner=owner)
        return await self.run(request, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner)

    async def edit(self, image: ImageSource, prompt: str, *, model: str | None = None,
                   options: ImageOptions | None = None, use_cache: bool = True, out_dir: Path | None = None,
                   on_event: EventSink | None = None, owner: str | None = None, mask: ImageSource | None = None,
                   feather: int | None = None, extend_to: str | None = None, anchor: str | None = None,
                   kit: str | KitUse | None = None) -> ImageResult:
        """One image plus an instruction; with `mask` or `extend_to`, a region edit (see build_request); the other
        keywords as for `run`."""
        request = self.build_request(Mode.EDIT, prompt, (image,), model=model, options=options, mask=mask,
                                     feather=feather, extend_to=extend_to, anchor=anchor, kit=kit, owner=owner)
        return await self.run(request, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner)

    async def compose(self, images: Sequence[ImageSource], prompt: str, *, model: str | None = None,
                      options: ImageOptions | None = None, use_cache: bool = True, out_dir: Path | None = None,
                      on_event: EventSink | None = None, owner: str | None = None,
                      kit: str | KitUse | None = None) -> ImageResult:
        """Several images plus an instruction (the other keywords as for `run`)."""
        request = self.build_request(Mode.COMPOSE, prompt, tuple(images), model=model, options=options, kit=kit,
                                     owner=owner)
        return await self.run(request, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner)

    async def run(self, request: ImageRequest, *, use_cache: bool = True, out_dir: Path | None = None,
                  on_event: EventSink | None = None, owner: str | None = None,
                  finish: Callable[[ImageResult], ImageResult] | None = None) -> ImageResult:
        """Answer one request: from the cache when possible (no call, $0), else from the API; save the images.

        `on_event` receives a line for each rate-limit wait and retry. An identical request already in flight is
        not sent again: this call shares its answer. Outcomes, failures too, go into the history under `owner`.
        `finish` (run in a worker thread, with the result's id set) may replace the result before it is recorded:
        transparency.py adds the transparent PNG that way.
        """
        return await self._run(request, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner,
                               finish=finish)

    async def _run(self, request: ImageRequest, *, use_cache: bool, out_dir: Path | None, on_event: EventSink | None,
                   owner: str | None, parent: str | None = None, turn: int = 1,
                   finish: Callable[[ImageResult], ImageResult] | None = None) -> ImageResult:
        started = time.perf_counter()
        try:
            result = await self._answer(request, use_cache, out_dir, on_event, started)
            # Each caller gets its own id (two callers may share one in-flight answer): the id its history entry has,
            # so an id printed by --json is the one `refine` and `history` take.
            result = replace(result, id=new_entry_id(), parent=parent, turn=turn,
                             answer_id=result.answer_id or result.id)
            if finish is not None:
                result = await asyncio.to_thread(finish, result)
        except StudioError as error:
            await self._record("record_failure", request, error, elapsed_s=time.perf_counter() - started, owner=owner,
                               parent=parent, turn=turn)
            raise
        await self._record("record_result", result, owner=owner, entry_id=result.id)
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
        shared = self._in_flight.get(key)
        if shared is None:
            task = asyncio.ensure_future(self._fetch(request, out_dir, started, on_event))
            task.add_done_callback(lambda done: done.cancelled() or done.exception())  # mark failures as seen
            self._in_flight[key] = (task, out_dir)
            task.add_done_callback(lambda _: self._in_flight.pop(key, None))
            return await asyncio.shield(task)  # a caller who gives up does not cancel the others' answer
        task, folder = shared
        result = await asyncio.shield(task)
        if Path(folder) != Path(out_dir):  # never a path in another visitor's folder: their own copy, in theirs
            result = await asyncio.to_thread(self._copy_to, result, out_dir)
        return result

    def _copy_to(self, result: ImageResult, out_dir: Path) -> ImageResult:
        """A shared answer's images saved again in this caller's folder (from the cache's copy)."""
        entry = self.cache.lookup(result.request.cache_key())
        stored = list(entry.paths) if entry is not None and len(entry.paths) == len(result.images) else None
        images: list[tuple[bytes, str, Path | None]] = [
            (stored[n].read_bytes() if stored else image.read_bytes(), image.mime_type, stored[n] if stored else None)
            for n, image in enumerate(result.images)]
        return replace(result, images=save_images(result.request, images, result.text, result.finish_reason,
                                                  out_dir))

    async def _fetch(self, request: ImageRequest, out_dir: Path, started: float,
                     on_event: EventSink | None) -> ImageResult:
        # A region edit gets a head start on its output while the model works (see region_blend.prepare_blend).
        ahead = None if request.region is None else asyncio.ensure_future(on_cpu(prepare_blend, request.region))
        await self._upload_kit(request, on_event)
        try:
            reply = await self.sender.send(request, on_event)
        except ModelNotFoundError:
            retry = None if self.offline else self.follower.after_404(request)
            if retry is None:
                raise
            request = retry  # one more call, on the successor; the note says so
            if on_event is not None:
                on_event(f"note: {retry.note}")
            reply = await self.sender.send(request, on_event)
        if ahead is not None:
            await ahead
        # Decoding, blending, provenance and PNG writing: on the bounded CPU pool (imaging/workers.py).
        result = await on_cpu(self._keep, request, reply, out_dir, started)
        if not self.offline:
            await asyncio.to_thread(self.budget.add_cost, result.cost_usd)
        return result

    async def _upload_kit(self, request: ImageRequest, on_event: EventSink | None) -> None:
        """Upload the kit images the backend has not yet uploaded (Files API: once per key), each a call through the
        rate limiter and the retry policy; an upload that still fails leaves its image inline."""
        backend: Any = self.backend  # the Gemini backend has the Files API; test doubles and others may not
        if not hasattr(backend, "files_to_upload"):
            return
        for image in backend.files_to_upload(request):
            try:
                await self.sender.call(partial(backend.upload, image), on_event)
            except StudioError as error:
                log.warning("could not upload a kit image (sent inline instead): %s", error.message)

    def _replay(self, request: ImageRequest, entry: CachedEntry, out_dir: Path, started: float) -> ImageResult:
        request = answered_by(request, entry.model_version)  # the same provenance as the answer it replays
        pairs = zip(entry.paths, entry.images, strict=True)
        images: list[tuple[bytes, str, Path | None]] = [(path.read_bytes(), mime, path) for path, (_, mime) in pairs]
        result = self._result(request, images, entry.text, entry.finish_reason, Usage(**entry.usage),
                              cost=0.0, cached=True, saved=entry.cost_usd or 0.0, out_dir=out_dir, started=started)
        # The sources come back with the image; the thought images were never cached, so a hit has none.
        return replace(result, model_turn=self._cached_model_turn(entry),
                       sources=tuple(Source.from_dict(s) for s in entry.sources),
                       search_entry_point=entry.search_entry_point)

    def _cached_model_turn(self, entry: CachedEntry) -> tuple[TurnPart, ...]:
        """The model turn a cache entry kept, or () when it kept none or lost its bytes (then the bypass is used)."""
        def read(sha: str, mime: str) -> bytes:
            data = self.cache.blob(sha)
            if data is None:
                raise KeyError(sha)
            return data

        try:
            return parts_from_json(entry.model_parts or (), read)
        except (KeyError, ValueError):
            return ()

    def _keep(self, request: ImageRequest, reply: BackendReply, out_dir: Path, started: float,
              price_factor: float = 1.0) -> ImageResult:
        for data, _ in reply.images:  # an unreadable image must fail here, before it is cached
            dimensions(data)
        request = answered_by(request, reply.model_version)
        if request.region is not None:  # the answer is a crop or canvas: put it back into the original
            reply = replace(reply, images=tuple((blend_answer(request.region, data), "image/png")
                                                for data, _ in reply.images))
        # The emulator's placeholders are free: its token counts say what Gemini would have charged, not a cost.
        # Thought images are not charged; a search is, per query, on top of the tokens.
        spec = get_model(request.model)
        searched = 0.0 if self.offline else search_cost(spec, reply.search_queries)
        tokens = 0.0 if self.offline else cost_from_usage(spec, reply.usage, size=request.options.size,
                                                          images=len(reply.images))
        if tokens is not None and price_factor != 1.0:  # Gemini Batch Mode: a share of the interactive token price
            tokens = tokens * price_factor
        cost = None if tokens is None else round(tokens + searched, 6)
        # Cached as saved (provenance included), so the saved files and the cache share one copy of the bytes.
        marked = [(with_provenance(data, mime, request, reply.text, reply.finish_reason), mime)
                  for data, mime in reply.images]
        for part in reply.model_parts:  # the model turn's images as returned: the next turn sends them back
            if part.data is not None:
                self.cache.keep_blob(part.data)
        grounding: dict[str, object] = {}
        if reply.sources or reply.search_entry_point:
            grounding = {"sources": tuple(source.to_dict() for source in reply.sources),
                         "search_entry_point": reply.search_entry_point}
        paths = self.cache.store(request.cache_key(), marked, {
            "text": reply.text, "finish_reason": reply.finish_reason, "usage": asdict(reply.usage), "cost_usd": cost,
            "model_version": reply.model_version,
            "model_parts": parts_to_json(reply.model_parts) if reply.model_parts else None,
            **grounding})  # only with Search: entries without it stay readable by earlier versions
        stored = [(data, mime, path) for (data, mime), path in zip(marked, paths, strict=True)]
        result = self._result(request, stored, reply.text, reply.finish_reason, reply.usage,
                              cost=cost, cached=False, saved=0.0, out_dir=out_dir, started=started)
        # Thought images are never outputs nor cached; the model turn (thought parts included) is kept whole.
        thoughts = reply.thought_images if request.options.show_thoughts else ()
        return replace(result, model_turn=reply.model_parts, sources=reply.sources,
                       search_entry_point=reply.search_entry_point, search_cost_usd=searched,
                       thought_images=thoughts)

    def save_thoughts(self, result: ImageResult, *, out_dir: Path | None = None) -> tuple[Path, ...]:
        """Write a result's thought images to OUT/thoughts/ (never beside the outputs, never in the history)."""
        return save_thought_images(result, (out_dir or self.settings.output_dir) / "thoughts")

    def keep_batch_reply(self, request: ImageRequest, reply: BackendReply, *, out_dir: Path,
                         price_factor: float) -> ImageResult:
        """Keep one Gemini Batch Mode answer as `run` keeps an interactive one (cache, saved files, history, meter).

        Blocking (disk work): call it from a worker thread. The cost is `price_factor` times the interactive price.
        An unreadable image raises BadResponseError before anything is kept.
        """
        result = self._keep(request, reply, out_dir, time.perf_counter(), price_factor)
        if not self.offline and result.cost_usd:
            self.budget.add_cost(result.cost_usd)
        try:
            self.history.record_result(result)
        except Exception as exc:  # noqa: BLE001 - the image is made and saved; only its history line is lost
            log.warning("could not record the request in the history: %s: %s", type(exc).__name__, exc)
        return result

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

    # -- conversations -----------------------------------------------------------------------------------------

    def _unknown(self, entry_id: str) -> ConversationError:
        return UnknownResultError(entry_id, f"No result with id {entry_id!r} in your history. Use an `id` printed "
                                  "by generate/edit/compose --json or listed by `history --json`.")

    def conversation_path(self, entry_id: str, *, owner: str | None = None) -> list[HistoryEntry]:
        """The entries from the conversation's root to this one, root first (blocking: run it off the event loop).

        `owner` given: only that owner's entries (in public mode it is required). An unknown, foreign or broken id
        raises ConversationError (exit code 2), the same message for unknown and foreign.
        """
        if self.settings.public and owner is None:
            raise ConversationError("In public mode only the owner of a conversation can continue it, and this "
                                    "request says nobody's. Nothing was sent.")
        full = self.history.resolve_id(entry_id, owner=owner)
        path = self.history.path_to(full, owner=owner) if full else []
        if not path:
            raise self._unknown(entry_id)
        if path[0].parent is not None:
            raise ConversationError(f"An earlier turn of this conversation (entry {path[0].parent}) was deleted "
                                    "from the history, so the path cannot be sent. Start afresh with `edit` on this "
                                    "image. Nothing was sent.")
        return path

    def branches(self, entry_id: str, *, owner: str | None = None) -> list[HistoryEntry]:
        """The refinements made from this entry (its branches), oldest first (blocking)."""
        parent = self.conversation_path(entry_id, owner=owner)[-1]
        return self.history.children(parent.id, owner=owner)

    def conversation_tree(self, entry_id: str, *, owner: str | None = None) -> list[tuple[int, HistoryEntry]]:
        """Every entry of the conversation this one belongs to, depth first from its root, with each depth (blocking).

        Failed refinements are included (they show what was tried); a deleted ancestor makes the topmost entry
        still held the root.
        """
        if self.settings.public and owner is None:
            raise ConversationError("In public mode a conversation is shown only to its owner.")
        full = self.history.resolve_id(entry_id, owner=owner)
        path = self.history.path_to(full, owner=owner) if full else []
        if not path:
            raise self._unknown(entry_id)
        tree: list[tuple[int, HistoryEntry]] = []
        stack = [(0, path[0])]
        while stack:
            depth, entry = stack.pop()
            tree.append((depth, entry))
            stack += [(depth + 1, child) for child in reversed(self.history.children(entry.id, owner=owner))]
        return tree

    async def prepare_refine(self, *, parent_id: str, instruction: str, images: Sequence[ImageSource] = (),
                             model: str | None = None, options: ImageOptions | None = None,
                             owner: str | None = None, craft: PromptCraft | None = None,
                             kit: str | KitUse | None = None) -> Refinement:
        """Check a refinement and build its request (the whole path), without sending anything.

        The model defaults to the parent's; an aspect ratio or size left unset follows the parent's.
        """
        path = await asyncio.to_thread(self.conversation_path, parent_id, owner=owner)
        parent = path[-1]
        if not parent.ok or not parent.images:
            why = parent.error or "it has no image"
            raise ConversationError(f"Entry {parent.id} has no image to refine ({why}). Refine an entry that made "
                                    "one (history --tree shows the conversation).")
        base = self.build_request(Mode.GENERATE, instruction, (), model=model or parent.model, options=options,
                                  craft=craft, kit=kit, owner=owner)
        # A region edit's refinement goes on in the region: blended into the same original, mask, crop and feather.
        region = None if parent.region is None else await asyncio.to_thread(self.region_of, parent)
        inputs = await asyncio.to_thread(load_inputs, tuple(images))
        return await asyncio.to_thread(build_refinement, path, self.history.read_file, base, inputs, region=region)

    async def refine(self, *, parent_id: str, instruction: str, images: Sequence[ImageSource] = (),
                     model: str | None = None, options: ImageOptions | None = None, owner: str | None = None,
                     use_cache: bool = True, out_dir: Path | None = None,
                     on_event: EventSink | None = None, kit: str | KitUse | None = None) -> ImageResult:
        """Continue the conversation of a result: `instruction` (and optional new images) sent after its whole path.

        The new result is a child of `parent_id` (refining one parent twice makes two branches); its `id`, `parent`
        and `turn` are set, and it goes into the history under `owner`. Only the owner may refine an entry.

        Refining a region edit (masked or extend-to) stays in its region: the conversation about the crop (or canvas)
        goes on, and the new answer is blended into the region edit's ORIGINAL with the same mask, crop box and
        feather (or at the same place on the canvas), so every pixel outside the mask and its feather band (every
        pixel of the original, for an extend) stays byte-identical to the original, turn after turn. The original
        and the mask come from the history; when either is gone, ConversationError says so and nothing is sent.
        """
        plan = await self.prepare_refine(parent_id=parent_id, instruction=instruction, images=images, model=model,
                                         options=options, owner=owner, kit=kit)
        return await self.run_refinement(plan, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner)

    async def run_refinement(self, plan: Refinement, *, use_cache: bool = True, out_dir: Path | None = None,
                             on_event: EventSink | None = None, owner: str | None = None,
                             finish: Callable[[ImageResult], ImageResult] | None = None) -> ImageResult:
        """Send a prepared refinement (from the cache when its whole path was answered before: $0, no call);
        `finish` as for `run`."""
        return await self._run(plan.request, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner,
                               parent=plan.parent, turn=plan.turn, finish=finish)

    async def rerun(self, *, entry_id: str, owner: str | None = None, use_cache: bool = True,
                    out_dir: Path | None = None, on_event: EventSink | None = None) -> ImageResult:
        """Send a history entry's request again, from the history alone (its stored inputs; no session needed).

        A refinement is re-run as a new branch from the same parent. A region edit is re-run exactly (its kept
        original and mask, crop, feather, extend ratio and anchor: the same cache key, so a cache hit costs $0).
        Entries whose inputs the history no longer holds raise ConversationError (the images must be given again).
        """
        path = await asyncio.to_thread(self.conversation_path, entry_id, owner=owner)
        entry = path[-1]
        if entry.parent is not None:
            # A refinement's stored inputs are the images its own turn added (a region's original is the parent's).
            if entry.region is None and len(entry.inputs) < len(entry.input_hashes):
                raise self._inputs_gone(entry)
            return await self.refine(parent_id=entry.parent, instruction=entry.prompt,
                                     images=[file.path for file in entry.inputs], model=entry.model,
                                     options=_entry_options(entry), owner=owner, use_cache=use_cache,
                                     out_dir=out_dir, on_event=on_event, kit=self.entry_kit(entry))
        request = await asyncio.to_thread(self.rebuild_request, entry)
        return await self.run(request, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner)

    @staticmethod
    def _inputs_gone(entry: HistoryEntry) -> ConversationError:
        return ConversationError(f"Entry {entry.id} is from before the history kept input images: add its "
                                 f"{len(entry.input_hashes)} image(s) again (edit or compose). Nothing was sent.")

    def rebuild_request(self, entry: HistoryEntry, *, images: Sequence[ImageSource] | None = None) -> ImageRequest:
        """The one-shot request a history entry recorded, built again: the same cache key (blocking: disk work).

        `images` replaces the entry's input images (default: those the history kept). A region edit is rebuilt from
        its original (`images[0]`, or the one the history kept) and its kept mask, with its feather, extend ratio
        and anchor, and checked against its record (mask hash, crop box or canvas); an original or mask that is
        gone, or a region that would come out different, raises ConversationError before anything is sent.
        """
        if entry.mode not in {mode.value for mode in Mode}:  # prompt craft (enhance, describe): no image request
            raise ConversationError(f"Entry {entry.id} is a prompt {entry.mode}, not an image request: nothing to "
                                    "re-run. Nothing was sent.")
        options = _entry_options(entry)
        kit = self.entry_kit(entry)  # the exact version the entry used, even after the kit has changed
        if entry.region is None:
            if images is None:
                if len(entry.inputs) < len(entry.input_hashes):
                    raise self._inputs_gone(entry)
                images = [file.path for file in entry.inputs]
            return self.build_request(Mode(entry.mode), entry.prompt, images, model=entry.model, options=options,
                                      craft=PromptCraft.from_dict(entry.craft), kit=kit)
        record = entry.region
        source: ImageSource = images[0] if images else self._kept_source_bytes(entry)
        mask = self._kept_mask_bytes(entry)
        request = self.build_request(Mode.EDIT, entry.prompt, (source,), model=entry.model, options=options,
                                     mask=mask, feather=record.get("feather"), extend_to=record.get("extend_to"),
                                     anchor=record.get("anchor"), craft=PromptCraft.from_dict(entry.craft), kit=kit)
        if request.region is not None and record.get("source_name"):
            request = with_source_name(request, str(record["source_name"]))
        if request.region is None or request.region.describe() != record:
            raise ConversationError(f"Entry {entry.id}'s region edit cannot be repeated exactly (its crop or canvas "
                                    "would come out different, e.g. after a change to the model's aspect ratios): "
                                    "open the original in Edit and paint the region again. Nothing was sent.")
        return request

    def entry_kit(self, entry: HistoryEntry) -> KitUse | None:
        """The kit version a history entry used, from its record and the stored files (None: it used none)."""
        if not entry.kit:
            return None
        try:
            return kit_from_record(entry.kit, self.history.read_file)
        except (FileNotFoundError, KeyError, ValueError):
            raise ConversationError(f"Entry {entry.id} used kit {entry.kit.get('name')}@{entry.kit.get('version')}, "
                                    "whose images the history no longer holds. Nothing was sent.") from None

    def region_of(self, entry: HistoryEntry) -> Region:
        """A region edit entry's region as recorded (crop box or canvas, feather), with its kept original and mask.

        Blocking (disk work). What is gone from the history raises ConversationError, and nothing is sent.
        """
        if entry.region is None:
            raise ConversationError(f"Entry {entry.id} is not a region edit.")
        return Region.from_record(entry.region, source=self._kept_source_bytes(entry),
                                  mask_png=self._kept_mask_bytes(entry))

    def _kept_source_bytes(self, entry: HistoryEntry) -> bytes:
        """The region edit's original, checked against the digest it was recorded with."""
        sha256 = entry.input_hashes[0] if entry.input_hashes else ""
        return self._read_kept(self._kept_original(entry), sha256, "original image", entry)

    def _kept_mask_bytes(self, entry: HistoryEntry) -> bytes | None:
        """The masked edit's mask, checked against its recorded digest; None for an extend-to (it has no mask)."""
        record = entry.region or {}
        if record.get("kind") != "mask":
            return None
        return self._read_kept(self._kept_mask(entry), str(record.get("mask_sha256")), "mask", entry)

    def _kept_original(self, entry: HistoryEntry) -> Path:
        """The region edit's original as the history keeps it (or, for entries from before that, an earlier output
        with the same bytes); ConversationError when it is gone."""
        kept = self.history.kept_input(entry, "source")
        if kept is not None:
            found: Path | None = kept.path
        else:
            found = self.history.find_file(entry.input_hashes[0]) if entry.input_hashes else None
        if found is None:
            raise ConversationError(
                f"The original image of region edit {entry.id} is no longer in the history (`history --verify` "
                "reports lost files), so it cannot be repeated or refined: open the original in Edit and paint the "
                "region again. Nothing was sent.")
        return found

    def _kept_mask(self, entry: HistoryEntry) -> Path:
        """The masked edit's mask as the history keeps it; ConversationError when it is gone."""
        found = self.history.mask_path(entry)
        if found is None:
            raise ConversationError(
                f"The mask of masked edit {entry.id} (sha256 {str((entry.region or {}).get('mask_sha256'))[:12]}) is "
                "no longer in the history (`history --verify` reports lost files), so it cannot be repeated or "
                "refined: open the original in Edit and paint the mask again. Nothing was sent.")
        return found

    @staticmethod
    def _read_kept(path: Path, sha256: str, what: str, entry: HistoryEntry) -> bytes:
        """A kept file's bytes, checked against the digest the entry recorded (an altered file is a lost one)."""
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ConversationError(f"The {what} of region edit {entry.id} no longer holds the bytes it was kept "
                                    "with (`history --verify` reports it): open the original in Edit and paint the "
                                    "region again. Nothing was sent.")
        return data

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
