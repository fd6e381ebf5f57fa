"""Transparent PNGs: both methods against the emulator's true alpha, the alignment check, cost, history, provenance."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from conftest import TEST_KEY, in_studio, png_bytes
from PIL import Image

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.config import Settings
from nanobanana_ui.domain.errors import InputError, UnsupportedOptionError
from nanobanana_ui.domain.request import ImageOptions, Mode
from nanobanana_ui.emulator.cutout import asked_background, cutout_picture, cutout_truth
from nanobanana_ui.imaging.matting import chroma_key, difference_matte, to_rgb_array
from nanobanana_ui.service.transparency import (
    BLACK_WORDS,
    WHITE_WORDS,
    Transparency,
    TransparencyError,
    check_transparency,
    estimate_calls,
    make_transparent,
    parse_transparent,
    pick_key,
)

FLASH = "gemini-3.1-flash-image"
LITE = "gemini-3.1-flash-lite-image"
SMALL = ImageOptions(size="512", aspect_ratio="1:1")
PROMPT = "a glass of orange juice, sticker style"


@pytest.fixture
def flash(settings) -> Settings:
    """The test settings on a Gemini 3 model (signatures, multi-turn, a 512 size that keeps the tests quick)."""
    return Settings(**{**settings.__dict__, "model": FLASH})


def _alpha(path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "RGBA"
        return np.asarray(image)[..., 3].astype(np.float32) / 255


def _truth(emulator, size):
    """The emulator's true subject for the first request's conversation (it follows the first prompt)."""
    return cutout_truth(size[0], size[1], emulator.generate_requests[0].prompt)


def _errors(alpha, truth):
    err = np.abs(alpha - truth.alpha)
    edges = (truth.alpha > 0) & (truth.alpha < 1) & ~truth.glass
    return float(err.mean()), float(err[edges].mean()), float(err[truth.glass].mean())


def test_the_matte_math_recovers_the_known_alpha_and_colour():
    size, subject = (320, 240), "a red apple"
    truth = cutout_truth(*size, subject)
    white = to_rgb_array(cutout_picture(size, (255, 255, 255), subject))
    black = to_rgb_array(cutout_picture(size, (0, 0, 0), subject))
    matte = difference_matte(white, black)
    overall, edges, glass = _errors(matte.rgba[..., 3] / 255, truth)
    assert overall < 0.005 and edges < 0.02 and glass < 0.01
    solid = truth.alpha > 0.5
    assert np.abs(matte.rgba[..., :3][solid].astype(np.float32) - truth.rgb[solid]).mean() < 2
    assert not matte.misaligned and matte.disagreeing_pixels == 0
    keyed = chroma_key(to_rgb_array(cutout_picture(size, (0, 255, 0), subject)), (0, 255, 0))
    key_overall, _, key_glass = _errors(keyed.rgba[..., 3] / 255, truth)
    assert key_overall < 0.03 and key_glass > glass  # the key is worse at glass, as promised
    green = keyed.rgba[..., :3][keyed.rgba[..., 3] > 0].astype(int)
    assert (green[:, 1] <= np.maximum(green[:, 0], green[:, 2]) + 1).all()  # no green spill left on the subject


def test_a_shifted_subject_is_caught_and_an_aligned_one_is_not():
    size = (256, 256)
    white = to_rgb_array(cutout_picture(size, (255, 255, 255), "x"))
    assert not difference_matte(white, to_rgb_array(cutout_picture(size, (0, 0, 0), "x"))).misaligned
    for dx, dy in ((1, 0), (0, 3), (4, 2)):
        assert difference_matte(white, to_rgb_array(cutout_picture(size, (0, 0, 0), "x", (dx, dy)))).misaligned


def test_the_emulator_reads_background_instructions():
    assert asked_background(f"a cat\n\n{WHITE_WORDS}") == (255, 255, 255)
    assert asked_background(BLACK_WORDS) == (0, 0, 0)
    assert asked_background("a frog. Background: flat pure chroma-key magenta (#FF00FF)") == (255, 0, 255)
    assert asked_background("a cat on a white sofa") is None


def test_difference_matting_two_calls_one_conversation_cost_history_provenance(emulator, flash):
    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, PROMPT, (), options=SMALL)
        result = await make_transparent(studio, request, Transparency())
        entries = studio.history.page(limit=10)
        return result, entries, studio.usage_today()

    result, entries, usage = in_studio(flash, scenario)
    first, second = emulator.generate_requests
    assert usage.requests == 2 and usage.cost_usd == pytest.approx(result.cost_usd)  # the meter counts both calls
    assert first.prompt == f"{PROMPT}\n\n{WHITE_WORDS}"
    assert second.prompt == BLACK_WORDS
    # Call 2 is the next turn of call 1's conversation: the model's image went back with its thought signature.
    assert [turn.role for turn in second.turns] == ["user", "model", "user"]
    model_images = [part for part in second.turns[1].parts if part.kind == "image"]
    assert model_images and all(part.signature for part in model_images)
    assert model_images[-1].data == first.reply_images[-1]
    image = result.images[0]
    alpha = _alpha(image.path)
    overall, edges, glass = _errors(alpha, _truth(emulator, (image.width, image.height)))
    assert overall < 0.02 and edges < 0.05 and glass < 0.02  # the goals, at 512
    # The result speaks for the user's prompt; both calls are paid for, in the history as a refinement pair.
    assert result.request.prompt == PROMPT and result.turn == 2
    white_entry, black_entry = sorted(entries, key=lambda e: e.turn)
    assert black_entry.parent == white_entry.id == result.parent and black_entry.id == result.id
    assert result.cost_usd == pytest.approx(white_entry.cost_usd + black_entry.cost_usd) and result.cost_usd > 0
    assert result.transparent["calls"] == 2 and result.transparent["ids"] == [white_entry.id, black_entry.id]
    assert black_entry.images[0].sha256 == image.sha256  # the history keeps the RGBA file itself
    with Image.open(black_entry.images[0].path) as kept:
        assert kept.mode == "RGBA"
    with Image.open(image.path) as saved:
        record = json.loads(saved.text["nanobanana"])
        assert "Transparent: difference, Calls: 2" in saved.text["parameters"]
    assert record["request"]["prompt"] == PROMPT
    assert record["transparent"]["white"]["id"] == white_entry.id
    assert record["transparent"]["black"]["id"] == black_entry.id
    assert result.to_record()["transparent"]["method"] == "difference"


def test_a_second_run_is_two_cache_hits_for_nothing(emulator, flash):
    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, PROMPT, (), options=SMALL)
        one = await make_transparent(studio, request, Transparency())
        two = await make_transparent(studio, request, Transparency())
        return one, two

    one, two = in_studio(flash, scenario)
    assert len(emulator.generate_requests) == 2
    assert two.cached and two.cost_usd == 0 and two.saved_usd == pytest.approx(one.cost_usd)
    with Image.open(one.images[0].path) as first, Image.open(two.images[0].path) as again:
        assert first.tobytes() == again.tobytes()  # the same pixels (the provenance names each run's own ids)


def test_a_moved_subject_falls_back_to_keying_the_white_picture(emulator, flash):
    emulator.cutouts.shift_next(4, 1)

    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, PROMPT, (), options=SMALL)
        return await make_transparent(studio, request, Transparency())

    result = in_studio(flash, scenario)
    assert len(emulator.generate_requests) == 2
    assert result.transparent["fallback"] == "key"
    assert "moved" in result.transparent["note"] and "chroma key" in result.transparent["note"]
    assert _alpha(result.images[0].path).max() == 1.0


def test_a_moved_subject_can_retry_the_second_call_once(emulator, flash):
    emulator.cutouts.shift_next(4, 1)

    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, PROMPT, (), options=SMALL)
        result = await make_transparent(studio, request, Transparency(fallback="retry"))
        return result, studio.history.page(limit=10)

    result, entries = in_studio(flash, scenario)
    assert [rec.prompt for rec in emulator.generate_requests[1:]] == [BLACK_WORDS, BLACK_WORDS]
    assert result.transparent["fallback"] == "retry" and result.transparent["calls"] == 3
    assert len(entries) == 3  # the moved answer stays in the history too (it was paid for), as a branch
    overall, edges, _ = _errors(_alpha(result.images[0].path), _truth(emulator, (result.images[0].width,) * 2))
    assert overall < 0.02 and edges < 0.05
    assert result.cost_usd == pytest.approx(sum(entry.cost_usd for entry in entries))


def test_the_key_method_is_one_call_and_works_on_lite(emulator, settings):
    lite = Settings(**{**settings.__dict__, "model": LITE})

    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, PROMPT, ())
        return await make_transparent(studio, request, Transparency(method="key"))

    result = in_studio(lite, scenario)
    (only,) = emulator.generate_requests
    assert "#00FF00" in only.prompt and len(only.turns) == 1
    image = result.images[0]
    overall, edges, _ = _errors(_alpha(image.path), _truth(emulator, (image.width, image.height)))
    assert overall < 0.03 and edges < 0.1
    assert result.transparent == {**result.transparent, "method": "key", "calls": 1, "key_colour": "#00FF00"}


def test_the_key_colour_is_far_from_the_prompts_colours():
    assert pick_key("a glass of orange juice")[0] == "green"
    assert pick_key("a green frog on a leaf")[0] == "magenta"


def test_difference_on_lite_a_region_edit_or_jpeg_is_refused_before_any_call(emulator, settings, tmp_path):
    lite = Settings(**{**settings.__dict__, "model": LITE})

    async def on_lite(studio):
        request = studio.build_request(Mode.GENERATE, PROMPT, ())
        await make_transparent(studio, request, Transparency())

    with pytest.raises(UnsupportedOptionError, match="transparent key"):
        in_studio(lite, on_lite)
    source = tmp_path / "in.png"
    source.write_bytes(png_bytes((64, 64)))
    mask = tmp_path / "mask.png"
    painted = Image.new("L", (64, 64), 0)
    painted.paste(255, (16, 16, 40, 40))
    painted.save(mask)

    async def masked(studio):
        request = studio.build_request(Mode.EDIT, "a hat", (source,), mask=mask)
        check_transparency(request, Transparency())

    with pytest.raises(InputError, match="--mask or --extend-to"):
        in_studio(settings, masked)

    async def jpeg(studio):
        from dataclasses import replace

        request = studio.build_request(Mode.GENERATE, PROMPT, ())
        check_transparency(replace(request, options=replace(request.options, output_mime_type="image/jpeg")),
                           Transparency())

    with pytest.raises(UnsupportedOptionError, match="JPEG"):
        in_studio(settings, jpeg)
    assert emulator.generate_requests == []


def test_a_model_that_ignores_the_background_is_told_and_its_picture_kept(emulator, flash):
    emulator.cutouts.ignore_next()

    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, PROMPT, (), options=SMALL)
        with pytest.raises(TransparencyError) as caught:
            await make_transparent(studio, request, Transparency())
        return caught.value, studio.history.page(limit=10)

    error, entries = in_studio(flash, scenario)
    assert len(emulator.generate_requests) == 1  # call 2 was not sent
    assert "ignored the background instruction" in error.message and "not on pure white" in error.message
    (entry,) = entries
    assert entry.ok and str(entry.images[0].path.name)[:8] and entry.id in error.message
    assert error.exit_code == 5


def test_the_estimate_counts_both_calls():
    from nanobanana_ui.domain.request import ImageRequest

    request = ImageRequest(Mode.GENERATE, FLASH, PROMPT)
    calls, cost = estimate_calls(request, Transparency())
    key_calls, key_cost = estimate_calls(request, Transparency(method="key"))
    assert (calls, key_calls) == (2, 1) and cost > 2 * 0.9 * key_cost


def test_parse_transparent_reads_flags_cells_and_api_values():
    assert parse_transparent(None) is None and parse_transparent("") is None and parse_transparent(False) is None
    assert parse_transparent(True) == Transparency() == parse_transparent("difference")
    assert parse_transparent("key") == Transparency(method="key")
    assert parse_transparent("yes", fallback="retry") == Transparency(fallback="retry")
    with pytest.raises(InputError, match="transparent must be"):
        parse_transparent("glass")


@pytest.fixture
def keyed_env(monkeypatch, emulator, tmp_path):
    monkeypatch.setenv("GEMINI_API_KEY", TEST_KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.base_url)
    monkeypatch.setenv("NANOBANANA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NANOBANANA_MODEL", FLASH)


def test_cli_transparent_json_and_refusals(keyed_env, emulator, capsys, tmp_path):
    code = main(["generate", PROMPT, "--size", "512", "--aspect-ratio", "1:1", "--transparent", "--json"])
    assert code == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["transparent"]["calls"] == 2 and line["prompt"] == PROMPT and line["turn"] == 2
    with Image.open(line["path"]) as image:
        assert image.mode == "RGBA"
    code = main(["generate", PROMPT, "--size", "512", "--aspect-ratio", "1:1", "--transparent", "key", "--json"])
    assert code == 0 and json.loads(capsys.readouterr().out.strip())["transparent"]["method"] == "key"
    # The bare flag before the prompt: the prompt is not taken as the flag's value.
    code = main(["generate", "--transparent", PROMPT, "--size", "512", "--aspect-ratio", "1:1", "--json"])
    assert code == 0
    before = json.loads(capsys.readouterr().out.strip())
    assert before["prompt"] == PROMPT and before["transparent"]["method"] == "difference"
    emulator.reset()
    source = tmp_path / "in.png"
    source.write_bytes(png_bytes((64, 64)))
    code = main(["edit", str(source), "a hat", "--extend-to", "16:9", "--transparent"])
    assert code == 2 and "--mask or --extend-to" in capsys.readouterr().err
    code = main(["generate", PROMPT, "--model", LITE, "--transparent"])
    assert code == 2 and "transparent key" in capsys.readouterr().err
    assert emulator.generate_requests == []


def test_batch_transparent_column_runs_both_methods_and_refuses_lite_difference(emulator, flash, tmp_path):
    from nanobanana_ui.service.batch.gemini_summary import check_one_model
    from nanobanana_ui.service.batch.items import BatchFileError, read_batch_file
    from nanobanana_ui.service.batch.plan import plan_batch
    from nanobanana_ui.service.batch.run import run_batch

    path = tmp_path / "stickers.csv"
    path.write_text("prompt,size,aspect_ratio,transparent\n"
                    f'"{PROMPT}",512,1:1,true\n'
                    "a blue fish,512,1:1,key\n"
                    "an opaque red fox,512,1:1,\n")
    items = read_batch_file(path)
    assert [item.transparent for item in items] == ["difference", "key", None]
    out = tmp_path / "out"

    async def scenario(studio):
        plan = plan_batch(studio, items, out_dir=out)
        with pytest.raises(InputError, match="cannot make transparent"):
            check_one_model(plan)
        return plan, await run_batch(studio, plan, out_dir=out)

    plan, summary = in_studio(flash, scenario)
    assert (summary.done, summary.failed) == (3, 0)
    assert len(emulator.generate_requests) == 4  # 2 + 1 + 1
    modes = {}
    for png in out.glob("*.png"):
        with Image.open(png) as image:
            modes[png.name] = image.mode
    assert sorted(modes.values()) == ["RGB", "RGBA", "RGBA"]
    bad = tmp_path / "bad.csv"
    bad.write_text(f"prompt,model,transparent\na cat,{LITE},yes\na dog,,glass\n")
    with pytest.raises(BatchFileError, match="line 3: transparent 'glass'"):
        read_batch_file(bad)
    bad.write_text(f"prompt,model,transparent\na cat,{LITE},yes\n")

    async def lite_plan(studio):
        plan_batch(studio, read_batch_file(bad), out_dir=out)

    with pytest.raises(BatchFileError, match="line 2: .*transparent key"):
        in_studio(flash, lite_plan)


def test_a_transparent_result_goes_on_to_edit_and_refine_with_the_alpha_stated(emulator, flash):
    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, PROMPT, (), options=SMALL)
        made = await make_transparent(studio, request, Transparency())
        edit = studio.build_request(Mode.EDIT, "add a straw", (made.images[0].path,))
        again = studio.build_request(Mode.EDIT, "add a straw", (made.images[0].path,))
        refined = await studio.refine(parent_id=made.id, instruction="add a straw")
        return made, edit, again, refined

    made, edit, _, refined = in_studio(flash, scenario)
    assert "see-through parts" in edit.note and "--transparent" in edit.note
    with Image.open(io.BytesIO(edit.images[0].data)) as sent:
        assert sent.mode == "RGBA"  # the alpha is sent as it is; the model's answer will be opaque
    assert refined.parent == made.id and refined.turn == 3
    # Refining goes on from what the model answered in turn 2 (the subject on black), with its signature.
    last = emulator.generate_requests[-1]
    assert [turn.role for turn in last.turns] == ["user", "model", "user", "model", "user"]
    assert last.turns[3].parts[-1].data == emulator.generate_requests[1].reply_images[-1]


def test_a_subject_that_moves_again_after_the_retry_is_keyed_from_call_1(emulator, flash):
    emulator.cutouts.shift_next(3, times=2)

    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, PROMPT, (), options=SMALL)
        return await make_transparent(studio, request, Transparency(fallback="retry"))

    result = in_studio(flash, scenario)
    assert len(emulator.generate_requests) == 3
    assert result.transparent["fallback"] == "key" and result.transparent["calls"] == 3


def test_a_difference_row_counts_twice_in_the_batch_estimate(emulator, flash, tmp_path):
    from nanobanana_ui.service.batch.items import read_batch_file
    from nanobanana_ui.service.batch.plan import plan_batch

    estimates = {}
    for value in ("", "true", "key"):
        path = tmp_path / f"one{value}.csv"
        path.write_text(f"prompt,transparent\na red apple,{value}\n")
        estimates[value] = in_studio(flash, lambda studio, path=path: _plan(plan_batch, read_batch_file, studio,
                                                                             path, tmp_path))
    assert estimates["true"] == pytest.approx(2 * estimates[""]) and estimates["key"] == estimates[""]


async def _plan(plan_batch, read_batch_file, studio, path, tmp_path):
    return plan_batch(studio, read_batch_file(path), out_dir=tmp_path / "out").estimated_cost_usd


class _Progress:
    def __call__(self, *args, **kwargs):
        pass


def test_the_page_runs_transparent_images_and_new_variation_keeps_them_transparent(emulator, flash):
    from nanobanana_ui.ui.runner import Runner
    from nanobanana_ui.ui.transparent_view import KEY, estimate_text, transparent_value

    assert transparent_value(False, KEY) == "" and transparent_value(True, KEY) == "key"
    assert transparent_value(True, "anything else") == "difference"
    assert estimate_text(True, "difference", FLASH, "1K").startswith("<small>2 calls per image")
    assert estimate_text(True, KEY, LITE, "").startswith("<small>1 call per image") and not estimate_text(False, KEY,
                                                                                                          FLASH, "1K")

    async def scenario(studio):
        runner = Runner(studio)
        files, status, session = await runner.generate(PROMPT, size="512", aspect_ratio="1:1",
                                                       transparent="difference", progress=_Progress())
        again = await runner.new_variation(session, progress=_Progress())
        return files, status, again

    files, status, again = in_studio(flash, scenario)
    assert "transparent: difference matting, 2 calls" in status
    assert len(emulator.generate_requests) == 4 and "transparent: difference matting" in again.status
    for path in (files[0], again.files[0]):
        with Image.open(path) as image:
            assert image.mode == "RGBA"


def test_only_call_1_searches(emulator, flash):
    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, PROMPT, (), options=ImageOptions(size="512",
                                                                                       aspect_ratio="1:1",
                                                                                       search=True))
        return await make_transparent(studio, request, Transparency())

    in_studio(flash, scenario)
    first, second = emulator.generate_requests
    assert first.controls.search and not second.controls.search


def test_refine_refuses_the_transparent_flag_before_any_call(keyed_env, emulator, capsys):
    assert main(["refine", "0123", "add a straw", "--transparent"]) == 2
    assert "--transparent applies to generate, edit and compose" in capsys.readouterr().err
    assert emulator.generate_requests == []
