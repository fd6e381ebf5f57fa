"""`batch FILE --gemini-batch`: submit to Gemini Batch Mode (half price, within 24 h), watch, fetch, or --cancel."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.genai import types

    from ..domain.request import ImageOptions
    from ..service.batch import BatchPlan, ItemOutcome
    from ..service.batch.gemini_summary import GeminiBatchSummary
    from ..service.studio import Studio

__all__ = ["add_gemini_batch_options", "run_gemini_batch_cli"]


def add_gemini_batch_options(batch: argparse.ArgumentParser) -> None:
    """Add --gemini-batch, --no-wait and --cancel to the `batch` command."""
    group = batch.add_argument_group("Gemini Batch Mode (50% off, results within 24 h)")
    group.add_argument("--gemini-batch", action="store_true",
                       help="send the rows as one Gemini Batch Mode job at half price; run again to resume watching")
    group.add_argument("--no-wait", action="store_true", help="with --gemini-batch: return once the job is "
                       "submitted (or still running); the same command later fetches the results")
    group.add_argument("--cancel", action="store_true", help="with --gemini-batch: cancel this run folder's job")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Watcher:
    """Shows the job's state on stderr, with a progress bar once the API reports counts."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.started = time.monotonic()
        self.last: str | None = None

    def __call__(self, job: types.BatchJob, stats: dict[str, int] | None) -> None:
        state = str(getattr(job.state, "value", job.state)).removeprefix("JOB_STATE_")
        if stats and stats.get("requestCount"):
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=stats["requestCount"], file=sys.stderr, unit="req", dynamic_ncols=True,
                                disable=None, desc="gemini batch")
            finished = stats.get("successfulRequestCount", 0) + stats.get("failedRequestCount", 0)
            self.bar.update(max(finished - self.bar.n, 0))
            self.bar.set_postfix({"state": state}, refresh=True)
        if state != self.last and (self.bar is None or self.bar.disable):  # no terminal: one line per state
            minutes = (time.monotonic() - self.started) / 60
            _say(f"job {job.name}: {state} ({minutes:.1f} min)")
        self.last = state

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


async def run_gemini_batch_cli(args: argparse.Namespace, studio: Studio, plan: BatchPlan, out_dir: Path,
                               print_json: Any, confirmed: Any, defaults: ImageOptions) -> int:
    """Run the Gemini Batch Mode side of `batch FILE` (after the file is read and planned) and return the exit code."""
    from ..domain.errors import InputError
    from ..service.batch.gemini_jobs import GeminiBatchRun
    from ..service.batch.gemini_journal import Journal
    from ..service.batch.gemini_summary import batch_estimate, check_one_model

    plan_defaults = defaults.to_dict()
    if args.concurrency is not None:
        raise InputError("--concurrency applies to the interactive batch; Gemini Batch Mode runs on Google's side.")
    model = check_one_model(plan)
    to_send = len(plan.requests) - plan.already_done
    interactive, batch = plan.estimated_cost_usd, batch_estimate(plan)
    _say(f"batch {args.file.name}: {len(plan.items)} item(s), {len(plan.requests)} request(s) on {model}; "
         f"{plan.already_done} done in an earlier run, {to_send} to submit; output {out_dir}")
    _say(f"estimated cost: interactive {_money(interactive)}, Gemini Batch Mode {_money(batch)} (50% off; at most: "
         "cache hits are free)")
    if args.dry_run:
        for item in plan.items:
            inputs = f", {len(item.images)} image(s)" if item.images else ""
            _say(f"  line {item.row}: {item.mode.value} x{item.count}{inputs}: {item.prompt[:70]}")
        return 0
    watcher = _Watcher()
    outcomes: list[ItemOutcome] = []

    def on_outcome(outcome: ItemOutcome) -> None:
        outcomes.append(outcome)
        if args.json:
            print_json(outcome, out_dir)

    spec = {"fmt": args.file.suffix.lower().lstrip("."), "base_dir": str(args.file.resolve().parent),
            "defaults": plan_defaults, "model": args.model, "kit": args.kit, "kits": plan.kits}
    run = GeminiBatchRun(studio, plan, out_dir=out_dir, use_cache=not args.no_cache, source_name=str(args.file),
                         source_spec=spec, on_event=_say, on_outcome=on_outcome, on_state=watcher)
    try:
        if args.cancel:
            summary = await run.cancel()
        else:
            resuming = Journal(out_dir).open_record() is not None
            if to_send and not resuming and not args.yes and not confirmed(batch):
                return 2
            summary = await run.run(wait=not args.no_wait)
    finally:
        watcher.close()
        await run.api.aclose()
    return _report(summary, out_dir, offline=studio.offline and not args.json)


def _money(value: float | None) -> str:
    return "unknown (a model without a price)" if value is None else f"${value:.2f}"


def _report(summary: GeminiBatchSummary, out_dir: Path, *, offline: bool) -> int:
    counts = (f"done {summary.done}, cached {summary.cached}, earlier {summary.earlier}, failed {summary.failed}"
              + (f", without a result {summary.missing}" if summary.missing else ""))
    _say(f"{summary.message}. {counts}; cost ${summary.cost_usd:.4f} at the batch price; manifest.jsonl in {out_dir}")
    for failure in summary.failures:
        _say(f"  failed: line {failure.row}{f' (v{failure.variation})' if failure.variation else ''}: "
             f"{failure.error}")
    for key in summary.unmapped:
        _say(f"  unmapped result: {key}")
    if offline:
        _say("(offline: placeholder images from the built-in emulator; set GEMINI_API_KEY for real ones)")
    if summary.failures:
        return summary.failures[0].exit_code
    if summary.finished and (summary.missing or summary.unmapped):
        return 6  # the job ended (expired, cancelled, failed) without answering everything
    return 0
