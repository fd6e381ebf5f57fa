"""Screenshots of the page's tabs, each with a result, taken in Chromium against the offline app.

Run: python bench/screenshots.py [--out docs/screenshots]
Starts `python app.py` without a key (the built-in emulator answers with placeholder images, and the offline banner
shows), then in Debian's Chromium (apt-get install -y chromium): generates two images (Generate tab, with history),
edits a painted region of a drawn picture (Edit tab, with the before/after slider), composes two drawn pictures
(Compose tab), opens an entry in the History tab and reads the composed image's parameters in PNG Info, then opens the
first result in the Refine tab, refines it twice and branches from turn 2, saving generate.png, edit.png,
compose.png, history.png, pnginfo.png and refine.png. The PNGs are reduced to 256 colours to keep each one small
enough to commit.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))

from browser_click import ROOT, chromium, running_app  # noqa: E402
from playwright.sync_api import Page, expect  # noqa: E402

WAIT_MS = 60_000
ALL_IMAGES_LOADED = "() => [...document.images].every(img => img.complete && img.naturalWidth > 0)"


def landscape(path: Path) -> Path:
    """A little house under a blue sky: the picture the Edit tab changes."""
    image = Image.new("RGB", (640, 400), (120, 180, 235))
    draw = ImageDraw.Draw(image)
    for y in range(260):
        draw.line([(0, y), (640, y)], fill=(90 + y // 4, 150 + y // 5, 230))
    draw.rectangle([0, 260, 640, 400], fill=(80, 160, 70))
    draw.ellipse([500, 40, 580, 120], fill=(255, 220, 80))
    draw.rectangle([220, 190, 380, 300], fill=(230, 220, 200))
    draw.polygon([(200, 195), (300, 120), (400, 195)], fill=(170, 60, 50))
    draw.rectangle([285, 240, 320, 300], fill=(110, 70, 40))
    return save(image, path)


def cat(path: Path) -> Path:
    """An orange cat's face."""
    image = Image.new("RGB", (400, 400), (245, 240, 230))
    draw = ImageDraw.Draw(image)
    draw.polygon([(95, 170), (120, 60), (185, 130)], fill=(230, 140, 50))
    draw.polygon([(305, 170), (280, 60), (215, 130)], fill=(230, 140, 50))
    draw.ellipse([80, 100, 320, 330], fill=(235, 150, 60))
    for x in (150, 250):
        draw.ellipse([x - 18, 185, x + 18, 225], fill=(40, 120, 60))
    draw.polygon([(185, 255), (215, 255), (200, 272)], fill=(200, 80, 90))
    return save(image, path)


def hat(path: Path) -> Path:
    """A black top hat with a red band."""
    image = Image.new("RGB", (400, 400), (225, 235, 245))
    draw = ImageDraw.Draw(image)
    draw.rectangle([130, 90, 270, 280], fill=(30, 30, 35))
    draw.rectangle([130, 235, 270, 265], fill=(190, 30, 40))
    draw.ellipse([60, 265, 340, 315], fill=(30, 30, 35))
    return save(image, path)


def save(image: Image.Image, path: Path) -> Path:
    image.save(path, format="PNG")
    return path


def shoot(page: Page, path: Path) -> None:
    """A full-page screenshot once every image has loaded, reduced to 256 colours."""
    page.wait_for_function(ALL_IMAGES_LOADED, timeout=WAIT_MS)
    page.mouse.move(0, 0)  # no hover highlight
    shot = Image.open(io.BytesIO(page.screenshot(full_page=True, animations="disabled")))
    shot.convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(path, format="PNG", optimize=True)
    print(f"{path}: {path.stat().st_size // 1024} KB")


def paint_sky(page: Page) -> None:
    """Brush a few strokes over the sky on the Edit tab's canvas (the picture is centred on it)."""
    canvas = page.locator("#region-editor canvas").first
    expect(canvas).to_be_visible()
    canvas.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    box = canvas.bounding_box()
    x, y, w, h = box["x"], box["y"], box["width"], box["height"]
    for row in (0.30, 0.34, 0.38):
        page.mouse.move(x + w * 0.3, y + h * row)
        page.mouse.down()
        page.mouse.move(x + w * 0.6, y + h * row, steps=15)
        page.mouse.up()
    page.evaluate("window.scrollTo(0, 0)")


def run(page: Page, out: Path, inputs: Path) -> None:
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    expect(page.locator("#offline-banner")).to_be_visible()
    history = page.locator("#history-gallery .thumbnail-item")

    for number, prompt in enumerate(["a lighthouse at dusk, oil painting", "a red fox in the snow, watercolour"], 1):
        page.locator("#prompt textarea").fill(prompt)
        page.locator("#generate-button").click()
        expect(history).to_have_count(number)
    shoot(page, out / "generate.png")

    page.locator("#edit-tab-button").click()
    page.locator("#edit-image input[type=file]").set_input_files(landscape(inputs / "house.png"))
    expect(page.locator("#edit-image img")).to_be_visible()
    paint_sky(page)  # a region edit: only the painted sky may change; the slider under the result compares
    page.locator("#edit-prompt textarea").fill("make the sky stormy, with lightning over the hill")
    page.locator("#edit-button").click()
    expect(history).to_have_count(3)
    shoot(page, out / "edit.png")

    page.locator("#compose-tab-button").click()
    page.locator("#compose-images input[type=file]").set_input_files([cat(inputs / "cat.png"), hat(inputs / "hat.png")])
    expect(page.locator("#compose-images .thumbnail-item")).to_have_count(2)
    expect(page.locator("#compose-limit")).to_contain_text("(2 added)")
    page.locator("#compose-prompt textarea").fill("the cat from the first image wearing the hat from the second")
    page.locator("#compose-button").click()
    expect(history).to_have_count(4)
    shoot(page, out / "compose.png")

    page.locator("#history-tab-button").click()
    library = page.locator("#history-page-gallery .thumbnail-item")
    expect(library).to_have_count(4)
    library.nth(1).click()
    expect(page.locator("#history-item-details")).to_contain_text("Settings")
    shoot(page, out / "history.png")

    # PNG Info on the composed image as a visitor would have saved it (the gallery serves the original file).
    src = page.locator("#out-gallery img").first.get_attribute("src")
    saved = inputs / "composed.png"
    saved.write_bytes(page.request.get(src).body())
    page.locator("#pnginfo-tab-button").click()
    page.locator("#pnginfo-image input[type=file]").set_input_files(saved)
    expect(page.locator("#pnginfo-message")).to_contain_text("Nano Banana Studio")
    shoot(page, out / "pnginfo.png")

    refine(page, out)


def refine(page: Page, out: Path) -> None:
    """The Refine tab after two refinements and a branch from turn 2, turn 2 selected (its two branches shown)."""
    page.locator("#studio-tab-button").click()
    page.locator("#generate-tab-button").click()
    page.locator("#prompt textarea").fill("a lighthouse on a cliff at dusk, oil painting")
    page.locator("#generate-button").click()
    expect(page.locator("#history-gallery .thumbnail-item")).to_have_count(5)
    page.locator("#output-to-refine-button").click()
    expect(page.locator("#refine-summary")).to_contain_text("Turn 1")
    for turn, instruction in enumerate(["make it night, with the lamp lit", "add a full moon over the sea"], 2):
        page.locator("#refine-instruction textarea").fill(instruction)
        page.locator("#refine-button").click()
        expect(page.locator("#refine-status")).to_contain_text(f"Turn {turn} (refines ")
    page.locator("#refine-path .thumbnail-item").nth(1).click()
    expect(page.locator("#refine-button")).to_have_text("Branch from turn 2")
    page.locator("#refine-instruction textarea").fill("add falling snow")
    page.locator("#refine-button").click()
    expect(page.locator("#refine-path .thumbnail-item")).to_have_count(3)
    expect(page.locator("#refine-status")).to_contain_text("Turn 3 (refines ")
    page.locator("#refine-undo").click()
    expect(page.locator("#refine-branches .thumbnail-item")).to_have_count(2)
    page.locator("#refine-instruction textarea").fill("turn the lighthouse's beam red")
    page.locator("#refine-instruction textarea").blur()
    expect(page.locator("#refine-estimate")).to_contain_text("Next: turn 3")
    expect(page.locator("#refine-slider img")).to_have_count(2)
    shoot(page, out / "refine.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with running_app() as url, chromium() as browser, tempfile.TemporaryDirectory() as inputs:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        run(page, args.out, Path(inputs))


if __name__ == "__main__":
    main()
