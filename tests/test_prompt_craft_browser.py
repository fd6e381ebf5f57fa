"""The prompt craft panel in Debian's Chromium: a variable field, pick a style, enhance, accept, generate; the prompt
the emulator received is the accepted rewrite, styled once."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from servers import chromium, emulator_app_env, open_studio, running_app

UI_KEY = "browser-test-key"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:  # Debian's Chromium, as every browser module launches it (servers.py)
        yield browser


@pytest.fixture(scope="module")
def app_url(module_emulator, tmp_path_factory):
    env = emulator_app_env(module_emulator, tmp_path_factory, GEMINI_API_KEY=UI_KEY,
                           NANOBANANA_MODEL="gemini-2.5-flash-image")
    with running_app(env, UI_KEY) as url:
        yield url


@pytest.fixture
def studio(browser, app_url) -> Page:
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    yield open_studio(context.new_page(), app_url)
    context.close()


def test_pick_a_style_enhance_accept_generate(studio, emu):
    page = studio
    page.locator("#prompt textarea").fill("a fox in {place}")
    field = page.locator("#variable-0 input")
    expect(field).to_be_visible()
    expect(page.locator("#variable-0")).to_contain_text("{place}")
    field.fill("snow")
    page.locator("#style-picker input").click()
    page.locator("#style-picker input").fill("watercol")  # the picker searches as you type
    page.locator("#style-picker").get_by_role("option", name="Watercolour · illustration").click()
    expect(page.locator("#prompt-preview textarea")).to_have_value(
        "A watercolour painting of a fox in snow: soft washes, visible paper texture, gentle bleeding edges, light "
        "and airy palette.")

    page.locator("#enhance-button").click()
    rewrite = page.locator("#enhance-after textarea")
    expect(rewrite).to_have_value(re.compile(r"Subject: A watercolour painting of a fox in snow"))
    [enhance] = emu.generate_requests
    assert enhance.model == "gemini-3.1-flash-lite"
    assert enhance.prompt.startswith("A watercolour painting of a fox in snow:")
    expected = rewrite.input_value()

    page.locator("#enhance-accept").click()
    expect(page.locator("#prompt textarea")).to_have_value(expected)
    expect(page.locator("#enhance-undo")).to_be_visible()
    expect(page.locator("#style-picker input")).to_have_value("(no style)")  # already in the rewrite: not twice

    page.locator("#generate-button").click()
    expect(page.locator("#out-gallery img")).to_have_count(1)
    sent = emu.generate_requests[-1]
    assert sent.model == "gemini-2.5-flash-image" and sent.prompt == expected

    page.locator("#enhance-undo").click()
    expect(page.locator("#prompt textarea")).to_have_value("a fox in {place}")
