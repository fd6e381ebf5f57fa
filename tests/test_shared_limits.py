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


# --- Never stuck: a write error, a damaged file, another PID namespace on the same data directory (issue 24) ---------


def _fail_next_replace(monkeypatch, count: int = 1) -> list[int]:
    """Make the next `count` writes of the shared file fail as on a full disk; returns the failures counter."""
    import errno

    from nanobanana_ui.quota import shared_limits

    failures = [0]
    real_replace = os.replace

    def replace(src, dst):
        if failures[0] < count:
            failures[0] += 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(shared_limits.os, "replace", replace)
    return failures


def test_one_write_error_leaves_no_ghost_slot_and_no_permanent_fallback(tmp_path, monkeypatch, caplog):
    path = tmp_path / "quota" / "rate-enospc.json"
    first, second, third = (SharedRateLimiter(1, 0.5, path) for _ in range(3))  # as three processes would
    second.retry_shared_after_s = 0.3

    async def main() -> None:
        held = await first.acquire()
        waiting = asyncio.ensure_future(second.acquire())
        await asyncio.sleep(0.05)
        assert len(json.loads(path.read_text())["queue"]) == 1
        failures = _fail_next_replace(monkeypatch)
        while not failures[0]:  # the waiter's next look at the file fails: the disk is full for that moment
            await asyncio.sleep(0.01)
        async with await asyncio.wait_for(waiting, timeout=5):  # served by this process's own limiter meanwhile
            pass
        async with held:
            pass
        async with await asyncio.wait_for(third.acquire(), timeout=5):  # no slot left behind by the failed waiter
            pass
        await asyncio.sleep(0.6)  # past the retry delay and the fallback's window
        async with await second.acquire():
            state = json.loads(path.read_text())
            assert [slot["until"] for slot in state["slots"] if slot["until"] is None] == [None]  # shared again

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert "No space left on device" in caplog.text
    assert not list(path.parent.glob("*.tmp"))  # the half-written temp file is gone
    assert second.used() == 1 and len(json.loads(path.read_text())["slots"]) == 1  # second's last slot, counted


def test_a_damaged_entry_is_dropped_not_raised(tmp_path, caplog):
    path = tmp_path / "quota" / "rate-damaged.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"slots": [{"until": 1}, "x", {"id": "s", "pid": "12", "until": None}],
                                "queue": [{"id": "z"}, {"pid": 5}]}))
    limiter = SharedRateLimiter(1, 0.5, path)

    async def main() -> None:
        async with await asyncio.wait_for(limiter.acquire(), timeout=5):
            pass

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert "malformed" in caplog.text
    state = json.loads(path.read_text())
    assert state["queue"] == [] and all(slot["id"] not in ("s", "z") for slot in state["slots"])


def test_an_entry_from_another_pid_namespace_is_kept_until_its_lease_ends(tmp_path):
    path = tmp_path / "quota" / "rate-foreign.json"
    path.parent.mkdir(parents=True)
    lease = time.time() + 1.0
    # Another container on this volume: its pid 1 is not ours, its start time means nothing here.
    path.write_text(json.dumps({"slots": [], "queue": [
        {"id": "x", "pid": 1, "ps": "bogus", "ns": "another-host:1", "lease": lease, "since": time.time()}]}))
    limiter = SharedRateLimiter(1, 0.5, path)
    assert limiter.used() == 1  # granted to the foreign waiter, not dropped as "dead"

    async def main() -> float:
        async with await asyncio.wait_for(limiter.acquire(), timeout=5):
            return time.time()

    assert asyncio.run(main()) >= lease  # only once its owner stopped renewing it


def test_a_waiter_whose_ticket_vanished_queues_again(tmp_path):
    path = tmp_path / "quota" / "rate-vanished.json"
    first, second = SharedRateLimiter(1, 0.3, path), SharedRateLimiter(1, 0.3, path)

    async def main() -> None:
        held = await first.acquire()
        waiting = asyncio.ensure_future(second.acquire())
        await asyncio.sleep(0.05)
        state = json.loads(path.read_text())
        assert len(state["queue"]) == 1
        path.write_text(json.dumps({**state, "queue": []}))  # dropped by someone who judged it dead
        async with held:
            pass
        async with await asyncio.wait_for(waiting, timeout=3):
            pass

    asyncio.run(main())


IN_NAMESPACE = """
import asyncio, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
from nanobanana_ui.quota.shared_limits import SharedRateLimiter

async def main():
    limiter = SharedRateLimiter(1, {window}, Path({path!r}))
    print("pid", __import__("os").getpid(), flush=True)
    async with await limiter.acquire():
        print("granted", time.time(), flush=True)

asyncio.run(main())
"""


def test_a_waiter_in_another_pid_namespace_is_served_in_its_turn(tmp_path):
    probe = subprocess.run(["unshare", "-p", "-f", "--mount-proc", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no PID namespaces here: {probe.stderr.decode().strip()}")
    path = tmp_path / "quota" / "rate-ns.json"
    first, second = SharedRateLimiter(1, 0.3, path), SharedRateLimiter(1, 0.3, path)

    async def main() -> tuple[float, float]:
        held = await first.acquire()
        child = await asyncio.create_subprocess_exec(
            "unshare", "-p", "-f", "--mount-proc", sys.executable, "-c",
            IN_NAMESPACE.format(root=str(ROOT), window=0.3, path=str(path)), stdout=subprocess.PIPE)
        assert child.stdout is not None
        assert (await asyncio.wait_for(child.stdout.readline(), 30)).split() == [b"pid", b"1"]  # PID 1, like ours
        while not json.loads(path.read_text())["queue"]:
            await asyncio.sleep(0.02)
        ours = asyncio.ensure_future(second.acquire())  # queued after the other namespace's waiter
        await asyncio.sleep(0.05)
        async with held:
            pass
        line = await asyncio.wait_for(child.stdout.readline(), 10)
        async with await asyncio.wait_for(ours, 10):
            ours_at = time.time()
        await asyncio.wait_for(child.wait(), 10)
        return float(line.split()[1]), ours_at

    theirs_at, ours_at = asyncio.run(main())
    assert theirs_at < ours_at  # first come, first served across namespaces


FAILS_TWICE_THEN_IDLES = """
import asyncio, errno, os, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from nanobanana_ui.quota import shared_limits
from nanobanana_ui.quota.shared_limits import SharedRateLimiter

real_replace, failures = os.replace, [0]

def replace(src, dst):
    if failures[0] < 2:
        failures[0] += 1
        raise OSError(errno.ENOSPC, "No space left on device")
    return real_replace(src, dst)

async def main():
    limiter = SharedRateLimiter(1, {window}, Path({path!r}))
    waiting = asyncio.ensure_future(limiter.acquire())
    await asyncio.sleep(0.1)
    print("queued", flush=True)
    shared_limits.os.replace = replace  # the disk fills up: the next two writes fail
    async with await waiting:
        print("served here", flush=True)
    await asyncio.sleep(3600)  # alive and idle: never acquires again

asyncio.run(main())
"""


def test_a_process_idle_after_a_write_error_leaves_no_ghost_for_the_others(tmp_path):
    path = tmp_path / "quota" / "rate-idle.json"
    ours, later = SharedRateLimiter(1, 0.5, path), SharedRateLimiter(1, 0.5, path)

    async def main() -> None:
        held = await ours.acquire()
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", FAILS_TWICE_THEN_IDLES.format(root=str(ROOT), window=0.5, path=str(path)),
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert child.stdout is not None
        try:
            assert (await asyncio.wait_for(child.stdout.readline(), 30)).strip() == b"queued"
            assert (await asyncio.wait_for(child.stdout.readline(), 10)).strip() == b"served here"
            async with held:  # would grant the idle process's stale ticket a slot it never returns
                pass
            async with await asyncio.wait_for(later.acquire(), timeout=5):
                pass
        finally:
            child.kill()
            await child.wait()

    asyncio.run(main())
