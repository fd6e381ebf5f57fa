"""The page's layout in Chromium: what a new user tripped over (issue 19, item 6), measured on the drawn page.

- The Refine tab's before/after slider draws its two images in one box, inside its frame, with one top edge.
- At a phone's 390 px, no control label in the Studio tab is clipped, and the model dropdown's text stops before
  its arrow.
- The Refine path strip, at 11 turns, is one row that scrolls sideways and keeps the selected turn in view.

One `python app.py` for the module, on the default model (it has all four Gemini 3 controls), against this module's
emulator; its history holds one conversation of 11 turns, made through the Studio before the app starts.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from servers import chromium, emulator_app_env, running_app, visit

from nanobanana_ui.domain.config import Settings
from nanobanana_ui.service.studio import Studio

UI_KEY = "layout-browser-key"
TURNS = 11
pytestmark = pytest.mark.browser

# The visible label-like elements of the Studio tab whose text is wider than their box (clipped, or cut by their
# block): block labels, checkbox and radio labels, buttons, tab buttons. Each as "text (scroll > client)".
CLIPPED_LABELS = """() => {
  const tab = [...document.querySelectorAll('#studio-tab')].find(e => e.checkVisibility());
  const labels = tab.querySelectorAll('[data-testid="block-info"], label, button, .label-text, span.svelte-1q8xtp9');
  const clipped = [];
  for (const label of labels) {
    if (!label.checkVisibility() || label.clientWidth < 2 || !label.innerText.trim()) continue;
    if (label.closest('.visually-hidden')) continue;  // Gradio's hidden copy of the tab bar, for measuring
    if (label.scrollWidth > label.clientWidth + 1)
      clipped.push(`${label.innerText.trim().replace(/\\s+/g, ' ')} (${label.scrollWidth} > ${label.clientWidth})`);
  }
  return clipped;
}"""

# The model dropdown: where its text box ends (less its right padding) and where its arrow begins.
DROPDOWN_TEXT_AND_ARROW = """() => {
  const block = [...document.querySelectorAll('#model')].find(e => e.checkVisibility());
  const input = block.querySelector('input'), arrow = block.querySelector('.icon-wrap');
  const text = input.getBoundingClientRect().right - parseFloat(getComputedStyle(input).paddingRight);
  return [text, arrow.getBoundingClientRect().left];
}"""


def box(page: Page, selector: str) -> dict[str, float]:
    """An element's box on the page (the first match that is drawn)."""
    found = page.locator(selector).first.bounding_box()
    assert found is not None, selector
    return found


def soon(check, seconds: float = 5.0) -> bool:
    """True once `check()` is (the page scrolls after it draws), polled for a few seconds; else False."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def conversation(module_emulator, home) -> list[str]:
    """A conversation of TURNS turns in the history (root first): the ids, made through the Studio and the emulator."""
    settings = Settings(api_key=UI_KEY, base_url=module_emulator.base_url, home=home, max_attempts=1, timeout_s=30)

    async def make() -> list[str]:
        async with Studio(settings) as studio:
            entry = await studio.generate("a lighthouse at dusk")
            ids = [entry.id]
            for turn in range(2, TURNS + 1):
                entry = await studio.refine(parent_id=entry.id, instruction=f"step {turn}")
                ids.append(entry.id)
            return ids

    with ThreadPoolExecutor(1) as pool:  # its own thread: Playwright keeps an event loop in this one
        return pool.submit(asyncio.run, make()).result()


@pytest.fixture(scope="module")
def app_url(module_emulator, home, conversation, tmp_path_factory):
    env = emulator_app_env(module_emulator, tmp_path_factory, GEMINI_API_KEY=UI_KEY, NANOBANANA_HOME=str(home))
    with running_app(env, UI_KEY) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def open_refine(browser, url: str, entry_id: str, width: int = 1280) -> Page:
    """A new visitor's page with that turn opened in the Refine tab."""
    page = visit(browser, url, width=width)
    page.locator("#refine-tab-button").click()
    page.locator("#refine-id input").fill(entry_id)
    page.locator("#refine-open").click()
    expect(page.locator("#refine-summary")).to_contain_text(f"Turn {TURNS}")
    return page


def test_refine_slider_draws_both_images_in_one_box_inside_its_frame(browser, app_url, conversation):
    page = open_refine(browser, app_url, conversation[-1])
    images = page.locator("#refine-slider img")
    expect(images).to_have_count(2)
    page.wait_for_function("() => [...document.querySelectorAll('#refine-slider img')].every(i => i.complete "
                           "&& i.naturalWidth > 0)")
    page.wait_for_timeout(300)  # the slider places its second image after the first has loaded
    before, after = images.nth(0).bounding_box(), images.nth(1).bounding_box()
    frame = box(page, "#refine-slider")
    assert before is not None and after is not None
    for key in ("x", "y", "width", "height"):  # one box: the halves line up
        assert abs(before[key] - after[key]) <= 1, (key, before, after)
    for image in (before, after):  # inside the frame: nothing cut off
        assert image["y"] >= frame["y"] - 0.5 and image["y"] + image["height"] <= frame["y"] + frame["height"] + 0.5, \
            (image, frame)
    page.context.close()


def test_no_studio_control_label_is_clipped_on_a_phone(browser, app_url):
    page = visit(browser, app_url, width=390, height=844)
    page.locator("#advanced").first.click()  # its controls too
    expect(page.locator("#count").first).to_be_visible()
    for tab in ("generate", "edit", "compose"):
        page.locator(f"#{tab}-tab-button").click()
        expect(page.locator(f"#{tab}-button")).to_be_visible()
        page.wait_for_timeout(300)  # laid out
        assert page.evaluate(CLIPPED_LABELS) == [], tab
    text_end, arrow = page.evaluate(DROPDOWN_TEXT_AND_ARROW)
    assert text_end <= arrow + 0.5, "the model's name runs under the dropdown's arrow"
    page.context.close()


def test_path_strip_scrolls_sideways_and_keeps_the_selected_turn_in_view(browser, app_url, conversation):
    page = open_refine(browser, app_url, conversation[-1])
    items = page.locator("#refine-path .thumbnail-item")
    expect(items).to_have_count(TURNS)
    expect(page.locator("#refine-path .thumbnail-item.selected")).to_have_attribute("aria-label",
                                                                                     f"Thumbnail {TURNS} of {TURNS}")
    strip = page.locator("#refine-path .grid-container").first  # the grid of thumbnails (it scrolls)

    def in_view() -> bool:
        """The selected thumbnail lies wholly in what the strip shows: inside both the grid's and its frame's box."""
        selected = page.locator("#refine-path .thumbnail-item.selected").bounding_box()
        boxes = [strip.bounding_box(), box(page, "#refine-path .grid-wrap")]
        assert selected is not None and None not in boxes
        return all(selected[at] >= seen[at] - 0.5 and selected[at] + selected[size] <= seen[at] + seen[size] + 0.5
                   for seen in boxes for at, size in (("x", "width"), ("y", "height")))

    assert soon(in_view), "the selected turn is out of the strip's view"
    scroll = strip.evaluate("w => [w.scrollWidth, w.clientWidth, getComputedStyle(w).overflowX]")
    assert scroll[0] > scroll[1] and scroll[2] in ("auto", "scroll"), scroll  # more turns than fit: it scrolls
    tops = {round(b["y"]) for b in (items.nth(i).bounding_box() for i in range(TURNS)) if b}
    assert len(tops) == 1, tops  # one row: sideways, not down

    # Scrolled back to the root, Undo selects turn 10 (off to the right): the strip brings it into view.
    strip.evaluate("w => { w.scrollLeft = 0; }")
    page.locator("#refine-undo").click()
    expect(page.locator("#refine-path .thumbnail-item.selected")).to_have_attribute(
        "aria-label", f"Thumbnail {TURNS - 1} of {TURNS}")
    assert soon(in_view), "Undo's turn is out of the strip's view"
    page.context.close()
