"""Region edits from the history: re-run reproduces a masked or extend edit exactly, and refining one stays in its
region (blended into the original, the rest byte-identical), against the emulator through the real SDK."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_KEY, in_studio
from PIL import Image
from test_refine import assert_model_turn_is_reply
from test_regions import DEFAULT_FEATHER, assert_same_outside, band, encode, noise, rect_mask

from nanobanana_ui.domain.region import region_words
from nanobanana_ui.service.conversation import ConversationError
from nanobanana_ui.service.studio import Studio

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image"  # signs its answers: a refinement must send the signatures back
ROOT = Path(__file__).resolve().parents[1]
BOX = (120, 80, 200, 150)


def opened(path: Path) -> Image.Image:
    image = Image.open(path)
    image.load()
    return image


def masked_edit(settings, model: str = FLASH, mode: str = "RGB"):
    """A masked edit of a noise picture; returns (original, mask PNG, result)."""
    original = noise((320, 240), mode)
    mask_png = rect_mask(original.size, BOX)
    result = in_studio(settings, lambda s: s.edit(encode(original), "a red hat", mask=mask_png, feather=6,
                                                  model=model))
    return original, mask_png, result


# -- re-run --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["RGB", "P"])
def test_rerun_of_a_masked_edit_sends_the_same_crop_and_mask_and_a_cache_hit_costs_nothing(settings, emulator, mode):
    original, mask_png, first = masked_edit(settings, mode=mode)
    sent = emulator.generate_requests[-1]

    # A new Studio (no session): answered by the cache, $0, no request.
    again = in_studio(settings, lambda s: s.rerun(entry_id=first.id))
    assert again.cached and again.cost_usd == 0 and len(emulator.generate_requests) == 1
    assert again.request.cache_key() == first.request.cache_key()
    assert again.images[0].sha256 == first.images[0].sha256

    # Past the cache: the emulator receives the very crop and mask, and the output keeps the outside untouched.
    fresh = in_studio(settings, lambda s: s.rerun(entry_id=first.id, use_cache=False))
    rec = emulator.generate_requests[-1]
    assert len(emulator.generate_requests) == 2 and not fresh.cached and rec.status == 200
    assert rec.images == sent.images and rec.prompt == sent.prompt and rec.part_kinds == ["text", "image", "image"]
    assert rec.generation_config["imageConfig"] == sent.generation_config["imageConfig"]
    region, recorded = fresh.request.region, first.request.region
    assert (region.mask_sha256, region.box, region.feather) == (recorded.mask_sha256, recorded.box, 6)
    assert region.describe() == recorded.describe()
    assert hashlib.sha256(region.mask_png).hexdigest() == recorded.mask_sha256
    out = opened(fresh.images[0].path)
    assert_same_outside(out, original, band(mask_png, 6))
    assert fresh.images[0].read_bytes() != first.images[0].read_bytes()  # a new answer went in


def test_rerun_of_an_extend_keeps_ratio_anchor_and_the_original_in_place(settings, emulator):
    original = noise((160, 120), "RGBA")
    first = in_studio(settings, lambda s: s.edit(encode(original), "a beach", extend_to="16:9", anchor="right",
                                                 feather=3, model=FLASH))
    hit = in_studio(settings, lambda s: s.rerun(entry_id=first.id))
    assert hit.cached and hit.cost_usd == 0 and len(emulator.generate_requests) == 1
    fresh = in_studio(settings, lambda s: s.rerun(entry_id=first.id, use_cache=False))
    first_sent, rec = emulator.generate_requests
    assert rec.images == first_sent.images and rec.generation_config["imageConfig"]["aspectRatio"] == "16:9"
    region = fresh.request.region
    assert (region.extend_to, region.anchor, region.feather, region.box) == ("16:9", "right", 3, (54, 0, 214, 120))
    out = opened(fresh.images[0].path)
    assert out.size == (214, 120) and np.array_equal(np.asarray(out)[:, 54:], np.asarray(original))


def test_a_rerun_whose_mask_or_original_is_gone_says_so_and_sends_nothing(settings, emulator):
    _, _, first = masked_edit(settings)

    def forget(role: str):
        async def scenario(studio: Studio):
            sha = first.request.region.mask_sha256 if role == "mask" else first.request.region.source_sha256
            path = studio.history.find_file(sha)
            path.unlink()
            with pytest.raises(ConversationError) as caught:
                await studio.rerun(entry_id=first.id)
            studio.history.files.place_bytes(first.request.region.mask_png if role == "mask" else
                                             first.request.region.source, sha, "image/png")
            return caught.value.message
        return in_studio(settings, scenario)

    assert forget("mask").startswith(f"The mask of masked edit {first.id} (sha256 "
                                     f"{first.request.region.mask_sha256[:12]}) is no longer in the history")
    assert "Nothing was sent." in forget("mask")
    assert forget("original").startswith(f"The original image of region edit {first.id} is no longer in the history")
    assert len(emulator.generate_requests) == 1
    assert in_studio(settings, lambda s: s.rerun(entry_id=first.id)).cached  # put back: it works again

    async def altered(studio: Studio):
        studio.history.mask_path(studio.history.get(first.id)).write_bytes(rect_mask((320, 240), (0, 0, 9, 9)))
        with pytest.raises(ConversationError, match="no longer holds the bytes it was kept with"):
            await studio.refine(parent_id=first.id, instruction="bluer")

    in_studio(settings, altered)

    async def altered_rerun(studio: Studio):
        with pytest.raises(ConversationError, match=f"The mask of region edit {first.id} no longer holds the bytes"):
            await studio.rerun(entry_id=first.id)

    in_studio(settings, altered_rerun)
    assert len(emulator.generate_requests) == 1


# -- refine ---------------------------------------------------------------------------------------------------------

def test_a_masked_edit_refined_twice_stays_in_its_mask_turn_by_turn(settings, emulator):
    original, mask_png, root = masked_edit(settings, model=PRO)

    async def scenario(studio: Studio):
        second = await studio.refine(parent_id=root.id, instruction="make the hat blue")
        third = await studio.refine(parent_id=second.id, instruction="add a feather to it")
        return second, third, studio.history.get(second.id), studio.history.get(third.id)

    second, third, second_entry, third_entry = in_studio(settings, scenario)
    sent = emulator.generate_requests
    assert [r.status for r in sent] == [200, 200, 200]  # every signature came back as issued
    may_change = band(mask_png, 6)
    for result in (root, second, third):  # each output: the original's size and mode, untouched outside the band
        assert_same_outside(opened(result.images[0].path), original, may_change)
    outputs = [result.images[0].read_bytes() for result in (root, second, third)]
    assert len(set(outputs)) == 3  # each turn's answer really went in

    # The wire, turn by turn: the crop and mask first (as the edit sent them), then each answer as returned.
    received = sent[2].turns
    assert [t.role for t in received] == ["user", "model", "user", "model", "user"]
    assert [p.kind for p in received[0].parts] == ["text", "image", "image"]
    assert received[0].parts[0].text == sent[0].prompt == region_words("mask", "a red hat")
    assert [p.data for p in received[0].parts[1:]] == sent[0].images  # the crop and the crop's mask
    crop, crop_mask = (Image.open(io.BytesIO(data)) for data in sent[0].images)
    assert crop.size == crop_mask.size == root.request.region.canvas
    assert_model_turn_is_reply(received[1], sent[0])
    assert [p.text for p in received[2].parts] == [region_words("mask", "make the hat blue", follow_up=True)]
    assert_model_turn_is_reply(received[3], sent[1])
    assert [p.text for p in received[4].parts] == [region_words("mask", "add a feather to it", follow_up=True)]
    assert all(p.signature is not None for t in received if t.role == "model" for p in t.parts)
    assert sent[1].turns == received[:3]  # the second turn sent the same start
    # Each turn asks for the crop's shape, whatever the model answers (its size is scaled back to the crop).
    ratios = {r.generation_config["imageConfig"]["aspectRatio"] for r in sent}
    assert ratios == {root.request.options.aspect_ratio}

    # Recorded as any refinement, with the region: the same mask, crop and feather as the root.
    assert (second.parent, second.turn, third.parent, third.turn) == (root.id, 2, second.id, 3)
    for entry in (second_entry, third_entry):
        assert entry.region == json.loads(json.dumps(root.request.region.describe()))
        assert entry.input_hashes == (root.request.region.source_sha256,)


def test_a_region_refinement_replayed_from_the_cache_costs_nothing(settings, emulator):
    original, mask_png, root = masked_edit(settings, model=PRO)
    first = in_studio(settings, lambda s: s.refine(parent_id=root.id, instruction="make it gold"))
    replay = in_studio(settings, lambda s: s.refine(parent_id=root.id, instruction="make it gold"))
    assert len(emulator.generate_requests) == 2 and replay.cached and replay.cost_usd == 0
    assert replay.images[0].sha256 == first.images[0].sha256 and replay.parent == root.id
    # Re-running the refinement from the history: a new branch of the same parent, from the cache too.
    again = in_studio(settings, lambda s: s.rerun(entry_id=first.id))
    assert again.cached and again.cost_usd == 0 and again.parent == root.id and again.turn == 2
    assert len(emulator.generate_requests) == 2
    assert_same_outside(opened(again.images[0].path), original, band(mask_png, 6))


@pytest.mark.parametrize("mode", ["RGB", "P"])
def test_a_masked_edit_without_its_model_turn_sends_the_crop_of_its_output(settings, emulator, mode):
    from nanobanana_ui.domain.turns import BYPASS_TEXT

    original, mask_png, root = masked_edit(settings, model=PRO, mode=mode)

    async def scenario(studio: Studio):
        # As a cache hit whose model turn was not stored: the turn is rebuilt from the saved output.
        studio.history._db.execute("UPDATE entries SET model_turn = NULL WHERE id = ?", (root.id,))
        return await studio.refine(parent_id=root.id, instruction="make it blue")

    child = in_studio(settings, scenario)
    last = emulator.generate_requests[-1]
    assert last.status == 200 and child.turn == 2
    model = last.turns[1]
    assert [p.signature_text for p in model.parts] == [BYPASS_TEXT, BYPASS_TEXT]
    # The model's turn is about the crop: the saved output's crop box, not the whole picture.
    sent = Image.open(io.BytesIO(model.parts[1].data))
    expected = opened(root.images[0].path).crop(root.request.region.box).convert("RGB")  # 8-bit, as answers are
    assert sent.size == root.request.region.canvas and np.array_equal(np.asarray(sent), np.asarray(expected))
    assert_same_outside(opened(child.images[0].path), original, band(mask_png, 6))


def test_an_extend_refined_keeps_the_original_in_place(settings, emulator):
    original = noise((160, 120), "RGB")
    root = in_studio(settings, lambda s: s.edit(encode(original), "a beach", extend_to="16:9", anchor="left",
                                                model=PRO))
    child = in_studio(settings, lambda s: s.refine(parent_id=root.id, instruction="add palm trees"))
    assert [r.status for r in emulator.generate_requests] == [200, 200]
    received = emulator.generate_requests[-1].turns
    assert received[0].parts[0].text == region_words("extend", "a beach")
    assert received[2].parts[0].text == region_words("extend", "add palm trees", follow_up=True)
    for result in (root, child):
        out = opened(result.images[0].path)
        assert out.size == (214, 120) and np.array_equal(np.asarray(out)[:, :160], np.asarray(original))
    assert child.images[0].read_bytes() != root.images[0].read_bytes()


def test_a_region_refinement_keeps_the_crops_aspect_ratio(settings, emulator):
    _, _, root = masked_edit(settings, model=PRO)
    other = next(r for r in ("16:9", "9:16", "1:1") if r != root.request.options.aspect_ratio)
    from nanobanana_ui.domain.request import ImageOptions

    with pytest.raises(ConversationError, match="keeps its .* crop, so an aspect ratio does not apply"):
        in_studio(settings, lambda s: s.refine(parent_id=root.id, instruction="x",
                                               options=ImageOptions(aspect_ratio=other)))
    assert len(emulator.generate_requests) == 1


def test_the_cli_refines_a_masked_edit_inside_its_mask(emulator, settings, tmp_path):
    original, mask_png, root = masked_edit(settings, model=PRO)
    env = {**os.environ, "NANOBANANA_HOME": str(settings.home), "GEMINI_API_KEY": TEST_KEY,
           "NANOBANANA_BASE_URL": emulator.base_url, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "nanobanana_ui", "refine", root.id, "make it green", "--json"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    made = json.loads(done.stdout.splitlines()[0])
    assert (made["parent"], made["turn"]) == (root.id, 2) and made["region"]["mask_sha256"] == \
        root.request.region.mask_sha256
    assert (made["width"], made["height"]) == original.size
    assert_same_outside(opened(Path(made["path"])), original, band(mask_png, 6))
    assert emulator.generate_requests[-1].status == 200
    assert DEFAULT_FEATHER != 6  # the recorded feather, not the default, was used (band(…, 6) above)


# -- the History tab ------------------------------------------------------------------------------------------------

def test_the_history_tab_reruns_a_masked_edit_and_its_refinement_exactly(settings, emulator):
    import asyncio

    import gradio as gr
    from test_history_tab import Progress, Tab, run_result, select

    from nanobanana_ui.ui.history_library import Browse

    original, mask_png, root = masked_edit(settings, model=PRO)
    child = in_studio(settings, lambda s: s.refine(parent_id=root.id, instruction="make it blue"))
    assert len(emulator.generate_requests) == 2

    async def scenario():
        async with Studio(settings) as studio:
            tab = Tab(studio)
            browse = tab.refresh(Browse())["browse"]  # newest first: [0] the refinement, [1] the masked edit
            shown = tab.select(browse, select(1))["details"]
            assert browse.selected == root.id
            box = ", ".join(map(str, root.request.region.box))
            assert (f"Region: masked edit · mask `{root.request.region.mask_sha256[:12]}` · crop box {box} · "
                    "feather 6 px (Re-run repeats it exactly") in shown
            files, status, session, tabs = run_result(tab, await tab.tab.rerun(browse, None, "", None, Progress(),
                                                                                vary=False))
            assert status.startswith("cached · $0") and tabs.selected == "studio"
            made = session.entries[0]
            assert studio.history.get(made.id).region == json.loads(json.dumps(root.request.region.describe()))
            assert made.images[0].sha256 == root.images[0].sha256
            # New variation: past the cache, the same crop and mask sent, the outside untouched.
            _, status, session, _ = run_result(tab, await tab.tab.rerun(browse, None, "", None, Progress(),
                                                                         vary=True))
            assert "cached" not in status and len(emulator.generate_requests) == 3
            assert emulator.generate_requests[-1].images == emulator.generate_requests[0].images
            assert_same_outside(opened(session.entries[0].images[0].path), original, band(mask_png, 6))

            tab.select(browse, select(0))  # the refinement: a new branch of the same parent, from the cache
            _, status, session, _ = run_result(tab, await tab.tab.rerun(browse, None, "", None, Progress(),
                                                                         vary=False))
            assert status.startswith(f"Turn 2 (refines {root.id})") and "\ncached · $0" in status
            branch = studio.history.get(session.entries[0].id)
            assert (branch.parent, branch.turn, branch.region) == (root.id, 2, child_entry_region(studio))
            assert session.entries[0].images[0].sha256 == child.images[0].sha256

            studio.history.mask_path(studio.history.get(root.id)).unlink()  # the kept mask is gone
            tab.select(browse, select(1))
            with pytest.raises(gr.Error, match="The mask of masked edit .* is no longer in the history"):
                await tab.tab.rerun(browse, None, "", None, Progress(), vary=False)
            tab.select(browse, select(0))
            with pytest.raises(gr.Error, match="is no longer in the history"):
                await tab.tab.rerun(browse, None, "", None, Progress(), vary=False)

    def child_entry_region(studio: Studio):
        return studio.history.get(child.id).region

    asyncio.run(scenario())
    assert len(emulator.generate_requests) == 3


def test_png_info_on_a_masked_edit_points_to_the_exact_rerun_and_keeps_the_crop_ratio_out(settings, emulator):
    from nanobanana_ui.ui.pnginfo_tab import PngInfo

    _, _, root = masked_edit(settings)
    pnginfo = PngInfo(FLASH)
    message, text, found, _ = pnginfo.inspect(str(root.images[0].path))
    region = root.request.region
    assert f"Mask sha256: {region.mask_sha256}" in text and found["settings"]["aspect_ratio"] == "1:1"
    assert "restores: prompt, mode, model. It is a masked edit" in message  # not the crop's aspect ratio
    assert (f"It is a masked edit (mask sha256 {region.mask_sha256[:12]}..., feather 6): its original and mask are "
            "not in the file. To repeat it exactly, open it in the History tab and click *Re-run*") in message
    values = pnginfo.use(found, FLASH)
    # The crop's ratio is not carried to the next edit (a masked edit refuses another ratio than its crop's).
    assert values["aspect_ratio"]["value"] == "auto" and values["edit_prompt"] == "a red hat"
    assert values["mode_tabs"].selected == "edit"


def test_a_region_edits_kept_original_loses_its_personal_metadata_and_still_reruns(settings, emulator):
    """Issue 19: the history keeps a region edit's original (to re-run and refine) without GPS, owner or serials."""
    from test_privacy import has_gps, photo

    from nanobanana_ui.imaging.privacy import personal_fields

    original = photo("JPEG", size=(160, 120))
    assert has_gps(original) and personal_fields(original)
    mask_png = rect_mask((160, 120), (40, 30, 100, 90))

    async def scenario(studio: Studio):
        first = await studio.edit(original, "a red hat", mask=mask_png, model=PRO)
        entry = studio.history.get(first.id)
        kept = studio.history.kept_input(entry, "source")
        return first, kept.path.read_bytes(), await studio.rerun(entry_id=first.id, use_cache=False)

    first, kept, again = in_studio(settings, scenario)
    assert personal_fields(kept) == () and not has_gps(kept)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(kept))), np.asarray(Image.open(io.BytesIO(original))))
    assert not has_gps(Path(first.images[0].path).read_bytes())
    assert again.request.cache_key() == first.request.cache_key()  # the same crop, mask and original digest
    assert emulator.generate_requests[-1].images == emulator.generate_requests[0].images  # crop and mask, as sent
