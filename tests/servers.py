"""Start and stop `python app.py` as a user would, for the API and browser tests."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Debian's Chromium, headless, with nothing that calls out (the machine's network is closed; see FACTS.md).
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
WAIT_MS = 20_000  # how long a browser test waits for the page: generous, since CI may share the machine


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def app_env(**extra: str) -> dict[str, str]:
    """This process's environment without any key, base URL, data dir or Gradio setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE", "NANO", "GRADIO"))}
    env.update(extra)
    return env


def start_app(env: dict[str, str], *args: str) -> tuple[subprocess.Popen, str]:
    """Start `python app.py` on a free port and wait until it answers HTTP 200."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port), *args], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"app.py exited: {process.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return process, url
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError("app.py did not answer within 90 s")


def stop_app(process: subprocess.Popen) -> str:
    """Stop the app and return everything it printed."""
    process.terminate()
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


def emulator_app_env(emulator, tmp_path_factory, **extra: str) -> dict[str, str]:
    """The app's environment: API calls to `emulator`, a fresh data and Gradio temp dir, then `extra` (which wins)."""
    env = {"NANOBANANA_BASE_URL": emulator.base_url}
    if "NANOBANANA_HOME" not in extra:
        env["NANOBANANA_HOME"] = str(tmp_path_factory.mktemp("home"))
    env["GRADIO_TEMP_DIR"] = str(tmp_path_factory.mktemp("gradio"))
    return app_env(**env, **extra)


@contextmanager
def running_app(env: dict[str, str], *secrets: str) -> Iterator[str]:
    """`python app.py` for the block: yields its URL; afterwards its log must hold no traceback and no secret."""
    process, url = start_app(env)
    try:
        yield url
    finally:
        log = stop_app(process)
    assert "Traceback" not in without_client_hang_ups(log), log
    assert not [secret for secret in secrets if secret in log], "a key was printed to the app's log"


def without_client_hang_ups(log: str) -> str:
    """The log minus the tracebacks Gradio prints when a browser hangs up mid-upload (a test's page closed while
    an upload was in flight): the client's doing, not an error of the app."""
    return re.sub(r"ERROR: +Exception in ASGI application\n(?:[ \t].*\n|Traceback.*\n)*?"
                  r"starlette\.requests\.ClientDisconnect\n?", "", log)


@contextmanager
def chromium() -> Iterator[object]:
    """Debian's Chromium through Playwright, headless, for one test module."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "Chromium is missing: apt-get install -y chromium"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_studio(page, url: str):
    """Point `page` at the app and wait until the Studio tab is ready; the page, with the tests' waiting time."""
    from playwright.sync_api import expect

    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    page.goto(url)
    expect(page.locator("#generate-button")).to_be_visible()
    return page


def visit(browser, url: str, width: int = 1280, height: int = 1000):
    """A new browser context (a new Gradio session: a new visitor) showing the app at this window size."""
    return open_studio(browser.new_context(viewport={"width": width, "height": height}).new_page(), url)
