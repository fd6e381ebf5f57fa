"""Region edit in a real browser: upload, paint the region with the mouse, edit, and compare before and after.

`python app.py` runs with a key against this module's emulator (as in test_browser.py). The test paints a stroke on
the Edit tab's canvas, then checks what the emulator received (a crop and its mask, not the whole picture), that the
saved output differs from the input only inside the painted mask and its feather band, and that the before/after
slider shows the input and that output. Needs Debian's Chromium (`apt-get install -y chromium`).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import without_text_chunks
from PIL import Image, ImageFilter
from playwright.sync_api import Page, expect
from servers import chromium, emulator_app_env, running_app, visit
from test_regions import noise

from nanobanana_ui.imaging.pngmeta import read_image_info
from nanobanana_ui.service.regions import DEFAULT_FEATHER

UI_KEY = "region-browser-key"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def app_url(module_emulator, home, tmp_path_factory):
    env = emulator_app_env(module_emulator, tmp_path_factory, GEMINI_API_KEY=UI_KEY,
                           NANOBANANA_MODEL="gemini-2.5-flash-image", NANOBANANA_HOME=str(home))
    with running_app(env, UI_KEY) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser, app_url) -> Page:
    page = visit(browser, app_url)
    yield page
    page.context.close()


def fetch(page: Page, src: str) -> bytes:
    response = page.request.get(src)
    assert response.ok, src
    return response.body()


def paint_stroke(page: Page) -> None:
    """Drag the brush across the middle of the editor's canvas (where the picture is centred)."""
    canvas = page.locator("#region-editor canvas").first
    expect(canvas).to_be_visible()
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(500)  # the picture is drawn onto the canvas just after it appears
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x - 30, y - 10)
    page.mouse.down()
    page.mouse.move(x + 30, y + 10, steps=12)
    page.mouse.up()


def test_paint_a_region_edit_and_only_the_painted_area_changes(page, emu, home, tmp_path):
    original = noise((320, 240), "RGB")
    source = tmp_path / "photo.png"
    original.save(source)
    page.locator("#edit-tab-button").click()
    page.locator("#edit-image input[type=file]").set_input_files(source)
    expect(page.locator("#edit-image img")).to_be_visible()
    paint_stroke(page)
    page.locator("#edit-prompt textarea").fill("a red hat")
    page.locator("#edit-button").click()
    expect(page.locator("#history-gallery .thumbnail-item")).to_have_count(1)

    # The emulator got a crop around the stroke and the crop's mask, not the whole picture.
    [sent] = emu.generate_requests
    assert sent.part_kinds == ["text", "image", "image"] and sent.prompt.endswith("The change to make: a red hat")
    crop, crop_mask = (Image.open(io.BytesIO(data)) for data in sent.images)
    assert crop.size == crop_mask.size and crop.width * crop.height < 320 * 240

    # The saved output: the original's size and mode, byte-identical outside the painted mask and its feather band.
    href = page.locator("#out-files a").first.get_attribute("href")
    saved = fetch(page, href)
    out = Image.open(io.BytesIO(saved))
    assert out.size == original.size and out.mode == original.mode
    region = read_image_info(saved).request["request"]["region"]
    [mask_file] = [p for p in home.rglob("*") if region["mask_sha256"] in p.name]  # the history keeps the mask
    mask = np.asarray(Image.open(mask_file).convert("L")) > 127
    left, top, right, bottom = region["crop_box"]
    assert mask.any() and mask[120, 160]  # the stroke, through the picture's centre
    assert np.array_equal(mask[top:bottom, left:right], np.asarray(crop_mask.convert("L")) > 127)  # as sent
    band = np.asarray(Image.fromarray(mask).filter(ImageFilter.MaxFilter(2 * DEFAULT_FEATHER + 1)))
    a, b = np.asarray(out), np.asarray(original)
    assert np.array_equal(a[~band], b[~band])
    assert (a[mask] != b[mask]).any(axis=-1).mean() > 0.9  # the model's answer went in

    # The before/after slider: the uploaded input, and the output just saved.
    slider = page.locator("#before-after")
    expect(slider).to_be_visible()
    images = slider.locator("img")
    expect(images).to_have_count(2)
    before, after = (fetch(page, images.nth(i).get_attribute("src")) for i in range(2))
    assert before == source.read_bytes() and after == saved
    expect(page.locator("#status")).to_contain_text(re.compile(r"\$0\.0\d+"))


def test_nothing_painted_is_a_plain_edit_of_the_whole_image(page, emu, tmp_path):
    source = tmp_path / "plain.png"
    Image.new("RGB", (96, 64), (200, 30, 30)).save(source)
    page.locator("#edit-tab-button").click()
    page.locator("#edit-image input[type=file]").set_input_files(source)
    expect(page.locator("#region-editor canvas").first).to_be_visible()
    page.locator("#edit-prompt textarea").fill("make the sky stormy")
    page.locator("#edit-button").click()
    expect(page.locator("#history-gallery .thumbnail-item")).to_have_count(1)
    [sent] = emu.generate_requests
    assert sent.images == [source.read_bytes()] and sent.part_kinds == ["text", "image"]
    expect(page.locator("#before-after img")).to_have_count(2)


def test_a_painted_region_with_an_extend_is_refused_as_a_toast_and_nothing_is_sent(page, emu, tmp_path):
    source = tmp_path / "small.png"
    noise((160, 120), "RGB").save(source)
    page.locator("#edit-tab-button").click()
    page.locator("#edit-image input[type=file]").set_input_files(source)
    paint_stroke(page)
    page.locator("#region-extend input").click()
    page.locator("#region-extend").get_by_role("option", name="16:9", exact=True).click()
    page.locator("#edit-prompt textarea").fill("a red hat")
    page.locator("#edit-button").click()
    expect(page.locator(".toast-body").filter(has_text="cannot be combined").first).to_be_visible()
    expect(page.locator("[data-testid=status-tracker] span.error")).to_have_count(0)  # no red Error pill
    assert emu.generate_requests == []
    expect(page.locator("#history-gallery .thumbnail-item")).to_have_count(0)
    expect(page.locator("#before-after")).to_be_hidden()


def test_two_results_are_compared_side_by_side_at_full_width(page, emu):
    page.locator("#advanced").get_by_role("button", name="Advanced").click()
    count = page.locator("#count input[type=number]")
    for _ in range(5):  # typed as the accordion mounts, a value can be reset (see test_browser.set_seed)
        count.fill("2")
        count.press("Enter")
        page.wait_for_timeout(200)
        if count.input_value() == "2":
            break
    page.locator("#prompt textarea").fill("two owls at night")
    page.locator("#generate-button").click()
    expect(page.locator("#out-gallery img")).to_have_count(2)
    compare = page.locator("#compare")
    expect(compare).to_be_visible()
    expect(page.locator("#before-after")).to_be_hidden()  # a generation has no "before"
    left, right = page.locator("#compare-left img"), page.locator("#compare-right img")
    expect(left).to_be_visible()
    expect(right).to_be_visible()
    replies = [r.reply_images[0] for r in emu.generate_requests]
    assert len(replies) == 2
    shown = [without_text_chunks(fetch(page, image.get_attribute("src"))) for image in (left, right)]
    assert sorted(shown) == sorted(replies) and shown[0] != shown[1]  # the two different results
    assert left.bounding_box()["width"] > 400 and right.bounding_box()["x"] > left.bounding_box()["x"] + 400
    page.locator("#compare-right-pick input").click()
    page.locator("#compare-right-pick").get_by_role("option", name="Image 1", exact=True).click()
    expect(right).to_have_attribute("src", left.get_attribute("src"))  # the same picture on both sides now
