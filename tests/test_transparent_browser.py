"""Transparent results in a real browser: on a checkerboard with a light/dark toggle, downloaded as the saved RGBA file.

Debian's Chromium through Playwright against `python app.py`, whose API calls go to this module's emulator (which
answers a white or black background instruction with its known cut-out subject).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect
from servers import chromium, emulator_app_env, running_app, visit

UI_KEY = "transparent-browser-key"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def app_url(module_emulator, tmp_path_factory, home):
    env = emulator_app_env(module_emulator, tmp_path_factory, GEMINI_API_KEY=UI_KEY, NANOBANANA_HOME=str(home),
                           NANOBANANA_MODEL="gemini-3.1-flash-image")
    with running_app(env, UI_KEY) as url:
        yield url


def test_a_transparent_result_shows_on_a_checkerboard_and_downloads_as_the_saved_rgba_file(app_url, emu, home):
    with chromium() as browser:
        page = visit(browser, app_url)
        page.locator("#prompt textarea").fill("a glass of orange juice, sticker style")
        page.locator("#transparent input").check()
        page.locator("#generate-button").click()
        shown = page.locator("#out-gallery img")
        expect(shown).to_have_count(1)
        expect(page.locator("#status")).to_contain_text("transparent: difference matting, 2 calls")
        assert len(emu.generate_requests) == 2
        # The checkerboard is behind the image: light by default, dark after the toggle.
        style = "(img) => [getComputedStyle(img).backgroundImage, getComputedStyle(img).getPropertyValue('--nb-a')]"
        background, light = shown.first.evaluate(style)
        assert "linear-gradient" in background and light.strip() == "#d0d0d0"
        page.locator("#backdrop").get_by_text("Dark", exact=True).click()
        expect(page.locator("#out-gallery")).to_have_class(re.compile(r"\bnb-dark\b"))
        assert shown.first.evaluate(style)[1].strip() == "#2a2a2a"
        # What the browser gets is the saved RGBA file, byte for byte (nothing re-encodes it).
        [saved] = sorted((home / "outputs").glob("*_transparent.png"))
        response = page.request.get(shown.first.get_attribute("src"))
        assert response.ok and response.body() == saved.read_bytes()
        with page.expect_download() as download:
            page.locator("#out-files a").first.click()
        assert Path(download.value.path()).read_bytes() == saved.read_bytes()
        with Image.open(io.BytesIO(saved.read_bytes())) as image:
            assert image.mode == "RGBA" and image.getextrema()[3] == (0, 255)
