"""The typed request and result that flow through the app, and the request's canonical cache key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path

from .images import InputImage

__all__ = ["GeneratedImage", "ImageOptions", "ImageRequest", "ImageResult", "Mode", "Usage"]

_VERTEX_OPTIONS = ("output_mime_type", "output_quality", "person_generation")
CACHE_KEY_VERSION = 1  # bump when the meaning of a request changes, so old entries stop matching


class Mode(str, Enum):
    """What a request does with its inputs."""

    GENERATE = "generate"
    EDIT = "edit"
    COMPOSE = "compose"


@dataclass(frozen=True)
class ImageOptions:
    """Generation options; None means "the model's default" and is sent as absent."""

    aspect_ratio: str | None = None
    size: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    with_text: bool = True  # response modalities: image + text, or image only
    variation: int = 0  # distinguishes otherwise identical requests: each number is its own cache entry
    # Vertex AI only (see backends.py): output format, JPEG quality (0-100), personGeneration (ALLOW_ALL...).
    output_mime_type: str | None = None
    output_quality: int | None = None
    person_generation: str | None = None

    def to_dict(self) -> dict:
        """The options as plain JSON-able data (Vertex-only options appear only when set, so older keys hold)."""
        data = asdict(self)
        for name in _VERTEX_OPTIONS:
            if data[name] is None:
                del data[name]
        return data


@dataclass(frozen=True)
class ImageRequest:
    """One call to an image model: mode, model, the prompt verbatim, input images and options."""

    mode: Mode
    model: str
    prompt: str
    images: tuple[InputImage, ...] = ()
    options: ImageOptions = field(default_factory=ImageOptions)

    def cache_key(self) -> str:
        """A stable digest of everything that shapes the answer (never the API key)."""
        canonical = {
            "v": CACHE_KEY_VERSION,
            "mode": self.mode.value,
            "model": self.model,
            "prompt": self.prompt,
            "images": [image.sha256 for image in self.images],
            "options": self.options.to_dict(),
        }
        blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def with_variation(self, variation: int) -> ImageRequest:
        """The same request with another variation number (a separate cache entry)."""
        return replace(self, options=replace(self.options, variation=variation))

    def describe(self) -> dict:
        """JSON-able summary of the request (no image bytes, no key)."""
        return {
            "mode": self.mode.value, "model": self.model, "prompt": self.prompt,
            "images": [{"name": i.name, "sha256": i.sha256, "mime_type": i.mime_type,
                        **({"stripped": list(i.stripped)} if i.stripped else {})} for i in self.images],
            "options": self.options.to_dict(),
        }


@dataclass(frozen=True)
class Usage:
    """Token counts as the response's usageMetadata reports them."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    image_tokens: int = 0
    text_tokens: int = 0
    total_tokens: int = 0


@dataclass(frozen=True)
class GeneratedImage:
    """One image the model returned: its exact bytes' digest, type, size, and where it was saved."""

    sha256: str
    mime_type: str
    width: int
    height: int
    path: Path | None = None

    def read_bytes(self) -> bytes:
        """The saved file's bytes."""
        if self.path is None:
            raise FileNotFoundError("this image was not saved")
        return self.path.read_bytes()


@dataclass(frozen=True)
class ImageResult:
    """The outcome of one request: images, the model's words, finish reason, usage, cost, cache and timing."""

    id: str
    request: ImageRequest
    images: tuple[GeneratedImage, ...]
    text: str = ""
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = 0.0
    cached: bool = False
    saved_usd: float = 0.0  # what a cache hit would have cost
    elapsed_s: float = 0.0
