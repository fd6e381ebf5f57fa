"""Many visitors at once: end-to-end latency as a ratio to the model's, and memory growth, through gradio_client.

Starts `python app.py` in public mode (from --root, default this checkout) against an in-bench emulator that answers
in --delay seconds, then measures, in one run:
  crowd   --visitors visitors, each with their own key, --each requests at once: p50 and p95 of submit-to-result,
          divided by the model's latency (a bare SDK call to the same emulator);
  flood   one visitor sends --flood requests at once; 0.5 s later a quiet visitor sends one: the quiet one's
          latency / the model's (and how many of the flood were refused at once);
  memory  the emulator answers at once; after --warm requests, --mem more from 8 rotating visitors (new Client
          every 25 requests): the app's RSS growth in MB per 1,000 requests.

    python bench/visitors.py [--visitors 16] [--each 2] [--delay 3] [--flood 12] [--warm 100] [--mem 300]
                             [--root PATH]      # e.g. --root /path/to/another/checkout for a "before" row
    python bench/visitors.py --offline [--warm 100] [--mem 300]   # memory of the offline app (embedded emulator)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from servers import app_env  # noqa: E402  (tests/servers.py: the way the tests start the app)

from nanobanana_ui.emulator import GeminiEmulator  # noqa: E402

MODEL = "gemini-2.5-flash-image"


def start(root: Path, env: dict[str, str]):
    """`python app.py` from `root` on a free port; (process, url) once it answers."""
    import socket
    import subprocess
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=root, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return process, url
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise SystemExit("app.py did not start")


def rss_mb(pid: int) -> float:
    """The process's resident memory in MB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def model_latency(emulator: GeminiEmulator) -> float:
    """The median of three bare SDK calls to the emulator: the model's own time."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="bench-bare", http_options=types.HttpOptions(base_url=emulator.base_url))
    times = []
    for n in range(3):
        started = time.perf_counter()
        client.models.generate_content(model=MODEL, contents=f"bare call {n}")
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def client(url: str):
    """One visitor: a gradio_client session. It does not download the images: the bench's visitors share the
    server's CPU, so their downloads would be counted as the server's time."""
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False)


def timed_calls(visitor, key: str, prompts: list[str]) -> list[tuple[float, str | None]]:
    """Submit every prompt at once for one visitor; each call's (seconds from submit to result, error or None)."""
    started, jobs = [], []
    for prompt in prompts:
        started.append(time.perf_counter())
        jobs.append(visitor.submit(prompt, model=MODEL, api_key=key, api_name="/generate"))
    outcomes: list[tuple[float, str | None]] = []
    for began, job in zip(started, jobs, strict=True):
        try:
            job.result()
            outcomes.append((time.perf_counter() - began, None))
        except Exception as exc:  # noqa: BLE001 - a refusal is counted, not fatal
            outcomes.append((time.perf_counter() - began, str(exc)[:80]))
    return outcomes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def memory_growth(pid: int, args: argparse.Namespace, new_client: Callable[[int], Any],
                  key_of: Callable[[int], str]) -> tuple[float, float, float]:
    """The app's RSS in MB before and after `args.mem` requests (after `args.warm` to warm up), and the seconds the
    measured part took: 8 visitors at once, each reconnecting every 25 requests (`new_client(v)`, key `key_of(v)`)."""
    counter = iter(range(10**9))

    def rotate(total: int) -> None:
        def one_visitor(v: int) -> None:
            visitor = None
            for k in range(total // 8):
                if k % 25 == 0:
                    if visitor is not None:
                        visitor.close()
                    visitor = new_client(v)
                timed_calls(visitor, key_of(v), [f"mem {next(counter)}"])
            if visitor is not None:
                visitor.close()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one_visitor, range(8)))

    rotate(args.warm)
    time.sleep(2)
    before = rss_mb(pid)
    started = time.perf_counter()
    rotate(args.mem)
    time.sleep(2)
    after = rss_mb(pid)
    return before, after, time.perf_counter() - started


def offline_memory(args: argparse.Namespace) -> None:
    """The memory phase against the offline app (its embedded emulator keeps a log of what it received)."""
    from gradio_client import Client

    with tempfile.TemporaryDirectory() as tmp:
        env = app_env(NANOBANANA_PUBLIC="1", NANOBANANA_OFFLINE="1", NANOBANANA_HOME=f"{tmp}/home",
                      GRADIO_TEMP_DIR=f"{tmp}/gradio", GRADIO_ANALYTICS_ENABLED="False", NANOBANANA_PROXY_HOPS="1",
                      NANOBANANA_VISITOR_RPM="100000", NANOBANANA_RPM="100000", NANOBANANA_RPD="10000000")
        process, url = start(args.root, env)
        try:
            before, after, _ = memory_growth(
                process.pid, args, lambda v: Client(url, verbose=False, download_files=False,
                                                    headers={"X-Forwarded-For": f"10.0.0.{v}"}), lambda v: "")
        finally:
            process.terminate()
            process.wait(timeout=20)
    sent = args.mem // 8 * 8
    print(f"offline memory  RSS {before:.0f} -> {after:.0f} MB over {sent} requests after {args.warm} warm-up: "
          f"{(after - before) / sent * 1000:+.1f} MB per 1,000 requests; app from {args.root}")
    print("command: python bench/visitors.py " + " ".join(sys.argv[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=16)
    parser.add_argument("--each", type=int, default=2)
    parser.add_argument("--delay", type=float, default=3.0)
    parser.add_argument("--flood", type=int, default=12)
    parser.add_argument("--warm", type=int, default=100)
    parser.add_argument("--mem", type=int, default=300)
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout whose app.py is measured")
    parser.add_argument("--offline", action="store_true",
                        help="memory only, with the app's own embedded emulator (NANOBANANA_OFFLINE=1) answering at "
                             "once; keyless visitors, each its own address behind a trusted proxy")
    args = parser.parse_args()
    if args.offline:
        return offline_memory(args)

    with GeminiEmulator(delay_s=args.delay, record_limit=0) as emulator, tempfile.TemporaryDirectory() as tmp:
        env = app_env(NANOBANANA_PUBLIC="1", NANOBANANA_BASE_URL=emulator.base_url, NANOBANANA_HOME=f"{tmp}/home",
                      GRADIO_TEMP_DIR=f"{tmp}/gradio", GRADIO_ANALYTICS_ENABLED="False",
                      NANOBANANA_VISITOR_RPM="100000", NANOBANANA_RPM="100000", NANOBANANA_RPD="10000000")
        process, url = start(args.root, env)
        try:
            latency = model_latency(emulator)

            # crowd: N visitors with their own keys, all at once
            visitors = [client(url) for _ in range(args.visitors)]
            with ThreadPoolExecutor(len(visitors)) as pool:
                runs = list(pool.map(lambda n: timed_calls(visitors[n], f"bench-key-{n}",
                                                           [f"crowd {n}-{k}" for k in range(args.each)]),
                                     range(len(visitors))))
            crowd = [seconds for run in runs for seconds, error in run if error is None]
            crowd_errors = sum(error is not None for run in runs for _, error in run)
            for visitor in visitors:
                visitor.close()

            # flood: one visitor sends many at once, a quiet one sends one 0.5 s later
            flooder, quiet = client(url), client(url)
            box: dict[str, list[tuple[float, str | None]]] = {}
            flood = threading.Thread(target=lambda: box.setdefault("flood", timed_calls(
                flooder, "bench-flood", [f"flood {k}" for k in range(args.flood)])))
            flood.start()
            time.sleep(0.5)
            (quiet_s, quiet_error), = timed_calls(quiet, "bench-quiet", ["quiet one"])
            flood.join()
            flood_ok = [s for s, error in box["flood"] if error is None]
            refused = sum(error is not None for _, error in box["flood"])
            flooder.close()
            quiet.close()

            # memory: answers at once; RSS growth per 1,000 requests after warm-up
            emulator.delay_s = 0.0
            before, after, mem_s = memory_growth(process.pid, args, lambda v: client(url), lambda v: f"bench-mem-{v}")
        finally:
            process.terminate()
            process.wait(timeout=20)

    sent = args.mem // 8 * 8
    print(f"model latency (bare SDK call to the emulator): {latency:.2f} s; app from {args.root}")
    print(f"crowd   {args.visitors} visitors x {args.each}, own keys: p50 {statistics.median(crowd) / latency:.2f}x, "
          f"p95 {percentile(crowd, 0.95) / latency:.2f}x the model's latency"
          f" (p50 {statistics.median(crowd):.1f} s; {crowd_errors} failed)")
    print(f"flood   {args.flood} at once from one visitor: the quiet visitor's request {quiet_s / latency:.2f}x"
          f" ({quiet_s:.1f} s{'; failed: ' + quiet_error if quiet_error else ''}); the flood's p50 "
          f"{statistics.median(flood_ok) / latency:.2f}x, {refused} refused at once")
    print(f"memory  RSS {before:.0f} -> {after:.0f} MB over {sent} requests after {args.warm} warm-up: "
          f"{(after - before) / sent * 1000:+.1f} MB per 1,000 requests ({sent / mem_s:.1f} requests/s)")
    print("command: python bench/visitors.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
