"""Benchmark: a 200-prompt batch file through run_batch against the emulator's own rate limit, then one at a time.

Run: python bench/batch_throughput.py [--prompts 200] [--limit 20] [--window 5] [--delay 0.3] [--sequential 40]
Prints the wall time as a ratio to the ideal for that limit (goal <= 1.1) and the 429s the client caused (goal 0),
first for the batch at its default concurrency (the rate limit), then for the same prompts one at a time
(concurrency=1, as the published scripts do). The one-at-a-time run is capped: it runs the first `--sequential`
prompts and extrapolates to all of them (0 runs all). The window is scaled down from 60 s so a run takes about a
minute; the limiter's logic does not depend on its length.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rate_limit import ideal_seconds  # noqa: E402

from nanobanana_ui.domain.config import Settings  # noqa: E402
from nanobanana_ui.emulator import GeminiEmulator, busiest_window  # noqa: E402
from nanobanana_ui.service.batch import plan_batch, read_batch_file, run_batch  # noqa: E402
from nanobanana_ui.service.studio import Studio  # noqa: E402


async def run(args: argparse.Namespace, emulator: GeminiEmulator, home: Path, batch_file: Path,
              concurrency: int | None, first: int | None) -> tuple[float, float, int, int]:
    """Wall time, time to the `limit`-th outcome (the first batch), requests run, and failures."""
    settings = Settings(api_key="bench", base_url=emulator.base_url, home=home, rpm=args.limit,
                        rate_window_s=args.window, rpd=100_000)
    async with Studio(settings) as studio:
        items = read_batch_file(batch_file)[:first]
        plan = plan_batch(studio, items, out_dir=home / "run")
        finished: list[float] = []
        started = time.perf_counter()
        summary = await run_batch(studio, plan, out_dir=home / "run", concurrency=concurrency,
                                  on_outcome=lambda _: finished.append(time.perf_counter()))
        elapsed = time.perf_counter() - started
    finished.sort()
    first_batch = finished[min(args.limit, len(finished)) - 1] - started
    return elapsed, first_batch, summary.done + summary.cached, summary.failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds the emulator takes per call")
    parser.add_argument("--sequential", type=int, default=40,
                        help="one-at-a-time run: this many prompts, extrapolated (0: all of them)")
    args = parser.parse_args()
    nominal = ideal_seconds(args.prompts, args.limit, args.window, args.delay)
    with GeminiEmulator(rate_limit=args.limit, rate_window_s=args.window, delay_s=args.delay) as emulator, \
            tempfile.TemporaryDirectory() as tmp:
        batch_file = Path(tmp) / "prompts.txt"
        batch_file.write_text("".join(f"product shot {n}: a ceramic mug, studio light\n" for n in range(args.prompts)))

        elapsed, first_batch, ok, failed = asyncio.run(run(args, emulator, Path(tmp) / "a", batch_file, None, None))
        seen = emulator.generate_requests
        measured = ideal_seconds(args.prompts, args.limit, args.window, first_batch)
        print(f"batch: {args.prompts} prompts from a .txt file, limit {args.limit} per {args.window:g} s, "
              f"{args.delay:g} s per call; default concurrency (= the limit)")
        print(f"  {ok} made, {failed} failed; wall time {elapsed:.2f} s ({first_batch:.2f} s for the first "
              f"{args.limit} in parallel)")
        print(f"  ratio to the ideal with this machine's batch time ({measured:.2f} s), goal <= 1.1: "
              f"{elapsed / measured:.3f}")
        print(f"  ratio to the nominal ideal with {args.delay:g} s calls ({nominal:.2f} s): {elapsed / nominal:.3f}")
        print(f"  requests the server saw: {len(seen)}; 429s caused by the client (goal 0): "
              f"{sum(r.status == 429 for r in seen)}; busiest window: "
              f"{busiest_window([r.received_at for r in seen], args.window)} (limit {args.limit})")

        time.sleep(args.window)  # the quota the first run used frees up, on both sides
        emulator.reset()
        sample = args.sequential if 0 < args.sequential < args.prompts else args.prompts
        elapsed_1, _, ok_1, failed_1 = asyncio.run(run(args, emulator, Path(tmp) / "b", batch_file, 1, sample))
        seen = emulator.generate_requests
        projected = elapsed_1 * args.prompts / sample
        how = (f"the first {sample} run, extrapolated to {args.prompts}" if sample < args.prompts
               else f"all {args.prompts} run")
        print(f"one at a time (concurrency=1): {how}")
        print(f"  {ok_1} made, {failed_1} failed; wall time {elapsed_1:.2f} s ({elapsed_1 / sample:.3f} s per "
              f"prompt) -> {projected:.1f} s for {args.prompts}")
        print(f"  ratio to the nominal ideal ({nominal:.2f} s): {projected / nominal:.3f}; to the measured ideal "
              f"({measured:.2f} s): {projected / measured:.3f}; 429s: {sum(r.status == 429 for r in seen)}")
        print(f"  speed-up of the batch over one at a time: {projected / elapsed:.2f}x")


if __name__ == "__main__":
    main()
