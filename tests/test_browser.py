"""The page in a real browser: Debian's Chromium, driven by pytest-playwright, clicking through `python app.py`.

Each test works the page as a visitor would (type, pick, upload, click) and checks both what the page shows and what
the emulator behind the app received. The app runs once per module with a key and NANOBANANA_BASE_URL pointing at
this module's emulator; each test gets a fresh browser context, so a fresh Gradio session with an empty history.
Needs Chromium: `apt-get install -y chromium` (never `playwright install`). A failing test leaves a screenshot in
test-results/ (pytest-playwright's --screenshot only-on-failure, set in pyproject.toml).
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from pathlib import Path

import pytest
from conftest import without_text_chunks
from PIL import Image
from playwright.sync_api import Page, expect, sync_playwright
from servers import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, app_env, emulator_app_env, open_studio, running_app

from nanobanana_ui.emulator import Fault, GeminiEmulator

UI_KEY = "browser-test-key"
PRO = "Nano Banana Pro (Gemini 3 Pro Image) · $0.1344 per image"  # the dropdown's label: name and price at 1K
FLASH = "Nano Banana (Gemini 2.5 Flash Image) · $0.0387 per image"
pytestmark = pytest.mark.browser  # skip with -m "not browser" (the inner loop)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """pytest-playwright launches Debian's Chromium with the flags it needs here (see FACTS.md)."""
    assert Path(CHROMIUM).exists(), "Chromium is missing: apt-get install -y chromium"
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


# pytest-playwright keeps Playwright for the whole session, and with it an asyncio loop that counts as running in
# this thread between its calls: asyncio.run() in every later test module then fails. Playwright, the browser and
# the context options here live for this module only (pytest-playwright's page, context and failure screenshots
# still apply).


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright, browser_type_launch_args):
    browser = playwright.chromium.launch(**browser_type_launch_args)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def browser_context_args():
    return {"viewport": {"width": 1280, "height": 1000}}


@pytest.fixture(scope="module")
def app_url(module_emulator, tmp_path_factory):
    """`python app.py` with a key, its API calls sent to this module's emulator."""
    env = emulator_app_env(module_emulator, tmp_path_factory, GEMINI_API_KEY=UI_KEY,
                           NANOBANANA_MODEL="gemini-2.5-flash-image")  # these tests lean on its 1K-only, 3-input limits
    with running_app(env, UI_KEY) as url:
        yield url


@pytest.fixture
def studio(page: Page, app_url) -> Page:
    """A fresh page (new browser context: a new Gradio session) showing the app."""
    return open_studio(page, app_url)


def write_png(path: Path, color: tuple[int, int, int], size=(96, 64)) -> Path:
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dropdown_choices(page: Page, elem_id: str) -> list[str]:
    """The choices a dropdown offers right now (opens it, reads them, closes it)."""
    page.locator(f"#{elem_id} input").click()
    options = page.locator(f"#{elem_id} [role=option]")
    expect(options.first).to_be_visible()
    names = [option.get_attribute("aria-label") for option in options.all()]
    page.locator(f"#{elem_id} input").blur()
    expect(options).to_have_count(0)
    return names


def choose(page: Page, elem_id: str, name: str) -> None:
    """Pick a dropdown choice by its label."""
    page.locator(f"#{elem_id} input").click()
    page.locator(f"#{elem_id}").get_by_role("option", name=name, exact=True).click()
    expect(page.locator(f"#{elem_id} input")).to_have_value(name)


def set_seed(page: Page, seed: int) -> None:
    """Open Advanced (if closed) and type a seed."""
    field = page.locator("#seed input")
    if not field.is_visible():
        page.locator("#advanced").get_by_role("button", name="Advanced").click()
    # Typed within a few milliseconds of the accordion's first opening, a value can be reset to the component's
    # initial -1 as it mounts (seen 3 times in 12; no person types that fast): type again until it stays.
    for _ in range(5):
        field.fill(str(seed))
        field.press("Tab")
        page.wait_for_timeout(200)
        if field.input_value() == str(seed):
            return
    raise AssertionError(f"the seed field does not keep {seed}: it shows {field.input_value()}")


def wait_for_history(page: Page, count: int) -> None:
    """Wait until the history shows `count` entries (the last step of a finished run)."""
    expect(page.locator("#history-gallery .thumbnail-item")).to_have_count(count)


def shown_image_bytes(page: Page, index: int = 0) -> bytes:
    """The bytes the browser gets for an image in the result gallery."""
    source = page.locator("#out-gallery img").nth(index).get_attribute("src")
    response = page.request.get(source)
    assert response.ok, source
    return response.body()


def test_generate_shows_the_image_the_status_and_a_history_entry(studio, emu):
    prompt = 'A "quoted" fox — 狐 & snow, 100% watercolour\nsecond line'
    studio.locator("#prompt textarea").fill(prompt)
    studio.locator("#generate-button").click()
    expect(studio.locator("#out-gallery img")).to_have_count(1)
    wait_for_history(studio, 1)
    [sent] = emu.generate_requests
    assert sent.prompt == prompt and sent.api_key == UI_KEY and sent.model == "gemini-2.5-flash-image"
    assert without_text_chunks(shown_image_bytes(studio)) == sent.reply_images[0]  # the API's PNG, not a webp
    expect(studio.locator("#status")).to_contain_text(re.compile(r"\$0\.03\d\d · \d+(\.\d s| ms) · "))
    expect(studio.locator("#history-summary")).to_contain_text(re.compile(r"session: 1 image, \$0\.03\d\d spent\."))
    expect(studio.locator("#history-gallery .thumbnail-item")).to_contain_text("generate: A \"quoted\" fox")
    expect(studio.locator("#out-files")).to_contain_text(".png")


def test_the_same_prompt_again_is_a_cache_hit_with_no_call(studio, emu):
    for expected in (r"\$0\.0387 · ", r"cached · \$0 · "):
        studio.locator("#prompt textarea").fill("an owl at night")
        studio.locator("#generate-button").click()
        expect(studio.locator("#status")).to_contain_text(re.compile(expected))
    wait_for_history(studio, 2)
    assert [r.prompt for r in emu.generate_requests] == ["an owl at night"]
    expect(studio.locator("#history-summary")).to_contain_text("2 images, $0.0387 spent, $0.0387 saved")


def test_edit_sends_the_uploaded_image_byte_for_byte(studio, emu, tmp_path):
    source = write_png(tmp_path / "photo.png", (200, 30, 30))
    studio.locator("#edit-tab-button").click()
    studio.locator("#edit-image input[type=file]").set_input_files(source)
    expect(studio.locator("#edit-image img")).to_be_visible()
    studio.locator("#edit-prompt textarea").fill("make the sky stormy")
    studio.locator("#edit-button").click()
    wait_for_history(studio, 1)
    [sent] = emu.generate_requests
    assert sent.prompt == "make the sky stormy" and sent.images == [source.read_bytes()]
    assert sent.part_kinds == ["text", "image"]
    assert "aspectRatio" not in sent.generation_config.get("imageConfig", {})  # auto: keep the input's shape
    assert without_text_chunks(shown_image_bytes(studio)) == sent.reply_images[0]
    expect(studio.locator("#history-gallery .thumbnail-item")).to_contain_text("edit: make the sky stormy")


def test_compose_sends_both_images_in_order_and_the_order_can_change(studio, emu, tmp_path):
    red, blue = write_png(tmp_path / "red.png", (255, 0, 0)), write_png(tmp_path / "blue.png", (0, 0, 255))
    studio.locator("#compose-tab-button").click()
    studio.locator("#compose-images input[type=file]").set_input_files([red, blue])
    thumbnails = studio.locator("#compose-images .thumbnail-item img")
    expect(thumbnails).to_have_count(2)
    expect(thumbnails.first).to_have_attribute("src", re.compile(r"/red\.png$"))
    expect(studio.locator("#compose-limit")).to_contain_text("takes 2 to 3 images (2 added)")
    studio.locator("#compose-prompt textarea").fill("the red one above the blue one")
    studio.locator("#compose-button").click()
    wait_for_history(studio, 1)
    [sent] = emu.generate_requests
    assert sent.prompt == "the red one above the blue one" and sent.part_kinds == ["text", "image", "image"]
    assert sent.images == [red.read_bytes(), blue.read_bytes()]
    expect(studio.locator("#out-gallery img")).to_have_count(1)

    studio.locator("#compose-images .thumbnail-item").nth(1).click()  # pick the blue one, move it first
    studio.locator("#compose-earlier").click()
    expect(thumbnails.first).to_have_attribute("src", re.compile(r"/blue\.png$"))  # the new order is on the page
    studio.locator("#compose-button").click()
    wait_for_history(studio, 2)
    assert len(emu.generate_requests) == 2  # a new order is a new request, not a cache hit
    assert emu.generate_requests[-1].images == [blue.read_bytes(), red.read_bytes()]


def test_a_blocked_prompt_shows_the_message_and_no_traceback(studio, emu):
    emu.fail_next(Fault.blocked("SAFETY"))
    studio.locator("#prompt textarea").fill("something the filter blocks")
    studio.locator("#generate-button").click()
    toast = studio.locator(".toast-body")
    expect(toast).to_contain_text("Gemini blocked the prompt (SAFETY). Rephrase it, or change the input images.")
    assert [r.prompt for r in emu.generate_requests] == ["something the filter blocks"]
    expect(studio.locator("body")).not_to_contain_text("Traceback")
    expect(toast).not_to_contain_text("NoImageError")
    expect(studio.locator("#out-gallery img")).to_have_count(0)
    expect(studio.locator("#history-gallery .thumbnail-item")).to_have_count(0)
    studio.locator("#prompt textarea").fill("something harmless")  # the page still works after an error
    studio.locator("#generate-button").click()
    wait_for_history(studio, 1)
    assert len(emu.generate_requests) == 2


def test_reuse_settings_from_the_history_fills_the_form_and_sends_them(studio, emu):
    choose(studio, "aspect-ratio", "16:9")
    set_seed(studio, 7)
    studio.locator("#prompt textarea").fill("first")
    studio.locator("#generate-button").click()
    wait_for_history(studio, 1)
    choose(studio, "aspect-ratio", "4:3")
    set_seed(studio, 99)
    studio.locator("#prompt textarea").fill("second")
    studio.locator("#generate-button").click()
    wait_for_history(studio, 2)
    sent = [(r.prompt, r.generation_config.get("imageConfig"), r.generation_config.get("seed"))
            for r in emu.generate_requests]
    assert sent == [("first", {"aspectRatio": "16:9"}, 7), ("second", {"aspectRatio": "4:3"}, 99)]

    studio.locator("#history-gallery .thumbnail-item").nth(1).click()  # newest first: the older one is "first"
    expect(studio.locator("#history-details")).to_contain_text("16:9")
    expect(studio.locator("#history-details")).to_contain_text("seed 7")
    studio.locator("#reuse-button").click()
    expect(studio.locator("#prompt textarea")).to_have_value("first")
    expect(studio.locator("#aspect-ratio input")).to_have_value("16:9")
    expect(studio.locator("#seed input")).to_have_value("7")
    studio.locator("#generate-button").click()  # the very same request: a cache hit, so every option matched
    expect(studio.locator("#status")).to_contain_text(re.compile(r"cached · \$0 · "))
    assert len(emu.generate_requests) == 2
    studio.locator("#prompt textarea").fill("first, once more")  # a new prompt with the reused settings
    studio.locator("#generate-button").click()
    wait_for_history(studio, 4)
    again = emu.generate_requests[-1]
    assert len(emu.generate_requests) == 3 and again.prompt == "first, once more"
    assert again.generation_config["imageConfig"] == {"aspectRatio": "16:9"} and again.generation_config["seed"] == 7


def test_switching_the_model_changes_the_size_choices(studio, emu):
    assert dropdown_choices(studio, "size") == ["1K"]  # Nano Banana makes 1K only: no 4K to pick
    choose(studio, "model", PRO)
    expect(studio.locator("#model-info")).to_contain_text("sizes 1K, 2K, 4K")
    assert dropdown_choices(studio, "size") == ["1K", "2K", "4K"]
    choose(studio, "size", "4K")
    expect(studio.locator("#model-info")).to_contain_text("$0.2400 per 4K image")
    studio.locator("#prompt textarea").fill("a lighthouse in 4K")
    studio.locator("#generate-button").click()
    wait_for_history(studio, 1)
    [sent] = emu.generate_requests
    assert sent.model == "gemini-3-pro-image" and sent.generation_config["imageConfig"] == {"imageSize": "4K"}
    expect(studio.locator("#status")).to_contain_text("$0.24")
    choose(studio, "model", FLASH)  # back to a 1K-only model: 4K goes away and the size falls back to 1K
    expect(studio.locator("#size input")).to_have_value("1K")
    assert dropdown_choices(studio, "size") == ["1K"]


def test_prompts_and_the_models_words_are_shown_as_typed(studio, emu):
    prompt = "a *star* and <b>bold</b> tags"
    studio.locator("#prompt textarea").fill(prompt)
    studio.locator("#generate-button").click()
    wait_for_history(studio, 1)
    assert [r.prompt for r in emu.generate_requests] == [prompt]  # sent as typed
    studio.locator("#history-gallery .thumbnail-item").first.click()
    expect(studio.locator("#history-details")).to_contain_text("Settings: Nano Banana")
    expect(studio.locator("#history-details")).to_contain_text(prompt)
    expect(studio.locator("#status")).to_contain_text(f"placeholder image for: {prompt}")  # the model's words


def test_batch_tab_runs_pasted_prompts_shows_each_result_and_offers_the_zip(studio, emu):
    import zipfile

    prompts = ["a batch fox", "a batch owl", "a batch lighthouse"]
    studio.locator("#batch-tab-button").click()
    studio.locator("#batch-text textarea").fill("\n".join(prompts))
    studio.locator("#batch-estimate-button").click()
    expect(studio.locator("#batch-plan")).to_contain_text("3 items, 3 requests")
    assert emu.generate_requests == []  # an estimate sends nothing
    studio.locator("#batch-run-button").click()
    expect(studio.locator("#batch-gallery .thumbnail-item")).to_have_count(3)
    expect(studio.locator("#batch-summary")).to_contain_text("Finished: 3 made, 0 cached, 0 failed")
    expect(studio.locator("#batch-progress")).to_contain_text("3 of 3")
    assert sorted(r.prompt for r in emu.generate_requests) == sorted(prompts)
    link = studio.locator("#batch-zip a.download-link").first
    expect(link).to_have_attribute("download", re.compile(r"^\d{8}-\d{6}-a-batch-fox\.zip$"))
    response = studio.request.get(link.get_attribute("href"))
    assert response.ok
    with zipfile.ZipFile(io.BytesIO(response.body())) as zipped:
        names = zipped.namelist()
    assert "manifest.jsonl" in names and sum(name.endswith(".png") for name in names) == 3


@pytest.fixture(scope="module")
def slow_batch(tmp_path_factory):
    """An app whose quota allows 2 requests at a time, over an emulator taking 0.6 s a call: a batch takes a while."""
    with GeminiEmulator(delay_s=0.6) as emu:
        env = emulator_app_env(emu, tmp_path_factory, GEMINI_API_KEY=UI_KEY, NANOBANANA_RPM="2",
                               NANOBANANA_RATE_WINDOW="0.5")
        with running_app(env, UI_KEY) as url:
            yield url, emu


def test_batch_cancel_in_the_page_stops_sending_and_in_flight_requests_finish(page, slow_batch):
    url, emu = slow_batch
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    page.goto(url)
    page.locator("#batch-tab-button").click()
    # 30 prompts at 2 per 0.5 s, 0.6 s each: the run lasts long enough to be cancelled on a loaded machine too.
    page.locator("#batch-text textarea").fill("\n".join(f"slow prompt {n}" for n in range(30)))
    page.locator("#batch-run-button").click()
    expect(page.locator("#batch-gallery .thumbnail-item").first).to_be_visible()
    page.locator("#batch-cancel-button").click()
    clicked_at, sent_at_click = time.monotonic(), len(emu.generate_requests)
    expect(page.locator("#batch-summary")).to_contain_text(re.compile(r"Cancelled: \d+ made.*not started"))
    sent = emu.generate_requests
    assert len(sent) < 30 and len(sent) <= sent_at_click + 2  # concurrency 2: at most those being sent at the click
    assert len([r for r in sent if r.received_at > clicked_at + 0.5]) == 0  # nothing started after the Cancel
    made = int(re.search(r"Cancelled: (\d+) made", page.locator("#batch-summary").inner_text()).group(1))
    assert made == len(sent)  # every request sent finished (none aborted mid-way)
    expect(page.locator("#batch-gallery .thumbnail-item")).to_have_count(made)
    time.sleep(1.0)
    assert len(emu.generate_requests) == len(sent)


@pytest.fixture(scope="module")
def offline_url(tmp_path_factory):
    """`python app.py` with no key: the built-in emulator answers."""
    env = app_env(NANOBANANA_HOME=str(tmp_path_factory.mktemp("offline-home")),
                  GRADIO_TEMP_DIR=str(tmp_path_factory.mktemp("offline-gradio")))
    with running_app(env) as url:
        yield url


def test_offline_meter_says_nothing_is_spent_after_an_image(page, offline_url):
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    page.goto(offline_url)
    expect(page.locator("#offline-banner")).to_be_visible()
    meter = page.locator("#meter")
    expect(meter).to_contain_text("Offline emulator: no quota used, nothing spent.")
    page.locator("#prompt textarea").fill("a placeholder, free of charge")
    page.locator("#generate-button").click()
    wait_for_history(page, 1)
    page.reload()  # the meter is drawn again on load: waiting for its line leaves no race with its update
    expect(meter).to_contain_text(re.compile("Offline emulator|Today:"))
    assert "Offline emulator: no quota used, nothing spent." in meter.inner_text()


# The History and PNG Info tabs.


def test_png_info_reads_a_dropped_image_and_use_these_settings_fills_the_form(studio, emu, tmp_path):
    from nanobanana_ui.domain.request import ImageOptions, ImageRequest, Mode
    from nanobanana_ui.imaging.pngmeta import embed_png_text, provenance_chunks

    options = ImageOptions(aspect_ratio="16:9", size="2K", temperature=0.4, top_p=0.5, top_k=20, seed=7)
    request = ImageRequest(mode=Mode.GENERATE, model="gemini-3-pro-image-preview", prompt="a lighthouse, at dusk",
                           options=options)
    plain, ours = write_png(tmp_path / "plain.png", (9, 9, 9)), tmp_path / "ours.png"
    ours.write_bytes(embed_png_text(plain.read_bytes(), provenance_chunks(request)))
    studio.locator("#pnginfo-tab-button").click()
    upload = studio.locator("#pnginfo-image input[type=file]")
    upload.set_input_files(plain)
    expect(studio.locator("#pnginfo-message")).to_contain_text("This image has no generation parameters")
    studio.locator("#pnginfo-image").get_by_role("button", name="Clear").click()
    upload.set_input_files(ours)
    # The JSON chunk survived the upload (the message names the model from it), and so did the parameters text.
    expect(studio.locator("#pnginfo-message")).to_contain_text(
        "Made by Nano Banana Studio with gemini-3-pro-image-preview.")
    preview = studio.locator("#pnginfo-preview img")
    expect(preview).to_be_visible()
    assert studio.request.get(preview.get_attribute("src")).body() == ours.read_bytes()  # shown as it is
    expect(studio.locator("#pnginfo-text textarea")).to_have_value(re.compile(
        r"^a lighthouse, at dusk\nModel: gemini-3-pro-image-preview, Mode: generate, Aspect ratio: 16:9, Size: 2K"))
    studio.locator("#pnginfo-use-button").click()
    expect(studio.locator("#prompt textarea")).to_have_value("a lighthouse, at dusk")  # the Studio tab is shown
    # The image's own (shut-down) id fills the form; generating sends its replacement and says so.
    expect(studio.locator("#model input")).to_have_value("gemini-3-pro-image-preview")
    expect(studio.locator("#aspect-ratio input")).to_have_value("16:9")
    expect(studio.locator("#size input")).to_have_value("2K")
    expect(studio.locator("#model-info")).to_contain_text("$0.1344 per 2K image")
    studio.locator("#generate-button").click()
    expect(studio.locator("#out-gallery img")).to_have_count(1)
    [sent] = emu.generate_requests  # every setting the image carried, as it was sent then
    assert sent.prompt == "a lighthouse, at dusk" and sent.model == "gemini-3-pro-image"
    expect(studio.locator("#status")).to_contain_text(
        "gemini-3-pro-image-preview was shut down on 2026-06-25; used gemini-3-pro-image")
    assert sent.generation_config == {"temperature": 0.4, "topP": 0.5, "topK": 20.0, "seed": 7,
                                      "responseModalities": ["TEXT", "IMAGE"],
                                      "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"}}


@pytest.fixture(scope="module")
def earlier_home(module_emulator, tmp_path_factory):
    """A data directory with 27 entries made by an earlier process (a Studio, before the app starts)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from nanobanana_ui.domain.config import Settings
    from nanobanana_ui.service.studio import Studio

    home = tmp_path_factory.mktemp("earlier-home")
    settings = Settings(api_key=UI_KEY, base_url=module_emulator.base_url, home=home, timeout_s=10,
                        model="gemini-2.5-flash-image")

    async def make() -> None:
        async with Studio(settings) as studio:
            await studio.generate("a lighthouse in the fog")
            await asyncio.gather(*(studio.generate(f"a field of sunflowers, plate {n}") for n in range(26)))

    with ThreadPoolExecutor(1) as pool:  # Playwright's loop counts as running in this thread
        pool.submit(asyncio.run, make()).result()
    return home


@pytest.fixture(scope="module")
def earlier_url(module_emulator, earlier_home, tmp_path_factory):
    env = app_env(GEMINI_API_KEY=UI_KEY, NANOBANANA_BASE_URL=module_emulator.base_url,
                  NANOBANANA_MODEL="gemini-2.5-flash-image", NANOBANANA_HOME=str(earlier_home),
                  GRADIO_TEMP_DIR=str(tmp_path_factory.mktemp("gradio-earlier")))
    with running_app(env, UI_KEY) as url:
        yield url


def open_history(page: Page, url: str) -> None:
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    page.goto(url)
    page.locator("#history-tab-button").click()


def test_history_tab_shows_what_an_earlier_process_made_and_reruns_it_from_the_cache(page, earlier_url, emu):
    open_history(page, earlier_url)
    thumbnails = page.locator("#history-page-gallery .thumbnail-item")
    expect(page.locator("#history-page-info")).to_contain_text("Page 1 of 2 · 27 entries, newest first")
    expect(thumbnails).to_have_count(24)
    page.locator("#history-next").click()
    expect(page.locator("#history-page-info")).to_contain_text("Page 2 of 2")
    expect(thumbnails).to_have_count(3)
    expect(thumbnails.last).to_contain_text("a lighthouse in the fog · generate")  # the oldest, last

    page.locator("#history-search textarea").fill("lighthouse")
    page.locator("#history-search textarea").press("Enter")
    expect(page.locator("#history-page-info")).to_contain_text("Page 1 of 1 · 1 entry match")
    expect(thumbnails).to_have_count(1)
    thumbnails.first.click()
    details = page.locator("#history-item-details")
    expect(details).to_contain_text("a lighthouse in the fog")
    expect(details).to_contain_text("$0.0387")
    expect(details).to_contain_text("placeholder image for: a lighthouse in the fog")  # the model's words
    page.locator("#history-rerun").click()
    expect(page.locator("#status")).to_contain_text(re.compile(r"cached · \$0 · "))  # shown in the Studio tab
    wait_for_history(page, 1)  # and recorded in this session's panel
    assert emu.generate_requests == []


def test_history_tab_downloads_deletes_after_a_second_click_and_exports(page, earlier_url, earlier_home, emu):
    from nanobanana_ui.storage.history import HistoryStore

    open_history(page, earlier_url)
    page.locator("#history-mode input").click()
    page.locator("#history-mode").get_by_role("option", name="Generate", exact=True).click()
    info = page.locator("#history-page-info")
    expect(info).to_contain_text(re.compile(r"Page 1 of 2 · (27|28) entries match"))  # 28 after the re-run test
    search = page.locator("#history-search textarea")
    search.fill("plate 7")
    search.press("Enter")
    expect(info).to_contain_text("Page 1 of 1 · 1 entry match")
    thumbnails = page.locator("#history-page-gallery .thumbnail-item")
    expect(thumbnails).to_have_count(1)
    expect(thumbnails.first).to_contain_text("a field of sunflowers, plate 7 · generate")
    thumbnails.first.click()
    expect(page.locator("#history-item-details")).to_contain_text("Id:")
    entry_id = re.search(r"Id: (\S+)", page.locator("#history-item-details").inner_text()).group(1)
    with page.expect_download() as download:
        page.locator("#history-download").click()
    original = HistoryStore(earlier_home).get(entry_id).images[0].path
    assert Path(download.value.path()).read_bytes() == original.read_bytes()  # the stored PNG, byte for byte
    page.locator("#history-delete").click()
    expect(page.locator("#history-item-details")).to_contain_text("Click Delete again")
    assert original.exists()  # nothing deleted yet
    page.locator("#history-delete").click()
    expect(info).to_contain_text("No entries match these filters.")
    assert not original.exists()  # its file went with it
    expect(page.locator("#history-item-details")).to_contain_text("Deleted the generate of")
    search.fill("")
    search.press("Enter")
    expect(info).to_contain_text(re.compile(r"Page 1 of 2 · (26|27) entries match"))
    page.locator("#history-export").click()
    expect(page.locator("#history-export-file")).to_contain_text(re.compile(r"nanobanana-history-.*\.zip"))


# Private inputs: the Advanced checkbox, the Vertex-only controls, PNG Info's privacy line.


def test_keep_photo_metadata_checkbox_and_png_info_names_the_personal_fields(studio, emu, tmp_path):
    from test_privacy import OWNER, SERIAL, has_gps, photo

    source = tmp_path / "holiday.jpg"
    source.write_bytes(photo())
    studio.locator("#advanced").get_by_role("button", name="Advanced").click()
    box = studio.locator("#keep-metadata input[type=checkbox]")
    expect(box).not_to_be_checked()
    for elem_id in ("output-format", "jpeg-quality", "person-generation"):  # the Gemini API has none of them
        expect(studio.locator(f"#{elem_id}")).to_have_count(0)
    studio.locator("#edit-tab-button").click()
    studio.locator("#edit-image input[type=file]").set_input_files(source)
    expect(studio.locator("#edit-image img")).to_be_visible()
    studio.locator("#edit-prompt textarea").fill("make it sunny")
    studio.locator("#edit-button").click()
    wait_for_history(studio, 1)
    box.check()
    studio.locator("#edit-button").click()
    wait_for_history(studio, 2)
    stripped, kept = emu.generate_requests
    assert not has_gps(stripped.images[0]) and kept.images == [source.read_bytes()]
    studio.locator("#pnginfo-tab-button").click()
    studio.locator("#pnginfo-image input[type=file]").set_input_files(source)
    message = studio.locator("#pnginfo-message")
    expect(message).to_contain_text("holds personal metadata that is removed before it is sent")
    expect(message).to_contain_text("EXIF:GPSLatitude")
    assert SERIAL not in message.inner_text() and OWNER not in message.inner_text()
