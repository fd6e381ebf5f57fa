"""Issue 24 guarantees for batch runs: never paid twice (folder lock, open jobs, full disks, timeouts), never lost."""

from __future__ import annotations

import json

from conftest import in_studio

from nanobanana_ui.service.batch import GeminiBatches
from nanobanana_ui.service.batch.gemini_journal import Journal, add_to_index
from nanobanana_ui.service.batch.manifest import finished_lines

# A torn write inside a multi-byte character (item 7).

def _torn(line: dict) -> bytes:
    """A JSON line cut right after the first byte of its "é" (what a kill mid-write leaves)."""
    data = json.dumps(line, ensure_ascii=False).encode("utf-8")
    return data[:data.index("é".encode()) + 1]


def _good(line: dict) -> bytes:
    return json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n"


def test_a_manifest_torn_inside_a_character_still_resumes(tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"png")
    first = {"row": 1, "key": "k1", "status": "done", "paths": ["a.png"], "prompt": "café"}
    second = {"row": 3, "key": "k3", "status": "done", "paths": ["b.png"], "prompt": "thé"}
    torn = {"row": 2, "key": "k2", "status": "done", "paths": ["a.png"], "prompt": "crème brûlée"}
    (tmp_path / "manifest.jsonl").write_bytes(_good(first) + _torn(torn) + b"\n" + _good(second) + _torn(torn))
    assert set(finished_lines(tmp_path)) == {(1, "k1"), (3, "k3")}


def test_a_journal_and_index_torn_inside_a_character_are_still_read(settings, tmp_path):
    folder = tmp_path / "run"
    journal = Journal(folder)
    journal.append("intent", display_name="nanobanana-1", model="m", keys={"row-1-v0": "k"}, source="inline")
    with open(journal.path, "ab") as handle:
        handle.write(_torn({"event": "state", "display_name": "nanobanana-1", "state": "é"}))
    journal.append("created", display_name="nanobanana-1", job="batches/1")
    [record] = journal.records()
    assert record.job == "batches/1" and record.open
    add_to_index(settings.home, folder=folder, display_name="nanobanana-1", model="m", rows=1, source_file="é.txt")
    with open(settings.home / "gemini_batches.jsonl", "ab") as handle:
        handle.write(_torn({"folder": str(folder), "display_name": "x", "file": "café.txt"}))
    [view] = in_studio(settings, lambda studio: _list(studio))
    assert view.job == "batches/1"


async def _list(studio):
    return GeminiBatches(studio).list_jobs()


def test_a_result_file_with_a_bad_byte_reports_that_line_and_reads_the_rest(tmp_path):
    from nanobanana_ui.service.batch.gemini_jobs import _file_results

    path = tmp_path / "results.jsonl"
    path.write_bytes(_good({"key": "row-1-v0", "error": {"code": 3, "message": "é"}}) + b'{"key": "\xc3\n'
                     + _good({"key": "row-3-v0", "error": {"code": 3, "message": "x"}}))
    keys = [key for key, _, _ in _file_results(path)]
    assert keys[0] == "row-1-v0" and keys[2] == "row-3-v0" and "unreadable" in keys[1]
