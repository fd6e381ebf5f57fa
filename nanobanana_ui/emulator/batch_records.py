"""Emulator Batch Mode records: the batch jobs and Files API files it keeps, and the reader of a JSONL input file."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["FILE_LIFETIME_S", "EmulatedBatch", "EmulatedFile", "now_text", "read_jsonl"]

FILE_LIFETIME_S = 48 * 3600  # an uploaded file expires after 48 hours


def now_text(stamp: float) -> str:
    """A timestamp as the API writes it: ISO 8601 in UTC, milliseconds, a trailing Z."""
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class EmulatedFile:
    """A file of the emulated Files API: an uploaded JSONL input, or a job's generated results."""

    name: str  # "files/ID"
    display_name: str
    mime_type: str
    size: int
    path: Path
    source: str  # "UPLOADED" | "GENERATED"
    created: float
    complete: bool = False
    expired: bool = False  # set by expire_files(): a request naming it is refused, as after its 48 hours
    api_key: str | None = None  # the key that uploaded it: a file belongs to its key's project

    def resource(self, base_url: str) -> dict[str, Any]:
        """The File as the API describes it."""
        entry: dict[str, Any] = {"name": self.name, "displayName": self.display_name, "mimeType": self.mime_type,
                                 "sizeBytes": str(self.size), "createTime": now_text(self.created),
                                 "updateTime": now_text(self.created), "state": "ACTIVE" if self.complete
                                 else "PROCESSING", "source": self.source,
                                 "uri": f"{base_url}/v1beta/{self.name}",
                                 "expirationTime": now_text(self.created + FILE_LIFETIME_S)}
        if self.source == "GENERATED":
            entry["downloadUri"] = f"{base_url}/download/v1beta/{self.name}:download?alt=media"
        return entry


@dataclass
class EmulatedBatch:
    """One batch job: its requests (key → request body), clock, forced state and results once computed."""

    name: str  # "batches/ID"
    model: str
    display_name: str
    requests: list[tuple[str | None, dict[str, Any]]]  # (metadata key, GenerateContentRequest body)
    from_file: bool
    created: float
    outcome: str  # the terminal state the clock reaches
    forced: str | None = None  # a state set by cancel or a test
    ended: float | None = None
    inline_results: list[dict[str, Any]] | None = None
    result_file: EmulatedFile | None = None
    deleted: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def keys(self) -> list[str | None]:
        """Every request's metadata key, in order."""
        return [key for key, _ in self.requests]


def read_jsonl(path: Path, requests: list[tuple[str | None, dict[str, Any]]]) -> str | None:
    """Read an uploaded batch input into `requests`; a problem's message, or None."""
    with open(path, encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except ValueError:
                return f"Line {number} of the input file is not valid JSON."
            if not isinstance(line, dict) or not isinstance(line.get("request"), dict):
                return f"Line {number} of the input file has no 'request' object."
            requests.append((line.get("key"), line["request"]))
    return None if requests else "The input file has no requests."
