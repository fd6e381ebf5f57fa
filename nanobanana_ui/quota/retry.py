"""The retry policy, the app's only retry layer (the SDK's stays off): which failures to retry, and how long to wait.

Small pure functions, so the policy can be tested without a clock: transient failures (per-minute 429, 500, 502,
503, 504, timeouts, dropped connections) are retried with exponential backoff and jitter, honouring the server's
RetryInfo / Retry-After; nothing else is (bad requests, keys, unknown models, per-day quotas, safety outcomes). A
timeout after the whole request was sent (SentTimeoutError) may have been billed: it is retried only when the user
allows it (RetryPolicy.retry_sent_timeouts: --retry-timeouts, NANOBANANA_RETRY_TIMEOUTS=1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..domain.errors import (
    NetworkError,
    RateLimitError,
    SentTimeoutError,
    ServerError,
    ServiceTimeoutError,
    StudioError,
)

__all__ = ["RetryPolicy", "describe_failure", "is_retryable"]

_RETRYABLE_STATUS = {500, 502, 503, 504}


def is_retryable(error: StudioError, *, retry_sent_timeouts: bool = False) -> bool:
    """True for failures that may pass if the same request is sent again after a wait.

    A timeout after the request was sent may have been billed: retried only with `retry_sent_timeouts`.
    """
    if isinstance(error, SentTimeoutError):
        return retry_sent_timeouts
    if isinstance(error, RateLimitError):
        return not error.per_day
    if isinstance(error, ServerError):
        return error.status_code in _RETRYABLE_STATUS
    return isinstance(error, (ServiceTimeoutError, NetworkError))


def describe_failure(error: StudioError) -> str:
    """A short phrase for a retried failure, e.g. "Gemini is overloaded"."""
    if isinstance(error, RateLimitError):
        return "Rate limit reached"
    if isinstance(error, ServerError):
        return {503: "Gemini is overloaded", 504: "Gemini timed out"}.get(error.status_code or 0,
                                                                          f"Gemini failed ({error.status_code})")
    if isinstance(error, ServiceTimeoutError):
        return "No answer in time"
    return "The connection failed"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff: at most `max_attempts` sends and `max_total_wait_s` seconds of waiting."""

    max_attempts: int = 5
    max_total_wait_s: float = 120.0
    base_delay_s: float = 1.0
    max_delay_s: float = 60.0
    retry_sent_timeouts: bool = False  # --retry-timeouts / NANOBANANA_RETRY_TIMEOUTS: may pay twice

    def backoff(self, attempt: int, rng: random.Random | None = None) -> float:
        """Wait after failed attempt number `attempt` (1-based): half fixed, half random, doubling each time.

        The ranges [e/2, e] for e = base * 2**(attempt-1) never overlap downwards, so waits grow even with jitter.
        """
        ceiling = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        jitter = rng.uniform(0, ceiling / 2) if rng is not None else random.uniform(0, ceiling / 2)
        return ceiling / 2 + jitter

    def next_delay(self, error: StudioError, attempt: int, waited_s: float,
                   rng: random.Random | None = None) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up and report `error`."""
        if not is_retryable(error, retry_sent_timeouts=self.retry_sent_timeouts) or attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt, rng)
        server_wait = getattr(error, "retry_after_s", None)
        if server_wait is not None:  # the server knows best; a little jitter keeps parallel callers apart
            delay = server_wait + (rng or random).uniform(0, min(1.0, server_wait * 0.1 + 0.1))
        if waited_s + delay > self.max_total_wait_s:
            return None
        return delay
