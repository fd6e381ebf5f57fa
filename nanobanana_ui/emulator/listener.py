"""Emulator listener: the threaded HTTP server and its handler, which passes each request on and writes the reply."""

from __future__ import annotations

import json
import shutil
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .types import error_reply

__all__ = ["EmulatorHandler", "EmulatorServer"]


class EmulatorServer(ThreadingHTTPServer):
    """The emulator's threaded HTTP server (its `emulator` attribute is the GeminiEmulator that answers)."""

    daemon_threads = True
    request_queue_size = 128  # the default 5 drops SYNs of a burst: the client resends a second later

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet about a connection that failed."""
        pass  # clients that time out or hang up are part of the job


class EmulatorHandler(BaseHTTPRequestHandler):
    """One connection: reads each request, has the emulator answer it and writes the reply (or hangs up)."""

    protocol_version = "HTTP/1.1"
    server_version = "GeminiEmulator/1.0"
    # Headers and body go out in two writes; with Nagle on, keep-alive replies stall ~40 ms on delayed ACKs.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Log nothing."""
        pass

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        received_at = time.monotonic()  # the whole request is here: it counts from now, however long parsing takes
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            reply = self.server.emulator._handle(  # type: ignore[attr-defined]
                self.command, self.path, headers, raw, received_at)
        except Exception as exc:  # noqa: BLE001 - a bug in the emulator should still look like an HTTP answer
            reply = error_reply(500, "INTERNAL", f"Emulator error: {exc!r}")
        if reply is None:  # Fault.drop_connection: hang up without a word
            self.close_connection = True
            return
        code, extra, body = reply
        if isinstance(body, Path):  # a file (batch results): streamed in chunks, never read whole
            self._send_file(code, extra, body)
            return
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", extra.pop("Content-Type", "application/json; charset=UTF-8"))
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_file(self, code: int, extra: dict[str, str], path: Path) -> None:
        self.send_response(code)
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()
        with open(path, "rb") as handle:
            shutil.copyfileobj(handle, self.wfile, 1024 * 1024)

    do_GET = do_POST = do_DELETE = _serve
