"""A fair waiting room for many visitors: a global cap, a per-visitor cap, round-robin between waiting visitors.

One FairGate per app, used on the event loop only (no lock needed). A visitor with `per_visitor` requests running
waits behind their own requests, never in front of another visitor's; when a slot frees, the next visitor in turn
(round-robin over those waiting) gets it. A visitor with `visitor_queue` requests already waiting is refused at once
("your earlier requests are still running"), and so is anyone when `queue_size` requests wait in all ("busy"). The
gate's memory is bounded by the visitors active right now: empty entries are removed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from ..domain.errors import RateLimitError

__all__ = ["BUSY_MESSAGE", "STILL_RUNNING", "FairGate"]

STILL_RUNNING = "Your earlier requests are still running"
BUSY_MESSAGE = "The studio is busy right now: try again in a minute. Nothing was sent."


class FairGate:
    """At most `total` requests run at once, at most `per_visitor` of one visitor's; the rest wait, fairly."""

    def __init__(self, total: int, per_visitor: int, visitor_queue: int, queue_size: int) -> None:
        self.total, self.per_visitor = max(total, 1), max(per_visitor, 1)
        self.visitor_queue, self.queue_size = max(visitor_queue, 0), max(queue_size, 0)
        self.running: dict[str, int] = {}
        self.waiting: dict[str, deque[asyncio.Future[None]]] = {}
        self._ring: OrderedDict[str, None] = OrderedDict()  # visitors with waiters, in turn order
        self.n_running = 0
        self.n_waiting = 0
        self._grants = 0
        self._last_served: dict[str, int] = {}  # for visitors running or waiting: when they were last granted

    def snapshot(self) -> dict[str, int]:
        """The counts now: running, waiting, and how many visitors the gate remembers."""
        return {"running": self.n_running, "waiting": self.n_waiting,
                "visitors": len(set(self.running) | set(self.waiting) | set(self._ring) | set(self._last_served))}

    def _can_run(self, visitor: str) -> bool:
        return self.n_running < self.total and self.running.get(visitor, 0) < self.per_visitor

    def _start(self, visitor: str) -> None:
        self.running[visitor] = self.running.get(visitor, 0) + 1
        self.n_running += 1
        self._grants += 1
        self._last_served[visitor] = self._grants

    def _release(self, visitor: str) -> None:
        left = self.running.get(visitor, 0) - 1
        if left > 0:
            self.running[visitor] = left
        else:
            self.running.pop(visitor, None)
        self.n_running -= 1
        self._dispatch()
        self._tidy(visitor)

    def _tidy(self, visitor: str) -> None:
        if visitor not in self.running and visitor not in self.waiting:
            self._last_served.pop(visitor, None)

    def _dispatch(self) -> None:
        """Grant free slots to waiting visitors: the one with the fewest running first, ties in turn (round-robin:
        a visitor served goes to the back of the ring)."""
        while self.n_running < self.total:
            eligible = [v for v in self._ring if self._can_run(v)]
            if not eligible:
                return
            # Fewest running first, then the one served longest ago: round-robin across those waiting.
            chosen = min(eligible, key=lambda v: (self.running.get(v, 0), self._last_served.get(v, -1)))
            queue = self.waiting[chosen]
            future = queue.popleft()
            self.n_waiting -= 1
            if not queue:
                del self.waiting[chosen]
                del self._ring[chosen]
            else:
                self._ring.move_to_end(chosen)
            if future.done():  # its caller went away (cancelled) before it was granted
                continue
            self._start(chosen)
            future.set_result(None)

    def _refusal(self, visitor: str) -> RateLimitError | None:
        mine = len(self.waiting.get(visitor, ()))
        if self.running.get(visitor, 0) >= self.per_visitor and mine >= self.visitor_queue:
            return RateLimitError(f"{STILL_RUNNING} ({self.running.get(visitor, 0)} in flight, {mine} waiting): "
                                  "wait for one to finish, then try again. Nothing was sent.", retry_after_s=None)
        if self.n_waiting >= self.queue_size:
            return RateLimitError(BUSY_MESSAGE, retry_after_s=60.0)
        return None

    async def enter(self, visitor: str, on_wait: Callable[[str], None] | None = None) -> None:
        """Take one running slot for `visitor`: at once, or after a fair wait (told to `on_wait`); RateLimitError at
        once when the visitor's own queue, or the whole queue, is full. Give it back with leave()."""
        if self._can_run(visitor):  # nobody waiting could run now (dispatch hands out every free slot it can)
            self._start(visitor)
            return
        if (refused := self._refusal(visitor)) is not None:
            raise refused
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(visitor, deque()).append(future)
        self._ring.setdefault(visitor, None)
        self.n_waiting += 1
        if on_wait is not None:
            mine = self.running.get(visitor, 0) >= self.per_visitor
            on_wait(f"{STILL_RUNNING}: this one starts when one of them finishes." if mine else
                    f"Waiting for a free slot ({self.n_waiting - 1} ahead)...")
        self._dispatch()  # a slot may be free for this visitor now (the others waiting are at their own cap)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self._release(visitor)  # granted just as the caller went away: give the slot back
            else:
                self._forget(visitor, future)
            raise

    def leave(self, visitor: str) -> None:
        """Give back a slot taken with enter(); the next visitor in turn gets it."""
        self._release(visitor)

    @asynccontextmanager
    async def slot(self, visitor: str, on_wait: Callable[[str], None] | None = None) -> AsyncIterator[None]:
        """Hold one running slot for `visitor` for the block (see enter())."""
        await self.enter(visitor, on_wait)
        try:
            yield
        finally:
            self.leave(visitor)

    def _forget(self, visitor: str, future: asyncio.Future[None]) -> None:
        queue = self.waiting.get(visitor)
        if queue is not None and future in queue:
            queue.remove(future)
            self.n_waiting -= 1
            if not queue:
                del self.waiting[visitor]
                self._ring.pop(visitor, None)
        self._tidy(visitor)
