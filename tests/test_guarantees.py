"""Issue 24 guarantees for batch runs: never paid twice (folder lock, open jobs, full disks, timeouts), never lost."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEST_KEY, in_studio
from google.genai import types
from servers import ROOT, app_env
from test_gemini_batch import FAST, cli_env, run_gemini, sdk_client, write_file

from nanobanana_ui.cli.main import _overrides, build_parser, main
from nanobanana_ui.domain.config import load_settings
from nanobanana_ui.domain.errors import InputError, SentTimeoutError, ServiceTimeoutError, StorageError
from nanobanana_ui.domain.models import all_models, request_timeout_s
from nanobanana_ui.domain.request import ImageOptions, Mode
from nanobanana_ui.emulator import Fault
from nanobanana_ui.quota.retry import RetryPolicy, is_retryable
from nanobanana_ui.service.batch import BatchItem, GeminiBatches, plan_batch, read_batch_file, run_batch
from nanobanana_ui.service.batch.gemini_journal import Journal, add_to_index
from nanobanana_ui.service.batch.manifest import finished_lines
from nanobanana_ui.service.studio import Studio
from nanobanana_ui.ui.text import daily_meter


@pytest.fixture
def fast_settings(settings, emulator):
    """Settings pointed at the emulator, polling 100x faster, batch clock FAST (as in test_gemini_batch)."""
    emulator.batches.seconds_per_state = FAST
    return settings.with_overrides(batch_poll_scale=0.01)


# A torn write inside a multi-byte character (item 7).

def _torn(line: dict) -> bytes:
    """A JSON line cut right after the first byte of its "é" (what a kill mid-write leaves)."""
    data = json.dumps(line, ensure_ascii=False).encode("utf-8")
    return data[:data.index("é".encode()) + 1]


def _good(line: dict) -> bytes:
    return json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n"


def test_a_manifest_torn_inside_a_character_still_resumes(tmp_path):
    for name in ("a.png", "b.png"):
        (tmp_path / name).write_bytes(b"png")
    first = {"row": 1, "key": "k1", "status": "done", "paths": ["a.png"], "prompt": "café"}
    second = {"row": 3, "key": "k3", "status": "done", "paths": ["b.png"], "prompt": "thé"}
    torn = {"row": 2, "key": "k2", "status": "done", "paths": ["a.png"], "prompt": "crème brûlée"}
    (tmp_path / "manifest.jsonl").write_bytes(_good(first) + _torn(torn) + b"\n" + _good(second) + _torn(torn))
    assert set(finished_lines(tmp_path)) == {(1, "k1"), (3, "k3")}


def test_a_journal_and_index_torn_inside_a_character_are_still_read(settings, tmp_path):
    folder = tmp_path / "run"
    journal = Journal(folder)
    journal.append("intent", display_name="nanobanana-1", model="m", keys={"row-1-v0": "k"}, source="inline")
    with open(journal.path, "ab") as handle:
        handle.write(_torn({"event": "state", "display_name": "nanobanana-1", "state": "é"}))
    journal.append("created", display_name="nanobanana-1", job="batches/1")
    [record] = journal.records()
    assert record.job == "batches/1" and record.open
    add_to_index(settings.home, folder=folder, display_name="nanobanana-1", model="m", rows=1, source_file="é.txt")
    with open(settings.home / "gemini_batches.jsonl", "ab") as handle:
        handle.write(_torn({"folder": str(folder), "display_name": "x", "file": "café.txt"}))
    [view] = in_studio(settings, lambda studio: _list(studio))
    assert view.job == "batches/1"


async def _list(studio):
    return GeminiBatches(studio).list_jobs()


def test_a_result_file_with_a_bad_byte_reports_that_line_and_reads_the_rest(tmp_path):
    from nanobanana_ui.service.batch.gemini_results import file_results

    path = tmp_path / "results.jsonl"
    path.write_bytes(_good({"key": "row-1-v0", "error": {"code": 3, "message": "é"}}) + b'{"key": "\xc3\n'
                     + _good({"key": "row-3-v0", "error": {"code": 3, "message": "x"}}))
    keys = [key for key, _, _ in file_results(path)]
    assert keys[0] == "row-1-v0" and keys[2] == "row-3-v0" and "unreadable" in keys[1]


# Two batch runs of one folder at once (item 1), and an interactive run while a Gemini job is open (item 2).

def _items(count: int, word: str = "prompt"):
    return [BatchItem(row=n, prompt=f"{word} {n}", mode=Mode.GENERATE, images=(), model=None, options=ImageOptions())
            for n in range(1, count + 1)]


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]


def test_two_interactive_runs_of_one_folder_at_once_pay_once(settings, emulator, tmp_path):
    emulator.delay_s = 0.2
    out = tmp_path / "run"
    other = settings.with_overrides()  # a second Settings object: its own Studio, its own in-flight map

    async def main():
        async with Studio(settings) as first, Studio(other) as second:
            runs = [run_batch(studio, plan_batch(studio, _items(20), out_dir=out), out_dir=out)
                    for studio in (first, second)]
            return await asyncio.gather(*runs, return_exceptions=True)

    results = asyncio.run(main())
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(refused) == 1 and isinstance(refused[0], InputError), results
    assert "another run is using" in str(refused[0])
    assert len(emulator.generate_requests) == 20
    assert sorted(line["row"] for line in _manifest(out) if line["status"] == "done") == list(range(1, 21))
    assert not (out / ".staging").exists()


@pytest.mark.slow  # two CLI subprocesses at once
def test_two_cli_batch_runs_of_one_folder_at_once_pay_once(emulator, tmp_path):
    emulator.delay_s = 0.2
    path = tmp_path / "q.txt"
    path.write_text("".join(f"item {n}\n" for n in range(1, 21)))
    out = tmp_path / "run"
    env = app_env(GEMINI_API_KEY=TEST_KEY, NANOBANANA_BASE_URL=emulator.base_url,
                  NANOBANANA_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "nanobanana_ui", "batch", str(path), "--yes", "--out", str(out)]
    runs = [subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    codes = []
    for run in runs:
        _, err = run.communicate(timeout=120)
        codes.append((run.returncode, err))
    assert sorted(code for code, _ in codes) == [0, 2], codes
    assert any("another run is using" in err for code, err in codes if code == 2)
    assert len(emulator.generate_requests) == 20
    assert sorted(line["row"] for line in _manifest(out) if line["status"] == "done") == list(range(1, 21))


def test_an_interactive_run_is_refused_while_a_gemini_job_is_open(fast_settings, emulator, tmp_path):
    emulator.batches.seconds_per_state = 60
    path = write_file(tmp_path, "x\ny\n", "two.txt")
    out = tmp_path / "run"
    run_gemini(fast_settings, path, out, wait=False)
    [job] = emulator.batches.jobs

    async def interactive(studio):
        return await run_batch(studio, plan_batch(studio, read_batch_file(path), out_dir=out), out_dir=out)

    try:
        in_studio(fast_settings, interactive)
        raise AssertionError("the interactive run was not refused")
    except InputError as error:
        assert "open Gemini Batch Mode job" in error.message and job.name in error.message
        assert "--gemini-batch --cancel" in error.message
    assert emulator.generate_requests == []


def test_the_cli_refuses_an_interactive_run_while_a_gemini_job_is_open(fast_settings, emulator, tmp_path,
                                                                       monkeypatch, capsys):
    emulator.batches.seconds_per_state = 60
    path = write_file(tmp_path, "x\ny\n", "two.txt")
    out = tmp_path / "run"
    for name, value in cli_env(emulator, fast_settings.home).items():
        monkeypatch.setenv(name, value)
    run_gemini(fast_settings, path, out, wait=False)
    capsys.readouterr()
    assert main(["batch", str(path), "--yes", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert emulator.batches.jobs[0].name in err and "--gemini-batch --cancel" in err and "estimated" not in err
    assert emulator.generate_requests == []


# Disk full while fetching Gemini results (item 3).

def _full_disk(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.parametrize("where", ["cache", "place"])
def test_a_full_disk_while_fetching_stops_without_finishing_and_the_rerun_fetches_the_same_job(
        fast_settings, emulator, tmp_path, monkeypatch, where):
    from nanobanana_ui.service.batch import gemini_results
    from nanobanana_ui.storage.cache import ResultCache

    path = write_file(tmp_path, "a\nb\nc\n", "three.txt")
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        if where == "cache":
            patch.setattr(ResultCache, "store", _full_disk)
        else:
            patch.setattr(gemini_results, "place_images", _full_disk)
        with pytest.raises(StorageError, match="No space left.*run the same command again"):
            run_gemini(fast_settings, path, out)
    events = [json.loads(line)["event"] for line in (out / "gemini_batch.jsonl").read_text().splitlines()]
    assert "finished" not in events
    summary, _ = run_gemini(fast_settings, path, out)
    assert len(emulator.batches.jobs) == 1 and summary.done == 3 and summary.finished


# A timeout after the request was sent may have been billed (item 5).

def test_a_timeout_after_sending_is_not_retried_and_is_metered_as_possibly_billed(settings, emulator):
    slow = settings.with_overrides(max_attempts=3, timeout_s=1.0)
    emulator.fail_next(Fault.delay(3))

    async def scenario(studio):
        with pytest.raises(SentTimeoutError) as caught:
            await studio.generate("a slow fox")
        return caught.value, studio.usage_today()

    error, usage = in_studio(slow, scenario)
    assert len(emulator.generate_requests) == 1
    assert "may have" in error.message and "--retry-timeouts" in error.message
    assert "NANOBANANA_RETRY_TIMEOUTS=1" in error.message
    assert usage.maybe_requests == 1 and usage.maybe_usd > 0 and usage.cost_usd == 0
    assert "1 possibly billed" in daily_meter(usage, offline=False)


def test_retry_timeouts_allows_sending_again(settings, emulator):
    allowed = settings.with_overrides(max_attempts=3, timeout_s=1.0, retry_timeouts=True)
    emulator.fail_next(Fault.delay(3))
    result = in_studio(allowed, lambda studio: studio.generate("a slow fox"))
    assert len(emulator.generate_requests) == 2 and result.images


def test_the_retry_timeouts_setting_and_flag(tmp_path):
    assert load_settings(environ={"NANOBANANA_RETRY_TIMEOUTS": "1"}, env_file=None).retry_timeouts
    assert not load_settings(environ={}, env_file=None).retry_timeouts
    for command in (["generate", "x"], ["batch", "f.txt"], ["edit", "a.png", "x"], ["compose", "a.png", "--prompt",
                                                                                  "x"], ["refine", "abc", "x"]):
        args = build_parser().parse_args([*command, "--retry-timeouts"])
        assert args.retry_timeouts, command
    assert _overrides(build_parser().parse_args(["generate", "x", "--retry-timeouts"]))["retry_timeouts"] is True


def test_only_a_sent_timeout_needs_permission_to_be_retried():
    assert is_retryable(ServiceTimeoutError("before sending"))
    assert not is_retryable(SentTimeoutError("after sending"))
    assert is_retryable(SentTimeoutError("after sending"), retry_sent_timeouts=True)
    assert RetryPolicy(max_attempts=3).next_delay(SentTimeoutError("x"), 1, 0.0) is None
    assert RetryPolicy(max_attempts=3, retry_sent_timeouts=True).next_delay(SentTimeoutError("x"), 1, 0.0)


def test_every_model_and_size_has_a_timeout_long_enough_for_the_slowest(settings, emulator):
    for spec in all_models():
        for size in spec.sizes:
            assert request_timeout_s(spec.id, size) >= 90, (spec.id, size)
    assert request_timeout_s("gemini-3-pro-image", "4K") >= 300
    assert request_timeout_s("some-new-image-model") >= 120  # unknown ids get the default table
    # Without NANOBANANA_TIMEOUT each request carries the registry's time for its model and size.
    in_studio(dataclasses.replace(settings, timeout_s=None), lambda studio: studio.generate("a fox"))
    [request] = emulator.generate_requests
    sent = {k.lower(): v for k, v in request.headers.items()}
    assert sent.get("x-server-timeout") == str(int(request_timeout_s(settings.model, None)))


def test_a_batch_row_that_may_have_been_billed_is_sent_again_only_when_allowed(settings, emulator, tmp_path):
    slow = settings.with_overrides(max_attempts=3, timeout_s=1.0)
    out = tmp_path / "run"
    emulator.fail_next(Fault.delay(3))

    async def run(studio):
        return await run_batch(studio, plan_batch(studio, _items(2), out_dir=out), out_dir=out, concurrency=1)

    first = in_studio(slow, run)
    assert first.done == 1 and first.failed == 1 and first.failures[0].error_type == "SentTimeoutError"
    assert len(emulator.generate_requests) == 2
    again = in_studio(slow, run)  # a plain rerun: not sent, said why
    assert again.earlier == 1 and again.failed == 1 and "--retry-timeouts" in (again.failures[0].error or "")
    assert len(emulator.generate_requests) == 2
    allowed = in_studio(slow.with_overrides(retry_timeouts=True), run)
    assert allowed.done == 1 and allowed.failed == 0 and len(emulator.generate_requests) == 3


# "Never twice" with a slow job listing, duplicate jobs, and another key (item 4).

def test_a_create_that_timed_out_waits_for_a_slow_listing_rather_than_create_again(fast_settings, emulator,
                                                                                   tmp_path):
    settings = fast_settings.with_overrides(max_attempts=3, timeout_s=1.0, batch_poll_scale=0.02)  # patience 6 s
    emulator.batches.hold_create_s = 2.5  # the job exists; the answer comes after the client gave up
    emulator.batches.list_lag_s = 4.0  # and the listing shows it only 4 s after it was made
    path = write_file(tmp_path, "a\nb\n", "two.txt")
    events: list[str] = []
    summary, _ = run_gemini(settings, path, tmp_path / "run", on_event=events.append)
    assert len(emulator.batches.jobs) == 1 and summary.done == 2
    assert any("waiting for Gemini to list the job" in event for event in events)
    journal = [json.loads(line)["event"] for line in (tmp_path / "run" / "gemini_batch.jsonl").read_text().splitlines()]
    assert journal.count("create_sent") == 1


def _duplicate_of(emulator, display_name: str) -> str:
    client = sdk_client(emulator)
    job = client.batches.create(model="gemini-2.5-flash-image", src=[
        types.InlinedRequest(contents="a", metadata={"key": "row-1-v0"})], config={"display_name": display_name})
    return str(job.name)


def test_duplicate_jobs_of_one_intent_are_adopted_once_and_the_others_cancelled(fast_settings, emulator, tmp_path):
    emulator.batches.seconds_per_state = 60
    path = write_file(tmp_path, "a\nb\n", "two.txt")
    out = tmp_path / "run"
    run_gemini(fast_settings, path, out, wait=False)
    [first] = emulator.batches.jobs
    second = _duplicate_of(emulator, first.display_name)  # a retried create made a second job
    journal = out / "gemini_batch.jsonl"  # and the run was killed before it could note either
    journal.write_text("".join(line + "\n" for line in journal.read_text().splitlines()
                               if json.loads(line)["event"] != "created"))
    emulator.batches.set_state(first.name, "SUCCEEDED")
    events: list[str] = []
    summary, _ = run_gemini(fast_settings, path, out, on_event=events.append)
    assert summary.job == first.name and summary.done == 2
    assert [r.path for r in emulator.requests if r.path.endswith(":cancel")] == [f"/v1beta/{second}:cancel"]
    assert any(second in event and "cancelled" in event for event in events)
    assert sorted(line["row"] for line in _manifest(out)) == [1, 2]  # every row written once
    [record] = Journal(out).records()
    assert record.duplicates == [second]


def test_a_job_submitted_with_another_key_is_never_resumed_or_resubmitted(fast_settings, emulator, tmp_path):
    emulator.batches.seconds_per_state = 60
    path = write_file(tmp_path, "a\nb\n", "two.txt")
    out = tmp_path / "run"
    run_gemini(fast_settings, path, out, wait=False)
    journal = out / "gemini_batch.jsonl"  # killed before the job's name was noted: a resume would look it up
    journal.write_text("".join(line + "\n" for line in journal.read_text().splitlines()
                               if json.loads(line)["event"] != "created"))
    assert TEST_KEY not in journal.read_text()
    before = len(emulator.requests)
    other = fast_settings.with_overrides(api_key="another-key-not-secret")
    for cancel in (False, True):
        with pytest.raises(InputError, match="submitted with another API key"):
            run_gemini(other, path, out, cancel=cancel)
    assert len(emulator.batches.jobs) == 1 and len(emulator.requests) == before  # nothing listed, nothing sent
    summary, _ = run_gemini(fast_settings, path, out, wait=False)  # the right key still finds it
    assert summary.job == emulator.batches.jobs[0].name and len(emulator.batches.jobs) == 1


@pytest.mark.parametrize("where", ["cache", "place"])
def test_a_full_disk_stops_an_interactive_batch_instead_of_paying_for_rows_it_cannot_keep(settings, emulator,
                                                                                        tmp_path, monkeypatch, where):
    from nanobanana_ui.service.batch import run as run_module
    from nanobanana_ui.storage.cache import ResultCache

    if where == "cache":
        monkeypatch.setattr(ResultCache, "store", _full_disk)
    else:
        monkeypatch.setattr(run_module, "place_images", _full_disk)
    out = tmp_path / "run"
    outcomes: list = []

    async def run(studio):
        plan = plan_batch(studio, _items(6), out_dir=out)
        return await run_batch(studio, plan, out_dir=out, concurrency=1, on_outcome=outcomes.append)

    with pytest.raises(StorageError, match="the batch stopped.*No space left"):
        in_studio(settings, run)
    assert len(emulator.generate_requests) == 1  # not 6 paid for nothing
    assert [o.error_type for o in outcomes] == ["StorageError"] and outcomes[0].exit_code == 7


def test_a_run_folder_torn_inside_a_character_resumes_without_sending_again(settings, emulator, tmp_path):
    out = tmp_path / "run"

    async def run(studio):
        return await run_batch(studio, plan_batch(studio, _items(3, "café"), out_dir=out), out_dir=out)

    assert in_studio(settings, run).done == 3
    manifest = out / "manifest.jsonl"  # a kill inside the "é" of a fourth line, as it was being appended
    manifest.write_bytes(manifest.read_bytes() + _torn({"row": 4, "prompt": "café 4", "status": "done"}))
    again = in_studio(settings, run)
    assert again.earlier == 3 and again.done == 0 and len(emulator.generate_requests) == 3
