"""HistoryStore: every request (failures too) in SQLite at home/history.sqlite3, its images stored once by digest.

Crash safety: an entry's files are complete on disk before its row is committed, and files are removed only after
the rows that used them are gone, so a process killed at any point leaves at worst a complete orphan file
(`verify()` reports it, `repair()` removes it). File changes and their rows are serialised by `ImageFiles.lock()`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...domain.errors import NoImageError, StudioError
from ...domain.request import ImageRequest, ImageResult
from ...domain.text_request import TextRequest, TextResult
from ...domain.turns import parts_to_json
from .files import sniff_mime
from .reading import HistoryReader

__all__ = ["HistoryStore", "new_entry_id"]

_ENTRY_COLUMNS = ("id", "created", "mode", "model", "prompt", "options", "input_hashes", "text", "finish_reason",
                  "prompt_tokens", "output_tokens", "total_tokens", "cost_usd", "cached", "elapsed_s", "error",
                  "error_type", "owner", "sources", "search_entry_point", "parent", "turn", "model_turn", "region",
                  "kit", "craft")


def new_entry_id(now_ns: int | None = None) -> str:
    """A time-sortable unique id: nanoseconds since the epoch in hex, then random hex."""
    return f"{time.time_ns() if now_ns is None else now_ns:016x}-{secrets.token_hex(4)}"


def _created(entry_id: str) -> str:
    return datetime.fromtimestamp(int(entry_id.split("-")[0], 16) / 1e9, tz=UTC).isoformat()


class HistoryStore(HistoryReader):
    """The persistent history of one data directory, shared safely by threads and processes (CLI + app)."""

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
