"""Emulator server: the HTTP side that records each request, checks key and model, consumes faults and routes it."""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

from ..domain.models import get_model, known_models
from ..domain.text_models import text_models
from .answers import answer, fault_content, model_entry, usage_metadata
from .batches import BatchService
from .cutout import Cutouts
from .faults import UNREGISTERED, Fault, fails, fault_reply, not_found_reply
from .listener import EmulatorHandler, EmulatorServer
from .quota import ArrivalWindow, Setting, check_rate_limit, check_rate_window, format_delay
from .text import is_text_model, text_answer
from .types import (
    API_PATH,
    JsonObject,
    RecordedRequest,
    Reply,
    decode_b64,
    error_reply,
    file_data,
    inline_data,
    record_request,
    user_parts,
)
from .vertex import TokenIssuer, jpeg_output, vertex_call

DEFAULT_RECORD_LIMIT = 1000  # requests an emulator remembers for `requests` (tests read them), oldest dropped first
OFFLINE_API_KEY = "offline-emulator"  # the key the app sends to shared_emulator(), which takes any non-empty key


class GeminiEmulator:
    """A local Gemini API v1beta server (generateContent, models) that records requests and injects faults.

    With `rate_limit` set, at most that many generateContent requests are let in per `rate_window_s` seconds, counted
    by arrival in a sliding window; one more is answered 429 RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo.

    `models` are the ids it serves and lists (default: the registry's models that still exist; a shut-down id answers
    404 like Gemini). `allowed_models` maps an API key to the only models that key may use (listed and called);
    other keys may use every model. `fail_next_listing()` makes models.list() fail. `add_model()` adds a model the
    registry may not know, with any id, display name and description (it answers like an unknown model: 1K, the ten
    classic ratios).
    """

    rate_limit = Setting(check_rate_limit)  # settable at any time, like delay_s
    rate_window_s = Setting(check_rate_window)

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, models: Iterable[str] | None = None,
                 valid_keys: Iterable[str] | None = None, delay_s: float = 0.0, include_thoughts: bool = False,
                 rate_limit: int | None = None, rate_window_s: float = 60.0,
                 allowed_models: Mapping[str, Iterable[str]] | None = None,
                 record_limit: int | None = DEFAULT_RECORD_LIMIT) -> None:
        """Configure the emulator; nothing listens until start().

        `record_limit` bounds the log `requests` reads: the newest that many requests are kept (None: all, 0: none;
        `requests_seen` still counts every one), so a long-running emulator's memory stays flat.
        """
        # Default: the registry's image models that still exist, and its text models (kind: text).
        names = [*(spec.id for spec in known_models()), *(m.id for m in text_models())] if models is None else models
        self.models = tuple(dict.fromkeys(n.removeprefix("models/") for n in names))
        self.allowed_models: dict[str, tuple[str, ...]] = {
            key: tuple(m.removeprefix("models/") for m in allowed) for key, allowed in (allowed_models or {}).items()}
        self._listing_faults: list[Fault] = []
        self.model_info: dict[str, tuple[str | None, str | None]] = {}  # id -> (displayName, description)
        self.model_versions: dict[str, str] = {}  # id -> the modelVersion it answers with (a rerouted id)
        self.valid_keys = None if valid_keys is None else frozenset(valid_keys)
        self.delay_s = delay_s
        self.include_thoughts = include_thoughts
        self._address = (host, port)
        self._lock = threading.Lock()
        self._requests: deque[RecordedRequest] = deque(maxlen=record_limit)
        self.requests_seen = 0  # every request received, kept in the log or not
        self._last_arrival = 0.0  # the latest arrival stamped (monotonic clock)
        self._faults: list[Fault] = []
        self._window = ArrivalWindow()
        self.rate_limit = rate_limit
        self.rate_window_s = rate_window_s
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        # Batch Mode and the Files API (see batches.py): tests reach its clock, faults and jobs as `.batches`.
        self.batches = BatchService(base_url=lambda: self.base_url, gate=self._gate,
                                    include_thoughts=lambda: self.include_thoughts)
        self.cutouts = Cutouts()  # cut-out answers' knobs: shift the subject of a later turn, ignore the background
        self.tokens = TokenIssuer()  # POST /token: OAuth access tokens for Vertex calls (see vertex.py)

    def start(self) -> GeminiEmulator:
        """Start serving in a daemon thread (idempotent) and return self."""
        with self._lock:
            if self._server is None:
                self._server = EmulatorServer(self._address, EmulatorHandler)
                self._server.emulator = self  # type: ignore[attr-defined]
                self._stopped.clear()
                # A short poll: stop() waits up to one interval, and the tests start and stop hundreds of emulators.
                self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                                name="gemini-emulator", daemon=True)
                self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        with self._lock:
            server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            self._stopped.set()
            server.shutdown()
            server.server_close()
            if thread is not None:
                thread.join(timeout=5)

    def __enter__(self) -> GeminiEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The root URL to give the SDK as base_url, e.g. http://127.0.0.1:PORT."""
        if self._server is None:
            raise RuntimeError("GeminiEmulator is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_uri(self) -> str:
        """The OAuth token endpoint to put in a test service account's JSON file (its `token_uri`)."""
        return f"{self.base_url}/token"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the requests received so far (the newest `record_limit` of them)."""
        with self._lock:
            return list(self._requests)

    @property
    def generate_requests(self) -> list[RecordedRequest]:
        """Only the generateContent (and streamGenerateContent) requests."""
        return [r for r in self.requests if r.path.endswith((":generateContent", ":streamGenerateContent"))]

    def add_model(self, model_id: str, display_name: str | None = None, description: str | None = None) -> None:
        """Serve and list one more model, with this display name and description (None: the registry's label)."""
        model_id = model_id.removeprefix("models/")
        with self._lock:
            self.models = tuple(dict.fromkeys((*self.models, model_id)))
            self.model_info[model_id] = (display_name, description)

    def reroute(self, model_id: str, answered_by: str) -> None:
        """Answer requests for `model_id` with modelVersion `answered_by`, as Google does when it reroutes an id."""
        with self._lock:
            self.model_versions[model_id.removeprefix("models/")] = answered_by

    def shut_down(self, model_id: str) -> None:
        """Shut a model down, as Google does: it leaves the listing and generateContent answers 404 NOT_FOUND."""
        model_id = model_id.removeprefix("models/")
        with self._lock:
            self.models = tuple(m for m in self.models if m != model_id)

    def allow_models(self, api_key: str, models: Iterable[str]) -> None:
        """Let this key use (and list) only these models; the others answer 404 NOT_FOUND for it."""
        with self._lock:
            self.allowed_models[api_key] = tuple(m.removeprefix("models/") for m in models)

    def models_for(self, api_key: str | None) -> tuple[str, ...]:
        """The models this key may list and call."""
        allowed = self.allowed_models.get(api_key or "")
        return self.models if allowed is None else tuple(m for m in self.models if m in allowed)

    def fail_next_listing(self, *faults: Fault) -> None:
        """Queue faults for models.list(): each GET of the model list consumes one (a delay, a 500, a 403...)."""
        with self._lock:
            self._listing_faults.extend(faults)

    def fail_next(self, *faults: Fault) -> None:
        """Queue faults; each generateContent request consumes one as it arrives, in order, even one over the limit."""
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        """Forget recorded requests, queued faults and the arrivals counted toward rate_limit."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._listing_faults.clear()
            self._window.clear()
        self.batches.reset()
        self.cutouts.reset()

    def _handle(self, method: str, url: str, headers: dict[str, str], raw: bytes, received_at: float) -> Reply | None:
        if method == "POST" and urlsplit(url).path == "/token":
            return self.tokens.grant(raw)
        routed = vertex_call(url, headers)
        rec = record_request(method, routed[1] if routed else url, headers, raw)
        if routed is not None:
            rec.vertex = routed[0]
            self.tokens.check(rec.vertex)
        match = API_PATH.match(rec.path)
        action = match.group(3) if match else None
        generate = match is not None and method == "POST" and action in ("generateContent", "streamGenerateContent")
        with self._lock:  # stamped, recorded, given its fault and counted in one step: arrival order is one order
            # Counted from when its last byte was read (not after parsing, which a busy test process can delay), and
            # never before an arrival already counted, so the window sees arrivals in order.
            rec.received_at = max(received_at, self._last_arrival)
            self._last_arrival = rec.received_at
            self.requests_seen += 1
            if self._requests.maxlen != 0:
                self._requests.append(rec)
            fault, wait = self._arrive(rec) if generate else (None, None)
        reply: Reply | None
        try:
            if self.batches.claims(rec.path):  # batchGenerateContent, batches/..., the Files API: see batches.py
                reply = self.batches.handle(rec, method, raw)
            else:
                reply = self._route(rec, method, match, action, fault, wait)
        except Exception as exc:  # noqa: BLE001 - a bug in the emulator should still look like an HTTP answer
            reply = error_reply(500, "INTERNAL", f"Emulator error: {exc!r}")
        rec.status = 0 if reply is None else reply[0]
        rec.reply_body = reply[2] if reply is not None and isinstance(reply[2], dict) else None
        return reply

    def _arrive(self, rec: RecordedRequest) -> tuple[Fault | None, float | None]:
        """With the lock held: pop the request's fault; count it toward rate_limit, or return its wait if over.

        A fault that answers instead of the model wins and is not counted, so a test's queue plays out whatever the
        window holds; nor are requests refused for key or model counted, nor those refused for quota (see admit).
        """
        fault = self._faults.pop(0) if self._faults else None
        if self.rate_limit is None or fails(fault) or self._gate(rec) is not None:
            return fault, None
        return fault, self._window.admit(rec.received_at, self.rate_limit, self.rate_window_s)

    def _route(self, rec: RecordedRequest, method: str, match: re.Match[str] | None, action: str | None,
               fault: Fault | None, wait: float | None) -> Reply | None:
        if match and method == "POST" and action in ("generateContent", "streamGenerateContent"):
            return self._generate(rec, action == "streamGenerateContent", fault, wait)
        if match and method == "POST" and action == "countTokens":
            tokens = usage_metadata(rec, get_model(rec.model or ""))["promptTokenCount"]
            return self._gate(rec) or (200, {}, {"totalTokens": tokens})
        if match and method == "GET" and action is None:
            gate = self._gate(rec, listing=True)
            if gate is not None:
                return gate
            fault = self._listing_fault(rec)
            if fault is not None and fault.kind == "delay":
                self._pause(fault.seconds)
            elif fault is not None:
                return None if fault.kind == "drop_connection" else fault_reply(fault, None)
            return self._list(rec)
        return error_reply(404, "NOT_FOUND", f"The requested URL {rec.path} was not found on this server.")

    def _gate(self, rec: RecordedRequest, listing: bool = False) -> Reply | None:
        if rec.vertex is not None and rec.vertex.auth_error is not None:
            return rec.vertex.auth_error
        if not rec.api_key and (rec.vertex is None or rec.vertex.token is None):
            return error_reply(403, "PERMISSION_DENIED", UNREGISTERED)
        if self.valid_keys is not None and rec.api_key not in self.valid_keys:
            return fault_reply(Fault.bad_key(), rec.model)
        if not listing and rec.model not in self.models_for(rec.api_key):
            return not_found_reply(rec.model)
        return None

    def _resolve_files(self, rec: RecordedRequest) -> Reply | None:
        """Read the last user turn's `fileData` parts from the Files API: `rec.images` then holds every image in
        part order (inline or by file). A file that expired, vanished or is another key's is refused, as Gemini does."""
        parts = user_parts(rec.body)
        if not any(file_data(part) for part in parts):
            return None
        images, mime_types = [], []
        for part in parts:
            inline, named = inline_data(part), file_data(part)
            if inline is not None:
                images.append(decode_b64(inline.get("data", "")) or b"")
                mime_types.append(str(inline.get("mimeType") or inline.get("mime_type") or ""))
            elif named is not None:
                uri = str(named.get("fileUri") or named.get("file_uri") or "")
                data = self.batches.file_bytes(uri, rec.api_key)
                if data is None:
                    name = "files/" + uri.rsplit("/files/", 1)[-1]
                    return error_reply(403, "PERMISSION_DENIED", f"You do not have permission to access the File "
                                       f"{name} or it may not exist.")
                rec.file_uris.append(uri)
                images.append(data)
                mime_types.append(str(named.get("mimeType") or named.get("mime_type") or ""))
        rec.images, rec.image_mime_types = images, mime_types
        return None

    def _listing_fault(self, rec: RecordedRequest) -> Fault | None:
        """The next queued listing fault, for a request of the whole list (not one model's entry)."""
        with self._lock:
            return self._listing_faults.pop(0) if self._listing_faults and rec.model is None else None

    def _list(self, rec: RecordedRequest) -> Reply:
        models = self.models_for(rec.api_key)
        if rec.model is not None:
            if rec.model not in models:
                return error_reply(404, "NOT_FOUND", f"Model is not found: models/{rec.model} for api version v1beta")
            return 200, {}, model_entry(rec.model, *self.model_info.get(rec.model, (None, None)))
        query = parse_qs(rec.query)
        start = int((query.get("pageToken") or ["0"])[0] or 0)
        size = int((query.get("pageSize") or ["50"])[0])
        page: JsonObject = {"models": [model_entry(m, *self.model_info.get(m, (None, None)))
                                       for m in models[start:start + size]]}
        if start + size < len(models):
            page["nextPageToken"] = str(start + size)
        return 200, {}, page

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._stopped.wait(seconds)

    def _generate(self, rec: RecordedRequest, sse: bool, fault: Fault | None, wait: float | None) -> Reply | None:
        # Order: delay_s (not for a request over the limit: the real API refuses those at once, without running the
        # model), a delay fault, the other faults, key and model, then the limit, then the model's answer.
        if wait is None:
            self._pause(self.delay_s)
        if fault is not None and fault.kind == "delay":
            self._pause(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "drop_connection":
            return None
        if fault is not None and (fault.code != 200 or fault.kind == "not_json"):
            return fault_reply(fault, rec.model)
        gate = self._gate(rec) or self._resolve_files(rec)
        if gate is not None:
            return gate
        if wait is not None:  # RetryInfo counts from now: the wait at arrival less any delay fault since
            retry = format_delay(wait - (time.monotonic() - rec.received_at))
            return fault_reply(replace(Fault.rate_limit(retry), quota_value=str(self.rate_limit)), rec.model)
        spec = get_model(rec.model or "")
        if is_text_model(rec.model):  # the prompt enhancer and image to prompt: words, drawn from what was sent
            return fault_content(rec, spec, fault) if fault else text_answer(rec, spec)
        reply = fault_content(rec, spec, fault) if fault else answer(rec, spec, self.include_thoughts, self.cutouts)
        if rec.vertex is not None:  # Vertex alone honours imageConfig.imageOutputOptions
            reply, jpegs = jpeg_output(reply, rec.generation_config)
            rec.reply_images = jpegs or rec.reply_images
        if reply[0] == 200 and isinstance(reply[2], dict) and rec.model in self.model_versions:
            reply[2]["modelVersion"] = self.model_versions[rec.model]
        if sse and reply[0] == 200:
            return 200, {"Content-Type": "text/event-stream"}, b"data: " + json.dumps(reply[2]).encode() + b"\r\n\r\n"
        return reply


_shared: GeminiEmulator | None = None
_shared_lock = threading.Lock()


def shared_emulator(*, record_limit: int | None = None, delay_s: float | None = None) -> GeminiEmulator:
    """The process-wide emulator the app uses offline, started on first call and kept up until exit.

    The first call's `record_limit` (NANOBANANA_EMULATOR_LOG) bounds its log; `delay_s` (NANOBANANA_EMULATOR_DELAY),
    when given, sets its answer time.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            limit = DEFAULT_RECORD_LIMIT if record_limit is None else record_limit
            _shared = GeminiEmulator(record_limit=limit).start()
        if delay_s is not None:
            _shared.delay_s = delay_s
        return _shared
