"""The Gemini Batch Mode journal: what a run folder submitted, to which job, and how it ended, written before acting.

`gemini_batch.jsonl` in the run folder holds one JSON event per line, each fsynced before the next step:

    {"event": "intent", "display_name": "nanobanana-<uuid>", "model", "keys": {key: cache key}, "key_fp", ...}
    {"event": "create_sent", "display_name"}       right before each create attempt leaves this machine
    {"event": "created", "display_name", "job": "batches/..."}                                     right after it
    {"event": "abandoned", "display_name"}         an intent whose create never reached the API (none listed)
    {"event": "duplicate", "display_name", "job"}  a second job with our display name (cancelled unless done)
    {"event": "state", "job", "state"}             a change seen while polling
    {"event": "cancel_requested", "job"}
    {"event": "finished", "job", "state", "done", "failed", "missing"}  its results are all written

`key_fp` is a salted hash of the API key and endpoint that submitted the job (never the key itself): a job is only
watched, fetched, cancelled or reconciled with the same key. A job is "open" from its intent until "finished" or
"abandoned": while one is open nothing new is submitted. The data directory keeps an index
(`NANOBANANA_HOME/gemini_batches.jsonl`, one line per intent) so the app can list every run's jobs after a restart.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .jsonl import read_jsonl

__all__ = ["INDEX_NAME", "JOURNAL_NAME", "JobRecord", "Journal", "add_to_index", "index_entries"]

JOURNAL_NAME = "gemini_batch.jsonl"
INDEX_NAME = "gemini_batches.jsonl"


def now_text() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class JobRecord:
    """One intent and what followed it, as replayed from the journal."""

    display_name: str
    model: str
    keys: dict[str, str]  # request key ("row-7-v0") → the request's cache key
    source: str  # "inline" | "file"
    created_at: str
    estimated_cost_usd: float | None
    job: str | None = None  # "batches/..." once known
    state: str | None = None  # the last state seen ("JOB_STATE_RUNNING", ...)
    cancel_requested: bool = False
    finished: dict[str, Any] | None = None  # the "finished" event
    abandoned: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    key_fp: str | None = None  # which key submitted it (a salted hash); None in journals of older versions
    create_sent: bool = False  # a create attempt may have reached the API
    duplicates: list[str] = field(default_factory=list)  # other jobs with its display name (cancelled, not fetched)

    @property
    def open(self) -> bool:
        """True while the job may still run or has results not yet written."""
        return self.finished is None and not self.abandoned


def _append_line(path: Path, event: dict[str, Any]) -> None:
    data = (json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        if handle.tell() > 0:  # a torn last line (kill mid-write) must not swallow this one
            with open(path, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                if existing.read(1) != b"\n":
                    data = b"\n" + data
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class Journal:
    """A run folder's Gemini Batch Mode journal; every append is on disk (fsync) before it returns."""

    def __init__(self, folder: Path) -> None:
        """Open (not create) the journal of `folder`."""
        self.folder = Path(folder)
        self.path = self.folder / JOURNAL_NAME
        self._lock = threading.Lock()

    def append(self, event: str, **fields: Any) -> None:
        """Record one event, durably."""
        with self._lock:
            _append_line(self.path, {"event": event, "time": now_text(), **fields})

    def records(self) -> list[JobRecord]:
        """Every intent in order, each with what followed it."""
        records: dict[str, JobRecord] = {}
        for event in read_jsonl(self.path):
            name = str(event.get("display_name") or "")
            kind = event.get("event")
            if kind == "intent":
                records[name] = JobRecord(display_name=name, model=str(event.get("model") or ""),
                                          keys=dict(event.get("keys") or {}), source=str(event.get("source") or ""),
                                          created_at=str(event.get("time") or ""),
                                          estimated_cost_usd=event.get("estimated_cost_usd"),
                                          extra={k: event[k] for k in ("source_spec", "rows") if k in event},
                                          key_fp=event.get("key_fp"))
                continue
            record = records.get(name) or next((r for r in records.values() if r.job and r.job == event.get("job")),
                                               None)
            if record is None:
                continue
            if kind == "created":
                record.job = str(event.get("job"))
            elif kind == "create_sent":
                record.create_sent = True
            elif kind == "duplicate":
                record.duplicates.append(str(event.get("job")))
            elif kind == "state":
                record.state = str(event.get("state"))
            elif kind == "cancel_requested":
                record.cancel_requested = True
            elif kind == "finished":
                record.finished = event
                record.state = str(event.get("state") or record.state)
            elif kind == "abandoned":
                record.abandoned = True
        return list(records.values())

    def open_record(self) -> JobRecord | None:
        """The job still open (submitted or about to be, results not all written), if any."""
        return next((r for r in reversed(self.records()) if r.open), None)


def add_to_index(home: Path, *, folder: Path, display_name: str, model: str, rows: int, source_file: str) -> None:
    """Note a run folder's new intent in the data directory's index (for the app's jobs list)."""
    _append_line(Path(home) / INDEX_NAME, {"folder": str(Path(folder).resolve()), "display_name": display_name,
                                           "model": model, "rows": rows, "file": source_file, "time": now_text()})


def index_entries(home: Path) -> list[dict[str, Any]]:
    """The data directory's index lines, oldest first."""
    return read_jsonl(Path(home) / INDEX_NAME)
