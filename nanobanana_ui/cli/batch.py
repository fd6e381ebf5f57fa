"""The `batch` command: plan, estimate, confirm, run with a progress bar, summarise; --json for scripts."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from ..domain.config import load_settings
from ..domain.errors import InputError
from ..domain.request import ImageOptions, image_records
from .gemini_batch import add_gemini_batch_options, run_gemini_batch_cli
from .options import output_options

if TYPE_CHECKING:
    from tqdm import tqdm

    from ..service.batch import ItemOutcome

__all__ = ["CONFIRM_ABOVE_USD", "add_batch_parser", "run_batch_command"]

CONFIRM_ABOVE_USD = 1.00  # a batch estimated above this asks first (--yes skips; without a terminal: refused)


def add_batch_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                     shared: argparse.ArgumentParser) -> None:
    """Register `batch FILE` with the shared options (as every row's defaults) and its own."""
    batch = commands.add_parser("batch", parents=[shared], help="run every prompt of a .txt, .csv or .jsonl file",
                                description="Run a batch file at the pace of the rate limit; run it again to "
                                            "resume (nothing finished is sent again). The shared options are "
                                            "defaults for every row; a row's own columns win.")
    batch.add_argument("file", type=Path, metavar="FILE")
    batch.add_argument("--concurrency", type=int, help="at most N requests at once (default and maximum: the rate "
                                                       "limit, NANOBANANA_RPM)")
    batch.add_argument("--dry-run", action="store_true", help="validate and print the plan and estimate; send nothing")
    batch.add_argument("--yes", "-y", action="store_true", help=f"no confirmation above ${CONFIRM_ABOVE_USD:.2f}")
    batch.add_argument("--template", metavar="TEXT", help='a prompt with {variables}, e.g. "a {animal} in {place}": '
                       "each .csv/.jsonl row fills them from its columns (a row lacking one is refused)")
    add_gemini_batch_options(batch)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _money(value: float | None) -> str:
    return "unknown (a model without a price)" if value is None else f"${value:.2f}"


async def _main(args: argparse.Namespace) -> int:
    from ..service.batch import BatchFileError, plan_batch, read_batch_file, run_batch
    from ..service.batch.folder import refuse_open_gemini_job
    from ..service.studio import Studio

    if args.concurrency is not None and args.concurrency < 1:
        raise InputError(f"--concurrency must be at least 1 (got {args.concurrency}).")
    settings = load_settings({"offline": True if args.offline else None,
                              "keep_metadata": True if args.keep_metadata else None,
                              "store": True if getattr(args, "store", False) else None,
                              "retry_timeouts": True if args.retry_timeouts else None})
    defaults = ImageOptions(aspect_ratio=args.aspect_ratio, size=args.size, temperature=args.temperature,
                            top_p=args.top_p, top_k=args.top_k, seed=args.seed, with_text=not args.image_only,
                            thinking=args.thinking, show_thoughts=args.show_thoughts, search=args.search,
                            image_search=args.image_search, **output_options(args))
    out_dir = args.out or settings.home / "batches" / args.file.stem
    async with Studio(settings) as studio:
        studio.connect()  # a Vertex setup problem is one line now, not one per row
        try:
            from .styles import variables_from_args, warn_style_problems

            warn_style_problems(studio.styles)
            items = read_batch_file(args.file, defaults=defaults, template=args.template,
                                    variables=variables_from_args(args))
            plan = plan_batch(studio, items, out_dir=out_dir, model=args.model, style=args.style, kit=args.kit)
        except BatchFileError as error:
            _say(f"error: {len(error.problems)} problem(s) in {args.file}; nothing was sent:")
            for problem in error.problems:
                _say(f"  {problem}")
            return error.exit_code
        for row, note in dict.fromkeys((item.row, request.note) for item, request in plan.requests if request.note):
            _say(f"note: line {row}: {note}")  # a shut-down model id, sent as its replacement
        if args.gemini_batch:
            return await run_gemini_batch_cli(args, studio, plan, out_dir, _print_json, _confirmed, defaults)
        if args.no_wait or args.cancel:
            raise InputError("--no-wait and --cancel go with --gemini-batch.")
        refuse_open_gemini_job(out_dir)  # before the estimate and the question: its rows would be paid twice
        to_send = len(plan.requests) - plan.already_done
        pace = f"{settings.rpm}/min" if not studio.offline else "no limit (offline emulator)"
        _say(f"batch {args.file.name}: {len(plan.items)} item(s), {len(plan.requests)} request(s); "
             f"{plan.already_done} done in an earlier run, {to_send} to send; output {out_dir}")
        _say(f"estimated cost {_money(plan.estimated_cost_usd)} (at most: cache hits are free); rate limit {pace}")
        if args.dry_run:
            from ..service.batch.gemini_summary import batch_estimate

            _say(f"with --gemini-batch (Gemini Batch Mode, results within 24 h): {_money(batch_estimate(plan))}")
            for item in plan.items:
                inputs = f", {len(item.images)} image(s)" if item.images else ""
                _say(f"  line {item.row}: {item.mode.value} x{item.count}{inputs}: {item.prompt[:70]}")
            return 0
        if to_send and not args.yes and not _confirmed(plan.estimated_cost_usd):
            return 2
        outcomes: list[ItemOutcome] = []
        bar = _progress(len(plan.requests), plan.already_done)

        def on_outcome(outcome: ItemOutcome) -> None:
            outcomes.append(outcome)
            if outcome.status != "earlier" and bar is not None:
                counts = {s: sum(o.status == s for o in outcomes) for s in ("done", "failed", "cached")}
                bar.set_postfix(counts, refresh=False)
                bar.update(1)
            if args.json:
                _print_json(outcome, out_dir)

        def on_event(line: str) -> None:
            if "retrying" in line:  # rate-limit waits are the batch's normal pace: not worth a line each
                (bar.write if bar is not None else _say)(line)

        try:
            summary = await run_batch(studio, plan, out_dir=out_dir, concurrency=args.concurrency,
                                      on_outcome=on_outcome, use_cache=not args.no_cache, on_event=on_event)
        finally:
            if bar is not None:
                bar.close()
    _say(f"done {summary.done}, cached {summary.cached}, earlier {summary.earlier}, failed {summary.failed}; "
         f"cost ${summary.cost_usd:.4f}; images and manifest.jsonl in {out_dir}")
    for failure in summary.failures:
        _say(f"  failed: line {failure.row}{f' (v{failure.variation})' if failure.variation else ''}: "
             f"{failure.error}")
    if studio.offline and not args.json:
        _say("(offline: placeholder images from the built-in emulator; set GEMINI_API_KEY for real ones)")
    return summary.failures[0].exit_code if summary.failures else 0


def _confirmed(estimate: float | None) -> bool:
    if estimate is not None and estimate <= CONFIRM_ABOVE_USD:
        return True
    what = f"estimated at {_money(estimate)}" if estimate is not None else "of unknown cost"
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        _say(f"error: this batch is {what}, above the ${CONFIRM_ABOVE_USD:.2f} that needs confirmation, and there "
             "is no terminal to ask: run it again with --yes (or --dry-run to see the plan).")
        return False
    print(f"This batch is {what}. Send it? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        _say("cancelled: nothing was sent")
        return False
    return True


def _progress(total: int, initial: int) -> tqdm[NoReturn]:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, file=sys.stderr, unit="img", dynamic_ncols=True, disable=None,
                desc="batch")


def _print_json(outcome: ItemOutcome, out_dir: Path) -> None:
    common = {"row": outcome.row, "status": outcome.status}
    if outcome.status == "failed":
        line = outcome.record
        print(json.dumps({**common, "prompt": outcome.prompt, "variation": outcome.variation,
                          "model": line.get("model"), "mode": line.get("mode"), "error": outcome.error,
                          "error_type": outcome.error_type, "exit_code": outcome.exit_code,
                          **({"job": line["job"]} if line.get("job") else {})}, ensure_ascii=False),
              flush=True)
        return
    # The manifest line is the result's record (ImageResult.to_record), with the batch's names, status and cost.
    record = {**outcome.record, "cached": outcome.status == "cached", "cost_usd": outcome.cost_usd}
    batch = {"job": record["job"], "price": "batch"} if record.get("job") else {}  # Gemini Batch Mode
    for line in image_records(record):
        print(json.dumps({**line, "path": str(out_dir / line["path"]), **common, **batch}, ensure_ascii=False),
              flush=True)


def run_batch_command(args: argparse.Namespace) -> int:
    """Run `batch FILE` and return its exit code."""
    return asyncio.run(_main(args))
