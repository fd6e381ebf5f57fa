"""Kits in a real browser (Debian's Chromium): build a kit from two History entries, then generate with it."""

from __future__ import annotations

import pytest
from conftest import without_text_chunks
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
                           NANOBANANA_MODEL="gemini-3.1-flash-image")
    with running_app(env, UI_KEY) as url:
        yield url


def generate(page: Page, prompt: str, made: int) -> None:
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#generate-button").click()
    expect(page.locator("#history-gallery .thumbnail-item")).to_have_count(made)


def test_a_kit_built_from_two_history_entries_is_sent_with_a_generate(browser, app_url, emu):
    page = open_studio(browser.new_context(viewport={"width": 1280, "height": 1000}).new_page(), app_url)
    generate(page, "a red boot", 1)
    generate(page, "a blue hat", 2)
    boot, hat = (without_text_chunks(r.reply_images[0]) for r in emu.generate_requests)

    for index in (1, 0):  # newest first: the boot is second
        page.locator("#history-tab-button").click()
        page.locator("#history-page-gallery .thumbnail-item").nth(index).click()
        expect(page.locator("#history-item-details")).to_contain_text("a red boot" if index else "a blue hat")
        page.locator("#history-add-to-kit").click()
        expect(page.locator("#kits-add")).to_be_visible()  # the Kits tab opened
    expect(page.locator("#kits-upload")).to_contain_text(".png")
    page.locator("#kits-pick input").fill("outfit")
    page.locator("#kits-pick input").press("Enter")
    page.locator("#kits-label textarea").fill("piece")
    page.locator("#kits-add").click()
    expect(page.locator("#kits-details")).to_contain_text("outfit@1")
    expect(page.locator("#kits-gallery .thumbnail-item")).to_have_count(2)

    page.locator("#kits-use").click()
    expect(page.locator("#kit input")).to_have_value("outfit@1")  # the Studio's picker
    generate(page, "a model wearing piece 1 and piece 2", 3)
    sent = emu.generate_requests[-1]
    assert [without_text_chunks(image) for image in sent.images] == [boot, hat]
    assert 'Reference image "piece 1" (object).' in sent.prompt and 'Reference image "piece 2" (object).' in sent.prompt
    assert sent.part_kinds == ["text", "text", "fileData", "text", "fileData"]  # uploaded once, sent by reference
