"""Running a batch plan: at the pace of the shared rate limiter, each outcome saved and written to the manifest.

Resume: a request with a "done"/"cached" manifest line (same row and cache key) whose files are present is reported
as "earlier" and not sent. If a kill lands between the API's answer and the manifest line, the result cache already
holds the answer (Studio stores it before returning), so the re-run gets it as a cache hit for $0; only requests
still in flight at the kill can be paid twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...domain.errors import StorageError, StudioError
from ...domain.request import ImageRequest, ImageResult
from ...imaging.outputs import clone_file, extension_for, slugify
from ..sending import NotSent, stop_sending
from ..studio import Studio
from ..transparency import Method, Transparency, make_transparent
from .folder import hold_run_folder, refuse_open_gemini_job
from .items import BatchItem
from .manifest import Manifest, finished_lines, maybe_billed_lines
from .plan import BatchPlan

if TYPE_CHECKING:
    from ..sending import EventSink

__all__ = ["BatchSummary", "ItemOutcome", "base_line", "failed_outcome", "image_stem", "place_images", "run_batch",
           "run_rows"]

_STAGING = ".staging"  # the Studio saves here; each image is then put under its batch name
_HELD = ("not sent again: an earlier run's request timed out after it was sent, so Gemini may have made and billed "
         "it; run with --retry-timeouts (or NANOBANANA_RETRY_TIMEOUTS=1) to send it again")


@dataclass(frozen=True)
class ItemOutcome:
    """What became of one request of a batch."""

    row: int
    prompt: str
    status: str  # "done" | "cached" | "failed" | "earlier" (finished in an earlier run)
    paths: tuple[Path, ...]
    cost_usd: float | None
    error: str | None
    error_type: str | None
    variation: int
    record: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)  # its manifest line
    exit_code: int = 0  # the CLI exit code of a failure


@dataclass(frozen=True)
class BatchSummary:
    """Counts of a run (per request), this run's cost, the failures, and whether it was cancelled."""

    done: int
    cached: int
    failed: int
    earlier: int
    cost_usd: float
    failures: tuple[ItemOutcome, ...]
    cancelled: bool


def image_stem(item: BatchItem, variation: int) -> str:
    """"0007_red-fox" (or the row's name), "_v1" for variation 1."""
    base = slugify(item.name, 80) if item.name else slugify(item.prompt)
    return f"{item.row:04d}_{base}" + (f"_v{variation}" if variation else "")


async def run_batch(studio: Studio, plan: BatchPlan, *, out_dir: Path, concurrency: int | None = None,
                    on_outcome: Callable[[ItemOutcome], None] | None = None, cancel: asyncio.Event | None = None,
                    use_cache: bool = True, owner: str | None = None,
                    on_event: EventSink | None = None) -> BatchSummary:
    """Run every request of the plan not finished earlier; one failure never stops the others.

    The rate limiter sets the pace: `concurrency` defaults to the rate limit (studio.settings.rpm) and can only lower
    it. `cancel` set: no new request starts, those in flight finish, and the summary says cancelled. `on_outcome`
    gets every outcome as it happens, "earlier" ones first. Requests still waiting for a rate-limit slot when
    `cancel` is set are not sent at all (they have no outcome and run next time).

    Never paid twice: the run holds the folder's lock (InputError at once if another run, interactive or Gemini
    Batch Mode, holds it) and is refused while the folder has an open Gemini Batch Mode job.
    """
    out_dir = Path(out_dir)
    with hold_run_folder(out_dir):
        await asyncio.to_thread(refuse_open_gemini_job, out_dir)
        return await run_rows(studio, plan, out_dir=out_dir, concurrency=concurrency, on_outcome=on_outcome,
                              cancel=cancel, use_cache=use_cache, owner=owner, on_event=on_event)


async def run_rows(studio: Studio, plan: BatchPlan, *, out_dir: Path, concurrency: int | None = None,
                   on_outcome: Callable[[ItemOutcome], None] | None = None, cancel: asyncio.Event | None = None,
                   use_cache: bool = True, owner: str | None = None,
                   on_event: EventSink | None = None) -> BatchSummary:
    """run_batch's work, for a caller that already holds the folder's lock (Gemini Batch Mode's cache hits)."""
    out_dir = Path(out_dir)
    # Under the lock nothing else uses the folder: any staged leftover is a killed run's (its answers are cached).
    await asyncio.to_thread(shutil.rmtree, out_dir / _STAGING, True)
    staging = out_dir / _STAGING / uuid.uuid4().hex[:8]
    finished = await asyncio.to_thread(finished_lines, out_dir)
    manifest = await asyncio.to_thread(Manifest, out_dir)
    outcomes: list[ItemOutcome] = []
    seen_results: set[str] = set()
    not_sent: list[ImageRequest] = []

    def report(outcome: ItemOutcome) -> None:
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)

    # A request whose last attempt timed out after it was sent may have been billed: sent again only when allowed.
    held = {} if studio.settings.retry_timeouts else await asyncio.to_thread(maybe_billed_lines, out_dir)
    pending: asyncio.Queue[tuple[BatchItem, ImageRequest]] = asyncio.Queue()
    for item, request in plan.requests:
        line = finished.get((item.row, request.cache_key()))
        if line is not None:
            report(_earlier(item, request, line, out_dir))
        elif (item.row, request.cache_key()) in held:
            report(failed_outcome(item, request, base_line(item, request), _HELD, "SentTimeoutError", 6))
        else:
            pending.put_nowait((item, request))
    limit = studio.settings.rpm if concurrency is None else max(1, min(concurrency, studio.settings.rpm))

    # A full disk (or a read-only folder) stops the run: every further answer would be paid for and not saved.
    disk_errors: list[OSError] = []

    async def worker() -> None:
        stop_sending.set(cancel)  # this worker's task only: once cancelled, requests waiting for a slot stay unsent
        while not (cancel is not None and cancel.is_set()) and not disk_errors:
            try:
                item, request = pending.get_nowait()
            except asyncio.QueueEmpty:
                return
            try:
                outcome = await _one(studio, item, request, out_dir, staging, seen_results,
                                     use_cache=use_cache, owner=owner, on_event=on_event)
            except NotSent:  # cancelled while it waited for the rate limit: not sent, not paid, runs next time
                not_sent.append(request)
                continue
            if outcome.error_type == "StorageError":
                disk_errors.append(OSError(outcome.error))
            try:
                await asyncio.to_thread(manifest.append, outcome.record)
            except OSError as error:
                disk_errors.append(error)
            report(outcome)

    try:
        await asyncio.gather(*(worker() for _ in range(min(limit, max(pending.qsize(), 1)))))
    finally:
        manifest.close()
        await asyncio.to_thread(shutil.rmtree, staging, True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()  # only when empty
    if disk_errors:
        raise StorageError(f"the batch stopped: a result could not be written in {out_dir} ({disk_errors[0]}). "
                           "Free some space and run the same command again: what was answered is sent again only "
                           "if the result cache could not keep it.")
    by = {s: [o for o in outcomes if o.status == s] for s in ("done", "cached", "failed", "earlier")}
    order = {(item.row, request.options.variation): n for n, (item, request) in enumerate(plan.requests)}
    failures = sorted(by["failed"], key=lambda o: order.get((o.row, o.variation), 0))
    return BatchSummary(done=len(by["done"]), cached=len(by["cached"]), failed=len(failures),
                        earlier=len(by["earlier"]), cost_usd=round(sum(o.cost_usd or 0.0 for o in outcomes
                                                                       if o.status != "earlier"), 6),
                        failures=tuple(failures), cancelled=cancel is not None and cancel.is_set())


async def _one(studio: Studio, item: BatchItem, request: ImageRequest, out_dir: Path, staging: Path,
               seen_results: set[str], **run_kwargs: Any) -> ItemOutcome:
    base = base_line(item, request)
    try:
        if item.transparent:  # a transparent PNG: one or two calls (service.transparency)
            result = await make_transparent(studio, request, Transparency(method=_method(item.transparent)),
                                            out_dir=staging, **run_kwargs)
        else:
            result = await studio.run(request, out_dir=staging, **run_kwargs)
    except StudioError as error:
        return failed_outcome(item, request, base, error.message, type(error).__name__, error.exit_code)
    except NotSent:
        raise
    except (OSError, sqlite3.OperationalError) as error:  # the answer (maybe paid) could not be kept: stop the run
        return failed_outcome(item, request, base, f"could not keep the answer: {error}", "StorageError", 7)
    except Exception as error:  # noqa: BLE001 - a bug in one item must not stop the batch
        return failed_outcome(item, request, base, f"unexpected {type(error).__name__}: {error}",
                              type(error).__name__, 1)
    # Identical requests in flight at once share one call and one result: only the first pays for it.
    shared = (result.answer_id or result.id) in seen_results
    seen_results.add(result.answer_id or result.id)
    try:
        paths = await asyncio.to_thread(place_images, result, out_dir, image_stem(item, request.options.variation))
    except OSError as error:  # its answer is in the result cache: the next run gets it for $0
        return failed_outcome(item, request, base, f"could not save the image: {error}", "StorageError", 7)
    status = "cached" if result.cached or shared else "done"
    cost = 0.0 if status == "cached" else result.cost_usd
    record = result.to_record()
    images = [{**image, "path": path.name} for path, image in zip(paths, record.pop("images"), strict=True)]
    line = {**base, **record, "status": status, "paths": [p.name for p in paths], "cost_usd": cost,
            "cached": status == "cached", "error": None, "error_type": None, "images": images}
    return ItemOutcome(row=item.row, prompt=item.prompt, status=status, paths=tuple(paths), cost_usd=cost,
                       error=None, error_type=None, variation=request.options.variation, record=line)


def _method(text: str) -> Method:
    return "key" if text == "key" else "difference"


def place_images(result: ImageResult, out_dir: Path, stem: str) -> list[Path]:
    """Put each of a result's images under its batch name, atomically (replacing a killed run's leftover)."""
    paths = []
    for index, image in enumerate(result.images):
        suffix = f"_{index + 1}" if len(result.images) > 1 else ""
        target = out_dir / f"{stem}{suffix}{extension_for(image.mime_type)}"
        if image.path is None:
            raise OSError("the image was not saved")
        tmp = out_dir / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
        clone_file(image.path, tmp)  # a file of its own, never a hard link (a reflink where the file system offers one)
        os.replace(tmp, target)
        paths.append(target)
    return paths


def base_line(item: BatchItem, request: ImageRequest) -> dict[str, Any]:
    """The manifest fields every line of a request has, whatever its outcome (Gemini Batch Mode adds `job`)."""
    return {"row": item.row, "prompt": item.prompt, "variation": request.options.variation, "name": item.name,
            "key": request.cache_key(), "model": request.model, "mode": request.mode.value,
            "seed": request.options.seed, "time": datetime.now(UTC).isoformat(timespec="seconds"),
            **({"note": request.note} if request.note else {})}


def failed_outcome(item: BatchItem, request: ImageRequest, base: dict[str, Any], message: str, kind: str,
                   code: int) -> ItemOutcome:
    """A failed request's outcome and manifest line (status "failed", the message, its error type and exit code)."""
    line = {**base, "status": "failed", "paths": [], "cost_usd": 0.0, "error": message, "error_type": kind,
            "exit_code": code}
    return ItemOutcome(row=item.row, prompt=item.prompt, status="failed", paths=(), cost_usd=0.0, error=message,
                       error_type=kind, variation=request.options.variation, record=line, exit_code=code)


def _earlier(item: BatchItem, request: ImageRequest, line: dict[str, Any], out_dir: Path) -> ItemOutcome:
    return ItemOutcome(row=item.row, prompt=item.prompt, status="earlier",
                       paths=tuple(out_dir / p for p in line["paths"]), cost_usd=line.get("cost_usd"), error=None,
                       error_type=None, variation=request.options.variation, record=line)
