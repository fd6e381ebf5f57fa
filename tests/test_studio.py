"""Contract tests: the real google-genai SDK against the emulator, asserting what it received and what we returned."""

from __future__ import annotations

import io

import pytest
from conftest import TEST_KEY, in_studio, png_bytes, without_text_chunks
from PIL import Image

from nanobanana_ui.domain.config import Settings
from nanobanana_ui.domain.costs import cost_from_usage
from nanobanana_ui.domain.errors import ImageInputError, InputError, UnsupportedOptionError
from nanobanana_ui.domain.models import get_model, pixel_size
from nanobanana_ui.domain.request import ImageOptions, Mode
from nanobanana_ui.emulator import Fault, GeminiEmulator
from nanobanana_ui.service.studio import Studio


def test_generate_sends_prompt_verbatim_and_every_option(settings, emulator):
    prompt = "  A red fox,\n in the snow — «watercolour» 🦊  "
    options = ImageOptions(aspect_ratio="16:9", size="1K", temperature=0.7, top_p=0.9, top_k=32, seed=42)
    result = in_studio(settings, lambda s: s.generate(prompt, options=options))

    [sent] = emulator.generate_requests
    assert sent.path == "/v1beta/models/gemini-2.5-flash-image:generateContent"
    assert sent.api_key == TEST_KEY
    assert sent.prompt == prompt
    assert sent.part_kinds == ["text"]
    config = sent.generation_config
    assert config["temperature"] == 0.7 and config["topP"] == 0.9 and config["topK"] == 32 and config["seed"] == 42
    assert config["responseModalities"] == ["TEXT", "IMAGE"]
    assert config["imageConfig"] == {"aspectRatio": "16:9"}  # 1K is this model's default: not sent (one cache)
    assert "candidateCount" not in config

    [image] = result.images
    assert (image.width, image.height) == pixel_size("gemini-2.5-flash-image", "16:9", "1K") == (1344, 768)
    with Image.open(image.path) as saved:
        assert saved.format == "PNG" and saved.size == (1344, 768)
    assert result.cached is False and result.finish_reason == "STOP"
    assert result.text  # the emulator answers with words too when TEXT is asked for
    assert result.usage.image_tokens == 1290
    assert result.cost_usd == pytest.approx(cost_from_usage(get_model("gemini-2.5-flash-image"), result.usage))
    assert result.cost_usd > 0.0387


def test_a_results_repr_leaves_out_the_image_bytes(settings, emulator):
    """asyncio and anyio format a task's repr, with its finished futures' results, as a connection opens: a result
    whose repr spelled out a 4K image's bytes cost about 27 ms of CPU each time (and filled any log it reached)."""
    result = in_studio(settings, lambda s: s.generate("a fox", model="gemini-3-pro-image",
                                                      options=ImageOptions(size="4K")))
    image_parts = [part for part in result.model_turn if part.is_image]
    assert image_parts and len(image_parts[0].data) > 100_000  # the model's turn does carry the image's bytes
    assert len(repr(result)) < 5_000 and "\\x89PNG" not in repr(result)
    assert "data=" not in repr(image_parts[0]) and "thought_signature=" not in repr(image_parts[0])


def test_saved_file_is_exactly_the_bytes_the_api_returned(settings, emulator):
    result = in_studio(settings, lambda s: s.generate("a lighthouse", options=ImageOptions(aspect_ratio="9:16")))
    [image] = result.images
    assert without_text_chunks(image.path.read_bytes()) == emulator.generate_requests[0].reply_images[0]
    assert image.path.parent == settings.output_dir
    assert "a-lighthouse" in image.path.name


def test_defaults_are_not_sent_and_image_only_modality(settings, emulator):
    in_studio(settings, lambda s: s.generate("plain", options=ImageOptions(with_text=False)))
    config = emulator.generate_requests[0].generation_config
    assert config["responseModalities"] == ["IMAGE"]
    assert not {"temperature", "topP", "topK", "seed", "imageConfig"} & set(config)


def test_edit_sends_text_then_the_exact_image_bytes(settings, emulator, tmp_path):
    source = png_bytes((300, 200))
    path = tmp_path / "in.png"
    path.write_bytes(source)
    result = in_studio(settings, lambda s: s.edit(path, "Make the square blue"))
    [sent] = emulator.generate_requests
    assert sent.part_kinds == ["text", "image"]
    assert sent.prompt == "Make the square blue"
    assert sent.images == [source]
    assert sent.image_mime_types == ["image/png"]
    assert result.request.mode is Mode.EDIT
    assert result.images[0].width / result.images[0].height == pytest.approx(1.5, rel=0.05)  # input's aspect kept


def test_compose_keeps_image_order(settings, emulator):
    inputs = [png_bytes(color=c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    options = ImageOptions(aspect_ratio="1:1")
    result = in_studio(settings, lambda s: s.compose(inputs, "Put them in a row", options=options))
    [sent] = emulator.generate_requests
    assert sent.part_kinds == ["text", "image", "image", "image"]
    assert sent.images == inputs
    assert (result.images[0].width, result.images[0].height) == (1024, 1024)


def test_bigger_model_sizes_reach_the_wire(settings, emulator):
    options = ImageOptions(aspect_ratio="21:9", size="2K")
    result = in_studio(settings, lambda s: s.generate("wide", model="gemini-3-pro-image", options=options))
    sent = emulator.generate_requests[0]
    assert sent.model == "gemini-3-pro-image"
    assert sent.generation_config["imageConfig"] == {"aspectRatio": "21:9", "imageSize": "2K"}
    assert (result.images[0].width, result.images[0].height) == (3168, 1344)  # Gemini 3's table


def test_thought_parts_are_skipped(settings):
    with GeminiEmulator(include_thoughts=True) as emu:
        own = Settings(api_key=TEST_KEY, base_url=emu.base_url, home=settings.home)
        result = in_studio(own, lambda s: s.generate("think first"))
        assert len(result.images) == 1
        assert without_text_chunks(result.images[0].path.read_bytes()) == emu.generate_requests[0].reply_images[-1]


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": "   "}, "prompt is empty"),
    ({"prompt": "x" * 30_001}, "30,001 characters"),
    ({"options": ImageOptions(size="4K")}, "does not make 4K"),
    ({"options": ImageOptions(aspect_ratio="8:1")}, "aspect ratio 8:1"),
    ({"options": ImageOptions(temperature=3)}, "Temperature must be between 0 and 2"),
    ({"options": ImageOptions(top_p=1.5)}, "Top-p"),
    ({"model": "some-future-image-model", "options": ImageOptions(size="2K")}, "does not make 2K"),
    ({"model": "16:9"}, "is not a model id"),
    ({"model": "../../v1/files"}, "is not a model id"),
])
def test_bad_requests_are_refused_before_any_call(settings, emulator, kwargs, message):
    kwargs = {"prompt": "a cat", **kwargs}
    with pytest.raises(InputError, match=message):
        in_studio(settings, lambda s: s.generate(kwargs.pop("prompt"), **kwargs))
    assert emulator.requests == []


def test_too_many_images_for_the_model(settings, emulator):
    images = [png_bytes(color=(i, i, i)) for i in range(4)]
    with pytest.raises(InputError, match="at most 3 input images"):
        in_studio(settings, lambda s: s.compose(images, "all four"))
    assert emulator.requests == []
    # Nano Banana Pro takes up to 14.
    in_studio(settings, lambda s: s.compose(images, "all four", model="gemini-3-pro-image"))
    assert len(emulator.generate_requests[0].images) == 4


def test_mode_needs_the_right_number_of_images(settings, emulator):
    with pytest.raises(InputError, match="Compose needs 2 to 3"):
        in_studio(settings, lambda s: s.compose([png_bytes()], "one is not a composition"))
    assert emulator.requests == []


def test_unknown_model_ids_are_sent_with_conservative_checks(settings, emulator):
    with GeminiEmulator(models=["acme-image-2"]) as emu:
        own = Settings(api_key=TEST_KEY, base_url=emu.base_url, home=settings.home)
        result = in_studio(own, lambda s: s.generate("new model", model="acme-image-2"))
        assert emu.generate_requests[0].model == "acme-image-2"
        assert result.cost_usd is None  # no price in the registry: unknown, not zero
    with pytest.raises(UnsupportedOptionError):
        in_studio(settings, lambda s: s.generate("x", model="acme-image-2", options=ImageOptions(size="4K")))


def test_offline_without_a_key_uses_the_embedded_emulator(tmp_path):
    settings = Settings(api_key=None, home=tmp_path / "home")
    studio = Studio(settings)
    assert studio.offline
    result = in_studio(settings, lambda s: s.generate("an offline fox"))
    with Image.open(io.BytesIO(result.images[0].read_bytes())) as image:
        assert image.size == (1024, 1024)


def test_forced_offline_ignores_the_key(emulator, tmp_path):
    settings = Settings(api_key=TEST_KEY, base_url=emulator.base_url, offline=True, home=tmp_path / "h")
    in_studio(settings, lambda s: s.generate("forced offline"))
    assert emulator.requests == []  # went to the shared emulator, not to the configured base URL


def test_count_makes_parallel_variations(settings, emulator):
    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, "three foxes")
        return await studio.run_variations(request, 3)

    results = in_studio(settings, scenario)
    assert sorted(r.request.options.variation for r in results) == [0, 1, 2]
    assert len(emulator.generate_requests) == 3
    assert len({r.images[0].path for r in results}) == 3


def test_count_out_of_range(settings):
    async def scenario(studio):
        return await studio.run_variations(studio.build_request(Mode.GENERATE, "x"), 101)

    with pytest.raises(InputError, match="between 1 and 100"):
        in_studio(settings, scenario)


def test_a_failure_among_variations_does_not_hide_the_others(settings, emulator):
    emulator.fail_next(Fault.overloaded())

    async def scenario(studio):
        return await studio.run_variations(studio.build_request(Mode.GENERATE, "two"), 2)

    outcomes = in_studio(settings, scenario)
    assert sum(isinstance(o, Exception) for o in outcomes) == 1
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1


def test_text_file_named_png_is_refused_before_any_call(settings, emulator, tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_text("hello, I am not an image")
    with pytest.raises(ImageInputError, match="photo.png"):
        in_studio(settings, lambda s: s.edit(fake, "brighten"))
    assert emulator.requests == []


@pytest.mark.slow
def test_a_50_megapixel_photo_is_downscaled_before_it_is_sent(settings, emulator, tmp_path):
    big = tmp_path / "big.jpg"
    Image.new("RGB", (8660, 5773), (40, 120, 200)).save(big, quality=80)
    in_studio(settings, lambda s: s.edit(big, "add a boat"))
    [sent] = emulator.generate_requests
    with Image.open(io.BytesIO(sent.images[0])) as received:
        assert max(received.size) == 3072 and received.size[0] / received.size[1] == pytest.approx(8660 / 5773, 0.01)


def test_variations_report_each_outcome_as_it_arrives(settings, emulator):
    emulator.fail_next(Fault.overloaded())
    seen = []

    async def scenario(studio):
        request = studio.build_request(Mode.GENERATE, "progress please")
        return await studio.run_variations(request, 3, on_result=seen.append)

    outcomes = in_studio(settings, scenario)
    assert sorted(map(id, seen)) == sorted(map(id, outcomes))  # each outcome reported exactly once
    assert sum(isinstance(o, Exception) for o in seen) == 1


def test_offline_stays_offline_after_the_first_request(tmp_path):
    settings = Settings(api_key=None, home=tmp_path / "home")

    async def scenario(studio):
        await studio.generate("first")
        return studio.offline, studio.usage_today().requests

    assert in_studio(settings, scenario) == (True, 0)  # the emulator has no quota: nothing counted


def test_offline_placeholders_cost_nothing(tmp_path):
    result = in_studio(Settings(api_key=None, home=tmp_path / "home"), lambda s: s.generate("free"))
    assert result.cost_usd == 0.0 and result.usage.image_tokens == 1120  # the default, 2.1, at 1K (1120 tokens too)


def test_saved_pngs_carry_their_parameters_and_a_hit_gets_the_same_bytes_in_a_file_of_its_own(settings, emulator):
    from nanobanana_ui.imaging.pngmeta import read_image_info

    options = ImageOptions(aspect_ratio="16:9", temperature=0.5, seed=9)
    first = in_studio(settings, lambda s: s.generate("a provenance fox", options=options))
    data = first.images[0].path.read_bytes()
    info = read_image_info(data)
    assert info.source == "nanobanana" and info.parameters.startswith("a provenance fox\nModel: gemini-2.5-flash-image")
    assert info.settings["seed"] == 9 and info.settings["aspect_ratio"] == "16:9"
    assert settings.api_key.encode() not in data
    with Image.open(first.images[0].path) as image:
        assert image.text["parameters"] == info.parameters
    hit = in_studio(settings, lambda s: s.generate("a provenance fox", options=options))
    assert hit.cached and hit.images[0].path.read_bytes() == data
    assert hit.images[0].path.stat().st_ino != first.images[0].path.stat().st_ino  # each output may be edited alone
