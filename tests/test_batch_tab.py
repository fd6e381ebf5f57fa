"""The Batch tab's handlers, in-process against the emulator: estimate (good and bad input), a run streaming its
results and zipped with its manifest, and Cancel: no new request is sent once it is clicked, and running the same
input again resumes in the same folder without re-sending what finished."""

from __future__ import annotations

import json
import re
import time
import zipfile
from pathlib import Path

import gradio as gr
import pytest
from conftest import in_studio

from nanobanana_ui.ui.batch_runs import BatchState
from nanobanana_ui.ui.batch_tab import BatchPage


class Progress:
    def __init__(self):
        self.calls = []

    def __call__(self, fraction, desc=None):
        self.calls.append((fraction, desc))


def visitor(name: str) -> gr.Request:
    return gr.Request(session_hash=name)


async def run_all(page: BatchPage, text: str | None = None, file: str | None = None, state: BatchState | None = None,
                  request: gr.Request | None = None, on_yield=None) -> list[tuple]:
    """Every update the Run handler yields, in order (on_yield(update) is awaited after each)."""
    updates = []
    async for update in page.run(file, text or "", state=state or BatchState(), request=request or visitor("a"),
                                 progress=Progress()):
        updates.append(update)
        if on_yield is not None:
            await on_yield(update)
    return updates


def manifest(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines() if line.strip()]


def test_estimate_says_items_requests_and_cost_and_sends_nothing(settings, emulator):
    text = "a red fox\n# a comment\n\nan owl at night\na lighthouse\n"
    plan = in_studio(settings, lambda studio: BatchPage(studio).estimate(None, text))
    assert "**3 items, 3 requests**" in plan
    assert re.search(r"estimated cost \$0\.1\d{3}", plan)  # 3 × $0.0387 on the default model
    assert emulator.generate_requests == []
    assert not (settings.home / "batches").exists() or not any((settings.home / "batches").iterdir())


def test_estimate_lists_every_bad_row_with_its_line_number(settings, emulator, tmp_path):
    bad = tmp_path / "prompts.csv"
    bad.write_text("prompt,temperature\na fox,0.5\nan owl,hot\n,1.0\na cat,1.0\n")
    plan = in_studio(settings, lambda studio: BatchPage(studio).estimate(str(bad), ""))
    assert plan.startswith("**Nothing was sent")
    assert "line 3" in plan and "line 4" in plan and "line 2" not in plan and "line 5" not in plan
    assert emulator.generate_requests == []


def test_estimate_of_an_uploaded_jsonl_counts_each_rows_images(settings, emulator, tmp_path):
    upload = tmp_path / "products.jsonl"
    upload.write_text('{"prompt": "a mug", "count": 2, "name": "mug"}\n{"prompt": "a lamp", "size": "2K", '
                      '"model": "gemini-3.1-flash-image"}\n')
    plan = in_studio(settings, lambda studio: BatchPage(studio).estimate(str(upload), "ignored when a file is given"))
    assert "**2 items, 3 requests**" in plan and emulator.generate_requests == []
    with pytest.raises(gr.Error, match="Upload a prompt file or paste prompts"):
        in_studio(settings, lambda studio: BatchPage(studio).estimate(None, "  \n"))


def test_run_streams_results_then_zips_images_and_manifest(settings, emulator):
    text = "a red fox\nan owl at night\na lighthouse\n"
    updates = in_studio(settings, lambda studio: run_all(BatchPage(studio), text))
    galleries = [len(update["gallery"]) for update in updates]
    assert galleries[0] == 0 and galleries[-1] == 3 and galleries == sorted(galleries)  # grows as results arrive
    assert len(updates) >= 5  # the plan, one per result, the summary
    last = updates[-1]
    gallery, progress, summary, archive, state = (last[k] for k in ("gallery", "progress", "summary", "archive",
                                                                     "state"))
    assert "**3 of 3** · 3 made · 0 cached · 0 failed" in progress
    assert summary.startswith("**Finished**: 3 made, 0 cached, 0 failed")
    assert len(emulator.generate_requests) == 3
    folder = Path(state.folder)
    assert folder.parent == settings.home / "batches" and re.fullmatch(r"\d{8}-\d{6}-a-red-fox", folder.name)
    assert state.complete
    shown = {Path(path) for path, _ in gallery}
    assert all(path.is_file() and path.parent == folder for path in shown)
    lines = manifest(folder)
    assert sorted(line["prompt"] for line in lines) == ["a lighthouse", "a red fox", "an owl at night"]
    assert {line["status"] for line in lines} == {"done"}
    with zipfile.ZipFile(archive["value"]) as zipped:
        names = set(zipped.namelist())
        assert names == {"manifest.jsonl", *(path.name for path in shown)}
        assert zipped.read("manifest.jsonl") == (folder / "manifest.jsonl").read_bytes()
        assert all(zipped.read(path.name) == path.read_bytes() for path in shown)


def test_cancel_stops_sending_and_the_same_input_again_resumes(settings, emulator):
    emulator.delay_s = 0.4  # slow calls: the run is still sending when Cancel is clicked
    prompts = [f"prompt number {n}" for n in range(10)]
    text = "\n".join(prompts)
    clicked: dict = {}

    async def scenario(studio):
        page = BatchPage(studio, concurrency=2)

        async def cancel_after_first_result(update):
            if update["gallery"] and not clicked:
                with pytest.raises(gr.Error, match="already running"):  # Run clicked again: one batch per page
                    await anext(page.run(None, text, request=visitor("a"), progress=Progress()))
                with pytest.warns(UserWarning, match="nothing to cancel"):  # a toast: never a silent button
                    clicked["other"] = await page.cancel(visitor("b"))  # another visitor cancels nothing of ours
                clicked["message"] = await page.cancel(visitor("a"))
                clicked["at"] = time.monotonic()
                clicked["sent"] = len(emulator.generate_requests)

        first = await run_all(page, text, on_yield=cancel_after_first_result)
        sent_first = list(emulator.generate_requests)
        clicked["manifest"] = manifest(Path(first[-1]["state"].folder))
        second = await run_all(page, text, state=first[-1]["state"])
        return first, sent_first, second

    first, sent_first, second = in_studio(settings, scenario)
    assert clicked["other"] == "No batch is running." and clicked["message"].startswith("Cancelling")
    late = [r for r in sent_first if r.received_at > clicked["at"]]
    assert len(late) <= 2, late  # at most what was being sent as Cancel was clicked (concurrency 2)
    assert len(sent_first) < len(prompts) and len(sent_first) <= clicked["sent"] + 2
    summary, archive, state = first[-1]["summary"], first[-1]["archive"], first[-1]["state"]
    assert summary.startswith("**Cancelled**") and "not started" in summary and not state.complete
    folder = Path(state.folder)
    assert len(clicked["manifest"]) == len(sent_first)  # every request sent finished and was written down
    with zipfile.ZipFile(archive["value"]) as zipped:
        assert "manifest.jsonl" in zipped.namelist()

    # The same input again: the same folder, only what is missing is sent, nothing twice.
    summary, again = second[-1]["summary"], second[-1]["state"]
    assert Path(again.folder) == folder and again.complete
    sent = [r.prompt for r in emulator.generate_requests]
    assert sorted(sent) == sorted(prompts)
    assert summary.startswith("**Finished**") and f"{len(sent_first)} from an earlier run" in summary


def test_results_are_captioned_by_file_line_so_a_comment_first_is_not_a_missing_row(settings, emulator):
    updates = in_studio(settings, lambda studio: run_all(BatchPage(studio, concurrency=1),
                                                         "# my foxes\na red fox\n"))
    captions = [caption for _, caption in updates[-1]["gallery"]]
    assert captions == ["line 2: a red fox"]
