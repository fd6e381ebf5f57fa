"""Public mode in a real browser: two visitors (two browser contexts) of `python app.py` with NANOBANANA_PUBLIC=1,
each typing their own key into the page; the emulator behind NANOBANANA_BASE_URL records whose key came with which
request. Needs Debian's Chromium (see test_browser.py)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect
from servers import chromium, emulator_app_env, running_app, visit

KEY_A = "fakeBrowserVisitorA-0123456789abcdefghij"
KEY_B = "fakeBrowserVisitorB-jihgfedcba9876543210"
pytestmark = pytest.mark.browser  # skip with -m "not browser" (the inner loop)


@pytest.fixture(scope="module")
def public_url(module_emulator, tmp_path_factory):
    env = emulator_app_env(module_emulator, tmp_path_factory, NANOBANANA_PUBLIC="1")
    with running_app(env, KEY_A, KEY_B) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def generate(page: Page, prompt: str, key: str | None) -> None:
    if key is not None:
        page.locator("#api-key input").fill(key)
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#generate-button").click()


def test_two_visitors_in_two_browsers(browser, public_url, module_emulator):
    module_emulator.reset()
    a, b = visit(browser, public_url), visit(browser, public_url)
    assert a.locator("#api-key input").get_attribute("type") == "password"
    expect(a.locator("#public-banner")).to_contain_text("bring your own key")

    generate(b, "a lighthouse at dusk", None)  # no key: the message, nothing sent
    expect(b.locator(".toast-body")).to_contain_text("https://aistudio.google.com/apikey")
    assert module_emulator.requests == []

    generate(a, "a lighthouse at dusk", KEY_A)
    expect(a.locator("#out-gallery img")).to_have_count(1)
    generate(b, "a lighthouse at dusk", KEY_B)  # A's very request: not A's cached image
    expect(b.locator("#out-gallery img")).to_have_count(1)
    expect(b.locator("#status")).not_to_contain_text("cache")
    assert [r.api_key for r in module_emulator.generate_requests] == [KEY_A, KEY_B]

    b.locator("#history-tab-button").click()
    expect(b.locator("#history-page-info")).to_contain_text("1 entry")
    a.locator("#history-tab-button").click()
    expect(a.locator("#history-page-info")).to_contain_text("1 entry")
    for page in (a, b):
        assert KEY_A not in page.content() and KEY_B not in page.content()
        page.context.close()
