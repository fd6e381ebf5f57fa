"""One per-minute rate limit across processes: the limiter's slots in a locked file on the data directory.

Every process that uses the same key and endpoint (the web app, CLI runs, batches) reads and writes one small JSON
file under ``NANOBANANA_HOME/quota``, named by a salted hash of key and endpoint (the key is never stored), while
holding an exclusive ``flock`` on its lock file. The file holds the slots taken (in flight, or counted until a moment
a window after the request surely arrived, as in limits.py) and one queue of waiting requests from every process,
served first come, first served. A slot or ticket whose process has died (checked by pid and its start time) is
settled on the next look: a slot in flight counts until one window from then, so a killed process leaks nothing
beyond one window. Within a process only the oldest waiter reads the file, sleeping until the next slot frees
(at most `POLL_S` while every slot is in flight); the others sleep until it hands over. A data directory that cannot
be written (read-only, full) makes the limiter fall back to a per-process one, with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .limits import RateLimiter, Slot, shared_rate_limiter
from .partitions import stable_salt

__all__ = ["POLL_S", "SharedRateLimiter", "limiter_file_name", "shared_limiter_for"]

log = logging.getLogger(__name__)
POLL_S = 0.25  # longest sleep of the oldest waiter while every slot is in flight (a call can end at any moment)
_IDLE_S = 2.0  # other waiters wake this often in case the oldest one went away without handing over
_State = dict[str, list[dict[str, Any]]]


def limiter_file_name(salt: bytes, key: str, endpoint: str) -> str:
    """The slots file's name for a key and endpoint: a salted hash, so the key cannot be recovered from it."""
    digest = hashlib.sha256(salt + b"\0" + key.encode() + b"\0" + endpoint.encode()).hexdigest()[:24]
    return f"rate-{digest}.json"


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (tells a reused pid apart); "" where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]  # field 22, counted after the parenthesised command name


def _alive(pid: int, started: str) -> bool:
    """True if the process that wrote an entry still runs (the same pid with the same start time)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not started or _process_start(pid) in ("", started)


class _Waiter:
    """One request waiting in this process: its ticket in the shared queue and the event that wakes it."""

    def __init__(self) -> None:
        self.id = uuid.uuid4().hex
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.granted = False


class SharedRateLimiter(RateLimiter):
    """`RateLimiter`'s contract (acquire → slot with mark_sent / give_back), with the slots shared on disk."""

    def __init__(self, limit: int, window_s: float, path: Path, clock: Callable[[], float] = time.time) -> None:
        super().__init__(limit, window_s, clock)  # wall time: every process on the machine reads the same clock
        self.path = path
        self._file_lock = threading.Lock()  # one thread of this process in the file at a time (flock is per file)
        self._lock_path = path.with_suffix(".lock")
        self._pid, self._started = os.getpid(), _process_start(os.getpid())
        self._local: deque[_Waiter] = deque()
        self._fallback: RateLimiter | None = None

    # --- the file ---------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _state(self) -> Iterator[_State]:
        """The shared state under the file lock; written back (atomically) when the block ends without error."""
        with self._file_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)  # the lock's own blocking wait: no polling for it
                state = self._load()
                yield state
                tmp = self.path.with_name(f".{self.path.name}.{self._pid}.tmp")
                tmp.write_text(json.dumps(state, separators=(",", ":")))
                os.replace(tmp, self.path)
            finally:
                os.close(fd)  # closing releases the lock

    def _load(self) -> _State:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("slots"), list) or not isinstance(
                data.get("queue"), list):
            return {"slots": [], "queue": []}  # new, or damaged: start afresh rather than block everyone
        return {"slots": data["slots"], "queue": data["queue"]}

    def _settle(self, state: _State, now: float) -> None:
        """Drop expired slots and dead processes' tickets; a dead process's slot in flight counts one more window."""
        slots = []
        for slot in state["slots"]:
            until = slot.get("until")
            if until is None and not _alive(int(slot["pid"]), str(slot.get("ps", ""))):
                slot["until"] = until = now + self.window_s  # it may have been sent just now: count it fully
            if until is not None:
                until = min(float(until), now + self.window_s)  # the wall clock went back: never wait longer
                slot["until"] = until
                if until <= now:
                    continue
            slots.append(slot)
        state["slots"] = slots
        state["queue"] = [t for t in state["queue"] if _alive(int(t["pid"]), str(t.get("ps", "")))]

    def _grant_shared(self, state: _State) -> float | None:
        """Give free slots to the queue's head, in order; wake this process's granted waiters; the next-free hint."""
        now = self._clock()
        self._settle(state, now)
        free = self.limit - len(state["slots"])
        while free > 0 and state["queue"]:
            ticket = state["queue"].pop(0)
            state["slots"].append({"id": ticket["id"], "pid": ticket["pid"], "ps": ticket.get("ps", ""),
                                   "until": None})
            free -= 1
        granted = {slot["id"] for slot in state["slots"] if slot["pid"] == self._pid and slot["until"] is None}
        for waiter in list(self._local):
            if waiter.id in granted and not waiter.granted:
                waiter.granted = True
                waiter.loop.call_soon_threadsafe(waiter.wake.set)
        ends = [float(slot["until"]) for slot in state["slots"] if slot["until"] is not None]
        return min(ends) - now if ends else None

    # --- the RateLimiter contract -----------------------------------------------------------------------------

    async def acquire(self, on_wait: Callable[[float | None], None] | None = None) -> Slot:
        """Wait for a slot (first come, first served across processes) and take it."""
        if self._fallback is not None:
            return await self._fallback.acquire(on_wait)
        waiter = _Waiter()
        try:
            with self._state() as state:
                state["queue"].append({"id": waiter.id, "pid": self._pid, "ps": self._started,
                                       "since": self._clock()})
                self._local.append(waiter)
                hint = self._grant_shared(state)
        except OSError as exc:
            return await self._fall_back(exc).acquire(on_wait)
        told = False
        try:
            while not waiter.granted:
                if on_wait is not None and not told:
                    on_wait(hint)
                    told = True
                oldest = bool(self._local) and self._local[0] is waiter
                timeout = min(max(hint if hint is not None else POLL_S, 0.01), POLL_S) if oldest else _IDLE_S
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(waiter.wake.wait(), timeout=timeout)
                waiter.wake.clear()
                if not waiter.granted:
                    try:
                        with self._state() as state:
                            hint = self._grant_shared(state)
                    except OSError as exc:  # the disk filled up or went read-only while waiting
                        self._remove(waiter)
                        return await self._fall_back(exc).acquire(on_wait)
        except BaseException:
            with contextlib.suppress(OSError), self._state() as state:  # leave the queue, or return the slot
                state["queue"] = [t for t in state["queue"] if t["id"] != waiter.id]
                state["slots"] = [s for s in state["slots"] if s["id"] != waiter.id]
                self._remove(waiter)
                self._grant_shared(state)
            raise
        self._remove(waiter)
        return _SharedSlot(self, waiter.id)

    def _remove(self, waiter: _Waiter) -> None:
        """Take a waiter off this process's list and hand the file-watching over to the next oldest."""
        with contextlib.suppress(ValueError):
            self._local.remove(waiter)
        if self._local:
            nxt = self._local[0]
            nxt.loop.call_soon_threadsafe(nxt.wake.set)

    def _finish(self, slot_id: str, arrived_by: float | None, unused: bool) -> None:
        """A slot is done: counted until a window after its request surely arrived, or returned unused."""
        try:
            with self._state() as state:
                now = self._clock()
                for slot in state["slots"]:
                    if slot["id"] == slot_id:
                        slot["until"] = None if unused else min(now, arrived_by or now) + self.window_s
                state["slots"] = [s for s in state["slots"] if not (unused and s["id"] == slot_id)]
                self._grant_shared(state)
        except OSError as exc:
            self._fall_back(exc)

    def _fall_back(self, exc: OSError) -> RateLimiter:
        """Switch to a per-process limiter (once, with a warning) when the data directory cannot be written."""
        if self._fallback is None:
            log.warning("the rate limit cannot be shared with other processes (%s: %s); counting in this "
                        "process only", type(exc).__name__, exc.strerror or exc)
            self._fallback = RateLimiter(self.limit, self.window_s)
        return self._fallback

    def used(self) -> int:
        """Slots counted right now by every process: calls in flight plus calls within their window."""
        if self._fallback is not None:
            return self._fallback.used()
        with self._state() as state:
            self._grant_shared(state)
            return len(state["slots"])


class _SharedSlot(Slot):
    """One taken slot in the shared file; leaving the `async with` block starts its window (or returns it)."""

    def __init__(self, limiter: SharedRateLimiter, slot_id: str) -> None:
        super().__init__(limiter)  # mark_sent and give_back as in limits.py, on the limiter's wall clock
        self._shared = limiter
        self._id = slot_id

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self._shared._finish, self._id, self._arrived_by, self._unused)


_registry: dict[tuple[Path, int, float], SharedRateLimiter] = {}
_registry_lock = threading.Lock()


def shared_limiter_for(endpoint: str, limit: int, window_s: float, *, home: Path, key: str) -> RateLimiter:
    """The limiter every process using this key and endpoint shares (one object per process and file).

    Falls back to the per-process limiter, with a warning, when the data directory cannot hold the shared file.
    """

    try:
        salt = stable_salt(home)
    except (OSError, RuntimeError) as exc:
        log.warning("the rate limit cannot be shared with other processes (%s); counting in this process only", exc)
        return shared_rate_limiter(endpoint, limit, window_s)
    path = home / "quota" / limiter_file_name(salt, key, endpoint)
    with _registry_lock:
        return _registry.setdefault((path, limit, window_s), SharedRateLimiter(limit, window_s, path))
