"""Benchmark: two CLI batches at once on one key, against the emulator's own rate limit, set equal to the client's.

Run: python bench/shared_limit.py [--prompts 100] [--processes 2] [--limit 20] [--window 5] [--delay 0.3]
(`--processes 1 --prompts 200` runs the same 200 requests in one process: the same machine's baseline.)
Both `batch` processes share one rate-limit window through NANOBANANA_HOME (shared_limits.py). Prints the combined
wall time as a ratio to the ideal for the shared limit (goal <= 1.1), measured from the first request the server saw
to the last answer (process start-up, mostly importing the SDK, is shown apart), and the 429s the clients caused
(goal 0). The window is scaled down from 60 s so a run takes about a minute; the limiter's logic does not depend on it.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nanobanana_ui.emulator import GeminiEmulator, busiest_window  # noqa: E402


def ideal_seconds(requests: int, limit: int, window: float, call: float) -> float:
    """The fastest any client can go as the server counts: `limit` arrivals per window, each call taking `call` s."""
    return (math.ceil(requests / limit) - 1) * window + call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=100, help="prompts in each process's batch file")
    parser.add_argument("--processes", type=int, default=2, help="batch processes started at once")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--window", type=float, default=5.0)
    parser.add_argument("--delay", type=float, default=0.3, help="seconds the emulator takes per call")
    args = parser.parse_args()
    with GeminiEmulator(rate_limit=args.limit, rate_window_s=args.window, delay_s=args.delay) as emulator, \
            tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE", "NANO"))}
        env.update(GEMINI_API_KEY="bench-key-not-secret", NANOBANANA_BASE_URL=emulator.base_url,
                   NANOBANANA_HOME=str(home), NANOBANANA_RPM=str(args.limit), NANOBANANA_RATE_WINDOW=str(args.window),
                   NANOBANANA_RPD="100000", NANOBANANA_RETRIES="1", PYTHONPATH=str(ROOT))
        commands = []
        for n in range(1, args.processes + 1):
            batch = Path(tmp) / f"batch{n}.txt"
            batch.write_text("".join(f"batch {n} prompt {i}\n" for i in range(args.prompts)))
            commands.append([sys.executable, "-m", "nanobanana_ui", "batch", str(batch), "--yes", "--json",
                             "--out", str(Path(tmp) / f"out{n}")])
        started = time.perf_counter()
        runs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for c in commands]
        outputs = [run.communicate(timeout=3600) for run in runs]
        elapsed = time.perf_counter() - started
        seen = emulator.generate_requests
    if any(run.returncode for run in runs):
        raise SystemExit(f"a batch failed: {[err.strip().splitlines()[-1:] for _, err in outputs]}")
    total = args.processes * args.prompts
    arrivals = sorted(r.received_at for r in seen)
    served = arrivals[-1] - arrivals[0] + args.delay  # first arrival to the last answer
    ideal = ideal_seconds(total, args.limit, args.window, args.delay)
    rejected = sum(r.status == 429 for r in seen)
    # On a loaded machine sending `limit` calls at once takes a while; charge a perfect client the same: it starts
    # a new window's calls exactly one window after the last one's first arrival.
    starts = arrivals[::args.limit]
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    measured = (len(starts) - 1) * args.window + (arrivals[-1] - starts[-1]) + args.delay
    print(f"{args.processes} batch(es) x {args.prompts} prompts, one key, limit {args.limit} per {args.window:g} s "
          f"(client and server), {args.delay:g} s per call")
    print(f"first request to last answer {served:.2f} s; ideal for the shared limit {ideal:.2f} s; "
          f"ratio (goal <= 1.1): {served / ideal:.3f}")
    print(f"ideal with this machine's send time ({measured:.2f} s): ratio {served / measured:.3f}; window starts "
          f"{sum(gaps) / max(len(gaps), 1):.2f} s apart on average (window {args.window:g} s)")
    print(f"wall time with process start-up {elapsed:.2f} s (ratio {elapsed / ideal:.3f})")
    print(f"requests the server saw: {len(seen)} for {total} prompts; 429s caused by the clients (goal 0): "
          f"{rejected}; busiest window: {busiest_window(arrivals, args.window)} (limit {args.limit})")


if __name__ == "__main__":
    main()
