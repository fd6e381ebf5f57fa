"""The persistent history: pinned schema, migrations, search, ownership, files stored once, crash safety, no key."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from conftest import TEST_KEY, in_studio, png_bytes
from PIL import Image

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.errors import PromptBlockedError, StudioError
from nanobanana_ui.domain.request import GeneratedImage, ImageRequest, ImageResult, Mode
from nanobanana_ui.emulator.faults import Fault
from nanobanana_ui.imaging.outputs import save_output
from nanobanana_ui.storage.history import HistoryStore
from nanobanana_ui.storage.history.migrations import m001_initial, migrate

ROOT = Path(__file__).resolve().parents[1]

SCHEMA = [
    ("index", "entries_model", "CREATE INDEX entries_model ON entries (model, id)"),
    ("index", "entries_owner", "CREATE INDEX entries_owner ON entries (owner, id)"),
    ("index", "entries_parent", "CREATE INDEX entries_parent ON entries (parent, id)"),
    ("index", "files_sha256", "CREATE INDEX files_sha256 ON files (sha256)"),
    ("index", "images_sha256", "CREATE INDEX images_sha256 ON images (sha256)"),
    ("index", "inputs_sha256", "CREATE INDEX inputs_sha256 ON inputs (sha256)"),
    ("index", "kit_refs_sha256", "CREATE INDEX kit_refs_sha256 ON kit_refs (sha256)"),
    ("index", "sqlite_autoindex_entries_1", None),
    ("index", "sqlite_autoindex_files_1", None),
    ("index", "sqlite_autoindex_images_1", None),
    ("index", "sqlite_autoindex_inputs_1", None),
    ("index", "sqlite_autoindex_kit_refs_1", None),
    ("index", "sqlite_autoindex_kits_1", None),
    ("table", "entries", "CREATE TABLE entries ( id TEXT PRIMARY KEY, created TEXT NOT NULL, mode TEXT NOT NULL, "
     "model TEXT NOT NULL, prompt TEXT NOT NULL, options TEXT NOT NULL DEFAULT '{}', input_hashes TEXT NOT NULL "
     "DEFAULT '[]', text TEXT NOT NULL DEFAULT '', finish_reason TEXT, prompt_tokens INTEGER, output_tokens INTEGER, "
     "total_tokens INTEGER, cost_usd REAL, cached INTEGER NOT NULL DEFAULT 0, elapsed_s REAL, error TEXT, "
     "error_type TEXT, owner TEXT , sources TEXT NOT NULL DEFAULT '[]', search_entry_point TEXT, parent TEXT, "
     "turn INTEGER NOT NULL DEFAULT 1, model_turn TEXT, region TEXT, craft TEXT, kit TEXT)"),
    ("table", "entries_fts",
     "CREATE VIRTUAL TABLE entries_fts USING fts5(prompt, content='entries', content_rowid='rowid')"),
    ("table", "entries_fts_config", "CREATE TABLE 'entries_fts_config'(k PRIMARY KEY, v) WITHOUT ROWID"),
    ("table", "entries_fts_data", "CREATE TABLE 'entries_fts_data'(id INTEGER PRIMARY KEY, block BLOB)"),
    ("table", "entries_fts_docsize", "CREATE TABLE 'entries_fts_docsize'(id INTEGER PRIMARY KEY, sz BLOB)"),
    ("table", "entries_fts_idx",
     "CREATE TABLE 'entries_fts_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID"),
    ("table", "files", "CREATE TABLE files ( entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE, "
     "kind TEXT NOT NULL CHECK (kind IN ('input', 'model')), position INTEGER NOT NULL, sha256 TEXT NOT NULL, "
     "mime_type TEXT NOT NULL, PRIMARY KEY (entry_id, kind, position) )"),
    ("table", "images", "CREATE TABLE images ( entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE, "
     "position INTEGER NOT NULL, sha256 TEXT NOT NULL, mime_type TEXT NOT NULL, width INTEGER NOT NULL, "
     "height INTEGER NOT NULL, file_name TEXT NOT NULL, PRIMARY KEY (entry_id, position) )"),
    ("table", "inputs", "CREATE TABLE inputs ( entry_id TEXT NOT NULL REFERENCES entries (id) ON DELETE CASCADE, "
     "role TEXT NOT NULL, sha256 TEXT NOT NULL, mime_type TEXT NOT NULL, PRIMARY KEY (entry_id, role) )"),
    ("table", "kit_refs", "CREATE TABLE kit_refs ( owner TEXT NOT NULL DEFAULT '', kit TEXT NOT NULL, version INTEGER "
     "NOT NULL, position INTEGER NOT NULL, name TEXT NOT NULL, role TEXT NOT NULL CHECK (role IN ('character', "
     "'object', 'style')), guidance TEXT NOT NULL DEFAULT '', sha256 TEXT NOT NULL, mime_type TEXT NOT NULL, PRIMARY "
     "KEY (owner, kit, version, position), FOREIGN KEY (owner, kit, version) REFERENCES kits (owner, name, version) "
     "ON DELETE CASCADE )"),
    ("table", "kits", "CREATE TABLE kits ( owner TEXT NOT NULL DEFAULT '', name TEXT NOT NULL, version INTEGER NOT "
     "NULL, created TEXT NOT NULL, text TEXT NOT NULL DEFAULT '', PRIMARY KEY (owner, name, version) )"),
    ("trigger", "entries_fts_delete", "CREATE TRIGGER entries_fts_delete AFTER DELETE ON entries BEGIN INSERT INTO "
     "entries_fts (entries_fts, rowid, prompt) VALUES ('delete', old.rowid, old.prompt); END"),
    ("trigger", "entries_fts_insert", "CREATE TRIGGER entries_fts_insert AFTER INSERT ON entries BEGIN INSERT INTO "
     "entries_fts (rowid, prompt) VALUES (new.rowid, new.prompt); END"),
    ("trigger", "entries_fts_update", "CREATE TRIGGER entries_fts_update AFTER UPDATE OF prompt ON entries BEGIN "
     "INSERT INTO entries_fts (entries_fts, rowid, prompt) VALUES ('delete', old.rowid, old.prompt); INSERT INTO "
     "entries_fts (rowid, prompt) VALUES (new.rowid, new.prompt); END"),
]


def schema(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT type, name, sql FROM sqlite_master ORDER BY type, name").fetchall()
    return [(kind, name, sql and " ".join(sql.split())) for kind, name, sql in rows]


def fake_result(folder: Path, prompt: str, *, data: bytes | None = None, mode: Mode = Mode.GENERATE,
                model: str = "gemini-2.5-flash-image", count: int = 1) -> ImageResult:
    """A result as the Studio hands it over: images already saved under folder."""
    images = []
    for n in range(count):
        blob = data or png_bytes(color=(random.randrange(256), random.randrange(256), n))
        path = save_output(blob, folder, f"{time.time_ns()}-{n}.png")
        images.append(GeneratedImage(sha256="not-checked", mime_type="image/png", width=64, height=48, path=path))
    return ImageResult(id="r", request=ImageRequest(mode=mode, model=model, prompt=prompt), images=tuple(images),
                       text="words", finish_reason="STOP", cost_usd=0.039)


@pytest.fixture
def store(tmp_path):
    history = HistoryStore(tmp_path / "home")
    yield history
    history.close()


def stored_files(home: Path) -> list[Path]:
    return [p for p in (home / "images").rglob("*") if p.is_file()]


def test_schema_is_pinned(store):
    assert schema(store.home / "history.sqlite3") == SCHEMA
    assert store._db.execute("PRAGMA user_version").fetchone()[0] == 7
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_migrates_from_nothing_and_reopening_is_a_no_op(tmp_path):
    home = tmp_path / "new" / "home"  # does not exist yet
    first = HistoryStore(home)
    entry_id = first.record_result(fake_result(tmp_path / "out", "a red fox"))
    first.close()
    again = HistoryStore(home)
    assert migrate(again._db) == []
    assert [e.id for e in again.page()] == [entry_id]
    again.close()


def test_second_migration_indexes_rows_written_before_it(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    with sqlite3.connect(home / "history.sqlite3") as db:  # a database from before full-text search
        m001_initial(db)
        db.execute("PRAGMA user_version = 1")
        db.execute("INSERT INTO entries (id, created, mode, model, prompt) VALUES "
                   "('1', '2026-01-01T00:00:00+00:00', 'generate', 'm', 'an old lighthouse')")
    upgraded = HistoryStore(home)
    assert [e.prompt for e in upgraded.page(search="lighthouse")] == ["an old lighthouse"]
    upgraded.close()


@pytest.mark.slow
def test_entries_survive_a_new_process(settings, emulator):
    made = in_studio(settings, lambda s: s.generate("a fox that outlives its process", owner="me"))
    again = in_studio(settings, lambda s: s.generate("a fox that outlives its process"))
    assert again.cached
    env = {**os.environ, "NANOBANANA_HOME": str(settings.home), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "nanobanana_ui", "history", "--json"], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    newest, oldest = [json.loads(line) for line in done.stdout.splitlines()]
    assert {"id", "time", "prompt", "model", "mode", "paths", "cost_usd", "cached", "error"} <= set(oldest)
    assert (oldest["prompt"], oldest["mode"], oldest["cached"], newest["cached"]) == (
        "a fox that outlives its process", "generate", False, True)
    assert oldest["error"] is None and oldest["model"] == settings.model and newest["cost_usd"] == 0
    assert [Path(p).read_bytes() for p in oldest["paths"]] == [made.images[0].path.read_bytes()]
    assert oldest["paths"] == newest["paths"]  # the same bytes, stored once


def test_search_and_filters(store, tmp_path):
    out = tmp_path / "out"
    store.record_result(fake_result(out, "a red fox in the snow"))
    store.record_result(fake_result(out, "Foxes at dusk", mode=Mode.EDIT))
    store.record_result(fake_result(out, "a blue whale", model="gemini-3-pro-image-preview"))
    assert sorted(e.prompt for e in store.page(search="fox")) == ["Foxes at dusk", "a red fox in the snow"]
    assert [e.prompt for e in store.page(search="snow fox")] == ["a red fox in the snow"]
    assert [e.prompt for e in store.page(model="gemini-3-pro-image-preview")] == ["a blue whale"]
    assert [e.prompt for e in store.page(mode="edit")] == ["Foxes at dusk"]
    assert store.page(search='"unbalanced (quote') == [] and store.count(search="fox") == 2
    assert [e.prompt for e in store.page(limit=2)] == ["a blue whale", "Foxes at dusk"]  # newest first
    assert [e.prompt for e in store.page(offset=2)] == ["a red fox in the snow"]


def test_failures_are_history_too(settings, emulator):
    emulator.fail_next(Fault.blocked("PROHIBITED_CONTENT"))

    async def scenario(studio):
        with pytest.raises(PromptBlockedError):
            await studio.generate("a forbidden thing")
        return studio.history.page(), studio.history.page(include_failures=False)

    everything, successes = in_studio(settings, scenario)
    [entry] = everything
    assert entry.error_type == "PromptBlockedError" and "blocked" in entry.error.lower()
    assert entry.images == () and not entry.ok and entry.prompt == "a forbidden thing"
    assert successes == []


def test_delete_removes_files_but_keeps_shared_ones(store, tmp_path):
    same = png_bytes(color=(1, 2, 3))
    first = store.record_result(fake_result(tmp_path / "out", "one", data=same))
    second = store.record_result(fake_result(tmp_path / "out", "two", data=same))
    [file] = stored_files(store.home)  # the same bytes, stored once
    thumb = store.thumbnail(store.get(second).images[0])
    assert store.delete(first) and file.exists() and thumb.exists()
    assert store.get(second).images[0].path.read_bytes() == same
    assert store.delete(second) and not file.exists() and not thumb.exists()
    assert not store.delete(second) and store.count() == 0


def test_verify_and_repair(store, tmp_path):
    gone = store.record_result(fake_result(tmp_path / "out", "its file will vanish"))
    altered = store.record_result(fake_result(tmp_path / "out", "its file will change"))
    assert store.verify() == []
    store.get(gone).images[0].path.unlink()
    path = store.get(altered).images[0].path
    path.unlink()  # a new file in its place
    path.write_bytes(png_bytes(color=(9, 9, 9)))
    (store.home / "images" / "ab").mkdir(exist_ok=True)  # an image of this run may already shard there
    (store.home / "images" / "ab" / ("ab" * 32 + ".png")).write_bytes(b"orphan")
    problems = store.verify()
    assert len(problems) == 3 and any("missing" in p for p in problems) and any("match" in p for p in problems)
    assert len(store.repair()) == 4 and store.verify() == []
    for entry_id in (gone, altered):
        entry = store.get(entry_id)
        assert entry.images == () and entry.error == "image file missing"


@pytest.mark.slow
def test_kill_mid_save_leaves_nothing_broken(tmp_path):
    home = tmp_path / "home"
    script = """if True:
        import os, sys
        from pathlib import Path
        from PIL import Image
        from nanobanana_ui.storage.history import HistoryStore
        from nanobanana_ui.imaging.outputs import save_output
        from nanobanana_ui.domain.request import GeneratedImage, ImageRequest, ImageResult, Mode
        home = Path(sys.argv[1])
        store = HistoryStore(home)
        print("ready", flush=True)
        n = 0
        while True:
            n += 1
            image = Image.frombytes("RGB", (200, 200), os.urandom(200 * 200 * 3))
            path = home / "outputs" / f"{os.getpid()}-{n}.png"
            path.parent.mkdir(exist_ok=True)
            image.save(path)
            request = ImageRequest(mode=Mode.GENERATE, model="m", prompt=f"kill test {n}")
            result = ImageResult(id="r", request=request, images=(GeneratedImage("x", "image/png", 200, 200, path),))
            entry_id = store.record_result(result)
            if n % 3 == 0:
                store.delete(entry_id)
            elif n % 4 == 0:
                store.thumbnail(store.get(entry_id).images[0])
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    chance = random.Random(5)
    for _ in range(8):  # two writers at once (two processes on one data dir), each killed at its own moment
        children = [subprocess.Popen([sys.executable, "-c", script, str(home)], stdout=subprocess.PIPE, env=env)
                    for _ in range(2)]
        try:
            for child in children:
                assert child.stdout.readline() == b"ready\n"
            for child in children:
                time.sleep(chance.uniform(0.02, 0.3))
                child.send_signal(signal.SIGKILL)
        finally:
            for child in children:
                child.kill()
                child.wait(timeout=30)
                child.stdout.close()
    history = HistoryStore(home)
    entries = history.page(limit=10_000)
    assert len(entries) > 6
    problems = history.verify()
    assert not [p for p in problems if not p.startswith(("orphan file", "leftover temporary file"))], problems
    for entry in entries:
        assert entry.error is None and len(entry.images) == 1
        with Image.open(entry.images[0].path) as image:
            assert image.size == (200, 200)
    history.repair()
    assert history.verify() == []
    history.close()


def test_the_key_is_in_no_file_under_the_data_dir(settings, emulator):
    emulator.fail_next(Fault.server_error(500))

    async def scenario(studio):
        with pytest.raises(StudioError):
            await studio.generate("this one fails")
        await studio.generate("a harmless fox")
        await studio.generate("a harmless fox")  # a cache hit
        request = studio.build_request(Mode.GENERATE, "an error that quotes the key")
        studio.history.record_failure(request, StudioError(f"the relay said key={TEST_KEY}"), elapsed_s=0.1)
        return studio.history.page()

    entries = in_studio(settings, scenario)
    assert len(entries) == 4 and "[redacted]" in entries[0].error
    files = [path for path in settings.home.rglob("*") if path.is_file()]
    assert any(path.name == "history.sqlite3" for path in files)
    assert [path for path in files if TEST_KEY.encode() in path.read_bytes()] == []


def test_owners_see_only_their_own(settings, emulator, tmp_path):
    async def scenario(studio):
        await studio.generate("alice's fox", owner="a")
        await studio.generate("bob's fox", owner="b")
        return studio.history

    history = HistoryStore(settings.home)
    in_studio(settings, scenario)
    [mine] = history.page(owner="a")
    [theirs] = history.page(owner="b")
    assert (mine.prompt, mine.owner, theirs.prompt) == ("alice's fox", "a", "bob's fox")
    assert history.get(theirs.id, owner="a") is None and history.get(theirs.id, owner="b") == theirs
    assert not history.delete(theirs.id, owner="a") and history.get(theirs.id) is not None
    assert history.count(owner="a") == 1 and history.count() == 2  # a private install sees everything
    assert history.page(owner="a", search="bob") == []
    with zipfile.ZipFile(history.export_zip([theirs.id, mine.id], tmp_path / "a.zip", owner="a")) as archive:
        assert [json.loads(line)["id"] for line in archive.read("manifest.jsonl").splitlines()] == [mine.id]
    history.close()


def test_thumbnails_are_made_once(store, tmp_path):
    entry_id = store.record_result(fake_result(tmp_path / "out", "thumb"))
    image = store.get(entry_id).images[0]
    first = store.thumbnail(image, size=32)
    before = first.stat()
    time.sleep(0.01)
    second = store.thumbnail(image, size=32)
    after = second.stat()
    assert first == second and (before.st_mtime_ns, before.st_ino) == (after.st_mtime_ns, after.st_ino)
    with Image.open(first) as thumb:
        assert thumb.format == "WEBP" and thumb.size == (32, 24)


def test_export_zip_holds_images_and_manifest(store, tmp_path):
    pair = store.record_result(fake_result(tmp_path / "out", "a pair", count=2))
    request = ImageRequest(mode=Mode.GENERATE, model="m", prompt="failed")
    failed = store.record_failure(request, StudioError("it broke"), elapsed_s=1.5)
    dest = store.export_zip([pair, failed, "no-such-id"], tmp_path / "export" / "mine.zip")
    with zipfile.ZipFile(dest) as archive:
        lines = [json.loads(line) for line in archive.read("manifest.jsonl").splitlines()]
        assert [line["id"] for line in lines] == [pair, failed]
        assert lines[1]["error"] == "it broke" and lines[1]["images"] == []
        entry = store.get(pair)
        for record, image in zip(lines[0]["images"], entry.images, strict=True):
            data = archive.read(record["file"])
            assert data == image.path.read_bytes() and record["sha256"] == image.sha256
            with Image.open(io.BytesIO(data)) as image:
                assert image.size == (64, 48)
        assert sorted(archive.namelist()) == sorted(["manifest.jsonl", *(r["file"] for r in lines[0]["images"])])
    assert [p.name for p in dest.parent.iterdir()] == ["mine.zip"]  # no temp file left behind


def test_a_failed_history_write_does_not_fail_the_request(settings, emulator, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(HistoryStore, "record_result", broken)
    result = in_studio(settings, lambda s: s.generate("a fox despite the disk"))
    assert result.images[0].path.exists()
    assert "could not record the request in the history" in caplog.text


def test_cli_history_lines_search_and_verify(settings, emulator, monkeypatch, capsys):
    monkeypatch.setenv("NANOBANANA_HOME", str(settings.home))
    in_studio(settings, lambda s: s.generate("a fox for the command line"))
    in_studio(settings, lambda s: s.generate("a whale for the command line"))
    assert main(["history", "--search", "whale"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert "a whale for the command line" in line and "generate" in line and ".png" in line
    assert main(["history", "--limit", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prompt"] == "a whale for the command line"
    assert main(["history", "--verify"]) == 0
    next((settings.home / "images").rglob("*.png")).unlink()
    assert main(["history", "--verify"]) == 1
    assert "file is missing" in capsys.readouterr().out
    assert main(["history", "--verify", "--repair"]) == 0
    assert main(["history", "--verify"]) == 0


def test_parallel_variations_are_each_recorded(settings, emulator):
    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, "four foxes at once")
        outcomes = await studio.run_variations(request, 4, owner="v")
        return outcomes, studio.history.page(owner="v")

    outcomes, entries = in_studio(settings, scenario)
    assert len(entries) == 4 and sorted(e.options["variation"] for e in entries) == [0, 1, 2, 3]
    assert {e.images[0].path.read_bytes() for e in entries} == {o.images[0].path.read_bytes() for o in outcomes}

