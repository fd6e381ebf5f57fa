"""Successors: which model to send when the one asked for is gone for this key, and the note that says so.

A `deprecated` or `retiring` model that answers 404 is remembered as shut down for this key for a day (on disk,
under the key's partition name, never the key), so later requests go straight to its successor. The registry's
default follows `replaced_by` to the first model this key has when the key's listing lacks it (or it answered 404);
when the listing offers no successor, the nearest predecessor the key has is used (never after a 404). A model
never changes silently: each change comes with a one-line note.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import replace
from pathlib import Path

from ..backends.discovery import Listing
from ..domain.config import Settings
from ..domain.errors import StudioError
from ..domain.models import DEPRECATED, RETIRING, ModelSpec, all_models, default_model_id, find_model
from ..domain.request import ImageRequest
from .validation import validate_options

__all__ = ["NOTE_SEPARATOR", "REMEMBER_S", "ModelFollower", "RetiredModels", "answered_by", "default_note",
           "default_successor", "may_retry_on_successor", "retired_note", "successor_for"]

NOTE_SEPARATOR = " · "  # between two notes on one request (a note itself may hold "; ")
REMEMBER_S = 24 * 3600.0  # a model that answered 404 is sent as its successor for this long
log = logging.getLogger(__name__)


class RetiredModels:
    """The models that answered 404 NOT_FOUND for one key, each remembered for REMEMBER_S seconds."""

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, float] | None = None

    def _load(self) -> dict[str, float]:
        if self._seen is None:
            self._seen = {}
            try:
                raw = json.loads(self.path.read_text("utf-8")) if self.path is not None else {}
                self._seen = {str(k): float(v) for k, v in raw.items()}
            except (OSError, ValueError, TypeError, AttributeError):
                pass
        return self._seen

    def is_retired(self, model_id: str) -> bool:
        """True when this model answered 404 for this key less than a day ago."""
        with self._lock:
            when = self._load().get(model_id)
        return when is not None and 0 <= self.clock() - when < REMEMBER_S

    def remember(self, model_id: str) -> None:
        """Note that this model answered 404 now (kept on disk when it can be; a failed write is logged)."""
        with self._lock:
            seen = self._load()
            seen[model_id] = self.clock()
            if self.path is None:
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                tmp = self.path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(seen, handle)
                os.replace(tmp, self.path)
            except OSError as exc:
                log.warning("could not save which models answered 404: %s", exc)


def _chain(spec: ModelSpec) -> list[ModelSpec]:
    """The models `replaced_by` leads to from `spec`, nearest first (a loop stops it)."""
    found: list[ModelSpec] = []
    seen = {spec.id}
    target = spec
    while target.replaced_by and target.replaced_by not in seen:
        seen.add(target.replaced_by)
        nxt = find_model(target.replaced_by)
        if nxt is None:
            break
        found.append(nxt)
        target = nxt
    return found


def _predecessors(spec: ModelSpec) -> list[ModelSpec]:
    """Usable models whose `replaced_by` chain reaches `spec`, nearest first (3.1 Flash before 2.5 Flash for 2.1)."""
    ranked = []
    for other in all_models():
        chain = [m.id for m in _chain(other)]
        if other.usable and spec.id in chain:
            ranked.append((chain.index(spec.id), other))
    return [other for _, other in sorted(ranked, key=lambda pair: pair[0])]


def successor_for(spec: ModelSpec, *, retired: Callable[[str], bool],
                  offered: Collection[str] | None = None) -> ModelSpec | None:
    """The first model down `spec`'s replaced_by chain that still works, has not answered 404 and (when this key's
    listing is known) is offered; None when there is none."""
    for target in _chain(spec):
        if target.usable and not retired(target.id) and (offered is None or target.id in offered):
            return target
    return None


def default_successor(spec: ModelSpec, *, retired: Callable[[str], bool],
                      offered: Collection[str] | None = None) -> ModelSpec | None:
    """For the registry's default: its successor (see successor_for), else the nearest predecessor the key has."""
    found = successor_for(spec, retired=retired, offered=offered)
    if found is not None:
        return found
    for other in _predecessors(spec):
        if not retired(other.id) and (offered is None or other.id in offered):
            return other
    return None


def retired_note(model_id: str, used: str) -> str:
    """The note for a model that answered 404: "X answered 404 (shut down?); used Y"."""
    return f"{model_id} answered 404 (shut down?); used {used}"


def default_note(model_id: str, used: str) -> str:
    """The note for a default this key's model list lacks."""
    return f"the default {model_id} is not in this key's model list; used {used}"


def may_retry_on_successor(spec: ModelSpec) -> bool:
    """Whether a 404 from this model is worth one more call on its successor (deprecated or retiring models)."""
    return spec.status in (DEPRECATED, RETIRING) and spec.replaced_by is not None


def answered_by(request: ImageRequest, model_version: str | None) -> ImageRequest:
    """The request with the response's modelVersion recorded (for the provenance), and a note when the model that
    answered is not the id that was sent (Google reroutes some ids to newer models)."""
    if not model_version:
        return request
    request = replace(request, model_version=model_version)
    if model_version == request.model or model_version.startswith(request.model + "-"):
        return request  # the same model (a dated version string of the same id is no reroute)
    note = f"{request.model} was answered by {model_version} (Google rerouted it)"
    return replace(request, note=NOTE_SEPARATOR.join(filter(None, (request.note, note))))


class ModelFollower:
    """One Studio's rules for changing model: what was asked, this key's 404s, and its listing (never waited for)."""

    def __init__(self, settings: Settings, retired: RetiredModels, listing: Callable[[], Listing | None], *,
                 offline: bool) -> None:
        self.settings, self.retired, self.listing, self.offline = settings, retired, listing, offline

    def is_default(self, model_id: str) -> bool:
        """True for the registry's default model when no one named it (NANOBANANA_MODEL, an explicit setting)."""
        return (not self.settings.model_explicit and model_id == self.settings.model
                and model_id == default_model_id())

    @staticmethod
    def switched(request: ImageRequest, target: ModelSpec, note: str) -> ImageRequest:
        """The request sent to `target` instead, with its note (its options checked against the new model)."""
        validate_options(target, request.options)
        return replace(request, model=target.id, note=NOTE_SEPARATOR.join(filter(None, (request.note, note))))

    def followed(self, request: ImageRequest) -> ImageRequest:
        """A model that answered 404 for this key today goes to its successor; the registry's default goes to the
        first model down its replaced_by chain this key has when its listing lacks it. Each change has a note."""
        spec = find_model(request.model)
        if spec is None or self.offline or request.history:
            return request
        default = self.is_default(spec.id)
        follow = default_successor if default else successor_for
        if self.retired.is_retired(spec.id):
            target = successor_for(spec, retired=self.retired.is_retired)
            return request if target is None else self.switched(request, target, retired_note(spec.id, target.id))
        listing = self.listing() if default else None
        if listing is not None and spec.id not in listing.models and any(map(listing.is_image_model,
                                                                               listing.models)):
            target = follow(spec, retired=self.retired.is_retired, offered=set(listing.models))
            if target is not None:
                return self.switched(request, target, default_note(spec.id, target.id))
        return request

    def after_404(self, request: ImageRequest) -> ImageRequest | None:
        """After a 404: the request for the successor of a deprecated or retiring model (or of the default, when it
        has one), or None.

        The model is remembered as shut down for this key for a day. One more call at most: never for a refinement
        (its earlier turns belong to the model that made them), nor when the successor lacks an option asked for.
        """
        spec = find_model(request.model)
        default = spec is not None and self.is_default(spec.id)
        if spec is None or request.history or not (may_retry_on_successor(spec) or (default and spec.replaced_by)):
            return None
        self.retired.remember(spec.id)
        target = successor_for(spec, retired=self.retired.is_retired)  # never back to a predecessor after a 404
        if target is None:
            return None
        try:
            return self.switched(request, target, retired_note(spec.id, target.id))
        except StudioError:
            return None
