"""Refine: conversations through the real SDK against the strict emulator, turn by turn, across processes and caches."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import TEST_KEY, png_bytes
from google import genai
from google.genai import errors, types
from PIL import Image

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.turns import BYPASS_TEXT
from nanobanana_ui.emulator import RecordedRequest
from nanobanana_ui.service.conversation import ConversationError, TurnsDontFitError
from nanobanana_ui.service.studio import Studio

ROOT = Path(__file__).resolve().parents[1]
PRO = "gemini-3-pro-image"  # an alias of the preview id in today's registry
FLASH_25 = "gemini-2.5-flash-image"


def run(settings, scenario):
    async def go():
        async with Studio(settings) as studio:
            return await scenario(studio)
    return asyncio.run(go())


def reply_parts(rec: RecordedRequest) -> list[dict]:
    return rec.reply_body["candidates"][0]["content"]["parts"]


def assert_model_turn_is_reply(sent, answer: RecordedRequest) -> None:
    """A model turn received equals, part for part, what the emulator answered (bytes and signatures exact)."""
    parts = reply_parts(answer)
    assert sent.role == "model"
    assert [p.kind for p in sent.parts] == ["image" if "inlineData" in p else "text" for p in parts]
    for got, want in zip(sent.parts, parts, strict=True):
        if "inlineData" in want:
            assert got.data == base64.b64decode(want["inlineData"]["data"])
        else:
            assert got.text == want["text"]
        assert got.thought == bool(want.get("thought"))
        wanted = want.get("thoughtSignature")
        assert got.signature == (base64.b64decode(wanted) if wanted else None)


def test_three_turns_and_a_branch_send_every_turn_exactly(emulator, settings):
    async def scenario(studio: Studio):
        root = await studio.generate("a lighthouse at dusk", model=PRO)
        second = await studio.refine(parent_id=root.id, instruction="make it night")
        third = await studio.refine(parent_id=second.id, instruction="add a full moon")
        branch = await studio.refine(parent_id=second.id, instruction="add falling snow")
        return root, second, third, branch, studio.branches(second.id)

    root, second, third, branch, branches = run(settings, scenario)
    sent = emulator.generate_requests
    assert [r.status for r in sent] == [200, 200, 200, 200]  # no 400 anywhere
    assert (root.parent, root.turn) == (None, 1)
    assert (second.parent, second.turn, third.parent, third.turn) == (root.id, 2, second.id, 3)
    assert (branch.parent, branch.turn) == (second.id, 3)
    assert [b.id for b in branches] == [third.id, branch.id]

    received = sent[2].turns  # the third turn's request: the whole path, then the new instruction
    assert [t.role for t in received] == ["user", "model", "user", "model", "user"]
    assert [(p.kind, p.text) for p in received[0].parts] == [("text", "a lighthouse at dusk")]
    assert_model_turn_is_reply(received[1], sent[0])
    assert [(p.kind, p.text) for p in received[2].parts] == [("text", "make it night")]
    assert_model_turn_is_reply(received[3], sent[1])
    assert [(p.kind, p.text) for p in received[4].parts] == [("text", "add a full moon")]
    assert all(p.signature is None for t in received if t.role == "user" for p in t.parts)
    # Gemini 3 signs the answer image and the text before it: both came back byte for byte (checked above)
    assert [p.signature is not None for p in received[1].parts] == [True, True]

    # The branch sent the same path and only its own last instruction differs.
    assert sent[3].turns[:4] == received[:4]
    assert [p.text for p in sent[3].turns[4].parts] == ["add falling snow"]
    # The emulator draws a refinement from its parent: the parent shows through, lightly tinted.
    parent = Image.open(io.BytesIO(sent[1].reply_images[-1])).convert("RGB")
    child = Image.open(io.BytesIO(sent[2].reply_images[-1])).convert("RGB")
    x, y = parent.width // 2, parent.height // 2
    assert all(abs(a - b) <= 0.21 * 255 for a, b in zip(parent.getpixel((x, y)), child.getpixel((x, y)), strict=True))


def test_the_emulator_refuses_a_model_image_without_its_signature(emulator):
    client = genai.Client(api_key=TEST_KEY, vertexai=False,
                          http_options=types.HttpOptions(base_url=emulator.base_url, api_version="v1beta"))
    image = types.Part.from_bytes(data=png_bytes(), mime_type="image/png")
    contents = [types.Content(role="user", parts=[types.Part.from_text(text="a square")]),
                types.Content(role="model", parts=[image]),
                types.Content(role="user", parts=[types.Part.from_text(text="make it night")])]
    with pytest.raises(errors.ClientError) as missing:
        client.models.generate_content(model=PRO, contents=contents)
    assert missing.value.code == 400 and missing.value.status == "INVALID_ARGUMENT"
    assert missing.value.message == "Image part is missing a thought_signature in content position 2, part position 1."
    contents[1] = types.Content(role="model", parts=[replace_signature(image, b"made up by a chat front end")])
    with pytest.raises(errors.ClientError) as forged:
        client.models.generate_content(model=PRO, contents=contents)
    assert forged.value.message == "Thought signature is not valid."
    contents[1] = types.Content(role="model", parts=[replace_signature(image, base64.urlsafe_b64decode(BYPASS_TEXT))])
    assert client.models.generate_content(model=PRO, contents=contents).parts  # the documented bypass is accepted
    assert emulator.generate_requests[-1].turns[1].parts[0].signature_text == BYPASS_TEXT
    client.models.generate_content(model=FLASH_25, contents=contents[:1] + [
        types.Content(role="model", parts=[image]), contents[2]])  # 2.5 Flash Image has no signatures to check


def replace_signature(part: types.Part, signature: bytes) -> types.Part:
    return part.model_copy(update={"thought_signature": signature})


@pytest.mark.slow  # a CLI subprocess per turn
def test_a_new_process_continues_the_conversation_from_the_cli(emulator, settings, monkeypatch):
    root = run(settings, lambda s: s.generate("a red bicycle", model=PRO))
    env = {**os.environ, "NANOBANANA_HOME": str(settings.home), "GEMINI_API_KEY": TEST_KEY,
           "NANOBANANA_BASE_URL": emulator.base_url, "PYTHONPATH": str(ROOT)}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "nanobanana_ui", *args], capture_output=True, text=True,
                              env=env, cwd=ROOT, timeout=120)

    first = cli("refine", root.id, "make it night", "--json")
    assert first.returncode == 0, first.stderr
    made = json.loads(first.stdout)
    assert (made["parent"], made["turn"], made["prompt"]) == (root.id, 2, "make it night")
    assert {"id", "path", "model", "cached", "cost_usd", "finish_reason"} <= set(made)
    assert "input grows with every turn" in first.stderr
    second = cli("refine", made["id"], "paint it blue", "--json")
    assert second.returncode == 0, second.stderr
    again = json.loads(second.stdout)
    assert (again["parent"], again["turn"]) == (made["id"], 3)
    last = emulator.generate_requests[-1]
    assert [t.role for t in last.turns] == ["user", "model", "user", "model", "user"]
    assert_model_turn_is_reply(last.turns[1], emulator.generate_requests[0])
    assert_model_turn_is_reply(last.turns[3], emulator.generate_requests[1])
    assert all(r.status == 200 for r in emulator.generate_requests)

    listed = [json.loads(line) for line in cli("history", "--json").stdout.splitlines()]
    assert [(e["id"], e["parent"], e["turn"]) for e in listed] == [
        (again["id"], made["id"], 3), (made["id"], root.id, 2), (root.id, None, 1)]
    tree = cli("history", "--tree", made["id"])
    assert tree.returncode == 0, tree.stderr
    lines = tree.stdout.splitlines()
    assert lines[1] == f"1  {root.id.split('-')[1]}  a red bicycle"
    assert lines[2] == f"`-- 2  {made['id'].split('-')[1]}  make it night  <== {made['id']}"
    assert lines[3] == f"    `-- 3  {again['id'].split('-')[1]}  paint it blue"


def test_a_refinement_replayed_from_the_cache_costs_nothing_and_sends_nothing(emulator, settings):
    async def scenario(studio: Studio):
        root = await studio.generate("a teapot", model=PRO)
        first = await studio.refine(parent_id=root.id, instruction="make it gold")
        sent = len(emulator.generate_requests)
        replay = await studio.refine(parent_id=root.id, instruction="make it gold")
        after_replay = len(emulator.generate_requests)
        onward = await studio.refine(parent_id=replay.id, instruction="add steam")
        return first, replay, onward, sent, after_replay

    first, replay, onward, sent, after_replay = run(settings, scenario)
    assert (sent, after_replay) == (2, 2)  # the replay made no request
    assert replay.cached and replay.cost_usd == 0 and replay.parent == first.parent and replay.turn == 2
    assert replay.id != first.id  # a second branch, from the cache
    assert replay.images[0].read_bytes() == first.images[0].read_bytes()
    # The cache kept the model turn as returned: continuing from the replayed turn still sends real signatures.
    last = emulator.generate_requests[-1]
    assert last.status == 200 and onward.turn == 3
    assert_model_turn_is_reply(last.turns[3], emulator.generate_requests[1])


def test_gemini_25_flash_image_has_no_signatures_and_still_refines(emulator, settings):
    async def scenario(studio: Studio):
        root = await studio.generate("a paper boat", model=FLASH_25)
        second = await studio.refine(parent_id=root.id, instruction="make it red")
        return await studio.refine(parent_id=second.id, instruction="put it on a lake")

    third = run(settings, scenario)
    assert third.turn == 3
    sent = emulator.generate_requests
    assert all(r.status == 200 for r in sent)
    assert all("thoughtSignature" not in p for r in sent for p in reply_parts(r))
    assert [t.role for t in sent[2].turns] == ["user", "model", "user", "model", "user"]
    assert all(p.signature is None for t in sent[2].turns for p in t.parts)  # none invented, not even the bypass
    assert_model_turn_is_reply(sent[2].turns[1], sent[0])


def test_only_the_owner_can_refine(emulator, settings):
    async def scenario(studio: Studio):
        mine = await studio.generate("alice's cat", model=PRO, owner="alice")
        with pytest.raises(ConversationError, match="No result with id") as foreign:
            await studio.refine(parent_id=mine.id, instruction="make it bob's", owner="bob")
        sent = len(emulator.generate_requests)
        with pytest.raises(ConversationError):
            studio.branches(mine.id, owner="bob")
        ok = await studio.refine(parent_id=mine.id, instruction="give it a hat", owner="alice")
        return foreign.value, sent, ok

    foreign, sent, ok = run(settings, scenario)
    assert sent == 1 and foreign.exit_code == 2 and ok.parent is not None
    public = replace(settings, public=True)
    with pytest.raises(ConversationError, match="only the owner"):
        run(public, lambda s: s.refine(parent_id=ok.id, instruction="anyone's?"))
    assert len(emulator.generate_requests) == 2


def test_an_entry_without_its_model_turn_is_sent_with_the_documented_bypass(emulator, settings):
    async def scenario(studio: Studio):
        root = await studio.edit(png_bytes(size=(96, 64)), "make the square a circle", model=PRO)
        # As an entry from before conversations were kept: no model turn stored.
        studio.history._db.execute("UPDATE entries SET model_turn = NULL WHERE id = ?", (root.id,))
        return root, await studio.refine(parent_id=root.id, instruction="now make it green")

    root, child = run(settings, scenario)
    last = emulator.generate_requests[-1]
    assert last.status == 200 and child.turn == 2
    user, model = last.turns[0], last.turns[1]
    assert [p.kind for p in user.parts] == ["text", "image"]
    assert user.parts[1].data == emulator.generate_requests[0].images[0]  # the input image, kept by the history
    assert [p.signature_text for p in model.parts] == [BYPASS_TEXT, BYPASS_TEXT]  # text first, then the image


def test_a_path_longer_than_the_context_is_refused_before_sending(emulator, settings):
    long = "a very detailed scene " * 1300  # about 7,200 tokens a turn: 2.5 Flash Image reads 32,768

    async def scenario(studio: Studio):
        entry = await studio.generate(long, model=FLASH_25)
        for _ in range(3):
            entry = await studio.refine(parent_id=entry.id, instruction=long)
        sent = len(emulator.generate_requests)
        with pytest.raises(TurnsDontFitError) as refused:
            await studio.refine(parent_id=entry.id, instruction=long)
        return sent, refused.value

    sent, refused = run(settings, scenario)
    assert sent == 4 and len(emulator.generate_requests) == 4 and refused.exit_code == 2
    assert all(r.status == 200 for r in emulator.generate_requests)  # the longest path sent still fit
    assert "4 turns long" in refused.message and "Only the first 3 turns fit" in refused.message


def test_lost_files_stop_the_refinement_and_verify_names_them(emulator, settings, capsys, monkeypatch):
    root = run(settings, lambda s: s.generate("a kite", model=PRO))
    with sqlite3.connect(settings.home / "history.sqlite3") as db:
        [(sha,)] = db.execute("SELECT sha256 FROM files WHERE kind = 'model'").fetchall()
    (settings.home / "images" / sha[:2] / f"{sha}.png").unlink()
    with pytest.raises(ConversationError, match="lost its stored files"):
        run(settings, lambda s: s.refine(parent_id=root.id, instruction="make it fly"))
    assert len(emulator.generate_requests) == 1
    monkeypatch.setenv("NANOBANANA_HOME", str(settings.home))
    assert main(["history", "--verify"]) == 1
    assert f"entry {root.id}: model-turn image 1 file is missing" in capsys.readouterr().out
    assert main(["history", "--verify", "--repair"]) == 0
    # Repaired, the conversation goes on: the turn is sent as saved, with the documented bypass.
    child = run(settings, lambda s: s.refine(parent_id=root.id, instruction="make it fly"))
    assert child.turn == 2 and emulator.generate_requests[-1].turns[1].parts[-1].signature_text == BYPASS_TEXT


def test_unknown_id_on_the_cli_is_a_clear_exit_2(emulator, settings, capsys, monkeypatch):
    monkeypatch.setenv("NANOBANANA_HOME", str(settings.home))
    monkeypatch.setenv("GEMINI_API_KEY", TEST_KEY)
    monkeypatch.setenv("NANOBANANA_BASE_URL", emulator.base_url)
    assert main(["refine", "18ecba98a1b2ddd1-bbe64b0d", "make it night"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: No result with id") and "Traceback" not in err
    assert main(["history", "--tree", "0123456789abcdef-01234567"]) == 2
    assert capsys.readouterr().err.startswith("error: No result with id")
    assert emulator.generate_requests == []


def test_the_tree_draws_nested_branches():
    from nanobanana_ui.cli.refine import draw_tree
    from nanobanana_ui.storage.history.entries import HistoryEntry

    def entry(entry_id: str, turn: int, prompt: str) -> HistoryEntry:
        return HistoryEntry(id=f"18ecba98a1b2ddd1-{entry_id}", created=None, mode="edit", model=PRO, prompt=prompt,
                            options={}, input_hashes=(), images=(), text="", finish_reason="STOP", tokens={},
                            cost_usd=0.0, cached=False, elapsed_s=0.0, error=None, error_type=None, owner=None,
                            turn=turn, model_turn=[])

    tree = [(0, entry("aaaaaaaa", 1, "root")), (1, entry("bbbbbbbb", 2, "a")), (2, entry("cccccccc", 3, "a1")),
            (2, entry("dddddddd", 3, "a2")), (1, entry("eeeeeeee", 2, "b"))]
    assert draw_tree(tree, "18ecba98a1b2ddd1-dddddddd") == [
        "1  aaaaaaaa  root", "|-- 2  bbbbbbbb  a", "|   |-- 3  cccccccc  a1",
        "|   `-- 3  dddddddd  a2  <== 18ecba98a1b2ddd1-dddddddd", "`-- 2  eeeeeeee  b"]


def test_an_entry_from_before_the_migration_becomes_a_root_and_can_be_refined(emulator, settings):
    import hashlib

    from nanobanana_ui.storage.history.migrations import m001_initial, m002_prompt_search
    from nanobanana_ui.storage.history.store import new_entry_id

    home = settings.home
    home.mkdir(parents=True)
    data, old_id = png_bytes(size=(80, 60), color=(20, 90, 200)), new_entry_id()
    sha = hashlib.sha256(data).hexdigest()
    (home / "images" / sha[:2]).mkdir(parents=True)
    (home / "images" / sha[:2] / f"{sha}.png").write_bytes(data)
    with sqlite3.connect(home / "history.sqlite3") as db:  # a history written before conversations existed
        m001_initial(db)
        m002_prompt_search(db)
        db.execute("PRAGMA user_version = 2")
        db.execute("INSERT INTO entries (id, created, mode, model, prompt, text) VALUES "
                   "(?, '2026-01-01T00:00:00+00:00', 'generate', ?, 'an old fox', 'Here it is')", (old_id, PRO))
        db.execute("INSERT INTO images VALUES (?, 0, ?, 'image/png', 80, 60, 'old.png')", (old_id, sha))

    child = run(settings, lambda s: s.refine(parent_id=old_id, instruction="make it winter"))
    assert (child.parent, child.turn) == (old_id, 2)
    model = emulator.generate_requests[-1].turns[1]
    assert [(p.kind, p.text, p.data, p.signature_text) for p in model.parts] == [
        ("text", "Here it is", None, BYPASS_TEXT), ("image", None, data, BYPASS_TEXT)]
    with sqlite3.connect(home / "history.sqlite3") as db:
        assert db.execute("SELECT parent, turn FROM entries WHERE id = ?", (old_id,)).fetchone() == (None, 1)


def test_an_image_added_mid_conversation_and_a_failed_turn_stay_in_the_tree(emulator, settings):
    from nanobanana_ui.domain.errors import PromptBlockedError
    from nanobanana_ui.emulator import Fault

    added = png_bytes(size=(40, 40), color=(0, 200, 0))

    async def scenario(studio: Studio):
        root = await studio.generate("a plain room", model=PRO)
        with_chair = await studio.refine(parent_id=root.id, instruction="put this chair in it", images=(added,))
        emulator.fail_next(Fault.blocked())
        with pytest.raises(PromptBlockedError):
            await studio.refine(parent_id=with_chair.id, instruction="something blocked")
        return root, with_chair, studio.conversation_tree(root.id)

    root, with_chair, tree = run(settings, scenario)
    user = emulator.generate_requests[1].turns[2]
    assert [(p.kind, p.signature) for p in user.parts] == [("text", None), ("image", None)]
    assert user.parts[1].data == added
    assert [(depth, entry.turn, entry.prompt, entry.ok) for depth, entry in tree] == [
        (0, 1, "a plain room", True), (1, 2, "put this chair in it", True), (2, 3, "something blocked", False)]
    assert tree[2][1].parent == with_chair.id
    # The next turn sends the added image again as part of the path, from the history's own copy.
    later = run(settings, lambda s: s.refine(parent_id=with_chair.id, instruction="make it red"))
    assert later.turn == 3 and emulator.generate_requests[-1].turns[2].parts[1].data == added
    sent = len(emulator.generate_requests)
    with pytest.raises(ConversationError, match="has no image to refine"):
        run(settings, lambda s: s.refine(parent_id=tree[2][1].id, instruction="try the failed one"))
    assert len(emulator.generate_requests) == sent


def test_thought_parts_go_back_in_order_with_their_flags(tmp_path):
    from nanobanana_ui.domain.config import Settings
    from nanobanana_ui.emulator import GeminiEmulator

    with GeminiEmulator(include_thoughts=True) as emu:
        settings = Settings(api_key=TEST_KEY, base_url=emu.base_url, home=tmp_path / "home", timeout_s=10,
                            max_attempts=1)

        async def scenario(studio: Studio):
            root = await studio.generate("a glass of water", model=PRO)
            return root, await studio.refine(parent_id=root.id, instruction="add ice")

        root, child = run(settings, scenario)
        sent = emu.generate_requests
    assert [(p.thought, p.is_image) for p in root.model_turn] == [(True, False), (True, True), (False, False),
                                                                  (False, True)]
    model = sent[1].turns[1]
    assert [(p.kind, p.thought, p.signature is not None) for p in model.parts] == [
        ("text", True, False), ("image", True, False), ("text", False, True), ("image", False, True)]
    assert_model_turn_is_reply(model, sent[0])
    assert child.images[0].read_bytes() != root.images[0].read_bytes() and sent[1].status == 200


def test_an_old_edit_is_rerun_from_the_history_alone(emulator, settings):
    photo = png_bytes(size=(72, 48), color=(120, 40, 10))
    first = run(settings, lambda s: s.edit(photo, "make it blue", model=PRO))
    again = run(settings, lambda s: s.rerun(entry_id=first.id, use_cache=False))  # a new Studio: no session
    assert again.id != first.id and again.request.prompt == "make it blue" and not again.cached
    assert emulator.generate_requests[-1].images == [photo] and emulator.generate_requests[-1].status == 200


def test_turns_made_by_another_model_carry_the_bypass_and_lite_models_are_refused(emulator, settings):
    root = run(settings, lambda s: s.generate("a mountain", model=FLASH_25))
    child = run(settings, lambda s: s.refine(parent_id=root.id, instruction="at sunrise", model=PRO))
    assert child.request.model == PRO and emulator.generate_requests[-1].status == 200
    assert [p.signature_text for p in emulator.generate_requests[-1].turns[1].parts] == [BYPASS_TEXT, BYPASS_TEXT]
    with pytest.raises(ConversationError, match="not made for multi-turn editing"):
        run(settings, lambda s: s.refine(parent_id=child.id, instruction="x", model="gemini-3.1-flash-lite-image"))
    assert len(emulator.generate_requests) == 2


def test_a_cache_hit_whose_model_turn_was_not_stored_is_sent_with_the_bypass(emulator, settings):
    async def scenario(studio: Studio):
        first = await studio.generate("a red kite", model=PRO)
        key = first.request.cache_key()
        raw = studio.cache._cache.get("result:" + key)
        studio.cache._cache.set("result:" + key, {**raw, "model_parts": None})  # as an entry cached before refine
        hit = await studio.generate("a red kite", model=PRO)
        return hit, await studio.refine(parent_id=hit.id, instruction="two kites")

    hit, child = run(settings, scenario)
    assert hit.cached and hit.model_turn == () and child.turn == 2
    model = emulator.generate_requests[-1].turns[1]
    assert emulator.generate_requests[-1].status == 200
    assert [(p.kind, p.signature_text) for p in model.parts] == [("text", BYPASS_TEXT), ("image", BYPASS_TEXT)]


def test_thought_images_and_sources_with_a_refinement(emulator, settings):
    """Issue 10's controls and refine together: thoughts asked in the request go back whole, never as outputs."""
    from nanobanana_ui.domain.request import ImageOptions

    nb2 = "gemini-3.1-flash-image"

    async def scenario(studio: Studio):
        root = await studio.generate("a kite over a beach", model=nb2,
                                     options=ImageOptions(show_thoughts=True, search=True))
        return root, await studio.refine(parent_id=root.id, instruction="make the kite red")

    root, child = run(settings, scenario)
    sent = emulator.generate_requests
    assert [r.status for r in sent] == [200, 200] and sent[0].controls.include_thoughts and sent[0].controls.search
    assert root.thought_images and len(root.images) == 1  # the drafts are shown, never outputs
    assert root.sources and root.to_record()["sources"] == [s.to_dict() for s in root.sources]
    thoughts = [p for p in reply_parts(sent[0]) if p.get("thought")]
    assert thoughts and all("thoughtSignature" not in p for p in thoughts)
    model = sent[1].turns[1]  # the root's model turn, every part as answered: thought parts first, unsigned
    assert_model_turn_is_reply(model, sent[0])
    assert [p.thought for p in model.parts][:len(thoughts)] == [True] * len(thoughts)
    assert all(p.signature is not None for p in model.parts if p.kind == "image" and not p.thought)
    record = child.to_record()
    assert (record["parent"], record["turn"]) == (root.id, 2) and list(record)[-3:] in (
        ["sources", "parent", "turn"], ["parent", "turn", "note"])
