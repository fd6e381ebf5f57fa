"""Release a visitor's page session from memory when they leave, and launch() options that bound the rest.

Gradio keeps a SessionState (a copy of the whole page's config, several hundred KB here, plus its gr.State values)
for every session that made a request, until it is the least recently used of `state_session_capacity` sessions. A
visitor who closes the page only marks theirs closed. The reaper drops it a short grace period after the page
went (a reload within the grace keeps its panel), unless an event of that session is still pending.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import gradio as gr

from ..domain.config import Settings

__all__ = ["BATCH_RUNS", "PAGE_EVENTS", "SESSION_GRACE_S", "SessionReaper", "launch_options"]

log = logging.getLogger(__name__)
SESSION_GRACE_S = 300.0  # a closed page's session is dropped this long after it went
PAGE_EVENTS = 32  # threads beyond the generation pool: the model list, History pages, uploads, postprocessing
BATCH_RUNS = 4  # batch runs at once on the page (long runs: they must not take the generation pool's slots)


def launch_options(settings: Settings) -> dict[str, Any]:
    """demo.launch() options that size Gradio to the settings: its threads (Gradio's default of 40 would quietly
    cap the generation pool), the sessions it keeps in memory, and the upload limit."""
    return {"max_threads": settings.concurrency + settings.queue_size + PAGE_EVENTS,
            "state_session_capacity": settings.max_sessions, "max_file_size": settings.max_file_size}


class SessionReaper:
    """Drops closed sessions' state from Gradio's memory after a grace period (see the module's docstring)."""

    def __init__(self, demo: gr.Blocks, grace_s: float = SESSION_GRACE_S) -> None:
        self.demo, self.grace_s = demo, grace_s
        self.scheduled: set[str] = set()  # sessions with a drop pending (bounded by the sessions Gradio keeps)

    def closed(self, request: gr.Request | None) -> None:
        """The page of this request's session went: schedule its state's release."""
        session = getattr(request, "session_hash", None)
        if not session or session in self.scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.scheduled.add(session)
        loop.call_later(self.grace_s, self.drop, session)

    def drop(self, session: str) -> bool:
        """Forget a closed session's state now, unless it came back or still has an event pending (then later)."""
        holder = getattr(self.demo, "state_holder", None)
        queue = getattr(self.demo, "_queue", None)
        data = getattr(holder, "session_data", None)
        if holder is None or data is None:
            self.scheduled.discard(session)
            return False
        state = data.get(session)
        if state is None or not getattr(state, "is_closed", False):
            self.scheduled.discard(session)  # gone already, or the page is back
            return False
        if getattr(queue, "pending_event_ids_session", {}).get(session):
            asyncio.get_running_loop().call_later(self.grace_s, self.drop, session)
            return False
        with holder.lock:
            data.pop(session, None)
            holder.time_last_used.pop(session, None)
        self.scheduled.discard(session)
        return True
