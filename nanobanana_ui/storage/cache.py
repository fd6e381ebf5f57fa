"""The result cache: a size-bounded diskcache under NANOBANANA_HOME that never charges twice for the same request.

Each image's bytes are stored once, content-addressed, as a file of diskcache's own. A saved output is never that
file (a user may edit it in place): it is a copy, a reflink sharing the blocks where the file system offers one.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import diskcache

__all__ = ["CachedEntry", "ResultCache"]

ENTRY_PREFIX = "result:"
BLOB_PREFIX = "image:"


@dataclass(frozen=True)
class CachedEntry:
    """What a cache hit replays: image digests and types, the model's words, finish reason, tokens and cost."""

    images: tuple[tuple[str, str], ...]  # (sha256, mime type)
    text: str
    finish_reason: str | None
    usage: dict[str, int]
    cost_usd: float | None
    sources: tuple[dict[str, str], ...] = ()  # Google Search sources {"title", "uri"}; thought images: never cached
    search_entry_point: str | None = None
    paths: tuple[Path, ...] = ()  # where each image's bytes are, found at lookup (not stored)
    # The model's turn as returned (turns.parts_to_json form; its images are blobs here too). None: not stored, as
    # in entries made before refinements existed.
    model_parts: list[dict[str, Any]] | None = None
    model_version: str | None = None  # the response's modelVersion (which model answered); None in older entries


_STORED = frozenset(f.name for f in fields(CachedEntry)) - {"paths"}


class ResultCache:
    """Maps a request's cache key to the images and metadata of its first successful answer."""

    def __init__(self, directory: Path, size_limit: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(str(directory), size_limit=size_limit)
        self._entry_prefix = ENTRY_PREFIX
        self._owns = True

    def partition(self, namespace: str) -> ResultCache:
        """A view of this cache whose entries only it sees (e.g. one visitor's key, by a salted hash of it).

        Image bytes stay shared (content-addressed, found only through an entry); closing the view closes nothing.
        """
        view = object.__new__(ResultCache)
        view._cache, view._entry_prefix, view._owns = self._cache, f"{ENTRY_PREFIX}{namespace}:", False
        return view

    def lookup(self, key: str) -> CachedEntry | None:
        """The entry for a key, or None if absent or if any of its images is gone or damaged."""
        raw = self._cache.get(self._entry_prefix + key)
        if raw is None:
            return None
        entry = CachedEntry(**{name: value for name, value in raw.items() if name in _STORED})  # newer keys: skipped
        paths = [self.image_path(sha) for sha, _ in entry.images]
        if all(path is not None for path in paths):
            return replace(entry, paths=tuple(path for path in paths if path is not None))
        self._cache.delete(self._entry_prefix + key)  # an evicted or altered image: ask the API again
        return None

    def store(self, key: str, images: list[tuple[bytes, str]], entry_fields: dict[str, Any]) -> list[Path | None]:
        """Record a successful answer and return where each image is kept (an image already held is not rewritten)."""
        shas = tuple((hashlib.sha256(data).hexdigest(), mime) for data, mime in images)
        paths = []
        for (sha, _), (data, _) in zip(shas, images, strict=True):
            path = self.image_path(sha)
            if path is None:
                self._cache.set(BLOB_PREFIX + sha, io.BytesIO(data), read=True)  # read=True: kept as a file
                path = self.image_path(sha)
            paths.append(path)
        self._cache.set(self._entry_prefix + key, {"images": shas, **entry_fields})
        return paths

    def keep_blob(self, data: bytes) -> str:
        """Store bytes content-addressed (e.g. a model turn's raw images) and return their digest."""
        sha = hashlib.sha256(data).hexdigest()
        if self.image_path(sha) is None:
            self._cache.set(BLOB_PREFIX + sha, io.BytesIO(data), read=True)
        return sha

    def blob(self, sha256: str) -> bytes | None:
        """The bytes stored under a digest (checked), or None when gone."""
        path = self.image_path(sha256)
        try:
            return path.read_bytes() if path is not None else None
        except FileNotFoundError:  # evicted between the check and the read
            return None

    def image_path(self, sha256: str) -> Path | None:
        """The file holding an image's bytes, after checking they still match the digest."""
        handle = self._cache.get(BLOB_PREFIX + sha256, read=True)
        if handle is None:
            return None
        with handle:
            if hashlib.sha256(handle.read()).hexdigest() == sha256:
                return Path(handle.name)
        self._cache.delete(BLOB_PREFIX + sha256)  # someone changed the file in place
        return None

    def __len__(self) -> int:
        return sum(1 for key in self._cache.iterkeys() if str(key).startswith(self._entry_prefix)
                   and ":" not in str(key)[len(self._entry_prefix):])

    def close(self) -> None:
        """Close the cache's database connection (a partition leaves it to the cache it came from)."""
        if self._owns:
            self._cache.close()
