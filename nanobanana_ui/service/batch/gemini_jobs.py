"""Gemini Batch Mode runs: submit a plan's missing rows as one job (never twice), watch it, and write its results.

Never twice: the run folder's journal (gemini_journal.py) records the intent, with a unique display name, before
`batches.create`, and the job's name right after. A run that finds an intent without a job name lists the key's jobs
for that display name before anything else: if the job exists it is adopted, if not the intent is marked abandoned
(its create never reached the API) and a new one is made. While a job is open, running again only watches and
fetches it. Results are written row by row exactly as the interactive batch writes them (image files under their
batch names, a manifest line with status "done", cost at the batch price and the job's name, a history entry, the
result cache); rows already in the manifest are skipped, so a run killed while writing finishes the rest next time.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...backends.gemini_wire import parse_response
from ...domain.errors import (
    BadRequestError,
    InputError,
    InvalidKeyError,
    ModelNotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceError,
    StorageError,
    StudioError,
)
from ...domain.request import ImageRequest
from ...quota.partitions import salted_hash, stable_salt
from ..studio import Studio
from .folder import hold_run_folder
from .gemini_api import BatchApi, WireLines, inline_request, pick_job, poll_delays
from .gemini_journal import JobRecord, Journal, add_to_index
from .items import BatchItem
from .jsonl import decode_lines
from .manifest import Manifest, finished_lines
from .plan import BatchPlan
from .run import (
    BatchSummary,
    ItemOutcome,
    base_line,
    earlier_outcome,
    failed_outcome,
    image_stem,
    place_images,
    run_rows,
)

if TYPE_CHECKING:
    from google.genai import types

    from ..studio import Studio

__all__ = ["BATCH_PRICE_FACTOR", "FILE_LIMIT_BYTES", "INLINE_LIMIT_BYTES", "GeminiBatchRun", "GeminiBatchSummary",
           "batch_estimate", "check_one_model", "request_key"]

BATCH_PRICE_FACTOR = 0.5  # Gemini Batch Mode costs half the interactive price
INLINE_LIMIT_BYTES = 20 * 1024**2  # a job's inline requests must total less than this; larger ones go as a file
FILE_LIMIT_BYTES = 2 * 1024**3  # the Files API's limit for one JSONL input
_STAGING = ".staging"
_INPUT = ".gemini_input.jsonl"
_RESULTS = ".gemini_results.jsonl"
SOURCE_COPY = "gemini_batch_source"  # + the file's extension: the batch file as submitted
# google.rpc codes of a per-line error → our error class (and so its CLI exit code); others are ServiceError (6)
_RPC_ERRORS: dict[int, type[StudioError]] = {3: BadRequestError, 5: ModelNotFoundError, 7: PermissionDeniedError,
                                             16: InvalidKeyError, 8: RateLimitError}


def request_key(row: int, variation: int) -> str:
    """The key a request carries in the job: its row and variation, e.g. "row-7-v0"."""
    return f"row-{row}-v{variation}"


def check_one_model(plan: BatchPlan) -> str:
    """The plan's one model; a file whose rows use several is refused (a job runs one model), naming the lines."""
    transparent = sorted({item.row for item, _ in plan.requests if item.transparent})
    if transparent:  # the two calls of difference matting cannot be chained in one job, and a key needs the hook
        listed = ", ".join(map(str, transparent[:8]))
        raise InputError(f"Gemini Batch Mode cannot make transparent PNGs (line(s) {listed}): run this file "
                         "without --gemini-batch, or leave the transparent column empty.")
    lines: dict[str, list[int]] = {}
    for item, request in plan.requests:
        rows = lines.setdefault(request.model, [])
        if item.row not in rows:
            rows.append(item.row)
    if len(lines) > 1:
        listed = "; ".join(f"{model}: line(s) {', '.join(map(str, rows[:8]))}{' ...' if len(rows) > 8 else ''}"
                           for model, rows in lines.items())
        raise InputError(f"Gemini Batch Mode runs one model per job, and this file uses {len(lines)} ({listed}). "
                         "Split the file by model, or remove the model column and choose one with --model.")
    return next(iter(lines))


def batch_estimate(plan: BatchPlan) -> float | None:
    """The plan's estimate (requests still to send) at the batch price."""
    cost = plan.estimated_cost_usd
    return None if cost is None else round(cost * BATCH_PRICE_FACTOR, 6)


@dataclass(frozen=True)
class GeminiBatchSummary:
    """What a Gemini Batch Mode run did: the job, its state, counts per request, cost, failures and what next."""

    job: str | None
    display_name: str | None
    state: str | None  # the job's last state, e.g. "JOB_STATE_SUCCEEDED"; None when nothing was submitted
    submitted: int  # requests in the job
    done: int  # written now from the job's results
    cached: int  # answered from the result cache (not submitted)
    earlier: int  # finished in an earlier run
    failed: int
    missing: int  # requests of the job without a result (still running, or the job ended early)
    cost_usd: float
    failures: tuple[ItemOutcome, ...]
    unmapped: tuple[str, ...]  # result keys that match no row of the file
    finished: bool  # the job is over and its results are written (or there was nothing to submit)
    message: str


class GeminiBatchRun:
    """One run folder's Gemini Batch Mode work for a plan: submit, watch, fetch, cancel."""

    def __init__(self, studio: Studio, plan: BatchPlan, *, out_dir: Path, api: BatchApi | None = None,
                 use_cache: bool = True, inline_limit_bytes: int = INLINE_LIMIT_BYTES,
                 file_limit_bytes: int = FILE_LIMIT_BYTES, source_name: str = "",
                 source_spec: dict[str, Any] | None = None,
                 on_event: Callable[[str], None] | None = None,
                 on_outcome: Callable[[ItemOutcome], None] | None = None,
                 on_state: Callable[[types.BatchJob, dict[str, int] | None], None] | None = None) -> None:
        """Prepare a run; nothing is sent until run() or cancel()."""
        self.studio, self.plan, self.out_dir = studio, plan, Path(out_dir)
        self.api = api or BatchApi(studio.settings, policy=studio.retry_policy, on_event=on_event)
        self.use_cache, self.source_name = use_cache, source_name
        # How to read the file again (its format, image folder, row defaults, --model) so the app can fetch the job
        # later without the original command: see gemini_service.py. A copy of the file goes into the run folder.
        self.source_spec = source_spec
        self.inline_limit_bytes, self.file_limit_bytes = inline_limit_bytes, file_limit_bytes
        self.on_event, self.on_outcome, self.on_state = on_event, on_outcome, on_state
        self.journal = Journal(self.out_dir)
        self._outcomes: list[ItemOutcome] = []
        self._unmapped: list[str] = []

    # ---- entry points
    async def run(self, *, wait: bool = True) -> GeminiBatchSummary:
        """Watch the open job (or submit the rows still missing as a new one); with `wait`, until it ends."""
        self.studio.capabilities.require_batch_mode()  # not on Vertex AI: refused before anything is sent
        check_one_model(self.plan)
        with hold_run_folder(self.out_dir):
            return await self._run(wait=wait)

    async def _run(self, *, wait: bool) -> GeminiBatchSummary:
        # Rows a previous run finished are reported first, as the interactive batch does (`--json`: status "earlier").
        finished = await asyncio.to_thread(finished_lines, self.out_dir)
        for item, request in self.plan.requests:
            line = finished.get((item.row, request.cache_key()))
            if line is not None:
                self._report(earlier_outcome(item, request, line, self.out_dir))
        record = await self._reconcile(self._open_record())
        if record is None:
            record = await self._submit_missing()
            if record is None:
                return self._summary(None, None, finished=True, message="nothing to submit: every request is done")
            if not wait:
                return self._summary(record, record.state, finished=False, message=(
                    f"submitted {len(record.keys)} request(s) as {record.job}; run the same command again to "
                    "fetch the results (within 24 h)"))
        else:
            self._say(f"resuming Gemini batch job {record.job} ({len(record.keys)} request(s), submitted "
                      f"{record.created_at})")
        job = await self._watch(record, wait=wait)
        if not job.done:
            return self._summary(record, _state(job), finished=False, message=(
                f"job {record.job} is {_state_word(job)}; run the same command again to fetch the results"))
        return await self._fetch(record, job)

    async def cancel(self) -> GeminiBatchSummary:
        """Cancel the run folder's open job; what it already answered is written, the rest can be resubmitted."""
        self.studio.capabilities.require_batch_mode()
        with hold_run_folder(self.out_dir):
            return await self._cancel()

    async def _cancel(self) -> GeminiBatchSummary:
        record = await self._reconcile(self._open_record())
        if record is None or record.job is None:
            return self._summary(None, None, finished=True, message="no open Gemini batch job in this run folder: "
                                                                    "nothing to cancel")
        job = await self.api.get(record.job)
        if not job.done:  # a job that is already over is not cancelled: its results are written instead
            await self.api.cancel(record.job)
            self.journal.append("cancel_requested", display_name=record.display_name, job=record.job)
            job = await self.api.get(record.job)
        if job.done:
            return await self._fetch(record, job)
        return self._summary(record, _state(job), finished=False, message=(
            f"asked Gemini to cancel {record.job} (now {_state_word(job)}); run the same command again to see it end"))

    # ---- never twice
    def _key_fp(self) -> str:
        """This run's key and endpoint as a salted hash (the key itself is never written)."""
        settings = self.studio.settings
        endpoint = "offline" if settings.uses_emulator else (settings.base_url or "gemini")
        text = f"batch-key:{'' if settings.uses_emulator else settings.api_key or ''}\0{endpoint}"
        return salted_hash(stable_salt(settings.home), text)[:16]

    def _open_record(self) -> JobRecord | None:
        """The folder's open job; refused when another key submitted it (its jobs are invisible to this key)."""
        record = self.journal.open_record()
        if record is not None and record.key_fp and record.key_fp != self._key_fp():
            raise InputError(f"this folder's Gemini Batch Mode job {record.job or record.display_name} was "
                             "submitted with another API key (or endpoint): run this again with that key to fetch "
                             "or cancel it. Nothing was sent.")
        return record

    async def _reconcile(self, record: JobRecord | None) -> JobRecord | None:
        """An intent without a job name: adopt the job with its display name, or mark the intent abandoned.

        When a create may have reached the API (journaled "create_sent"), the listing is watched for minutes before
        the intent is given up: a job just made can take a while to be listed.
        """
        if record is None or record.job is not None:
            return record
        found = await (self.api.find_settled(record.display_name) if record.create_sent
                       else self.api.find(record.display_name))
        if not found:
            self.journal.append("abandoned", display_name=record.display_name)
            self._say(f"an earlier run stopped before its job was created ({record.display_name}): submitting anew")
            return None
        job, others = pick_job(found)
        record.job = str(job.name)
        self.journal.append("created", display_name=record.display_name, job=record.job, reconciled=True)
        self._say(f"found the job an earlier run created before it could note it: {record.job}")
        await self._drop_duplicates(record, others)
        return record

    async def _drop_duplicates(self, record: JobRecord, others: Sequence[types.BatchJob]) -> None:
        """Journal every other job with the record's display name and cancel those still running (they would be
        billed and never fetched)."""
        for job in others:
            name = str(job.name)
            if name == record.job or name in record.duplicates:
                continue
            self.journal.append("duplicate", display_name=record.display_name, job=name)
            record.duplicates.append(name)
            if job.done:
                self._say(f"warning: {name} is a second job for the same rows (an earlier create was retried); it "
                          f"already ended, and only {record.job}'s results are written")
            else:
                await self.api.cancel(name)
                self._say(f"cancelled {name}: a second job for the same rows (an earlier create was retried)")

    async def _check_duplicates(self, record: JobRecord) -> None:
        """Before fetching: cancel any other job with our display name that has been listed since (best effort)."""
        try:
            found = await self.api.find(record.display_name)
            await self._drop_duplicates(record, [job for job in found if job.name != record.job])
        except StudioError as error:
            self._say(f"warning: could not check for a second job with this job's name: {error.message}")

    async def _submit_missing(self) -> JobRecord | None:
        finished = finished_lines(self.out_dir)
        todo = [(i, r) for i, r in self.plan.requests if (i.row, r.cache_key()) not in finished]
        if self.use_cache:
            hits = [(i, r) for i, r in todo if await asyncio.to_thread(self.studio.cache.lookup, r.cache_key())]
            if hits:  # answered from the cache ($0) the interactive way; never part of a job
                await self._run_cached(hits)
                hit_keys = {(i.row, r.cache_key()) for i, r in hits}
                todo = [(i, r) for i, r in todo if (i.row, r.cache_key()) not in hit_keys]
        if not todo:
            return None
        return await self._submit(todo)

    async def _run_cached(self, hits: Sequence[tuple[BatchItem, ImageRequest]]) -> None:
        sub = BatchPlan(items=self.plan.items, requests=tuple(hits), estimated_cost_usd=0.0, already_done=0)
        summary: BatchSummary = await run_rows(self.studio, sub, out_dir=self.out_dir, on_outcome=self._report)
        self._say(f"{summary.cached + summary.done} request(s) answered from the result cache ($0), not submitted")

    async def _submit(self, todo: Sequence[tuple[BatchItem, ImageRequest]]) -> JobRecord:
        model = todo[0][1].model
        display_name = f"nanobanana-{uuid.uuid4().hex}"
        keys = {request_key(i.row, r.options.variation): r.cache_key() for i, r in todo}
        size = await asyncio.to_thread(self._write_input, todo)
        # Our JSONL measure is within a few bytes per request of the create call's body: keep 5% to spare.
        source = "inline" if size < self.inline_limit_bytes * 0.95 else "file"
        if source == "file" and size > self.file_limit_bytes:
            parts = -(-size // self.file_limit_bytes)
            raise InputError(f"this job's input is {size / 1e9:.2f} GB, over Gemini Batch Mode's "
                             f"{self.file_limit_bytes / 1e9:.2f} GB file limit: split the file into at least "
                             f"{parts} files (about {len(todo) // parts} requests each) and submit each.")
        cost = self.plan.estimated_cost_usd
        spec = await asyncio.to_thread(self._keep_source)
        self.journal.append("intent", display_name=display_name, model=model, keys=keys, source=source,
                            rows=len(todo), input_bytes=size, source_spec=spec, key_fp=self._key_fp(),
                            estimated_cost_usd=None if cost is None else round(cost * BATCH_PRICE_FACTOR, 6))
        add_to_index(self.studio.settings.home, folder=self.out_dir, display_name=display_name, model=model,
                     rows=len(todo), source_file=self.source_name)
        await self._pause("before_create")
        if source == "inline":
            src: Any = [inline_request(r, request_key(i.row, r.options.variation)) for i, r in todo]
        else:
            src = await self.api.upload(self.out_dir / _INPUT, display_name)
        def sending() -> None:  # each attempt: a resume then knows the job may exist, though not yet listed
            self.journal.append("create_sent", display_name=display_name)

        job = await self.api.create(model=model, src=src, display_name=display_name, on_send=sending)
        await self._pause("after_create")
        self.journal.append("created", display_name=display_name, job=job.name)
        (self.out_dir / _INPUT).unlink(missing_ok=True)
        self._say(f"submitted {len(todo)} request(s) to Gemini Batch Mode as {job.name} ({source}, "
                  f"{size / 1e6:.1f} MB)")
        record = self.journal.open_record()
        assert record is not None and record.job == job.name
        record.state = _state(job)
        return record

    def _keep_source(self) -> dict[str, Any] | None:
        """Copy the batch file into the run folder; the spec (with the copy's name) for reading it again."""
        if self.source_spec is None or not self.source_name:
            return None
        copy = f"{SOURCE_COPY}.{self.source_spec.get('fmt', 'txt')}"
        shutil.copyfile(self.source_name, self.out_dir / copy)
        return {**self.source_spec, "copy": copy}

    def _write_input(self, todo: Sequence[tuple[BatchItem, ImageRequest]]) -> int:
        """Write the job's JSONL input (the file a large job uploads; its size decides inline or file)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        size = 0
        lines = WireLines(self.api.client)
        with open(self.out_dir / _INPUT, "w", encoding="utf-8") as out:
            for item, request in todo:
                line = lines.line(request, request_key(item.row, request.options.variation)) + "\n"
                size += len(line.encode("utf-8"))
                out.write(line)
        return size

    # ---- watch
    async def _watch(self, record: JobRecord, *, wait: bool) -> types.BatchJob:
        assert record.job is not None
        delays = poll_delays(self.studio.settings.batch_poll_scale)
        while True:
            job = await self.api.get(record.job)
            state = _state(job)
            if state != record.state:
                self.journal.append("state", display_name=record.display_name, job=record.job, state=state)
                record.state = state
            if self.on_state is not None:
                stats = await self.api.stats(record.job) if state == "JOB_STATE_RUNNING" else None
                self.on_state(job, stats)
            if job.done or not wait:
                return job
            await self._pause("polling")
            await asyncio.sleep(next(delays))

    # ---- fetch
    async def _fetch(self, record: JobRecord, job: types.BatchJob) -> GeminiBatchSummary:
        await self._check_duplicates(record)
        state = _state(job)
        dest = job.dest
        written: set[str] = set()
        if dest is not None and dest.file_name:
            target = self.out_dir / _RESULTS
            await self.api.download(dest.file_name, target)
            await asyncio.to_thread(self._write_results, record, _file_results(target), written)
            target.unlink(missing_ok=True)
        elif dest is not None and dest.inlined_responses:
            lines = (((r.metadata or {}).get("key"), r.response, r.error) for r in dest.inlined_responses)
            await asyncio.to_thread(self._write_results, record, lines, written)
        done_keys = {cache_key for (_, cache_key) in finished_lines(self.out_dir)}
        missing = [key for key, cache_key in record.keys.items() if key not in written and cache_key not in done_keys]
        if state == "JOB_STATE_SUCCEEDED" and missing:  # the job is over: a request it did not answer has failed
            await asyncio.to_thread(self._write_missing, record, missing)
            missing = []
        failed = sum(1 for o in self._outcomes if o.status == "failed")
        done = sum(1 for o in self._outcomes if o.status == "done")
        self.journal.append("finished", display_name=record.display_name, job=record.job, state=state, done=done,
                            failed=failed, missing=len(missing), unmapped=self._unmapped)
        if state == "JOB_STATE_SUCCEEDED":
            message = f"job {record.job} succeeded"
        else:
            message = (f"job {record.job} ended {_state_word(job)}: kept {done} new image request(s); "
                       f"{len(missing)} request(s) got no result. Run the same command again to submit those as a "
                       "new job (only what is missing is sent)")
        return self._summary(record, state, finished=True, message=message, missing=len(missing))

    def _write_results(self, record: JobRecord, lines: Iterator[tuple[Any, Any, Any]], written: set[str]) -> None:
        """Write each result line as its row (runs in a worker thread; one line in memory at a time)."""
        index = {request_key(i.row, r.options.variation): (i, r) for i, r in self.plan.requests}
        finished = finished_lines(self.out_dir)
        staging = self.out_dir / _STAGING
        manifest = Manifest(self.out_dir)
        try:
            for key, response, error in lines:
                entry = index.get(key) if isinstance(key, str) else None
                if entry is None or record.keys.get(key) != entry[1].cache_key():
                    self._unmapped.append(str(key))
                    self._say(f"warning: a result with key {key!r} matches no row of this file as it was submitted "
                              "(was the file changed?); it was not written")
                    continue
                item, request = entry
                written.add(key)
                if (item.row, request.cache_key()) in finished:
                    continue  # written by an earlier fetch that was interrupted
                outcome = self._one(record, item, request, response, error, staging)
                manifest.append(outcome.record)
                self._report(outcome)
                if self.studio.settings.batch_pause_at == "writing":
                    self._pause_now("writing")
        finally:
            manifest.close()
            shutil.rmtree(staging, ignore_errors=True)

    def _one(self, record: JobRecord, item: BatchItem, request: ImageRequest, response: Any, error: Any,
             staging: Path) -> ItemOutcome:
        base = {**base_line(item, request), "job": record.job}
        try:
            if error is not None or response is None:
                code = int(_get(error, "code") or 13)
                message = str(_get(error, "message") or "no response")
                raise _RPC_ERRORS.get(code, ServiceError)(
                    f"Gemini Batch Mode could not answer: {message} (code {code})")
            reply = parse_response(response)
            result = self.studio.keep_batch_reply(request, reply, out_dir=staging, price_factor=BATCH_PRICE_FACTOR)
            paths = place_images(result, self.out_dir, image_stem(item, request.options.variation))
        except StudioError as failure:  # an error line, no image, or an unreadable one: a failed row, not a crash
            self._record_failure(request, failure)
            return failed_outcome(item, request, base, failure.message, type(failure).__name__, failure.exit_code)
        except (OSError, sqlite3.OperationalError) as failure:  # disk full, read-only: stop, never finish the job
            # Not a failed row: the job would be journaled finished and the next run would pay for these rows again.
            # Raised, the fetch stops before "finished"; the next run fetches the same job again (rows written so far
            # are skipped), and nothing is submitted again.
            raise StorageError(f"could not write the results of {record.job} ({type(failure).__name__}: {failure}); "
                               "the job stays open. Free some space and run the same command again: its results are "
                               "fetched again and nothing is submitted again.") from failure
        except Exception as failure:  # noqa: BLE001 - one bad line must not stop the others
            return failed_outcome(item, request, base, f"unexpected {type(failure).__name__}: {failure}",
                           type(failure).__name__, 1)
        fields = result.to_record()  # the manifest line as the interactive batch writes it (run.py), plus the job
        images = [{**image, "path": path.name} for path, image in zip(paths, fields.pop("images"), strict=True)]
        line = {**base, **fields, "status": "done", "paths": [p.name for p in paths], "cost_usd": result.cost_usd,
                "cached": False, "error": None, "error_type": None, "images": images, "job": base["job"],
                "price": "batch"}
        return ItemOutcome(row=item.row, prompt=item.prompt, status="done", paths=tuple(paths),
                           cost_usd=result.cost_usd, error=None, error_type=None,
                           variation=request.options.variation, record=line)

    def _record_failure(self, request: ImageRequest, failure: StudioError) -> None:
        """A failed line goes into the history too, as an interactive failure does (best effort)."""
        try:
            self.studio.history.record_failure(request, failure, elapsed_s=0.0)
        except Exception:  # noqa: BLE001, S110 - the manifest has the failure; only its history line is lost
            pass

    def _write_missing(self, record: JobRecord, missing: list[str]) -> None:
        index = {request_key(i.row, r.options.variation): (i, r) for i, r in self.plan.requests}
        manifest = Manifest(self.out_dir)
        try:
            for key in missing:
                if key not in index:
                    continue
                item, request = index[key]
                outcome = failed_outcome(item, request, {**base_line(item, request), "job": record.job},
                                  "the batch job returned no result for this request", "BadResponseError", 6)
                manifest.append(outcome.record)
                self._report(outcome)
        finally:
            manifest.close()

    # ---- helpers
    def _report(self, outcome: ItemOutcome) -> None:
        self._outcomes.append(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)

    def _say(self, text: str) -> None:
        if self.on_event is not None:
            self.on_event(text)

    async def _pause(self, point: str) -> None:
        """Test hook (NANOBANANA_BATCH_PAUSE_AT): stop here, marked by a file, until the process is killed."""
        if self.studio.settings.batch_pause_at == point:
            (self.out_dir / f".paused-{point}").write_text(point)
            await asyncio.sleep(3600)

    def _pause_now(self, point: str) -> None:
        import time

        (self.out_dir / f".paused-{point}").write_text(point)
        time.sleep(3600)

    def _summary(self, record: JobRecord | None, state: str | None, *, finished: bool, message: str,
                 missing: int | None = None) -> GeminiBatchSummary:
        by = {s: [o for o in self._outcomes if o.status == s] for s in ("done", "cached", "failed")}
        earlier = len(finished_lines(self.out_dir)) - len(by["done"]) - len(by["cached"])
        submitted = len(record.keys) if record is not None else 0
        order = {(item.row, request.options.variation): n for n, (item, request) in enumerate(self.plan.requests)}
        failures = tuple(sorted(by["failed"], key=lambda o: order.get((o.row, o.variation), 0)))
        if missing is None:
            missing = submitted if not finished else 0
        return GeminiBatchSummary(
            job=record.job if record else None, display_name=record.display_name if record else None, state=state,
            submitted=submitted, done=len(by["done"]), cached=len(by["cached"]), earlier=max(earlier, 0),
            failed=len(failures), missing=missing, cost_usd=round(sum(o.cost_usd or 0.0 for o in self._outcomes), 6),
            failures=failures, unmapped=tuple(self._unmapped), finished=finished, message=message)


def _state(job: types.BatchJob) -> str:
    state = job.state
    return str(getattr(state, "value", state) or "JOB_STATE_UNSPECIFIED")


def _state_word(job: types.BatchJob) -> str:
    return _state(job).removeprefix("JOB_STATE_")


def _get(value: Any, name: str) -> Any:
    return value.get(name) if isinstance(value, dict) else getattr(value, name, None)


def _file_results(path: Path) -> Iterator[tuple[Any, Any, Any]]:
    """(key, response, error) for each line of a downloaded result file, read one line at a time."""
    from google.genai import types

    with open(path, "rb") as raw:  # decoded line by line: one bad byte spoils its line, not the rest of the file
        for number, text in decode_lines(raw):
            if text is not None and not text.strip():
                continue
            try:
                if text is None:
                    raise UnicodeError("not UTF-8")
                line = json.loads(text)
                response = line.get("response")
                parsed = types.GenerateContentResponse.model_validate(response) if response is not None else None
            except Exception as exc:  # noqa: BLE001 - an unreadable line is reported as unmapped, never dropped
                yield f"(result line {number}: unreadable, {type(exc).__name__})", None, None
                continue
            key = line.get("key") or (line.get("metadata") or {}).get("key")
            yield key, parsed, line.get("error") if response is None else None
