"""What the history hands out: frozen HistoryEntry and HistoryImage records, built from database rows."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["HistoryEntry", "HistoryImage", "StoredFile", "entry_from_row", "manifest_record"]


@dataclass(frozen=True)
class HistoryImage:
    """One stored output: the digest of the stored file's bytes, its type, size and where it lives."""

    sha256: str
    mime_type: str
    width: int
    height: int
    path: Path


@dataclass(frozen=True)
class StoredFile:
    """A file an entry needs besides its outputs (an input image), stored by the digest of its bytes."""

    sha256: str
    mime_type: str
    path: Path


@dataclass(frozen=True)
class HistoryEntry:
    """One request as recorded: what was asked, what came back (or the error), cost and timing."""

    id: str
    created: datetime  # UTC
    mode: str
    model: str
    prompt: str
    options: dict[str, Any]
    input_hashes: tuple[str, ...]
    images: tuple[HistoryImage, ...]
    text: str
    finish_reason: str | None
    tokens: dict[str, int]  # prompt, output, total
    cost_usd: float | None
    cached: bool
    elapsed_s: float | None
    error: str | None
    error_type: str | None
    owner: str | None
    sources: tuple[dict[str, str], ...] = ()  # Google Search grounding: {"title", "uri"} (and "image_uri")
    search_entry_point: str | None = None  # Google's search-suggestions HTML, to be shown as given
    parent: str | None = None  # the entry this one refines (None: the root of its conversation)
    turn: int = 1

    @property
    def kind(self) -> str:
        """What the entry is to a person: its mode, or "refine" for a refinement (a turn after the first)."""
        return "refine" if self.parent else self.mode
    model_turn: list[dict[str, Any]] | None = None  # the model's turn as returned (turns.parts_to_json form)
    inputs: tuple[StoredFile, ...] = ()  # the input images as sent (kept since conversations; older entries: none)
    region: dict[str, Any] | None = None  # a region edit's: kind, mask_sha256, crop_box, feather, extend_to, ...
    kit: dict[str, Any] | None = None  # the kit it used: name, version, text, references (name, role, sha256...)
    craft: dict[str, Any] | None = None  # how the prompt was made: style, template, variables (None: as typed)

    @property
    def ok(self) -> bool:
        """True when the request produced its images (no error recorded)."""
        return self.error is None

    def to_record(self) -> dict[str, Any]:
        """The entry as one JSON-able record (`history --json` prints it; an export's manifest builds on it)."""
        return {
            "id": self.id, "time": self.created.isoformat(), "mode": self.mode, "model": self.model,
            "prompt": self.prompt, "paths": [str(image.path) for image in self.images], "cost_usd": self.cost_usd,
            "cached": self.cached, "finish_reason": self.finish_reason, "text": self.text, "tokens": self.tokens,
            "elapsed_s": self.elapsed_s, "options": self.options, "error": self.error, "error_type": self.error_type,
            "sources": list(self.sources), "parent": self.parent, "turn": self.turn,
            **({"region": self.region} if self.region else {}),
            **({"kit": self.kit} if self.kit else {}),
            **(self.craft or {}),  # style, template, variables
        }


def entry_from_row(row: sqlite3.Row, images: tuple[HistoryImage, ...],
                   inputs: tuple[StoredFile, ...] = ()) -> HistoryEntry:
    """A HistoryEntry from an `entries` row, its images and its stored input files."""
    return HistoryEntry(
        id=row["id"], created=datetime.fromisoformat(row["created"]), mode=row["mode"], model=row["model"],
        prompt=row["prompt"], options=json.loads(row["options"]), input_hashes=tuple(json.loads(row["input_hashes"])),
        images=images, text=row["text"], finish_reason=row["finish_reason"],
        tokens={"prompt": row["prompt_tokens"], "output": row["output_tokens"], "total": row["total_tokens"]},
        cost_usd=row["cost_usd"], cached=bool(row["cached"]), elapsed_s=row["elapsed_s"], error=row["error"],
        error_type=row["error_type"], owner=row["owner"], sources=tuple(json.loads(row["sources"] or "[]")),
        search_entry_point=row["search_entry_point"], parent=row["parent"], turn=int(row["turn"] or 1),
        model_turn=json.loads(row["model_turn"]) if row["model_turn"] else None, inputs=inputs,
        region=json.loads(row["region"]) if row["region"] else None,
        kit=json.loads(row["kit"]) if "kit" in row.keys() and row["kit"] else None,
        craft=json.loads(row["craft"]) if "craft" in row.keys() and row["craft"] else None)


def manifest_record(entry: HistoryEntry, files: list[str]) -> dict[str, Any]:
    """One line of an export's manifest.jsonl: the entry's record, with the exported file names (the owner is left out).

    `created` (not `time`) and `images` (not the server's `paths`) are the names exports have always used.
    """
    record = entry.to_record()
    del record["paths"]
    record["created"] = record.pop("time")
    record["input_hashes"] = list(entry.input_hashes)
    record["images"] = [{"file": name, "sha256": image.sha256, "mime_type": image.mime_type, "width": image.width,
                         "height": image.height} for name, image in zip(files, entry.images, strict=True)]
    return record
