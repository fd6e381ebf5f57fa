"""Gemini Batch Mode: the emulator's batch and Files API through the real SDK, submit/fetch/resume, never twice."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEST_KEY, in_studio
from google import genai
from google.genai import types
from servers import ROOT, app_env

from nanobanana_ui.backends.tls import shared_client_args
from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.config import load_settings
from nanobanana_ui.domain.costs import cost_from_usage
from nanobanana_ui.domain.errors import InputError
from nanobanana_ui.domain.models import get_model
from nanobanana_ui.domain.request import Usage
from nanobanana_ui.emulator import Fault
from nanobanana_ui.service.batch import GeminiBatches, plan_batch, read_batch_file, run_batch
from nanobanana_ui.service.batch.gemini_api import poll_delays
from nanobanana_ui.service.batch.gemini_jobs import GeminiBatchRun
from nanobanana_ui.service.batch.gemini_journal import Journal

FAST = 0.3  # the emulator's seconds per batch state in these tests


@pytest.fixture
def fast_settings(settings, emulator):
    """Settings pointed at the emulator (with a key, so costs are priced), polling 100x faster, batch clock FAST."""
    emulator.batches.seconds_per_state = FAST
    return settings.with_overrides(batch_poll_scale=0.01)


def sdk_client(emulator) -> genai.Client:
    client_args, async_client_args = shared_client_args()  # not a new CA bundle load per client
    return genai.Client(api_key=TEST_KEY, vertexai=False,
                        http_options=types.HttpOptions(api_version="v1beta", base_url=emulator.base_url,
                                                       client_args=client_args, async_client_args=async_client_args))


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]


def write_file(tmp_path: Path, text: str, name: str = "shots.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run_gemini(settings, path: Path, out: Path, *, cancel: bool = False, **kwargs):
    """Plan the file and run it through Gemini Batch Mode in a fresh Studio; returns (summary, outcomes)."""
    outcomes = []
    wait = kwargs.pop("wait", True)

    async def scenario(studio):
        plan = plan_batch(studio, read_batch_file(path), out_dir=out)
        run = GeminiBatchRun(studio, plan, out_dir=out, on_outcome=outcomes.append, **kwargs)
        try:
            return await (run.cancel() if cancel else run.run(wait=wait))
        finally:
            await run.api.aclose()

    return in_studio(settings, scenario), outcomes


# The emulator, through the real SDK.

def test_emulator_batch_api_round_trip_through_the_sdk(emulator):
    emulator.batches.seconds_per_state = FAST
    emulator.batches.fail_keys = {"b"}
    client = sdk_client(emulator)
    config = types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"],
                                         image_config=types.ImageConfig(aspect_ratio="16:9"))
    job = client.batches.create(model="gemini-2.5-flash-image", src=[
        types.InlinedRequest(contents="a red fox", config=config, metadata={"key": "a"}),
        types.InlinedRequest(contents="a blue whale", metadata={"key": "b"})], config={"display_name": "run-1"})
    assert job.state == types.JobState.JOB_STATE_PENDING and job.display_name == "run-1"
    sent = emulator.requests[-1].body["batch"]
    assert sent["displayName"] == "run-1"
    first = sent["inputConfig"]["requests"]["requests"][0]
    assert first["metadata"] == {"key": "a"}
    assert first["request"]["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}
    states = set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = client.batches.get(name=job.name)
        states.add(got.state)
        if got.done:
            break
        time.sleep(0.05)
    assert {types.JobState.JOB_STATE_RUNNING, types.JobState.JOB_STATE_SUCCEEDED} <= states
    results = {r.metadata["key"]: r for r in got.dest.inlined_responses}
    assert results["a"].response.parts[-1].inline_data.mime_type == "image/png" and results["a"].error is None
    assert results["b"].response is None and results["b"].error.code == 13
    listed = list(client.batches.list())
    assert [j.display_name for j in listed] == ["run-1"]
    assert listed[0].dest is None or not listed[0].dest.inlined_responses  # a listing carries no results

    lines = "".join(json.dumps({"key": f"k{n}", "request": {"contents": [{"parts": [{"text": f"cat {n}"}]}]}}) + "\n"
                    for n in range(3)).encode()
    uploaded = client.files.upload(file=io.BytesIO(lines), config={"mime_type": "application/jsonl"})
    assert uploaded.size_bytes == len(lines)
    assert [r.headers.get("x-goog-upload-command") for r in emulator.requests[-2:]] == ["start", "upload, finalize"]
    file_job = client.batches.create(model="gemini-2.5-flash-image", src=uploaded.name, config={"display_name": "f"})
    time.sleep(FAST * 2.2)
    done = client.batches.get(name=file_job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED and done.dest.file_name.startswith("files/")
    data = client.files.download(file=done.dest.file_name)
    keys = [json.loads(line)["key"] for line in data.decode().splitlines()]
    assert keys == ["k0", "k1", "k2"]

    emulator.batches.seconds_per_state = 60
    slow = client.batches.create(model="gemini-2.5-flash-image", src=[{"contents": "x", "metadata": {"key": "x"}}])
    client.batches.cancel(name=slow.name)
    assert client.batches.get(name=slow.name).state == types.JobState.JOB_STATE_CANCELLED
    client.batches.delete(name=job.name)
    assert job.name not in [j.name for j in client.batches.list()]
    emulator.batches.set_state(file_job.name, "EXPIRED")
    assert client.batches.get(name=file_job.name).state == types.JobState.JOB_STATE_EXPIRED


def test_poll_intervals_back_off_to_at_least_30_s_after_the_first_minute():
    delays = poll_delays()
    elapsed, seen = 0.0, []
    for _ in range(20):
        delay = next(delays)
        seen.append((elapsed, delay))
        elapsed += delay
    assert seen[0][1] == 5.0
    assert all(d >= 30.0 for t, d in seen if t >= 60.0) and max(d for _, d in seen) <= 120.0
    assert next(poll_delays(0.01)) == pytest.approx(0.05)


# Submit, watch, fetch.

def test_input_lines_equal_the_sdks_own_conversion(fast_settings, tmp_path):
    from conftest import png_bytes

    from nanobanana_ui.domain.request import ImageOptions, Mode
    from nanobanana_ui.quota.retry import RetryPolicy
    from nanobanana_ui.service.batch.gemini_api import BatchApi, WireLines, file_line

    (tmp_path / "in.png").write_bytes(png_bytes())

    async def scenario(studio):
        api = BatchApi(fast_settings, policy=RetryPolicy())
        try:
            fast = WireLines(api.client)
            lines = []
            for n, options in enumerate([ImageOptions(aspect_ratio="16:9", seed=3, temperature=0.5),
                                         ImageOptions(aspect_ratio="16:9", seed=3, temperature=0.5, variation=2),
                                         ImageOptions(size=None, with_text=False)]):
                request = studio.build_request(Mode.EDIT, f"make it blue {n}", [tmp_path / "in.png"], options=options)
                lines.append((fast.line(request, f"k{n}"), file_line(api.client, request, f"k{n}")))
            return lines
        finally:
            await api.aclose()

    for quick, sdk in in_studio(fast_settings, scenario):
        assert json.loads(quick) == json.loads(sdk)


def test_inline_job_writes_every_row_like_the_interactive_batch_at_half_price(fast_settings, emulator, tmp_path):
    path = write_file(tmp_path, "prompt,count,aspect_ratio\na red fox,2,16:9\na blue whale,1,\n")
    out = tmp_path / "run"
    summary, outcomes = run_gemini(fast_settings, path, out)
    assert summary.finished and summary.state == "JOB_STATE_SUCCEEDED"
    assert (summary.done, summary.failed, summary.submitted) == (3, 0, 3)
    [job] = emulator.batches.jobs
    assert job.keys == ["row-2-v0", "row-2-v1", "row-3-v0"] and not job.from_file
    assert job.requests[0][1]["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9"}
    assert emulator.generate_requests == []  # nothing went the interactive way
    lines = manifest(out)
    assert {(line["row"], line["variation"]) for line in lines} == {(2, 0), (2, 1), (3, 0)}
    spec = get_model(fast_settings.model)
    for line in lines:
        assert line["status"] == "done" and line["job"] == job.name and (out / line["paths"][0]).is_file()
        full = cost_from_usage(spec, Usage(prompt_tokens=line["tokens"]["prompt"],
                                           output_tokens=line["tokens"]["output"]))
        assert 0 < line["cost_usd"] < full  # below the interactive price (exactly half: the next test)
    assert summary.cost_usd == pytest.approx(sum(line["cost_usd"] for line in lines))

    async def look(studio):
        entries = studio.history.page(limit=10)
        hits = [studio.cache.lookup(line["key"]) for line in lines]
        return entries, hits

    entries, hits = in_studio(fast_settings, look)
    assert len(entries) == 3 and all(h is not None for h in hits)
    assert sorted(round(e.cost_usd, 6) for e in entries) == sorted(round(line["cost_usd"], 6) for line in lines)
    again, _ = run_gemini(fast_settings, path, out)  # everything done: nothing new is submitted
    assert len(emulator.batches.jobs) == 1 and again.earlier == 3 and again.submitted == 0


def test_batch_cost_is_half_the_interactive_cost_of_the_same_answer(fast_settings, emulator, tmp_path):
    path = write_file(tmp_path, "prompt,seed\nsame picture,7\n")
    run_gemini(fast_settings, path, tmp_path / "batch")
    batch_line = manifest(tmp_path / "batch")[0]

    async def interactive(studio):
        plan = plan_batch(studio, read_batch_file(path), out_dir=tmp_path / "now")
        return await run_batch(studio, plan, out_dir=tmp_path / "now", use_cache=False)

    in_studio(fast_settings, interactive)
    now_line = manifest(tmp_path / "now")[0]
    assert batch_line["tokens"] == now_line["tokens"]
    assert batch_line["cost_usd"] == pytest.approx(now_line["cost_usd"] / 2, abs=1e-6)


def test_file_job_uploads_jsonl_and_streams_the_result_file(fast_settings, emulator, tmp_path):
    path = write_file(tmp_path, "".join(f"scene {n}\n" for n in range(1, 6)), "scenes.txt")
    out = tmp_path / "run"
    summary, _ = run_gemini(fast_settings, path, out, inline_limit_bytes=0)
    assert summary.done == 5 and summary.failed == 0
    [job] = emulator.batches.jobs
    assert job.from_file and job.keys == [f"row-{n}-v0" for n in range(1, 6)]
    paths = [r.path for r in emulator.requests]
    assert "/upload/v1beta/files" in paths and any(p.endswith(":download") for p in paths)
    assert job.requests[2][1]["contents"][0]["parts"][0]["text"] == "scene 3"
    assert {line["row"] for line in manifest(out) if line["status"] == "done"} == set(range(1, 6))
    assert not (out / ".gemini_results.jsonl").exists() and not (out / ".gemini_input.jsonl").exists()


def test_a_job_over_the_file_limit_is_refused_with_the_numbers(fast_settings, emulator, tmp_path):
    path = write_file(tmp_path, "one\ntwo\n", "big.txt")
    with pytest.raises(InputError, match=r"over Gemini Batch Mode's .* file limit: split the file into at least 2"):
        run_gemini(fast_settings, path, tmp_path / "run", inline_limit_bytes=0, file_limit_bytes=200)
    assert emulator.batches.jobs == [] and emulator.batches.files == []


def test_per_line_failures_and_unreadable_images_are_failed_rows_and_resubmitted_next_time(fast_settings, emulator,
                                                                                            tmp_path):
    path = write_file(tmp_path, "ok one\nfails\nbroken image\nok two\n", "mixed.txt")
    out = tmp_path / "run"
    emulator.batches.fail_keys = {"row-2-v0"}
    emulator.batches.unreadable_keys = {"row-3-v0"}
    summary, outcomes = run_gemini(fast_settings, path, out)
    assert summary.finished and (summary.done, summary.failed) == (2, 2)
    failed = {o.row: o for o in outcomes if o.status == "failed"}
    assert "Internal error encountered" in failed[2].error and failed[2].exit_code == 6
    assert failed[3].error_type == "BadResponseError" and "cannot be read" in failed[3].error
    assert [f.row for f in summary.failures] == [2, 3]
    emulator.batches.fail_keys = set()
    emulator.batches.unreadable_keys = set()
    again, _ = run_gemini(fast_settings, path, out)
    assert [j.keys for j in emulator.batches.jobs] == [[f"row-{n}-v0" for n in range(1, 5)], ["row-2-v0", "row-3-v0"]]
    assert again.done == 2 and again.failed == 0
    assert {line["row"] for line in manifest(out) if line["status"] == "done"} == {1, 2, 3, 4}


def test_cache_hits_and_rows_done_earlier_are_not_submitted(fast_settings, emulator, tmp_path):
    first = write_file(tmp_path, "warm\n", "warm.txt")

    async def interactive(studio):
        plan = plan_batch(studio, read_batch_file(first), out_dir=tmp_path / "elsewhere")
        return await run_batch(studio, plan, out_dir=tmp_path / "elsewhere")

    in_studio(fast_settings, interactive)
    path = write_file(tmp_path, "warm\ncold\n", "both.txt")
    summary, outcomes = run_gemini(fast_settings, path, tmp_path / "run")
    assert [j.keys for j in emulator.batches.jobs] == [["row-2-v0"]]
    assert summary.cached == 1 and summary.done == 1 and len(emulator.generate_requests) == 1
    assert {o.status for o in outcomes} == {"cached", "done"}


@pytest.mark.parametrize("ending", ["EXPIRED", "FAILED"])
def test_a_job_that_ends_early_says_what_was_kept_and_a_rerun_submits_only_what_is_missing(fast_settings, emulator,
                                                                                         tmp_path, ending):
    path = write_file(tmp_path, "a\nb\nc\n", "three.txt")
    out = tmp_path / "run"
    emulator.batches.outcome = f"BATCH_STATE_{ending}"
    summary, _ = run_gemini(fast_settings, path, out)
    assert summary.finished and summary.state == f"JOB_STATE_{ending}" and summary.missing == 3 and summary.done == 0
    assert f"ended {ending}" in summary.message and "Run the same command again" in summary.message
    emulator.batches.outcome = "BATCH_STATE_SUCCEEDED"
    again, _ = run_gemini(fast_settings, path, out)
    assert len(emulator.batches.jobs) == 2 and again.done == 3
    assert emulator.batches.jobs[1].keys == ["row-1-v0", "row-2-v0", "row-3-v0"]
    events = [r.state for r in Journal(out).records()]
    assert events == [f"JOB_STATE_{ending}", "JOB_STATE_SUCCEEDED"]


def test_progress_counts_come_from_the_apis_batch_stats(fast_settings, emulator, tmp_path):
    emulator.batches.seconds_per_state = 2.0
    path = write_file(tmp_path, "".join(f"p{n}\n" for n in range(8)), "eight.txt")
    seen = []

    async def scenario(studio):
        plan = plan_batch(studio, read_batch_file(path), out_dir=tmp_path / "run")
        run = GeminiBatchRun(studio, plan, out_dir=tmp_path / "run", on_state=lambda job, stats: seen.append(stats))
        try:
            return await run.run()
        finally:
            await run.api.aclose()

    summary = in_studio(fast_settings.with_overrides(batch_poll_scale=0.02), scenario)
    assert summary.done == 8
    counted = [s for s in seen if s]
    assert counted and all(s["requestCount"] == 8 for s in counted)
    done = [s["successfulRequestCount"] for s in counted]
    assert done == sorted(done) and done[0] < 8  # counts that grow while the job runs


def test_no_wait_then_cancel_then_rerun(fast_settings, emulator, tmp_path):
    emulator.batches.seconds_per_state = 60
    path = write_file(tmp_path, "x\ny\n", "two.txt")
    out = tmp_path / "run"
    submitted, _ = run_gemini(fast_settings, path, out, wait=False)
    assert not submitted.finished and submitted.state == "JOB_STATE_PENDING" and submitted.missing == 2
    [job] = emulator.batches.jobs
    still, _ = run_gemini(fast_settings, path, out, wait=False)  # the same command: watches the same job
    assert len(emulator.batches.jobs) == 1 and still.job == job.name
    cancelled, _ = run_gemini(fast_settings, path, out, cancel=True)
    assert cancelled.state == "JOB_STATE_CANCELLED" and cancelled.missing == 2
    assert "ended CANCELLED" in cancelled.message
    assert [r.path for r in emulator.requests if r.path.endswith(":cancel")] == [f"/v1beta/{job.name}:cancel"]
    nothing, _ = run_gemini(fast_settings, path, out, cancel=True)
    assert "nothing to cancel" in nothing.message
    emulator.batches.seconds_per_state = FAST
    again, _ = run_gemini(fast_settings, path, out)
    assert len(emulator.batches.jobs) == 2 and again.done == 2


def test_a_second_run_of_the_same_folder_at_once_is_refused(fast_settings, emulator, tmp_path):
    from nanobanana_ui.service.batch.folder import RunFolderLock as FolderLock

    path = write_file(tmp_path, "a\n", "one.txt")
    held = FolderLock(tmp_path / "run")
    assert held.acquire()
    # flock locks are per open file: a second handle in this process conflicts as another process's would
    try:
        with pytest.raises(InputError, match="another run is using"):
            run_gemini(fast_settings, path, tmp_path / "run")
    finally:
        held.release()
    assert emulator.batches.jobs == []
    summary, _ = run_gemini(fast_settings, path, tmp_path / "run")
    assert summary.done == 1


def test_rows_with_different_models_are_refused(fast_settings, emulator, tmp_path):
    path = write_file(tmp_path, "prompt,model\na,gemini-2.5-flash-image\nb,gemini-3-pro-image\n")
    with pytest.raises(InputError, match="one model per job.*line\\(s\\) 2.*line\\(s\\) 3"):
        run_gemini(fast_settings, path, tmp_path / "run")
    assert emulator.batches.jobs == []


def test_429_and_5xx_on_create_and_poll_are_retried_without_a_second_job(fast_settings, emulator, tmp_path):
    settings = fast_settings.with_overrides(max_attempts=4)
    # create: 429; the listing made before sending it again (did the job get made after all?): 503
    emulator.batches.fail_next(Fault.rate_limit("0.1s"), Fault.server_error(503))
    path = write_file(tmp_path, "a\nb\n", "two.txt")
    out = tmp_path / "run"
    emulator.batches.seconds_per_state = 60
    run_gemini(settings, path, out, wait=False)
    calls = [(r.method, r.path.rsplit("/", 1)[-1].split(":")[-1], r.status) for r in emulator.requests]
    job_id = emulator.batches.jobs[0].name.split("/")[1]
    assert calls == [("POST", "batchGenerateContent", 429), ("GET", "batches", 503), ("GET", "batches", 200),
                     ("POST", "batchGenerateContent", 200)]
    emulator.batches.set_state(job_id, "SUCCEEDED")
    emulator.batches.jobs[0].outcome = "BATCH_STATE_SUCCEEDED"
    emulator.batches.fail_next(Fault.server_error(500))  # the next poll
    summary, _ = run_gemini(settings, path, out)
    assert summary.done == 2 and len(emulator.batches.jobs) == 1
    polls = [r.status for r in emulator.requests[len(calls):] if r.path.endswith(job_id)]
    assert polls[:2] == [500, 200]


def test_a_create_whose_answer_is_lost_is_adopted_not_sent_twice(fast_settings, emulator, tmp_path):
    settings = fast_settings.with_overrides(max_attempts=3, timeout_s=1.0)
    emulator.batches.hold_create_s = 2.5  # the job exists, the answer comes too late: a timeout
    path = write_file(tmp_path, "a\nb\n", "two.txt")
    events = []

    async def scenario(studio):
        plan = plan_batch(studio, read_batch_file(path), out_dir=tmp_path / "run")
        run = GeminiBatchRun(studio, plan, out_dir=tmp_path / "run", on_event=events.append)
        try:
            return await run.run()
        finally:
            await run.api.aclose()

    summary = in_studio(settings, scenario)
    assert len(emulator.batches.jobs) == 1 and summary.done == 2 and summary.job == emulator.batches.jobs[0].name
    assert any("retrying" in e for e in events)
    assert sum(r.path.endswith(":batchGenerateContent") for r in emulator.requests) == 1


def test_a_result_that_maps_to_no_row_is_reported(fast_settings, emulator, tmp_path):
    path = write_file(tmp_path, "a\nb\n", "two.txt")
    out = tmp_path / "run"
    emulator.batches.seconds_per_state = 60
    run_gemini(fast_settings, path, out, wait=False)
    path.write_text("a\nchanged\n")  # row 2 is no longer what the job was asked
    emulator.batches.set_state(emulator.batches.jobs[0].name, "SUCCEEDED")
    emulator.batches.jobs[0].outcome = "BATCH_STATE_SUCCEEDED"
    summary, _ = run_gemini(fast_settings, path, out)
    assert summary.unmapped == ("row-2-v0",) and summary.done == 1


# The command line.

def cli_env(emulator, home: Path, **extra: str) -> dict[str, str]:
    return app_env(GEMINI_API_KEY=TEST_KEY, NANOBANANA_BASE_URL=emulator.base_url, NANOBANANA_HOME=str(home),
                   NANOBANANA_BATCH_POLL_SCALE="0.01", PYTHONPATH=str(ROOT), **extra)


def test_dry_run_shows_interactive_and_batch_cost(emulator, tmp_path, monkeypatch, capsys):
    for name, value in cli_env(emulator, tmp_path / "home").items():
        monkeypatch.setenv(name, value)
    path = write_file(tmp_path, "prompt,count\na fox,3\na cat,\n")
    per_image = get_model(load_settings().model).image_price(None)  # the default model's price
    assert main(["batch", str(path), "--gemini-batch", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert f"estimated cost: interactive ${4 * per_image:.2f}, Gemini Batch Mode ${2 * per_image:.2f} (50% off" in err
    assert main(["batch", str(path), "--dry-run"]) == 0
    assert (f"with --gemini-batch (Gemini Batch Mode, results within 24 h): ${2 * per_image:.2f}"
            in capsys.readouterr().err)
    assert emulator.requests == []


def test_cli_json_lines_carry_the_job_and_batch_price(emulator, tmp_path, monkeypatch, capsys):
    emulator.batches.seconds_per_state = FAST
    for name, value in cli_env(emulator, tmp_path / "home").items():
        monkeypatch.setenv(name, value)
    path = write_file(tmp_path, "a\nb\n", "two.txt")
    emulator.batches.fail_keys = {"row-2-v0"}
    code = main(["batch", str(path), "--gemini-batch", "--json", "--out", str(tmp_path / "o")])
    out = capsys.readouterr()
    assert code == 6, out.err
    records = [json.loads(line) for line in out.out.splitlines()]
    [job] = emulator.batches.jobs
    assert [(r["row"], r["status"], r["job"]) for r in records] == [(1, "done", job.name), (2, "failed", job.name)]
    assert records[0]["price"] == "batch" and records[0]["cost_usd"] > 0
    assert "failed: line 2:" in out.err
    assert main(["batch", str(path), "--cancel"]) == 2
    assert "go with --gemini-batch" in capsys.readouterr().err


def test_a_finished_folder_run_again_prints_every_row_as_earlier_like_the_interactive_batch(emulator, tmp_path,
                                                                                             monkeypatch, capsys):
    emulator.batches.seconds_per_state = FAST
    for name, value in cli_env(emulator, tmp_path / "home").items():
        monkeypatch.setenv(name, value)
    path = write_file(tmp_path, "# two foxes\na red fox\nan arctic fox\n", "foxes.txt")
    command = ["batch", str(path), "--gemini-batch", "--json", "--yes", "--out", str(tmp_path / "o")]
    assert main(command) == 0
    first = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert main(command) == 0
    again = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["row"], r["status"]) for r in again] == [(2, "earlier"), (3, "earlier")]
    assert [r["path"] for r in again] == [r["path"] for r in first]
    assert len(emulator.batches.jobs) == 1  # nothing submitted again
    interactive = ["batch", str(path), "--json", "--yes", "--out", str(tmp_path / "o")]
    assert main(interactive) == 0  # the interactive batch says the same of the same folder
    assert [(r["row"], r["status"]) for r in map(json.loads, capsys.readouterr().out.splitlines())] == \
        [(2, "earlier"), (3, "earlier")]


# Kill -9 at every step: exactly one job, every row once.

@pytest.mark.slow
@pytest.mark.parametrize("point", ["before_create", "after_create", "polling", "writing"])
def test_kill_9_at_any_step_never_makes_a_second_job(emulator, tmp_path, point):
    emulator.batches.seconds_per_state = 1.0 if point == "polling" else FAST
    path = write_file(tmp_path, "".join(f"frame {n}\n" for n in range(1, 7)), "frames.txt")
    out = tmp_path / "run"
    command = [sys.executable, "-m", "nanobanana_ui", "batch", str(path), "--gemini-batch", "--out", str(out),
               "--json"]
    home = tmp_path / "home"
    first = subprocess.Popen(command, env=cli_env(emulator, home, NANOBANANA_BATCH_PAUSE_AT=point), cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = out / f".paused-{point}"
    deadline = time.monotonic() + 60
    while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), f"the run never reached {point}"
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    assert len(emulator.batches.jobs) == (0 if point == "before_create" else 1)
    if point == "writing":
        assert len(manifest(out)) == 1  # killed after the first row was written

    second = subprocess.run(command, env=cli_env(emulator, home), cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert second.returncode == 0, second.stderr
    assert len(emulator.batches.jobs) == 1  # exactly one job, whatever the moment of the kill
    assert sorted(emulator.batches.jobs[0].keys) == sorted(f"row-{n}-v0" for n in range(1, 7))
    done = [line["row"] for line in manifest(out) if line["status"] == "done"]
    assert sorted(done) == list(range(1, 7))  # every row once
    assert all((out / p).is_file() for line in manifest(out) for p in line["paths"])
    if point == "after_create":
        assert "found the job an earlier run created" in second.stderr
    if point == "before_create":
        assert "submitting anew" in second.stderr


# The service the Batch tab uses: this data directory's jobs, after a restart.

def test_the_data_directory_lists_refreshes_fetches_and_cancels_jobs(emulator, tmp_path, monkeypatch, capsys):
    emulator.batches.seconds_per_state = 60
    env = cli_env(emulator, tmp_path / "home")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    images = tmp_path / "in"
    images.mkdir()
    path = write_file(images, "prompt,count\na fox,2\n")
    assert main(["batch", str(path), "--gemini-batch", "--no-wait", "--aspect-ratio", "16:9",
                 "--out", str(tmp_path / "one")]) == 0
    other = write_file(tmp_path, "a cat\n", "cat.txt")
    assert main(["batch", str(other), "--gemini-batch", "--no-wait", "--out", str(tmp_path / "two")]) == 0
    capsys.readouterr()
    first, second = emulator.batches.jobs
    settings = load_settings()  # as the app would after a restart

    async def scenario(studio):
        jobs = GeminiBatches(studio)
        listed = jobs.list_jobs()
        emulator.batches.set_state(first.name, "SUCCEEDED")
        refreshed = await jobs.refresh(display_name=first.display_name)
        fetched = await jobs.fetch(display_name=first.display_name)
        cancelled = await jobs.cancel(display_name=second.display_name)
        return listed, refreshed, fetched, cancelled, jobs.list_jobs()

    first.outcome = "BATCH_STATE_SUCCEEDED"
    listed, refreshed, fetched, cancelled, after = in_studio(settings, scenario)
    assert [(v.job, v.state, v.rows, v.open) for v in listed] == [(second.name, "PENDING", 1, True),
                                                                   (first.name, "PENDING", 2, True)]
    per_image = get_model(settings.model).image_price(None)
    assert listed[1].file == str(path) and listed[1].estimated_cost_usd == pytest.approx(per_image, abs=1e-3)
    assert refreshed.state == "SUCCEEDED"
    assert fetched.done == 2 and fetched.finished
    lines = manifest(tmp_path / "one")
    assert {line["variation"] for line in lines} == {0, 1} and all(line["job"] == first.name for line in lines)
    assert cancelled.state == "JOB_STATE_CANCELLED"
    by_job = {v.job: v for v in after}
    assert by_job[first.name].done == 2 and not by_job[first.name].open and by_job[first.name].cost_usd > 0
    assert by_job[second.name].state == "CANCELLED" and not by_job[second.name].open
    assert len(emulator.batches.jobs) == 2
