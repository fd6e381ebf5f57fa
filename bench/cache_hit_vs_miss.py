"""Benchmark: a cache hit vs a miss against the emulator, and the Studio's overhead over a bare SDK call.

Run: python bench/cache_hit_vs_miss.py [--rounds 20]
Prints medians and ratios measured in this one run (the machine is shared and noisy: compare ratios, not seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from google import genai  # noqa: E402
from google.genai import types  # noqa: E402

from nanobanana_ui.domain.config import Settings  # noqa: E402
from nanobanana_ui.emulator import GeminiEmulator  # noqa: E402
from nanobanana_ui.service.studio import Studio  # noqa: E402


async def bare_sdk_call(client: genai.Client, prompt: str) -> float:
    started = time.perf_counter()
    response = await client.aio.models.generate_content(model="gemini-2.5-flash-image", contents=prompt)
    assert response.parts
    return time.perf_counter() - started


async def timed(coro) -> float:
    started = time.perf_counter()
    await coro
    return time.perf_counter() - started


async def measure(rounds: int, emulator: GeminiEmulator, home: Path) -> dict[str, list[float]]:
    client = genai.Client(api_key="bench", vertexai=False,
                          http_options=types.HttpOptions(api_version="v1beta", base_url=emulator.base_url))
    times: dict[str, list[float]] = {"bare": [], "miss": [], "hit": []}
    async with Studio(Settings(api_key="bench", base_url=emulator.base_url, home=home)) as studio:
        await studio.generate("warm-up")  # open the cache and the connection pool once
        for i in range(rounds):
            times["bare"].append(await bare_sdk_call(client, f"bare {i}"))
            times["miss"].append(await timed(studio.generate(f"prompt {i}")))
            times["hit"].append(await timed(studio.generate(f"prompt {i}")))
    await client.aio.aclose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with GeminiEmulator() as emulator, tempfile.TemporaryDirectory() as home:
        times = asyncio.run(measure(args.rounds, emulator, Path(home)))
        calls = len(emulator.generate_requests)
    med = {name: statistics.median(values) for name, values in times.items()}
    print(f"rounds: {args.rounds}; emulator generateContent calls: {calls} (hits must add none)")
    print(f"bare SDK call   median {med['bare'] * 1000:8.1f} ms")
    print(f"Studio miss     median {med['miss'] * 1000:8.1f} ms  (call + cache store + save)")
    print(f"Studio hit      median {med['hit'] * 1000:8.1f} ms  (no call)")
    print(f"hit / miss ratio:          {med['hit'] / med['miss']:.3f}")
    print(f"miss / bare SDK ratio:     {med['miss'] / med['bare']:.3f}")


if __name__ == "__main__":
    main()
