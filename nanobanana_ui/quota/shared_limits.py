"""One per-minute rate limit across processes: the limiter's slots in a locked file on the data directory.

Every process that uses the same key and endpoint (the web app, CLI runs, batches) reads and writes one small JSON
file under ``NANOBANANA_HOME/quota``, named by a salted hash of key and endpoint (the key is never stored), while
holding an exclusive ``flock`` on its lock file. The file holds the slots taken (in flight, or counted until a moment
a window after the request surely arrived, as in limits.py) and one queue of waiting requests from every process,
served first come, first served. Within a process only the oldest waiter reads the file, sleeping until the next slot
frees (at most `POLL_S` while every slot is in flight); the others look every `_IDLE_S`.

Never stuck:
- Each entry names its process's PID namespace (boot id and namespace inode). An entry from this namespace whose
  process has died (pid and start time) is settled on the next look; one from another namespace (another container on
  the same volume, where pids mean nothing) lives while its owner renews its lease, which it does on every look. A
  settled slot in flight counts one more window from then, so a killed process leaks nothing beyond that.
- Entries are validated as they are read: a malformed one is dropped (with a warning), never raised.
- A waiter whose ticket vanished (dropped by a process that judged it dead) queues again at its original place.
- A write that fails (a full disk, a read-only one) moves this process to a per-process limiter for
  `retry_shared_after_s`, with a warning; what it had in the file is removed as soon as a write succeeds again
  (nothing is left there to be granted to a process that no longer waits). Then the shared file is tried again.
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
from .liveness import NAMESPACE, process_alive, process_start
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


_LEASE_S = 30.0  # a ticket from another namespace lives this long after its owner last looked (every <= _IDLE_S)
_MEND_RETRY_S = 1.0  # after a failed write, try this often to remove what it left in the file
_SLOT_LEASE_S = 120.0  # the same for a slot in flight (its request left long before: uploads take seconds)


def _since(ticket: dict[str, Any], default: float) -> float:
    """When a ticket was queued (`default` when it does not say)."""
    since = ticket.get("since")
    return float(since) if since is not None else default


def _valid(entry: object, time_field: str) -> bool:
    """An entry this version can read: an id, an integer pid, and its time (`until` or `since`) a number or None."""
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        return False
    pid, moment = entry.get("pid"), entry.get(time_field)
    return isinstance(pid, int) and not isinstance(pid, bool) and (
        moment is None or (isinstance(moment, (int, float)) and not isinstance(moment, bool)))


class _Waiter:
    """One request waiting in this process: its ticket in the shared queue and the event that wakes it."""

    def __init__(self, since: float) -> None:
        self.id = uuid.uuid4().hex
        self.since = since
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.granted = False


class SharedRateLimiter(RateLimiter):
    """`RateLimiter`'s contract (acquire → slot with mark_sent / give_back), with the slots shared on disk."""

    retry_shared_after_s = 30.0  # after a failed write, count in this process only for this long, then try again

    def __init__(self, limit: int, window_s: float, path: Path, clock: Callable[[], float] = time.time) -> None:
        super().__init__(limit, window_s, clock)  # wall time: every process on the machine reads the same clock
        self.path = path
        self._file_lock = threading.Lock()  # one thread of this process in the file at a time (flock is per file)
        self._lock_path = path.with_suffix(".lock")
        self._pid, self._started = os.getpid(), process_start(os.getpid())
        self._owner = uuid.uuid4().hex  # this limiter object: tells its own entries from every other's
        self._local: deque[_Waiter] = deque()
        self._held: set[str] = set()  # ids of this object's slots in flight (granted, not finished)
        self._orphans: dict[str, float | None] = {}  # entries a failed write left in the file: id -> until (None: drop)
        self._fallback = RateLimiter(limit, window_s)
        self._fallback_until = 0.0  # monotonic; until then (and while its slots count) the per-process limiter serves
        self._warned_malformed = False
        self._mend_timer: threading.Timer | None = None
        self._mend_timer_lock = threading.Lock()

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
                mended = self._mend(state)
                yield state
                tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
                try:
                    tmp.write_text(json.dumps(state, separators=(",", ":")))
                    os.replace(tmp, self.path)
                finally:
                    tmp.unlink(missing_ok=True)  # a write cut short (a full disk) leaves no temp file behind
                for entry_id in mended:  # written: what failed writes left behind is mended now
                    self._orphans.pop(entry_id, None)
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
        slots = [entry for entry in data["slots"] if _valid(entry, "until")]
        queue = [entry for entry in data["queue"] if _valid(entry, "since")]
        if len(slots) + len(queue) < len(data["slots"]) + len(data["queue"]) and not self._warned_malformed:
            self._warned_malformed = True
            log.warning("dropped malformed entries from the shared rate-limit file %s", self.path.name)
        return {"slots": slots, "queue": queue}

    def _mend(self, state: _State) -> list[str]:
        """Apply what failed writes left undone, and settle this object's own entries that nothing stands behind.

        Returns the ids of the orphans applied (the caller forgets them once the state is written).
        """
        now = self._clock()
        orphans = dict(self._orphans)
        waiting = {waiter.id for waiter in list(self._local)}
        slots = []
        for slot in state["slots"]:
            if slot["id"] in orphans:
                slot["until"] = orphans[slot["id"]]
                if slot["until"] is None:  # never used: returned
                    continue
            elif slot.get("owner") == self._owner and slot["until"] is None and slot["id"] not in self._held \
                    and slot["id"] not in waiting:
                slot["until"] = now + self.window_s  # a slot of ours that nobody holds: count it, it may be used
            slots.append(slot)
        state["slots"] = slots
        state["queue"] = [ticket for ticket in state["queue"] if ticket["id"] not in orphans
                          and not (ticket.get("owner") == self._owner and ticket["id"] not in waiting)]
        return list(orphans)

    def _entry(self, entry_id: str, **fields: Any) -> dict[str, Any]:
        """A new entry of this process: who wrote it (pid, start time, namespace, object) and its lease."""
        return {"id": entry_id, "pid": self._pid, "ps": self._started, "ns": NAMESPACE, "owner": self._owner,
                "lease": self._clock() + _LEASE_S, **fields}

    def _alive(self, entry: dict[str, Any], now: float) -> bool:
        """Whether an entry's process still runs: by pid in this namespace, by its lease in another one."""
        if entry.get("ns", NAMESPACE) != NAMESPACE:
            lease = entry.get("lease")
            return isinstance(lease, (int, float)) and lease > now
        return process_alive(int(entry["pid"]), str(entry.get("ps", "")))

    def _settle(self, state: _State, now: float) -> None:
        """Drop expired slots and dead processes' tickets; a dead process's slot in flight counts one more window."""
        slots = []
        for slot in state["slots"]:
            until = slot.get("until")
            if until is None and not self._alive(slot, now):
                slot["until"] = until = now + self.window_s  # it may have been sent just now: count it fully
            if until is not None:
                until = min(float(until), now + self.window_s)  # the wall clock went back: never wait longer
                slot["until"] = until
                if until <= now:
                    continue
            slots.append(slot)
        state["slots"] = slots
        state["queue"] = [t for t in state["queue"] if self._alive(t, now)]

    def _grant_shared(self, state: _State) -> float | None:
        """Give free slots to the queue's head, in order; wake this process's granted waiters; the next-free hint."""
        now = self._clock()
        self._settle(state, now)
        present = {entry["id"] for entry in state["slots"] + state["queue"]}
        for waiter in list(self._local):  # dropped by a process that judged it dead: back in line, at its own place
            if not waiter.granted and waiter.id not in present:
                place = next((n for n, ticket in enumerate(state["queue"]) if _since(ticket, now) > waiter.since),
                             len(state["queue"]))
                state["queue"].insert(place, self._entry(waiter.id, since=waiter.since))
        free = self.limit - len(state["slots"])
        while free > 0 and state["queue"]:
            ticket = state["queue"].pop(0)
            state["slots"].append({**{k: v for k, v in ticket.items() if k != "since"}, "until": None})
            free -= 1
        granted = {slot["id"] for slot in state["slots"] if slot["until"] is None}
        for waiter in list(self._local):
            if waiter.id in granted and not waiter.granted:
                waiter.granted = True
                self._held.add(waiter.id)
                waiter.loop.call_soon_threadsafe(waiter.wake.set)
        for lease_s, entries in ((_SLOT_LEASE_S, state["slots"]), (_LEASE_S, state["queue"])):
            for entry in entries:
                if entry.get("owner") == self._owner:
                    entry["lease"] = now + lease_s  # renewed on every look: alive, as other namespaces see it
        ends = [float(slot["until"]) for slot in state["slots"] if slot["until"] is not None]
        return min(ends) - now if ends else None

    # --- the RateLimiter contract -----------------------------------------------------------------------------

    def _counting_locally(self) -> bool:
        """Whether the per-process limiter serves: after a failed write, until its delay passed and its slots freed."""
        return time.monotonic() < self._fallback_until or self._fallback.used() > 0

    async def acquire(self, on_wait: Callable[[float | None], None] | None = None) -> Slot:
        """Wait for a slot (first come, first served across processes) and take it."""
        if self._counting_locally():
            if self._orphans:
                await asyncio.to_thread(self._try_mend)
            return await self._fallback.acquire(on_wait)
        waiter = _Waiter(self._clock())
        try:
            with self._state() as state:
                state["queue"].append(self._entry(waiter.id, since=waiter.since))
                self._local.append(waiter)
                hint = self._grant_shared(state)
        except OSError as exc:
            self._forget(waiter, exc)
            return await self._fallback.acquire(on_wait)
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
                        self._forget(waiter, exc)
                        return await self._fallback.acquire(on_wait)
        except BaseException:
            self._held.discard(waiter.id)
            try:  # leave the queue, or return the slot
                with self._state() as state:
                    state["queue"] = [t for t in state["queue"] if t["id"] != waiter.id]
                    state["slots"] = [s for s in state["slots"] if s["id"] != waiter.id]
                    self._remove(waiter)
                    self._grant_shared(state)
            except OSError as exc:
                self._forget(waiter, exc)
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

    def _forget(self, waiter: _Waiter, exc: OSError) -> None:
        """A write failed: leave the file's queue (best effort: now, or at the next write that works), count locally."""
        self._orphans[waiter.id] = None
        self._held.discard(waiter.id)
        self._remove(waiter)
        self._fall_back(exc)
        self._try_mend()

    def _try_mend(self) -> None:
        """One attempt at the file, to remove or settle what failed writes left there; else try again later."""
        with contextlib.suppress(OSError), self._state() as state:
            self._grant_shared(state)
        if self._orphans:
            self._mend_later()

    def _mend_later(self) -> None:
        """Try `_try_mend` again in `_MEND_RETRY_S`, in the background (an idle process must not leave a ghost)."""
        with self._mend_timer_lock:
            if self._mend_timer is not None:
                return
            self._mend_timer = threading.Timer(_MEND_RETRY_S, self._mend_now)
            self._mend_timer.daemon = True
            self._mend_timer.start()

    def _mend_now(self) -> None:
        with self._mend_timer_lock:
            self._mend_timer = None
        self._try_mend()

    def _finish(self, slot_id: str, arrived_by: float | None, unused: bool) -> None:
        """A slot is done: counted until a window after its request surely arrived, or returned unused."""
        now = self._clock()
        until = None if unused else min(now, arrived_by or now) + self.window_s
        self._held.discard(slot_id)
        try:
            with self._state() as state:
                for slot in state["slots"]:
                    if slot["id"] == slot_id:
                        slot["until"] = until
                state["slots"] = [s for s in state["slots"] if not (unused and s["id"] == slot_id)]
                self._grant_shared(state)
        except OSError as exc:
            self._orphans[slot_id] = until  # set (or dropped) by the next write that works
            self._fall_back(exc)
            self._mend_later()

    def _fall_back(self, exc: OSError) -> None:
        """Count in this process only for a while (with a warning) when the shared file cannot be written."""
        if not self._counting_locally():
            log.warning("the rate limit cannot be shared with other processes (%s: %s); counting in this "
                        "process only for %.0f s", type(exc).__name__, exc.strerror or exc, self.retry_shared_after_s)
        self._fallback_until = time.monotonic() + self.retry_shared_after_s

    def used(self) -> int:
        """Slots counted right now by every process: calls in flight plus calls within their window."""
        if self._counting_locally():
            return self._fallback.used()
        try:
            with self._state() as state:
                self._grant_shared(state)
                return len(state["slots"])
        except OSError as exc:
            self._fall_back(exc)
            return self._fallback.used()


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
