"""Offline Gemini API emulator: a local HTTP stand-in for generateContent that the app and tests talk to."""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import math
import re
import secrets
import textwrap
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from .models import ModelSpec, get_model, known_models, pixel_size

__all__ = ["OFFLINE_API_KEY", "Fault", "GeminiEmulator", "RecordedRequest", "shared_emulator"]

OFFLINE_API_KEY = "offline-emulator"
_LABEL = "OFFLINE EMULATOR · placeholder image"
_PATH = re.compile(r"^/(v1beta|v1)/models(?:/([^/:]+))?(?::([A-Za-z]+))?$")
_IMAGE_MIME = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")
_HELP = "Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
_RPC = "type.googleapis.com/google.rpc."
_QUOTA_METRIC = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
_MINUTE_QUOTA = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
_HTML_502 = b"<!DOCTYPE html><html lang=en><title>Error 502 (Server Error)!!1</title><p><b>502.</b> That's an error."
_NOT_JSON = b"<!DOCTYPE html><html><head><title>Network login</title></head><body>Sign in to continue</body></html>"
_THOUGHT_TOKENS = 64
_UNREGISTERED = ("Method doesn't allow unregistered callers (callers without established identity). "
                 "Please use API Key or other form of API consumer identity to call this API.")

_Reply = tuple[int, dict, "dict | bytes"]


@dataclass(frozen=True)
class Fault:
    """One injected failure or slowdown, consumed by the next generateContent request."""

    kind: str
    code: int = 200
    status: str = ""
    message: str = ""
    reason: str = ""
    retry_delay: str | None = None
    quota_id: str = ""
    quota_value: str = ""
    seconds: float = 0.0

    @classmethod
    def rate_limit(cls, retry_delay: str = "17s", quota_id: str = _MINUTE_QUOTA) -> Fault:
        """429 RESOURCE_EXHAUSTED with QuotaFailure and RetryInfo details and a Retry-After header."""
        return cls("rate_limit", 429, "RESOURCE_EXHAUSTED", retry_delay=retry_delay, quota_id=quota_id,
                   quota_value="10")

    @classmethod
    def daily_quota(cls) -> Fault:
        """429 RESOURCE_EXHAUSTED for the per-day quota: QuotaFailure, no RetryInfo, no Retry-After."""
        quota_id = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        return cls("daily_quota", 429, "RESOURCE_EXHAUSTED", quota_id=quota_id, quota_value="100")

    @classmethod
    def server_error(cls, code: int = 500) -> Fault:
        """A 5xx: 500 INTERNAL, 502 (HTML body, like a proxy), 503 UNAVAILABLE or 504 DEADLINE_EXCEEDED."""
        status = {502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}.get(code, "INTERNAL")
        message = {504: "Deadline expired before operation could complete.",
                   503: "The service is currently unavailable."}.get(code, f"An internal error has occurred. {_HELP}")
        return cls("server_error", code, status, message)

    @classmethod
    def overloaded(cls) -> Fault:
        """503 UNAVAILABLE: the model is overloaded."""
        return cls("overloaded", 503, "UNAVAILABLE", "The model is overloaded. Please try again later.")

    @classmethod
    def blocked(cls, reason: str = "PROHIBITED_CONTENT") -> Fault:
        """200 with promptFeedback.blockReason and no candidates."""
        return cls("blocked", reason=reason)

    @classmethod
    def no_image(cls, finish_reason: str = "IMAGE_SAFETY") -> Fault:
        """200 with one candidate that has a finishReason and no content."""
        return cls("no_image", reason=finish_reason)

    @classmethod
    def text_only(cls, text: str = "I can't draw that. Could you describe what you would like instead?") -> Fault:
        """200 with one STOP candidate holding only a text part."""
        return cls("text_only", message=text)

    @classmethod
    def bad_key(cls) -> Fault:
        """400 INVALID_ARGUMENT "API key not valid" with ErrorInfo reason API_KEY_INVALID."""
        message = "API key not valid. Please pass a valid API key."
        return cls("bad_key", 400, "INVALID_ARGUMENT", message, "API_KEY_INVALID")

    @classmethod
    def permission_denied(cls) -> Fault:
        """403 PERMISSION_DENIED."""
        return cls("permission_denied", 403, "PERMISSION_DENIED", "The caller does not have permission")

    @classmethod
    def not_found(cls) -> Fault:
        """404 NOT_FOUND for the requested model, worded like the real API."""
        return cls("not_found", 404, "NOT_FOUND")

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait this many seconds, then answer normally."""
        return cls("delay", seconds=float(seconds))

    @classmethod
    def drop_connection(cls) -> Fault:
        """Close the connection without sending any response."""
        return cls("drop_connection")

    @classmethod
    def not_json(cls) -> Fault:
        """200 with an HTML (non-JSON) body, like a captive portal."""
        return cls("not_json")


@dataclass
class RecordedRequest:
    """One HTTP request the emulator received, parsed for assertions."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    api_key: str | None
    body: dict | None
    model: str | None
    prompt: str = ""
    images: list[bytes] = field(default_factory=list)
    image_mime_types: list[str] = field(default_factory=list)
    part_kinds: list[str] = field(default_factory=list)
    generation_config: dict = field(default_factory=dict)
    received_at: float = 0.0
    reply_images: list[bytes] = field(default_factory=list)  # PNGs the emulator answered with, thought images too


def _error(code: int, status: str, message: str, details: list | None = None, headers: dict | None = None) -> _Reply:
    err: dict = {"code": code, "message": message, "status": status}
    if details:
        err["details"] = details
    return code, headers or {}, {"error": err}


def _not_found(model: str | None) -> _Reply:
    return _error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta, or is not supported for "
                  "generateContent. Call ListModels to see the list of available models and their supported methods.")


def _b64(data: object) -> bytes | None:
    try:
        text = str(data)
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def _inline(part: dict) -> dict | None:
    inline = part.get("inlineData") or part.get("inline_data")
    return inline if isinstance(inline, dict) else None


def _user_parts(body: dict | None) -> list[dict]:
    contents = body.get("contents") if isinstance(body, dict) else None
    users = [c for c in contents or [] if isinstance(c, dict) and c.get("role", "user") == "user"]
    return [p for p in (users[-1].get("parts") or []) if isinstance(p, dict)] if users else []


def _part_kind(part: dict) -> str:
    return "text" if "text" in part else "image" if _inline(part) else next(iter(part), "empty")


def _quota_details(fault: Fault, model: str | None) -> list[dict]:
    violation = {"quotaMetric": _QUOTA_METRIC, "quotaId": fault.quota_id,
                 "quotaDimensions": {"location": "global", "model": model or ""}, "quotaValue": fault.quota_value}
    details = [{"@type": _RPC + "Help", "links": [{"description": "Learn more about Gemini API quotas",
                                                   "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
               {"@type": _RPC + "QuotaFailure", "violations": [violation]}]
    if fault.retry_delay:
        details.append({"@type": _RPC + "RetryInfo", "retryDelay": fault.retry_delay})
    return details


def _fault_error(fault: Fault, model: str | None) -> _Reply:
    if fault.kind == "not_found":
        return _not_found(model)
    if fault.code == 502:
        return 502, {"Content-Type": "text/html; charset=UTF-8"}, _HTML_502
    if fault.code == 429:
        retry = f"\nPlease retry in {fault.retry_delay}." if fault.retry_delay else ""
        message = ("You exceeded your current quota, please check your plan and billing details. For more information "
                   "on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits.\n* Quota exceeded for "
                   f"metric: {_QUOTA_METRIC}, limit: {fault.quota_value}, model: {model}{retry}")
        headers = {"Retry-After": str(math.ceil(float(fault.retry_delay.rstrip("s"))))} if fault.retry_delay else {}
        return _error(429, fault.status, message, _quota_details(fault, model), headers)
    details = None
    if fault.reason:
        details = [{"@type": _RPC + "ErrorInfo", "reason": fault.reason, "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"}},
                   {"@type": _RPC + "LocalizedMessage", "locale": "en-US", "message": fault.message}]
    return _error(fault.code, fault.status, fault.message, details)


def _font(px: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=px)


def _fit(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    return ImageOps.fit(img.convert("RGB"), size, Image.Resampling.BILINEAR)


def _canvas(prompt: str, inputs: list[Image.Image], size: tuple[int, int]) -> Image.Image:
    seed = hashlib.sha256(prompt.encode()).digest()
    if not inputs:  # generate: a gradient derived from the prompt
        grad = Image.linear_gradient("L").rotate(90 * (seed[6] % 4))
        return ImageOps.colorize(grad, tuple(seed[:3]), tuple(seed[3:6])).resize(size, Image.Resampling.BILINEAR)
    if len(inputs) == 1:  # edit: the input, strongly tinted, with a border
        out = Image.blend(_fit(inputs[0], size), Image.new("RGB", size, tuple(seed[:3])), 0.45)
        ImageDraw.Draw(out).rectangle((0, 0, size[0] - 1, size[1] - 1), outline=tuple(seed[3:6]),
                                      width=max(4, min(size) // 40))
        return out
    cols = math.ceil(math.sqrt(len(inputs)))  # compose: a grid of every input
    rows = math.ceil(len(inputs) / cols)
    cell_w, cell_h = size[0] // cols, size[1] // rows
    out = Image.new("RGB", size, tuple(seed[:3]))
    for i, img in enumerate(inputs):
        out.paste(_fit(img, (cell_w - 4, cell_h - 4)), ((i % cols) * cell_w + 2, (i // cols) * cell_h + 2))
    return out


def _render(model: str, prompt: str, inputs: list[Image.Image], size: tuple[int, int]) -> Image.Image:
    """Draw the labelled placeholder image of exactly `size` pixels."""
    img = _canvas(prompt, inputs, size)
    w, h = size
    fs = max(10, min(min(w, h) // 28, w // 22))
    band = int(fs * 2.9)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, w, band), fill=(0, 0, 0))
    draw.text((fs // 2, fs // 3), _LABEL, font=_font(fs), fill=(255, 214, 0))
    draw.text((fs // 2, int(fs * 1.6)), f"{model} · {w}x{h}", font=_font(max(8, fs * 4 // 5)), fill=(255, 255, 255))
    big = fs * 3 // 2
    max_lines = max(1, int((h - band) / (big * 1.3)) - 1)
    lines = textwrap.wrap(prompt, max(8, int(w * 0.9 / (big * 0.55))))
    text = "\n".join(lines[:max_lines]) + ("..." if len(lines) > max_lines else "")
    draw.multiline_text((w // 2, (h + band) // 2), text, font=_font(big), fill=(255, 255, 255), anchor="mm",
                        align="center", stroke_width=max(1, big // 12), stroke_fill=(0, 0, 0))
    return img


def _open(data: bytes) -> Image.Image | None:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def _history_image(body: dict | None) -> list[Image.Image]:
    """The latest non-thought image earlier in the conversation, as a one-item list (or empty)."""
    for content in reversed((body or {}).get("contents") or []):
        for part in reversed(content.get("parts") or [] if isinstance(content, dict) else []):
            inline = _inline(part) if isinstance(part, dict) and not part.get("thought") else None
            img = _open(_b64(inline.get("data", "")) or b"") if inline else None
            if img is not None:
                return [img]
    return []


def _thought_parts(img: Image.Image) -> list[dict]:
    """What Gemini 3 sends before the answer: a thought summary and an interim (draft) image."""
    draft = img.convert("L")
    draft.thumbnail((256, 256))
    return [{"text": "**Sketching the placeholder**\nLaying out the label and the prompt.", "thought": True},
            {"inlineData": {"mimeType": "image/png", "data": _png(draft)}, "thought": True}]


def _png(img: Image.Image) -> str:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _nearest_ratio(img: Image.Image, spec: ModelSpec) -> str:
    def distance(ratio: str) -> float:
        a, b = (int(x) for x in ratio.split(":"))
        return abs(math.log(img.width / img.height) - math.log(a / b))
    return min(spec.aspect_ratios, key=distance)


def _record(method: str, url: str, headers: dict[str, str], raw: bytes) -> RecordedRequest:
    parts = urlsplit(url)
    key = headers.get("x-goog-api-key") or (parse_qs(parts.query).get("key") or [None])[0]
    match = _PATH.match(parts.path)
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    rec = RecordedRequest(method, parts.path, parts.query, headers, key, body if isinstance(body, dict) else None,
                          match.group(2) if match else None, received_at=time.monotonic())
    user = _user_parts(rec.body)
    rec.prompt = "\n".join(str(p["text"]) for p in user if "text" in p)
    rec.part_kinds = [_part_kind(p) for p in user]
    for inline in filter(None, map(_inline, user)):
        rec.images.append(_b64(inline.get("data", "")) or b"")
        rec.image_mime_types.append(str(inline.get("mimeType") or inline.get("mime_type") or ""))
    rec.generation_config = (rec.body or {}).get("generationConfig") or {}
    return rec


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that time out or hang up are part of the job


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "GeminiEmulator/1.0"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _serve(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            reply = self.server.emulator._handle(self.command, self.path, headers, raw)  # type: ignore[attr-defined]
        except Exception as exc:  # noqa: BLE001 - a bug in the emulator should still look like an HTTP answer
            reply = _error(500, "INTERNAL", f"Emulator error: {exc!r}")
        if reply is None:  # Fault.drop_connection: hang up without a word
            self.close_connection = True
            return
        code, extra, body = reply
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", extra.pop("Content-Type", "application/json; charset=UTF-8"))
        self.send_header("Content-Length", str(len(data)))
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _serve


class GeminiEmulator:
    """A local Gemini API v1beta server (generateContent, models) that records requests and injects faults."""

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, models: Iterable[str] | None = None,
                 valid_keys: Iterable[str] | None = None, delay_s: float = 0.0, include_thoughts: bool = False) -> None:
        """Configure the emulator; nothing listens until start()."""
        names = [n for s in known_models() for n in (s.id, *s.aliases)] if models is None else models
        self.models = tuple(dict.fromkeys(n.removeprefix("models/") for n in names))
        self.valid_keys = None if valid_keys is None else frozenset(valid_keys)
        self.delay_s = delay_s
        self.include_thoughts = include_thoughts
        self._address = (host, port)
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def start(self) -> GeminiEmulator:
        """Start serving in a daemon thread (idempotent) and return self."""
        with self._lock:
            if self._server is None:
                self._server = _Server(self._address, _Handler)
                self._server.emulator = self  # type: ignore[attr-defined]
                self._stopped.clear()
                self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
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
        return f"http://{host}:{port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received so far."""
        with self._lock:
            return list(self._requests)

    @property
    def generate_requests(self) -> list[RecordedRequest]:
        """Only the generateContent (and streamGenerateContent) requests."""
        return [r for r in self.requests if r.path.endswith(("generateContent", "GenerateContent"))]

    def fail_next(self, *faults: Fault) -> None:
        """Queue faults; each generateContent request consumes one, in order."""
        with self._lock:
            self._faults.extend(faults)

    def reset(self) -> None:
        """Forget recorded requests and queued faults."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()

    def _handle(self, method: str, url: str, headers: dict[str, str], raw: bytes) -> _Reply | None:
        rec = _record(method, url, headers, raw)
        with self._lock:
            self._requests.append(rec)
        match = _PATH.match(rec.path)
        action = match.group(3) if match else None
        if match and method == "POST" and action in ("generateContent", "streamGenerateContent"):
            return self._generate(rec, sse=action == "streamGenerateContent")
        if match and method == "POST" and action == "countTokens":
            tokens = self._usage(rec, get_model(rec.model or ""))["promptTokenCount"]
            return self._gate(rec) or (200, {}, {"totalTokens": tokens})
        if match and method == "GET" and action is None:
            return self._gate(rec, listing=True) or self._list(rec)
        return _error(404, "NOT_FOUND", f"The requested URL {rec.path} was not found on this server.")

    def _gate(self, rec: RecordedRequest, listing: bool = False) -> _Reply | None:
        if not rec.api_key:
            return _error(403, "PERMISSION_DENIED", _UNREGISTERED)
        if self.valid_keys is not None and rec.api_key not in self.valid_keys:
            return _fault_error(Fault.bad_key(), rec.model)
        if not listing and rec.model not in self.models:
            return _not_found(rec.model)
        return None

    def _list(self, rec: RecordedRequest) -> _Reply:
        if rec.model is not None:
            if rec.model not in self.models:
                return _error(404, "NOT_FOUND", f"Model is not found: models/{rec.model} for api version v1beta")
            return 200, {}, self._model_entry(rec.model)
        query = parse_qs(rec.query)
        start = int((query.get("pageToken") or ["0"])[0] or 0)
        size = int((query.get("pageSize") or ["50"])[0])
        page: dict = {"models": [self._model_entry(m) for m in self.models[start:start + size]]}
        if start + size < len(self.models):
            page["nextPageToken"] = str(start + size)
        return 200, {}, page

    @staticmethod
    def _model_entry(name: str) -> dict:
        spec = get_model(name)
        return {"name": f"models/{name}", "version": "emulator", "displayName": spec.label,
                "description": f"Offline emulator stand-in for {spec.label}.",
                "inputTokenLimit": 32768 if name.startswith("gemini-2") else 65536, "outputTokenLimit": 32768,
                "supportedGenerationMethods": ["generateContent", "countTokens"], "temperature": 1.0,
                "topP": 0.95, "topK": 64, "maxTemperature": 2.0}

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._stopped.wait(seconds)

    def _next_fault(self) -> Fault | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def _generate(self, rec: RecordedRequest, sse: bool) -> _Reply | None:
        self._pause(self.delay_s)
        fault = self._next_fault()
        if fault is not None and fault.kind == "delay":
            self._pause(fault.seconds)
            fault = None
        if fault is not None and fault.kind == "drop_connection":
            return None
        if fault is not None and fault.kind == "not_json":
            return 200, {"Content-Type": "text/html; charset=UTF-8"}, _NOT_JSON
        if fault is not None and fault.code != 200:
            return _fault_error(fault, rec.model)
        gate = self._gate(rec)
        if gate is not None:
            return gate
        spec = get_model(rec.model or "")
        reply = self._fault_content(rec, spec, fault) if fault else self._answer(rec, spec)
        if sse and reply[0] == 200:
            return 200, {"Content-Type": "text/event-stream"}, b"data: " + json.dumps(reply[2]).encode() + b"\r\n\r\n"
        return reply

    def _usage(self, rec: RecordedRequest, spec: ModelSpec, out: dict[str, int] | None = None) -> dict:
        contents = (rec.body or {}).get("contents") or []
        parts = [p for c in contents if isinstance(c, dict) for p in c.get("parts") or [] if isinstance(p, dict)]
        text = sum(len(str(p["text"])) // 4 + 1 for p in parts if "text" in p)
        images = spec.input_image_tokens * sum(1 for p in parts if _inline(p))
        usage: dict = {"promptTokenCount": text + images, "totalTokenCount": text + images,
                       "promptTokensDetails": [{"modality": "TEXT", "tokenCount": text}]}
        if images:
            usage["promptTokensDetails"].append({"modality": "IMAGE", "tokenCount": images})
        if out:
            usage["candidatesTokenCount"] = sum(out.values())
            usage["candidatesTokensDetails"] = [{"modality": k, "tokenCount": v} for k, v in out.items()]
            usage["totalTokenCount"] += sum(out.values())
        return usage

    def _envelope(self, rec: RecordedRequest, spec: ModelSpec, out: dict[str, int] | None, **fields: object) -> _Reply:
        body = {**fields, "usageMetadata": self._usage(rec, spec, out), "modelVersion": rec.model,
                "responseId": secrets.token_urlsafe(16)}
        return 200, {}, body

    def _fault_content(self, rec: RecordedRequest, spec: ModelSpec, fault: Fault) -> _Reply:
        if fault.kind == "blocked":
            return self._envelope(rec, spec, None, promptFeedback={"blockReason": fault.reason})
        if fault.kind == "no_image":
            return self._envelope(rec, spec, None, candidates=[{"finishReason": fault.reason, "index": 0}])
        content = {"role": "model", "parts": [{"text": fault.message}]}
        candidate = {"content": content, "finishReason": "STOP", "index": 0}
        return self._envelope(rec, spec, {"TEXT": len(fault.message) // 4 + 1}, candidates=[candidate])

    def _invalid(self, rec: RecordedRequest, spec: ModelSpec, inputs: list[Image.Image]) -> _Reply | None:
        """Validate the request like the real API; on success fill `inputs` with the decoded images."""
        config, model = rec.generation_config, rec.model
        image_config = config.get("imageConfig") or {}
        size, ratio = image_config.get("imageSize"), image_config.get("aspectRatio")
        checks = [
            (rec.body is None, "Invalid JSON payload received."),
            (int(config.get("candidateCount") or 1) > 1, f"Multiple candidates is not enabled for models/{model}"),
            (size not in (None, *spec.sizes),
             f"Image size {size!r} is not supported by models/{model}. Supported sizes: {', '.join(spec.sizes)}."),
            (ratio not in (None, *spec.aspect_ratios), f"Aspect ratio {ratio!r} is not supported by models/{model}. "
             f"Supported aspect ratios: {', '.join(spec.aspect_ratios)}."),
            (not rec.prompt.strip() and not rec.images,
             "* GenerateContentRequest.contents: contents must contain text or an image."),
            *((mime not in _IMAGE_MIME, f"Unsupported MIME type: {mime}") for mime in rec.image_mime_types),
        ]
        for failed, message in checks:
            if failed:
                return _error(400, "INVALID_ARGUMENT", message)
        for data in rec.images:
            img = _open(data)
            if img is None:
                return _error(400, "INVALID_ARGUMENT", f"Unable to process input image. {_HELP}")
            inputs.append(img)
        return None

    def _answer(self, rec: RecordedRequest, spec: ModelSpec) -> _Reply:
        inputs: list[Image.Image] = []
        invalid = self._invalid(rec, spec, inputs)
        if invalid is not None:
            return invalid
        inputs = inputs or _history_image(rec.body)  # multi-turn: "now make it blue" edits the last image
        image_config = rec.generation_config.get("imageConfig") or {}
        size = image_config.get("imageSize") or spec.default_size
        ratio = image_config.get("aspectRatio") or (_nearest_ratio(inputs[0], spec) if inputs else "1:1")
        modalities = [str(m).upper() for m in rec.generation_config.get("responseModalities") or ["TEXT", "IMAGE"]]
        parts: list[dict] = []
        out: dict[str, int] = {}
        if "TEXT" in modalities:
            parts.append({"text": f"Here is an offline placeholder image for: {rec.prompt[:200]}"})
            out["TEXT"] = len(parts[0]["text"]) // 4 + 1
        if "IMAGE" in modalities:
            img = _render(rec.model or "", rec.prompt, inputs, pixel_size(ratio, size))
            parts.append({"inlineData": {"mimeType": "image/png", "data": _png(img)}})
            out["IMAGE"] = spec.output_image_tokens.get(size, 1290)
            if self.include_thoughts:
                parts[-1]["thoughtSignature"] = base64.b64encode(secrets.token_bytes(24)).decode()
                parts[:0] = _thought_parts(img)
        rec.reply_images = [base64.b64decode(p["inlineData"]["data"]) for p in parts if "inlineData" in p]
        candidate = {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        reply = self._envelope(rec, spec, out, candidates=[candidate])
        if self.include_thoughts and "IMAGE" in modalities:
            usage = reply[2]["usageMetadata"]  # type: ignore[index]
            usage["thoughtsTokenCount"] = _THOUGHT_TOKENS
            usage["totalTokenCount"] += _THOUGHT_TOKENS
        return reply


_shared: GeminiEmulator | None = None
_shared_lock = threading.Lock()


def shared_emulator() -> GeminiEmulator:
    """The process-wide emulator the app uses offline, started on first call and kept up until exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = GeminiEmulator().start()
        return _shared
