"""Making images: build and check requests, answer them from the cache or the model, keep what came back."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

from ..backends.gemini_wire import BackendReply
from ..domain.costs import cost_from_usage, estimate_request_cost, search_cost
from ..domain.errors import InputError, ModelNotFoundError, ShutDownModelError, StudioError
from ..domain.kits import KitUse
from ..domain.models import get_model
from ..domain.request import ImageOptions, ImageRequest, ImageResult, Mode, Source, Usage
from ..domain.templates import PromptCraft
from ..domain.turns import TurnPart, parts_from_json, parts_to_json
from ..imaging.images import check_request_size
from ..imaging.outputs import dimensions, save_images, save_thought_images, with_provenance
from ..imaging.region_blend import blend_answer, prepare_blend
from ..imaging.workers import on_cpu
from ..storage.cache import CachedEntry
from ..storage.history.store import new_entry_id
from .regions import build_region_request
from .sending import EventSink
from .storage_choice import request_store
from .studio_base import MAX_COUNT, StudioBase
from .successors import answered_by
from .transparency import with_alpha_note
from .validation import ImageSource, build_request, check_kit_limits
from .variations import gather_variations

__all__ = ["MakingStudio"]

log = logging.getLogger(__name__)


class MakingStudio(StudioBase):
    """Generate, edit and compose: a request built, checked, sent (or answered by the cache) and kept."""

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
        return await gather_variations(request, count, partial(self.run, use_cache=use_cache, out_dir=out_dir,
                                                                on_event=on_event, owner=owner), on_result)

    @staticmethod
    def _result(request: ImageRequest, images: list[tuple[bytes, str, Path | None]], text: str,
                finish_reason: str | None, usage: Usage, *, cost: float | None, cached: bool, saved: float,
                out_dir: Path, started: float) -> ImageResult:
        saved_images = save_images(request, images, text, finish_reason, out_dir)
        return ImageResult(id=uuid.uuid4().hex, request=request, images=saved_images, text=text,
                           finish_reason=finish_reason, usage=usage, cost_usd=cost, cached=cached,
                           saved_usd=saved if cached else 0.0, elapsed_s=time.perf_counter() - started)
