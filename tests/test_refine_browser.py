"""The Refine tab in Chromium: generate, open the result in Refine, refine twice, branch from an earlier turn, compare
on the slider, download the original, then reload the page and go on from the id (fixtures from test_browser.py).

The app runs on Nano Banana Pro (signatures on every image) against this module's strict emulator, which answers 400
to a multi-turn request whose model image lacks its signature: each refinement below getting an image is the proof
the page sent the path right. The test also reads what the emulator received (roles, instructions) and the history
on disk through the CLI (`history --tree`), as a visitor coming back tomorrow would find it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from servers import ROOT, app_env, emulator_app_env, open_studio, running_app
from test_browser import (  # noqa: F401 (fixtures)
    browser,
    browser_context_args,
    browser_type_launch_args,
    playwright,
)

UI_KEY = "refine-browser-key"
PRO = "gemini-3-pro-image"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="module")
def app_url(module_emulator, home, tmp_path_factory):
    """`python app.py` on Nano Banana Pro, its calls sent to this module's emulator."""
    env = emulator_app_env(module_emulator, tmp_path_factory, GEMINI_API_KEY=UI_KEY, NANOBANANA_MODEL=PRO,
                           NANOBANANA_HOME=str(home))
    with running_app(env, UI_KEY) as url:
        yield url


@pytest.fixture
def studio(page: Page, app_url) -> Page:
    return open_studio(page, app_url)


def cli(home: Path, *args: str) -> str:
    """The CLI on the app's data directory (another process, as a visitor's next day would be)."""
    env = app_env(NANOBANANA_HOME=str(home), GEMINI_API_KEY="unused-by-history")
    done = subprocess.run([sys.executable, "-m", "nanobanana_ui", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def refine(page: Page, instruction: str, turn: int) -> str:
    """Type an instruction, send it, wait for the new turn; its id."""
    page.locator("#refine-instruction textarea").fill(instruction)
    page.locator("#refine-button").click()
    expect(page.locator("#refine-status")).to_contain_text(f"Turn {turn} (refines ")
    expect(page.locator("#refine-summary")).to_contain_text(f"Turn {turn}")
    expect(page.locator("#refine-instruction textarea")).to_have_value("")
    return page.locator("#refine-id input").input_value()


def instructions(request) -> list[str]:
    """The user turns' texts of one recorded request, in order."""
    return [part.text for turn in request.turns if turn.role == "user" for part in turn.parts if part.text]


def test_generate_refine_branch_compare_reload_and_go_on(studio: Page, emu, home):
    page = studio
    page.locator("#prompt textarea").fill("a lighthouse at dusk")
    page.locator("#generate-button").click()
    expect(page.locator("#out-gallery img").first).to_be_visible()
    page.locator("#output-to-refine-button").click()

    # The Refine tab opens on the result: turn 1, one thumbnail, nothing to compare yet, the estimate shown.
    expect(page.locator("#refine-summary")).to_contain_text("Turn 1")
    root = page.locator("#refine-id input").input_value()
    assert root  # the id the page shows (its place in the tree is checked below, through the CLI)
    expect(page.locator("#refine-path .thumbnail-item")).to_have_count(1)
    expect(page.locator("#refine-estimate")).to_contain_text("Next: turn 2")
    expect(page.locator("#refine-estimate")).to_contain_text("input tokens")
    expect(page.locator("#refine-button")).to_have_text("Refine turn 1")

    second = refine(page, "make it night", 2)
    third = refine(page, "add a full moon", 3)
    expect(page.locator("#refine-path .thumbnail-item")).to_have_count(3)
    sent = emu.generate_requests
    assert len(sent) == 3
    assert [t.role for t in sent[2].turns] == ["user", "model", "user", "model", "user"]
    assert instructions(sent[2]) == ["a lighthouse at dusk", "make it night", "add a full moon"]
    assert all(part.signature for turn in sent[2].turns if turn.role == "model" for part in turn.parts
               if part.kind == "image")  # every model image went back with its signature

    # The slider compares the parent and the selected turn: two images.
    expect(page.locator("#refine-slider img")).to_have_count(2)

    # Branch from turn 2: click its thumbnail; the page says a new branch will start.
    page.locator("#refine-path .thumbnail-item").nth(1).click()
    expect(page.locator("#refine-id input")).to_have_value(second)
    expect(page.locator("#refine-button")).to_have_text("Branch from turn 2")
    expect(page.locator("#refine-branch-note")).to_contain_text("new branch")
    expect(page.locator("#refine-path .thumbnail-item")).to_have_count(3)  # the line stays
    branch = refine(page, "add falling snow", 3)
    assert branch != third
    assert instructions(emu.generate_requests[-1]) == ["a lighthouse at dusk", "make it night", "add falling snow"]
    assert emu.generate_requests[-1].turns[:4] == sent[2].turns[:4]  # the same path, byte for byte

    # Undo: back on turn 2, both branches listed.
    page.locator("#refine-undo").click()
    expect(page.locator("#refine-id input")).to_have_value(second)
    expect(page.locator("#refine-branches .thumbnail-item")).to_have_count(2)
    expect(page.locator("#refine-summary")).to_contain_text("2 branches from here")

    # Download original: the stored file itself, byte for byte (named by its content in the history).
    with page.expect_download() as download:
        page.locator("#refine-download").click()
    data = Path(download.value.path()).read_bytes()
    stored = list(home.rglob(f"{hashlib.sha256(data).hexdigest()}.*"))
    assert stored and stored[0].read_bytes() == data

    # Reload: a new page, nothing remembered but the id; the conversation goes on from the history.
    page.reload()
    expect(page.locator("#generate-button")).to_be_visible()
    page.locator("#refine-tab-button").click()
    page.locator("#refine-id input").fill(branch)
    page.locator("#refine-open").click()
    expect(page.locator("#refine-summary")).to_contain_text("Turn 3")
    expect(page.locator("#refine-path .thumbnail-item")).to_have_count(3)
    fourth = refine(page, "make it foggy", 4)
    last = emu.generate_requests[-1]
    assert [t.role for t in last.turns] == ["user", "model"] * 3 + ["user"]
    assert instructions(last) == ["a lighthouse at dusk", "make it night", "add falling snow", "make it foggy"]

    # The history on disk, as the CLI reads it: the tree with its two branches and the new turn.
    rows = {(row := json.loads(line))["id"]: row for line in cli(home, "history", "--json").splitlines()}
    assert (rows[second]["parent"], rows[third]["parent"], rows[branch]["parent"], rows[fourth]["parent"]) == \
        (root, second, second, branch)
    assert [rows[i]["turn"] for i in (root, second, third, branch, fourth)] == [1, 2, 3, 3, 4]
    tree = cli(home, "history", "--tree", root)
    assert all(word in tree for word in ("make it night", "add a full moon", "add falling snow", "make it foggy"))
