"""Limits the user set: a rate limiter shared by the whole process, and a daily budget shared by every process.

The rate limiter counts as Google's servers do (a request counts when it ARRIVES), which a client cannot see; so a
request holds its slot from the moment it is sent until `window` seconds after its answer (or failure) came back.
That can never exceed the server's count, and it spreads requests out naturally: slots free one at a time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from .errors import BudgetExceededError

__all__ = ["DailyBudget", "DailyUsage", "RateLimiter", "pacific_day", "shared_rate_limiter"]

PACIFIC = ZoneInfo("America/Los_Angeles")  # Gemini's daily quotas reset at midnight Pacific time
_POLL_S = 0.25  # longest sleep between checks while waiting (slots can free early when a call fails fast)


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
        self._frees_at: deque[float] = deque()  # when finished requests' slots free up (ascending)
        self._queue: deque[object] = deque()  # tickets of waiting callers, first come first served

    def _expire(self, now: float) -> None:
        while self._frees_at and self._frees_at[0] <= now:
            self._frees_at.popleft()

    def _wait_hint(self, now: float) -> float | None:
        """Seconds until the next slot frees, if known (None while every slot is held by a call in flight)."""
        return self._frees_at[0] - now if self._frees_at else None

    async def acquire(self, on_wait: Callable[[float | None], None] | None = None) -> _Slot:
        """Wait for a slot (in arrival order) and take it; `on_wait(seconds)` is told about each wait."""
        ticket = object()
        with self._lock:
            self._queue.append(ticket)
        told = False
        try:
            while True:
                with self._lock:
                    now = self._clock()
                    self._expire(now)
                    free = self._in_flight + len(self._frees_at) < self.limit
                    if free and self._queue[0] is ticket:
                        self._queue.popleft()
                        self._in_flight += 1
                        return _Slot(self)
                    hint = self._wait_hint(now) if not free else None
                if on_wait is not None and not told and not free:
                    on_wait(hint)
                    told = True
                await asyncio.sleep(min(max(hint or _POLL_S, 0.01), _POLL_S))
        except BaseException:
            with self._lock:
                if ticket in self._queue:
                    self._queue.remove(ticket)
            raise

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._frees_at.append(self._clock() + self.window_s)

    def used(self) -> int:
        """Slots counted right now: calls in flight plus calls answered within the window."""
        with self._lock:
            self._expire(self._clock())
            return self._in_flight + len(self._frees_at)


class _Slot:
    """One taken slot; leaving the `async with` block starts its window."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> _Slot:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._limiter._release()


_shared: dict[tuple[str, int, float], RateLimiter] = {}
_shared_lock = threading.Lock()


def shared_rate_limiter(endpoint: str, limit: int, window_s: float = 60.0) -> RateLimiter:
    """The process-wide limiter for one endpoint and limit: every Studio, session and call shares it."""
    with _shared_lock:
        return _shared.setdefault((endpoint, limit, window_s), RateLimiter(limit, window_s))


def pacific_day(now: datetime | None = None) -> str:
    """Today's date in Pacific time, as Gemini counts daily quotas (e.g. "2026-11-27")."""
    return (now or datetime.now(PACIFIC)).astimezone(PACIFIC).date().isoformat()


def next_pacific_midnight(now: datetime | None = None) -> datetime:
    """When today's daily quota resets: the next midnight in Pacific time."""
    local = (now or datetime.now(PACIFIC)).astimezone(PACIFIC)
    return datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=PACIFIC)


@dataclass(frozen=True)
class DailyUsage:
    """Today's counts on this data directory, in Pacific days."""

    day: str
    requests: int
    budget: int
    cost_usd: float
    saved_usd: float
    resets_at: datetime

    @property
    def resets_in(self) -> str:
        """Time until the reset, like "5 h 12 min"."""
        return _until(self.resets_at, datetime.now(PACIFIC))


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
                f"Pacific time ({resets:%H:%M %Z}, {_until(resets, self._clock())} from now). Raise NANOBANANA_RPD "
                "if your quota allows more.")

    def add_cost(self, cost_usd: float | None, saved_usd: float = 0.0) -> None:
        """Add a result's cost (or, for a cache hit, the money it saved) to today's totals."""
        day = pacific_day(self._clock())
        if cost_usd:
            self._store.incr(f"{day}:cost_micro", round(cost_usd * 1e6))
        if saved_usd:
            self._store.incr(f"{day}:saved_micro", round(saved_usd * 1e6))

    def usage(self) -> DailyUsage:
        """Today's requests, budget, cost and savings."""
        now = self._clock()
        day = pacific_day(now)
        return DailyUsage(day=day, requests=int(self._store.get(f"{day}:requests", 0)), budget=self.limit,
                          cost_usd=self._store.get(f"{day}:cost_micro", 0) / 1e6,
                          saved_usd=self._store.get(f"{day}:saved_micro", 0) / 1e6,
                          resets_at=next_pacific_midnight(now))

    def close(self) -> None:
        """Close the counters' database."""
        self._store.close()


def _until(when: datetime, now: datetime) -> str:
    minutes = max(int((when - now).total_seconds() // 60), 0)
    return f"{minutes // 60} h {minutes % 60} min"
