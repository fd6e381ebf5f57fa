"""Saved outputs: exact bytes, atomic writes, names that sort by time and carry the prompt's slug."""

from __future__ import annotations

from datetime import datetime, timedelta

from nanobanana_ui.imaging.outputs import output_name, save_output, slugify


def test_slug_is_short_ascii_and_never_empty():
    assert slugify("A Red Fox, in the Snow!") == "a-red-fox-in-the-snow"
    assert slugify("Café — crème brûlée") == "cafe-creme-brulee"
    assert slugify("🦊🦊") == "image"
    assert len(slugify("word " * 50)) <= 40
    assert "/" not in slugify("../../etc/passwd")


def test_names_sort_by_time():
    start = datetime(2026, 11, 27, 9, 59, 59, 999000)
    names = [output_name("zebra", "image/png", start + timedelta(milliseconds=i * 7)) for i in range(50)]
    names += [output_name("apple", "image/png", start + timedelta(seconds=1, milliseconds=i)) for i in range(5)]
    assert names == sorted(names)
    assert names[0] == "20261127-095959-999_zebra.png"
    assert output_name("x", "image/jpeg", start).endswith(".jpg")


def test_save_writes_exact_bytes_without_overwriting_or_leftovers(tmp_path):
    data = bytes(range(256)) * 10
    first = save_output(data, tmp_path, "same.png")
    second = save_output(b"other", tmp_path, "same.png")
    assert first.read_bytes() == data and second.read_bytes() == b"other"
    assert first != second and second.name == "same-2.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same-2.png", "same.png"]  # no temp files remain


def test_save_copies_a_stored_copy_never_linking_it(tmp_path):
    stored = tmp_path / "blob"
    stored.write_bytes(b"png bytes")
    out = save_output(b"png bytes", tmp_path / "out", "a.png", stored_copy=stored)
    assert out.read_bytes() == b"png bytes" and out.stat().st_ino != stored.stat().st_ino  # a user may edit it
