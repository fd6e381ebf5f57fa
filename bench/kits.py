"""Benchmark: a request with a 14-reference kit of ~2 MB photos, sent ten times, Files API vs inline every time.

Run: python bench/kits.py [--requests 10] [--references 14] [--mb 2]
Against the emulator (local, offline): prints each request's body bytes and wall time, for the first request (which
uploads the kit once) and the later ones (which name the uploaded files), against sending the images inline every
time; then the ratio of the later bodies to the inline body. Goal: at most 2%.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PIL import Image  # noqa: E402

from nanobanana_ui.domain.config import Settings  # noqa: E402
from nanobanana_ui.emulator import GeminiEmulator  # noqa: E402
from nanobanana_ui.service.kits import NewReference  # noqa: E402
from nanobanana_ui.service.studio import Studio  # noqa: E402

MODEL = "gemini-3-pro-image"  # takes 14 images a request


def photo(seed: int, megabytes: float) -> bytes:
    """A noisy JPEG of about `megabytes` (noise does not compress, like a detailed photo)."""
    rng = random.Random(seed)
    side = 900
    while True:
        pixels = bytes(rng.getrandbits(8) for _ in range(side * side * 3))
        buffer = io.BytesIO()
        Image.frombytes("RGB", (side, side), pixels).save(buffer, "JPEG", quality=90)
        if buffer.tell() >= megabytes * 1_000_000 or side >= 3000:
            return buffer.getvalue()
        side = int(side * 1.15)


def body_bytes(rec) -> int:
    """The generateContent request body's size as it arrived."""
    length = next((v for k, v in rec.headers.items() if k.lower() == "content-length"), None)
    return int(length) if length else 0


async def run(emulator: GeminiEmulator, home: Path, refs: list[NewReference], count: int,
              files_api: bool) -> list[tuple[int, float]]:
    """Send `count` requests that use the kit; (body bytes, seconds) for each."""
    measured = []
    settings = Settings(api_key=f"bench-{files_api}", base_url=emulator.base_url, home=home, model=MODEL)
    async with Studio(settings) as studio:
        if not studio.kits.names():
            studio.kits.create("bench", refs)
        studio.backend.files_api = files_api  # type: ignore[attr-defined]
        for number in range(count):
            seen = len(emulator.generate_requests)
            started = time.perf_counter()
            await studio.generate(f"scene {number} with every reference ({files_api})", kit="bench",
                                  use_cache=False)
            elapsed = time.perf_counter() - started
            measured.append((sum(body_bytes(r) for r in emulator.generate_requests[seen:]), elapsed))
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--references", type=int, default=14)
    parser.add_argument("--mb", type=float, default=2.0)
    args = parser.parse_args()
    photos = [photo(n, args.mb) for n in range(args.references)]
    refs = [NewReference(data, "object", f"item {n + 1}") for n, data in enumerate(photos)]
    print(f"kit: {len(photos)} references, {statistics.mean(map(len, photos)) / 1e6:.2f} MB each on average, "
          f"{sum(map(len, photos)) / 1e6:.1f} MB in all; {args.requests} requests to {MODEL} (emulator)")
    with GeminiEmulator() as emulator, tempfile.TemporaryDirectory() as home:
        files = asyncio.run(run(emulator, Path(home), refs, args.requests, files_api=True))
        uploads = sum(1 for r in emulator.requests if r.path == "/upload/v1beta/files" and "upload_id" not in r.query)
        uploaded = sum(body_bytes(r) for r in emulator.requests if r.path == "/upload/v1beta/files")
        inline = asyncio.run(run(emulator, Path(home), refs, args.requests, files_api=False))
    later = files[1:]
    inline_body = statistics.median(b for b, _ in inline)
    print(f"Files API: first request body {files[0][0]:,} bytes, {files[0][1]:.2f} s including {uploads} uploads "
          f"({uploaded:,} bytes, once per key)")
    if later:
        print(f"Files API: later requests body median {statistics.median(b for b, _ in later):,.0f} bytes, "
              f"{statistics.median(t for _, t in later):.3f} s median")
    print(f"inline:    every request body median {inline_body:,.0f} bytes, "
          f"{statistics.median(t for _, t in inline):.3f} s median")
    if later:
        ratio = statistics.median(b for b, _ in later) / inline_body
        speed = statistics.median(t for _, t in inline) / statistics.median(t for _, t in later)
        print(f"later body / inline body: {ratio:.4%} (goal: at most 2%); inline takes {speed:.1f}x the time")


if __name__ == "__main__":
    main()
