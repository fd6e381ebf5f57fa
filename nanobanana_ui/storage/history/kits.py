"""The kits' rows beside the history: each version written once and never changed, images stored by content."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .files import ImageFiles

__all__ = ["KitRow", "KitStore", "StoredKit", "StoredReference"]


@dataclass(frozen=True)
class StoredReference:
    """One reference of a stored kit version: name, role, guidance and its content-addressed file."""

    name: str
    role: str
    guidance: str
    sha256: str
    mime_type: str
    path: Path


@dataclass(frozen=True)
class StoredKit:
    """One version of a kit as stored: its name, version, when it was made, its line of text and references."""

    name: str
    version: int
    created: str
    text: str
    references: tuple[StoredReference, ...]


@dataclass(frozen=True)
class KitRow:
    """A reference to write: name, role, guidance, digest and type; `data` when the file may not be stored yet."""

    name: str
    role: str
    guidance: str
    sha256: str
    mime_type: str
    data: bytes | None = field(default=None, repr=False)


def _owner(owner: str | None) -> str:
    return owner or ""


class KitStore:
    """Kits in the history's database; `owner` None is the local user, else a public-mode visitor's partition."""

    def __init__(self, db: sqlite3.Connection, lock: Callable[[], AbstractContextManager[Any]],
                 write: Callable[[], AbstractContextManager[sqlite3.Connection]], files: ImageFiles) -> None:
        self._db, self._read_lock, self._write, self.files = db, lock, write, files

    def names(self, *, owner: str | None = None) -> list[tuple[str, int]]:
        """Every kit of this owner with its newest version, by name."""
        with self._read_lock():
            rows = self._db.execute("SELECT name, max(version) FROM kits WHERE owner = ? GROUP BY name ORDER BY name",
                                    (_owner(owner),)).fetchall()
        return [(str(name), int(version)) for name, version in rows]

    def versions(self, name: str, *, owner: str | None = None) -> list[int]:
        """The versions of a kit, oldest first (empty: no such kit for this owner)."""
        with self._read_lock():
            rows = self._db.execute("SELECT version FROM kits WHERE owner = ? AND name = ? ORDER BY version",
                                    (_owner(owner), name)).fetchall()
        return [int(row[0]) for row in rows]

    def get(self, name: str, version: int | None = None, *, owner: str | None = None) -> StoredKit | None:
        """One version of a kit (None: the newest), or None when this owner has no such kit or version."""
        with self._read_lock():
            if version is None:
                found = self._db.execute("SELECT max(version) FROM kits WHERE owner = ? AND name = ?",
                                         (_owner(owner), name)).fetchone()
                if found is None or found[0] is None:
                    return None
                version = int(found[0])
            row = self._db.execute("SELECT created, text FROM kits WHERE owner = ? AND name = ? AND version = ?",
                                   (_owner(owner), name, version)).fetchone()
            if row is None:
                return None
            refs = self._db.execute("SELECT name, role, guidance, sha256, mime_type FROM kit_refs WHERE owner = ? "
                                    "AND kit = ? AND version = ? ORDER BY position",
                                    (_owner(owner), name, version)).fetchall()
        return StoredKit(name=name, version=version, created=str(row[0]), text=str(row[1]), references=tuple(
            StoredReference(name=r[0], role=r[1], guidance=r[2], sha256=r[3], mime_type=r[4],
                            path=self.files.path_for(r[3], r[4])) for r in refs))

    def save(self, name: str, references: Sequence[KitRow], *, text: str = "", owner: str | None = None) -> int:
        """Write the next version of a kit (1 for a new one): its files first, then its rows; returns the version."""
        with self.files.lock():
            for ref in references:
                if ref.data is not None:
                    self.files.place_bytes(ref.data, ref.sha256, ref.mime_type)
            with self._write() as db:
                found = db.execute("SELECT max(version) FROM kits WHERE owner = ? AND name = ?",
                                   (_owner(owner), name)).fetchone()
                version = int(found[0] or 0) + 1
                db.execute("INSERT INTO kits (owner, name, version, created, text) VALUES (?, ?, ?, ?, ?)",
                           (_owner(owner), name, version, datetime.now(UTC).isoformat(), text))
                db.executemany("INSERT INTO kit_refs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                    (_owner(owner), name, version, position, ref.name, ref.role, ref.guidance, ref.sha256,
                     ref.mime_type) for position, ref in enumerate(references)])
        return version
