"""HistoryStore: every request (failures too) in SQLite at home/history.sqlite3, its images stored once by digest.

Crash safety: an entry's files are complete on disk before its row is committed, and files are removed only after
the rows that used them are gone, so a process killed at any point leaves at worst a complete orphan file
(`verify()` reports it, `repair()` removes it). File changes and their rows are serialised by `ImageFiles.lock()`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import sqlite3
import threading
import time
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...domain.errors import NoImageError, StudioError
from ...domain.request import ImageRequest, ImageResult
from ...domain.text_request import TextRequest, TextResult
from ...domain.turns import parts_to_json
from ...imaging.outputs import extension_for
from ...imaging.workers import run_on_cpu
from . import check
from .entries import HistoryEntry, HistoryImage, StoredFile, entry_from_row, manifest_record
from .files import TEMP_PREFIX, ImageFiles, render_thumbnail, sniff_mime
from .kits import KitStore
from .migrations import has_fts, migrate

__all__ = ["DB_NAME", "HistoryStore", "new_entry_id"]

DB_NAME = "history.sqlite3"
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp", "image/gif")  # the types files are stored under
_ENTRY_COLUMNS = ("id", "created", "mode", "model", "prompt", "options", "input_hashes", "text", "finish_reason",
                  "prompt_tokens", "output_tokens", "total_tokens", "cost_usd", "cached", "elapsed_s", "error",
                  "error_type", "owner", "sources", "search_entry_point", "parent", "turn", "model_turn", "region",
                  "kit", "craft")


def new_entry_id(now_ns: int | None = None) -> str:
    """A time-sortable unique id: nanoseconds since the epoch in hex, then random hex."""
    return f"{time.time_ns() if now_ns is None else now_ns:016x}-{secrets.token_hex(4)}"


def _created(entry_id: str) -> str:
    return datetime.fromtimestamp(int(entry_id.split("-")[0], 16) / 1e9, tz=UTC).isoformat()


class HistoryStore:
    """The persistent history of one data directory, shared safely by threads and processes (CLI + app)."""

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

    # -- writing ---------------------------------------------------------------------------------------------

    def record_result(self, result: ImageResult, *, owner: str | None = None, entry_id: str | None = None) -> str:
        """Record a success (or cache hit) with its saved images, inputs and model turn; returns the entry's id.

        `entry_id` (default: a new one) lets the caller hand out the id before the row exists (the Studio does).
        """
        found = [(image, Path(image.path)) for image in result.images
                 if image.path is not None and Path(image.path).is_file()]
        usage = result.usage
        row = self._row(result.request, owner, text=result.text, finish_reason=result.finish_reason,
                        prompt_tokens=usage.prompt_tokens, output_tokens=usage.output_tokens,
                        total_tokens=usage.total_tokens, cost_usd=result.cost_usd, cached=int(result.cached),
                        elapsed_s=result.elapsed_s, search_entry_point=result.search_entry_point,
                        sources=json.dumps([source.to_dict() for source in result.sources], ensure_ascii=False),
                        parent=result.parent, turn=result.turn,
                        model_turn=json.dumps(parts_to_json(result.model_turn)) if result.model_turn else None)
        if entry_id is not None:
            row.update(id=entry_id, created=_created(entry_id))
        if len(found) < len(result.images):
            row.update(error="image file missing", error_type="MissingImage")
        model_files = [(part.data, part.mime_type or "application/octet-stream")
                       for part in result.model_turn if part.data is not None]
        with self.files.lock():
            images = [(image, *self.files.place_copy(path, image.mime_type), path.name) for image, path in found]
            extra = self._place_turn_files(result.request, model_files)
            inputs = self._place_inputs(result.request)
            with self._write() as db:  # only now, with every file complete, does the row appear
                db.execute(f"INSERT INTO entries ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                           tuple(row.values()))
                db.executemany("INSERT INTO images VALUES (?, ?, ?, ?, ?, ?, ?)", [
                    (row["id"], position, sha, image.mime_type, image.width, image.height, name)
                    for position, (image, _, sha, name) in enumerate(images)])
                db.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?)", [(row["id"], *item) for item in extra])
                db.executemany("INSERT INTO inputs VALUES (?, ?, ?, ?)", [(row["id"], *kept) for kept in inputs])
        return str(row["id"])

    def _place_turn_files(self, request: ImageRequest,
                          model_files: Sequence[tuple[bytes, str]]) -> list[tuple[str, int, str, str]]:
        """Store a request's input images and a model turn's images by digest (under the lock); their file rows."""
        rows = []
        for kind, blobs in (("input", [(image.data, image.mime_type) for image in request.images]),
                            ("model", list(model_files))):
            for position, (data, mime) in enumerate(blobs):
                sha = hashlib.sha256(data).hexdigest()
                self.files.place_bytes(data, sha, mime)
                rows.append((kind, position, sha, mime))
        return rows

    def _place_inputs(self, request: ImageRequest) -> list[tuple[str, str, str]]:
        """Store the inputs a request's entry keeps (a region edit's original and mask, so that it can be re-run and
        refined: what was sent is only a crop of them); (role, sha, mime)."""
        kept = []
        for number, reference in enumerate(request.kit.references if request.kit is not None else (), start=1):
            # a kit's images, as sent: a re-run uses this exact version even after the kit has changed
            self.files.place_bytes(reference.image.data, reference.image.sha256, reference.image.mime_type)
            kept.append((f"kit-{number}", reference.image.sha256, reference.image.mime_type))
        region = request.region
        if region is None:
            return kept
        if region.source:  # the original's exact bytes: its digest is in the region's cache key
            mime = sniff_mime(region.source)
            self.files.place_bytes(region.source, region.source_sha256, mime)
            kept.append(("source", region.source_sha256, mime))
        if region.mask_png is not None and region.mask_sha256 is not None:
            self.files.place_bytes(region.mask_png, region.mask_sha256, "image/png")
            kept.append(("mask", region.mask_sha256, "image/png"))
        return kept

    def record_failure(self, request: ImageRequest, error: StudioError, *, elapsed_s: float,
                       owner: str | None = None, parent: str | None = None, turn: int = 1) -> str:
        """Record a failed request (its inputs kept, to try again) with its error; returns the new entry's id."""
        words = error.text if isinstance(error, NoImageError) else ""
        reason = error.reason if isinstance(error, NoImageError) else None
        row = self._row(request, owner, text=words, finish_reason=reason, elapsed_s=elapsed_s,
                        error=self._clean(error.message), error_type=type(error).__name__, parent=parent, turn=turn)
        with self.files.lock():
            extra = self._place_turn_files(request, ())
            inputs = self._place_inputs(request)
            with self._write() as db:
                db.execute(f"INSERT INTO entries ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                           tuple(row.values()))
                db.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?)", [(row["id"], *item) for item in extra])
                db.executemany("INSERT INTO inputs VALUES (?, ?, ?, ?)", [(row["id"], *kept) for kept in inputs])
        return str(row["id"])

    def record_text(self, request: TextRequest, *, result: TextResult | None = None,
                    error: StudioError | None = None, elapsed_s: float = 0.0, owner: str | None = None,
                    entry_id: str | None = None) -> str:
        """Record a text-model request (mode `enhance`, `describe` or `describe-edit`): the prompt it wrote, or its
        error, with its input images kept; returns the entry's id."""
        entry_id = entry_id or new_entry_id()
        row: dict[str, Any] = dict.fromkeys(_ENTRY_COLUMNS)
        row.update(id=entry_id, created=_created(entry_id), mode=request.kind, model=request.model,
                   prompt=self._clean(request.text), owner=owner, sources="[]", cached=0, elapsed_s=elapsed_s, turn=1,
                   options=json.dumps({"style": request.style} if request.style else {}),
                   input_hashes=json.dumps([image.sha256 for image in request.images]), text="")
        if result is not None:
            usage = result.usage
            row.update(text=self._clean(result.prompt), finish_reason=result.finish_reason,
                       prompt_tokens=usage.prompt_tokens, output_tokens=usage.output_tokens,
                       total_tokens=usage.total_tokens, cost_usd=result.cost_usd, cached=int(result.cached))
        if error is not None:
            row.update(error=self._clean(error.message), error_type=type(error).__name__)
        with self.files.lock():
            kept = []
            for position, image in enumerate(request.images):
                sha = hashlib.sha256(image.data).hexdigest()
                self.files.place_bytes(image.data, sha, image.mime_type)
                kept.append((entry_id, "input", position, sha, image.mime_type))
            with self._write() as db:
                db.execute(f"INSERT INTO entries ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                           tuple(row.values()))
                db.executemany("INSERT INTO files VALUES (?, ?, ?, ?, ?)", kept)
        return entry_id

    def delete(self, entry_id: str, *, owner: str | None = None) -> bool:
        """Delete an entry and its image files (a file another entry also uses is kept); False if not found."""
        with self.files.lock():
            with self._write() as db:
                if db.execute("SELECT 1 FROM entries WHERE id = ?" + self._owned(owner),
                              (entry_id, *self._owner_args(owner))).fetchone() is None:
                    return False
                images = db.execute("SELECT sha256, mime_type FROM images WHERE entry_id = ? UNION "
                                    "SELECT sha256, mime_type FROM files WHERE entry_id = ? UNION "
                                    "SELECT sha256, mime_type FROM inputs WHERE entry_id = ?",
                                    (entry_id, entry_id, entry_id)).fetchall()
                db.execute("DELETE FROM images WHERE entry_id = ?", (entry_id,))
                db.execute("DELETE FROM files WHERE entry_id = ?", (entry_id,))
                db.execute("DELETE FROM inputs WHERE entry_id = ?", (entry_id,))
                db.execute("DELETE FROM entries WHERE id = ?", (entry_id,))
                unused = [(sha, mime) for sha, mime in images
                          if db.execute("SELECT 1 FROM images WHERE sha256 = ? UNION ALL "
                                        "SELECT 1 FROM files WHERE sha256 = ? UNION ALL "
                                        "SELECT 1 FROM inputs WHERE sha256 = ? UNION ALL "
                                        "SELECT 1 FROM kit_refs WHERE sha256 = ?", (sha, sha, sha, sha)).fetchone()
                          is None]
            for sha, mime in unused:  # after the commit: a kill here leaves orphans, never a dangling row
                self.files.remove(sha, mime)
        return True

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

    def _clean(self, text: str | None) -> str | None:
        for secret in self._redact:
            text = text.replace(secret, "[redacted]") if text else text
        return text

    def _row(self, request: ImageRequest, owner: str | None, **fields: object) -> dict[str, Any]:
        entry_id = new_entry_id()
        row: dict[str, Any] = dict.fromkeys(_ENTRY_COLUMNS)
        row.update(id=entry_id, created=_created(entry_id), mode=request.mode.value, model=request.model,
                   prompt=self._clean(request.prompt), cached=0, owner=owner, text="",
                   options=self._clean(json.dumps(request.options.to_dict(), sort_keys=True)),
                   input_hashes=json.dumps([image.sha256 for image in request.images]), sources="[]")
        if request.region is not None:  # the original, not the crop and mask sent: what a re-run starts from
            row.update(input_hashes=json.dumps([request.region.source_sha256]),
                       region=json.dumps(request.region.describe(), sort_keys=True))
        if request.kit is not None:  # NAME@VERSION and each reference's name, role and hash
            row.update(kit=self._clean(json.dumps(request.kit.describe(), ensure_ascii=False)))
        if request.craft is not None:  # the style id, template and variables the prompt was made from
            row["craft"] = self._clean(json.dumps(request.craft.to_dict(), sort_keys=True, ensure_ascii=False))
        row.update(fields)
        row["text"] = self._clean(row["text"] or "")
        return row

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
