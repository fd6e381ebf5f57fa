"""The page's model panel and result extras, without a browser: the dropdown from this key's listing, the Gemini 3
controls drawn from each model, the model line, the sources and the thought strip (through the real SDK)."""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace
from pathlib import Path

from conftest import TEST_KEY, png_bytes
from PIL import Image

from nanobanana_ui.backends.discovery import Availability
from nanobanana_ui.domain.models import get_model, known_models
from nanobanana_ui.domain.request import ImageOptions, Source, ThoughtImage
from nanobanana_ui.service.studio import Studio
from nanobanana_ui.ui.controls import MODEL_DEFAULT, FormSettings, available_choices, gemini3_controls
from nanobanana_ui.ui.model_panel import NO_KEY_NOTE, visitor_models
from nanobanana_ui.ui.result_extras import thought_pictures
from nanobanana_ui.ui.runner import Runner
from nanobanana_ui.ui.text import model_info, sources_html

NB2, PRO, LITE, FLASH = "gemini-3.1-flash-image", "gemini-3-pro-image", "gemini-3.1-flash-lite-image", \
    "gemini-2.5-flash-image"
NEW = "gemini-4-flash-image"  # an image model the registry does not know yet


class Progress:
    def __call__(self, fraction, desc=None):
        pass


def test_every_model_shows_only_its_own_gemini3_controls_and_resets_the_rest():
    for spec in known_models():
        controls = gemini3_controls(spec, "high", True, True, True)
        assert controls["thinking"]["visible"] == bool(spec.thinking_levels), spec.id
        assert controls["show_thoughts"]["visible"] == spec.thoughts, spec.id
        assert controls["search"]["visible"] == spec.search, spec.id
        assert controls["image_search"]["visible"] == spec.image_search, spec.id
        # A control the model lacks is reset (nothing unsupported is sent); one it has keeps its value (not sent).
        for name, has in (("show_thoughts", spec.thoughts), ("search", spec.search),
                          ("image_search", spec.image_search)):
            assert ("value" in controls[name]) == (not has), (spec.id, name)
            if not has:
                assert controls[name]["value"] is False
        assert controls["thinking"].get("value", "high") == ("high" if "high" in spec.thinking_levels
                                                             else MODEL_DEFAULT), spec.id
    assert [v for _, v in gemini3_controls(get_model(NB2), "", False, False, False)["thinking"]["choices"]] == \
        [MODEL_DEFAULT, "minimal", "high"]
    pro = gemini3_controls(get_model(PRO), "minimal", False, True, True)
    assert not pro["thinking"]["visible"] and pro["thinking"]["value"] == MODEL_DEFAULT
    assert pro["search"] == {"visible": True} and pro["image_search"] == {"visible": False, "value": False}


def test_the_form_sends_the_gemini3_values_and_nothing_for_the_model_default():
    spec = get_model(NB2)
    options = FormSettings(thinking="high", show_thoughts=True, search=True, image_search=True).options(spec)
    assert (options.thinking, options.show_thoughts, options.search, options.image_search) == ("high", True, True,
                                                                                               True)
    plain = FormSettings().options(spec)
    assert (plain.thinking, plain.show_thoughts, plain.search, plain.image_search) == (None, False, False, False)


def test_the_model_line_gives_per_image_per_100_batch_and_a_retiring_status():
    line = model_info(get_model(NB2), "2K")
    assert "$0.1008 per 2K image · $10.08 per 100 · batch $0.0504 per image" in line
    assert "retiring" not in line
    old = model_info(get_model(FLASH), "1K")
    assert "$0.0387 per 1K image" in old and "**retiring" in old and "gemini-3.1-flash-image" in old
    assert model_info(get_model(NEW), "1K").startswith("price unknown")


def test_dropdown_choices_registry_first_with_prices_then_unknown_models():
    availability = Availability(models=(get_model(NB2), get_model(FLASH), get_model(NEW)), listed=True)
    choices = available_choices(availability, "gemini-9-custom-image")
    assert [model_id for _, model_id in choices] == [NB2, FLASH, NEW, "gemini-9-custom-image"]
    assert choices[0][0] == "Nano Banana 2 (Gemini 3.1 Flash Image) (deprecated) · $0.0672 per image"
    assert choices[2][0].endswith("price unknown")


def test_sources_are_escaped_links_and_the_snippet_is_shown_as_given(settings):
    async def scenario(studio: Studio):
        return await studio.generate("a weather map of today", model=NB2, options=ImageOptions(search=True))

    result = asyncio.run(_in(settings, scenario))
    assert result.sources and result.search_entry_point
    evil = replace(result, sources=(*result.sources, Source(title="<b>x</b> & y", uri="javascript:alert(1)")))
    shown = sources_html([evil])
    for source in result.sources:
        assert f'href="{source.uri}"' in shown and source.title in shown
    assert "&lt;b&gt;x&lt;/b&gt; &amp; y" in shown and "javascript:" not in shown  # escaped, and no script link
    assert result.search_entry_point in shown  # Google's snippet exactly as given
    assert sources_html([replace(result, sources=(), search_entry_point=None)]) == ""


def test_thought_pictures_decode_in_order_and_skip_a_broken_one():
    thoughts = (ThoughtImage(png_bytes((10, 10)), "image/png"), ThoughtImage(b"not a png", "image/png"),
                ThoughtImage(png_bytes((20, 10)), "image/png"))

    class Result:
        thought_images = thoughts

    pictures = thought_pictures([Result()])
    assert [(p.size, c) for p, c in pictures] == [((10, 10), "thought 1"), ((20, 10), "thought 3")]


async def _in(settings, scenario):
    async with Studio(settings) as studio:
        return await scenario(studio)


def test_a_page_run_with_search_and_thoughts_reaches_the_wire_and_keeps_thoughts_out_of_the_outputs(settings,
                                                                                                   emulator):
    async def scenario(studio: Studio):
        runner = Runner(studio)
        return await runner.generate("a kite over the sea", model=NB2, thinking="high", show_thoughts=True,
                                     search=True, progress=Progress())

    files, status, session = asyncio.run(_in(settings, scenario))
    sent = emulator.generate_requests[-1]
    assert sent.tools == [{"googleSearch": {}}]
    assert sent.thinking_config == {"thinking_level": "HIGH", "include_thoughts": True}
    (result,) = session.last_results
    assert len(result.thought_images) == 2 and result.sources  # high: two interim images
    thought_bytes = {t.data for t in result.thought_images}
    assert len(files) == 1 and all(Path(f).read_bytes() not in thought_bytes for f in files)
    assert list(session.shown) == files  # the outputs (and Original files) are the saved image only
    assert [p.size for p, _ in thought_pictures(session.last_results)] == \
        [Image.open(io.BytesIO(t.data)).size for t in result.thought_images]


def test_the_dropdown_follows_the_keys_listing_and_says_why_pro_is_hidden(settings, emulator):
    emulator.models = (*emulator.models, NEW)
    emulator.allow_models(TEST_KEY, [NB2, FLASH, NEW])

    async def scenario(studio: Studio):
        runner = Runner(studio)
        first = visitor_models(runner, "", None)  # at once: the registry, while the listing runs
        studio.discovery.wait(10)
        return first, visitor_models(runner, "", None)

    first, later = asyncio.run(_in(settings, scenario))
    assert first.availability.ids == tuple(spec.id for spec in known_models()) and not first.availability.listed
    assert later.availability.ids == (NB2, FLASH, NEW) and not later.pending
    assert any("Nano Banana Pro" in note and "hidden" in note for note in later.availability.notes)


def test_public_mode_without_a_key_shows_the_registry_and_how_to_see_yours(settings):
    async def scenario(studio: Studio):
        return visitor_models(Runner(studio), "", None)

    choices = asyncio.run(_in(replace(settings, public=True, api_key=None), scenario))
    assert choices.availability.notes == (NO_KEY_NOTE,) and not choices.pending
    assert choices.availability.ids == tuple(spec.id for spec in known_models())


def test_restored_settings_bring_the_gemini3_controls_back_as_the_model_has_them():
    from nanobanana_ui.ui.actions import form_values

    nb2 = form_values({"model": NB2, "thinking": "high", "show_thoughts": True, "search": True,
                       "image_search": True}, None, FLASH)
    assert {name: (nb2[name]["value"], nb2[name]["visible"]) for name in
            ("thinking", "show_thoughts", "search", "image_search")} == \
        {"thinking": ("high", True), "show_thoughts": (True, True), "search": (True, True),
         "image_search": (True, True)}
    pro = form_values({"model": PRO, "thinking": "high", "search": True, "image_search": True}, None, FLASH)
    assert (pro["thinking"]["value"], pro["thinking"]["visible"]) == (MODEL_DEFAULT, False)  # Pro has no levels
    assert pro["search"]["value"] is True and pro["image_search"]["value"] is False
    assert pro["show_thoughts"]["value"] is False  # complete settings: absent means "off"
    partial = form_values({"prompt": "a cat", "seed": 3}, NB2, FLASH, complete=False)  # an AUTOMATIC1111 image
    assert "thinking" not in partial and "search" not in partial
