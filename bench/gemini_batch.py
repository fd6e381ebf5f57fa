"""Benchmark: 500 rows through Gemini Batch Mode against the emulator (batch clock sped up): our overhead and memory.

Run: python bench/gemini_batch.py [--rows 500] [--state-seconds 0.5]
The emulator runs in a child process, so this process measures only our side. For a file job (JSONL through the
Files API) and an inline job it prints our overhead per row: submit (plan, journal, input file, upload, create) plus
fetch and write (download, parse, cache, saved PNG, manifest line, history entry), excluding the time the job spends
PENDING/RUNNING at the emulator. Then, for a second file job, the tracemalloc peak while fetching its result file,
next to the size of that file: a peak far below the file's size shows that results are streamed, not held at once.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from google import genai  # noqa: E402
from google.genai import types  # noqa: E402

from nanobanana_ui.domain.config import Settings  # noqa: E402
from nanobanana_ui.service.batch import GeminiBatchRun, plan_batch, read_batch_file  # noqa: E402
from nanobanana_ui.service.studio import Studio  # noqa: E402


def serve(queue: Any, state_seconds: float) -> None:
    """Child process: an emulator with a fast batch clock; its URL goes back through the queue."""
    from nanobanana_ui.emulator import GeminiEmulator

    emulator = GeminiEmulator().start()
    emulator.batches.seconds_per_state = state_seconds
    queue.put(emulator.base_url)
    while True:
        time.sleep(3600)


def wait_until_done(base_url: str, name: str) -> float:
    """Poll with a plain SDK client until the job is over (the emulator then writes its results); seconds waited."""
    client = genai.Client(api_key="bench", vertexai=False,
                          http_options=types.HttpOptions(api_version="v1beta", base_url=base_url, timeout=600_000))
    started = time.perf_counter()
    while not client.batches.get(name=name).done:
        time.sleep(0.2)
    client.batches.get(name=name)  # the first look after success makes the emulator write its results
    return time.perf_counter() - started


async def one_job(settings: Settings, batch_file: Path, out: Path, *, inline: bool,
                  trace: bool = False) -> tuple[float, float, int, int | None]:
    """Submit (timed), let the emulator finish (not timed), fetch and write (timed): (submit s, fetch s, rows, peak)."""
    limit = 20 * 1024**2 if inline else 0
    async with Studio(settings) as studio:
        plan = plan_batch(studio, read_batch_file(batch_file), out_dir=out)
        started = time.perf_counter()
        run = GeminiBatchRun(studio, plan, out_dir=out, inline_limit_bytes=limit)
        submitted = await run.run(wait=False)
        submit_s = time.perf_counter() - started
        await run.api.aclose()
        await asyncio.to_thread(wait_until_done, settings.base_url or "", submitted.job or "")
        if trace:
            tracemalloc.start()
            tracemalloc.reset_peak()
        started = time.perf_counter()
        fetch_run = GeminiBatchRun(studio, plan, out_dir=out, inline_limit_bytes=limit)
        summary = await fetch_run.run(wait=True)
        fetch_s = time.perf_counter() - started
        peak = None
        if trace:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        await fetch_run.api.aclose()
    if summary.done != len(plan.requests):
        raise SystemExit(f"only {summary.done} of {len(plan.requests)} rows were written: {summary.message}")
    return submit_s, fetch_s, summary.done, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--state-seconds", type=float, default=0.5, help="the emulator's seconds per batch state")
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=serve, args=(queue, args.state_seconds), daemon=True)
    child.start()
    base_url = queue.get(timeout=60)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            settings = Settings(api_key="bench", base_url=base_url, home=root / "home", batch_poll_scale=0.01,
                                timeout_s=600)
            print(f"Gemini Batch Mode: {args.rows} rows, emulator in a child process, "
                  f"{args.state_seconds:g} s per batch state")
            for label, inline in (("file job (JSONL, Files API)", False), ("inline job", True)):
                out = root / label.split()[0]
                batch_file = root / f"{label.split()[0]}.txt"  # prompts of its own: nothing comes from the cache
                batch_file.write_text("".join(f"{label.split()[0]} catalogue item {n}: a ceramic mug, studio light\n"
                                              for n in range(args.rows)))
                submit_s, fetch_s, rows, _ = asyncio.run(one_job(settings, batch_file, out, inline=inline))
                print(f"  {label}: submit {submit_s * 1000:.0f} ms, fetch+write {fetch_s * 1000:.0f} ms for {rows} "
                      f"rows -> our overhead {(submit_s + fetch_s) * 1000 / rows:.2f} ms per row "
                      f"(submit {submit_s * 1000 / rows:.2f}, fetch+write {fetch_s * 1000 / rows:.2f})")
            other = root / "other.txt"  # new prompts: a new job (the first ones are all done and cached)
            other.write_text("".join(f"storyboard frame {n}: a fox in the snow\n" for n in range(args.rows)))
            sizes: list[int] = []
            spy = root / "spy"

            _, fetch_s, rows, peak = asyncio.run(one_job(settings, other, spy, inline=False, trace=True))
            sizes = [p.stat().st_size for p in spy.glob("*.png")]
            result_mb = sum(sizes) * 4 / 3 / 1e6  # base64 in the result file
            print(f"  memory while fetching a {rows}-image result file (about {result_mb:.1f} MB of base64 "
                  f"images): tracemalloc peak {peak / 1e6:.1f} MB ({peak / (result_mb * 1e6):.2f} of the file); "
                  f"largest image {max(sizes) / 1e3:.0f} KB")
    finally:
        child.kill()


if __name__ == "__main__":
    main()
