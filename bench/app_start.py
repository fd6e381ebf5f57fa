"""Benchmark: `python app.py` start to first HTTP 200, as a ratio to `python -c "import gradio"` on this machine.

Run: python bench/app_start.py [--rounds 3]
Both are measured in this one run, alternately, and the medians compared (goal: ratio <= 1.3).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def clean_env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE", "NANO", "GRADIO"))}
    env.update(NANOBANANA_HOME=home, GRADIO_ANALYTICS_ENABLED="False")
    return env


def time_import(env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import gradio"], env=env, check=True)
    return time.perf_counter() - started


def time_app_start(env: dict[str, str]) -> float:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                if process.poll() is not None:
                    raise SystemExit("app.py exited before serving") from None
                time.sleep(0.05)
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = clean_env(home)
        imports, starts = [], []
        for _ in range(args.rounds):
            imports.append(time_import(env))
            starts.append(time_app_start(env))
    imp, start = statistics.median(imports), statistics.median(starts)
    print(f"import gradio         median {imp:6.2f} s  {[round(t, 2) for t in imports]}")
    print(f"app.py to HTTP 200    median {start:6.2f} s  {[round(t, 2) for t in starts]}")
    print(f"ratio (goal <= 1.3):  {start / imp:.2f}")


if __name__ == "__main__":
    main()
