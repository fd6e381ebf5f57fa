"""One rate limit across processes: slots on the data directory, fair order, no leak from a killed process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEST_KEY
from servers import ROOT, app_env

from nanobanana_ui.emulator import busiest_window
from nanobanana_ui.quota.shared_limits import SharedRateLimiter, limiter_file_name, shared_limiter_for

HOLDER = """
import asyncio, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from nanobanana_ui.quota.shared_limits import SharedRateLimiter

async def main():
    limiter = SharedRateLimiter(2, {window}, Path({path!r}))
    slots = [await limiter.acquire(), await limiter.acquire()]
    print("holding", flush=True)
    await asyncio.sleep(3600)  # killed while its two calls are "in flight"

asyncio.run(main())
"""


def test_two_limiters_on_one_file_share_the_window_in_arrival_order(tmp_path):
    path = tmp_path / "quota" / "rate-test.json"
    first, second = SharedRateLimiter(1, 0.2, path), SharedRateLimiter(1, 0.2, path)  # as two processes would
    order: list[str] = []

    async def call(limiter: SharedRateLimiter, name: str) -> None:
        async with await limiter.acquire():
            order.append(name)
            await asyncio.sleep(0.05)

    async def main() -> None:
        waiting = [asyncio.ensure_future(call(first, "a0"))]
        for limiter, name in [(second, "b1"), (first, "a2"), (second, "b3"), (first, "a4")]:
            await asyncio.sleep(0.02)
            waiting.append(asyncio.ensure_future(call(limiter, name)))
        await asyncio.sleep(0.01)
        assert second.used() == 1 and len(json.loads(path.read_text())["queue"]) == 4
        await asyncio.gather(*waiting)

    asyncio.run(main())
    assert order == ["a0", "b1", "a2", "b3", "a4"]  # first come, first served across the two
    state = json.loads(path.read_text())
    assert state["queue"] == [] and len(state["slots"]) <= 1


def test_the_file_is_named_by_a_salted_hash_and_never_holds_the_key(tmp_path):
    home = tmp_path / "home"
    limiter = shared_limiter_for("https://example.test", 5, 1.0, home=home, key=TEST_KEY)
    other = shared_limiter_for("https://example.test", 5, 1.0, home=home, key="another-key-not-secret")
    assert limiter is shared_limiter_for("https://example.test", 5, 1.0, home=home, key=TEST_KEY)
    assert isinstance(limiter, SharedRateLimiter) and limiter.path != other.path

    async def main() -> None:
        async with await limiter.acquire():
            pass

    asyncio.run(main())
    assert limiter.path.name == limiter_file_name((home / "secret").read_bytes(), TEST_KEY, "https://example.test")
    for file in home.rglob("*"):
        if file.is_file():
            assert TEST_KEY.encode() not in file.read_bytes()
            assert TEST_KEY not in file.name


def test_slots_of_a_killed_process_come_back_after_one_window(tmp_path):
    path = tmp_path / "quota" / "rate-kill.json"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER.format(root=str(ROOT), window=1.0, path=str(path))],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        state = json.loads(path.read_text())
        assert [slot["until"] for slot in state["slots"]] == [None, None]  # two calls in flight
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)
        if holder.stdout is not None:
            holder.stdout.close()
    limiter = SharedRateLimiter(2, 1.0, path)
    killed_at = time.time()
    assert limiter.used() == 2  # seen dead: each slot now counts until one window from now, no longer
    settled = json.loads(path.read_text())["slots"]
    assert all(slot["pid"] == holder.pid and killed_at < slot["until"] <= time.time() + 1.0 for slot in settled)

    async def main() -> None:
        async with await limiter.acquire():  # granted once that window has passed
            pass

    asyncio.run(main())
    assert {slot["pid"] for slot in json.loads(path.read_text())["slots"]} == {os.getpid()}


def test_a_data_directory_that_cannot_be_written_falls_back_to_this_process(tmp_path, caplog):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the quota folder should be")
    limiter = SharedRateLimiter(2, 1.0, blocked / "rate-x.json")

    async def main() -> int:
        async with await limiter.acquire(), await limiter.acquire():
            return limiter.used()

    with caplog.at_level(logging.WARNING):
        assert asyncio.run(main()) == 2
    assert "cannot be shared with other processes" in caplog.text


def _cli_processes(emulator, home: Path, count: int, per_process: int) -> list[subprocess.Popen]:
    env = app_env(GEMINI_API_KEY=TEST_KEY, NANOBANANA_BASE_URL=emulator.base_url, NANOBANANA_HOME=str(home),
                  NANOBANANA_RPM="3", NANOBANANA_RATE_WINDOW="1", NANOBANANA_RETRIES="1", PYTHONPATH=str(ROOT))
    return [subprocess.Popen([sys.executable, "-m", "nanobanana_ui", "generate", f"process {n}", "--count",
                              str(per_process), "--json", "--no-cache"], env=env, cwd=home.parent,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(count)]


@pytest.mark.slow  # several subprocesses (CLI runs, the app)
def test_three_processes_on_one_key_cause_no_429_at_the_servers_limit(emulator, tmp_path):
    emulator.rate_limit, emulator.rate_window_s = 3, 1.0  # the server's own per-window limit, as Google's
    runs = _cli_processes(emulator, tmp_path / "home", count=3, per_process=4)
    outputs = [run.communicate(timeout=300) for run in runs]
    records = [json.loads(line) for out, _ in outputs for line in out.splitlines()]
    seen = emulator.generate_requests
    assert [run.returncode for run in runs] == [0, 0, 0], [err for _, err in outputs]
    assert sum("path" in r for r in records) == 12 and len(seen) == 12
    assert sorted(r.status for r in seen) == [200] * 12  # no 429: one shared window, not three
    assert busiest_window([r.received_at for r in seen], 1.0) <= 3


@pytest.mark.slow  # several subprocesses (CLI runs, the app)
def test_the_app_and_a_cli_batch_on_one_key_share_one_window(emulator, tmp_path):
    from gradio_client import Client
    from servers import start_app, stop_app

    emulator.rate_limit, emulator.rate_window_s = 3, 1.0
    home = tmp_path / "home"
    env = app_env(GEMINI_API_KEY=TEST_KEY, NANOBANANA_BASE_URL=emulator.base_url, NANOBANANA_HOME=str(home),
                  NANOBANANA_RPM="3", NANOBANANA_RATE_WINDOW="1", NANOBANANA_RETRIES="1", PYTHONPATH=str(ROOT))
    app, url = start_app(env)
    try:
        batch = tmp_path / "rows.txt"
        batch.write_text("".join(f"batch row {n}\n" for n in range(12)))
        cli = subprocess.Popen([sys.executable, "-m", "nanobanana_ui", "batch", str(batch), "--yes", "--json",
                                "--out", str(tmp_path / "out")], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        client = Client(url, verbose=False)
        deadline = time.monotonic() + 120
        while not emulator.generate_requests and time.monotonic() < deadline:  # the batch is sending now
            time.sleep(0.05)
        gallery, status = client.predict("from the app", count=4, api_name="/generate")
        _, err = cli.communicate(timeout=300)
        client.close()
    finally:
        log = stop_app(app)
    assert cli.returncode == 0, err
    assert len(gallery) == 4, (status, log)
    seen = emulator.generate_requests
    assert len(seen) == 16 and sorted(r.status for r in seen) == [200] * 16  # 0 client-caused 429s
    app_arrivals = [r.received_at for r in seen if r.prompt == "from the app"]
    batch_arrivals = [r.received_at for r in seen if r.prompt.startswith("batch row")]
    assert min(batch_arrivals) < min(app_arrivals) < max(batch_arrivals)  # the two really overlapped
    assert busiest_window([r.received_at for r in seen], 1.0) <= 3


def test_a_disk_that_fills_up_while_waiting_falls_back_instead_of_failing(tmp_path, caplog, monkeypatch):
    import contextlib
    import errno

    limiter = SharedRateLimiter(1, 60.0, tmp_path / "quota" / "rate-full.json")

    @contextlib.contextmanager
    def full_disk():
        raise OSError(errno.ENOSPC, "No space left on device")
        yield {}

    async def main() -> int:
        async with await limiter.acquire():  # the only shared slot, held while the disk fills
            waiting = asyncio.ensure_future(limiter.acquire())
            await asyncio.sleep(0.05)
            monkeypatch.setattr(limiter, "_state", full_disk)
            async with await asyncio.wait_for(waiting, timeout=30):
                return limiter.used()

    with caplog.at_level(logging.WARNING):
        assert asyncio.run(main()) == 1  # granted by this process's own limiter
    assert "No space left on device" in caplog.text
