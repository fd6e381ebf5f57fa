"""No file is shared between the store (the cache's blobs, the history's images/<sha>) and a saved output: a user
may edit an output in place (an editor, `mogrify`), and the history and the cache must stay as they were."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from conftest import in_studio

from nanobanana_ui.cli.main import main
from nanobanana_ui.imaging.outputs import clone_file, save_output
from nanobanana_ui.service.batch import plan_batch, read_batch_file, run_batch
from nanobanana_ui.storage.history import HistoryStore


def _edit_in_place(path: Path) -> None:
    """What an editor saving over the file does to its inode: new bytes through the same name and inode."""
    with open(path, "r+b") as handle:
        handle.seek(60)
        handle.write(b"\x00edited\x00")


def _store_inodes(home: Path) -> set[int]:
    """The inodes of every file the store keeps (the cache's blobs and the history's images)."""
    return {p.stat().st_ino for folder in (home / "cache", home / "images") if folder.is_dir()
            for p in folder.rglob("*") if p.is_file()}


def _check_untouched(home: Path, outputs: list[Path], originals: list[bytes], monkeypatch, capsys) -> None:
    store = HistoryStore(home)
    try:
        assert store.verify() == []
        kept = {hashlib.sha256(data).hexdigest() for data in originals}
        assert kept <= {image.sha256 for entry in store.page(limit=100) for image in entry.images}
        for sha in kept:
            [copy] = (home / "images" / sha[:2]).glob(f"{sha}.*")
            assert hashlib.sha256(copy.read_bytes()).hexdigest() == sha  # the history's copy is intact
    finally:
        store.close()
    assert not {p.stat().st_ino for p in outputs} & _store_inodes(home)
    monkeypatch.setenv("NANOBANANA_HOME", str(home))
    assert main(["history", "--verify"]) == 0, capsys.readouterr()


def test_editing_a_saved_output_leaves_the_history_and_the_cache_intact(settings, emulator, monkeypatch, capsys):
    first = in_studio(settings, lambda s: s.generate("a fox to edit later"))
    output = first.images[0].path
    original = output.read_bytes()
    _edit_in_place(output)
    assert output.read_bytes() != original
    _check_untouched(settings.home, [output], [original], monkeypatch, capsys)

    replay = in_studio(settings, lambda s: s.generate("a fox to edit later"))
    assert replay.cached and len(emulator.generate_requests) == 1  # the cache's copy survived the edit
    assert replay.images[0].path.read_bytes() == original and replay.images[0].path != output
    _edit_in_place(replay.images[0].path)  # a cache hit's output is a file of its own too
    _check_untouched(settings.home, [output, replay.images[0].path], [original], monkeypatch, capsys)
    again = in_studio(settings, lambda s: s.generate("a fox to edit later"))
    assert again.cached and len(emulator.generate_requests) == 1 and again.images[0].path.read_bytes() == original


def test_editing_a_batch_output_leaves_the_history_and_the_cache_intact(settings, emulator, tmp_path, monkeypatch,
                                                                        capsys):
    rows = tmp_path / "rows.txt"
    rows.write_text("a batch owl\na batch cat\n")

    def run(out: Path):
        async def scenario(studio):
            plan = plan_batch(studio, read_batch_file(rows), out_dir=out)
            return await run_batch(studio, plan, out_dir=out)

        return in_studio(settings, scenario)

    run(tmp_path / "out")
    outputs = sorted((tmp_path / "out").glob("*.png"))
    originals = [p.read_bytes() for p in outputs]
    assert len(outputs) == 2
    for path in outputs:
        _edit_in_place(path)
    _check_untouched(settings.home, outputs, originals, monkeypatch, capsys)
    run(tmp_path / "again")
    assert len(emulator.generate_requests) == 2  # both rows came from the cache, whose copies were not edited
    assert sorted(p.read_bytes() for p in (tmp_path / "again").glob("*.png")) == sorted(originals)


def test_an_output_saved_from_a_stored_copy_is_a_file_of_its_own(tmp_path):
    stored = tmp_path / "blob"
    stored.write_bytes(b"png bytes")
    out = save_output(b"png bytes", tmp_path / "out", "a.png", stored_copy=stored)
    assert out.read_bytes() == b"png bytes" and not os.path.samestat(out.stat(), stored.stat())
    clone_file(stored, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b"png bytes"
    assert not os.path.samestat((tmp_path / "copy").stat(), stored.stat())
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png"]  # no temp file left
