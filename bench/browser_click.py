"""Benchmark: a click on Generate in Chromium until the image shows in the result gallery, cache miss vs cache hit.

Run: python bench/browser_click.py [--rounds 15]
Starts `python app.py` with its API calls sent to an emulator (no delay) and Debian's Chromium (apt-get install -y
chromium), then alternates a miss (a new prompt each round) with a hit (the same prompt every round, made once
beforehand). The time runs, in the page, from the click on the button until the new image in #out-gallery has loaded
and is shown. Prints medians and the hit / miss ratio measured in this one run (the machine is shared and noisy:
compare ratios, not seconds).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the package, and the tests' helper that starts app.py

from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402
from servers import app_env, start_app, stop_app  # noqa: E402

from nanobanana_ui.emulator import GeminiEmulator  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
HIT_PROMPT = "the same lighthouse every time"

# Marks the moment of the click (capture phase: before Gradio's own handler runs).
ARM = """() => document.querySelector('#generate-button').addEventListener(
    'click', () => { window.__clicked = performance.now(); }, {capture: true})"""
# Milliseconds from the click once the gallery shows a different image, loaded and laid out; false until then.
SHOWN = """old => {
    const img = document.querySelector('#out-gallery img');
    const shown = img && img.src !== old && img.complete && img.naturalWidth > 0 && img.getClientRects().length > 0;
    return shown ? performance.now() - window.__clicked : false;
}"""


@contextmanager
def chromium() -> Browser:
    """Debian's Chromium, headless, with the flags it needs here."""
    if not Path(CHROMIUM).exists():
        raise SystemExit("Chromium is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def running_app(**env: str):
    """`python app.py` on a free port with a fresh data folder and these environment variables; yields its URL."""
    with tempfile.TemporaryDirectory() as home, tempfile.TemporaryDirectory() as gradio_tmp:
        process, url = start_app(app_env(NANOBANANA_HOME=home, GRADIO_TEMP_DIR=gradio_tmp, **env))
        try:
            yield url
        finally:
            stop_app(process)


def click_to_image(page: Page, prompt: str) -> float:
    """Type the prompt, click Generate and return the milliseconds until the new image is shown."""
    image = page.locator("#out-gallery img")
    old = image.first.get_attribute("src") if image.count() else None
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#generate-button").click()
    return page.wait_for_function(SHOWN, arg=old, polling=5, timeout=60_000).json_value()


def measure(page: Page, rounds: int) -> dict[str, list[float]]:
    page.evaluate(ARM)
    click_to_image(page, "warm-up")  # the app's first call opens its API client
    click_to_image(page, HIT_PROMPT)  # from now on a cache hit
    times: dict[str, list[float]] = {"miss": [], "hit": []}
    for i in range(rounds):
        # A miss, then a hit: each click replaces a different image, so "shown" is always the new one.
        times["miss"].append(click_to_image(page, f"a new prompt, round {i}"))
        times["hit"].append(click_to_image(page, HIT_PROMPT))
        status = page.locator("#status").inner_text()
        assert "cached · $0" in status, f"not a cache hit: {status}"
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    # A key and a base URL: the app calls this emulator, which counts the calls. Client-side limits out of the way.
    with GeminiEmulator() as emulator, running_app(GEMINI_API_KEY="bench", NANOBANANA_BASE_URL=emulator.base_url,
                                                   NANOBANANA_RPM="100000", NANOBANANA_RPD="100000") as url, \
            chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        page.locator("#generate-button").wait_for()
        times = measure(page, args.rounds)
        calls = len(emulator.generate_requests)
    med = {name: statistics.median(values) for name, values in times.items()}
    print(f"rounds: {args.rounds}; emulator generateContent calls: {calls} (2 before the rounds + 1 per miss; "
          "hits must add none)")
    for name in ("miss", "hit"):
        values = times[name]
        print(f"click -> image shown, cache {name:4}  median {med[name]:7.1f} ms  (min {min(values):.1f}, "
              f"max {max(values):.1f})")
    print(f"hit / miss ratio:  {med['hit'] / med['miss']:.3f}")
    print(f"miss - hit:        {med['miss'] - med['hit']:.1f} ms (the API call, cache store and save)")


if __name__ == "__main__":
    main()
