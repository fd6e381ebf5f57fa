"""The typed request and result that flow through the app, and the request's canonical cache key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .images import InputImage

if TYPE_CHECKING:
    from .regions import Region

__all__ = [
    "RECORD_KEYS", "GeneratedImage", "ImageOptions", "ImageRequest", "ImageResult", "Mode", "Usage", "image_records",
]

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

    def to_dict(self) -> dict[str, Any]:
        """The options as plain JSON-able data."""
        return asdict(self)


@dataclass(frozen=True)
class ImageRequest:
    """One call to an image model: mode, model, the prompt verbatim, input images and options."""

    mode: Mode
    model: str
    prompt: str
    images: tuple[InputImage, ...] = ()
    options: ImageOptions = field(default_factory=ImageOptions)
    region: Region | None = None  # a masked edit or an extend: what is sent is a crop or canvas of `region.source`

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
        if self.region is not None:  # the original, the mask's hash, the crop and the feather (or ratio and anchor)
            canonical["region"] = self.region.cache_part()
        blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def with_variation(self, variation: int) -> ImageRequest:
        """The same request with another variation number (a separate cache entry)."""
        return replace(self, options=replace(self.options, variation=variation))

    def describe(self) -> dict[str, Any]:
        """JSON-able summary of the request (no image bytes, no key)."""
        described: dict[str, Any] = {
            "mode": self.mode.value, "model": self.model, "prompt": self.prompt,
            "images": [{"name": i.name, "sha256": i.sha256, "mime_type": i.mime_type} for i in self.images],
            "options": self.options.to_dict(),
        }
        if self.region is not None:
            described["region"] = self.region.describe()
        return described

    def model_prompt(self) -> str:
        """The text sent to the model: the prompt verbatim, or for a region edit the prompt with how to read it."""
        return self.prompt if self.region is None else self.region.model_prompt(self.prompt)


@dataclass(frozen=True)
class Usage:
    """Token counts as the response's usageMetadata reports them."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    image_tokens: int = 0
    text_tokens: int = 0
    total_tokens: int = 0

    def to_record(self) -> dict[str, int]:
        """The token counts as every JSON record shows them: `prompt`, `output`, `total`."""
        return {"prompt": self.prompt_tokens, "output": self.output_tokens, "total": self.total_tokens}


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

    def to_record(self) -> dict[str, Any]:
        """The one JSON-able form of a result, which the CLI, the batch manifest and its --json all print.

        One record per request; `image_records` splits it into the CLI's one line per image.
        """
        options = self.request.options
        return {
            "id": self.id, "prompt": self.request.prompt, "model": self.request.model, "mode": self.request.mode.value,
            "variation": options.variation, "seed": options.seed, "cached": self.cached, "cost_usd": self.cost_usd,
            "saved_usd": self.saved_usd if self.cached else 0.0, "finish_reason": self.finish_reason,
            "text": self.text, "tokens": self.usage.to_record(), "elapsed_s": round(self.elapsed_s, 3),
            "images": [{"path": None if image.path is None else str(image.path), "width": image.width,
                        "height": image.height, "sha256": image.sha256} for image in self.images],
            **({"region": self.request.region.describe()} if self.request.region is not None else {}),
        }


RECORD_KEYS = (  # the keys of one --json line per image (generate/edit/compose, and batch with `row`, `status`)
    "path", "prompt", "model", "mode", "cached", "cost_usd", "saved_usd", "finish_reason", "text", "width", "height",
    "sha256", "variation", "seed", "tokens", "elapsed_s", "id",
)


def image_records(record: dict[str, Any]) -> list[dict[str, Any]]:
    """One line per image of a result record: the result's fields, the image's, and its share of the cost."""
    images = record.get("images") or []
    cost = record.get("cost_usd")
    share = None if cost is None else cost / max(len(images), 1)
    lines = []
    for image in images:
        line = {key: record.get(key) for key in RECORD_KEYS}
        line.update(path=image["path"], width=image["width"], height=image["height"], sha256=image["sha256"],
                    cost_usd=share)
        if "region" in record:  # a region edit's provenance (mask sha256, crop box, feather, or extend)
            line["region"] = record["region"]
        lines.append(line)
    return lines
