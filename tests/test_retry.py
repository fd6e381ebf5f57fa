"""The retry policy as pure functions: what is retried, and how the waits grow and stay bounded."""

from __future__ import annotations

import random

import pytest

from nanobanana_ui.domain import errors
from nanobanana_ui.quota.retry import RetryPolicy, is_retryable

RETRIED = [
    errors.RateLimitError("per minute", retry_after_s=3, quota_id="GenerateRequestsPerMinutePerProjectPerModel"),
    errors.RateLimitError("no quota id"),
    errors.ServerError("internal", status_code=500),
    errors.ServerError("bad gateway", status_code=502),
    errors.ServerError("overloaded", status_code=503),
    errors.ServerError("deadline", status_code=504),
    errors.ServiceTimeoutError("slow"),
    errors.NetworkError("dropped"),
]
NEVER = [
    errors.RateLimitError("per day", quota_id="GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
    errors.BudgetExceededError("our own budget"),
    errors.BadRequestError("400"),
    errors.InvalidKeyError("401"),
    errors.PermissionDeniedError("403"),
    errors.ModelNotFoundError("404"),
    errors.PromptBlockedError("blocked", reason="SAFETY"),
    errors.ImageWithheldError("withheld", reason="IMAGE_SAFETY"),
    errors.TextOnlyError("words", text="words"),
    errors.ServerError("not implemented", status_code=501),
    errors.BadResponseError("garbage"),
    errors.InputError("bad input"),
]


@pytest.mark.parametrize("error", RETRIED, ids=lambda e: e.message)
def test_transient_failures_are_retried(error):
    assert is_retryable(error)
    assert RetryPolicy().next_delay(error, attempt=1, waited_s=0) is not None


@pytest.mark.parametrize("error", NEVER, ids=lambda e: e.message)
def test_permanent_failures_are_never_retried(error):
    assert not is_retryable(error)
    assert RetryPolicy().next_delay(error, attempt=1, waited_s=0) is None


def test_backoff_grows_even_with_jitter():
    policy = RetryPolicy(max_attempts=8, max_total_wait_s=1e9, max_delay_s=1e9)
    for seed in range(200):
        rng = random.Random(seed)
        waits = [policy.backoff(attempt, rng) for attempt in range(1, 8)]
        assert waits == sorted(waits)
        assert waits[0] >= 0.5 and waits[-1] <= 64


def test_jitter_spreads_parallel_callers():
    waits = {round(RetryPolicy().backoff(3, random.Random(seed)), 6) for seed in range(20)}
    assert len(waits) > 15


def test_the_servers_wait_is_honoured():
    error = errors.RateLimitError("429", retry_after_s=17.0)
    delays = [RetryPolicy().next_delay(error, 1, 0, random.Random(seed)) for seed in range(50)]
    assert all(17.0 <= d <= 18.0 for d in delays)


def test_attempts_and_total_wait_are_bounded():
    error = errors.ServerError("503", status_code=503)
    policy = RetryPolicy(max_attempts=3, max_total_wait_s=10)
    assert policy.next_delay(error, attempt=2, waited_s=0) is not None
    assert policy.next_delay(error, attempt=3, waited_s=0) is None  # three sends were made: stop
    assert policy.next_delay(errors.RateLimitError("429", retry_after_s=9), attempt=1, waited_s=2) is None
