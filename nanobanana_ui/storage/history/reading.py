"""The history's read side: the database connection, pages, searches, lookups, stored files, exports and checks."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from ...imaging.outputs import extension_for
from ...imaging.workers import run_on_cpu
from . import check
from .entries import HistoryEntry, HistoryImage, StoredFile, entry_from_row, manifest_record
from .files import TEMP_PREFIX, ImageFiles, render_thumbnail
from .kits import KitStore
from .migrations import has_fts, migrate

__all__ = ["DB_NAME", "HistoryReader"]

DB_NAME = "history.sqlite3"
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")  # the types files are stored under


class HistoryReader:
    """The read side of the HistoryStore (store.py): opens the database, reads entries and files, checks them."""

    def __init__(self, home: Path, *, redact: Sequence[str] = ()) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.files = ImageFiles(self.home)
        self._redact = tuple(secret for secret in redact if secret)
        self._lock = threading.RLock()  # one connection, one thread at a time
        self._db = sqlite3.connect(self.home / DB_NAME, isolation_level=None, check_same_thread=False, timeout=30)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA foreign_keys = ON")
        with self.files.lock():  # switching to WAL does not wait on a busy database: one process opens at a time
            if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._db.execute("PRAGMA journal_mode = WAL")
            migrate(self._db)
        self.full_text = has_fts(self._db)  # False: search falls back to LIKE
        self.kits = KitStore(self._db, lambda: self._lock, self._write, self.files)  # kits.py: per owner, versioned

    # -- reading ---------------------------------------------------------------------------------------------

    def page(self, *, offset: int = 0, limit: int = 50, search: str | None = None, model: str | None = None,
             mode: str | None = None, owner: str | None = None, include_failures: bool = True) -> list[HistoryEntry]:
        """Entries newest first, filtered; `owner` given: only that owner's."""
        where, args = self._filters(search, model, mode, owner, include_failures)
        with self._lock:
            rows = self._db.execute(f"SELECT * FROM entries WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",
                                    (*args, max(0, limit), max(0, offset))).fetchall()
            return self._entries(rows)

    def count(self, *, search: str | None = None, model: str | None = None, mode: str | None = None,
              owner: str | None = None, include_failures: bool = True) -> int:
        """How many entries the same filters as page() match."""
        where, args = self._filters(search, model, mode, owner, include_failures)
        with self._lock:
            return int(self._db.execute(f"SELECT count(*) FROM entries WHERE {where}", args).fetchone()[0])

    def get(self, entry_id: str, *, owner: str | None = None) -> HistoryEntry | None:
        """One entry by id (None if absent, or if `owner` is given and it is someone else's)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM entries WHERE id = ?" + self._owned(owner),
                                    (entry_id, *self._owner_args(owner))).fetchall()
            entries = self._entries(rows)
        return entries[0] if entries else None

    def mask_path(self, entry: HistoryEntry) -> Path | None:
        """The mask file a region edit's entry keeps (white = the region), or None when it has none on disk."""
        sha = (entry.region or {}).get("mask_sha256")
        return self.mask_file(sha) if isinstance(sha, str) else None

    def kept_input(self, entry: HistoryEntry, role: str) -> StoredFile | None:
        """An input the entry keeps besides what it sent (`role` 'source': a region edit's original; 'mask': its
        mask), or None when it keeps none or its file is gone."""
        with self._lock:
            row = self._db.execute("SELECT sha256, mime_type FROM inputs WHERE entry_id = ? AND role = ?",
                                   (entry.id, role)).fetchone()
        if row is None:
            return None
        path = self.files.path_for(row["sha256"], row["mime_type"])
        return StoredFile(sha256=row["sha256"], mime_type=row["mime_type"], path=path) if path.is_file() else None

    def find_file(self, sha256: str) -> Path | None:
        """A stored image file with this digest, whatever its type (an output, an input, a kept original), or None."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
            return None
        for mime in _IMAGE_TYPES:
            path = self.files.path_for(sha256, mime)
            if path.is_file():
                return path
        return None

    def mask_file(self, sha256: str) -> Path | None:
        """The kept mask with this SHA-256 (as PNG Info reads it from an image's provenance), or None."""
        if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
            return None
        path = self.files.path_for(sha256, "image/png")
        return path if path.is_file() else None

    def path_to(self, entry_id: str, *, owner: str | None = None) -> list[HistoryEntry]:
        """The conversation path from its root to this entry, root first (empty if the entry is absent or not the
        owner's; stops early at an ancestor that was deleted, so check that the first entry is a root)."""
        path: list[HistoryEntry] = []
        seen: set[str] = set()
        current: str | None = entry_id
        while current is not None and current not in seen:
            seen.add(current)
            entry = self.get(current, owner=owner)
            if entry is None:
                break
            path.append(entry)
            current = entry.parent
        return path[::-1]

    def resolve_id(self, text: str, *, owner: str | None = None) -> str | None:
        """The full id for an id, or for a unique start or end of one (6+ characters, as `history --tree` shows)."""
        text = text.strip()
        if self.get(text, owner=owner) is not None:
            return text
        if len(text) < 6 or not re.fullmatch(r"[0-9a-f-]+", text):
            return None
        with self._lock:
            rows = self._db.execute("SELECT id FROM entries WHERE (id LIKE ? OR id LIKE ?)" + self._owned(owner)
                                    + " LIMIT 2", (text + "%", "%" + text, *self._owner_args(owner))).fetchall()
        return str(rows[0][0]) if len(rows) == 1 else None

    def children(self, entry_id: str, *, owner: str | None = None) -> list[HistoryEntry]:
        """The entries that refine this one (its branches), oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM entries WHERE parent = ?" + self._owned(owner) + " ORDER BY id",
                                    (entry_id, *self._owner_args(owner))).fetchall()
            return self._entries(rows)

    def read_file(self, sha256: str, mime_type: str) -> bytes:
        """The bytes of a stored file (output, input or model-turn image), checked against their digest.

        Raises FileNotFoundError when the file is gone or altered.
        """
        path = self.files.path_for(sha256, mime_type)
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise FileNotFoundError(f"{path} no longer holds the bytes it was stored with")
        return data

    def thumbnail(self, image: HistoryImage, size: int = 192) -> Path:
        """A small WEBP of the image, made on first request and kept under home/thumbs."""
        path = self.files.thumb_path(image.sha256, size)
        if not path.exists():
            data = run_on_cpu(render_thumbnail, image.path, size)  # at most the cores' worth at once
            with self.files.lock():
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(6)}-{path.name}")
                    tmp.write_bytes(data)
                    tmp.replace(path)
        return path

    def export_zip(self, entry_ids: Sequence[str], dest: Path, *, owner: str | None = None) -> Path:
        """A ZIP at dest with the entries' images and manifest.jsonl (ids not found or not the owner's are skipped)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f"{TEMP_PREFIX}{secrets.token_hex(6)}-{dest.name}")
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
                lines = []
                for entry_id in dict.fromkeys(entry_ids):
                    entry = self.get(entry_id, owner=owner)
                    if entry is None:
                        continue
                    names = [f"images/{entry.id}-{n + 1}{extension_for(image.mime_type)}"
                             for n, image in enumerate(entry.images)]
                    for name, image in zip(names, entry.images, strict=True):
                        archive.write(image.path, name)
                    lines.append(json.dumps(manifest_record(entry, names), ensure_ascii=False))
                archive.writestr("manifest.jsonl", "".join(line + "\n" for line in lines))
            tmp.replace(dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    # -- checking --------------------------------------------------------------------------------------------

    def verify(self) -> list[str]:
        """Problems, one line each: missing or altered image files, orphan files, leftover temp files."""
        with self.files.lock(), self._lock:
            return check.find_problems(self._db, self.files).lines()

    def repair(self) -> list[str]:
        """Fix what verify() finds (unlink missing images, mark their entries, delete orphans); returns the fixes."""
        with self.files.lock(), self._lock:
            return check.repair(self._db, self.files)

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    # -- helpers ---------------------------------------------------------------------------------------------

    def _write(self) -> _Transaction:
        return _Transaction(self._db, self._lock)

    @staticmethod
    def _owned(owner: str | None) -> str:
        return "" if owner is None else " AND owner = ?"

    @staticmethod
    def _owner_args(owner: str | None) -> tuple[str, ...]:
        return () if owner is None else (owner,)

    def _filters(self, search: str | None, model: str | None, mode: str | None, owner: str | None,
                 include_failures: bool) -> tuple[str, tuple[str, ...]]:
        clauses, args = ["1"], []
        words = re.findall(r"\w+", search or "")
        if words and self.full_text:
            clauses.append("rowid IN (SELECT rowid FROM entries_fts WHERE entries_fts MATCH ?)")
            args.append(" ".join(f'"{word}"*' for word in words))
        elif search and search.strip():
            clauses.append("prompt LIKE ? ESCAPE '\\'")
            args.append("%" + re.sub(r"([\\%_])", r"\\\1", search.strip()) + "%")
        if mode == "refine":  # refinements (turns after the first) are edits with a parent
            clauses.append("parent IS NOT NULL")
        elif mode is not None:  # generate / edit / compose: the first turns made that way
            clauses.append("parent IS NULL")
        for column, value in (("model", model), ("mode", None if mode == "refine" else mode), ("owner", owner)):
            if value is not None:
                clauses.append(f"{column} = ?")
                args.append(value)
        if not include_failures:
            clauses.append("error IS NULL")
        return " AND ".join(clauses), tuple(args)

    def _rows_of(self, query: str, ids: list[str]) -> Iterator[sqlite3.Row]:
        """The rows of `query` (its `{ids}` is the list of entry ids) for these entries, 500 ids at a time (SQLite
        limits how many parameters one statement may take)."""
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            yield from self._db.execute(query.format(ids=", ".join("?" * len(chunk))), chunk)

    def _entries(self, rows: list[sqlite3.Row]) -> list[HistoryEntry]:
        ids = [row["id"] for row in rows]
        images: dict[str, list[HistoryImage]] = {entry_id: [] for entry_id in ids}
        for image in self._rows_of("SELECT * FROM images WHERE entry_id IN ({ids}) ORDER BY entry_id, position", ids):
            images[image["entry_id"]].append(HistoryImage(
                sha256=image["sha256"], mime_type=image["mime_type"], width=image["width"],
                height=image["height"], path=self.files.path_for(image["sha256"], image["mime_type"])))
        inputs: dict[str, list[StoredFile]] = {entry_id: [] for entry_id in ids}
        for item in self._rows_of("SELECT * FROM files WHERE kind = 'input' AND entry_id IN ({ids}) "
                                  "ORDER BY entry_id, position", ids):
            inputs[item["entry_id"]].append(StoredFile(
                sha256=item["sha256"], mime_type=item["mime_type"],
                path=self.files.path_for(item["sha256"], item["mime_type"])))
        return [entry_from_row(row, tuple(images[row["id"]]), tuple(inputs[row["id"]])) for row in rows]


class _Transaction:
    """`with store._write() as db:` runs a BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error) under the thread lock."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock) -> None:
        self._db, self._lock = db, lock

    def __enter__(self) -> sqlite3.Connection:
        self._lock.acquire()
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._lock.release()
            raise
        return self._db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            self._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self._lock.release()
