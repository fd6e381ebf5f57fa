"""Reading an append-only JSONL file (manifest, Gemini journal, index) that a kill may have torn mid-line."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["decode_lines", "read_jsonl"]


def decode_lines(chunks: Iterable[bytes]) -> Iterator[tuple[int, str | None]]:
    """(line number, text) for each raw line; text is None for a line that is not valid UTF-8 (torn in a character)."""
    for number, raw in enumerate(chunks, start=1):
        try:
            yield number, raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON object line of `path` (none if it is missing); a torn or unreadable line is skipped.

    The file is read as bytes and decoded line by line: the writers append UTF-8 (ensure_ascii=False), so a kill
    inside a multi-byte character ("é") tears one line, never the whole file.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    lines = []
    for _, text in decode_lines(data.split(b"\n")):
        if text is None or not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            lines.append(value)
    return lines
