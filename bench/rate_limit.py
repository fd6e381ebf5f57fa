"""Benchmark: N parallel requests through the Studio against the emulator's own rate limit, set equal to the client's.

Run: python bench/rate_limit.py [--requests 60] [--limit 20] [--window 5] [--delay 0.3]
Prints the wall time as a ratio to the ideal for that limit (goal <= 1.1) and the 429s the client caused (goal 0).
The window is scaled down from 60 s so a run takes under a minute; the limiter's logic does not depend on its length.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nanobanana_ui.domain.config import Settings  # noqa: E402
from nanobanana_ui.domain.request import Mode  # noqa: E402
from nanobanana_ui.emulator import GeminiEmulator, busiest_window  # noqa: E402
from nanobanana_ui.service.studio import Studio  # noqa: E402


def ideal_seconds(requests: int, limit: int, window: float, call: float) -> float:
    """The fastest any client can go as the server counts: `limit` arrivals per window, each call taking `call` s."""
    return (math.ceil(requests / limit) - 1) * window + call


async def run(args: argparse.Namespace, emulator: GeminiEmulator, home: Path) -> tuple[float, float]:
    """Wall time of the whole run, and of its first `limit` calls (never held back: the quota starts free)."""
    settings = Settings(api_key="bench", base_url=emulator.base_url, home=home, rpm=args.limit,
                        rate_window_s=args.window, rpd=100_000)
    async with Studio(settings) as studio:
        request = studio.build_request(Mode.GENERATE, "rate limited")
        finished: list[float] = []
        started = time.perf_counter()
        outcomes = await studio.run_variations(request, args.requests, use_cache=False,
                                               on_result=lambda _: finished.append(time.perf_counter()))
        elapsed = time.perf_counter() - started
    failures = [o for o in outcomes if isinstance(o, Exception)]
    if failures:
        raise SystemExit(f"{len(failures)} requests failed: {failures[0]}")
    return elapsed, sorted(finished)[args.limit - 1] - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds the emulator takes per call")
    args = parser.parse_args()
    with GeminiEmulator(rate_limit=args.limit, rate_window_s=args.window, delay_s=args.delay) as emulator, \
            tempfile.TemporaryDirectory() as home:
        elapsed, first_batch = asyncio.run(run(args, emulator, Path(home)))
        seen = emulator.generate_requests
    nominal = ideal_seconds(args.requests, args.limit, args.window, args.delay)
    # A perfect client on this machine: the same windows, and the last batch as slow as the first one measured here
    # (20 parallel calls through one Python process on 2 cores take longer than the emulator's delay).
    measured = ideal_seconds(args.requests, args.limit, args.window, first_batch)
    rejected = sum(r.status == 429 for r in seen)
    print(f"{args.requests} requests, limit {args.limit} per {args.window:g} s, {args.delay:g} s per call "
          f"({first_batch:.2f} s for the first {args.limit} in parallel)")
    print(f"wall time {elapsed:.2f} s")
    print(f"ratio to the ideal with this machine's batch time ({measured:.2f} s), goal <= 1.1: "
          f"{elapsed / measured:.3f}")
    print(f"ratio to the nominal ideal with {args.delay:g} s calls ({nominal:.2f} s): {elapsed / nominal:.3f}")
    print(f"requests the server saw: {len(seen)}; 429s caused by the client (goal 0): {rejected}; "
          f"busiest window: {busiest_window([r.received_at for r in seen], args.window)} (limit {args.limit})")


if __name__ == "__main__":
    main()
