"""Emulator thought signatures: issued on Gemini 3 answers, and checked on multi-turn requests like the Gemini API.

A signature is a random nonce plus an HMAC of the nonce and the part's content under a fixed emulator key, so any
emulator process (a restarted app, another CLI run) accepts the signatures another one issued, and a signature moved
to another part, or kept on changed bytes, is refused.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from ..domain.models import ModelSpec
from .types import JsonObject, decode_b64, inline_data

__all__ = ["BYPASS_VALUES", "check_signatures", "decode_signature", "sign", "signs"]

_KEY = b"nanobanana-emulator thought signatures v1"  # not a secret: the emulator stands in for Google's own key
_NONCE = 12
BYPASS_VALUES = ("context_engineering_is_the_way_to_go", "skip_thought_signature_validator")  # literal on the wire


def signs(spec: ModelSpec) -> bool:
    """True for models that issue and check signatures (Gemini 3 image models; 2.5 Flash Image has none)."""
    return spec.id.startswith("gemini-3") or any(alias.startswith("gemini-3") for alias in spec.aliases)


def _content(part: JsonObject) -> bytes:
    inline = inline_data(part)
    if inline is not None:
        return b"image:" + (decode_b64(inline.get("data", "")) or b"")
    return b"text:" + str(part.get("text", "")).encode("utf-8")


def sign(part: JsonObject) -> str:
    """A new signature for this answer part, as the wire carries it (standard base64)."""
    nonce = secrets.token_bytes(_NONCE)
    mac = hmac.new(_KEY, nonce + hashlib.sha256(_content(part)).digest(), hashlib.sha256).digest()[:20]
    return base64.b64encode(nonce + mac).decode("ascii")


def decode_signature(value: object) -> bytes | None:
    """A signature's bytes from the wire (either base64 alphabet), or None when it is not base64."""
    if not isinstance(value, str):
        return None
    text = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _valid(part: JsonObject, value: object) -> bool:
    if value in BYPASS_VALUES:
        return True
    raw = decode_signature(value)
    if raw is None or len(raw) <= _NONCE:
        return False
    nonce, mac = raw[:_NONCE], raw[_NONCE:]
    want = hmac.new(_KEY, nonce + hashlib.sha256(_content(part)).digest(), hashlib.sha256).digest()[:len(mac)]
    return len(mac) == 20 and hmac.compare_digest(mac, want)


def check_signatures(contents: list[object]) -> str | None:
    """The 400 message for the first model turn part whose signature is missing (images) or not ours, else None.

    Positions are 1-based, as in the Gemini API's message ("content position 2, part position 1").
    """
    for c_pos, content in enumerate(contents, start=1):
        if not isinstance(content, dict) or content.get("role") != "model":
            continue
        for p_pos, part in enumerate(content.get("parts") or [], start=1):
            if not isinstance(part, dict):
                continue
            value = part.get("thoughtSignature", part.get("thought_signature"))
            if value is None:
                if inline_data(part) is not None and not part.get("thought"):
                    return (f"Image part is missing a thought_signature in content position {c_pos}, "
                            f"part position {p_pos}.")
                continue
            if not _valid(part, value):
                return "Thought signature is not valid."
    return None
