"""The Runner's visitor side: who the visitor is, their key's Studio, their limits, and their fair turn in the gate."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import gradio as gr

from ..domain.errors import NetworkError, ServiceTimeoutError, StudioError
from ..service.fairness import FairGate
from ..service.studio import Studio
from ..service.visitors import KeyRing, VisitorLimits
from .text import PUBLIC_METER, daily_meter

__all__ = ["UNREACHABLE", "RunnerBase", "no_owner", "studio_errors", "visitor_message", "visitor_owner"]

UNREACHABLE = ("The image service cannot be reached right now (the request was retried and still failed). "
               "Please try again in a few minutes.")


def visitor_message(error: StudioError, public: bool) -> str:
    """The message a visitor sees: the service's, except that a public demo's visitors, who cannot fix the
    server's network or settings, are told the service is unreachable (the log keeps the details)."""
    if public and isinstance(error, (NetworkError, ServiceTimeoutError)):
        return UNREACHABLE
    return error.message


@contextmanager
def studio_errors(public: bool = False) -> Iterator[None]:
    """Turn a StudioError into gr.Error with the service's message: the one place the page reports failures."""
    try:
        yield
    except StudioError as error:
        raise gr.Error(visitor_message(error, public), print_exception=False) from None


def no_owner(request: gr.Request | None) -> str | None:
    """A private install: every visitor sees every entry."""
    return None


def visitor_owner(request: gr.Request | None) -> str | None:
    """Public mode: the logged-in user's name when there is a login, else the browser session's id."""
    if request is None:
        return None
    username = getattr(request, "username", None)
    if username:
        return f"user:{username}"
    session = getattr(request, "session_hash", None)
    return f"session:{session}" if session else None


class RunnerBase:
    """The visitor side of the Runner (ui.runner): picks the visitor's Studio (their own key's, or the host's),
    counts their requests against their limits and gives each operation its fair turn."""

    def __init__(self, studio: Studio, keys: KeyRing | None = None,
                 owner_of: Callable[[gr.Request | None], str | None] = no_owner) -> None:
        self.studio = studio
        self.keys = keys if keys is not None else KeyRing(studio)  # (an empty KeyRing is falsy)
        self.owner_of = owner_of
        settings = studio.settings
        self.limits = VisitorLimits(settings.visitor_rpm) if settings.public else None
        # Many visitors at once (docs/crowds.md): each visitor's own cap in public mode; a private install's
        # visitors are its owner's team, limited only by the global cap.
        self.gate = FairGate(settings.concurrency,
                             settings.visitor_concurrency if settings.public else settings.concurrency,
                             settings.visitor_queue if settings.public else settings.queue_size, settings.queue_size)

    @property
    def events(self) -> dict[str, Any]:
        """The generation events' Gradio queue group: it admits everything the gate may hold (running and waiting),
        and the gate (see turn()) decides who runs, fairly, so Gradio's FIFO never puts a flood before a visitor."""
        settings = self.studio.settings
        return {"concurrency_limit": settings.concurrency + settings.queue_size, "concurrency_id": "studio"}

    @property
    def public(self) -> bool:
        """True in public mode."""
        return self.studio.settings.public

    def meter(self) -> str:
        """Today's requests against the budget, cost and cache savings on this data directory."""
        if self.public:
            return PUBLIC_METER.format(rpm=self.studio.settings.visitor_rpm)
        return daily_meter(self.studio.usage_today(), self.studio.offline)

    def studio_for(self, api_key: str | None, request: gr.Request | None = None) -> Studio:
        """The Studio for this visitor's key (or the host's); a clear message, and nothing sent, without one."""
        with studio_errors(self.public):
            return self.keys.studio_for(api_key, getattr(request, "session_hash", None))

    def visitor(self, request: gr.Request | None) -> str:
        """Whose private folder: the owner id, else the session (a privacy boundary, not the fairness identity)."""
        return self.owner_of(request) or visitor_owner(request) or "anonymous"

    def identity(self, request: gr.Request | None, studio: Studio | None = None) -> str:
        """Who the visitor is for caps and budgets: their own key (the Studio they use, when not the host's), else
        their login, else their client address; never the client-chosen session id (DESIGN.md)."""
        own_key = studio is not None and studio is not self.keys.host
        return self.keys.visitor_of(studio.settings.api_key if own_key and studio else None, request)

    def count_requests(self, request: gr.Request | None, count: int, studio: Studio | None = None) -> None:
        """Public mode: the visitor's own rate limit (on top of the shared one); refused at once when over it."""
        if self.limits is not None:
            with studio_errors(self.public):
                self.limits.take(self.identity(request, studio or self.studio), count)

    @asynccontextmanager
    async def turn(self, studio: Studio, request: gr.Request | None,
                   progress: Callable[..., Any]) -> AsyncIterator[None]:
        """One operation's turn: the visitor's Studio held open throughout, and a fair slot in the gate (a visitor
        over their cap is told their earlier requests are still running; a full queue refuses at once)."""
        release = studio.hold()
        try:
            visitor = self.identity(request, studio)
            with studio_errors(self.public):
                await self.gate.enter(visitor, lambda line: progress(0.0, desc=line))
            try:
                yield
            finally:
                self.gate.leave(visitor)
        finally:
            release()

    def out_dir(self, request: gr.Request | None) -> Path | None:
        """Public mode: the visitor's outputs go to a folder of their own whose name nobody else can guess (Gradio
        serves the outputs folder); None (the usual outputs folder) on a private install."""
        if not self.public:
            return None
        return self.studio.settings.output_dir / self.keys.private_folder(self.visitor(request))

    def forget(self, request: gr.Request) -> None:
        """The visitor's page closed: their key's client is closed (unless another page of theirs uses it)."""
        self.keys.forget_session(getattr(request, "session_hash", None))

    def kit_names(self, request: gr.Request | None = None) -> list[str]:
        """The visitor's kits (public mode: their own; else the data directory's), newest version of each."""
        return [name for name, _ in self.studio.kits.names(owner=self.owner_of(request))]
