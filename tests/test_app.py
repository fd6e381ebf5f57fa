"""The web app as users start it (`python app.py`) and as API clients see it (gradio_client, named endpoints)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from nanobanana_ui.emulator import GeminiEmulator

ROOT = Path(__file__).resolve().parents[1]
UI_KEY = "ui-test-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
    process.terminate()
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    return output


@pytest.fixture(scope="module")
def module_emulator():
    with GeminiEmulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def app_url(module_emulator, tmp_path_factory):
    """The app with a key, its API calls sent to the test's emulator through NANOBANANA_BASE_URL."""
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE", "NANO", "GRADIO"))}
    env.update(GEMINI_API_KEY=UI_KEY, NANOBANANA_BASE_URL=module_emulator.base_url, NANOBANANA_HOME=str(home))
    process, url = start_app(env)
    yield url
    log = stop_app(process)
    assert UI_KEY not in log


def test_generate_endpoint_returns_the_saved_png_and_status(app_url, module_emulator):
    from gradio_client import Client

    module_emulator.reset()
    client = Client(app_url, verbose=False)
    gallery, status = client.predict("a red fox", "16:9", api_name="/generate")
    [sent] = module_emulator.generate_requests
    assert sent.prompt == "a red fox" and sent.api_key == UI_KEY
    assert sent.generation_config["imageConfig"]["aspectRatio"] == "16:9"
    with Image.open(gallery[0]["image"]) as image:
        assert image.format == "PNG" and image.size == (1344, 768)
    assert "$0.0387" in status and "STOP" in status
    _, again = client.predict("a red fox", "16:9", api_name="/generate")
    assert "cached · $0" in again and len(module_emulator.generate_requests) == 1


def test_service_errors_reach_the_client_as_messages(app_url, module_emulator):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from nanobanana_ui.emulator import Fault

    module_emulator.reset()
    module_emulator.fail_next(Fault.blocked("SAFETY"))
    with pytest.raises(AppError, match=r"blocked the prompt \(SAFETY\)"):
        Client(app_url, verbose=False).predict("something", "1:1", api_name="/generate")


def test_offline_app_serves_the_banner(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE", "NANO", "GRADIO"))}
    env.update(NANOBANANA_HOME=str(tmp_path))
    process, url = start_app(env)
    try:
        with urllib.request.urlopen(url + "config", timeout=10) as response:
            assert b"Offline mode" in response.read()
    finally:
        stop_app(process)
