"""The page as a first-time visitor meets it, in Chromium: every button pressed before any image exists, a bad
upload, Compose's selection, results shown whole, a phone's screen, and a typed key left nowhere in the browser.

The app runs in public mode (a visitor types their own key) against this module's emulator. A refusal must be a
toast that leaves the page as it was: no red "Error" pill over the outputs (Gradio's status tracker draws it as
`span.error`), and the form keeps its values.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect
from servers import chromium, emulator_app_env, running_app, visit

pytestmark = pytest.mark.browser

KEY = "fakeTypedKey-refusals-0123456789abcdefgh"
ERROR_PILL = "[data-testid=status-tracker] span.error"


@pytest.fixture(scope="module")
def public_url(module_emulator, tmp_path_factory):
    with running_app(emulator_app_env(module_emulator, tmp_path_factory, NANOBANANA_PUBLIC="1"), KEY) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


def write_png(path: Path, color: tuple[int, int, int], size=(96, 64)) -> Path:
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def refused(page: Page, button: str, message: str) -> None:
    """Click a button: its refusal arrives as a toast, and no output shows an "Error" pill."""
    page.locator(button).click()
    toast = page.locator(".toast-body").filter(has_text=message)
    expect(toast.first).to_be_visible()
    expect(page.locator(ERROR_PILL)).to_have_count(0)
    for close in page.locator(".toast-close").all():  # the next refusal's toast is then the only one
        if close.is_visible():
            close.click()


def test_every_button_before_any_image_says_why_and_leaves_the_page_as_it_was(browser, public_url, emu):
    page = visit(browser, public_url)
    page.locator("#api-key input").fill(KEY)
    page.locator("#edit-tab-button").click()
    page.locator("#edit-prompt textarea").fill("make it blue")
    refused(page, "#edit-button", "image")  # no image to edit
    page.locator("#compose-tab-button").click()
    page.locator("#compose-prompt textarea").fill("the two together")
    refused(page, "#compose-button", "image")
    for button in ("#compose-earlier", "#compose-later", "#compose-remove"):
        refused(page, button, "Click an image in Compose first")
    page.locator("#generate-tab-button").click()
    refused(page, "#generate-button", "prompt")  # an empty prompt
    refused(page, "#new-variation-button", "Nothing to vary yet")
    for button in ("#output-to-edit-button", "#reuse-button", "#send-to-edit-button", "#add-to-compose-button"):
        refused(page, button, "There is no image to use yet")  # one message for the shared actions
    page.locator("#history-tab-button").click()
    for button in ("#history-rerun", "#history-variation", "#history-send-to-edit", "#history-add-to-compose",
                   "#history-delete"):
        refused(page, button, "Open an entry first")
    refused(page, "#history-export", "nothing to export")
    page.locator("#batch-tab-button").click()
    refused(page, "#batch-estimate-button", "Upload a prompt file or paste prompts")
    refused(page, "#batch-run-button", "Upload a prompt file or paste prompts")
    page.locator("#pnginfo-tab-button").click()
    refused(page, "#pnginfo-use-button", "no settings to use")
    # Nothing sent but the key's model listing (discovery, in the background from page load; at most once).
    assert [r.path for r in emu.requests if not r.path.endswith("/models")] == []
    assert len(emu.requests) <= 1
    # The form kept everything typed into it.
    page.locator("#studio-tab-button").click()
    expect(page.locator("#api-key input")).to_have_value(KEY)
    page.locator("#edit-tab-button").click()
    expect(page.locator("#edit-prompt textarea")).to_have_value("make it blue")
    page.locator("#compose-tab-button").click()
    expect(page.locator("#compose-prompt textarea")).to_have_value("the two together")
    expect(page.locator(ERROR_PILL)).to_have_count(0)
    page.context.close()


def test_a_text_file_named_png_is_refused_as_it_is_uploaded(browser, public_url, emu, tmp_path):
    page = visit(browser, public_url)
    page.locator("#api-key input").fill(KEY)
    page.locator("#prompt textarea").fill("a red fox")
    page.locator("#generate-button").click()
    expect(page.locator("#out-gallery img")).to_have_count(1)
    # Gradio's progress overlay ("0.2s Done - 100.0%") fades after the images show: the status is whole once it is gone.
    page.wait_for_function("() => document.querySelector('#status').innerText.trim().startsWith('$')")
    status = page.locator("#status").inner_text()
    fake = tmp_path / "notes.png"
    fake.write_text("shopping list: bananas\n")
    page.locator("#edit-tab-button").click()
    page.locator("#edit-image input[type=file]").set_input_files(fake)
    toast = page.locator(".toast-body").filter(has_text="notes.png is not an image (it looks like text)")
    expect(toast).to_be_visible()
    expect(page.locator("#edit-image img")).to_have_count(0)  # no broken-image icon: the upload was taken back
    page.locator("#edit-prompt textarea").fill("make it blue")
    refused(page, "#edit-button", "image")
    # The earlier result and its status are still there, whole.
    expect(page.locator("#out-gallery img")).to_have_count(1)
    assert page.locator("#status").inner_text() == status
    expect(page.locator(ERROR_PILL)).to_have_count(0)
    assert len(emu.generate_requests) == 1
    page.context.close()


def test_compose_highlight_follows_the_moved_image_and_remove_takes_the_highlighted_one(browser, public_url, emu,
                                                                                        tmp_path):
    page = visit(browser, public_url)
    files = [write_png(tmp_path / f"{name}.png", color) for name, color in
             (("red", (255, 0, 0)), ("green", (0, 255, 0)), ("blue", (0, 0, 255)))]
    page.locator("#compose-tab-button").click()
    page.locator("#compose-images input[type=file]").set_input_files(files)
    items = page.locator("#compose-images .thumbnail-item")
    expect(items).to_have_count(3)
    items.nth(0).click()  # red
    page.locator("#compose-later").click()
    expect(items.nth(1).locator("img")).to_have_attribute("src", _ends("red.png"))
    expect(items.nth(1)).to_have_class(_has("selected"))  # the highlight moved with red
    expect(page.locator("#compose-images .thumbnail-item.selected")).to_have_count(1)
    page.locator("#compose-remove").click()  # removes red, the highlighted one
    expect(items).to_have_count(2)
    sources = [items.nth(i).locator("img").get_attribute("src") for i in range(2)]
    assert sources[0].endswith("green.png") and sources[1].endswith("blue.png"), sources
    expect(page.locator("#compose-limit")).to_contain_text("(2 added)")
    for _ in range(2):
        items.first.click()
        page.locator("#compose-remove").click()
    expect(items).to_have_count(0)
    expect(page.locator("#compose-limit")).to_contain_text("(0 added)")
    expect(page.locator(ERROR_PILL)).to_have_count(0)
    page.context.close()


def _ends(suffix: str):
    import re

    return re.compile(re.escape(suffix) + "$")


def _has(name: str):
    import re

    return re.compile(rf"(^|\s){name}(\s|$)")


@pytest.mark.parametrize("ratio", ["1:1", "9:16"])
def test_a_result_is_shown_whole(browser, public_url, emu, ratio):
    page = visit(browser, public_url)
    page.locator("#api-key input").fill(KEY)
    if ratio != "1:1":
        page.locator("#aspect-ratio input").click()
        page.locator("#aspect-ratio").get_by_role("option", name=ratio, exact=True).click()
    page.locator("#prompt textarea").fill(f"a {ratio} lighthouse")
    page.locator("#generate-button").click()
    image = page.locator("#out-gallery img").first
    expect(image).to_be_visible()
    page.wait_for_function("() => { const i = document.querySelector('#out-gallery img'); "
                           "return i && i.complete && i.naturalWidth > 0; }")
    box = page.locator("#out-gallery").bounding_box()
    drawn = image.evaluate("""img => {
        const r = img.getBoundingClientRect(), s = getComputedStyle(img);
        // object-fit: contain draws the picture inside the element's box at its own ratio
        const scale = Math.min(r.width / img.naturalWidth, r.height / img.naturalHeight);
        const w = s.objectFit === 'contain' ? img.naturalWidth * scale : r.width;
        const h = s.objectFit === 'contain' ? img.naturalHeight * scale : r.height;
        return {top: r.top + (r.height - h) / 2, height: h, left: r.left + (r.width - w) / 2, width: w,
                fit: s.objectFit, natural: [img.naturalWidth, img.naturalHeight]};
    }""")
    top = box["y"]  # both in viewport coordinates
    assert drawn["top"] >= top - 1 and drawn["top"] + drawn["height"] <= top + box["height"] + 1, (drawn, box)
    assert drawn["left"] >= box["x"] - 1 and drawn["left"] + drawn["width"] <= box["x"] + box["width"] + 1
    page.context.close()


def test_on_a_phone_the_result_comes_into_view_after_generate(browser, public_url, emu):
    page = visit(browser, public_url, width=390, height=844)
    page.locator("#api-key input").fill(KEY)
    page.locator("#prompt textarea").fill("a fox on a phone")
    page.locator("#generate-button").click()
    expect(page.locator("#out-gallery img")).to_have_count(1)
    page.wait_for_timeout(800)  # the smooth scroll settles
    box = page.locator("#out-gallery").bounding_box()
    assert box is not None and -2 <= box["y"] < 844 * 0.6, box  # the result's top is on the screen
    page.context.close()


BROWSER_STORAGE = """async () => {
    const dump = {local: {}, session: {}, indexeddb: {}};
    for (let i = 0; i < localStorage.length; i++) {
        const k = localStorage.key(i); dump.local[k] = localStorage.getItem(k);
    }
    for (let i = 0; i < sessionStorage.length; i++) {
        const k = sessionStorage.key(i); dump.session[k] = sessionStorage.getItem(k);
    }
    const dbs = indexedDB.databases ? await indexedDB.databases() : [];
    for (const info of dbs) {
        const db = await new Promise((ok, no) => {
            const r = indexedDB.open(info.name); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
        });
        for (const store of db.objectStoreNames) {
            const rows = await new Promise((ok, no) => {
                const r = db.transaction(store).objectStore(store).getAll();
                r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error);
            });
            dump.indexeddb[info.name + "/" + store] = JSON.stringify(rows);
        }
        db.close();
    }
    return dump;
}"""


def test_a_typed_key_is_kept_nowhere_in_the_browser(browser, public_url, emu):
    page = visit(browser, public_url)
    page.locator("#api-key input").fill(KEY)
    page.locator("#prompt textarea").fill("a lighthouse, remembered by nobody")
    page.locator("#generate-button").click()
    expect(page.locator("#out-gallery img")).to_have_count(1)
    assert [r.api_key for r in emu.generate_requests] == [KEY]
    page.wait_for_timeout(500)  # anything the page stores after a run is stored by now
    stored = page.evaluate(BROWSER_STORAGE)
    assert KEY not in json.dumps(stored), stored
    assert not any(name.startswith("gradio:run-history") for name in stored["local"]), stored["local"]
    page.reload()
    expect(page.locator("#generate-button")).to_be_visible()
    assert KEY not in json.dumps(page.evaluate(BROWSER_STORAGE))
    assert KEY not in page.content()
    # Run history is off for the whole app (the page's own runs are private events it would not record, but a
    # later public button would be): the config says so, and the "Runs" page has nothing to show.
    assert page.request.get(public_url + "config").json()["run_history"] is False
    runs = page.goto(public_url + "gradio_api/runs")
    assert KEY not in page.content() and (runs is None or runs.status != 200 or "Load run" not in page.content())
    page.context.close()
