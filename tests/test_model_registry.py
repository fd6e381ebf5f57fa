"""Issue 20: Nano Banana 2.1 as the default, the deprecated status, reference caps, and the user's own models.json."""

from __future__ import annotations

import json

import pytest
from conftest import TEST_KEY, in_studio

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.errors import UnsupportedOptionError
from nanobanana_ui.domain.models import default_model_id, find_model, get_model, known_models, registry_warnings
from nanobanana_ui.domain.request import ImageOptions
from nanobanana_ui.ui.controls import choice_label
from nanobanana_ui.ui.text import model_info

NB21, NB2, PRO, LITE, FLASH = ("gemini-nano-banana-2.1", "gemini-3.1-flash-image", "gemini-3-pro-image",
                               "gemini-3.1-flash-lite-image", "gemini-2.5-flash-image")


@pytest.fixture
def keyed_env(emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("GEMINI_API_KEY", TEST_KEY)
    monkeypatch.setenv("NANOBANANA_BASE_URL", emulator.base_url)
    monkeypatch.setenv("NANOBANANA_HOME", str(tmp_path / "home"))
    return emulator


# --- the shipped registry --------------------------------------------------------------------------------------------


def test_nano_banana_2_1_is_the_default_with_facts_capabilities():
    spec = get_model(NB21)
    assert default_model_id() == NB21 and known_models()[0] is spec
    assert (spec.label, spec.status, spec.since) == ("Nano Banana 2.1", "ga", "2026-10-06")
    assert spec.sizes == ("1K", "2K", "4K") and len(spec.aspect_ratios) == 14 and spec.max_input_images == 14
    assert spec.thinking_levels == ("minimal", "medium", "high") and spec.search and spec.image_search
    assert spec.multi_turn and spec.image_price("1K") == pytest.approx(0.0336)
    assert "third-party" in spec.note.lower() and "third-party" in (find_model(NB21) and spec.note.lower())
    assert spec.image_price("1K") < get_model(NB2).image_price("1K") / 1.9  # about half of 3.1 Flash's


def test_3_1_flash_is_deprecated_with_its_successor_and_still_works(settings, emulator):
    spec = get_model(NB2)
    assert (spec.status, spec.deprecated_since, spec.replaced_by) == ("deprecated", "2026-10-06", NB21)
    assert spec.usable and spec in known_models()
    assert spec.lifecycle() == f"deprecated since 2026-10-06; successor {NB21}"
    assert "(deprecated)" in choice_label(spec) and "(deprecated)" not in choice_label(get_model(NB21))
    assert "**deprecated since 2026-10-06" in model_info(spec, "1K")
    result = in_studio(settings, lambda studio: studio.generate("a fox", model=NB2))
    assert result.images and [r.model for r in emulator.generate_requests] == [NB2]  # sent as asked, no note
    assert result.request.note is None


def test_models_list_and_estimate_show_the_deprecated_status(capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert f"{NB2:32} Nano Banana 2 (Gemini 3.1 Flash Image): deprecated since 2026-10-06; successor {NB21}" in listing
    assert f"default: {NB21}\n" in listing
    assert main(["models", "--estimate", "1000", "--size", "1K"]) == 0
    table = capsys.readouterr().out.splitlines()
    [row] = [line for line in table if line.startswith(NB2 + " ")]
    assert " deprecated " in row and "$67.20" in row
    [row] = [line for line in table if line.startswith(NB21 + " ")]
    assert " ga " in row and "$33.60" in row and "$16.80" in row


def test_reference_caps_are_registry_data():
    assert (get_model(NB2).max_references, get_model(NB2).reference_caps) == (14, {"object": 10, "character": 4})
    assert (get_model(PRO).max_references, get_model(PRO).reference_caps) == (
        14, {"object": 6, "character": 5, "style": 3})
    assert (get_model(NB21).max_references, get_model(NB21).reference_caps) == (14, None)
    assert (get_model(LITE).max_references, get_model(FLASH).max_references) == (1, 3)


def test_models_json_gives_source_and_reference_caps(capsys):
    assert main(["models", "--json"]) == 0
    records = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert {r["source"] for r in records.values()} == {"registry"}
    assert records[PRO]["reference_caps"] == {"object": 6, "character": 5, "style": 3}
    assert records[NB2]["status"] == "deprecated" and records[NB2]["replaced_by"] == NB21
    assert records[NB21]["default"] and records[NB21]["price_per_image"]["1K"] == {"interactive": 0.0336,
                                                                                   "batch": 0.0168}


def test_medium_thinking_goes_to_2_1_and_is_refused_on_3_1_flash(settings, emulator):
    in_studio(settings, lambda studio: studio.generate("a fox", model=NB21, options=ImageOptions(thinking="medium")))
    [sent] = emulator.generate_requests
    assert sent.model == NB21 and sent.controls.thinking_level == "MEDIUM"
    with pytest.raises(UnsupportedOptionError) as caught:
        in_studio(settings, lambda studio: studio.generate("a fox", model=NB2, options=ImageOptions(thinking="medium")))
    assert NB21 in caught.value.message and len(emulator.generate_requests) == 1


def test_2_1_answers_with_its_own_pixel_sizes(settings, emulator):
    result = in_studio(settings, lambda s: s.generate("a wide fox", model=NB21,
                                                      options=ImageOptions(aspect_ratio="16:9", size="2K")))
    assert (result.images[0].width, result.images[0].height) == (2752, 1536)


# --- the user's models.json ------------------------------------------------------------------------------------------


def write_user_registry(monkeypatch, tmp_path, data: object, *, via_home: bool = False) -> str:
    path = tmp_path / ("home" if via_home else "conf") / "models.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data), "utf-8")
    if via_home:
        monkeypatch.delenv("NANOBANANA_MODELS")  # conftest points it away from the developer's own file
        monkeypatch.setenv("NANOBANANA_HOME", str(path.parent))
    else:
        monkeypatch.setenv("NANOBANANA_MODELS", str(path))
    return str(path)


def test_user_registry_adds_a_model_corrects_a_price_marks_deprecated_and_changes_the_default(
        monkeypatch, tmp_path, capsys):
    write_user_registry(monkeypatch, tmp_path, {"default": PRO, "models": [
        {"id": "gemini-nano-banana-3", "label": "Nano Banana 3", "sizes": ["1K", "2K"], "pixel_table": "gemini-3",
         "aspect_ratios": ["1:1", "16:9"], "max_input_images": 8, "price_per_image": {"1K": 0.05, "2K": 0.08}},
        {"id": PRO, "price_per_image": {"1K": 0.12}},
        {"id": LITE, "status": "deprecated", "deprecated_since": "2026-12-01", "replaced_by": NB21},
    ]}, via_home=True)
    assert registry_warnings() == ()
    assert default_model_id() == PRO
    new = get_model("gemini-nano-banana-3")
    assert new.known and new.source == "user" and new.label == "Nano Banana 3" and new.max_input_images == 8
    assert (new.image_price("1K"), new.image_price("2K"), new.batch_price("2K")) == (0.05, 0.08, 0.04)
    pro = get_model(PRO)
    assert pro.source == "user" and pro.image_price("1K") == 0.12 and pro.image_price("4K") == pytest.approx(0.24)
    assert pro.sizes == ("1K", "2K", "4K") and pro.label == "Nano Banana Pro (Gemini 3 Pro Image)"  # field by field
    lite = get_model(LITE)
    assert lite.status == "deprecated" and lite.usable and lite.lifecycle().startswith("deprecated since 2026-12-01")
    assert get_model(NB21).source == "registry"
    assert main(["models", "--json"]) == 0
    records = {r["id"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert records["gemini-nano-banana-3"]["source"] == "user" and records[PRO]["default"]
    assert records[PRO]["price_per_image"]["1K"] == {"interactive": 0.12, "batch": 0.06}
    assert records[NB21]["source"] == "registry" and not records[NB21]["default"]
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "Nano Banana 3: GA; sizes 1K/2K, up to 8 input images, $0.050 per 1K image; from your models.json" in listing
    assert "default: gemini-3-pro-image\n" in listing


def test_a_user_model_generates(monkeypatch, tmp_path, settings, emulator):
    write_user_registry(monkeypatch, tmp_path, {"models": [
        {"id": "my-relay-banana", "label": "Relay banana", "price_per_image": {"1K": 0.02}}]})
    emulator.models = (*emulator.models, "my-relay-banana")
    result = in_studio(settings, lambda studio: studio.generate("a fox", model="my-relay-banana"))
    assert result.images and result.cost_usd == pytest.approx(0.02)
    assert [r.model for r in emulator.generate_requests] == ["my-relay-banana"]


BAD_FILES = {
    "invalid JSON": ('{"models": [', "not valid JSON"),
    "unknown status": ({"models": [{"id": PRO, "status": "gone"}]},
                       f"model {PRO!r}, field 'status': 'gone' is not a status"),
    "negative price": ({"models": [{"id": PRO, "price_per_image": {"1K": -0.1}}]},
                       f"model {PRO!r}, field 'price_per_image': 1K: -0.1 is negative"),
    "negative token price": ({"models": [{"id": PRO, "price_per_million": {"output_image": -1}}]},
                             f"model {PRO!r}, field 'price_per_million': output_image: -1 is negative"),
    "missing id": ({"models": [{"label": "no id"}]}, 'model #1 has no "id" field'),
    "duplicate id": ({"models": [{"id": "x-banana"}, {"id": "x-banana", "label": "again"}]},
                     "model 'x-banana', field 'id': listed twice"),
    "default names no model": ({"default": "gemini-nope", "models": []},
                               f"field 'default': 'gemini-nope' names no model in the registry; the default stays "
                               f"{NB21}"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_a_broken_user_registry_warns_and_the_shipped_one_still_works(case, monkeypatch, tmp_path, capsys):
    data, expected = BAD_FILES[case]
    path = write_user_registry(monkeypatch, tmp_path, data)
    [warning] = registry_warnings()
    assert warning.startswith(f"{path}: ") and expected in warning
    assert default_model_id() == NB21
    pro = get_model(PRO)
    assert pro.status == "ga" and pro.image_price("1K") == pytest.approx(0.1344)  # the bad field is ignored
    assert [s.id for s in known_models()][:5] == [NB21, NB2, PRO, LITE, FLASH]
    assert main(["models"]) == 0  # the app starts, and says what is wrong, on stderr
    captured = capsys.readouterr()
    assert f"warning: {warning}" in captured.err and f"default: {NB21}" in captured.out


def test_a_bad_field_spares_the_rest_of_the_entry(monkeypatch, tmp_path):
    write_user_registry(monkeypatch, tmp_path, {"models": [
        {"id": PRO, "status": "gone", "price_per_image": {"1K": 0.11}}]})
    [warning] = registry_warnings()
    assert "field 'status'" in warning and get_model(PRO).image_price("1K") == 0.11


def test_editing_the_user_registry_takes_effect_without_a_restart(monkeypatch, tmp_path):
    path = write_user_registry(monkeypatch, tmp_path, {"models": [{"id": PRO, "price_per_image": {"1K": 0.11}}]})
    assert get_model(PRO).image_price("1K") == 0.11
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"models": [{"id": PRO, "price_per_image": {"1K": 0.125}}], "_comment": "edited"}, handle)
    assert get_model(PRO).image_price("1K") == 0.125


# --- discovery finds every image model --------------------------------------------------------------------------------

NB3 = "gemini-nano-banana-3"  # unknown to the registry; "banana" in its id
OMNI = "gemini-omni-7"  # unknown, and nothing in its id says image: only its description does


def test_is_image_model_reads_the_id_the_display_name_and_the_description():
    from nanobanana_ui.backends.discovery import is_image_model

    assert is_image_model(NB21) and is_image_model("gemini-3.1-flash-image") and is_image_model("x-banana-9")
    assert is_image_model(OMNI, "Gemini Omni 7", "Generates and edits images from text and photos.")
    assert is_image_model("gemini-9", "Gemini 9 Image Generation", "")
    assert is_image_model("gemini-9", "Gemini 9", "Native image generation, multi-turn editing.")
    assert not is_image_model("gemini-3-flash", "Gemini 3 Flash", "Fast multimodal model: understands text, "
                                                                  "images, audio and video.")
    assert not is_image_model("imagen-4.0-generate-001", "Imagen 4", "Image generation")  # predict, not ours


def test_discovery_offers_2_1_and_unknown_image_models_by_display_name_and_both_generate(settings, emulator):
    emulator.add_model(NB3, "Nano Banana 3", "Our newest image generation model.")
    emulator.add_model(OMNI, "Gemini Omni 7", "Generates and edits images from text and photos.")
    emulator.add_model("gemini-3-flash", "Gemini 3 Flash", "Fast multimodal model that understands images.")
    emulator.allow_models(TEST_KEY, [NB21, PRO, NB3, OMNI, "gemini-3-flash"])

    async def scenario(studio):
        studio.available_models()
        assert studio.discovery.wait(60)
        available = studio.available_models()
        results = [await studio.generate("a fox", model=m) for m in (NB21, NB3, OMNI)]
        return available, results

    available, results = in_studio(settings, scenario)
    assert available.listed and available.ids == (NB21, PRO, NB3, OMNI)  # registry first; the text model left out
    nb3, omni = available.models[2:]
    assert (nb3.label, omni.label) == ("Nano Banana 3", "Gemini Omni 7")  # as Google names them
    assert nb3.source == omni.source == "discovered" and nb3.price is None and nb3.sizes == ("1K",)
    assert choice_label(nb3) == "Nano Banana 3 · price unknown"
    assert [r.model for r in emulator.generate_requests] == [NB21, NB3, OMNI]
    assert all(r.images for r in results) and results[1].cost_usd is None  # price unknown


def test_an_unknown_model_from_the_cli_and_a_batch_row(keyed_env, capsys, tmp_path):
    keyed_env.add_model(NB3, "Nano Banana 3", "Image generation.")
    assert main(["generate", "a fox", "--model", NB3, "--json"]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["model"] == NB3 and record["cost_usd"] is None
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"prompt": "a cat", "model": NB3}) + "\n")
    assert main(["batch", str(rows), "--json", "--yes", "--out", str(tmp_path / "run")]) == 0
    assert [r.model for r in keyed_env.generate_requests] == [NB3, NB3]
    assert main(["generate", "a dog", "--model", NB3, "--size", "2K"]) == 2  # conservative checks: 1K only
    assert "does not make 2K images" in capsys.readouterr().err and len(keyed_env.generate_requests) == 2


def test_the_page_offers_and_uses_a_discovered_model(settings, emulator):
    from nanobanana_ui.ui.controls import available_choices
    from nanobanana_ui.ui.runner import Runner

    emulator.add_model(OMNI, "Gemini Omni 7", "Generates and edits images from text and photos.")

    class Progress:
        def __call__(self, fraction, desc=None):
            pass

    async def scenario(studio):
        studio.available_models()
        assert studio.discovery.wait(60)
        choices = available_choices(studio.available_models(), settings.model)
        outputs = await Runner(studio).generate("a fox", model=OMNI, aspect_ratio="auto", size="1K", temperature=1.0,
                                                top_p=0.95, top_k=0, seed=-1, progress=Progress())
        return choices, outputs

    choices, outputs = in_studio(settings, scenario)
    assert ("Gemini Omni 7 · price unknown", OMNI) in choices
    assert [r.model for r in emulator.generate_requests] == [OMNI] and "failed" not in outputs[1]


# --- requests Google does not store; no silent continuations ------------------------------------------------------


def test_store_false_is_on_the_wire_for_the_gemini_api_by_default(settings, emulator):
    result = in_studio(settings, lambda studio: studio.generate("a fox"))
    [sent] = emulator.generate_requests
    assert sent.sent_store and sent.store is False and sent.body["store"] is False
    assert result.request.store is False and result.request.describe()["store"] is False  # in the provenance


def test_store_opt_in_from_the_environment_and_the_cli(keyed_env, monkeypatch, capsys):
    assert main(["generate", "a fox", "--store"]) == 0
    monkeypatch.setenv("NANOBANANA_STORE", "1")
    assert main(["generate", "a cat"]) == 0
    assert [r.store for r in keyed_env.generate_requests] == [True, True]


def test_store_is_never_sent_on_vertex_and_asking_for_it_there_is_refused(emulator, tmp_path):
    from dataclasses import replace

    from nanobanana_ui.domain.config import Settings
    from nanobanana_ui.domain.errors import ConfigError

    vertex = Settings(backend="vertex", api_key="vertex-express-test-key", base_url=emulator.base_url,
                      home=tmp_path / "home", timeout_s=10, max_attempts=1)
    in_studio(vertex, lambda studio: studio.generate("a pear"))
    [sent] = emulator.generate_requests
    assert sent.vertex is not None and not sent.sent_store
    with pytest.raises(ConfigError) as caught:
        in_studio(replace(vertex, store=True), lambda studio: studio.generate("a pear"))
    assert "Gemini API only" in caught.value.message and "Vertex" in caught.value.message
    assert len(emulator.generate_requests) == 1


def test_a_continuation_answer_is_one_call_and_a_clear_outcome(settings, emulator):
    from nanobanana_ui.domain.errors import ImageWithheldError
    from nanobanana_ui.emulator import Fault

    emulator.fail_next(Fault.continuation(), Fault.continuation(), Fault.continuation())
    with pytest.raises(ImageWithheldError) as caught:
        in_studio(settings, lambda studio: studio.generate("a crowded market"))
    assert len(emulator.generate_requests) == 1  # the SDK's automatic continuation would have sent three
    assert caught.value.reason == "CONTINUATION" and "stopped before it finished" in caught.value.message
    assert "costs another call" in caught.value.message


# --- the default follows the key; a retired model costs one 404, once -----------------------------------------------


def test_a_deprecated_model_answering_404_is_sent_once_to_its_successor_then_straight_there(settings, emulator):
    emulator.shut_down(NB2)
    note = f"{NB2} answered 404 (shut down?); used {NB21}"

    async def scenario(studio):
        events: list[str] = []
        first = await studio.generate("a fox", model=NB2, on_event=events.append)
        second = await studio.generate("a cat", model=NB2)
        return events, first, second

    events, first, second = in_studio(settings, scenario)
    assert [r.model for r in emulator.generate_requests] == [NB2, NB21, NB21]  # one 404, once
    assert [r.status for r in emulator.generate_requests] == [404, 200, 200]
    assert first.request.model == second.request.model == NB21
    assert first.request.note == second.request.note == note and f"note: {note}" in events
    # Remembered for this key for a day, on disk: a new Studio (a restart) goes straight to the successor.
    result = in_studio(settings, lambda studio: studio.generate("a dog", model=NB2))
    assert result.request.note == note and [r.model for r in emulator.generate_requests][-1] == NB21
    assert len(emulator.generate_requests) == 4


def test_the_404_memory_lasts_a_day(settings, emulator):
    from test_discovery import Clock

    emulator.shut_down(NB2)
    clock = Clock()
    in_studio(settings, lambda studio: studio.generate("a fox", model=NB2), clock=clock)
    clock.now += 24 * 3600 + 1
    emulator.models = (*emulator.models, NB2)  # back again (or not: a day later it is tried once more)
    result = in_studio(settings, lambda studio: studio.generate("a cat", model=NB2), clock=clock)
    assert result.request.model == NB2 and result.request.note is None


def test_a_ga_model_answering_404_is_not_switched(settings, emulator):
    from nanobanana_ui.domain.errors import ModelNotFoundError

    emulator.shut_down(PRO)
    with pytest.raises(ModelNotFoundError):
        in_studio(settings, lambda studio: studio.generate("a fox", model=PRO))
    assert [r.model for r in emulator.generate_requests] == [PRO]  # never a silent change of model


def test_the_default_follows_the_key_to_its_successor_chain(settings, emulator, monkeypatch, tmp_path):
    from dataclasses import replace

    # A user whose registry default is still 3.1 Flash, with a key that lacks it: replaced_by leads to 2.1.
    write_user_registry(monkeypatch, tmp_path, {"default": NB2})
    emulator.allow_models(TEST_KEY, [NB21, PRO])
    follows = replace(settings, model=NB2)

    async def scenario(studio):
        studio.available_models()
        assert studio.discovery.wait(60)
        return await studio.generate("a fox")

    result = in_studio(follows, scenario)
    assert result.request.model == NB21
    assert result.request.note == f"the default {NB2} is not in this key's model list; used {NB21}"
    assert [r.model for r in emulator.generate_requests] == [NB21]


def test_a_key_without_2_1_falls_back_to_its_nearest_predecessor(settings, emulator):
    from dataclasses import replace

    emulator.allow_models(TEST_KEY, [NB2, PRO, FLASH])

    async def scenario(studio):
        studio.available_models()
        assert studio.discovery.wait(60)
        return await studio.generate("a fox")

    result = in_studio(replace(settings, model=NB21), scenario)
    assert result.request.model == NB2 and "used gemini-3.1-flash-image" in result.request.note


def test_an_explicit_model_is_used_as_given(settings, emulator, keyed_env, monkeypatch, capsys):
    from dataclasses import replace

    emulator.allow_models(TEST_KEY, [NB2, PRO])

    async def scenario(studio):
        studio.available_models()
        assert studio.discovery.wait(60)
        return await studio.generate("a fox")

    from nanobanana_ui.domain.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError):  # NANOBANANA_MODEL=2.1: sent as given, the key's 404 shown
        in_studio(replace(settings, model=NB21, model_explicit=True), scenario)
    assert [r.model for r in emulator.generate_requests] == [NB21]
    monkeypatch.setenv("NANOBANANA_MODEL", NB21)  # the same data directory: this key's listing is held on disk
    assert main(["generate", "a cat"]) == 2
    assert "not found" in capsys.readouterr().err.lower()
    assert [r.model for r in emulator.generate_requests] == [NB21, NB21]
    monkeypatch.delenv("NANOBANANA_MODEL")  # the default, unnamed: follows the key (2.1 -> 3.1 Flash, its predecessor)
    assert main(["generate", "a cat"]) == 0
    assert f"used {NB2}" in capsys.readouterr().err and emulator.generate_requests[-1].model == NB2


# --- models --available ------------------------------------------------------------------------------------------


def listing_requests(emulator) -> list:
    return [r for r in emulator.requests if r.method == "GET" and r.path == "/v1beta/models"]


def test_models_available_lists_what_this_key_can_use_with_source_and_status(keyed_env, capsys):
    keyed_env.add_model(NB3, "Nano Banana 3", "Our newest image generation model.")
    keyed_env.allow_models(TEST_KEY, [NB21, NB2, PRO, NB3])
    assert main(["models", "--available", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["source"], r["status"]) for r in records] == [
        (NB21, "registry", "ga"), (NB2, "registry", "deprecated"), (PRO, "registry", "ga"),
        (NB3, "discovered", "ga")]
    assert records[3]["label"] == "Nano Banana 3" and records[3]["price_per_image"]["1K"]["interactive"] is None
    assert main(["models", "--available"]) == 0  # the day-old copy: no second listing
    out = capsys.readouterr()
    assert f"{NB3:32} Nano Banana 3: not in the registry; discovered; price unknown" in out.out
    assert len(listing_requests(keyed_env)) == 1
    keyed_env.add_model("gemini-nano-banana-4", "Nano Banana 4", "Image generation.")
    keyed_env.allow_models(TEST_KEY, [NB21, NB3, "gemini-nano-banana-4"])
    assert main(["models", "--available", "--refresh"]) == 0  # listed again, now
    out = capsys.readouterr().out
    assert "gemini-nano-banana-4" in out and PRO not in out and len(listing_requests(keyed_env)) == 2


def test_models_available_without_a_key_lists_the_emulators_models(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("NANOBANANA_HOME", str(tmp_path / "home"))
    assert main(["models", "--available"]) == 0
    captured = capsys.readouterr()
    assert "offline emulator's models" in captured.err and captured.out.startswith(NB21)


def test_models_refresh_needs_available(capsys):
    assert main(["models", "--refresh"]) == 2
    assert "--refresh goes with --available" in capsys.readouterr().err


def test_the_answering_model_version_is_in_the_provenance_and_a_reroute_is_noted(settings, emulator):
    from PIL import Image

    from nanobanana_ui.imaging.pngmeta import REQUEST_KEY

    emulator.reroute(NB2, "gemini-nano-banana-2.1-001")

    async def scenario(studio):
        return await studio.generate("a fox", model=PRO), await studio.generate("a cat", model=NB2)

    same, rerouted = in_studio(settings, scenario)
    assert same.request.model_version == PRO and same.request.note is None
    assert rerouted.request.model_version == "gemini-nano-banana-2.1-001"
    assert rerouted.request.note == f"{NB2} was answered by gemini-nano-banana-2.1-001 (Google rerouted it)"
    with Image.open(rerouted.images[0].path) as image:
        record = json.loads(image.text[REQUEST_KEY])
    assert record["request"]["model_version"] == "gemini-nano-banana-2.1-001" and record["request"]["store"] is False


def test_the_cli_tells_a_404_successor_once_and_a_reroute(keyed_env, capsys):
    keyed_env.shut_down(NB2)
    keyed_env.reroute(NB21, "gemini-nano-banana-2.2")
    assert main(["generate", "a fox", "--model", NB2, "--json"]) == 0
    captured = capsys.readouterr()
    [record] = [json.loads(line) for line in captured.out.splitlines()]
    assert captured.err.count(f"{NB2} answered 404 (shut down?); used {NB21}") == 1
    assert f"note: {NB21} was answered by gemini-nano-banana-2.2 (Google rerouted it)\n" in captured.err
    assert record["model"] == NB21 and "answered 404" in record["note"]


def test_the_page_setting_lets_google_store_one_run(settings, emulator):
    from nanobanana_ui.ui.extras import PageExtras
    from nanobanana_ui.ui.runner import Runner

    class Progress:
        def __call__(self, fraction, desc=None):
            pass

    async def scenario(studio):
        runner = Runner(studio)
        for store in (True, False):
            await runner.generate(f"a fox {store}", model="", aspect_ratio="auto", size="1K", temperature=1.0,
                                  top_p=0.95, top_k=0, seed=-1, progress=Progress(), extras=PageExtras(store=store))
        await runner.generate("an API call", model="", aspect_ratio="auto", size="1K", temperature=1.0, top_p=0.95,
                              top_k=0, seed=-1, progress=Progress())

    in_studio(settings, scenario)
    assert [r.store for r in emulator.generate_requests] == [True, False, False]  # the API: the host's setting
