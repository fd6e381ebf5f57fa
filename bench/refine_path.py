"""Benchmark: ten refinement turns of one picture against the emulator, and how each request grows with the path.

Run: python bench/refine_path.py [--turns 10] [--model gemini-3-pro-image]
Prints, per turn: the contents sent, our input-token estimate against the emulator's count, the request body's size
and the time; then the ratio of the last turn's body to the second's (the first refinement), and the ratio of a
cached replay of the whole path to sending it (no request is made for the replay).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nanobanana_ui.domain.config import Settings  # noqa: E402
from nanobanana_ui.emulator import GeminiEmulator  # noqa: E402
from nanobanana_ui.service.studio import Studio  # noqa: E402

KEY = "bench-key-not-secret"


async def main(turns: int, model: str) -> None:
    """Run the turns and print one line per turn."""
    with GeminiEmulator() as emu, tempfile.TemporaryDirectory() as home:
        settings = Settings(api_key=KEY, base_url=emu.base_url, home=Path(home), timeout_s=60, max_attempts=1)
        async with Studio(settings) as studio:
            started = time.perf_counter()
            result = await studio.generate("a lighthouse on a cliff", model=model)
            first_s = time.perf_counter() - started
            sizes = [int(emu.generate_requests[-1].headers.get("content-length", 0))]
            print(f"turn  1: contents  1, estimate      -, emulator {result.usage.prompt_tokens:>6} tokens, "
                  f"body {sizes[0]:>9,} B, {first_s:.2f} s")
            parent = result.id
            for turn in range(2, turns + 1):
                plan = await studio.prepare_refine(parent_id=parent, instruction=f"change number {turn}")
                started = time.perf_counter()
                result = await studio.run_refinement(plan)
                elapsed = time.perf_counter() - started
                rec = emu.generate_requests[-1]
                sizes.append(int(rec.headers.get("content-length", 0)))
                print(f"turn {turn:>2}: contents {len(rec.turns):>2}, estimate {plan.input_tokens:>6}, emulator "
                      f"{result.usage.prompt_tokens:>6} tokens, body {sizes[-1]:>9,} B, {elapsed:.2f} s")
                parent = result.id
            sent = len(emu.generate_requests)
            started = time.perf_counter()
            replay = await studio.run_refinement(plan)
            replay_s = time.perf_counter() - started
            assert replay.cached and len(emu.generate_requests) == sent
            print(f"body of turn {turns} / turn 2 (the first with a model turn): {sizes[-1] / sizes[1]:.1f}x; "
                  f"cached replay of turn {turns}: "
                  f"{replay_s:.2f} s vs {elapsed:.2f} s sent ({replay_s / elapsed:.2f}x), no request, $0")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--model", default="gemini-3-pro-image")
    args = parser.parse_args()
    asyncio.run(main(args.turns, args.model))
