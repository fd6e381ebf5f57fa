"""A request to a text model (the prompt enhancer, image to prompt), its canonical cache key, and its result."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .inputs import InputImage
from .request import Usage

__all__ = ["TEXT_KINDS", "TextRequest", "TextResult"]

TEXT_KINDS = ("enhance", "describe", "describe-edit")  # what the text model is asked to write
CACHE_KEY_VERSION = 1


@dataclass(frozen=True)
class TextRequest:
    """One call to a text model: what it is for, the model, the instruction, the user's text and any images."""

    kind: str
    model: str
    text: str  # the user's words (the idea to enhance; for describe, what to write)
    instruction: str  # the system instruction: how to write the answer
    images: tuple[InputImage, ...] = ()
    temperature: float | None = None
    style: str | None = None  # the style the idea was wrapped in before enhancing (a record, in the key via text)

    def cache_key(self) -> str:
        """A stable digest of everything that shapes the answer (never the API key)."""
        canonical = {"v": CACHE_KEY_VERSION, "kind": self.kind, "model": self.model, "text": self.text,
                     "instruction": self.instruction, "images": [image.sha256 for image in self.images],
                     "temperature": self.temperature}
        blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return "text:" + hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def describe(self) -> dict[str, Any]:
        """JSON-able summary (no image bytes, no key)."""
        return {"kind": self.kind, "model": self.model, "text": self.text,
                "images": [{"name": i.name, "sha256": i.sha256, "mime_type": i.mime_type} for i in self.images],
                **({"style": self.style} if self.style else {})}


@dataclass(frozen=True)
class TextResult:
    """A text model's answer: the prompt it wrote, tokens, cost, whether it came from the cache, and its history id."""

    id: str
    request: TextRequest
    prompt: str
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    cached: bool = False
    saved_usd: float = 0.0
    elapsed_s: float = 0.0

    def to_record(self) -> dict[str, Any]:
        """The `prompt enhance|describe --json` object: `prompt`, `model`, `cost_usd`, and the rest."""
        return {"prompt": self.prompt, "model": self.request.model, "cost_usd": self.cost_usd, "cached": self.cached,
                "kind": self.request.kind, "input": self.request.text if self.request.kind == "enhance" else None,
                "id": self.id, "finish_reason": self.finish_reason, "tokens": self.usage.to_record(),
                "elapsed_s": round(self.elapsed_s, 3), **({"style": self.request.style} if self.request.style else {})}
