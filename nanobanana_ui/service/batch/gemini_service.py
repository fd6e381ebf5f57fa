"""The data directory's Gemini Batch Mode jobs, for front ends: list them, refresh, fetch and cancel, after restarts.

Each job is found through the data directory's index (gemini_batches.jsonl) and described by its run folder's
journal and manifest, so the list survives a restart. Fetching reads the batch file again from the copy kept in the
run folder, with the defaults it was submitted with, so results map back to the same rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...domain.errors import InputError
from ...domain.request import ImageOptions
from ..studio import Studio
from .gemini_api import BatchApi
from .gemini_jobs import GeminiBatchRun
from .gemini_journal import JobRecord, Journal, index_entries
from .gemini_summary import GeminiBatchSummary
from .items import parse_batch_text
from .jsonl import read_jsonl
from .manifest import MANIFEST_NAME
from .plan import plan_batch

__all__ = ["GeminiBatches", "GeminiJobView"]


@dataclass(frozen=True)
class GeminiJobView:
    """One Gemini Batch Mode job as a jobs list shows it."""

    display_name: str
    job: str | None  # "batches/..."; None while its creation is unconfirmed
    folder: Path
    file: str
    model: str
    state: str  # "PENDING", "RUNNING", "SUCCEEDED", ..., "SUBMITTING", "ABANDONED"
    rows: int  # requests in the job
    created_at: str
    age_s: float
    estimated_cost_usd: float | None  # at the batch price
    cost_usd: float  # what its written results cost (batch price)
    done: int
    failed: int
    open: bool  # still running, or results not yet written


class GeminiBatches:
    """The jobs of one Studio's data directory; refresh/fetch/cancel talk to the API with the Studio's key."""

    def __init__(self, studio: Studio) -> None:
        """Serve the jobs of `studio.settings.home`."""
        self.studio = studio

    def list_jobs(self) -> list[GeminiJobView]:
        """Every job of this data directory, newest first."""
        views: dict[str, GeminiJobView] = {}
        for entry in index_entries(self.studio.settings.home):
            name, folder = str(entry.get("display_name") or ""), Path(str(entry.get("folder") or ""))
            record = self._record(folder, name)
            if record is not None:
                views[name] = _view(record, folder, str(entry.get("file") or ""))
        return list(reversed(views.values()))  # the index is in submission order

    async def refresh(self, *, display_name: str) -> GeminiJobView:
        """Ask the API for the job's state now (recorded in its journal) and return the updated view."""
        folder, record = self._find(display_name)
        if record.job is not None and record.open:
            api = BatchApi(self.studio.settings, policy=self.studio.retry_policy)
            try:
                job = await api.get(record.job)
            finally:
                await api.aclose()
            state = str(getattr(job.state, "value", job.state))
            if state != record.state:
                Journal(folder).append("state", display_name=display_name, job=record.job, state=state)
        return self.get(display_name=display_name)

    def get(self, *, display_name: str) -> GeminiJobView:
        """One job's view."""
        folder, record = self._find(display_name)
        entry = next((e for e in index_entries(self.studio.settings.home) if e.get("display_name") == display_name),
                     {})
        return _view(record, folder, str(entry.get("file") or ""))

    async def fetch(self, *, display_name: str) -> GeminiBatchSummary:
        """Check the job once; if it is over, write its results into its run folder (as the CLI does)."""
        return await self._run(display_name, cancel=False)

    async def cancel(self, *, display_name: str) -> GeminiBatchSummary:
        """Cancel the job; whatever it already answered is written."""
        return await self._run(display_name, cancel=True)

    async def _run(self, display_name: str, *, cancel: bool) -> GeminiBatchSummary:
        folder, record = self._find(display_name)
        if not record.open:
            raise InputError(f"job {record.job or display_name} is already finished; its results are in {folder}")
        spec: dict[str, Any] = dict(record.extra.get("source_spec") or {})
        if not spec.get("copy") or not (folder / spec["copy"]).is_file():
            raise InputError(f"the batch file of {display_name} was not kept in {folder}; run the CLI command "
                             "that submitted it again to fetch the results")
        text = (folder / spec["copy"]).read_text(encoding="utf-8-sig")
        defaults = ImageOptions(**{k: v for k, v in (spec.get("defaults") or {}).items()
                                   if k in ImageOptions.__dataclass_fields__})
        items = parse_batch_text(text, fmt=str(spec.get("fmt") or "txt"), base_dir=Path(spec.get("base_dir") or "."),
                                 defaults=defaults)
        # The job's own model, not this Studio's default (NANOBANANA_MODEL may differ from the submitting run's):
        # planned on another model, every result's key would match no row and be reported unmapped.
        plan = plan_batch(self.studio, items, out_dir=folder, model=spec.get("model") or record.model,
                          kit=spec.get("kit"), pins=spec.get("kits"))  # the kit versions the job was sent with
        run = GeminiBatchRun(self.studio, plan, out_dir=folder)
        try:
            return await (run.cancel() if cancel else run.run(wait=False))
        finally:
            await run.api.aclose()

    def _find(self, display_name: str) -> tuple[Path, JobRecord]:
        for entry in reversed(index_entries(self.studio.settings.home)):
            if entry.get("display_name") == display_name:
                folder = Path(str(entry.get("folder") or ""))
                record = self._record(folder, display_name)
                if record is not None:
                    return folder, record
        raise InputError(f"no Gemini batch job named {display_name!r} in this data directory")

    @staticmethod
    def _record(folder: Path, display_name: str) -> JobRecord | None:
        return next((r for r in Journal(folder).records() if r.display_name == display_name), None)


def _view(record: JobRecord, folder: Path, file: str) -> GeminiJobView:
    done = failed = 0
    cost = 0.0
    try:
        lines = read_jsonl(folder / MANIFEST_NAME)
    except OSError:
        lines = []
    for line in lines:
        if record.job and line.get("job") == record.job:
            done += line.get("status") == "done"
            failed += line.get("status") == "failed"
            cost += float(line.get("cost_usd") or 0.0)
    if record.abandoned:
        state = "ABANDONED"
    elif record.job is None:
        state = "SUBMITTING"
    else:
        state = (record.state or "JOB_STATE_PENDING").removeprefix("JOB_STATE_")
    try:
        age = (datetime.now(UTC) - datetime.fromisoformat(record.created_at)).total_seconds()
    except ValueError:
        age = 0.0
    return GeminiJobView(display_name=record.display_name, job=record.job, folder=folder, file=file,
                         model=record.model, state=state, rows=len(record.keys), created_at=record.created_at,
                         age_s=max(age, 0.0), estimated_cost_usd=record.estimated_cost_usd, cost_usd=round(cost, 6),
                         done=done, failed=failed, open=record.open)
