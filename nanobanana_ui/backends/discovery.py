"""Model discovery: which image models a key can use, listed once in the background and remembered for a day.

The listing (`models.list()`) runs in a daemon thread, so it never delays start-up or a request; until it answers,
and whenever it fails, the registry is what is offered. An answer is kept on disk under NANOBANANA_HOME/models/,
in a file named by the key's salted partition hash (never the key), for LISTING_TTL_S seconds.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..domain.models import ModelSpec, discovered_model, find_model, known_models

__all__ = ["LISTING_TTL_S", "RETRY_AFTER_S", "Availability", "ListedModel", "Listing", "ListingStore", "ModelDiscovery",
           "availability_from", "is_image_model"]

LISTING_TTL_S = 24 * 3600.0  # a key's listing is asked for at most once a day
RETRY_AFTER_S = 600.0  # after a failed listing, the registry is shown and the listing is tried again this much later
log = logging.getLogger(__name__)


# Words that say "this model makes images" in a display name or description (not "understands images").
_MAKES_IMAGES = re.compile(
    r"image[- ]?(generation|generating|creation|editing|model)|(generat|creat|mak|edit)\w*\s+(\w+\s+){0,2}images?\b"
    r"|text[- ]to[- ]image|native image|banana", re.IGNORECASE)


def is_image_model(model_id: str, display_name: str = "", description: str = "") -> bool:
    """Whether a listed model is a Gemini image model: its id has "image" or "banana" (Google's own naming), or its
    display name or description names image generation. Imagen's predict-only models are left out."""
    if model_id.startswith("imagen"):
        return False
    lowered = model_id.lower()
    if "image" in lowered or "banana" in lowered:
        return True
    return any(_MAKES_IMAGES.search(text or "") for text in (display_name, description))


@dataclass(frozen=True)
class ListedModel:
    """One model of a key's listing: its id, and the display name and description Google gives it."""

    id: str
    display_name: str = ""
    description: str = ""


@dataclass(frozen=True)
class Listing:
    """One answer of models.list(): the ids that support generateContent, when, and from which endpoint.

    `details` holds each id's display name and description (a listing saved by an older version has none).
    """

    models: tuple[str, ...]
    fetched_at: float
    endpoint: str
    details: dict[str, tuple[str, str]] = field(default_factory=dict)

    def is_image_model(self, model_id: str) -> bool:
        """Whether this listing's model is an image model (by id, display name or description)."""
        return is_image_model(model_id, *self.details.get(model_id, ("", "")))

    def display_name(self, model_id: str) -> str:
        """The listing's display name for a model, or "" when it gave none."""
        return self.details.get(model_id, ("", ""))[0]


@dataclass(frozen=True)
class Availability:
    """The image models a key can use: registry models first (labels, prices), then unknown ones the key offers."""

    models: tuple[ModelSpec, ...]
    notes: tuple[str, ...] = ()  # why a registry model is hidden, or why the registry is shown as it is
    listed: bool = False  # True: drawn from this key's own listing; False: the registry (not listed yet, or failed)
    fetched_at: float | None = None

    @property
    def ids(self) -> tuple[str, ...]:
        """The usable model ids, in display order."""
        return tuple(spec.id for spec in self.models)


class ListingStore:
    """One key's listing on disk: models/<partition>.json, written atomically, readable by this user only."""

    def __init__(self, directory: Path, partition: str) -> None:
        self.path = directory / f"{partition}.json"

    def load(self) -> Listing | None:
        """The stored listing, or None when there is none or it cannot be read."""
        try:
            raw = json.loads(self.path.read_text("utf-8"))
            details = {str(k): (str(v[0]), str(v[1])) for k, v in (raw.get("details") or {}).items()}
            return Listing(models=tuple(str(m) for m in raw["models"]), fetched_at=float(raw["fetched_at"]),
                           endpoint=str(raw["endpoint"]), details=details)
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, listing: Listing) -> None:
        """Write the listing (a failure to write is logged: the listing then lives in memory only)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"models": list(listing.models), "fetched_at": listing.fetched_at,
                           "endpoint": listing.endpoint,
                           "details": {k: list(v) for k, v in listing.details.items()}}, handle)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("could not save the model listing: %s", exc)


class ModelDiscovery:
    """Lists a key's models once in a background thread and turns the answer into an Availability.

    `lister` returns every model the key can call with generateContent, as ids or ListedModels (with display name
    and description); it runs in the thread and may block.
    None means this backend cannot list models, so the registry is always shown. `clock` is time.time unless a
    test moves it.
    """

    def __init__(self, *, lister: Callable[[], Sequence[str | ListedModel]] | None, store: ListingStore | None,
                 endpoint: str, clock: Callable[[], float] = time.time, ttl_s: float = LISTING_TTL_S) -> None:
        self._lister = lister
        self._store = store
        self._endpoint = endpoint
        self.clock = clock
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._listing: Listing | None = None
        self._loaded = False
        self._failure: str | None = None
        self._failed_at: float | None = None
        self._thread: threading.Thread | None = None

    def _fresh(self, listing: Listing | None) -> bool:
        if listing is None or listing.endpoint != self._endpoint:
            return False
        return 0 <= self.clock() - listing.fetched_at < self.ttl_s

    def current(self) -> Listing | None:
        """This key's listing if one younger than a day is held (in memory or on disk), else None."""
        with self._lock:
            if not self._loaded and self._store is not None:
                self._listing, self._loaded = self._store.load(), True
            return self._listing if self._fresh(self._listing) else None

    def start(self) -> bool:
        """Start a listing in the background unless a fresh one is held, one is running, or one failed recently.

        Returns True when a listing was started. Never blocks on the network.
        """
        if self._lister is None or self.current() is not None:
            return False
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            if self._failed_at is not None and self.clock() - self._failed_at < RETRY_AFTER_S:
                return False
            self._thread = threading.Thread(target=self._run, name="model-discovery", daemon=True)
            self._thread.start()
        return True

    def refresh(self) -> bool:
        """Forget the held listing (memory and the day-old copy's freshness) and list again in the background."""
        with self._lock:
            self._listing, self._loaded, self._failed_at = None, True, None
        return self.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a running listing to finish (for tests and scripts); True when none is running any more."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        lister = self._lister
        assert lister is not None
        try:
            listed = [m if isinstance(m, ListedModel) else ListedModel(str(m)) for m in lister()]
        except Exception as exc:  # noqa: BLE001 - any failure means "show the registry"; the reason is kept
            reason = getattr(exc, "message", None) or type(exc).__name__
            log.warning("could not list this key's models (showing the registry): %s", reason)
            with self._lock:
                self._failure, self._failed_at = str(reason), self.clock()
            return
        ids = tuple(dict.fromkeys(m.id.removeprefix("models/") for m in listed))
        details = {m.id.removeprefix("models/"): (m.display_name, m.description) for m in listed
                   if m.display_name or m.description}
        listing = Listing(models=ids, fetched_at=self.clock(), endpoint=self._endpoint, details=details)
        if self._store is not None:
            self._store.save(listing)
        with self._lock:
            self._listing, self._loaded, self._failure, self._failed_at = listing, True, None, None

    def availability(self) -> Availability:
        """What the key can use now: its listing when held, else the registry (and a listing is started)."""
        listing = self.current()
        if listing is None:
            self.start()
            with self._lock:
                failure = self._failure
            why = (f"This key's model list could not be read ({failure}); showing every model in the registry."
                   if failure else "This key's model list has not arrived yet; showing every model in the registry."
                   if self._lister is not None else "This backend cannot list models; showing the registry.")
            return Availability(models=known_models(), notes=(why,), listed=False)
        return availability_from(listing)


def availability_from(listing: Listing) -> Availability:
    """Registry models the listing includes (in registry order), then the unknown image models it offers."""
    offered = set(listing.models)
    # An odd answer (a relay, a proxy) that names no image model: keep the registry.
    if not any(listing.is_image_model(model_id) for model_id in offered):
        return Availability(models=known_models(), notes=("This key's model list names no image model; showing every "
                                                          "model in the registry.",), listed=False)
    models: list[ModelSpec] = []
    notes: list[str] = []
    for spec in known_models():
        if spec.id in offered or offered.intersection(spec.aliases):
            models.append(spec)
        else:
            notes.append(f"{spec.short_label} ({spec.id}) is hidden: this key's model list does not include it "
                         "(not enabled for this key or project, or not offered in your region).")
    for model_id in listing.models:
        if find_model(model_id) is None and listing.is_image_model(model_id):
            # conservative limits, price unknown, named as Google names it
            models.append(discovered_model(model_id, listing.display_name(model_id)))
    return Availability(models=tuple(models), notes=tuple(notes), listed=True, fetched_at=listing.fetched_at)
