"""The quota clock: Gemini counts daily quotas in Pacific days, which reset at midnight Pacific time.

A leaf module (standard library only), so both errors.py (messages about a spent daily quota) and limits.py (the
daily budget) can use it without importing each other.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = ["PACIFIC", "duration_until", "next_pacific_midnight", "pacific_day", "time_to_pacific_midnight"]

PACIFIC = ZoneInfo("America/Los_Angeles")  # Gemini's daily quotas reset at midnight Pacific time


def pacific_day(now: datetime | None = None) -> str:
    """Today's date in Pacific time, as Gemini counts daily quotas (e.g. "2026-11-27")."""
    return (now or datetime.now(PACIFIC)).astimezone(PACIFIC).date().isoformat()


def next_pacific_midnight(now: datetime | None = None) -> datetime:
    """When today's daily quota resets: the next midnight in Pacific time."""
    local = (now or datetime.now(PACIFIC)).astimezone(PACIFIC)
    return datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=PACIFIC)


def duration_until(when: datetime, now: datetime) -> str:
    """The time from `now` to `when` in whole minutes, like "5 h 12 min" (never negative)."""
    minutes = max(int((when - now).total_seconds() // 60), 0)
    return f"{minutes // 60} h {minutes % 60} min"


def time_to_pacific_midnight(now: datetime | None = None) -> str:
    """How long until Gemini's daily quotas reset, like "5 h 12 min"."""
    now = now or datetime.now(PACIFIC)
    return duration_until(next_pacific_midnight(now), now)
