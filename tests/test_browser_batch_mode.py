"""The Batch tab's Gemini Batch Mode in a real browser: the jobs list shows a job submitted before the app started
(it survives a restart), Refresh polls it to SUCCEEDED, Fetch shows its images and the ZIP; and Run in Batch Mode
submits one job and returns at once."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Page, expect
from servers import app_env, running_app
from test_browser import (  # noqa: F401 (fixtures: this module's Playwright and Chromium, as test_browser's)
    UI_KEY,
    WAIT_MS,
    browser,
    browser_context_args,
    browser_type_launch_args,
    playwright,
)

from nanobanana_ui.domain.config import Settings
from nanobanana_ui.service.studio import Studio
from nanobanana_ui.ui.batch_mode import BATCH_MODE, GeminiJobs
from nanobanana_ui.ui.batch_tab import BatchPage

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def batch_app(module_emulator, tmp_path_factory):
    """A data directory with one pending Gemini batch job (submitted by an earlier process), then the app on it."""
    module_emulator.batches.seconds_per_state = 60  # pending until the test speeds the clock up
    home = tmp_path_factory.mktemp("batch-home")
    settings = Settings(api_key=UI_KEY, base_url=module_emulator.base_url, home=home, timeout_s=10,
                        model="gemini-2.5-flash-image")

    async def submit() -> None:
        async with Studio(settings) as studio:
            await GeminiJobs(BatchPage(studio)).submit(None, "a batch mode fox\na batch mode owl\n")

    with ThreadPoolExecutor(1) as pool:  # Playwright's loop counts as running in this thread
        pool.submit(asyncio.run, submit()).result()
    env = app_env(GEMINI_API_KEY=UI_KEY, NANOBANANA_BASE_URL=module_emulator.base_url,
                  NANOBANANA_MODEL="gemini-2.5-flash-image", NANOBANANA_HOME=str(home),
                  GRADIO_TEMP_DIR=str(tmp_path_factory.mktemp("gradio-batch")))
    with running_app(env, UI_KEY) as url:
        yield url, module_emulator


def test_the_jobs_list_refreshes_and_fetches_a_job_then_run_submits_one(page: Page, batch_app):
    url, emu = batch_app
    job = emu.batches.jobs[0]
    page.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    page.goto(url)
    page.locator("#batch-tab-button").click()
    jobs = page.locator("#batch-jobs")
    expect(jobs).to_contain_text(job.name)
    expect(jobs).to_contain_text("PENDING")
    emu.batches.seconds_per_state = 0.05  # the job is over as soon as it is asked about
    page.locator("#batch-jobs-refresh").click()
    expect(jobs).to_contain_text("SUCCEEDED")
    page.locator("#batch-jobs-fetch").click()
    expect(page.locator("#batch-gallery .thumbnail-item")).to_have_count(2)
    expect(page.locator("#batch-summary")).to_contain_text("2 made")
    expect(page.locator("#batch-zip a.download-link").first).to_have_attribute(
        "download", re.compile(r"-a-batch-mode-fox\.zip$"))
    expect(jobs).to_contain_text("$0.0387")

    emu.batches.seconds_per_state = 60
    page.locator("#batch-text textarea").fill("a submitted cat")
    page.locator("#batch-run-mode").get_by_label(BATCH_MODE).check()
    page.locator("#batch-run-button").click()
    expect(page.locator("#batch-summary")).to_contain_text("Submitted to Gemini Batch Mode")
    assert len(emu.batches.jobs) == 2 and emu.generate_requests == []
    expect(jobs).to_contain_text(emu.batches.jobs[1].name)
