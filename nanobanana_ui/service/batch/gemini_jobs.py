"""Gemini Batch Mode runs: submit a plan's missing rows as one job (never twice), watch it, and write its results.

Never twice: the run folder's journal (gemini_journal.py) records the intent, with a unique display name, before
`batches.create`, and the job's name right after. A run that finds an intent without a job name lists the key's jobs
for that display name before anything else: if the job exists it is adopted, if not the intent is marked abandoned
(its create never reached the API) and a new one is made. While a job is open, running again only watches and
fetches it. Results are written row by row exactly as the interactive batch writes them (image files under their
batch names, a manifest line with status "done", cost at the batch price and the job's name, a history entry, the
result cache); rows already in the manifest are skipped, so a run killed while writing finishes the rest next time.
The results are written by gemini_results.py; the one-model check, the batch price and the summary are in
gemini_summary.py.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...domain.errors import InputError, StudioError
from ...domain.request import ImageRequest
from ...quota.partitions import salted_hash, stable_salt
from ..studio import Studio
from .folder import hold_run_folder
from .gemini_api import BatchApi, WireLines, inline_request, pick_job, poll_delays
from .gemini_journal import JobRecord, Journal, add_to_index
from .gemini_results import ResultWriter, file_results
from .gemini_summary import (
    BATCH_PRICE_FACTOR,
    GeminiBatchSummary,
    check_one_model,
    job_state,
    request_key,
    state_word,
    summarize,
)
from .items import BatchItem
from .manifest import finished_lines
from .plan import BatchPlan
from .run import BatchSummary, ItemOutcome, earlier_outcome, run_rows

if TYPE_CHECKING:
    from google.genai import types

    from ..studio import Studio

__all__ = ["FILE_LIMIT_BYTES", "INLINE_LIMIT_BYTES", "SOURCE_COPY", "GeminiBatchRun"]

INLINE_LIMIT_BYTES = 20 * 1024**2  # a job's inline requests must total less than this; larger ones go as a file
FILE_LIMIT_BYTES = 2 * 1024**3  # the Files API's limit for one JSONL input
_INPUT = ".gemini_input.jsonl"
_RESULTS = ".gemini_results.jsonl"
SOURCE_COPY = "gemini_batch_source"  # + the file's extension: the batch file as submitted


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
        self._writer = ResultWriter(studio, plan, self.out_dir, report=self._report, say=self._say,
                                    unmapped=self._unmapped)

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
            return self._summary(record, job_state(job), finished=False, message=(
                f"job {record.job} is {state_word(job)}; run the same command again to fetch the results"))
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
        return self._summary(record, job_state(job), finished=False, message=(
            f"asked Gemini to cancel {record.job} (now {state_word(job)}); run the same command again to see it end"))

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
        record.state = job_state(job)
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
            state = job_state(job)
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
        state = job_state(job)
        dest = job.dest
        written: set[str] = set()
        if dest is not None and dest.file_name:
            target = self.out_dir / _RESULTS
            await self.api.download(dest.file_name, target)
            await asyncio.to_thread(self._writer.write_results, record, file_results(target), written)
            target.unlink(missing_ok=True)
        elif dest is not None and dest.inlined_responses:
            lines = (((r.metadata or {}).get("key"), r.response, r.error) for r in dest.inlined_responses)
            await asyncio.to_thread(self._writer.write_results, record, lines, written)
        done_keys = {cache_key for (_, cache_key) in finished_lines(self.out_dir)}
        missing = [key for key, cache_key in record.keys.items() if key not in written and cache_key not in done_keys]
        if state == "JOB_STATE_SUCCEEDED" and missing:  # the job is over: a request it did not answer has failed
            await asyncio.to_thread(self._writer.write_missing, record, missing)
            missing = []
        failed = sum(1 for o in self._outcomes if o.status == "failed")
        done = sum(1 for o in self._outcomes if o.status == "done")
        self.journal.append("finished", display_name=record.display_name, job=record.job, state=state, done=done,
                            failed=failed, missing=len(missing), unmapped=self._unmapped)
        if state == "JOB_STATE_SUCCEEDED":
            message = f"job {record.job} succeeded"
        else:
            message = (f"job {record.job} ended {state_word(job)}: kept {done} new image request(s); "
                       f"{len(missing)} request(s) got no result. Run the same command again to submit those as a "
                       "new job (only what is missing is sent)")
        return self._summary(record, state, finished=True, message=message, missing=len(missing))

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

    def _summary(self, record: JobRecord | None, state: str | None, *, finished: bool, message: str,
                 missing: int | None = None) -> GeminiBatchSummary:
        return summarize(self.plan, self.out_dir, self._outcomes, self._unmapped, record, state, finished=finished,
                         message=message, missing=missing)
