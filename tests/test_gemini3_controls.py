"""Gemini 3 controls (thinking level, thought images, Google Search grounding), through the real SDK and emulator."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import in_studio, without_text_chunks
from google import genai
from google.genai import errors, types

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.costs import cost_from_usage
from nanobanana_ui.domain.errors import UnsupportedOptionError
from nanobanana_ui.domain.models import get_model, models_with
from nanobanana_ui.domain.request import ImageOptions, ImageRequest, Mode
from nanobanana_ui.emulator import GeminiEmulator
from nanobanana_ui.service.batch import BatchFileError, plan_batch, read_batch_file, run_batch

FLASH = "gemini-2.5-flash-image"
PRO = "gemini-3-pro-image"  # an alias of the registry's Pro entry today, its primary id after the GA rename
NB2 = "gemini-3.1-flash-image"
OLD_OPTION_NAMES = {"aspect_ratio", "size", "temperature", "top_p", "top_k", "seed", "with_text", "variation"}


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


# -- the registry and the options -----------------------------------------------------------------------------------

def test_capabilities_come_from_the_registry():
    assert get_model(NB2).thinking_levels == ("minimal", "high")
    assert get_model(PRO).thinking_levels == () and get_model(FLASH).thinking_levels == ()
    assert [m.id for m in models_with("image_search")] == ["gemini-nano-banana-2.1", get_model(NB2).id]
    nb21 = "gemini-nano-banana-2.1"  # issue 20: thinking, thoughts, web and image search too
    assert {m.id for m in models_with("search")} == {get_model(PRO).id, get_model(NB2).id, nb21}
    assert {m.id for m in models_with("thoughts")} == {get_model(PRO).id, get_model(NB2).id, nb21}
    assert get_model(NB2).search_price == get_model(PRO).search_price == pytest.approx(0.014)
    unknown = get_model("gemini-9-image-next")  # an unknown model gets none of them
    assert (unknown.thinking_levels, unknown.thoughts, unknown.search, unknown.image_search) == ((), False, False,
                                                                                            False)
    assert unknown.search_price is None


def test_defaults_leave_existing_cache_keys_alone_and_each_control_is_its_own_entry():
    assert set(ImageOptions().to_dict()) == OLD_OPTION_NAMES  # so the key of a request without them is unchanged
    base = ImageRequest(mode=Mode.GENERATE, model=NB2, prompt="a red fox", options=ImageOptions(seed=7))
    variants = [ImageOptions(seed=7, thinking="minimal"), ImageOptions(seed=7, thinking="high"),
                ImageOptions(seed=7, show_thoughts=True), ImageOptions(seed=7, search=True),
                ImageOptions(seed=7, image_search=True)]
    keys = {base.cache_key(), *(replace(base, options=o).cache_key() for o in variants)}
    assert len(keys) == 1 + len(variants)
    assert replace(base, options=ImageOptions(seed=7, thinking="high")).describe()["options"]["thinking"] == "high"


def test_image_search_implies_search():
    assert ImageOptions(image_search=True).search is True
    assert ImageOptions(image_search=True) == ImageOptions(image_search=True, search=True)


# -- refusals before any call ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("model, options, message, named", [
    (PRO, ImageOptions(thinking="high"), "has no thinking level setting", [NB2]),
    (FLASH, ImageOptions(thinking="minimal"), "has no thinking level setting", [NB2]),
    (PRO, ImageOptions(image_search=True), "does not offer Google image search", [NB2]),
    (FLASH, ImageOptions(search=True), "does not offer Google Search grounding", [NB2, "gemini-3-pro-image"]),
    (FLASH, ImageOptions(show_thoughts=True), "does not return its thought images", [NB2, "gemini-3-pro-image"]),
    ("some-future-image-model", ImageOptions(search=True), "does not offer Google Search", [NB2]),
    (NB2, ImageOptions(thinking="medium"), "takes thinking level minimal, high, not medium",
     ["gemini-nano-banana-2.1"]),  # 2.1 has medium (issue 20)
    (NB2, ImageOptions(thinking="extreme"), "is not one of: minimal, medium, high", []),
])
def test_unsupported_controls_are_refused_naming_the_models_that_have_them(settings, emulator, model, options,
                                                                            message, named):
    with pytest.raises(UnsupportedOptionError, match=message) as caught:
        in_studio(settings, lambda s: s.generate("a cat", model=model, options=options))
    for model_id in named:
        assert model_id in caught.value.message
    assert emulator.requests == []


def test_cli_refusal_is_one_line_and_exit_code_2(keyed_env, capsys):
    code = main(["generate", "a cat", "--model", PRO, "--thinking", "high"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and NB2 in err
    assert "Traceback" not in err and keyed_env.requests == []


# -- thinking on the wire, thought images kept apart ----------------------------------------------------------------

def test_thinking_level_and_include_thoughts_reach_the_wire(settings, emulator):
    options = ImageOptions(thinking="high", show_thoughts=True)
    result = in_studio(settings, lambda s: s.generate("a castle at dusk", model=NB2, options=options))
    [sent] = emulator.generate_requests
    # google-genai 3.3.0 copies ThinkingConfig's insides unrenamed (snake_case); the level goes up as an enum name.
    assert sent.thinking_config == {"thinking_level": "HIGH", "include_thoughts": True}
    assert (sent.controls.thinking_level, sent.controls.include_thoughts) == ("HIGH", True)
    assert sent.tools == []
    # High thinking: two interim images, then the final one; only the final is the result.
    assert len(sent.reply_images) == 3
    assert [t.data for t in result.thought_images] == sent.reply_images[:2]
    assert all(t.mime_type == "image/png" for t in result.thought_images)
    [image] = result.images
    assert without_text_chunks(image.path.read_bytes()) == sent.reply_images[-1]
    assert images_in(settings.output_dir) == [image.path]  # the outputs folder holds the final image only
    # Thought images are free: the cost is the tokens' alone; the thinking tokens are billed as text output.
    spec = get_model(NB2)
    assert result.usage.thought_tokens > 0
    without_thinking = cost_from_usage(spec, replace(result.usage, thought_tokens=0))
    thinking = result.usage.thought_tokens * spec.price.output_text / 1e6
    # Both sides are rounded to 6 decimals on their own, hence the tolerance of two units in the last place.
    assert thinking > 0 and result.cost_usd == pytest.approx(without_thinking + thinking, abs=2e-6)
    assert result.search_cost_usd == 0 and result.sources == ()


def test_minimal_thinking_without_thoughts_sends_only_the_level(settings, emulator):
    result = in_studio(settings, lambda s: s.generate("a hut", model=NB2, options=ImageOptions(thinking="minimal")))
    [sent] = emulator.generate_requests
    assert sent.thinking_config == {"thinking_level": "MINIMAL"}
    assert result.thought_images == () and len(sent.reply_images) == 1


def test_no_controls_send_no_thinking_config_or_tools(settings, emulator):
    in_studio(settings, lambda s: s.generate("plain", model=NB2))
    [sent] = emulator.generate_requests
    assert "thinkingConfig" not in sent.generation_config and "tools" not in (sent.body or {})


def test_thought_images_are_never_cached(settings, emulator):
    options = ImageOptions(show_thoughts=True)

    async def twice(studio):
        first = await studio.generate("a lantern", model=PRO, options=options)
        again = await studio.generate("a lantern", model=PRO, options=options)
        entry = studio.cache.lookup(first.request.cache_key())
        return first, again, entry

    first, again, entry = in_studio(settings, twice)
    assert len(first.thought_images) == 1 and not first.cached
    assert again.cached and again.thought_images == () and len(emulator.generate_requests) == 1
    assert len(entry.images) == 1  # the cache holds the final image, not the thoughts
    assert without_text_chunks(entry.paths[0].read_bytes()) == emulator.generate_requests[0].reply_images[-1]


# -- Google Search grounding ----------------------------------------------------------------------------------------

def test_search_sends_the_tool_and_returns_sources_and_the_search_cost(settings, emulator):
    result = in_studio(settings, lambda s: s.generate("the 2026 solar eclipse over Spain", model=PRO,
                                                      options=ImageOptions(search=True)))
    [sent] = emulator.generate_requests
    assert sent.tools == [{"googleSearch": {}}]
    assert sent.controls.search and not sent.controls.image_search
    assert len(result.sources) == 2 and all(s.uri.startswith("https://") and s.title for s in result.sources)
    assert all(s.image_uri is None for s in result.sources)
    assert result.search_entry_point and "<div" in result.search_entry_point  # Google's snippet, as given
    # One web query reported: charged once at the registry's price, on top of the tokens.
    assert result.search_cost_usd == pytest.approx(get_model(PRO).search_price)
    tokens = cost_from_usage(get_model(PRO), result.usage)
    assert result.cost_usd == pytest.approx(tokens + 0.014)


def test_image_search_on_nano_banana_2_returns_image_sources(settings, emulator):
    result = in_studio(settings, lambda s: s.generate("a quetzal", model=NB2, options=ImageOptions(image_search=True)))
    [sent] = emulator.generate_requests
    assert sent.tools == [{"googleSearch": {"searchTypes": {"web_search": {}, "image_search": {}}}}]
    assert sent.controls.image_search
    pictures = [s for s in result.sources if s.image_uri]
    assert len(pictures) == 1 and pictures[0].uri.startswith("https://") and pictures[0].image_uri.endswith(".jpg")
    assert result.search_cost_usd == pytest.approx(2 * 0.014)  # one web query and one image query


def test_a_cache_hit_keeps_its_sources_and_the_history_records_them(settings, emulator):
    options = ImageOptions(search=True)

    async def twice(studio):
        first = await studio.generate("a tall ship", model=NB2, options=options)
        again = await studio.generate("a tall ship", model=NB2, options=options)
        return first, again, studio.history.page()

    first, again, entries = in_studio(settings, twice)
    assert again.cached and again.cost_usd == 0 and again.search_cost_usd == 0
    assert again.sources == first.sources and again.search_entry_point == first.search_entry_point
    assert again.saved_usd == pytest.approx(first.cost_usd)
    assert len(emulator.generate_requests) == 1
    assert [list(e.sources) for e in entries] == [[s.to_dict() for s in first.sources]] * 2
    assert entries[0].options["search"] is True and entries[0].search_entry_point == first.search_entry_point


# -- the CLI --------------------------------------------------------------------------------------------------------


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_cli_json_carries_sources_and_a_cache_hit_keeps_them(keyed_env, capsys, tmp_path):
    out = tmp_path / "out"
    args = ["generate", "a lighthouse in Brittany", "--model", NB2, "--search", "--thinking", "high", "--json",
            "--out", str(out)]
    assert main(args) == 0 and main(args) == 0
    first, again = json_lines(capsys.readouterr().out)
    assert [s["uri"] for s in first["sources"]] and all(set(s) == {"title", "uri"} for s in first["sources"])
    assert again["cached"] is True and again["sources"] == first["sources"]
    assert "thought_paths" not in first
    [sent] = keyed_env.generate_requests
    assert sent.tools == [{"googleSearch": {}}] and sent.thinking_config == {"thinking_level": "HIGH"}
    assert main(["generate", "no search", "--model", NB2, "--json", "--out", str(out)]) == 0
    [plain] = json_lines(capsys.readouterr().out)
    assert plain["sources"] == []


def test_cli_show_thoughts_writes_them_apart_from_the_outputs(keyed_env, capsys, tmp_path):
    out = tmp_path / "out"
    args = ["generate", "a windmill", "--model", NB2, "--thinking", "high", "--show-thoughts", "--json",
            "--out", str(out)]
    assert main(args) == 0
    [record] = json_lines(capsys.readouterr().out)
    assert images_in(out) == [Path(record["path"])]  # only the final image is an output
    thoughts = [Path(p) for p in record["thought_paths"]]
    assert len(thoughts) == 2 and all(p.parent == out / "thoughts" for p in thoughts)
    assert [p.read_bytes() for p in thoughts] == keyed_env.generate_requests[0].reply_images[:2]
    assert main(args) == 0  # a cache hit: no thought images to write
    [again] = json_lines(capsys.readouterr().out)
    assert again["cached"] is True and again["thought_paths"] == []
    assert len(list((out / "thoughts").iterdir())) == 2


# -- batch files ----------------------------------------------------------------------------------------------------

def test_batch_columns_are_parsed_and_sent(settings, emulator, tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("prompt,model,thinking,show_thoughts,search,image_search\n"
                    f"a kite,{NB2},high,yes,,true\n"
                    f"a drum,{PRO},,,1,\n"
                    "a bell,,,,,\n", encoding="utf-8")
    items = read_batch_file(path)
    assert [(i.options.thinking, i.options.show_thoughts, i.options.search, i.options.image_search)
            for i in items] == [("high", True, True, True), (None, False, True, False), (None, False, False, False)]
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text(json.dumps({"prompt": "a flute", "model": NB2, "thinking": "minimal", "search": True}) + "\n",
                     encoding="utf-8")
    [item] = read_batch_file(jsonl)
    assert (item.options.thinking, item.options.search) == ("minimal", True)

    async def scenario(studio):
        plan = plan_batch(studio, items, out_dir=tmp_path / "out")
        return await run_batch(studio, plan, out_dir=tmp_path / "out")

    summary = in_studio(settings, scenario)
    assert summary.done == 3 and summary.failed == 0
    sent = {r.prompt: r for r in emulator.generate_requests}
    assert sent["a kite"].thinking_config == {"thinking_level": "HIGH", "include_thoughts": True}
    assert sent["a kite"].tools == [{"googleSearch": {"searchTypes": {"web_search": {}, "image_search": {}}}}]
    assert sent["a drum"].tools == [{"googleSearch": {}}] and sent["a drum"].thinking_config == {}
    assert sent["a bell"].tools == [] and sent["a bell"].thinking_config == {}
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.suffix == ".png")[0].startswith("0002_a-kite")
    assert not (tmp_path / "out" / "thoughts").exists()  # a batch keeps finals only
    manifest = (tmp_path / "out" / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    lines = {line["prompt"]: line for line in map(json.loads, manifest)}
    assert len(lines["a kite"]["sources"]) == 3 and lines["a bell"]["sources"] == []


def test_bad_batch_cells_are_reported_with_their_line(tmp_path):
    path = tmp_path / "jobs.csv"
    path.write_text("prompt,search,thinking\na kite,maybe,high\n", encoding="utf-8")
    with pytest.raises(BatchFileError, match=r"line 2: search 'maybe' is not true or false"):
        read_batch_file(path)


def test_batch_refuses_a_row_whose_model_lacks_the_control(settings, emulator, tmp_path):
    path = tmp_path / "jobs.jsonl"
    path.write_text(json.dumps({"prompt": "a drum", "model": PRO, "thinking": "high"}) + "\n", encoding="utf-8")

    async def scenario(studio):
        return plan_batch(studio, read_batch_file(path), out_dir=tmp_path / "out")

    with pytest.raises(BatchFileError, match=f"line 1: .*{NB2}"):
        in_studio(settings, scenario)
    assert emulator.requests == []


# -- the emulator as the real API would answer -----------------------------------------------------------------------

@pytest.fixture
def client(emulator):
    options = types.HttpOptions(api_version="v1beta", base_url=emulator.base_url, timeout=10_000)
    sdk = genai.Client(api_key="k", vertexai=False, http_options=options)
    yield sdk
    sdk.close()


def test_emulator_grounding_metadata_through_the_sdk(client):
    config = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    resp = client.models.generate_content(model=NB2, contents="the tallest tree", config=config)
    meta = resp.candidates[0].grounding_metadata
    assert meta.web_search_queries == ["the tallest tree"]
    assert [c.web.uri for c in meta.grounding_chunks if c.web] and meta.search_entry_point.rendered_content
    assert meta.grounding_supports[0].grounding_chunk_indices == [0, 1]


@pytest.mark.parametrize("model, config, message", [
    (PRO, types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level="HIGH")),
     "Thinking level is not supported"),
    (FLASH, types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())]),
     "Search Grounding is not supported"),
    (PRO, types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch(
        search_types=types.SearchTypes(web_search=types.WebSearch(), image_search=types.ImageSearch())))]),
     "Image search is not supported"),
])
def test_emulator_refuses_controls_the_model_lacks(client, model, config, message):
    with pytest.raises(errors.ClientError, match=message) as caught:
        client.models.generate_content(model=model, contents="x", config=config)
    assert caught.value.code == 400


def test_emulator_thoughts_only_when_asked_and_only_on_thinking_models(client):
    ask = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(include_thoughts=True))
    flash = client.models.generate_content(model=FLASH, contents="x", config=ask)
    assert not any(p.thought for p in flash.parts) and not flash.usage_metadata.thoughts_token_count
    pro = client.models.generate_content(model=PRO, contents="x", config=ask)
    assert [bool(p.thought) for p in pro.parts] == [True, True, False, False]
    quiet = client.models.generate_content(model=PRO, contents="x")
    assert not any(p.thought for p in quiet.parts) and quiet.usage_metadata.thoughts_token_count > 0


def test_shared_emulator_flag_still_adds_thoughts_for_every_request():
    with GeminiEmulator(include_thoughts=True) as emu:
        options = types.HttpOptions(api_version="v1beta", base_url=emu.base_url)
        sdk = genai.Client(api_key="k", vertexai=False, http_options=options)
        try:
            resp = sdk.models.generate_content(model=NB2, contents="x")
        finally:
            sdk.close()
    assert sum(1 for p in resp.parts if p.thought and p.inline_data) == 1


def test_emulator_reports_thinking_tokens_per_model_and_level(client):
    def thinking(model: str, level: str | None = None) -> int:
        config = types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_level=level)
                                             if level else None)
        usage = client.models.generate_content(model=model, contents="x", config=config).usage_metadata
        assert usage.total_token_count == (usage.prompt_token_count + usage.candidates_token_count
                                           + (usage.thoughts_token_count or 0))
        return usage.thoughts_token_count or 0

    assert thinking(FLASH) == 0
    assert thinking(NB2) == thinking(NB2, "MINIMAL") < thinking(NB2, "HIGH") == thinking(PRO)


def test_cache_entries_without_search_keep_their_old_shape_and_newer_keys_are_skipped(tmp_path):
    from conftest import png_bytes

    from nanobanana_ui.storage.cache import ResultCache

    cache = ResultCache(tmp_path / "cache", 10**8)
    try:
        fields = {"text": "", "finish_reason": "STOP", "usage": {}, "cost_usd": 0.04}
        cache.store("old", [(png_bytes(), "image/png")], fields)
        cache.store("newer", [(png_bytes(), "image/png")], {**fields, "sources": ({"title": "t", "uri": "u"},),
                                                              "from_a_later_version": 1})
        assert cache.lookup("old").sources == () and cache.lookup("old").search_entry_point is None
        assert cache.lookup("newer").sources == ({"title": "t", "uri": "u"},)
    finally:
        cache.close()


def test_emulator_grounding_supports_point_into_the_answer_not_the_thoughts(client):
    config = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())],
                                         thinking_config=types.ThinkingConfig(include_thoughts=True))
    resp = client.models.generate_content(model=NB2, contents="a heron", config=config)
    [answer] = [p.text for p in resp.parts if p.text and not p.thought]
    assert resp.candidates[0].grounding_metadata.grounding_supports[0].segment.text == answer


def test_saved_image_carries_the_controls_for_png_info(settings, emulator):
    from nanobanana_ui.imaging.pngmeta import read_image_info

    options = ImageOptions(thinking="high", image_search=True)
    result = in_studio(settings, lambda s: s.generate("a comet", model=NB2, options=options))
    info = read_image_info(result.images[0].path.read_bytes())
    assert "Thinking: high" in info.parameters and "Search: image" in info.parameters
    assert {k: info.settings[k] for k in ("thinking", "search", "image_search")} == {
        "thinking": "high", "search": True, "image_search": True}
    assert "show_thoughts" not in info.settings  # a default is not written


def test_edit_with_search_on_the_cli(keyed_env, capsys, tmp_path):
    from conftest import png_bytes

    source = tmp_path / "in.png"
    source.write_bytes(png_bytes((300, 200)))
    assert main(["edit", str(source), "make it a famous bridge", "--model", NB2, "--search", "--json",
                 "--out", str(tmp_path / "out")]) == 0
    [record] = json_lines(capsys.readouterr().out)
    assert record["mode"] == "edit" and len(record["sources"]) == 2
    [sent] = keyed_env.generate_requests
    assert sent.part_kinds == ["text", "image"] and sent.tools == [{"googleSearch": {}}]
