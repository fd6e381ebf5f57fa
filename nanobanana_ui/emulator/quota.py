"""Emulator quota: the server-side requests-per-window limit, counted by arrival time as Google's servers count."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any


def _left(newer: float, older: float, window_s: float) -> bool:
    """Whether `older` is outside a window of `window_s` seconds that ends at `newer` (windows are half-open)."""
    return newer - older >= window_s  # the one comparison both the server and busiest_window use


def check_rate_limit(value: int | None) -> int | None:
    """A valid rate_limit: None (no limit) or a positive int."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"rate_limit must be None or a positive int, not {value!r}")
    return value


def check_rate_window(value: float) -> float:
    """A valid rate_window_s: a positive number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"rate_window_s must be a positive number of seconds, not {value!r}")
    return float(value)


class Setting:
    """A settable attribute whose every assignment, the constructor's too, goes through `check`."""

    def __init__(self, check: Callable[[Any], Any]) -> None:
        self._check = check
        self.__doc__ = check.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        return self if obj is None else getattr(obj, self._slot)

    def __set__(self, obj: object, value: Any) -> None:
        setattr(obj, self._slot, self._check(value))


def busiest_window(times: Sequence[float], window_s: float) -> int:
    """The largest number of timestamps inside any half-open window [s, s + window_s).

    Timestamps exactly `window_s` apart never share a window: busiest_window([0, 1.0], 1.0) == 1.
    """
    if window_s <= 0:
        raise ValueError(f"window_s must be positive, not {window_s!r}")
    ordered = sorted(times)
    best = start = 0
    for end, newest in enumerate(ordered):
        while _left(newest, ordered[start], window_s):
            start += 1
        best = max(best, end - start + 1)
    return best


def format_delay(seconds: float) -> str:
    """A RetryInfo retryDelay like "12.77s", rounded UP to the hundredth so waiting that long is always enough."""
    return f"{max(math.ceil(seconds * 100), 1) / 100:.2f}s"


class ArrivalWindow:
    """Arrival times of the requests that counted toward the limit, oldest first (callers hold the emulator's lock)."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def admit(self, now: float, limit: int, window_s: float) -> float | None:
        """Count an arrival at `now` and return None, or refuse it and return the seconds until a slot frees.

        A refused arrival is NOT counted: like the real API, we assume a request answered 429 consumes no quota,
        so a client that keeps retrying is let in as soon as the window has room again.
        `now` must never go backwards between calls (the emulator stamps arrivals under its lock).
        """
        while self._times and _left(now, self._times[0], window_s):
            self._times.popleft()
        if len(self._times) < limit:
            self._times.append(now)
            return None
        # The wait until enough of the oldest counted arrivals leave the window for one more to fit (limit may
        # have been lowered since they were counted, so more than one may have to leave).
        return self._times[len(self._times) - limit] + window_s - now

    def clear(self) -> None:
        """Forget every counted arrival."""
        self._times.clear()
