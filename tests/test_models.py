"""The model registry against FACTS.md, and the shut-down ids resolved to their replacements everywhere."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import pytest
from conftest import TEST_KEY, in_studio, png_bytes

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain import models
from nanobanana_ui.domain.config import Settings
from nanobanana_ui.domain.errors import ShutDownModelError
from nanobanana_ui.domain.models import (
    all_models,
    default_model_id,
    find_model,
    get_model,
    known_models,
    pixel_size,
    resolve,
)
from nanobanana_ui.domain.request import ImageOptions, ImageRequest, Mode

NB21 = "gemini-nano-banana-2.1"  # the default since Google deprecated 3.1 Flash Image (2026-10-06)
NB2, PRO, LITE, FLASH = ("gemini-3.1-flash-image", "gemini-3-pro-image", "gemini-3.1-flash-lite-image",
                         "gemini-2.5-flash-image")
PRO_PREVIEW, NB2_PREVIEW, FLASH_PREVIEW = ("gemini-3-pro-image-preview", "gemini-3.1-flash-image-preview",
                                           "gemini-2.5-flash-image-preview")
PRO_NOTE = "gemini-3-pro-image-preview was shut down on 2026-06-25; used gemini-3-pro-image"

# FACTS.md, "Image models" (checked 2026-12-05): status, sizes, reference images, $ per output image.
FACTS = {
    NB21: ("ga", ("1K", "2K", "4K"), 14, {"1K": 0.0336, "2K": 0.0504, "4K": 0.1133}),  # third-party; 2K assumed
    NB2: ("deprecated", ("512", "1K", "2K", "4K"), 14, {"512": 0.045, "1K": 0.067, "2K": 0.101, "4K": 0.151}),
    PRO: ("ga", ("1K", "2K", "4K"), 14, {"1K": 0.134, "2K": 0.134, "4K": 0.24}),
    LITE: ("ga", ("1K",), 1, {"1K": 0.034}),  # FACTS: "about 0.034 (unverified)"; sizes "check the docs"
    FLASH: ("retiring", ("1K",), 3, {"1K": 0.039}),
}
TEN = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
EXTREME = ("1:4", "4:1", "1:8", "8:1")
# Pixel tables: FACTS.md's cells, and Google's image-generation docs tables for the others.
FLASH_PIXELS = {"1:1": (1024, 1024), "2:3": (832, 1248), "3:2": (1248, 832), "3:4": (864, 1184),
                "4:3": (1184, 864), "4:5": (896, 1152), "5:4": (1152, 896), "9:16": (768, 1344),
                "16:9": (1344, 768), "21:9": (1536, 672)}
GEMINI3_1K = {"1:1": (1024, 1024), "2:3": (848, 1264), "3:2": (1264, 848), "3:4": (896, 1200), "4:3": (1200, 896),
              "4:5": (928, 1152), "5:4": (1152, 928), "9:16": (768, 1376), "16:9": (1376, 768), "21:9": (1584, 672),
              "1:4": (512, 2048), "4:1": (2048, 512), "1:8": (384, 3072), "8:1": (3072, 384)}
GEMINI3_512 = {"1:1": (512, 512), "2:3": (424, 632), "3:2": (632, 424), "3:4": (448, 600), "4:3": (600, 448),
               "4:5": (464, 576), "5:4": (576, 464), "9:16": (384, 688), "16:9": (688, 384), "21:9": (792, 336),
               "1:4": (256, 1024), "4:1": (1024, 256), "1:8": (192, 1536), "8:1": (1536, 192)}


def gemini3(size: str, ratio: str) -> tuple[int, int]:
    """Google's Gemini 3 table: 2K and 4K are exactly 2x and 4x the 1K cell."""
    if size == "512":
        return GEMINI3_512[ratio]
    w, h = GEMINI3_1K[ratio]
    scale = {"1K": 1, "2K": 2, "4K": 4}[size]
    return w * scale, h * scale


def test_ids_statuses_sizes_and_limits_match_facts():
    assert default_model_id() == NB21
    assert [spec.id for spec in known_models()] == [NB21, NB2, PRO, LITE, FLASH]
    for model_id, (status, sizes, max_inputs, _) in FACTS.items():
        spec = get_model(model_id)
        assert (spec.status, spec.sizes, spec.max_input_images) == (status, sizes, max_inputs), model_id
    assert get_model(NB2).aspect_ratios == TEN + EXTREME and get_model(PRO).aspect_ratios == TEN
    assert get_model(FLASH).aspect_ratios == TEN
    assert get_model(NB2).since == get_model(PRO).since == "2026-05-28"
    assert get_model(NB21).aspect_ratios == TEN + EXTREME and get_model(NB21).since == "2026-10-06"
    assert get_model(NB21).thinking_levels == ("minimal", "medium", "high")
    assert get_model(NB21).search and get_model(NB21).image_search and get_model(NB21).multi_turn
    assert "third-party" in get_model(NB21).note.lower()
    assert get_model(FLASH).shutdown == "2026-10" and get_model(FLASH).replaced_by == NB2
    lite = get_model(LITE)
    assert not lite.multi_image and not lite.multi_turn and "unverified" in lite.note.lower()


def test_shut_down_ids_have_dates_and_replacements():
    shut = {spec.id: (spec.shutdown, spec.replaced_by) for spec in all_models() if spec.status == "shut down"}
    assert shut == {PRO_PREVIEW: ("2026-06-25", PRO), NB2_PREVIEW: ("2026-06-25", NB2),
                    FLASH_PREVIEW: ("2026-01", FLASH)}
    assert not any(spec.id in shut for spec in known_models())


def test_prices_match_facts_and_batch_is_half():
    for model_id, (*_, prices) in FACTS.items():
        spec = get_model(model_id)
        table = spec.price_table()
        assert list(table) == list(spec.sizes)
        for size, usd in prices.items():
            assert table[size]["interactive"] == pytest.approx(usd, abs=0.0006), (model_id, size)
            assert table[size]["batch"] == pytest.approx(table[size]["interactive"] / 2)
    # The exact token arithmetic behind them.
    assert get_model(NB2).price_table()["1K"]["interactive"] == pytest.approx(1120 * 60 / 1e6)
    assert get_model(PRO).price_table()["4K"]["interactive"] == pytest.approx(2000 * 120 / 1e6)
    assert get_model(FLASH).price_table()["1K"]["interactive"] == pytest.approx(1290 * 30 / 1e6)


def test_pixel_sizes_for_every_ratio_of_every_model():
    checked = 0
    for spec in known_models():
        for size in spec.sizes:
            for ratio in spec.aspect_ratios:
                expected = FLASH_PIXELS[ratio] if spec.id == FLASH else gemini3(size, ratio)
                assert pixel_size(spec.id, ratio, size) == expected, (spec.id, size, ratio)
                w, h = expected
                a, b = (int(x) for x in ratio.split(":"))
                assert abs((w / h) / (a / b) - 1) < 0.03, (spec.id, size, ratio)  # each cell has its ratio
                checked += 1
    assert checked == 14 * 3 + 14 * 4 + 10 * 3 + 14 + 10  # 2.1: 1K 2K 4K x 14 ratios
    # FACTS' own cells, named one by one.
    assert [pixel_size(NB2, "16:9", s) for s in ("512", "1K", "2K", "4K")] == [
        (688, 384), (1376, 768), (2752, 1536), (5504, 3072)]
    assert pixel_size(PRO, "16:9", "1K") == (1376, 768) and pixel_size(PRO, "1:1") == (1024, 1024)
    assert [pixel_size(FLASH, r) for r in ("1:1", "16:9", "9:16", "21:9", "3:2")] == [
        (1024, 1024), (1344, 768), (768, 1344), (1536, 672), (1248, 832)]
    with pytest.raises(KeyError):
        pixel_size(PRO, "1:8", "1K")  # not in its table: never guessed


def test_resolve_replaces_a_shut_down_id_with_a_note():
    assert resolve(PRO_PREVIEW) == (get_model(PRO), PRO_NOTE)
    assert resolve(NB2_PREVIEW)[1] == "gemini-3.1-flash-image-preview was shut down on 2026-06-25; used " + NB2
    assert resolve(FLASH_PREVIEW)[1] == "gemini-2.5-flash-image-preview was shut down in January 2026; used " + FLASH
    assert resolve(FLASH) == (get_model(FLASH), None)  # retiring still works: sent as asked
    unknown, note = resolve("gemini-9-image-beta")
    assert note is None and not unknown.known and unknown.price is None
    assert (unknown.sizes, unknown.max_input_images) == (("1K",), 3)
    assert pixel_size(unknown, "16:9") == (1344, 768)  # conservative: the 1K-only table


@pytest.fixture
def orphan(monkeypatch):
    """A registry with a shut-down id that has no replacement."""
    real = models._registry()
    entry = models.ModelSpec(id="gemini-2.0-flash-preview-image-generation", label="old", sizes=(),
                             aspect_ratios=(), max_input_images=0, input_image_tokens=0, output_image_tokens={},
                             price=None, status="shut down", shutdown="2025-11-14")
    fake = models._Registry(real.default, (*real.models, entry), real.tables)
    monkeypatch.setattr(models, "_registry", lambda: fake)
    return entry.id


def test_shut_down_id_without_replacement_names_the_models_this_key_can_use(settings, emulator, orphan):
    emulator.allow_models(TEST_KEY, [NB2, LITE, FLASH])  # this key lacks Pro

    async def scenario(studio):
        studio.available_models()
        studio.discovery.wait(60)
        return studio.build_request(Mode.GENERATE, "x", model=orphan)

    with pytest.raises(ShutDownModelError) as caught:
        in_studio(settings, scenario)
    assert caught.value.message == (f"{orphan} was shut down on 2025-11-14 and has no replacement. Image models this "
                                    f"key can use: {NB2}, {LITE}, {FLASH}.")
    assert caught.value.exit_code == 2 and emulator.generate_requests == []


# --- the replacement, from every entry point ---------------------------------------------------------------------


def test_studio_sends_the_replacement_and_records_it(settings, emulator):
    result = in_studio(settings, lambda s: s.generate("a lighthouse", model=PRO_PREVIEW))
    [sent] = emulator.generate_requests
    assert sent.path == f"/v1beta/models/{PRO}:generateContent"
    assert result.request.model == PRO and result.request.note == PRO_NOTE

    async def history(studio):
        return studio.history.page(limit=5)

    [entry] = in_studio(settings, history)
    assert entry.model == PRO  # the history records the id actually used


@pytest.fixture
def keyed_env(emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("GEMINI_API_KEY", TEST_KEY)
    monkeypatch.setenv("NANOBANANA_BASE_URL", emulator.base_url)
    monkeypatch.setenv("NANOBANANA_HOME", str(tmp_path / "home"))
    return emulator


def test_cli_note_on_stderr_and_in_json(keyed_env, capsys):
    assert main(["generate", "a fox", "--model", PRO_PREVIEW, "--json"]) == 0
    captured = capsys.readouterr()
    [record] = [json.loads(line) for line in captured.out.splitlines()]
    assert f"note: {PRO_NOTE}\n" in captured.err
    assert record["model"] == PRO and record["note"] == PRO_NOTE
    assert [r.model for r in keyed_env.generate_requests] == [PRO]


def test_batch_row_note(keyed_env, capsys, tmp_path):
    batch = tmp_path / "shots.jsonl"
    batch.write_text(json.dumps({"prompt": "a fox", "model": NB2_PREVIEW}) + "\n" + json.dumps({"prompt": "a cat"})
                     + "\n")
    assert main(["batch", str(batch), "--json", "--yes", "--out", str(tmp_path / "run")]) == 0
    captured = capsys.readouterr()
    note = f"{NB2_PREVIEW} was shut down on 2026-06-25; used {NB2}"
    assert f"note: line 1: {note}" in captured.err and "line 2:" not in captured.err
    records = {r["prompt"]: r for r in map(json.loads, captured.out.splitlines())}
    assert records["a fox"]["model"] == NB2 and records["a fox"]["note"] == note and "note" not in records["a cat"]
    manifest = [json.loads(line) for line in (tmp_path / "run" / "manifest.jsonl").read_text().splitlines()]
    assert {line["prompt"]: line.get("note") for line in manifest} == {"a fox": note, "a cat": None}
    assert sorted(r.model for r in keyed_env.generate_requests) == [NB2, NB21]  # the default is 2.1


class Progress:
    def __call__(self, fraction: float, desc: str | None = None) -> None:
        pass


def test_api_png_info_and_history_rerun_use_the_replacement(settings, emulator, tmp_path):
    """Handler level (the UI package is being restructured): /generate's status, PNG Info's "Use these settings"
    and a history re-run, each with a preview id, send the GA id and say so."""
    from nanobanana_ui.imaging.pngmeta import embed_png_text, provenance_chunks
    from nanobanana_ui.service.studio import Studio
    from nanobanana_ui.ui.history_library import Library
    from nanobanana_ui.ui.pnginfo_tab import PngInfo
    from nanobanana_ui.ui.runner import Runner
    from nanobanana_ui.ui.session import Session

    old = ImageRequest(mode=Mode.GENERATE, model=PRO_PREVIEW, prompt="an old lighthouse",
                       options=ImageOptions(aspect_ratio="16:9", size="2K", seed=3))
    image = tmp_path / "old.png"
    image.write_bytes(embed_png_text(png_bytes(), provenance_chunks(old, text="")))

    async def scenario():
        async with Studio(settings) as studio:
            runner = Runner(studio)
            _, status, _ = await runner.generate("a lighthouse", model=PRO_PREVIEW, progress=Progress())
            assert status.splitlines()[0] == PRO_NOTE
            # PNG Info: the form gets the image's (preview) id; generating with it sends the replacement.
            pnginfo = PngInfo(settings.model)
            values = pnginfo.use(pnginfo.inspect(str(image))[2], settings.model)
            assert values["model"] == PRO_PREVIEW
            _, status, _ = await runner.generate(values["prompt"], model=values["model"], aspect_ratio="16:9",
                                                 size="2K", seed=values["seed"], progress=Progress())
            assert status.splitlines()[0] == PRO_NOTE
            # History: an entry recorded under the preview id re-runs on the replacement.
            entry_id = studio.history.record_result(
                studio_result(replace(old, options=replace(old.options, seed=4)), tmp_path))
            entry = studio.history.get(entry_id)
            assert entry.model == PRO_PREVIEW
            request, inputs = Library(studio).rebuild(entry)  # what the History tab's Re-run sends
            assert (request.model, request.note) == (PRO, PRO_NOTE)
            _, status, _ = await runner.run(request, inputs, 1, Session(), Progress())
            assert status.splitlines()[0] == PRO_NOTE

    asyncio.run(scenario())
    assert [r.model for r in emulator.generate_requests] == [PRO, PRO, PRO]


def studio_result(request: ImageRequest, folder):
    from nanobanana_ui.domain.request import GeneratedImage, ImageResult
    from nanobanana_ui.imaging.outputs import save_output

    path = save_output(png_bytes(), folder, "old-entry.png")
    return ImageResult(id="old", request=request, images=(GeneratedImage("x", "image/png", 64, 48, path),),
                       finish_reason="STOP", cost_usd=0.134)


# --- one cache for the page and the CLI ----------------------------------------------------------------------------


def test_page_and_cli_share_one_cache_entry(keyed_env, capsys):
    """The page sends its sliders' defaults (temperature 1.0, top-p 0.95, size 1K); the CLI sends none of them."""
    from nanobanana_ui.domain.config import load_settings
    from nanobanana_ui.service.studio import Studio
    from nanobanana_ui.ui.runner import Runner

    async def page():
        async with Studio(load_settings()) as studio:
            return await Runner(studio).generate("a fox in the snow", model="", aspect_ratio="auto", size="1K",
                                                 temperature=1.0, top_p=0.95, top_k=0, seed=-1,
                                                 progress=Progress())

    _, status, _ = asyncio.run(page())
    assert "cached" not in status
    assert main(["generate", "a fox in the snow", "--json"]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["cached"] is True and record["model"] == NB21  # the default
    [sent] = keyed_env.generate_requests  # one request for both
    assert "temperature" not in sent.generation_config and "topP" not in sent.generation_config
    assert "imageConfig" not in sent.generation_config  # 1K is the model's default: not sent either


def test_options_other_than_the_default_are_sent_and_unknown_models_get_everything(settings, emulator):
    async def scenario(studio):
        await studio.generate("a", model=NB2, options=ImageOptions(temperature=0.5, top_p=0.95, size="2K"))
        emulator.models = (*emulator.models, "gemini-9-image-beta")
        await studio.generate("b", model="gemini-9-image-beta", options=ImageOptions(temperature=1.0, top_p=0.95))

    in_studio(settings, scenario)
    first, second = (r.generation_config for r in emulator.generate_requests)
    assert first["temperature"] == 0.5 and "topP" not in first and first["imageConfig"] == {"imageSize": "2K"}
    assert (second["temperature"], second["topP"]) == (1.0, 0.95)  # its defaults are unknown: sent as asked


# --- models --json and --estimate ----------------------------------------------------------------------------------


def test_models_json_objects(capsys):
    assert main(["models", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in records] == [NB21, NB2, PRO, LITE, FLASH]
    for record in records:
        assert {"id", "label", "status", "sizes", "aspect_ratios", "max_input_images", "price_per_image",
                "source"} <= set(record)
        assert record["source"] == "registry"
        status, sizes, max_inputs, prices = FACTS[record["id"]]
        assert (record["status"], tuple(record["sizes"]), record["max_input_images"]) == (status, sizes, max_inputs)
        assert list(record["price_per_image"]) == list(sizes)
        for size, usd in prices.items():
            price = record["price_per_image"][size]
            assert price["interactive"] == pytest.approx(usd, abs=0.0006) and price["batch"] == price["interactive"] / 2
    assert [r["default"] for r in records] == [True, False, False, False, False]


def test_models_estimate_table(capsys):
    assert main(["models", "--estimate", "1000"]) == 0
    out = capsys.readouterr().out
    nb2_1k = next(line for line in out.splitlines() if line.startswith(NB2) and " 1K " in line)
    assert "$67.20" in nb2_1k and "$33.60" in nb2_1k and "$39.00" in nb2_1k and "+$28.20 (1.72x)" in nb2_1k
    pro_4k = next(line for line in out.splitlines() if line.startswith(PRO + " ") and " 4K " in line)
    assert "$240.00" in pro_4k and "$120.00" in pro_4k
    flash = next(line for line in out.splitlines() if line.startswith(FLASH))
    assert "$38.70" in flash and "$19.35" in flash and "-$0.30 (0.99x)" in flash
    assert "flat $0.039 per image ($39.00)" in out


def test_models_estimate_with_a_size_some_models_lack(capsys):
    assert main(["models", "--estimate", "100", "--size", "2K"]) == 0
    lines = capsys.readouterr().out.splitlines()
    lite = next(line for line in lines if line.startswith(LITE))
    assert "—" in lite and "no 2K (sizes: 1K)" in lite
    assert "$13.44" in next(line for line in lines if line.startswith(PRO + " "))
    assert main(["models", "--estimate", "10", "--size", "2k"]) == 2
    assert "uppercase K" in capsys.readouterr().err
    assert main(["models", "--size", "2K"]) == 2
    assert main(["models", "--estimate", "0"]) == 2


def test_models_json_with_estimate(capsys):
    assert main(["models", "--json", "--estimate", "10", "--size", "4K"]) == 0
    records = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert records[PRO]["estimate"] == [{"size": "4K", "count": 10, "interactive": 2.4, "batch": 1.2, "flat": 0.39}]
    assert records[LITE]["estimate"][0]["interactive"] is None


def test_offline_settings_default_is_nano_banana_2_1(tmp_path):
    assert Settings(home=tmp_path).model == NB21 and find_model(NB21) is not None


def test_price_summary_for_the_model_line():
    assert get_model(NB2).price_summary("2K") == "$0.1008 per 2K image · $10.08 per 100 · batch $0.0504 per image"
    assert get_model(FLASH).price_summary("4K").startswith("$0.0387 per 1K image")  # a size it lacks: its default
    assert get_model("gemini-9-image-beta").price_summary() == "price unknown"


# --- the emulator ------------------------------------------------------------------------------------------------


def test_emulator_lists_todays_ids_and_answers_404_for_shut_down_ones(emulator):
    from google import genai
    from google.genai import errors, types

    client = genai.Client(api_key="k", vertexai=False,
                          http_options=types.HttpOptions(api_version="v1beta", base_url=emulator.base_url))
    listed = [m.name for m in client.models.list()]
    # The image models, then the registry's text model (the prompt enhancer's and image to prompt's).
    assert listed == [f"models/{m}" for m in (NB21, NB2, PRO, LITE, FLASH, "gemini-3.1-flash-lite")]
    for old in (PRO_PREVIEW, NB2_PREVIEW, FLASH_PREVIEW):
        with pytest.raises(errors.ClientError) as caught:
            client.models.generate_content(model=old, contents="x")
        assert (caught.value.code, caught.value.status) == (404, "NOT_FOUND")
        assert caught.value.message == (f"models/{old} is not found for API version v1beta, or is not supported for "
                                        "generateContent. Call ListModels to see the list of available models and "
                                        "their supported methods.")
    emulator.allow_models("pro-less", [NB2])
    other = genai.Client(api_key="pro-less", vertexai=False,
                         http_options=types.HttpOptions(api_version="v1beta", base_url=emulator.base_url))
    assert [m.name for m in other.models.list()] == [f"models/{NB2}"]
    with pytest.raises(errors.ClientError) as caught:
        other.models.generate_content(model=PRO, contents="x")
    assert caught.value.code == 404
    # Per-model token counts and pixel sizes: Pro at 4K is 2000 image tokens and 5504x3072 at 16:9.
    answer = client.models.generate_content(model=PRO, contents="x", config=types.GenerateContentConfig(
        image_config=types.ImageConfig(aspect_ratio="16:9", image_size="4K")))
    [details] = [d for d in answer.usage_metadata.candidates_tokens_details if d.modality == types.MediaModality.IMAGE]
    assert details.token_count == 2000
    from io import BytesIO

    from PIL import Image

    [data] = [p.inline_data.data for p in answer.parts if p.inline_data]
    assert Image.open(BytesIO(data)).size == (5504, 3072)


def test_a_size_or_ratio_the_model_lacks_is_refused_naming_the_models_that_have_it(settings, emulator):
    from nanobanana_ui.domain.errors import UnsupportedOptionError

    for options, named in ((ImageOptions(size="512"), f"Models with 512 images: Nano Banana 2 ({NB2})."),
                           (ImageOptions(aspect_ratio="1:8"),
                            f"Models with 1:8: Nano Banana 2.1 ({NB21}), Nano Banana 2 ({NB2}), "
                            f"Nano Banana 2 Lite ({LITE}).")):
        with pytest.raises(UnsupportedOptionError) as caught:
            in_studio(settings, lambda s, o=options: s.generate("x", model=PRO, options=o))
        assert caught.value.message.startswith("Nano Banana Pro (Gemini 3 Pro Image) does not")
        assert caught.value.message.endswith(named)
    assert emulator.generate_requests == []
