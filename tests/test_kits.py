"""Kits: named, versioned reference sets, stored with the history and sent after the user's own inputs.

Every use is checked on what the emulator received: the order of the parts, the text parts that name each
reference and its role, and the exact image bytes of the version asked for.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sqlite3
import time
import zipfile
from pathlib import Path

import pytest
from conftest import TEST_KEY, in_studio, page_for_handlers, png_bytes
from PIL import Image
from test_privacy import has_gps, photo
from test_vertex import rsa_keys, vertex_settings  # noqa: F401 (fixtures)

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.errors import InputError
from nanobanana_ui.domain.kits import parse_kit_spec
from nanobanana_ui.domain.models import get_model
from nanobanana_ui.domain.request import Mode
from nanobanana_ui.imaging.pngmeta import read_image_info
from nanobanana_ui.service import validation
from nanobanana_ui.service.kits import NewReference
from nanobanana_ui.storage.history import HistoryStore

FLASH = "gemini-3.1-flash-image"
PRO = "gemini-3-pro-image"
MIA = 'Reference image "Mia" (character): always wears the yellow raincoat'
MUG = 'Reference image "red mug" (object).'
# The per-role caps Google publishes (issue 21), as the registry gives them once models.json carries them.
CAPS = {FLASH: (14, {"object": 10, "character": 4}), PRO: (14, {"object": 6, "character": 5, "style": 3})}



@pytest.fixture
def images(tmp_path) -> dict[str, Path]:
    made = {}
    for name, color in (("mia", (10, 200, 10)), ("mug", (200, 10, 10)), ("mia2", (10, 10, 200)),
                        ("photo", (120, 120, 120))):
        made[name] = tmp_path / f"{name}.png"
        made[name].write_bytes(png_bytes(color=color))
    return made


def out_json(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def kinds_and_texts(recorded) -> list[str]:
    """The last user turn's parts as the emulator received them: texts verbatim, inline images as 'image', Files
    API references as 'file'."""
    kinds = {"image": "image", "fileData": "file"}
    return [part.text if part.kind == "text" else kinds.get(part.kind, part.kind) for part in recorded.turns[-1].parts]


def make_story(images, capsys) -> None:
    assert main(["kits", "create", "story", str(images["mia"]), "--role", "character", "--name", "Mia",
                 "--guidance", "always wears the yellow raincoat"]) == 0
    assert main(["kits", "add", "story", str(images["mug"]), "--role", "object", "--name", "red mug"]) == 0
    capsys.readouterr()


# -- the CLI round trip --------------------------------------------------------------------------------------------


def test_create_add_show_versions_export_import(keyed_env, images, capsys, tmp_path):
    make_story(images, capsys)
    assert main(["kits", "show", "story", "--json"]) == 0
    [shown] = out_json(capsys)
    assert {"name", "version", "references"} <= set(shown)
    assert (shown["name"], shown["version"]) == ("story", 2)
    assert [(r["name"], r["role"]) for r in shown["references"]] == [("Mia", "character"), ("red mug", "object")]
    assert all(len(r["sha256"]) == 64 for r in shown["references"])
    assert main(["kits", "show", "story@1", "--json"]) == 0  # old versions stay readable
    [first] = out_json(capsys)
    assert first["version"] == 1 and [r["name"] for r in first["references"]] == ["Mia"]

    assert main(["kits", "export", "story", str(tmp_path / "story.zip")]) == 0
    assert capsys.readouterr().out.startswith(f"exported to {tmp_path / 'story.zip'}: story@2")
    with zipfile.ZipFile(tmp_path / "story.zip") as archive:
        manifest = json.loads(archive.read("kit.json"))
        assert sorted(archive.namelist()) == sorted(["kit.json", *(r["file"] for r in manifest["references"])])
    assert main(["kits", "import", str(tmp_path / "story.zip"), "--json"]) == 0
    [imported] = out_json(capsys)
    assert imported["version"] == 3  # an existing name gets a new version, never an overwrite
    assert [r["sha256"] for r in imported["references"]] == [r["sha256"] for r in shown["references"]]
    assert main(["kits", "remove", "story", "red mug", "--json"]) == 0
    [removed] = out_json(capsys)
    assert removed["version"] == 4 and [r["name"] for r in removed["references"]] == ["Mia"]
    assert main(["kits", "list", "--json"]) == 0
    assert [(k["name"], k["version"]) for k in out_json(capsys)] == [("story", 4)]
    assert keyed_env.requests == []  # managing kits calls nothing
    assert main(["history", "--verify"]) == 0  # kit images are not orphans


def test_generate_edit_compose_send_the_kit_after_the_users_inputs(keyed_env, images, capsys):
    make_story(images, capsys)
    mia, mug, own = (images[n].read_bytes() for n in ("mia", "mug", "photo"))
    assert main(["generate", "Mia holds the red mug", "--kit", "story", "--json"]) == 0
    [record] = out_json(capsys)
    assert record["kit"] == "story@2"
    sent = keyed_env.generate_requests[-1]
    # The kit's images go through the Files API (uploaded once per key), the user's own inline.
    assert kinds_and_texts(sent) == ["Mia holds the red mug", MIA, "file", MUG, "file"]
    assert sent.images == [mia, mug]  # what the emulator read from the files

    assert main(["edit", str(images["photo"]), "put Mia in it", "--kit", "story@1", "--json"]) == 0
    sent = keyed_env.generate_requests[-1]
    assert kinds_and_texts(sent) == ["put Mia in it", "image", MIA, "file"]
    assert sent.images == [own, mia]  # the user's own input first, then the kit's (version 1: Mia alone)

    assert main(["compose", str(images["photo"]), str(images["mia2"]), "--prompt", "all together", "--kit",
                 "story"]) == 0
    sent = keyed_env.generate_requests[-1]
    assert sent.images == [own, images["mia2"].read_bytes(), mia, mug]
    assert sent.part_kinds == ["text", "image", "image", "text", "fileData", "text", "fileData"]
    words = sent.reply_body["candidates"][0]["content"]["parts"][0]["text"]
    assert words.endswith("References received: Mia (character), red mug (object).")  # the placeholder names them


def test_refine_sends_the_roots_kit_again_and_its_own(keyed_env, images, capsys):
    make_story(images, capsys)
    assert main(["generate", "Mia at the beach", "--kit", "story@1", "--json"]) == 0
    [root] = out_json(capsys)
    assert main(["refine", root["id"], "now hand her the red mug", "--kit", "story", "--json"]) == 0
    [child] = out_json(capsys)
    assert child["kit"] == "story@2" and child["parent"] == root["id"]
    sent = keyed_env.generate_requests[-1]
    first_turn = [p.text if p.kind == "text" else "image" for p in sent.turns[0].parts]
    assert first_turn == ["Mia at the beach", MIA, "image"]  # the root's turn exactly as it was sent
    assert kinds_and_texts(sent)[1:] == [MIA, "file", MUG, "file"]
    assert sent.images == [images["mia"].read_bytes(), images["mug"].read_bytes()]


def test_a_batch_kit_column_and_the_batch_default(keyed_env, images, capsys, tmp_path):
    make_story(images, capsys)
    rows = tmp_path / "rows.csv"
    rows.write_text("prompt,kit\nwith version one,story@1\nwith the newest,\n", encoding="utf-8")
    assert main(["batch", str(rows), "--kit", "story", "--json", "--out", str(tmp_path / "b")]) == 0
    by_prompt = {r.prompt.split("\n")[0]: r for r in keyed_env.generate_requests}
    assert by_prompt["with version one"].images == [images["mia"].read_bytes()]
    assert by_prompt["with the newest"].images == [images["mia"].read_bytes(), images["mug"].read_bytes()]
    assert sorted(line["kit"] for line in out_json(capsys)) == ["story@1", "story@2"]


def test_bad_kits_are_refused_with_a_message_and_nothing_sent(keyed_env, images, capsys, tmp_path):
    make_story(images, capsys)
    text = tmp_path / "notes.png"
    text.write_text("not an image", encoding="utf-8")
    cases = [
        (["generate", "x", "--kit", "nope"], "no kit named 'nope'"),
        (["generate", "x", "--kit", "story@7"], "has no version 7; its versions are 1 to 2"),
        (["kits", "add", "story", str(images["mia2"]), "--role", "character", "--name", "mia"],
         "already has a reference named 'mia'"),
        (["kits", "add", "story", str(text), "--role", "object", "--name", "notes"], "is not an image"),
        (["kits", "create", "story", str(images["mia"])], "already exists"),
        (["kits", "remove", "story", "nobody"], "no reference named 'nobody'"),
        (["kits", "show", "a@b@c"], "is not a kit"),
    ]
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and err.count("\n") == 1, (argv, err)
    with pytest.raises(SystemExit):  # argparse: a role that is not one of the three
        main(["kits", "add", "story", str(images["mia2"]), "--role", "pet", "--name", "Rex"])
    assert keyed_env.requests == []


def test_a_fifteenth_reference_is_refused(keyed_env, tmp_path, capsys):
    paths = []
    for n in range(15):
        paths.append(tmp_path / f"r{n}.png")
        paths[-1].write_bytes(png_bytes(color=(n * 10, 0, 0)))
    assert main(["kits", "create", "big", *map(str, paths)]) == 2
    assert "at most 14 references" in capsys.readouterr().err
    assert main(["kits", "create", "big", *map(str, paths[:14])]) == 0
    assert main(["kits", "add", "big", str(paths[14]), "--role", "object", "--name", "one more"]) == 2
    assert "kit 'big' has 14 and you are adding 1" in capsys.readouterr().err


# -- the model's limits ------------------------------------------------------------------------------------------


@pytest.fixture
def caps():
    """The registry's reference limits as issue 21 gives them (models.json has them since issue 20)."""
    for model, (total, by_role) in CAPS.items():
        spec = get_model(model)
        assert (validation.reference_total(spec), validation.reference_caps(spec)) == (total, by_role)


def test_a_role_over_the_models_cap_is_refused_naming_the_numbers_and_the_models(caps, settings, emulator):
    async def scenario(studio):
        refs = [NewReference(png_bytes(color=(n, 1, 1)), "character", f"hero {n}") for n in range(5)]
        studio.kits.create("cast", refs)
        pro = studio.build_request(Mode.GENERATE, "five heroes", model=PRO, kit="cast")  # Pro takes 5 characters
        assert len(pro.kit.references) == 5
        with pytest.raises(InputError) as refused:
            studio.build_request(Mode.GENERATE, "five heroes", model=FLASH, kit="cast")
        return refused.value.message

    message = in_studio(settings, scenario)
    assert "takes at most 4 character references; kit cast@1 has 5" in message
    # Pro publishes 5 character references; Nano Banana 2.1 (issue 20) publishes no per-role caps, only 14 in all.
    takers = message.split("Models that would take it: ")[1]
    assert "Nano Banana Pro (gemini-3-pro-image)" in takers and "Nano Banana 2 (" not in takers
    assert emulator.requests == []


def test_a_kit_with_the_users_inputs_over_the_models_total_is_refused(caps, settings, emulator):
    async def scenario(studio):
        studio.kits.create("props", [NewReference(png_bytes(color=(n, 2, 2)), "object", f"prop {n}")
                                     for n in range(6)])
        inputs = [png_bytes(color=(n, 9, 9)) for n in range(9)]
        with pytest.raises(InputError) as refused:
            studio.build_request(Mode.COMPOSE, "all of it", inputs, model=FLASH, kit="props")
        return refused.value.message

    message = in_studio(settings, scenario)
    assert "takes at most 14 images a request; your 9 input image(s) and kit props@1's 6 references make 15" in message
    assert emulator.requests == []


def test_the_registry_gives_the_published_caps_once_it_has_them():
    for model, (total, caps) in CAPS.items():
        spec = get_model(model)
        assert (validation.reference_total(spec), validation.reference_caps(spec)) == (total, caps)


# -- provenance, cache and re-runs ---------------------------------------------------------------------------------


def test_png_and_history_record_the_kit_and_the_cache_key_covers_its_hashes(settings, emulator):
    async def scenario(studio):
        studio.kits.create("solo", [NewReference(png_bytes(color=(1, 2, 3)), "style", "ink")])
        plain = studio.build_request(Mode.GENERATE, "a harbour")
        first = await studio.generate("a harbour", kit="solo")
        studio.kits.add("solo", NewReference(png_bytes(color=(4, 5, 6)), "object", "boat"))
        second = await studio.generate("a harbour", kit="solo")
        again = await studio.generate("a harbour", kit="solo@1")
        return plain, first, second, again, studio.history.get(first.id)

    plain, first, second, again, entry = in_studio(settings, scenario)
    assert len({plain.cache_key(), first.request.cache_key(), second.request.cache_key()}) == 3
    assert again.cached and again.request.cache_key() == first.request.cache_key()
    assert len(emulator.generate_requests) == 2
    info = read_image_info(first.images[0].path.read_bytes())
    kit = info.request["request"]["kit"]
    assert (kit["name"], kit["version"]) == ("solo", 1)
    assert kit["references"][0]["sha256"] == first.request.kit.references[0].image.sha256
    assert "Kit: solo@1" in info.parameters
    assert entry.kit["name"] == "solo" and entry.kit["version"] == 1
    assert [r["sha256"] for r in entry.kit["references"]] == [kit["references"][0]["sha256"]]


def test_a_rerun_after_the_kit_changed_uses_the_version_it_was_made_with(settings, emulator):
    old, new = png_bytes(color=(9, 9, 9)), png_bytes(color=(250, 250, 0))

    async def scenario(studio):
        studio.kits.create("hero", [NewReference(old, "character", "Mia")])
        made = await studio.generate("Mia waves", kit="hero")
        studio.kits.add("hero", NewReference(new, "object", "kite"))
        return await studio.rerun(entry_id=made.id, use_cache=False)

    rerun = in_studio(settings, scenario)
    assert rerun.request.kit.spec == "hero@1"
    assert emulator.generate_requests[-1].images == [old]


def test_a_batch_keeps_the_version_it_started_with(settings, emulator, tmp_path):
    from nanobanana_ui.service.batch import parse_batch_text, plan_batch, run_batch

    first, later = png_bytes(color=(30, 60, 90)), png_bytes(color=(90, 60, 30))

    async def scenario(studio):
        studio.kits.create("set", [NewReference(first, "object", "lamp")])
        items = parse_batch_text("one\ntwo\n", base_dir=tmp_path)
        plan = plan_batch(studio, items, out_dir=tmp_path / "run", kit="set")
        studio.kits.add("set", NewReference(later, "object", "chair"))  # changed while the batch runs
        await run_batch(studio, plan, out_dir=tmp_path / "run")

    in_studio(settings, scenario)
    assert [r.images for r in emulator.generate_requests] == [[first], [first]]


# -- storage: privacy, owners, ZIPs --------------------------------------------------------------------------------


def test_personal_metadata_is_stripped_before_a_kit_image_is_stored(settings, emulator):
    jpeg = photo()
    assert has_gps(jpeg)

    async def scenario(studio):
        kit = studio.kits.create("trip", [NewReference(jpeg, "object", "camera")])
        await studio.generate("the camera on a table", kit="trip")
        return kit

    kit = in_studio(settings, scenario)
    stored = kit.references[0].path.read_bytes()
    assert not has_gps(stored) and b"Jane Doe" not in stored
    assert emulator.generate_requests[-1].images == [stored]


def test_each_visitors_kits_are_their_own(settings, emulator):
    async def scenario(studio):
        studio.kits.create("mine", [NewReference(png_bytes(), "object", "cup")], owner="session:a")
        assert [n for n, _ in studio.kits.names(owner="session:a")] == ["mine"]
        assert studio.kits.names(owner="session:b") == [] and studio.kits.names() == []
        with pytest.raises(InputError, match="no kit named 'mine'"):
            studio.build_request(Mode.GENERATE, "a cup", kit="mine", owner="session:b")
        # the same name for another visitor is another kit, starting at version 1
        other = studio.kits.create("mine", [NewReference(png_bytes(color=(1, 1, 1)), "style", "flat")],
                                   owner="session:b")
        return other.version, studio.kits.show("mine", owner="session:a").references[0].role

    assert in_studio(settings, scenario) == (1, "object")
    assert emulator.requests == []


def _zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return path


@pytest.mark.parametrize("files, message", [
    ({"notes.txt": b"hello"}, "not a kit of ours: it has no kit.json"),
    ({"kit.json": b'{"name": "x", "references": []}'}, "not a kit of ours"),
    ({"kit.json": json.dumps({"format": "nanobanana-kit", "name": "x", "references": [
        {"name": "a", "role": "object", "file": "../evil.png"}]}).encode(), "../evil.png": png_bytes()},
     "a path that leaves the kit's folder"),
    ({"kit.json": json.dumps({"format": "nanobanana-kit", "name": "x", "references": [
        {"name": "a", "role": "object", "file": "images/a.png"}]}).encode(), "images/a.png": b"<html>no</html>"},
     "is not an image"),
])
def test_a_zip_that_is_not_a_sound_kit_is_refused(keyed_env, tmp_path, capsys, files, message):
    assert main(["kits", "import", str(_zip(tmp_path / "bad.zip", files))]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    store = HistoryStore(tmp_path / "home")
    try:
        assert store.kits.names() == []  # nothing half-imported
    finally:
        store.close()


def test_not_a_zip_at_all(keyed_env, tmp_path, capsys):
    (tmp_path / "k.zip").write_bytes(b"plain text")
    assert main(["kits", "import", str(tmp_path / "k.zip")]) == 2
    assert "is not a ZIP file" in capsys.readouterr().err


def test_kit_specs_parse():
    assert parse_kit_spec("story") == ("story", None)
    assert parse_kit_spec("red mug@3") == ("red mug", 3)
    for bad in ("", "@2", "x@0"):
        with pytest.raises(InputError):
            parse_kit_spec(bad)


def test_the_history_schema_has_kits(tmp_path):
    store = HistoryStore(tmp_path / "home")
    store.close()
    with sqlite3.connect(tmp_path / "home" / "history.sqlite3") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        columns = {row[1] for row in db.execute("PRAGMA table_info(entries)")}
    assert {"kits", "kit_refs"} <= tables and "kit" in columns


def test_kit_images_are_not_orphans_and_repair_keeps_them(settings):
    async def scenario(studio):
        studio.kits.create("keep", [NewReference(png_bytes(color=(7, 7, 7)), "object", "box")])
        return studio.history.verify(), studio.history.repair(), studio.kits.use("keep")

    problems, repaired, kit = in_studio(settings, scenario)
    assert problems == [] and repaired == [] and len(kit.references) == 1


def test_the_request_image_is_unchanged_by_storing(settings):
    data = png_bytes(size=(40, 30), color=(3, 4, 5))

    async def scenario(studio):
        studio.kits.create("same", [NewReference(data, "object", "tile")])
        return studio.kits.use("same").references[0].image

    image = in_studio(settings, scenario)
    assert image.data == data and (image.width, image.height) == (40, 30)
    with Image.open(io.BytesIO(image.data)) as opened:
        assert opened.size == (40, 30)


def test_nothing_here_leaks_the_key(keyed_env, images, capsys, tmp_path):
    make_story(images, capsys)
    main(["generate", "Mia", "--kit", "story"])
    for path in (tmp_path / "home").rglob("*"):
        if path.is_file():
            assert TEST_KEY.encode() not in path.read_bytes(), path


# -- the page and the HTTP API ---------------------------------------------------------------------------------


class FakeRequest:
    def __init__(self, session_hash: str, username: str | None = None) -> None:
        self.session_hash, self.username = session_hash, username


def test_public_visitors_use_only_their_own_kits_through_the_runner(emulator, tmp_path):
    import gradio as gr

    from nanobanana_ui.domain.config import Settings
    from nanobanana_ui.service.studio import Studio
    from nanobanana_ui.ui.runner import Runner
    from nanobanana_ui.ui.runner_base import visitor_owner

    settings = Settings(home=tmp_path / "home", base_url=emulator.base_url, public=True, timeout_s=10,
                        max_attempts=1)
    alice, bob = FakeRequest("sess-alice"), FakeRequest("sess-bob")
    cup = png_bytes(color=(0, 90, 180))

    async def scenario():
        async with Studio(settings) as host:
            runner = Runner(host, owner_of=visitor_owner)
            host.kits.create("cups", [NewReference(cup, "object", "blue cup")], owner=visitor_owner(alice))
            host.kits.create("host kit", [NewReference(cup, "object", "cup")])  # the host's own, local kit
            await runner.generate("a blue cup", kit="cups", api_key="key-alice-1234567890", request=alice,
                                  progress=lambda *a, **k: None)
            assert runner.kit_names(alice) == ["cups"] and runner.kit_names(bob) == []
            for name in ("cups", "host kit"):
                with pytest.raises(gr.Error, match=f"no kit named '{name}'"):
                    await runner.generate("a cup", kit=name, api_key="key-bob-12345678901", request=bob,
                                          progress=lambda *a, **k: None)
            await runner.keys.aclose()

    asyncio.run(scenario())
    assert len(emulator.generate_requests) == 1 and emulator.generate_requests[0].images == [cup]


@pytest.mark.slow  # starts the app and drives it with gradio_client
def test_the_generate_endpoint_takes_a_kit(module_emulator, tmp_path):
    from gradio_client import Client
    from servers import app_env, running_app

    home = tmp_path / "home"
    store = HistoryStore(home)
    try:
        from nanobanana_ui.service.kits import KitLibrary

        KitLibrary(store.kits).create("api", [NewReference(png_bytes(color=(5, 50, 150)), "style", "blueprint")])
    finally:
        store.close()
    env = app_env(GEMINI_API_KEY=TEST_KEY, NANOBANANA_BASE_URL=module_emulator.base_url, NANOBANANA_HOME=str(home),
                  GRADIO_TEMP_DIR=str(tmp_path / "gradio"))
    module_emulator.reset()
    with running_app(env, TEST_KEY) as url:
        client = Client(url, verbose=False)
        _, status = client.predict("a house", kit="api@1", api_name="/generate")
    sent = module_emulator.generate_requests[-1]
    assert [p.text for p in sent.turns[-1].parts if p.kind == "text"] == [
        "a house", 'Reference image "blueprint" (style).']
    assert "$" in status


def test_the_studio_tabs_kit_picker_lists_the_kits_and_sends_the_chosen_one(settings, emulator):
    from test_privacy_ui import studio_tab

    from nanobanana_ui.ui.extras import PNG
    from nanobanana_ui.ui.session import Session

    class Progress:
        def __call__(self, *args, **kwargs):
            return None

    lamp = png_bytes(color=(250, 200, 0))

    async def scenario(studio):
        studio.kits.create("lamps", [NewReference(lamp, "object", "brass lamp")])
        tab = studio_tab(studio)
        choices = tab.kit_choices("", None)
        await tab.generate("a desk with the brass lamp", tab.default_model, "auto", "", 1.0, 0.95, 0, -1, 1,
                           "Image + text", "", False, False, False, "", Session(), False, PNG, 90, "",
                           request=None, progress=Progress(), kit="lamps@1")
        return choices

    choices = in_studio(settings, scenario)
    assert choices["choices"] == ["", "lamps"]
    sent = emulator.generate_requests[-1]
    assert sent.images == [lamp] and 'Reference image "brass lamp" (object).' in sent.prompt


def test_gemini_batch_mode_sends_the_kit_and_fetches_with_the_version_it_was_sent_with(emulator, tmp_path,
                                                                                        monkeypatch, capsys):
    from test_gemini_batch import cli_env, manifest

    from nanobanana_ui.domain.config import load_settings
    from nanobanana_ui.service.batch import GeminiBatches

    emulator.batches.seconds_per_state = 60
    for name, value in cli_env(emulator, tmp_path / "home").items():
        monkeypatch.setenv(name, value)
    art = tmp_path / "art.png"
    art.write_bytes(png_bytes(color=(77, 0, 77)))
    assert main(["kits", "create", "deco", str(art), "--role", "style", "--name", "art deco"]) == 0
    rows = tmp_path / "rows.txt"
    rows.write_text("a poster\n", encoding="utf-8")
    assert main(["batch", str(rows), "--gemini-batch", "--no-wait", "--kit", "deco", "--out",
                 str(tmp_path / "one")]) == 0
    [job] = emulator.batches.jobs
    [(_, body)] = job.requests
    texts = [p.get("text") for p in body["contents"][-1]["parts"] if "text" in p]
    assert texts == ["a poster", 'Reference image "art deco" (style).']
    other = tmp_path / "other.png"
    other.write_bytes(png_bytes(color=(0, 77, 0)))
    assert main(["kits", "add", "deco", str(other), "--role", "object", "--name", "frame"]) == 0  # changed since
    capsys.readouterr()

    async def scenario(studio):
        emulator.batches.set_state(job.name, "SUCCEEDED")
        return await GeminiBatches(studio).fetch(display_name=job.display_name)

    fetched = in_studio(load_settings(), scenario)
    assert fetched.done == 1 and fetched.finished  # mapped to its row: planned again with deco@1, not deco@2
    [line] = manifest(tmp_path / "one")
    assert line["status"] == "done"


# -- sent once: the Files API ----------------------------------------------------------------------------------


def uploads(emulator) -> int:
    """How many Files API uploads were started."""
    return sum(1 for r in emulator.requests if r.path == "/upload/v1beta/files" and "upload_id" not in r.query)


def test_kit_images_are_uploaded_once_and_then_sent_as_file_data(settings, emulator):
    a, b = png_bytes(color=(1, 100, 1)), png_bytes(color=(100, 1, 1))

    async def scenario(studio):
        studio.kits.create("pair", [NewReference(a, "character", "Ann"), NewReference(b, "object", "bike")])
        for prompt in ("Ann on the bike", "Ann beside the bike", "Ann repairs the bike"):
            await studio.generate(prompt, kit="pair", model=FLASH)

    in_studio(settings, scenario)
    assert uploads(emulator) == 2  # one per image, for three requests
    first, *later = emulator.generate_requests
    assert all(r.part_kinds == ["text", "text", "fileData", "text", "fileData"] for r in emulator.generate_requests)
    assert all(r.file_uris == first.file_uris and r.images == [a, b] for r in later)
    assert all(len(json.dumps(r.body)) < 2000 for r in emulator.generate_requests)  # no image bytes in the body


def test_an_expired_file_is_uploaded_again_with_one_extra_call_and_no_failure(settings, emulator):
    image = png_bytes(color=(3, 33, 133))

    async def scenario(studio):
        studio.kits.create("one", [NewReference(image, "style", "blue")])
        await studio.generate("a blue sea", kit="one", model=FLASH)
        emulator.batches.expire_files()  # 48 hours later
        return await studio.generate("a blue sky", kit="one", model=FLASH)

    result = in_studio(settings, scenario)
    assert result.images and uploads(emulator) == 2
    statuses = [r.status for r in emulator.generate_requests]
    assert statuses == [200, 403, 200]  # one extra call: refused for the expired file, then sent again
    assert emulator.generate_requests[-1].file_uris != emulator.generate_requests[0].file_uris
    assert emulator.generate_requests[-1].images == [image]


def test_a_failed_upload_falls_back_to_inline(settings, emulator):
    from nanobanana_ui.emulator import Fault

    image = png_bytes(color=(200, 100, 0))

    async def scenario(studio):
        studio.kits.create("warm", [NewReference(image, "style", "orange")])
        emulator.batches.fail_next(Fault.server_error(500))
        return await studio.generate("an orange grove", kit="warm", model=FLASH)

    result = in_studio(settings, scenario)
    [sent] = emulator.generate_requests
    assert result.images and sent.part_kinds == ["text", "text", "image"] and sent.images == [image]
    assert sent.file_uris == []


def test_another_keys_file_is_not_used(emulator, tmp_path):
    """A file belongs to its key: a Studio for another key uploads its own copy."""
    from nanobanana_ui.domain.config import Settings

    image = png_bytes(color=(9, 99, 9))
    home = tmp_path / "home"
    for key in ("key-one-1234567890", "key-two-1234567890"):
        settings = Settings(api_key=key, base_url=emulator.base_url, home=home, timeout_s=10, max_attempts=1)

        async def scenario(studio, who=key[:7]):
            if not studio.kits.names():
                studio.kits.create("green", [NewReference(image, "object", "leaf")])
            return await studio.generate(f"a leaf for {who}", kit="green", model=FLASH)

        in_studio(settings, scenario)
    assert uploads(emulator) == 2 and [r.status for r in emulator.generate_requests] == [200, 200]


def test_the_history_tabs_rerun_and_new_variation_use_the_entrys_kit_version(settings, emulator):
    from test_history_tab import Browse, Progress, Tab, select

    old, new = png_bytes(color=(11, 22, 33)), png_bytes(color=(33, 22, 11))

    async def scenario():
        from nanobanana_ui.service.studio import Studio

        async with Studio(settings) as studio:
            studio.kits.create("cast", [NewReference(old, "character", "Jo")])
            tab = Tab(studio)
            await tab.runner.generate("Jo reads", kit="cast", progress=Progress())
            studio.kits.add("cast", NewReference(new, "object", "book"))  # the kit changed since
            browse = tab.refresh(Browse())["browse"]
            tab.select(browse, select(0))
            await tab.tab.rerun_clicked(browse, None, progress=Progress())  # a cache hit: the same request
            await tab.tab.variation_clicked(browse, None, progress=Progress())

    asyncio.run(scenario())
    first, varied = emulator.generate_requests
    assert first.images == varied.images == [old]
    assert len(emulator.generate_requests) == 2  # the re-run was a cache hit: same kit version, same key


# -- the Kits tab ----------------------------------------------------------------------------------------------------


def kits_tab(studio, owner_of=None):

    from nanobanana_ui.ui.kits_tab import KitsTab
    from nanobanana_ui.ui.runner import Runner

    runner = Runner(studio, owner_of=owner_of) if owner_of else Runner(studio)
    tab = KitsTab(runner)
    with page_for_handlers():
        tab.layout()
    return tab


def test_the_kits_tab_makes_changes_exports_imports_and_uses_a_kit(settings, emulator, images, tmp_path, monkeypatch):
    import tempfile

    import gradio as gr

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    export_folder = tmp_path / "nanobanana-ui" / "exports"
    export_folder.mkdir(parents=True)

    async def scenario(studio):
        tab = kits_tab(studio)
        made = tab.add_clicked("story", [str(images["mia"])], "character", "Mia", "yellow raincoat")
        assert "story@1" in made[tab.details] and made[tab.upload] is None
        both = tab.add_clicked("story", [str(images["mug"]), str(images["mia2"])], "object", "prop", "")
        assert "story@2" in both[tab.details] and "prop 1" in both[tab.details] and "prop 2" in both[tab.details]
        assert [caption for _, caption in both[tab.gallery]] == ["Mia (character)", "prop 1 (object)",
                                                                 "prop 2 (object)"]
        assert both[tab.version]["choices"] == [1, 2]  # one version for the two images
        old = tab.show("story", 1)
        assert [caption for _, caption in old[tab.gallery]] == ["Mia (character)"]
        removed = tab.remove_clicked("story", "prop 1")
        assert "story@3" in removed[tab.details] and "prop 1" not in removed[tab.details]
        with pytest.raises(gr.Error, match="already has a reference named 'mia'"):
            tab.add_clicked("story", [str(images["photo"])], "character", "mia", "")
        stale = export_folder / "story-000000.zip"  # an export made two hours ago, long copied by Gradio
        stale.write_bytes(b"PK")
        os.utime(stale, (time.time() - 7200,) * 2)
        exported = tab.export_clicked("story", 2)
        # Exports share one folder, pruned as new ones are made: a public demo's /tmp does not grow with each click.
        assert Path(exported).parent == export_folder and Path(exported).name.startswith("story-")
        assert not stale.exists()
        imported = tab.import_uploaded(exported)
        assert "story@4" in imported[tab.details] and "prop 1" in imported[tab.details]
        picker, tabs = tab.use_clicked("story", 4)
        assert picker["value"] == "story@4" and tabs.selected == "studio"
        return studio.kits.show("story@4")

    kit = in_studio(settings, scenario)
    assert [r.name for r in kit.references] == ["Mia", "prop 1", "prop 2"]
    assert emulator.requests == []


def test_history_add_to_kit_collects_the_entries_images(settings, emulator):
    from test_history_tab import Browse, Progress, Tab, select

    async def scenario(studio):
        history = Tab(studio)
        await history.runner.generate("a red boot", progress=Progress())
        await history.runner.generate("a blue hat", progress=Progress())
        browse = history.refresh(Browse())["browse"]
        tab = kits_tab(studio)
        files: list = []
        for index in (0, 1):
            history.select(browse, select(index))
            files, tabs = tab.add_from_history(history.library, browse, files, None)
            assert tabs.selected == "kits"
        tab.add_clicked("outfit", files, "object", "piece", "")
        return await studio.generate("a model wearing both pieces", kit="outfit"), files

    result, files = in_studio(settings, scenario)
    sent = emulator.generate_requests[-1]
    assert result.request.kit.spec == "outfit@1" and len(files) == 2
    assert sent.images == [Path(f).read_bytes() for f in files]  # the two entries' images, in the order added


def test_the_kits_tab_shows_a_visitor_only_their_own_kits(settings, emulator):
    from nanobanana_ui.ui.runner_base import visitor_owner

    async def scenario(studio):
        tab = kits_tab(studio, visitor_owner)
        tab.add_clicked("mine", [png_bytes_file(studio)], "style", "ink", "", FakeRequest("a"))
        theirs = tab.show("mine", None, FakeRequest("b"))
        ours = tab.show("mine", None, FakeRequest("a"))
        return theirs, ours, tab

    theirs, ours, tab = in_studio(settings, scenario)
    assert theirs[tab.pick]["choices"] == [""] and theirs[tab.gallery] is None
    assert ours[tab.pick]["choices"] == ["", "mine"] and len(ours[tab.gallery]) == 1


def png_bytes_file(studio) -> str:
    path = studio.settings.home / "upload.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(color=(70, 80, 90)))
    return str(path)


def test_the_kits_tab_reorders_re_roles_and_renames_each_as_a_new_version(settings, emulator, images):
    import gradio as gr

    async def scenario(studio):
        tab = kits_tab(studio)
        tab.add_clicked("set", [str(images["mia"]), str(images["mug"]), str(images["mia2"])], "object", "thing", "")
        moved = tab.rearrange("later", "set", "thing 1")
        assert [c for _, c in moved[tab.gallery]] == ["thing 2 (object)", "thing 1 (object)", "thing 3 (object)"]
        assert moved[tab.remove_name]["value"] == "thing 1"
        tab.rearrange("role", "set", "thing 3", "style")
        renamed = tab.rearrange("rename", "set", "thing 2", "", "Mia")
        assert [c for _, c in renamed[tab.gallery]] == ["Mia (object)", "thing 1 (object)", "thing 3 (style)"]
        with pytest.raises(gr.Error, match="already has a reference named 'mia'"):
            tab.rearrange("rename", "set", "thing 1", "", "mia")
        assert tab.rearrange("earlier", "set", "Mia") == gr.skip()  # already first: nothing changes
        return studio.kits.store.versions("set"), studio.kits.show("set@1")

    versions, first = in_studio(settings, scenario)
    assert versions == [1, 2, 3, 4] and [r.name for r in first.references] == ["thing 1", "thing 2", "thing 3"]


def test_an_upload_goes_through_the_retry_policy_like_a_request(settings, emulator):
    from nanobanana_ui.emulator import Fault
    from nanobanana_ui.quota.retry import RetryPolicy

    image = png_bytes(color=(40, 140, 240))

    async def scenario(studio):
        studio.kits.create("sky", [NewReference(image, "style", "azure")])
        emulator.batches.fail_next(Fault.server_error(503))  # the first upload call is refused, then retried
        return await studio.generate("a clear sky", kit="sky", model=FLASH)

    policy = RetryPolicy(max_attempts=3, base_delay_s=0.01)
    result = in_studio(settings, scenario, retry_policy=policy)
    [sent] = emulator.generate_requests
    assert result.images and uploads(emulator) == 2  # the refused start, then the one that went through
    assert sent.part_kinds == ["text", "text", "fileData"] and sent.images == [image]


def test_uploads_take_rate_limiter_slots(settings, emulator, monkeypatch):
    """Each upload is a call of its own through the limiter: two kit images and one request take three slots."""
    from nanobanana_ui.service import sending

    taken = []
    original = sending.GuardedSender._acquire

    async def counting(limiter, waiting):
        taken.append(1)
        return await original(limiter, waiting)

    monkeypatch.setattr(sending.GuardedSender, "_acquire", staticmethod(counting))

    async def scenario(studio):
        studio.kits.create("duo", [NewReference(png_bytes(color=(1, 1, 200)), "object", "a"),
                                   NewReference(png_bytes(color=(200, 1, 1)), "object", "b")])
        await studio.generate("both", kit="duo", model=FLASH)
        await studio.generate("both again", kit="duo", model=FLASH)

    in_studio(settings, scenario)
    assert len(taken) == 4  # two uploads, then one slot per request: the second request uploads nothing


def test_a_later_process_on_the_same_key_sends_the_files_it_uploaded(settings, emulator):
    image = png_bytes(color=(120, 0, 200))

    async def first(studio):
        studio.kits.create("violet", [NewReference(image, "style", "violet")])
        await studio.generate("a violet field", kit="violet", model=FLASH)

    async def later(studio):
        return await studio.generate("a violet sky", kit="violet", model=FLASH)

    in_studio(settings, first)
    in_studio(settings, later)  # a new Studio, as a new command would make
    assert uploads(emulator) == 1 and [r.part_kinds[-1] for r in emulator.generate_requests] == ["fileData"] * 2
    [record] = (settings.home / "uploads").glob("*.json")
    assert TEST_KEY not in record.read_text() and record.name.startswith("k")


def test_vertex_has_no_files_api_so_the_kit_goes_inline(vertex_settings, emulator):  # noqa: F811
    image = png_bytes(color=(0, 120, 120))

    async def scenario(studio):
        studio.kits.create("teal", [NewReference(image, "style", "teal")])
        return await studio.generate("a teal wall", kit="teal", model=FLASH)

    result = in_studio(vertex_settings, scenario)
    [sent] = emulator.generate_requests
    assert result.images and sent.vertex is not None and uploads(emulator) == 0
    assert sent.part_kinds == ["text", "text", "image"] and sent.images == [image]
