"""Benchmark: the History tab's first page with 2,000 entries vs 20 entries: time and process memory, as ratios.

Run: python bench/history_page.py [--sizes 20 2000] [--warm 20]

Each size gets its own temporary data directory, filled directly through HistoryStore.record_result with one small
PNG per entry (all different, so every thumbnail is its own). Then, per size, a fresh child process opens the store
and times Library.page_data(), the function the tab's load (tab select) event calls, thumbnails included:
  cold  = first call: the store is opened and the page's 24 thumbnails are drawn and cached on disk;
  warm  = median of later calls (thumbnails read from the cache);
  search = a first page filtered by a prompt word (full-text search), warm.
  served = the same plus Gradio's own work for the gallery output (postprocess, thumbnails copied into its cache).
Memory is the child's resident set (/proc/self/statm) after the cold and warm pages minus before opening the store.
Goals: time ratio 2000/20 <= 2, first page under 300 ms.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WORDS = ("fox", "owl", "lighthouse", "harbour", "castle", "forest", "river", "city", "desert", "garden")


def rss_bytes() -> int:
    """This process's resident set size now (Linux); falls back to the peak from resource elsewhere."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fill(home: Path, count: int) -> float:
    """Record `count` entries with their own 256x256 PNGs, as the Studio would; returns the seconds it took."""
    from PIL import Image

    from nanobanana_ui.domain.request import GeneratedImage, ImageOptions, ImageRequest, ImageResult, Mode
    from nanobanana_ui.imaging.outputs import save_output
    from nanobanana_ui.storage.history import HistoryStore

    started = time.perf_counter()
    store = HistoryStore(home)
    models = ("gemini-2.5-flash-image", "gemini-3-pro-image-preview", "gemini-3.1-flash-image")
    for n in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (256, 256), (n % 256, (n // 256) % 256, (n * 7) % 256)).save(buffer, format="PNG")
        path = save_output(buffer.getvalue(), home / "outputs", f"{n:06d}.png")
        prompt = f"a {WORDS[n % len(WORDS)]} in the style of plate {n}, watercolour"
        request = ImageRequest(mode=Mode.GENERATE, model=models[n % 3], prompt=prompt, options=ImageOptions(seed=n))
        result = ImageResult(id=str(n), request=request,
                             images=(GeneratedImage("x", "image/png", 256, 256, path),), text="",
                             finish_reason="STOP", cost_usd=0.039, elapsed_s=3.0)
        store.record_result(result)
    store.close()
    return time.perf_counter() - started


def measure(home: Path, warm_rounds: int) -> dict:
    """In a fresh process: the first page cold and warm, a search page, and the memory they took."""
    import gradio  # noqa: F401 - the app has it loaded; keep its import out of the memory delta

    from nanobanana_ui.domain.config import Settings
    from nanobanana_ui.service.studio import Studio
    from nanobanana_ui.ui.history_library import PAGE_SIZE, Library

    before = rss_bytes()
    studio = Studio(Settings(home=home, offline=True))
    library = Library(studio)
    started = time.perf_counter()
    page = library.page_data()
    cold = time.perf_counter() - started
    assert len(page.items) == min(PAGE_SIZE, page.total), page.info
    warm = []
    for _ in range(warm_rounds):
        started = time.perf_counter()
        library.page_data()
        warm.append(time.perf_counter() - started)
    searches = []
    library.page_data(search="lighthouse")  # its thumbnails are drawn once
    for _ in range(warm_rounds):
        started = time.perf_counter()
        library.page_data(search="lighthouse")
        searches.append(time.perf_counter() - started)
    after = rss_bytes()
    # What Gradio adds before the page reaches the browser: the gallery's postprocess and the thumbnails copied into
    # its file cache (first time: copied; then found by hash).
    import gradio as gr
    from gradio.processing_utils import move_files_to_cache

    gallery = gr.Gallery(render=False)
    served = []
    for _ in range(warm_rounds + 1):
        started = time.perf_counter()
        move_files_to_cache(gallery.postprocess(library.page_data().items), gallery, postprocess=True)
        served.append(time.perf_counter() - started)
    studio.history.close()
    return {"total": page.total, "cold_s": cold, "warm_s": statistics.median(warm),
            "search_s": statistics.median(searches), "served_cold_s": served[0],
            "served_warm_s": statistics.median(served[1:]), "rss_delta": after - before, "rss": after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=(20, 2000), metavar=("SMALL", "LARGE"))
    parser.add_argument("--warm", type=int, default=20, help="warm rounds (median)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.warm)))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="nanobanana-bench-") as tmp:
        for size in args.sizes:
            home = Path(tmp) / f"home-{size}"
            seconds = fill(home, size)
            print(f"filled {size} entries in {seconds:.1f} s", flush=True)
            env = {**os.environ, "GRADIO_TEMP_DIR": str(Path(tmp) / f"gradio-{size}")}
            done = subprocess.run([sys.executable, __file__, "--child", str(home), "--warm", str(args.warm)],
                                  capture_output=True, text=True, check=True, env=env)
            results[size] = json.loads(done.stdout.strip().splitlines()[-1])
    small, large = (results[size] for size in args.sizes)
    ms = 1000
    print(f"\n| measurement | {args.sizes[0]} entries | {args.sizes[1]} entries | ratio |")
    print("|---|---|---|---|")
    for key, label in (("cold_s", "first page, cold (store opened, 24 thumbnails drawn)"),
                       ("warm_s", f"first page, warm (median of {args.warm})"),
                       ("search_s", f"search page, warm (median of {args.warm})"),
                       ("served_cold_s", "first page + Gradio's gallery output, first time (copied to its cache)"),
                       ("served_warm_s", f"first page + Gradio's gallery output, warm (median of {args.warm})")):
        print(f"| {label} | {small[key] * ms:.1f} ms | {large[key] * ms:.1f} ms | {large[key] / small[key]:.2f} |")
    mb = 1024 * 1024
    print(f"| RSS growth while building the pages | {small['rss_delta'] / mb:.1f} MB | "
          f"{large['rss_delta'] / mb:.1f} MB | {large['rss_delta'] / max(small['rss_delta'], 1):.2f} |")
    print(f"| process RSS after | {small['rss'] / mb:.0f} MB | {large['rss'] / mb:.0f} MB | "
          f"{large['rss'] / small['rss']:.2f} |")
    worst = max(large["cold_s"], large["warm_s"])
    print(f"\ngoal: time ratio <= 2 (cold {large['cold_s'] / small['cold_s']:.2f}, warm "
          f"{large['warm_s'] / small['warm_s']:.2f}); first page under 300 ms ({worst * ms:.0f} ms at "
          f"{args.sizes[1]} entries)")


if __name__ == "__main__":
    main()
