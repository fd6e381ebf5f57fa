"""A batch run's manifest.jsonl: one line per finished request, appended, flushed and fsynced as each finishes."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from .jsonl import read_jsonl

__all__ = ["MANIFEST_NAME", "Manifest", "finished_lines", "maybe_billed_lines"]

MANIFEST_NAME = "manifest.jsonl"
_FINISHED = ("done", "cached")


def finished_lines(folder: Path) -> dict[tuple[int, str], dict[str, Any]]:
    """(row, cache key) → the last "done"/"cached" line whose image files are all still present in `folder`."""
    finished: dict[tuple[int, str], dict[str, Any]] = {}
    for line in read_jsonl(folder / MANIFEST_NAME):  # a torn line is skipped: its request runs again ($0, cached)
        key = (line.get("row"), line.get("key"))
        if line.get("status") in _FINISHED and line.get("paths") and all(
                (folder / p).is_file() and (folder / p).stat().st_size > 0 for p in line["paths"]):
            finished[key] = line  # type: ignore[index]
        else:
            finished.pop(key, None)  # type: ignore[arg-type]
    return finished


def maybe_billed_lines(folder: Path) -> dict[tuple[int, str], dict[str, Any]]:
    """(row, cache key) → the last line, when it is a timeout after sending (SentTimeoutError: maybe billed)."""
    last: dict[tuple[int, str], dict[str, Any]] = {}
    for line in read_jsonl(folder / MANIFEST_NAME):
        last[(line.get("row"), line.get("key"))] = line  # type: ignore[index]
    return {key: line for key, line in last.items() if line.get("error_type") == "SentTimeoutError"}


class Manifest:
    """Appends lines to a run folder's manifest.jsonl; each is on disk (fsync) before `append` returns."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / MANIFEST_NAME
        self._lock = threading.Lock()
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the run, closed by close()
        if self._file.tell() > 0:  # a kill mid-write can leave a torn last line: start ours on a line of its own
            with open(self.path, "rb") as existing:
                existing.seek(-1, os.SEEK_END)
                if existing.read(1) != b"\n":
                    self._file.write(b"\n")

    def append(self, line: dict[str, Any]) -> None:
        """Write one line and make it durable."""
        data = (json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        with self._lock:
            self._file.write(data)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._file.close()
