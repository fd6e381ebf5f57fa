"""What the HTTP transport tells the rate limiter: when a request's last byte left, through an explicit observer.

The sender hands a `SendObserver` (the rate limiter's slot) to the backend with each request; the backend gives the
request a `SendTracer` token header, and the tracer's httpx hook (which removes the header before anything is sent)
follows httpcore's trace events for that request and calls the observer once the body is written.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

__all__ = ["SendObserver", "SendTracer"]

_TOKEN_HEADER = "x-nanobanana-send-token"  # never leaves this process: the hook removes it


class SendObserver(Protocol):
    """Told when a request's body was fully written to the socket (for the rate limiter's count of arrivals)."""

    def mark_sent(self, request_bytes: int = 0, round_trip_s: float = 0.0) -> None:
        """The request's last byte left: its size, and the slowest TCP round trip measured to the API so far."""


class SendTracer:
    """One backend's link from its requests to their observers, and the slowest connect round trip it has seen."""

    def __init__(self) -> None:
        self._observers: dict[str, SendObserver] = {}
        self.slowest_round_trip_s = 0.0  # connecting takes one round trip: measured on every new connection

    @contextmanager
    def observe(self, observer: SendObserver) -> Iterator[dict[str, str]]:
        """Headers that tie one request to `observer` while the block runs (pass them with that request only)."""
        token = uuid.uuid4().hex
        self._observers[token] = observer
        try:
            yield {_TOKEN_HEADER: token}
        finally:
            self._observers.pop(token, None)

    def event_hooks(self) -> dict[str, list[Callable[[Any], Awaitable[None]]]]:
        """The httpx `event_hooks` argument that installs the tracer on an async client."""
        return {"request": [self._on_request]}

    async def _on_request(self, request: Any) -> None:
        """httpx request hook: drop the token header and have the transport report this request's progress."""
        token = request.headers.pop(_TOKEN_HEADER, None)
        observer = self._observers.get(token) if token else None
        if observer is None:
            return
        size = int(request.headers.get("content-length") or 0)
        connecting: list[float] = []

        async def trace(event: str, info: dict[str, Any]) -> None:
            # httpcore's trace names: "connection.connect_tcp.*", then "http11.send_request_body.*" (or http2.*).
            if event == "connection.connect_tcp.started":
                connecting.append(time.monotonic())
            elif event == "connection.connect_tcp.complete" and connecting:
                self.slowest_round_trip_s = max(self.slowest_round_trip_s, time.monotonic() - connecting[0])
            elif event.endswith("send_request_body.complete"):
                observer.mark_sent(size, self.slowest_round_trip_s)

        request.extensions = {**request.extensions, "trace": trace}
