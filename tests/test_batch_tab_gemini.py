"""The Batch tab's Gemini Batch Mode, through its handlers against the emulator (batch clock sped up): submit
returns at once and never twice, Refresh polls until SUCCEEDED, Fetch writes and shows the images, Cancel, the
jobs list after a restart, the estimate side by side, and refusals on Vertex AI and in public mode."""

from __future__ import annotations

import asyncio
import json
import re
import zipfile
from pathlib import Path

import gradio as gr
import pytest
from conftest import TEST_KEY, in_studio, page_for_handlers
from test_vertex import rsa_keys, vertex_settings  # noqa: F401 (fixtures)

from nanobanana_ui.ui.batch_mode import BATCH_MODE, HEADERS, INTERACTIVE, GeminiJobs, age_text
from nanobanana_ui.ui.batch_runs import BatchState
from nanobanana_ui.ui.batch_tab import BatchPage, BatchTab
from nanobanana_ui.ui.controls import AUTO, IMAGE_AND_TEXT

FAST = 0.3  # the emulator's seconds per batch state


@pytest.fixture
def fast_settings(settings, emulator):
    """Settings pointed at the emulator, polling 100x faster, the emulator's batch clock FAST."""
    emulator.batches.seconds_per_state = FAST
    return settings.with_overrides(batch_poll_scale=0.01)


def visitor(name: str = "a") -> gr.Request:
    return gr.Request(session_hash=name)


def jobs_of(studio) -> GeminiJobs:
    return GeminiJobs(BatchPage(studio))


def creates(emulator) -> list:
    return [r for r in emulator.requests if r.path.endswith(":batchGenerateContent")]


async def refresh_until(jobs: GeminiJobs, name: str, state: str) -> dict:
    """Refresh (the tab's button) until the picked job shows `state`; a bounded wait, never a time assertion."""
    for _ in range(200):
        views = await jobs.refresh(name, "", visitor())
        if any(row[1] == state for row in views["jobs"]["value"]):
            return views
        await asyncio.sleep(0.05)
    raise AssertionError(f"the job never reached {state}: {views['jobs']}")


def test_submit_returns_at_once_then_refresh_fetch_and_the_list_after_a_restart(fast_settings, emulator):
    text = "a red fox\nan owl at night\n"
    emulator.batches.seconds_per_state = 60  # pending while it is clicked twice and fetched early

    async def scenario(studio):
        jobs = jobs_of(studio)
        first = await jobs.submit(None, text, aspect_ratio="16:9", request=visitor())
        again = await jobs.submit(None, text, aspect_ratio="16:9", request=visitor())  # a second click
        name = first["job"]["value"]
        early = await jobs.fetch(name, "", visitor())  # before it is over: its state, nothing written
        emulator.batches.seconds_per_state = FAST
        refreshed = await refresh_until(jobs, name, "SUCCEEDED")
        fetched = await jobs.fetch(name, "", visitor())
        return first, again, early, refreshed, fetched

    first, again, early, refreshed, fetched = in_studio(fast_settings, scenario)
    assert len(emulator.batches.jobs) == 1 and len(creates(emulator)) == 1  # never twice
    job = emulator.batches.jobs[0]
    assert first["summary"].startswith(f"**Submitted to Gemini Batch Mode** as `{job.name}` (PENDING): 2 request(s)")
    assert "$0.0387 at the batch price" in first["summary"]  # 2 × $0.0387 / 2
    assert first["jobs"]["value"][0][:4] == [job.name, "PENDING", first["jobs"]["value"][0][2], 2]
    assert "already submitted" in again["summary"] and "nothing was sent again" in again["summary"]
    sent = creates(emulator)[0].body["batch"]["inputConfig"]["requests"]["requests"]
    assert [r["metadata"]["key"] for r in sent] == ["row-1-v0", "row-2-v0"]
    assert sent[0]["request"]["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}
    assert sent[1]["request"]["contents"][0]["parts"][0]["text"] == "an owl at night"
    assert "is PENDING" in early["summary"] or "is RUNNING" in early["summary"]
    assert "gallery" not in early
    polled = refreshed["jobs"]["value"][0]
    assert polled[1] == "SUCCEEDED" and polled[4] == 0  # polled (state), not fetched yet (done)

    assert len(fetched["gallery"]) == 2 and all(Path(p).is_file() for p, _ in fetched["gallery"])
    assert fetched["gallery"][0][1] == "line 1: a red fox"
    folder = Path(fetched["gallery"][0][0]).parent
    lines = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert {(line["status"], line["job"]) for line in lines} == {("done", job.name)}
    assert sum(line["cost_usd"] for line in lines) == pytest.approx(0.0387, abs=1e-4)  # half of 2 × $0.0387
    archive = fetched["archive"]["value"]
    assert fetched["archive"]["visible"] and Path(archive).parent == fast_settings.home / "batches"
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
    assert "manifest.jsonl" in names and sum(n.endswith(".png") for n in names) == 2
    row = fetched["jobs"]["value"][0]
    assert row[1] == "SUCCEEDED" and row[4:7] == [2, 0, "$0.0387"]

    async def restarted(studio):  # a new Studio and tab over the same data directory
        jobs = jobs_of(studio)
        listed = jobs.listing()
        again = await jobs.fetch(listed["job"]["value"], "", visitor())  # finished: shown from disk, no call
        return listed, again

    calls = len(emulator.requests)
    listed, shown = in_studio(fast_settings, restarted)
    rows = listed["jobs"]["value"]
    assert rows == [[job.name, "SUCCEEDED", rows[0][2], 2, 2, 0, "$0.0387", "pasted-prompts.txt", folder.name]]
    assert listed["job"]["choices"][0][1] == job.display_name
    assert len(shown["gallery"]) == 2 and f"Job `{job.name}` is SUCCEEDED" in shown["summary"]
    assert len(emulator.requests) == calls  # the list and a finished job's results come from disk


def test_cancel_a_pending_job_from_the_list(fast_settings, emulator, tmp_path):
    emulator.batches.seconds_per_state = 60
    upload = tmp_path / "shots.csv"
    upload.write_text("prompt,count\na mug,2\na lamp,1\n")

    async def scenario(studio):
        jobs = jobs_of(studio)
        submitted = await jobs.submit(str(upload), "", request=visitor())
        name = submitted["job"]["value"]
        cancelled = await jobs.cancel(name, "", visitor())
        return submitted, cancelled

    submitted, cancelled = in_studio(fast_settings, scenario)
    job = emulator.batches.jobs[0]
    assert len(job.requests) == 3 and submitted["jobs"]["value"][0][-2] == "shots.csv"
    assert any(r.path.endswith(f"{job.name}:cancel") for r in emulator.requests)
    assert cancelled["jobs"]["value"][0][1] == "CANCELLED"
    assert "3 without a result" in cancelled["summary"]
    with pytest.raises(gr.Error, match="already finished"):
        in_studio(fast_settings, lambda studio: jobs_of(studio).cancel(submitted["job"]["value"], "", visitor()))


def test_the_tabs_run_in_batch_mode_and_the_estimate_side_by_side(fast_settings, emulator):
    text = "a red fox\n"

    async def scenario(studio):
        page = BatchPage(studio)
        with page_for_handlers():
            tab = BatchTab(page)
            tab.layout()
        estimate = await page.estimate(None, text)
        updates = [u async for u in tab.run_clicked(None, text, "", AUTO, "", 1.0, 0.95, 0, -1, IMAGE_AND_TEXT,
                                                    "", BatchState(), BATCH_MODE, visitor())]
        return tab, estimate, updates

    tab, estimate, updates = in_studio(fast_settings, scenario)
    assert re.search(r"estimated cost \$0\.0387 now, at the rate limit · \$0\.019\d in Gemini Batch Mode", estimate)
    assert len(updates) == 1 and len(emulator.batches.jobs) == 1 and emulator.generate_requests == []
    assert "Submitted to Gemini Batch Mode" in updates[0][tab.summary]
    assert tab.jobs.headers == HEADERS and tab.mode.choices[0][0] == INTERACTIVE and tab.mode.visible


def test_batch_mode_is_refused_on_vertex_with_the_services_message(vertex_settings, emulator):  # noqa: F811
    with pytest.raises(gr.Error, match="Gemini Batch Mode does not exist on Vertex AI"):
        in_studio(vertex_settings, lambda studio: jobs_of(studio).submit(None, "a red fox", request=visitor()))
    assert emulator.batches.jobs == [] and emulator.generate_requests == []
    estimate = in_studio(vertex_settings, lambda studio: BatchPage(studio).estimate(None, "a red fox"))
    assert "Gemini Batch Mode" not in estimate


def test_public_mode_offers_no_batch_mode(fast_settings, emulator):
    public = fast_settings.with_overrides(public=True)

    async def scenario(studio):
        page = BatchPage(studio)
        with page_for_handlers():
            tab = BatchTab(page)
            tab.layout()
        estimate = await page.estimate(None, "a red fox", api_key=TEST_KEY, request=visitor())
        return tab, estimate

    tab, estimate = in_studio(public, scenario)
    assert not tab.mode.visible and not tab.jobs_page.offered and "Gemini Batch Mode" not in estimate
    with pytest.raises(gr.Error, match="not offered on this public demo"):
        in_studio(public, lambda studio: jobs_of(studio).submit(None, "a red fox", request=visitor()))
    assert emulator.batches.jobs == []


def test_age_text():
    assert [age_text(s) for s in (5, 600, 7200, 3 * 86400)] == ["5 s", "10 min", "2 h", "3 d"]


def test_a_cli_job_outside_the_data_directory_is_fetched_into_its_folder_and_zipped(fast_settings, emulator, tmp_path,
                                                                                  monkeypatch, capsys):
    from test_gemini_batch import cli_env

    from nanobanana_ui.cli.main import main

    emulator.batches.seconds_per_state = 60
    for name, value in cli_env(emulator, fast_settings.home).items():
        monkeypatch.setenv(name, value)
    prompts = tmp_path / "cats.txt"
    prompts.write_text("a cat\na dog\n")
    assert main(["batch", str(prompts), "--gemini-batch", "--no-wait", "--out", str(tmp_path / "cli-out")]) == 0
    capsys.readouterr()
    emulator.batches.set_state(emulator.batches.jobs[0].name, "SUCCEEDED")

    async def scenario(studio):
        jobs = jobs_of(studio)
        name = jobs.listing()["job"]["value"]
        return await jobs.fetch(name, "", visitor())

    fetched = in_studio(fast_settings, scenario)
    assert fetched["gallery"] == [] and "2 image(s) in" in fetched["progress"]  # not served: only in the ZIP
    assert len(list((tmp_path / "cli-out").glob("*.png"))) == 2
    with zipfile.ZipFile(fetched["archive"]["value"]) as zipped:
        assert sum(n.endswith(".png") for n in zipped.namelist()) == 2
    assert fetched["jobs"]["value"][0][-2:] == ["cats.txt", "cli-out"]


def test_a_click_on_a_row_picks_its_job(fast_settings, emulator):
    emulator.batches.seconds_per_state = 60

    async def scenario(studio):
        jobs = jobs_of(studio)
        await jobs.submit(None, "a red fox", request=visitor())
        await jobs.submit(None, "an owl", request=visitor())
        return jobs.listing(), jobs.picked(1), jobs.picked(5)

    listed, second_row, beyond = in_studio(fast_settings, scenario)
    owl, fox = emulator.batches.jobs[1], emulator.batches.jobs[0]
    assert [row[0] for row in listed["jobs"]["value"]] == [owl.name, fox.name]  # newest first
    assert second_row["value"] == fox.display_name
    assert beyond == gr.skip()  # a row the list no longer has: the picker stays as it was
