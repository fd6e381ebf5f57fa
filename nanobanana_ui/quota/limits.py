"""Limits the user set: a rate limiter shared by the whole process, and a daily budget shared by every process.

The rate limiter counts as Google's servers do: a request counts when it ARRIVES, which a client cannot see. So a
request holds its slot from the moment it is taken until `window` seconds after the latest moment it can have
arrived: its answer (or failure), or, when the transport reports that the request's last byte left this machine,
that moment plus a margin for the network (`send_margin_s`), whichever is earlier. Counting from the moment a call
is *started* is not safe (connection set-up and pool queues delay sends by a second or more under a burst); counting
from the answer alone is safe but wastes the quota when calls are slow. Slots free one at a time: no herd.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..domain.errors import BudgetExceededError
from ..domain.quota_clock import PACIFIC, duration_until, next_pacific_midnight, pacific_day, time_to_pacific_midnight

__all__ = [
    "DailyBudget", "DailyUsage", "RateLimiter", "Slot", "next_pacific_midnight", "pacific_day", "shared_rate_limiter",
    "time_to_pacific_midnight",
]

_POLL_S = 0.25  # longest sleep between checks while waiting (slots can free early when a call fails fast)
# After its last byte leaves, a request reaches Google within one-way latency (bounded by twice the slowest round trip
# measured when connecting, for jitter), the time to drain the socket's send buffer (at a pessimistic 1 MB/s up),
# and a fixed allowance for everything else.
SEND_MARGIN_S = 0.1
UPLINK_BYTES_PER_S = 1_000_000


class RateLimiter:
    """At most `limit` requests in any `window_s` seconds as the server counts them; waiters are served in order.

    Thread-safe and not bound to an event loop, so the CLI, the web app and tests can share one per process.
    """

    def __init__(self, limit: int, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._lock = threading.Lock()
        self._in_flight = 0
        self._frees_at: list[float] = []  # a heap: when finished requests' slots free up
        self._queue: deque[_Ticket] = deque()  # waiting callers, first come first served

    def _expire(self, now: float) -> None:
        while self._frees_at and self._frees_at[0] <= now:
            heapq.heappop(self._frees_at)

    def _wait_hint(self, now: float) -> float | None:
        """Seconds until the next slot frees, if known (None while every slot is held by a call in flight)."""
        return self._frees_at[0] - now if self._frees_at else None

    def _grant(self) -> None:
        """Give every free slot to the waiters at the head of the queue, in order, and wake them (under the lock)."""
        self._expire(self._clock())
        free = self.limit - self._in_flight - len(self._frees_at)
        while free > 0 and self._queue:
            ticket = self._queue.popleft()
            ticket.granted = True
            self._in_flight += 1
            free -= 1
            ticket.loop.call_soon_threadsafe(ticket.wake.set)

    async def acquire(self, on_wait: Callable[[float | None], None] | None = None) -> Slot:
        """Wait for a slot (first come, first served) and take it; `on_wait(seconds)` is told about a wait."""
        ticket = _Ticket()
        told = False
        try:
            while True:
                with self._lock:
                    if ticket not in self._queue and not ticket.granted:
                        self._queue.append(ticket)
                    self._grant()
                    if ticket.granted:
                        return Slot(self)
                    hint = self._wait_hint(self._clock())
                if on_wait is not None and not told:
                    on_wait(hint)
                    told = True
                with contextlib.suppress(asyncio.TimeoutError):  # sleep until the next slot frees, or a grant
                    await asyncio.wait_for(ticket.wake.wait(), timeout=min(max(hint or _POLL_S, 0.01), _POLL_S))
        except BaseException:
            with self._lock:
                if ticket.granted:  # granted but never used: give the slot back untouched
                    self._in_flight -= 1
                    self._grant()
                elif ticket in self._queue:
                    self._queue.remove(ticket)
            raise

    def _release(self, arrived_by: float | None) -> None:
        with self._lock:
            self._in_flight -= 1
            now = self._clock()
            heapq.heappush(self._frees_at, min(now, arrived_by if arrived_by is not None else now) + self.window_s)

    def used(self) -> int:
        """Slots counted right now: calls in flight plus calls answered within the window."""
        with self._lock:
            self._expire(self._clock())
            return self._in_flight + len(self._frees_at)


class _Ticket:
    """A waiting caller: granted a slot by whichever waiter sees it free, and woken on its own event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.wake = asyncio.Event()
        self.granted = False


class Slot:
    """One taken slot; leaving the `async with` block starts its window."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter
        self._arrived_by: float | None = None
        self._unused = False

    def give_back(self) -> None:
        """Nothing will be sent with this slot: leaving the block returns it at once, starting no window."""
        self._unused = True

    def mark_sent(self, request_bytes: int = 0, round_trip_s: float = 0.0) -> None:
        """The transport wrote the request's last byte: it reaches the server within the margin."""
        margin = SEND_MARGIN_S + 2 * round_trip_s + request_bytes / UPLINK_BYTES_PER_S
        self._arrived_by = self._limiter._clock() + margin

    async def __aenter__(self) -> Slot:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._unused:
            with self._limiter._lock:
                self._limiter._in_flight -= 1
                self._limiter._grant()
            return
        self._limiter._release(self._arrived_by)


_shared: dict[tuple[str, int, float], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_rate_limiter(endpoint: str, limit: int, window_s: float = 60.0) -> RateLimiter:
    """The process-wide limiter for one endpoint and limit: every Studio, session and call shares it."""
    with _shared_lock:
        return _shared.setdefault((endpoint, limit, window_s), RateLimiter(limit, window_s))


@dataclass(frozen=True)
class DailyUsage:
    """Today's counts on this data directory, in Pacific days."""

    day: str
    requests: int
    budget: int
    cost_usd: float
    saved_usd: float
    resets_at: datetime
    maybe_requests: int = 0  # requests that timed out after they were sent: Gemini may have billed them
    maybe_usd: float = 0.0  # their estimated cost (not in cost_usd: it is not known whether they were billed)

    @property
    def resets_in(self) -> str:
        """Time until the reset, like "5 h 12 min"."""
        return duration_until(self.resets_at, datetime.now(PACIFIC))


class DailyBudget:
    """Requests sent today (and their cost) on one data directory, shared by the CLI and the app across restarts."""

    def __init__(self, directory: Path, limit: int, clock: Callable[[], datetime] | None = None) -> None:
        import diskcache  # only when a request is about to be sent

        directory.mkdir(parents=True, exist_ok=True)
        # Counters must never be evicted: a store of their own, not the size-bounded result cache.
        self._store = diskcache.Cache(str(directory), eviction_policy="none")
        self.limit = limit
        self._clock = clock or (lambda: datetime.now(PACIFIC))

    def reserve(self) -> None:
        """Count one request about to be sent, or refuse it (BudgetExceededError) if today's budget is spent."""
        day = pacific_day(self._clock())
        used = self._store.incr(f"{day}:requests")  # atomic across threads and processes
        if used > self.limit:
            self._store.decr(f"{day}:requests")
            resets = next_pacific_midnight(self._clock())
            raise BudgetExceededError(
                f"Today's budget of {self.limit} requests (NANOBANANA_RPD) is used up; it resets at midnight "
                f"Pacific time ({resets:%H:%M %Z}, {duration_until(resets, self._clock())} from now). Raise "
                "NANOBANANA_RPD if your quota allows more.")

    def add_cost(self, cost_usd: float | None, saved_usd: float = 0.0) -> None:
        """Add a result's cost (or, for a cache hit, the money it saved) to today's totals."""
        day = pacific_day(self._clock())
        if cost_usd:
            self._store.incr(f"{day}:cost_micro", round(cost_usd * 1e6))
        if saved_usd:
            self._store.incr(f"{day}:saved_micro", round(saved_usd * 1e6))

    def add_maybe(self, cost_usd: float | None) -> None:
        """Count a request that may have been billed (it timed out after it was sent) and its estimated cost."""
        day = pacific_day(self._clock())
        self._store.incr(f"{day}:maybe_requests")
        if cost_usd:
            self._store.incr(f"{day}:maybe_micro", round(cost_usd * 1e6))

    def usage(self) -> DailyUsage:
        """Today's requests, budget, cost and savings."""
        now = self._clock()
        day = pacific_day(now)
        return DailyUsage(day=day, requests=int(self._store.get(f"{day}:requests", 0)), budget=self.limit,
                          cost_usd=self._store.get(f"{day}:cost_micro", 0) / 1e6,
                          saved_usd=self._store.get(f"{day}:saved_micro", 0) / 1e6,
                          resets_at=next_pacific_midnight(now),
                          maybe_requests=int(self._store.get(f"{day}:maybe_requests", 0)),
                          maybe_usd=self._store.get(f"{day}:maybe_micro", 0) / 1e6)

    def close(self) -> None:
        """Close the counters' database."""
        self._store.close()
