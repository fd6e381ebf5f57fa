"""The typed request and result that flow through the app, and the request's canonical cache key."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from .inputs import InputImage
from .kits import KitUse
from .region import Region
from .templates import PromptCraft
from .turns import Turn, TurnPart, path_digest

__all__ = [
    "RECORD_KEYS", "GeneratedImage", "ImageOptions", "ImageRequest", "ImageResult", "Mode", "Source", "ThoughtImage",
    "Usage", "image_records",
]

_VERTEX_OPTIONS = ("output_mime_type", "output_quality", "person_generation")
CACHE_KEY_VERSION = 1  # bump when the meaning of a request changes, so old entries stop matching


class Mode(str, Enum):  # noqa: UP042 (StrEnum would change str(Mode.EDIT) from "Mode.EDIT" to "edit")
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
    # Gemini 3 controls. Left out of to_dict() (so of cache keys, history and PNG metadata) while at their defaults:
    # requests that do not use them keep the keys they had before these options existed.
    thinking: str | None = None  # "minimal" | "high": the thinking level (3.1 Flash); None: the model's default
    show_thoughts: bool = False  # ask for the interim thought images (shown, never saved as outputs or cached)
    search: bool = False  # Google Search grounding
    image_search: bool = False  # Google image search too (implies search)

    def __post_init__(self) -> None:
        if self.image_search and not self.search:  # image search is a kind of Google Search grounding
            object.__setattr__(self, "search", True)

    def to_dict(self) -> dict[str, Any]:
        """The options as plain JSON-able data (Vertex-only options and Gemini 3 controls only when set, so the
        cache keys of requests that do not use them hold)."""
        data = asdict(self)
        for name in _VERTEX_OPTIONS:
            if data[name] is None:
                del data[name]
        for name, default in _LATER_DEFAULTS.items():
            if data[name] == default:
                del data[name]
        return data


_LATER_DEFAULTS: dict[str, object] = {"thinking": None, "show_thoughts": False, "search": False,
                                      "image_search": False}


@dataclass(frozen=True)
class ImageRequest:
    """One call to an image model: mode, model, the prompt verbatim, input images and options."""

    mode: Mode
    model: str
    prompt: str
    images: tuple[InputImage, ...] = ()
    options: ImageOptions = field(default_factory=ImageOptions)
    # A refinement: the whole path from the root, sent before this user turn (earlier user turns and each earlier
    # model turn exactly as returned). Empty for a one-shot request.
    history: tuple[Turn, ...] = ()
    # Why `model` is not the id that was asked for (a shut-down id sent as its replacement); not part of the key.
    note: str | None = field(default=None, compare=False)
    region: Region | None = None  # a masked edit or an extend: what is sent is a crop or canvas of `region.source`
    kit: KitUse | None = None  # the exact kit version whose references follow the user's own inputs (kits.py)
    # How `prompt` was made (a style, a template and its variables); a record, not part of the key: `prompt` is
    # already the final text sent.
    craft: PromptCraft | None = field(default=None, compare=False)
    # The Gemini API's `store` (may Google keep this request?): False unless the user opted in; None on Vertex AI,
    # which does not take it. Recorded in the provenance; not part of the key (it does not shape the answer).
    store: bool | None = field(default=None, compare=False)
    # The response's modelVersion (which model answered), recorded in the provenance; not part of the key.
    model_version: str | None = field(default=None, compare=False)

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
        if self.history:  # only refinements carry it, so one-shot keys stay what they were
            canonical["history"] = path_digest(self.history)
        if self.kit is not None:  # only with a kit: the references' hashes and the words that name them
            canonical["kit"] = self.kit.cache_part()
        blob = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def with_variation(self, variation: int) -> ImageRequest:
        """The same request with another variation number (a separate cache entry)."""
        return replace(self, options=replace(self.options, variation=variation))

    def describe(self) -> dict[str, Any]:
        """JSON-able summary of the request (no image bytes, no key)."""
        described: dict[str, Any] = {
            "mode": self.mode.value, "model": self.model, "prompt": self.prompt,
            "images": [{"name": i.name, "sha256": i.sha256, "mime_type": i.mime_type,
                        **({"stripped": list(i.stripped)} if i.stripped else {})} for i in self.images],
            "options": self.options.to_dict(), **({"note": self.note} if self.note else {}),
            **({"history_turns": len(self.history)} if self.history else {}),
            **({"store": self.store} if self.store is not None else {}),
            **({"model_version": self.model_version} if self.model_version else {}),
        }
        if self.region is not None:
            described["region"] = self.region.describe()
        if self.kit is not None:
            described["kit"] = self.kit.describe()
        if self.craft is not None:
            described.update(self.craft.to_dict())
        return described

    def model_prompt(self) -> str:
        """The text sent to the model: the prompt verbatim, or for a region edit the prompt with how to read it
        (for a refinement of one, the rule restated: the crop and mask went in the first turn)."""
        return self.prompt if self.region is None else self.region.model_prompt(self.prompt,
                                                                                 follow_up=bool(self.history))


@dataclass(frozen=True)
class Usage:
    """Token counts as the response's usageMetadata reports them."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    image_tokens: int = 0
    text_tokens: int = 0
    total_tokens: int = 0
    thought_tokens: int = 0  # the model's thinking (usageMetadata.thoughtsTokenCount), charged as text output

    def to_record(self) -> dict[str, int]:
        """The token counts as every JSON record shows them: `prompt`, `output`, `total`."""
        return {"prompt": self.prompt_tokens, "output": self.output_tokens, "total": self.total_tokens}


@dataclass(frozen=True)
class Source:
    """A Google Search grounding source: a web page, or with image search an image and the page it is on."""

    title: str
    uri: str
    image_uri: str | None = None  # image search only: the image itself (uri is the page it comes from)

    def to_dict(self) -> dict[str, str]:
        """{"title", "uri"} (and "image_uri" for an image source), as --json and the cache carry it."""
        data = {"title": self.title, "uri": self.uri}
        if self.image_uri is not None:
            data["image_uri"] = self.image_uri
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Source:
        """The inverse of to_dict()."""
        image_uri = data.get("image_uri")
        return cls(title=str(data.get("title") or ""), uri=str(data.get("uri") or ""),
                   image_uri=None if image_uri is None else str(image_uri))


@dataclass(frozen=True)
class ThoughtImage:
    """An interim image the model drew while thinking: shown when asked for, never saved, cached or charged."""

    data: bytes = field(repr=False)
    mime_type: str


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
    parent: str | None = None  # the history id of the result this one refines (None: the root of a conversation)
    turn: int = 1  # 1 for a root, 2 for its first refinement, ...
    model_turn: tuple[TurnPart, ...] = ()  # the model's content exactly as returned (empty: not known)
    answer_id: str = ""  # the same for callers who shared one in-flight call (each still gets its own `id`)
    # Google Search grounding (empty without search): the sources, and Google's search-suggestions HTML snippet,
    # which must be shown as given. Kept on a cache hit.
    sources: tuple[Source, ...] = ()
    search_entry_point: str | None = None
    search_cost_usd: float = 0.0  # the search's own charge, included in cost_usd (0 on a cache hit)
    # With show_thoughts: the interim images, in order; never on a cache hit (they are not cached).
    thought_images: tuple[ThoughtImage, ...] = ()
    # A transparent result (service.transparency): method, calls, their ids, and any fallback; None otherwise.
    transparent: dict[str, Any] | None = None

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
            "sources": [source.to_dict() for source in self.sources],  # always a list: empty without Search
            "parent": self.parent, "turn": self.turn,  # where a result sits in its conversation (refine)
            # Only when the model asked for was replaced (a shut-down id): why `model` differs from what was asked.
            **({"note": self.request.note} if self.request.note else {}),
            **({"region": self.request.region.describe()} if self.request.region is not None else {}),
            **({"kit": self.request.kit.spec} if self.request.kit is not None else {}),
            **(self.request.craft.to_dict() if self.request.craft is not None else {}),  # style, template, variables
            **({"transparent": self.transparent} if self.transparent else {}),
        }


RECORD_KEYS = (  # the keys of one --json line per image (generate/edit/compose, and batch with `row`, `status`)
    "path", "prompt", "model", "mode", "cached", "cost_usd", "saved_usd", "finish_reason", "text", "width", "height",
    "sha256", "variation", "seed", "tokens", "elapsed_s", "id", "sources", "parent", "turn",
)


_CRAFT_KEYS = ("style", "template", "variables")


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
        if record.get("note"):
            line["note"] = record["note"]
        if "region" in record:  # a region edit's provenance (mask sha256, crop box, feather, or extend)
            line["region"] = record["region"]
        if "kit" in record:  # the kit's NAME@VERSION
            line["kit"] = record["kit"]
        for key in _CRAFT_KEYS:  # a styled or templated prompt: how it was made
            if key in record:
                line[key] = record[key]
        if "transparent" in record:  # a transparent result: how it was made (method, calls, ids, fallback)
            line["transparent"] = record["transparent"]
        lines.append(line)
    return lines
