"""Gemini Batch Mode's checks, price and summary: one model per job, the batch price, what a run did."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ...domain.errors import InputError
from .gemini_journal import JobRecord
from .manifest import finished_lines
from .plan import BatchPlan
from .run import ItemOutcome

if TYPE_CHECKING:
    from google.genai import types

__all__ = ["BATCH_PRICE_FACTOR", "GeminiBatchSummary", "batch_estimate", "check_one_model", "job_state", "request_key",
           "state_word", "summarize"]

BATCH_PRICE_FACTOR = 0.5  # Gemini Batch Mode costs half the interactive price


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


def summarize(plan: BatchPlan, out_dir: Path, outcomes: Sequence[ItemOutcome], unmapped: Sequence[str],
              record: JobRecord | None, state: str | None, *, finished: bool, message: str,
              missing: int | None = None) -> GeminiBatchSummary:
    """The summary of a run from its outcomes so far and the run folder's manifest."""
    by = {s: [o for o in outcomes if o.status == s] for s in ("done", "cached", "failed")}
    earlier = len(finished_lines(out_dir)) - len(by["done"]) - len(by["cached"])
    submitted = len(record.keys) if record is not None else 0
    order = {(item.row, request.options.variation): n for n, (item, request) in enumerate(plan.requests)}
    failures = tuple(sorted(by["failed"], key=lambda o: order.get((o.row, o.variation), 0)))
    if missing is None:
        missing = submitted if not finished else 0
    return GeminiBatchSummary(
        job=record.job if record else None, display_name=record.display_name if record else None, state=state,
        submitted=submitted, done=len(by["done"]), cached=len(by["cached"]), earlier=max(earlier, 0),
        failed=len(failures), missing=missing, cost_usd=round(sum(o.cost_usd or 0.0 for o in outcomes), 6),
        failures=failures, unmapped=tuple(unmapped), finished=finished, message=message)


def job_state(job: types.BatchJob) -> str:
    """The job's state as text, e.g. "JOB_STATE_SUCCEEDED"."""
    state = job.state
    return str(getattr(state, "value", state) or "JOB_STATE_UNSPECIFIED")


def state_word(job: types.BatchJob) -> str:
    """The job's state without its prefix, e.g. "SUCCEEDED"."""
    return job_state(job).removeprefix("JOB_STATE_")
