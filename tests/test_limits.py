"""Limits in action: the shared rate limiter, retries against the emulator, de-duplication and the daily budget."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from conftest import TEST_KEY, in_studio
from servers import ROOT, app_env

from nanobanana_ui.domain import errors
from nanobanana_ui.domain.config import Settings
from nanobanana_ui.domain.request import Mode
from nanobanana_ui.emulator import Fault
from nanobanana_ui.quota.limits import DailyBudget, RateLimiter, next_pacific_midnight, pacific_day
from nanobanana_ui.quota.retry import RetryPolicy

FAST_RETRIES = RetryPolicy(max_attempts=5, max_total_wait_s=30, base_delay_s=0.05)


# The rate limiter on its own.

def test_limiter_never_exceeds_the_limit_in_any_window_and_serves_in_order():
    limiter = RateLimiter(3, window_s=0.4)
    started, finished, order = [], [], []

    async def call(n):
        async with await limiter.acquire():
            started.append(time.monotonic())
            order.append(n)
            await asyncio.sleep(0.05)
        finished.append(time.monotonic())

    async def main():
        tasks = []
        for n in range(8):
            tasks.append(asyncio.create_task(call(n)))
            await asyncio.sleep(0)  # arrive in order
        await asyncio.gather(*tasks)

    asyncio.run(main())
    # First come, first served: each window's slots go to the longest waiters (within a wave, all start at once).
    assert [set(order[:3]), set(order[3:6]), set(order[6:])] == [{0, 1, 2}, {3, 4, 5}, {6, 7}]
    for i in range(3, 8):  # the (i)th call waits until call i-3 was answered a whole window ago
        assert started[i] >= sorted(finished)[i - 3] + 0.4 - 0.01


def test_limiter_uses_the_quota_in_full_at_once_and_says_how_long_a_wait_is():
    limiter = RateLimiter(2, window_s=0.5)
    waits = []

    async def main():
        begun = time.monotonic()
        for _ in range(2):
            async with await limiter.acquire(on_wait=waits.append):
                pass
        assert waits == []  # no pacing while the quota is free (checked by event, not by time: CI may be loaded)
        async with await limiter.acquire(on_wait=waits.append):
            return time.monotonic() - begun

    assert asyncio.run(main()) >= 0.45
    assert len(waits) == 1 and 0 < waits[0] <= 0.5  # told how long: at most the window


def test_a_slow_call_frees_its_slot_a_window_after_it_was_sent_not_after_its_answer():
    limiter = RateLimiter(1, window_s=0.5)

    async def main():
        begun = time.monotonic()
        async with await limiter.acquire() as slot:
            slot.mark_sent(request_bytes=0, round_trip_s=0.0)  # the server has it within the 0.1 s allowance
            await asyncio.sleep(0.4)  # the model takes its time
        async with await limiter.acquire():
            return time.monotonic() - begun

    assert 0.55 <= asyncio.run(main()) < 0.8  # not 0.9: the answer's lateness does not hold the quota


def test_the_send_margin_grows_with_the_body_and_the_round_trip():
    limiter = RateLimiter(1, window_s=0.2)

    async def main():
        begun = time.monotonic()
        async with await limiter.acquire() as slot:
            slot.mark_sent(request_bytes=200_000, round_trip_s=0.1)  # 0.1 + 0.2 + 0.2 s before it surely arrived
        async with await limiter.acquire():
            return time.monotonic() - begun

    assert asyncio.run(main()) >= 0.2  # the answer came at once: the earlier bound (the answer) wins


def test_a_cancelled_waiter_leaves_the_queue():
    limiter = RateLimiter(1, window_s=0.3)

    async def main():
        async with await limiter.acquire():
            pass
        waiting = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        slot = await asyncio.wait_for(limiter.acquire(), timeout=2)  # not stuck behind the cancelled ticket
        async with slot:
            pass

    asyncio.run(main())


def _cancelled_just_as_granted(limiter: RateLimiter, *, twice: bool = False) -> int:
    """The sender waits for a slot with `stop_sending` set up; it is cancelled in the very step the slot is granted."""
    from nanobanana_ui.service.sending import GuardedSender, stop_sending

    real_acquire = limiter.acquire

    async def main() -> int:
        held = await limiter.acquire()  # the only slot: the sender has to wait
        held.give_back()
        outer: asyncio.Task[object] | None = None

        async def granted_then_cancelled(on_wait=None):
            slot = await real_acquire(on_wait)
            assert outer is not None
            outer.cancel()  # the caller gives up while the slot is being handed over: deterministic, no sleep
            if twice:
                asyncio.get_running_loop().call_soon(outer.cancel)  # and once more while it cleans up
            return slot

        limiter.acquire = granted_then_cancelled  # type: ignore[method-assign]
        stop_sending.set(asyncio.Event())
        outer = asyncio.create_task(GuardedSender._acquire(limiter, lambda seconds: None))
        await asyncio.sleep(0.05)
        async with held:  # returned: the slot goes to the waiting sender
            pass
        with pytest.raises(asyncio.CancelledError):
            await outer
        await asyncio.sleep(0.05)
        return limiter.used()

    return asyncio.run(main())


@pytest.mark.parametrize("twice", [False, True], ids=["cancelled", "cancelled-twice"])
def test_a_slot_granted_to_a_caller_cancelled_that_moment_is_given_back(twice):
    assert _cancelled_just_as_granted(RateLimiter(1, window_s=60), twice=twice) == 0


@pytest.mark.parametrize("twice", [False, True], ids=["cancelled", "cancelled-twice"])
def test_a_shared_slot_granted_to_a_caller_cancelled_that_moment_is_given_back(tmp_path, twice):
    from nanobanana_ui.quota.shared_limits import SharedRateLimiter

    limiter = SharedRateLimiter(1, 60.0, tmp_path / "quota" / "rate-cancel.json")
    assert _cancelled_just_as_granted(limiter, twice=twice) == 0


def test_a_slot_that_arrives_after_the_stop_is_given_back_once():
    from nanobanana_ui.service.sending import GuardedSender, NotSent, stop_sending

    class Stubborn(RateLimiter):
        """Grants at once, then finishes with the slot even when cancelled (as a wait_for can swallow a cancel)."""

        async def acquire(self, on_wait=None):
            slot = await super().acquire(on_wait)
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                return slot
            return slot

    limiter = Stubborn(1, window_s=60)

    sent = []

    async def generate(request, *, observer=None):
        sent.append(request)

    async def main() -> None:
        stop = asyncio.Event()
        stop_sending.set(stop)
        asyncio.get_running_loop().call_later(0.05, stop.set)
        sender = GuardedSender(generate, policy=RetryPolicy(max_attempts=1), limiter=limiter)
        with pytest.raises(NotSent):
            await sender.send(object())  # type: ignore[arg-type]

    asyncio.run(main())
    assert sent == [] and limiter._in_flight == 0 and limiter.used() == 0  # returned once, not twice


# Retries, through the real SDK and the emulator.

def test_a_503_storm_is_retried_with_growing_waits_then_succeeds(settings, emulator):
    emulator.fail_next(Fault.overloaded(), Fault.overloaded(), Fault.overloaded())
    lines = []
    retrying = Settings(**{**settings.__dict__, "max_attempts": 5})
    result = in_studio(retrying, lambda s: s.generate("storm", on_event=lines.append), retry_policy=FAST_RETRIES)
    assert result.images and len(emulator.generate_requests) == 4
    announced = [float(re.search(r"retrying in ([0-9.]+) s", line).group(1)) for line in lines]
    assert announced == sorted(announced) and announced[-1] > announced[0]  # the waits grow
    times = [r.received_at for r in emulator.generate_requests]
    gaps = [later - earlier for earlier, later in zip(times, times[1:], strict=False)]
    assert all(gap >= wait - 0.05 for gap, wait in zip(gaps, announced, strict=True))  # and are really waited
    assert [line.split(";")[0] for line in lines] == ["Gemini is overloaded"] * 3
    assert lines[0].endswith("(attempt 2 of 5)") and lines[-1].endswith("(attempt 4 of 5)")


def test_attempts_are_bounded_and_the_last_error_is_reported(settings, emulator):
    emulator.fail_next(*[Fault.overloaded()] * 10)
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.05)
    with pytest.raises(errors.ServerError, match="overloaded"):
        in_studio(settings, lambda s: s.generate("storm"), retry_policy=policy)
    assert len(emulator.generate_requests) == 3


def test_a_per_minute_429_waits_as_long_as_the_server_says(settings, emulator):
    emulator.fail_next(Fault.rate_limit(retry_delay="0.6s"))
    result = in_studio(settings, lambda s: s.generate("patient"), retry_policy=FAST_RETRIES)
    first, second = emulator.generate_requests
    assert result.images and second.received_at - first.received_at >= 0.6


@pytest.mark.parametrize("fault, error", [
    (Fault.daily_quota(), errors.RateLimitError),
    (Fault.bad_key(), errors.InvalidKeyError),
    (Fault.permission_denied(), errors.PermissionDeniedError),
    (Fault.blocked("SAFETY"), errors.PromptBlockedError),
    (Fault.no_image("IMAGE_SAFETY"), errors.ImageWithheldError),
])
def test_permanent_failures_are_sent_once(settings, emulator, fault, error):
    emulator.fail_next(fault, fault)
    with pytest.raises(error):
        in_studio(settings, lambda s: s.generate("once"), retry_policy=FAST_RETRIES)
    assert len(emulator.generate_requests) == 1


def test_mixed_script_each_request_ends_in_one_outcome(settings, emulator):
    emulator.delay_s = 0.05
    emulator.fail_next(Fault.overloaded(), Fault.blocked("OTHER"), Fault.server_error(500), Fault.drop_connection())

    async def scenario(studio):
        return await studio.run_variations(studio.build_request(Mode.GENERATE, "mixed"), 4)

    outcomes = in_studio(settings, scenario, retry_policy=FAST_RETRIES)
    blocked = [o for o in outcomes if isinstance(o, errors.PromptBlockedError)]
    assert len(blocked) == 1 and sum(not isinstance(o, Exception) for o in outcomes) == 3
    assert len(emulator.generate_requests) == 7  # 4 first sends + 3 retries of the transient failures


# De-duplication.

def test_identical_requests_in_flight_make_one_call(settings, emulator):
    emulator.delay_s = 0.3

    async def scenario(studio):
        return await asyncio.gather(studio.generate("double click"), studio.generate("double click"))

    first, second = in_studio(settings, scenario)
    assert len(emulator.generate_requests) == 1
    assert first.images[0].sha256 == second.images[0].sha256


# The rate limit as the server counts it.

def test_parallel_requests_and_their_retries_never_exceed_the_servers_window(settings, emulator):
    from nanobanana_ui.emulator import busiest_window

    emulator.rate_limit, emulator.rate_window_s = 3, 1.0
    emulator.fail_next(Fault.overloaded(), Fault.server_error(500))  # two retries, which count too
    limited = Settings(**{**settings.__dict__, "rpm": 3, "rate_window_s": 1.0, "max_attempts": 3})

    async def scenario(studio):
        return await studio.run_variations(studio.build_request(Mode.GENERATE, "eight"), 8)

    outcomes = in_studio(limited, scenario, retry_policy=RetryPolicy(max_attempts=3, base_delay_s=0.05))
    assert all(not isinstance(o, Exception) for o in outcomes)
    seen = emulator.generate_requests
    assert len(seen) == 10 and sorted(r.status for r in seen) == [200] * 8 + [500, 503]  # no 429
    assert busiest_window([r.received_at for r in seen], 1.0) <= 3


def test_the_backend_tells_its_observer_when_the_body_left_and_the_token_never_reaches_the_server(emulator):
    from nanobanana_ui.backends.gemini import GeminiBackend
    from nanobanana_ui.service.validation import build_request

    told: list[tuple[int, float]] = []

    class Observer:  # what the rate limiter's slot is to the backend
        def mark_sent(self, request_bytes=0, round_trip_s=0.0):
            told.append((request_bytes, round_trip_s))

    async def scenario():
        backend = GeminiBackend(api_key=TEST_KEY, base_url=emulator.base_url, timeout_s=10)
        try:
            request = build_request(Mode.GENERATE, "observed", (), model="gemini-2.5-flash-image", options=None)
            await backend.generate(request, observer=Observer())
            await backend.generate(request)  # no observer: nobody is told, nothing extra is sent
        finally:
            await backend.aclose()

    asyncio.run(scenario())
    seen = emulator.generate_requests
    assert len(seen) == 2 and len(told) == 1
    size, round_trip = told[0]
    assert size == int(seen[0].headers["content-length"]) > 0 and 0 < round_trip < 5  # a new connection was timed
    assert not any(name.startswith("x-nanobanana") for r in seen for name in r.headers)
    assert [r.path for r in seen] == ["/v1beta/models/gemini-2.5-flash-image:generateContent"] * 2  # options kept
    assert seen[0].headers["x-goog-api-key"] == TEST_KEY and seen[0].generation_config == seen[1].generation_config


# The daily budget.

def test_budget_refuses_before_sending_and_survives_a_restart(settings, emulator):
    budgeted = Settings(**{**settings.__dict__, "rpd": 2})
    in_studio(budgeted, lambda s: s.generate("one"))
    in_studio(budgeted, lambda s: s.generate("two"))
    with pytest.raises(errors.BudgetExceededError, match=r"budget of 2 requests \(NANOBANANA_RPD\).*midnight Pacific"):
        in_studio(budgeted, lambda s: s.generate("three"))  # a new Studio: the count is on disk
    assert len(emulator.generate_requests) == 2
    assert in_studio(budgeted, lambda s: s.generate("one")).cached  # the cache still answers, for free


@pytest.mark.slow
def test_budget_is_shared_by_concurrent_processes(emulator, tmp_path):
    env = app_env(GEMINI_API_KEY=TEST_KEY, NANOBANANA_BASE_URL=emulator.base_url, NANOBANANA_HOME=str(tmp_path),
                  NANOBANANA_RPD="5", PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "nanobanana_ui", "generate", "--count", "4", "--json"]
    runs = [subprocess.Popen([*command, f"process {n}"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for n in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    records = [json.loads(line) for out, _ in outputs for line in out.splitlines()]
    assert len(emulator.generate_requests) == 5
    assert sum("path" in r for r in records) == 5 and sum(r.get("error_type") == "BudgetExceededError"
                                                         for r in records) == 3
    assert {run.returncode for run in runs} <= {0, 4}


def test_days_are_counted_in_pacific_time(tmp_path):
    now = [datetime(2026, 11, 28, 7, 59, tzinfo=UTC)]  # 23:59 on the 27th in Los Angeles (PST)
    budget = DailyBudget(tmp_path, limit=1, clock=lambda: now[0])
    try:
        assert pacific_day(now[0]) == "2026-11-27"
        assert next_pacific_midnight(now[0]) == datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
        budget.reserve()
        with pytest.raises(errors.BudgetExceededError, match="0 h 1 min from now"):
            budget.reserve()
        now[0] = datetime(2026, 11, 28, 8, 1, tzinfo=UTC)
        budget.reserve()  # a new Pacific day
        assert budget.usage().requests == 1 and budget.usage().day == "2026-11-28"
    finally:
        budget.close()


def test_meter_counts_cost_and_savings_today(settings, emulator):
    async def scenario(studio):
        miss = await studio.generate("metered")
        hit = await studio.generate("metered")
        return miss, hit, studio.usage_today()

    miss, hit, usage = in_studio(settings, scenario)
    assert usage.requests == 1 and usage.budget == 1500
    assert usage.cost_usd == pytest.approx(miss.cost_usd, abs=1e-6)
    assert usage.saved_usd == pytest.approx(hit.saved_usd, abs=1e-6) and hit.saved_usd > 0
