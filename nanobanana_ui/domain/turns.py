"""Conversation turns as plain data: the parts of a user or model turn, thought signatures, and their JSON form.

A model turn is kept exactly as the API returned it (every part, thought parts and `thought_signature` bytes
included), because Gemini 3 image models reject a follow-up whose earlier model image lost its signature. Stored
form: JSON with signatures as STANDARD base64 (URL-safe substitution breaks them) and images by SHA-256, their bytes
kept as content-addressed files by whoever stores the JSON.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

__all__ = ["BYPASS_SIGNATURE", "BYPASS_TEXT", "Role", "Turn", "TurnPart", "parts_from_json", "parts_to_json",
           "path_digest"]

Role = Literal["user", "model"]
# Google's documented value for model turns the model did not produce (history injected by the app). It must reach
# the wire as this literal string; the SDK base64-encodes `thought_signature` bytes (URL-safe alphabet), so the bytes
# we hold are the string's own base64 decoding, which encodes back to exactly this text.
BYPASS_TEXT = "context_engineering_is_the_way_to_go"
BYPASS_SIGNATURE = base64.urlsafe_b64decode(BYPASS_TEXT)


@dataclass(frozen=True)
class TurnPart:
    """One part of a turn: text or an inline image, maybe a thought, maybe carrying a thought signature."""

    text: str | None = None
    data: bytes | None = field(default=None, repr=False)  # an inline image's exact bytes (megabytes: not in repr)
    mime_type: str | None = None
    thought: bool = False
    thought_signature: bytes | None = field(default=None, repr=False)

    @property
    def is_image(self) -> bool:
        """True for an inline image part."""
        return self.data is not None

    @property
    def sha256(self) -> str | None:
        """The image bytes' digest (None for a text part)."""
        return hashlib.sha256(self.data).hexdigest() if self.data is not None else None

    def without_signature(self) -> TurnPart:
        """The same part with no signature (what a model without signatures, e.g. 2.5 Flash Image, is sent)."""
        return replace(self, thought_signature=None)


@dataclass(frozen=True)
class Turn:
    """One content of a conversation: who spoke and their parts, in order."""

    role: Role
    parts: tuple[TurnPart, ...]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode("ascii")


def parts_to_json(parts: Iterable[TurnPart]) -> list[dict[str, Any]]:
    """The parts as JSON-able dicts: images by digest and type, signatures as standard base64."""
    out: list[dict[str, Any]] = []
    for part in parts:
        item: dict[str, Any] = ({"image": {"sha256": part.sha256, "mime_type": part.mime_type}} if part.is_image
                                else {"text": part.text or ""})
        if part.thought:
            item["thought"] = True
        if part.thought_signature is not None:
            item["thought_signature"] = _b64(part.thought_signature)
        out.append(item)
    return out


def parts_from_json(items: Iterable[dict[str, Any]], read_image: Callable[[str, str], bytes]) -> tuple[TurnPart, ...]:
    """Parts back from `parts_to_json` form; `read_image(sha256, mime_type)` supplies each image's bytes."""
    parts = []
    for item in items:
        signature = item.get("thought_signature")
        sig = base64.b64decode(signature, validate=True) if isinstance(signature, str) else None
        image = item.get("image")
        if isinstance(image, dict):
            mime = str(image["mime_type"])
            parts.append(TurnPart(data=read_image(str(image["sha256"]), mime), mime_type=mime,
                                  thought=bool(item.get("thought")), thought_signature=sig))
        else:
            parts.append(TurnPart(text=str(item.get("text", "")), thought=bool(item.get("thought")),
                                  thought_signature=sig))
    return tuple(parts)


def path_digest(turns: Iterable[Turn]) -> str:
    """A digest of a whole conversation path (roles, part order, text, image digests, signatures) for cache keys."""
    canonical = [{"role": turn.role, "parts": parts_to_json(turn.parts)} for turn in turns]
    blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()
