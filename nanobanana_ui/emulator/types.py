"""The emulator's shared types and wire helpers: the reply triple, the recorded request, error bodies, inline parts.

Every other emulator module (faults, pictures, answers, server) builds on these; this one imports none of them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "API_PATH", "HELP", "Controls", "JsonObject", "RecordedPart", "RecordedRequest", "RecordedTurn", "Reply",
    "VertexCall", "decode_b64", "error_reply", "file_data", "inline_data", "part_kind", "read_controls",
    "record_request", "recorded_turns", "user_parts",
]

JsonObject = dict[str, Any]  # a JSON object as json.loads returns it
Reply = tuple[int, dict[str, str], "JsonObject | bytes"]  # status, extra headers, JSON body or raw bytes

HELP = "Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
API_PATH = re.compile(r"^/(v1beta|v1)/models(?:/([^/:]+))?(?::([A-Za-z]+))?$")  # group 2: the model id

def decode_b64(data: object) -> bytes | None:
    """Base64 (standard or URL-safe, padding optional) as bytes, or None when it is not base64."""
    try:
        text = str(data)
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def inline_data(part: JsonObject) -> JsonObject | None:
    """A part's inline blob (`inlineData` or `inline_data`), or None for a part without one."""
    inline = part.get("inlineData") or part.get("inline_data")
    return inline if isinstance(inline, dict) else None


def file_data(part: JsonObject) -> JsonObject | None:
    """A part's Files API reference (`fileData` or `file_data`, with `fileUri`), or None for a part without one."""
    named = part.get("fileData") or part.get("file_data")
    return named if isinstance(named, dict) else None


def error_reply(code: int, status: str, message: str, details: list[JsonObject] | None = None,
                headers: dict[str, str] | None = None) -> Reply:
    """A Google API error reply: `{"error": {code, message, status, details}}` with extra headers."""
    err: JsonObject = {"code": code, "message": message, "status": status}
    if details:
        err["details"] = details
    return code, headers or {}, {"error": err}


@dataclass(frozen=True)
class RecordedPart:
    """One part of a received content: its kind, text or image bytes, thought flag and signature (decoded)."""

    kind: str  # "text", "image" or the part's first key
    text: str | None = None
    data: bytes | None = field(default=None, repr=False)
    mime_type: str | None = None
    thought: bool = False
    signature: bytes | None = None  # the thoughtSignature's bytes (None: absent)
    signature_text: str | None = None  # the thoughtSignature as it came over the wire


@dataclass(frozen=True)
class RecordedTurn:
    """One received content (a turn of the conversation): its role and parts, in order."""

    role: str
    parts: tuple[RecordedPart, ...]


def _recorded_part(part: JsonObject) -> RecordedPart:
    inline = inline_data(part)
    wire = part.get("thoughtSignature", part.get("thought_signature"))
    return RecordedPart(
        kind=part_kind(part), text=str(part["text"]) if "text" in part else None,
        data=(decode_b64(inline.get("data", "")) or b"") if inline else None,
        mime_type=str(inline.get("mimeType") or inline.get("mime_type") or "") if inline else None,
        thought=bool(part.get("thought")), signature=decode_b64(wire) if isinstance(wire, str) else None,
        signature_text=wire if isinstance(wire, str) else None)


def recorded_turns(body: JsonObject | None) -> list[RecordedTurn]:
    """Every content of a request body, in order, as RecordedTurns (multi-turn requests have several)."""
    turns = []
    for content in (body or {}).get("contents") or []:
        if isinstance(content, dict):
            parts = tuple(_recorded_part(p) for p in content.get("parts") or [] if isinstance(p, dict))
            turns.append(RecordedTurn(role=str(content.get("role", "user")), parts=parts))
    return turns
def _camel_or_snake(data: Any, camel: str, snake: str) -> Any:
    # The SDK sends the insides of thinkingConfig and searchTypes in snake_case, the rest camelCase: read both.
    if not isinstance(data, dict):
        return None
    return data[camel] if camel in data else data.get(snake)


@dataclass(frozen=True)
class Controls:
    """What a generateContent body asked for: thinking level, thought images, search and image search."""

    thinking_level: str | None = None  # as sent, upper-cased: "MINIMAL", "HIGH", ...
    include_thoughts: bool = False
    search: bool = False
    image_search: bool = False
    tools: tuple[dict[str, Any], ...] = ()


def read_controls(body: dict[str, Any] | None) -> Controls:
    """The Gemini 3 controls of a request body (absent ones off)."""
    body = body if isinstance(body, dict) else {}
    config = body.get("generationConfig") if isinstance(body.get("generationConfig"), dict) else {}
    thinking = _camel_or_snake(config, "thinkingConfig", "thinking_config") or {}
    level = _camel_or_snake(thinking, "thinkingLevel", "thinking_level")
    tools = tuple(t for t in body.get("tools") or () if isinstance(t, dict))
    searches = [_camel_or_snake(t, "googleSearch", "google_search") for t in tools]
    searches = [s if isinstance(s, dict) else {} for s in searches if s is not None]
    kinds = [_camel_or_snake(s, "searchTypes", "search_types") for s in searches]
    image_search = any(_camel_or_snake(k, "imageSearch", "image_search") is not None for k in kinds)
    return Controls(thinking_level=str(level).upper() if level else None,
                    include_thoughts=bool(_camel_or_snake(thinking, "includeThoughts", "include_thoughts")),
                    search=bool(searches), image_search=image_search, tools=tools)


@dataclass
class VertexCall:
    """What made a request a Vertex AI one: its real path, project, location and bearer token (None: an API key)."""

    path: str
    project: str | None
    location: str | None
    token: str | None
    auth_error: Reply | None = None  # set when the bearer token was never issued or has expired


@dataclass
class RecordedRequest:
    """One HTTP request the emulator received, parsed for assertions."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    api_key: str | None
    body: JsonObject | None
    model: str | None
    prompt: str = ""
    images: list[bytes] = field(default_factory=list)
    image_mime_types: list[str] = field(default_factory=list)
    part_kinds: list[str] = field(default_factory=list)
    generation_config: JsonObject = field(default_factory=dict)
    received_at: float = 0.0  # time.monotonic() at arrival; requests are recorded in this order
    reply_images: list[bytes] = field(default_factory=list)  # PNGs the emulator answered with, thought images too
    status: int = 0  # the HTTP status answered, set before the reply is sent; 0 until then and for a dropped connection
    turns: list[RecordedTurn] = field(default_factory=list)  # every content received, in order (multi-turn)
    reply_body: JsonObject | None = None  # the JSON the emulator answered with (set with `status`)
    thinking_config: JsonObject = field(default_factory=dict)  # generationConfig.thinkingConfig as sent
    tools: list[Any] = field(default_factory=list)  # the body's "tools" as sent
    controls: Controls = field(default_factory=Controls)  # both read: thinking level, thoughts, search, image search
    vertex: VertexCall | None = None  # set for a Vertex AI path (then `path` is the equivalent Gemini API path)
    file_uris: list[str] = field(default_factory=list)  # the last user turn's fileData uris, in order

    @property
    def store(self) -> bool | None:
        """The request's top-level `store` as sent (False: Google must not keep it), or None when it was absent."""
        value = self.body.get("store") if isinstance(self.body, dict) else None
        return None if value is None else bool(value)

    @property
    def sent_store(self) -> bool:
        """True when the body carried a `store` field at all."""
        return isinstance(self.body, dict) and "store" in self.body


def user_parts(body: JsonObject | None) -> list[JsonObject]:
    """The parts of the request's last user turn (the new prompt and its images)."""
    contents = body.get("contents") if isinstance(body, dict) else None
    users = [c for c in contents or [] if isinstance(c, dict) and c.get("role", "user") == "user"]
    return [p for p in (users[-1].get("parts") or []) if isinstance(p, dict)] if users else []


def part_kind(part: JsonObject) -> str:
    """"text", "image", or the part's first key (e.g. "fileData"), for assertions on part order."""
    return "text" if "text" in part else "image" if inline_data(part) else next(iter(part), "empty")


def record_request(method: str, url: str, headers: dict[str, str], raw: bytes) -> RecordedRequest:
    """Parse one HTTP request into a RecordedRequest (a body that is not a JSON object is kept as None)."""
    parts = urlsplit(url)
    key = headers.get("x-goog-api-key") or next(iter(parse_qs(parts.query).get("key") or []), None)
    match = API_PATH.match(parts.path)
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    rec = RecordedRequest(method, parts.path, parts.query, headers, key, body if isinstance(body, dict) else None,
                          match.group(2) if match else None)
    user = user_parts(rec.body)
    rec.prompt = "\n".join(str(p["text"]) for p in user if "text" in p)
    rec.part_kinds = [part_kind(p) for p in user]
    for inline in filter(None, map(inline_data, user)):
        rec.images.append(decode_b64(inline.get("data", "")) or b"")
        rec.image_mime_types.append(str(inline.get("mimeType") or inline.get("mime_type") or ""))
    rec.generation_config = (rec.body or {}).get("generationConfig") or {}
    rec.turns = recorded_turns(rec.body)
    thinking = rec.generation_config.get("thinkingConfig") if isinstance(rec.generation_config, dict) else None
    rec.thinking_config = thinking if isinstance(thinking, dict) else {}
    tools = (rec.body or {}).get("tools")
    rec.tools = tools if isinstance(tools, list) else []
    rec.controls = read_controls(rec.body)
    return rec
