"""The image model registry: what each Gemini image model can do, what it costs and whether it still exists.

Loaded from models.json (data, not code), with the user's own models.json (NANOBANANA_MODELS, else
NANOBANANA_HOME/models.json) merged over it model by model and field by field (see user_registry.py). `resolve()` is
the one place a requested model id becomes the model that is actually called: a shut-down id with a replacement is
sent as the replacement, with a note saying so.
"""

from __future__ import annotations

import calendar
import json
import logging
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from .errors import ShutDownModelError
from .user_registry import ORIGIN, REGISTRY, USER, merge_user_registry, user_registry_path

__all__ = [
    "BATCH_DISCOUNT", "DEPRECATED", "DISCOVERED", "GA", "PREVIEW", "REGISTRY", "RETIRING", "SHUT_DOWN", "STATUSES",
    "USER", "Capability", "ModelSpec", "Price", "all_models", "default_model_id", "discovered_model", "find_model",
    "get_model", "known_models", "models_with", "pixel_size", "registry_warnings", "request_timeout_s", "resolve",
]

GA, PREVIEW, DEPRECATED, RETIRING, SHUT_DOWN = "ga", "preview", "deprecated", "retiring", "shut down"
STATUSES = (GA, PREVIEW, DEPRECATED, RETIRING, SHUT_DOWN)  # in lifecycle order: deprecated still works
DISCOVERED = "discovered"  # ModelSpec.source of a model only this key's listing names
log = logging.getLogger(__name__)
BATCH_DISCOUNT = 0.5  # Gemini Batch Mode costs half the interactive price
_UNKNOWN_TABLE = "gemini-2.5"  # an unknown model gets the most conservative table: 1K, the ten classic ratios


@dataclass(frozen=True)
class Price:
    """USD per million tokens, by kind of token."""

    input: float
    output_text: float
    output_image: float


@dataclass(frozen=True)
class ModelSpec:
    """One image model's capabilities, price and lifecycle, as the UI, validation and the emulator use them."""

    id: str
    label: str
    sizes: tuple[str, ...]
    aspect_ratios: tuple[str, ...]
    max_input_images: int
    input_image_tokens: int
    output_image_tokens: dict[str, int]
    price: Price | None
    aliases: tuple[str, ...] = ()
    known: bool = True
    status: str = GA
    since: str | None = None  # GA (or preview) date, YYYY-MM-DD
    deprecated_since: str | None = None  # when Google deprecated it (status deprecated): YYYY-MM-DD
    shutdown: str | None = None  # shut-down date (or announced earliest one): YYYY-MM-DD or YYYY-MM
    replaced_by: str | None = None
    pixels: dict[str, dict[str, tuple[int, int]]] = field(default_factory=dict, repr=False)  # size -> ratio -> w, h
    default_temperature: float | None = None
    default_top_p: float | None = None
    multi_image: bool = True
    multi_turn: bool = True
    note: str | None = None
    # Gemini 3 controls; the defaults (nothing offered) are what an unknown model gets.
    thinking_levels: tuple[str, ...] = ()  # thinking levels a request may choose ("minimal", "high")
    thoughts: bool = False  # can return its interim thought images (include_thoughts)
    search: bool = False  # Google Search grounding
    image_search: bool = False  # Google image search as well as web search
    search_price_per_1000: float | None = None  # USD per 1,000 search queries, at the paid rate
    # Reference images: how many a request may carry in all, and per role where Google publishes it
    # ({"object": 10, "character": 4}); None when the role is not capped separately.
    max_references: int | None = None
    reference_caps: dict[str, int] | None = None
    source: str = REGISTRY  # "registry" (shipped), "user" (added or changed by the user's models.json), "discovered"
    per_image_usd: dict[str, float] = field(default_factory=dict)  # size -> USD, overriding the token-based price

    @property
    def search_price(self) -> float | None:
        """USD for one search query at the paid rate, or None when unknown."""
        return None if self.search_price_per_1000 is None else self.search_price_per_1000 / 1000

    @property
    def default_size(self) -> str:
        """The size used when the request names none: 1K where the model has it."""
        if not self.sizes:
            return "1K"
        return "1K" if "1K" in self.sizes else self.sizes[0]

    @property
    def short_label(self) -> str:
        """The nickname alone, e.g. "Nano Banana Pro"."""
        return self.label.split(" (")[0]

    @property
    def usable(self) -> bool:
        """False for a shut-down id (it answers 404): it is sent as its replacement, or refused."""
        return self.status != SHUT_DOWN

    def image_price(self, size: str | None) -> float | None:
        """Estimated USD for one output image of this size, or None when the price is unknown."""
        if (size or self.default_size) in self.per_image_usd:
            return self.per_image_usd[size or self.default_size]
        if self.price is None:
            return None
        tokens = self.output_image_tokens.get(size or self.default_size)
        return None if tokens is None else tokens * self.price.output_image / 1e6

    def batch_price(self, size: str | None) -> float | None:
        """Estimated USD for one output image of this size in Gemini Batch Mode (half the interactive price)."""
        price = self.image_price(size)
        return None if price is None else price * BATCH_DISCOUNT

    def price_table(self) -> dict[str, dict[str, float | None]]:
        """Per size: {"interactive": usd, "batch": usd} for one output image (None when unknown)."""
        return {size: {"interactive": _round(self.image_price(size)), "batch": _round(self.batch_price(size))}
                for size in self.sizes}

    def price_summary(self, size: str | None = None) -> str:
        """The model line's price words, e.g. "$0.0672 per 1K image · $6.72 per 100 · batch $0.0336 per image"."""
        size = size if size in self.sizes else self.default_size
        price, batch = self.image_price(size), self.batch_price(size)
        if price is None or batch is None:
            return "price unknown"
        return f"${price:.4f} per {size} image · ${price * 100:.2f} per 100 · batch ${batch:.4f} per image"

    def lifecycle(self) -> str:
        """The status in words, e.g. "GA since 2026-05-28" or "shut down on 2026-06-25; use gemini-3-pro-image"."""
        if self.status == SHUT_DOWN:
            then = f" {when(self.shutdown)}" if self.shutdown else ""
            return f"shut down{then}" + (f"; use {self.replaced_by}" if self.replaced_by else "")
        if self.status == DEPRECATED:
            then = f" since {self.deprecated_since}" if self.deprecated_since else ""
            return f"deprecated{then}" + (f"; successor {self.replaced_by}" if self.replaced_by else "")
        if self.status == RETIRING:
            then = f" (earliest shutdown {when(self.shutdown, preposition=False)})" if self.shutdown else ""
            return f"retiring{then}" + (f"; successor {self.replaced_by}" if self.replaced_by else "")
        if not self.known:
            return "not in the registry"
        name = "GA" if self.status == GA else self.status
        return f"{name} since {self.since}" if self.since else name


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def when(date: str | None, *, preposition: bool = True) -> str:
    """A registry date in words: "on 2026-06-25" for a day, "in January 2026" for a month."""
    if not date:
        return "at an unknown date"
    parts = date.split("-")
    if len(parts) == 2:
        month = f"{calendar.month_name[int(parts[1])]} {parts[0]}"
        return f"in {month}" if preposition else month
    return f"on {date}" if preposition else date


def _size_pair(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def _spec_from_entry(entry: dict[str, Any], tables: dict[str, Any]) -> ModelSpec:
    status = entry.get("status", GA)
    if status not in STATUSES:
        raise ValueError(f"models.json: {entry['id']} has status {status!r}; use one of {', '.join(STATUSES)}")
    origin = entry.get(ORIGIN, REGISTRY)
    table = tables.get(entry.get("pixel_table") or "", {})
    sizes, ratios = tuple(entry.get("sizes", ())), tuple(entry.get("aspect_ratios", ()))
    missing = [f"{size} {ratio}" for size in sizes for ratio in ratios if ratio not in table.get(size, {})]
    if missing and origin == REGISTRY:
        raise ValueError(f"models.json: {entry['id']}'s pixel table lacks {', '.join(missing)}")
    price = entry.get("price_per_million")
    caps = entry.get("reference_caps")
    max_inputs = int(entry.get("max_input_images", 0))
    return ModelSpec(
        id=entry["id"],
        label=entry["label"],
        sizes=sizes,
        aspect_ratios=ratios,
        max_input_images=max_inputs,
        input_image_tokens=int(entry.get("input_image_tokens", 0)),
        output_image_tokens={k: int(v) for k, v in (entry.get("output_image_tokens") or {}).items()},
        price=Price(**{"input": 0.0, "output_text": 0.0, "output_image": 0.0, **price}) if price else None,
        aliases=tuple(entry.get("aliases", ())),
        status=status,
        since=entry.get("since"),
        deprecated_since=entry.get("deprecated_since"),
        shutdown=entry.get("shutdown"),
        replaced_by=entry.get("replaced_by"),
        # Only this model's own cells: a size or ratio it does not make has no pixel size (nor one the table lacks).
        pixels={size: {ratio: _size_pair(table[size][ratio]) for ratio in ratios if ratio in table.get(size, {})}
                for size in sizes},
        default_temperature=entry.get("default_temperature"),
        default_top_p=entry.get("default_top_p"),
        multi_image=bool(entry.get("multi_image", True)),
        multi_turn=bool(entry.get("multi_turn", True)),
        note=entry.get("note"),
        thinking_levels=tuple(entry.get("thinking_levels") or ()),
        thoughts=bool(entry.get("thoughts", False)),
        search=bool(entry.get("search", False)),
        image_search=bool(entry.get("image_search", False)),
        search_price_per_1000=(None if entry.get("search_price_per_1000") is None
                               else float(entry["search_price_per_1000"])),
        max_references=max_inputs if entry.get("max_references") is None else int(entry["max_references"]),
        reference_caps=None if not caps else {str(k): int(v) for k, v in caps.items()},
        source=origin,
        per_image_usd={str(k): float(v) for k, v in (entry.get("price_per_image") or {}).items()},
    )


@dataclass(frozen=True)
class _Registry:
    default: str
    models: tuple[ModelSpec, ...]
    tables: dict[str, Any]
    warnings: tuple[str, ...] = ()  # what was wrong with the user's models.json (each names file, model, field)
    timeouts: dict[str, dict[str, float]] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(resources.files(__package__).joinpath("models.json").read_text("utf-8"))
    return data


def _build(path: Path) -> _Registry:
    shipped = _shipped()
    tables = {name: table for name, table in shipped.get("pixel_tables", {}).items() if not name.startswith("_")}
    data, warnings = merge_user_registry(shipped, path, STATUSES, tables)
    specs: list[ModelSpec] = []
    problems = list(warnings)
    originals = {entry["id"]: entry for entry in shipped["models"]}
    for entry in data["models"]:
        try:
            specs.append(_spec_from_entry(entry, tables))
        except (ValueError, TypeError, KeyError) as exc:
            if entry.get(ORIGIN) == REGISTRY:
                raise  # the shipped file is checked by the tests: a mistake there is a bug
            problems.append(f"{path}: model {entry['id']!r}: {exc}; the user's entry is ignored.")
            if entry["id"] in originals:
                specs.append(_spec_from_entry(originals[entry["id"]], tables))
    for problem in problems:
        log.warning("%s", problem)
    timeouts = {name: {size: float(seconds) for size, seconds in table.items()}
                for name, table in shipped.get("timeouts_s", {}).items() if not name.startswith("_")}
    return _Registry(data["default"], tuple(specs), tables, tuple(problems), timeouts)


_cache_lock = threading.Lock()
_cache: dict[str, Any] = {}


def _registry() -> _Registry:
    """The shipped registry with the user's file merged over it, rebuilt when that file changes (or appears)."""
    path = user_registry_path()
    try:
        stat = path.stat()
        stamp: tuple[object, ...] = (str(path), stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = (str(path), None, None)
    with _cache_lock:
        if _cache.get("stamp") != stamp:
            _cache["registry"] = _build(path)
            _cache["stamp"] = stamp
        registry: _Registry = _cache["registry"]
        return registry


def registry_warnings() -> tuple[str, ...]:
    """What is wrong with the user's models.json, one line each (file, model, field); () when nothing is."""
    return _registry().warnings


def request_timeout_s(model_id: str, size: str | None = None) -> float:
    """Seconds to wait for one answer of this model at this size (the registry's timeouts_s; the size's default).

    Long enough for the slowest answers: a timeout after the request was sent may have been billed.
    """
    timeouts = _registry().timeouts
    spec = find_model(model_id)
    size = size or (spec.default_size if spec is not None else "1K")
    default = timeouts.get("default", {})
    own = timeouts.get(spec.id if spec is not None else model_id, {})
    seconds = own.get(size) or default.get(size)
    return seconds if seconds else max([*default.values(), *own.values(), 120.0])


def all_models() -> tuple[ModelSpec, ...]:
    """Every registry entry, shut-down ids included, in display order."""
    return _registry().models


def known_models() -> tuple[ModelSpec, ...]:
    """The registry's models that can still be called (GA, preview, deprecated, retiring), in display order."""
    return tuple(spec for spec in all_models() if spec.usable)


def default_model_id() -> str:
    """The registry's default model id (NANOBANANA_MODEL overrides it in Settings)."""
    return _registry().default


def find_model(model_id: str) -> ModelSpec | None:
    """The registry entry for an id or alias, shut-down ones included; None when the id is not in the registry."""
    for spec in all_models():
        if model_id == spec.id or model_id in spec.aliases:
            return spec
    return None


def _unknown(model_id: str, label: str | None = None, source: str = REGISTRY) -> ModelSpec:
    # Unknown ids (new releases, relays' names) are allowed, but only with what every image model supports.
    table = _registry().tables.get(_UNKNOWN_TABLE, {})
    return ModelSpec(
        id=model_id, label=label or model_id, sizes=("1K",), aspect_ratios=tuple(table.get("1K", {})),
        max_input_images=3, input_image_tokens=258, output_image_tokens={"1K": 1290}, price=None, known=False,
        pixels={size: {r: _size_pair(px) for r, px in ratios.items()} for size, ratios in table.items()},
        max_references=3, source=source,
    )


def discovered_model(model_id: str, display_name: str | None = None) -> ModelSpec:
    """A model this key's listing offers that the registry lacks: conservative checks, price unknown, labelled by
    the listing's display name."""
    return _unknown(model_id, (display_name or "").strip() or None, DISCOVERED)


Capability = Literal["thinking_levels", "thoughts", "search", "image_search"]


def models_with(capability: Capability) -> tuple[ModelSpec, ...]:
    """Registry models that offer a capability: "thinking_levels", "thoughts", "search" or "image_search"."""
    return tuple(spec for spec in known_models() if getattr(spec, capability))


def resolve(model_id: str) -> tuple[ModelSpec, str | None]:
    """The model to call for a requested id, and a one-line note when it is not the id asked for.

    A shut-down id with a replacement gives the replacement (followed to one that still works) and the note
    "ID was shut down on DATE; used NEW". A shut-down id without one raises ShutDownModelError. An unknown id gives
    conservative capabilities and no price.
    """
    spec = find_model(model_id)
    if spec is None:
        return _unknown(model_id), None
    if spec.usable:
        return spec, None
    seen = {spec.id}
    target = spec
    while not target.usable and target.replaced_by and target.replaced_by not in seen:
        seen.add(target.replaced_by)
        target = find_model(target.replaced_by) or _unknown(target.replaced_by)
    if not target.usable:
        raise ShutDownModelError(f"{model_id} was shut down {when(spec.shutdown)} and has no replacement.",
                                 model=model_id)
    return target, f"{model_id} was shut down {when(spec.shutdown)}; used {target.id}"


def get_model(model_id: str) -> ModelSpec:
    """The spec used for a model id: its own, its replacement's for a shut-down id, or a conservative one."""
    try:
        return resolve(model_id)[0]
    except ShutDownModelError:
        return _unknown(model_id)


def pixel_size(model: str | ModelSpec, aspect_ratio: str, size: str | None = None) -> tuple[int, int]:
    """Width and height in pixels of an output image of this model, aspect ratio and size, from its table.

    A ratio or size the table lacks raises KeyError: the table is the model's published one, never a guess.
    """
    spec = model if isinstance(model, ModelSpec) else get_model(model)
    return spec.pixels[size or spec.default_size][aspect_ratio]
