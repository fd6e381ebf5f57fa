"""Shared fixtures: a clean environment, an emulator per test, and a Studio pointed at it."""

from __future__ import annotations

import sys

# Compiled and assertion-rewritten modules are cached in __pycache__ even where PYTHONDONTWRITEBYTECODE is set (this
# machine sets it): otherwise every worker of every run compiles the package and rewrites every test module again,
# about 3.5 s of CPU per worker (docs/development.md). Set before the package is imported below.
sys.dont_write_bytecode = False

import asyncio
import contextlib
import gc
import importlib.abc
import importlib.machinery
import io
import os
from unittest import mock


class _GradioWithoutStubWriting(importlib.abc.MetaPathFinder):
    """Loads `gradio.component_meta` without `create_or_modify_pyi`, which parses the source of each of Gradio's 80
    component classes as they are created, to write `.pyi` stubs into site-packages: 1.05 of the 2.5 s of CPU that
    importing Gradio takes, in every worker (docs/development.md; the `python app.py` the tests start still pay it).
    The stubs are for Gradio's own editors; no page, event or test depends on them."""

    def find_spec(self, name, path, target=None):
        """The module's usual spec, whose loader drops the stub writer once the module has run."""
        if name != "gradio.component_meta":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run_module = spec.loader.exec_module

        def exec_module(module):
            run_module(module)
            module.create_or_modify_pyi = lambda *args, **kwargs: None

        spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _GradioWithoutStubWriting())

# Tests never touch the internet: Gradio's usage analytics (on unless told, read when gradio is imported) and the
# Hugging Face Hub's telemetry would try to, from every test that builds a page, and a worker would wait for those
# threads as it exits.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


def _temporary_folders_in_memory() -> None:
    """Tests' temporary folders go to /dev/shm (memory) where it has room: a run makes about 6,000 folders and 6,500
    files (histories, caches, outputs) and removes an earlier run's as many, at ~150 us an unlink on this disk, and
    every history write is fsynced; 4-5 s less wall time per inner loop (docs/development.md). A developer's own
    PYTEST_DEBUG_TEMPROOT (pytest's setting) or a small /dev/shm keeps the usual folder."""
    shm = "/dev/shm"
    if "PYTEST_DEBUG_TEMPROOT" in os.environ or not os.path.isdir(shm) or not os.access(shm, os.W_OK):
        return
    room = os.statvfs(shm)
    if room.f_bavail * room.f_frsize >= 8 * 2**30:  # three full runs' folders are kept: about 1.3 GB
        os.environ["PYTEST_DEBUG_TEMPROOT"] = shm


_temporary_folders_in_memory()

import pytest
from PIL import Image

from nanobanana_ui.domain.config import Settings
from nanobanana_ui.emulator import GeminiEmulator
from nanobanana_ui.service.studio import Studio

TEST_KEY = "test-key-not-secret"
FLASH_25 = "gemini-2.5-flash-image"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """No test sees the developer's keys, Vertex switches, base URLs, data dir or .env file."""
    for name in list(os.environ):
        if name.startswith(("GOOGLE_GENAI_", "GOOGLE_CLOUD_", "NANOBANANA_")) or name in (
            "GEMINI_API_KEY", "GOOGLE_API_KEY", "NANO_BANANA_API_KEY", "GOOGLE_GEMINI_BASE_URL",
        ):
            monkeypatch.delenv(name)
    # Nor the developer's own ~/.nanobanana/models.json (a user registry is merged over the shipped one).
    monkeypatch.setenv("NANOBANANA_MODELS", str(tmp_path / "no-user-models.json"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def keyed_env(monkeypatch, emulator, tmp_path):
    """The environment of a user with a key and a relay (the emulator) in GOOGLE_GEMINI_BASE_URL."""
    monkeypatch.setenv("GEMINI_API_KEY", TEST_KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.base_url)
    monkeypatch.setenv("NANOBANANA_HOME", str(tmp_path / "home"))
    return emulator


@pytest.fixture
def emulator():
    """A fresh emulator on a free loopback port."""
    with GeminiEmulator() as emu:
        yield emu


@pytest.fixture(scope="module")
def module_emulator():
    """One emulator for a whole test module (for modules that start `python app.py` once)."""
    with GeminiEmulator() as emu:
        yield emu


@pytest.fixture
def emu(module_emulator):
    """The module's emulator with no recorded requests and no pending faults (test_emulator has its own `emu`)."""
    module_emulator.reset()
    return module_emulator


@pytest.fixture
def settings(emulator, tmp_path) -> Settings:
    """Settings as a user with a key and a relay base URL would have them, pointed at the emulator.

    One attempt per request, so a scripted failure surfaces as its error; the retry tests set their own. The model is
    Nano Banana (2.5 Flash, 1K only, 3 inputs, $0.0387 an image): many tests rely on its fixed, simple capabilities;
    the default (gemini-nano-banana-2.1) has its own tests.
    """
    return Settings(api_key=TEST_KEY, base_url=emulator.base_url, home=tmp_path / "home", timeout_s=10, max_attempts=1,
                    model=FLASH_25)


def in_studio(settings: Settings, scenario, **studio_kwargs):
    """Run `await scenario(studio)` in a fresh event loop with a Studio that is closed afterwards."""

    async def main():
        async with Studio(settings, **studio_kwargs) as studio:
            return await scenario(studio)

    return asyncio.run(main())


@contextlib.contextmanager
def page_for_handlers():
    """A `gr.Blocks` to lay a tab out in, for a test that calls the tab's handlers itself: without the FastAPI app
    Gradio builds for every Blocks (twice: for its queue as it opens, and as it closes; about 90 ms of CPU each time,
    40 times a run), since this page is never served. The page users get is built whole by `python app.py` in
    test_app.py and the browser tests."""
    import gradio as gr
    from gradio.routes import App

    with mock.patch.object(App, "create_app", return_value=None), gr.Blocks() as page:
        yield page


def png_bytes(size=(64, 48), color=(200, 30, 30), mode="RGB") -> bytes:
    """A small PNG made in memory."""
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, format="PNG")
    return buffer.getvalue()


# Fixtures that start `python app.py` in a subprocess (several seconds each) or drive Chromium: the tests that use
# them (directly or through another fixture) are marked, so `-m "not browser and not slow"` leaves them out.
APP_PROCESS_FIXTURES = {"app_url", "public_app", "byok_app", "locked_app", "earlier_url", "offline_url"}
BROWSER_FIXTURES = {"page", "browser", "context", "new_context"}  # pytest-playwright's


def pytest_collection_modifyitems(config, items):
    """Mark every test that drives a browser `browser`, and every test that needs a running app `slow`."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        if used & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
        if used & APP_PROCESS_FIXTURES:
            item.add_marker(pytest.mark.slow)


def pytest_collection_finish(session):
    """Freeze what importing and collecting made (Gradio, pydantic, the SDK, the test items: about 280,000 objects),
    so the collector no longer walks it: not in a full collection during the run, nor in the two that pytest makes
    as each worker ends, all workers at once (docs/development.md)."""
    gc.collect()
    gc.freeze()


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: two workers per core for the inner loop (`-m "not browser and not slow"`), whose tests mostly wait on
    sockets and timers, so a second worker per core computes meanwhile; one more than the cores when the browser and
    slow tests run too, since Chromium and the app subprocesses compute but the browser tests also wait on the page
    (on 2 cores: 5 min 18 s with 3 workers, 6 min 0 s with 2; docs/development.md has the measured times)."""
    cores = os.cpu_count() or 1
    marks = config.option.markexpr or ""
    return 2 * cores if "not browser" in marks and "not slow" in marks else cores + 1


def pytest_configure(config):
    """Browser tests' failure screenshots (pytest-playwright's --output) go under the project, not under the
    temporary folder each test runs in (clean_env changes the working directory before the screenshot is taken)."""
    output = getattr(config.option, "output", None)
    if output and not os.path.isabs(output):
        config.option.output = str(config.rootpath / output)


def without_text_chunks(png: bytes) -> bytes:
    """A PNG's bytes minus its text chunks: what the API sent, if we only added our provenance (no re-encoding)."""
    import struct

    out, pos = bytearray(png[:8]), 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        end = pos + 12 + length
        if png[pos + 4:pos + 8] not in (b"tEXt", b"zTXt", b"iTXt"):
            out += png[pos:end]
        pos = end
    return bytes(out)
