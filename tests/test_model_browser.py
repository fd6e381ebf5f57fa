"""The model panel in Chromium: the dropdown from the key's listing, each model's own controls, Search sources and
the thought strip under the result (fixtures and launch settings from test_browser.py)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from servers import emulator_app_env, open_studio, running_app
from test_browser import (  # noqa: F401 (fixtures)
    WAIT_MS,
    browser,
    browser_context_args,
    browser_type_launch_args,
    choose,
    dropdown_choices,
    playwright,
    sha,
)

from nanobanana_ui.domain.models import get_model
from nanobanana_ui.ui.controls import choice_label

UI_KEY = "model-browser-key"
NB21 = "gemini-nano-banana-2.1"  # the default
NB2, PRO, LITE, FLASH = "gemini-3.1-flash-image", "gemini-3-pro-image", "gemini-3.1-flash-lite-image", \
    "gemini-2.5-flash-image"
NEW = "gemini-4-flash-image"  # offered by the key, unknown to the registry
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app_url(module_emulator, tmp_path_factory):
    """`python app.py` on the default model (2.1); the key lacks Lite and has an unknown image model."""
    module_emulator.models = (*module_emulator.models, NEW)
    module_emulator.allow_models(UI_KEY, [NB21, NB2, PRO, FLASH, NEW])
    with running_app(emulator_app_env(module_emulator, tmp_path_factory, GEMINI_API_KEY=UI_KEY), UI_KEY) as url:
        yield url


@pytest.fixture
def studio(page: Page, app_url) -> Page:
    open_studio(page, app_url)
    # The listing answers in the background; the page picks it up on its timer and says why Lite is hidden.
    expect(page.locator("#model-notes")).to_contain_text("Nano Banana 2 Lite")
    expect(page.locator("#model-notes")).to_contain_text("is hidden")
    return page


def test_every_model_in_the_dropdown_shows_only_its_own_options(studio, emu):
    labels = dropdown_choices(studio, "model")
    assert labels == [choice_label(get_model(m)) for m in (NB21, NB2, PRO, FLASH, NEW)]  # no Lite; unknown last
    assert labels[-1].endswith("price unknown")
    # Issue 20: 2.1 is the default, selected; 3.1 Flash is offered, marked deprecated, and says so when chosen.
    expect(studio.locator("#model input")).to_have_value(labels[0])
    assert labels[0].startswith("Nano Banana 2.1 · $0.0336") and "(deprecated)" in labels[1]
    for model, label in zip((PRO, FLASH, NEW, NB21, NB2), (labels[2], labels[3], labels[4], labels[0], labels[1]),
                            strict=True):
        spec = get_model(model)
        choose(studio, "model", label)
        expect(studio.locator("#model-info")).to_contain_text(f"sizes {', '.join(spec.sizes)}")
        assert dropdown_choices(studio, "size") == list(spec.sizes), model
        for elem_id, offered in (("thinking", bool(spec.thinking_levels)), ("show-thoughts", spec.thoughts),
                                 ("search", spec.search), ("image-search", spec.image_search)):
            locator = studio.locator(f"#{elem_id}")
            if offered:
                expect(locator).to_be_visible()
            else:
                expect(locator).to_be_hidden()
    expect(studio.locator("#model-info")).to_contain_text("$0.0672 per 1K image · $6.72 per 100 · batch $0.0336")
    expect(studio.locator("#model-info")).to_contain_text(f"deprecated since 2026-10-06; successor {NB21}")
    assert dropdown_choices(studio, "thinking") == ["Model default", "minimal", "high"]
    choose(studio, "model", labels[3])  # 2.5 Flash: retiring, and says so
    expect(studio.locator("#model-info")).to_contain_text("retiring")


def test_search_on_the_default_shows_the_sources_and_the_snippet_under_the_result(studio, emu):
    studio.locator("#search input").check()
    studio.locator("#prompt textarea").fill("the tallest tower in Lisbon")
    studio.locator("#generate-button").click()
    expect(studio.locator("#out-gallery img").first).to_be_visible()
    expect(studio.locator("#sources a")).to_have_count(3)  # two sources, then the snippet's chip
    (sent,) = emu.generate_requests
    assert sent.model == NB21 and sent.tools == [{"googleSearch": {}}]
    assert sent.store is False  # the page's "Let Google store these requests" is off by default (issue 20)
    links = studio.locator("#sources .sources a")
    assert links.all_inner_texts() == ["the-tallest-tower-in-lisbon.example.org", "emulator.example.com"]
    assert all(href.startswith("https://vertexaisearch.cloud.google.com/grounding-api-redirect/")
               for href in (link.get_attribute("href") for link in links.all()))
    chip = studio.locator("#sources .search-entry-point a.chip")
    expect(chip).to_have_text("the tallest tower in Lisbon")
    assert chip.get_attribute("href") == "https://www.google.com/search?q=the%20tallest%20tower%20in%20Lisbon"
    expect(studio.locator("#thoughts")).to_be_hidden()  # no thoughts asked for


def test_thought_images_are_in_the_strip_not_in_the_outputs(studio, emu):
    choose(studio, "thinking", "high")
    studio.locator("#show-thoughts input").check()
    studio.locator("#prompt textarea").fill("a paper boat")
    studio.locator("#generate-button").click()
    expect(studio.locator("#out-gallery img")).to_have_count(1)
    (sent,) = emu.generate_requests
    assert sent.thinking_config == {"thinking_level": "HIGH", "include_thoughts": True}
    expect(studio.locator("#thoughts")).to_be_visible()
    studio.locator("#thoughts").get_by_role("button", name="Thinking (interim images)").click()
    expect(studio.locator("#thought-gallery img")).to_have_count(2)
    thoughts = {sha(studio.request.get(img.get_attribute("src")).body())
                for img in studio.locator("#thought-gallery img").all()}
    output = sha(studio.request.get(studio.locator("#out-gallery img").first.get_attribute("src")).body())
    assert output not in thoughts
    expect(studio.locator("#out-files a")).to_have_count(1)  # Original files: the saved output only
