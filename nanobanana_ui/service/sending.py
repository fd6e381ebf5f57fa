"""Sending one request: the daily budget, the shared rate limiter and the retry policy, wrapped around the backend.

Every attempt, retries included, is counted by the budget and takes a rate-limiter slot, because the server counts
every request that arrives.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Generic, Protocol, TypeVar

from ..backends.transport import SendObserver
from ..domain.errors import StudioError
from ..quota.limits import DailyBudget, RateLimiter, Slot
from ..quota.retry import RetryPolicy, describe_failure

__all__ = ["EventSink", "GuardedSender", "NotSent", "stop_sending"]

log = logging.getLogger(__name__)
EventSink = Callable[[str], None]  # receives one human line per wait or retry ("retrying in 4.2 s ...")
# Set by a caller that may give up (a batch being cancelled): once the event is set, a request still waiting for its
# rate-limit slot (or between retries) is not sent but raises NotSent. Tasks inherit it, so the Studio's fetch sees it.
stop_sending: ContextVar[asyncio.Event | None] = ContextVar("stop_sending", default=None)


class NotSent(Exception):  # noqa: N818 - not an error the user made: the caller asked to stop
    """The request was not sent because its caller stopped sending (see `stop_sending`); nothing was paid."""


Req = TypeVar("Req")  # what is sent: an ImageRequest, or a TextRequest (prompt craft)
Rep = TypeVar("Rep")  # what comes back: a BackendReply, or a TextReply
_Req = TypeVar("_Req", contravariant=True)
_Rep = TypeVar("_Rep", covariant=True)


class _Generate(Protocol[_Req, _Rep]):
    def __call__(self, request: _Req, *, observer: SendObserver | None = None) -> Awaitable[_Rep]: ...


class GuardedSender(Generic[Req, Rep]):
    """Sends requests within the user's limits, retrying what is worth retrying."""

    def __init__(self, generate: _Generate[Req, Rep], *, policy: RetryPolicy, limiter: RateLimiter | None = None,
                 budget: DailyBudget | None = None, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._generate = generate
        self._policy = policy
        self._limiter = limiter
        self._budget = budget
        self._sleep = sleep

    async def send(self, request: Req, on_event: EventSink | None = None) -> Rep:
        """One request to its final outcome: a reply, or the last error once retrying cannot help."""
        tell = on_event or (lambda line: None)
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            try:
                return await self._send_once(request, tell)
            except StudioError as error:
                delay = self._policy.next_delay(error, attempt, waited)
                if delay is None:
                    if attempt > 1:
                        log.warning("giving up after %d attempts: %s", attempt, error.message)
                    raise
                line = (f"{describe_failure(error)}; retrying in {delay:.1f} s "
                        f"(attempt {attempt + 1} of {self._policy.max_attempts})")
                log.warning(line)
                tell(line)
                await self._sleep(delay)
                waited += delay

    async def call(self, fn: Callable[[], Awaitable[object]], on_event: EventSink | None = None) -> None:
        """Another call to the API (a Files API upload): free, so not counted by the budget, but it takes a
        rate-limiter slot and is retried like a request; the last error is raised once retrying cannot help."""
        tell = on_event or (lambda line: None)
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            try:
                if self._limiter is None:
                    await fn()
                    return
                async with await self._acquire(self._limiter, lambda seconds: None):
                    await fn()
                    return
            except StudioError as error:
                delay = self._policy.next_delay(error, attempt, waited)
                if delay is None:
                    raise
                tell(f"{describe_failure(error)}; retrying the upload in {delay:.1f} s")
                await self._sleep(delay)
                waited += delay

    async def _send_once(self, request: Req, tell: EventSink) -> Rep:
        if self._limiter is None:
            stop = stop_sending.get()
            if stop is not None and stop.is_set():
                raise NotSent("stopped before sending")
            return await self._generate(request)

        def waiting(seconds: float | None) -> None:
            line = f"waiting for rate limit: {seconds:.0f} s" if seconds is not None else "waiting for rate limit"
            log.info(line)
            tell(line)

        async with await self._acquire(self._limiter, waiting) as slot:
            stop = stop_sending.get()
            if stop is not None and stop.is_set():
                slot.give_back()
                raise NotSent("stopped before sending")
            if self._budget is not None:
                await asyncio.to_thread(self._budget.reserve)
            return await self._generate(request, observer=slot)  # the slot learns when the request left

    @staticmethod
    async def _acquire(limiter: RateLimiter, waiting: Callable[[float | None], None]) -> Slot:
        """The limiter's slot; with `stop_sending` set while waiting for it, give up the wait (NotSent)."""
        stop = stop_sending.get()
        if stop is None:
            return await limiter.acquire(on_wait=waiting)
        acquiring = asyncio.ensure_future(limiter.acquire(on_wait=waiting))
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (or worse) while waiting: leave no slot behind, even one just granted
            stopping.cancel()
            await _give_back_unused(acquiring)
            raise
        stopping.cancel()
        if not acquiring.done():  # the stop came first: a slot granted meanwhile is returned here, exactly once
            await _give_back_unused(acquiring)
            raise NotSent("stopped while waiting for the rate limit")
        return acquiring.result()  # a slot; the caller gives it back if stop_sending is set by now


async def _give_back_unused(acquiring: asyncio.Future[Slot]) -> None:
    """Stop waiting for a slot; a slot granted meanwhile (even in this very step) is returned unused.

    A second cancellation while this cleans up is held until the slot is back, then raised.
    """
    if not acquiring.done():
        acquiring.cancel()  # the limiter takes the waiter out of its queue (or returns a slot granted in its step)
    cancelled_again = False
    while not acquiring.done():
        try:
            await asyncio.wait({acquiring})  # never raises the acquire's own outcome
        except asyncio.CancelledError:
            cancelled_again = True
    if not acquiring.cancelled() and acquiring.exception() is None:
        slot = acquiring.result()
        slot.give_back()
        cleanup = asyncio.ensure_future(slot.__aexit__(None, None, None))
        while not cleanup.done():
            try:
                await asyncio.wait({cleanup})
            except asyncio.CancelledError:
                cancelled_again = True
    if cancelled_again:
        raise asyncio.CancelledError
