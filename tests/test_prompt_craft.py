"""Prompt craft: styles (shipped + user), templates with {variables}, on every route, checked on what was sent."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from conftest import png_bytes

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.styles import (
    STYLES_FILE,
    UnknownStyleError,
    craft_prompt,
    load_styles,
    save_user_style,
    shipped_styles,
)
from nanobanana_ui.domain.templates import TemplateError, parse_template
from nanobanana_ui.imaging.pngmeta import read_image_info
from nanobanana_ui.service.studio import Studio
from nanobanana_ui.storage.history import HistoryStore


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- the library and templates (pure) -----------------------------------------------------------------------------

def test_shipped_library_has_30_styles_each_a_template_with_prompt():
    styles = shipped_styles()
    assert len(styles) >= 30 and len({s.id for s in styles}) == len(styles)
    assert {"photo", "illustration", "3D", "graphic design", "product", "portrait"} <= {s.category for s in styles}
    for style in styles:
        assert parse_template(style.template).variables == ("prompt",)
        assert style.name and style.description and style.source == "shipped"
        assert "a small red fox" in style.apply("a small red fox")


@pytest.mark.parametrize(("text", "message"), [
    ("a {animal in snow", "unclosed { at character 3"),
    ("a {my animal} in snow", "'my animal' has spaces"),
    ("a lone } brace", "lone } at character 8"),
    ("a {1st} thing", "'1st' is not a variable name"),
    ("a {} thing", "empty variable name"),
])
def test_bad_templates_are_refused_with_what_and_where(text, message):
    with pytest.raises(TemplateError, match="(?i)" + message.replace("{", r"\{").replace("}", r"\}")):
        parse_template(text)


def test_literal_braces_are_sent_single_and_values_verbatim():
    book = load_styles(None)
    crafted = craft_prompt(book, "a {animal} with {{json}} and }}", variables={"animal": "fox {x}"})
    assert crafted.prompt == "a fox {x} with {json} and }"
    assert crafted.craft.template == "a {animal} with {{json}} and }}"
    assert craft_prompt(book, "plain words").craft is None  # nothing applied: nothing recorded
    with pytest.raises(TemplateError, match=r"No value for \{animal\}"):
        craft_prompt(book, "a {animal}")
    with pytest.raises(TemplateError, match=r"gives \{colour\}, but the prompt has no such variable"):
        craft_prompt(book, "a {animal}", variables={"animal": "fox", "colour": "red"})


def test_user_styles_merge_over_shipped_and_a_broken_file_keeps_the_shipped(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / STYLES_FILE).write_text(json.dumps({"styles": [
        {"id": "photo-macro", "name": "My macro", "category": "photo", "template": "MINE {prompt}"},
        {"id": "neon", "name": "Neon", "category": "graphic design", "template": "{prompt}, neon signs"},
        {"id": "broken", "name": "Broken", "category": "x", "template": "no placeholder"},
    ]}), encoding="utf-8")
    book = load_styles(home)
    assert book.get("photo-macro").apply("a fox") == "MINE a fox" and book.get("photo-macro").source == "user"
    assert book.get("neon").source == "user" and len(book.styles) == len(shipped_styles()) + 1
    assert len(book.problems) == 1 and "style 3" in book.problems[0] and "'broken'" in book.problems[0]
    with pytest.raises(UnknownStyleError, match="Unknown style 'broken'"):
        book.get("broken")

    (home / STYLES_FILE).write_text('{"styles": [\n  {"id": "x",,}\n]}', encoding="utf-8")
    book = load_styles(home)
    assert [s.id for s in book.styles] == [s.id for s in shipped_styles()]
    assert "line 2" in book.problems[0] and "using the shipped styles" in book.problems[0]


def test_saving_a_style_writes_the_user_file(tmp_path):
    home = tmp_path / "home"
    save_user_style(home, style_id="my-look", name="My look", category="user", template="{prompt}, in my look")
    assert load_styles(home).get("my-look").apply("a cat") == "a cat, in my look"
    with pytest.raises(TemplateError):
        save_user_style(home, style_id="nope", name="n", category="c", template="no prompt here")
    assert [s.id for s in load_styles(home).styles if s.source == "user"] == ["my-look"]


# -- the CLI ------------------------------------------------------------------------------------------------------

def test_styles_json_lists_shipped_and_user(keyed_env, capsys, tmp_path):
    home = tmp_path / "home"
    save_user_style(home, style_id="neon", name="Neon", category="graphic design", template="{prompt}, neon")
    assert main(["styles", "--json"]) == 0
    records = lines(capsys.readouterr().out)
    assert len(records) == len(shipped_styles()) + 1
    assert all({"id", "name", "category", "source"} <= set(r) for r in records)
    assert {r["source"] for r in records} == {"shipped", "user"} and records[-1]["id"] == "neon"


def test_generate_with_style_and_vars_sends_the_final_prompt_and_records_it(keyed_env, capsys, tmp_path):
    code = main(["generate", "a {animal} holding {{a sign}}", "--var", "animal=red fox", "--style", "photo-macro",
                 "--json", "--out", str(tmp_path / "out")])
    assert code == 0
    [record] = lines(capsys.readouterr().out)
    final = ("Macro photograph of a red fox holding {a sign}: extreme close-up, 100mm macro lens, razor-thin depth "
             "of field, crisp micro detail, soft bokeh.")
    assert keyed_env.generate_requests[0].prompt == final == record["prompt"]
    assert (record["style"], record["template"], record["variables"]) == (
        "photo-macro", "a {animal} holding {{a sign}}", {"animal": "red fox"})
    info = read_image_info(Path(record["path"]).read_bytes())
    assert info.parameters.startswith(final) and "Style: photo-macro" in info.parameters
    assert info.request["request"]["style"] == "photo-macro" and info.request["request"]["prompt"] == final
    store = HistoryStore(tmp_path / "home")
    try:
        [entry] = store.page()
    finally:
        store.close()
    assert entry.prompt == final and entry.craft["style"] == "photo-macro"
    assert entry.to_record()["template"] == "a {animal} holding {{a sign}}"


@pytest.mark.parametrize(("argv", "message"), [
    (["generate", "a {animal}"], r"No value for {animal}"),
    (["generate", "a {animal"], "unclosed {"),
    (["generate", "a fox", "--var", "my animal=fox"], "has spaces"),
    (["generate", "a fox", "--style", "no-such-style"], "Unknown style 'no-such-style'"),
])
def test_bad_craft_is_refused_before_any_call(keyed_env, capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert keyed_env.generate_requests == []


def test_style_on_edit_compose_and_refine(keyed_env, capsys, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(png_bytes())
    b.write_bytes(png_bytes(color=(10, 200, 10)))
    assert main(["edit", str(a), "make it night", "--style", "cinematic-noir", "--json"]) == 0
    [edited] = lines(capsys.readouterr().out)
    assert main(["compose", str(a), str(b), "--prompt", "the {thing} from both", "--var", "thing=cat",
                 "--style", "3d-clay", "--model", "gemini-2.5-flash-image"]) == 0
    capsys.readouterr()
    assert main(["refine", edited["id"], "add a moon", "--style", "painting-oil", "--json"]) == 0
    [refined] = lines(capsys.readouterr().out)
    sent = [r.prompt for r in keyed_env.generate_requests]
    assert sent[0].startswith("make it night in the style of 1940s film noir")
    assert sent[1].startswith("the cat from both made of modelling clay")
    assert sent[2].startswith("An oil painting of add a moon")
    assert refined["style"] == "painting-oil" and refined["parent"] == edited["id"]


# -- batch ----------------------------------------------------------------------------------------------------------

def test_batch_template_expands_each_row_with_style_column_and_reruns_exactly(keyed_env, capsys, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("animal,place,style\nfox,snow,illustration-ink\nowl,a {{dark}} forest,\n", encoding="utf-8")
    out = tmp_path / "run"
    argv = ["batch", str(rows), "--template", "a {animal} in {place}{{!}}", "--json", "--out", str(out), "--yes"]
    assert main(argv) == 0
    made = sorted(lines(capsys.readouterr().out), key=lambda r: r["row"])
    sent = sorted(r.prompt for r in keyed_env.generate_requests)
    assert sent == sorted(["A detailed pen-and-ink drawing of a fox in snow{!}: fine cross-hatching, black ink on "
                           "white paper, no colour.", "a owl in a {{dark}} forest{!}"])  # values are sent verbatim
    assert [r["template"] for r in made] == ["a {animal} in {place}{{!}}"] * 2
    assert made[0]["variables"] == {"animal": "fox", "place": "snow"} and made[0]["style"] == "illustration-ink"
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert {m["template"] for m in manifest} == {"a {animal} in {place}{{!}}"}
    assert main(argv) == 0  # a re-run remakes the same requests: all finished, nothing sent
    assert len(keyed_env.generate_requests) == 2
    assert {r["status"] for r in lines(capsys.readouterr().out)} <= {"earlier", "cached"}


def test_batch_row_lacking_a_variable_is_refused_with_its_line_before_any_call(keyed_env, capsys, tmp_path):
    rows = tmp_path / "rows.csv"
    rows.write_text("animal,place\nfox,snow\ncat,\n", encoding="utf-8")
    assert main(["batch", str(rows), "--template", "a {animal} in {place}", "--yes"]) == 2
    err = capsys.readouterr().err
    assert "line 3: no value for {place}" in err and "nothing was sent" in err
    missing = tmp_path / "missing.csv"
    missing.write_text("animal\nfox\n", encoding="utf-8")
    assert main(["batch", str(missing), "--template", "a {animal} in {place}", "--yes"]) == 2
    assert "line 2: no value for {place} (the template needs the column 'place')" in capsys.readouterr().err
    assert main(["batch", str(missing), "--template", "a {animal", "--yes"]) == 2
    assert "unclosed {" in capsys.readouterr().err
    bad_style = tmp_path / "style.csv"
    bad_style.write_text("prompt,style\na fox,nope\n", encoding="utf-8")
    assert main(["batch", str(bad_style), "--yes"]) == 2
    assert "line 2: Unknown style 'nope'" in capsys.readouterr().err
    assert keyed_env.generate_requests == []


# -- the API (the Runner behind /generate, /edit, /compose, /refine) ----------------------------------------------

def test_api_style_parameter_on_every_endpoint(settings, emulator, tmp_path):
    from nanobanana_ui.ui.runner import Runner

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(png_bytes())
    b.write_bytes(png_bytes(color=(10, 200, 10)))

    async def scenario():
        async with Studio(settings) as studio:
            runner = Runner(studio)
            await runner.generate("a lighthouse", style="painting-impressionist")
            await runner.edit(str(a), "make it snow", style="cinematic-noir")
            await runner.compose([str(a), str(b)], "both together", style="3d-voxel")
            parent = studio.history.page(limit=1)[0].id
            await runner.refine(parent, "add a moon", style="painting-oil")
            return studio.history.page(limit=1)[0]

    refined = asyncio.run(scenario())
    sent = [r.prompt for r in emulator.generate_requests]
    assert sent[0].startswith("a lighthouse painted in the impressionist style")
    assert sent[1].startswith("make it snow in the style of 1940s film noir")
    assert sent[2].startswith("both together built from voxels")
    assert sent[3].startswith("An oil painting of add a moon") and refined.craft == {"style": "painting-oil"}


def test_page_panel_fields_preview_enhance_describe_accept_undo_and_save(settings, emulator, tmp_path):
    from nanobanana_ui.ui.prompt_craft import MAX_VARIABLES, NO_STYLE, PromptCraftPanel, craft_arguments
    from nanobanana_ui.ui.runner import Runner

    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes((80, 40), (240, 220, 40)))

    async def scenario():
        async with Studio(settings) as studio:
            panel = PromptCraftPanel(Runner(studio))
            shown = panel.prompt_changed("a {animal} in {place}", "photo-macro", {"animal": "fox"})
            fields, preview = shown[:MAX_VARIABLES], shown[-1]
            assert [f.get("label") for f in fields[:2]] == ["{animal}", "{place}"]
            assert fields[0]["value"] == "fox" and not fields[2]["visible"]
            assert preview == "⚠ Fill in {place} above."
            values, preview = panel.field_changer(1)("a {animal} in {place}", "snow", "photo-macro", {"animal": "fox"})
            assert values == {"animal": "fox", "place": "snow"} and preview.startswith("Macro photograph of a fox in")
            assert craft_arguments("a {place}", "x", values) == {"style": "x", "variables": {"place": "snow"}}
            enhanced = await panel.enhance("a {animal} in {place}", "photo-macro", values)
            described = await panel.describe(str(photo))
            accepted = panel.accepted("a {animal}", "photo-macro", "a {b} fox")
            saved = panel.saved("moody teal light", "Moody teal")
            return enhanced, described, accepted, saved, studio.styles

    enhanced, described, accepted, saved, book = asyncio.run(scenario())
    assert enhanced[2].startswith("Macro photograph of a fox in snow") and "Subject:" in enhanced[2]
    assert "gemini-3.1-flash-lite" in enhanced[3]
    assert "80x40" in described[2] and "yellow" in described[2]
    sent = emulator.generate_requests
    assert sent[0].prompt.startswith("Macro photograph of a fox in snow") and len(sent[1].images) == 1
    assert accepted[0] == "a {{b}} fox" and accepted[1] == ("a {animal}", "photo-macro") and accepted[4] == NO_STYLE
    assert PromptCraftPanel.undone(accepted[1])[::2] == ["a {animal}", "photo-macro"]
    assert saved[0]["value"] == "moody-teal" and book.get("moody-teal").apply("a cat") == "a cat, moody teal light"


def test_batch_template_from_jsonl_with_var_defaults_and_a_column_that_is_neither(keyed_env, capsys, tmp_path):
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"animal": "fox", "count": 2}\n{"animal": "hare", "place": "a meadow", "seed": 7}\n',
                    encoding="utf-8")
    out = tmp_path / "run"
    assert main(["batch", str(rows), "--template", "a {animal} in {place}", "--var", "place=the snow", "--json",
                 "--out", str(out), "--yes"]) == 0
    sent = sorted(r.prompt for r in keyed_env.generate_requests)
    assert sent == ["a fox in the snow", "a fox in the snow", "a hare in a meadow"]  # a row's cell wins over --var
    assert [r.generation_config.get("seed") for r in keyed_env.generate_requests if "hare" in r.prompt] == [7]
    capsys.readouterr()
    extra = tmp_path / "extra.csv"
    extra.write_text("animal,notes\nfox,x\n", encoding="utf-8")
    assert main(["batch", str(extra), "--template", "a {animal}", "--yes"]) == 2
    assert "column(s) 'notes' are neither template variables (animal) nor known columns" in capsys.readouterr().err
    assert len(keyed_env.generate_requests) == 3
