"""Batch runs: file formats and bad rows, failure isolation, de-duplication, the manifest, resume after kill -9."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import TEST_KEY, in_studio, png_bytes
from servers import ROOT, app_env

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.request import ImageOptions, Mode
from nanobanana_ui.emulator import Fault
from nanobanana_ui.service.batch import (
    BatchFileError,
    BatchItem,
    parse_batch_text,
    plan_batch,
    read_batch_file,
    run_batch,
)


def run_file(settings, path: Path, out: Path, **run_kwargs):
    """Read, plan and run a batch file in a fresh Studio; returns (plan, summary, outcomes in finishing order)."""
    outcomes = []

    async def scenario(studio):
        plan = plan_batch(studio, read_batch_file(path), out_dir=out)
        summary = await run_batch(studio, plan, out_dir=out, on_outcome=outcomes.append, **run_kwargs)
        return plan, summary

    plan, summary = in_studio(settings, scenario)
    return plan, summary, outcomes


def manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines() if line.strip()]


# File formats.

def test_txt_skips_blank_lines_and_comments_and_keeps_line_numbers(tmp_path):
    text = "# product shots\n\na red fox\n   \n  # indented comment\n  a blue cat  \n"
    items = parse_batch_text(text, base_dir=tmp_path, defaults=ImageOptions(aspect_ratio="16:9", seed=3))
    assert [(i.row, i.prompt, i.mode, i.count) for i in items] == [(3, "a red fox", Mode.GENERATE, 1),
                                                                    (6, "a blue cat", Mode.GENERATE, 1)]
    assert items[0].options == ImageOptions(aspect_ratio="16:9", seed=3)


def test_csv_with_header_per_row_options_and_images(settings, emulator, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "cat.png").write_bytes(png_bytes(color=(1, 2, 3)))
    (tmp_path / "in" / "hat.png").write_bytes(png_bytes(color=(4, 5, 6)))
    path = tmp_path / "shots.csv"
    path.write_text('prompt,mode,images,aspect_ratio,temperature,top_k,seed,count,name\n'
                    'a red fox,,,16:9,0.4,,,,\n'
                    '"make it stormy, please",,in/cat.png,,,,,,stormy\n'
                    '\n'
                    'the cat wearing the hat,compose,in/cat.png; in/hat.png,1:1,,20,7,2,\n')
    items = read_batch_file(path)
    assert [(i.row, i.mode, len(i.images), i.count, i.name) for i in items] == [
        (2, Mode.GENERATE, 0, 1, None), (3, Mode.EDIT, 1, 1, "stormy"), (5, Mode.COMPOSE, 2, 2, None)]
    assert items[2].images == (tmp_path / "in" / "cat.png", tmp_path / "in" / "hat.png")
    assert items[0].options.temperature == 0.4 and items[2].options.top_k == 20 and items[2].options.seed == 7

    _, summary, _ = run_file(settings, path, tmp_path / "out")
    assert (summary.done, summary.failed) == (4, 0)
    sent = {r.prompt: r for r in emulator.generate_requests}
    assert sent["a red fox"].generation_config["imageConfig"] == {"aspectRatio": "16:9"}
    assert sent["a red fox"].generation_config["temperature"] == 0.4
    assert sent["make it stormy, please"].images == [png_bytes(color=(1, 2, 3))]
    assert sent["the cat wearing the hat"].images == [png_bytes(color=(1, 2, 3)), png_bytes(color=(4, 5, 6))]
    assert sent["the cat wearing the hat"].generation_config["topK"] == 20
    names = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert names == ["0002_a-red-fox.png", "0003_stormy.png", "0005_the-cat-wearing-the-hat.png",
                     "0005_the-cat-wearing-the-hat_v1.png"]


def test_jsonl_rows_with_lists_and_numbers(tmp_path):
    (tmp_path / "a.png").write_bytes(png_bytes())
    text = ('{"prompt": "a fox", "temperature": 1, "seed": 5, "count": 3, "model": "gemini-3-pro-image-preview"}\n'
            '\n'
            '{"prompt": "brighter", "images": ["a.png"], "size": "2K", "top_p": "0.5"}\n')
    items = parse_batch_text(text, fmt="jsonl", base_dir=tmp_path)
    assert [(i.row, i.count, i.model, i.mode) for i in items] == [(1, 3, "gemini-3-pro-image-preview", Mode.GENERATE),
                                                                 (3, 1, None, Mode.EDIT)]
    assert items[0].options.temperature == 1.0 and items[0].options.seed == 5
    assert items[1].images == (tmp_path / "a.png",) and items[1].options == ImageOptions(size="2K", top_p=0.5)


def test_bad_rows_are_all_reported_with_line_numbers_before_anything_is_sent(settings, emulator, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("prompt,temperature,mode,count\nfine,,,\nhot one,hot,,\nodd,,sketch,\nnone,,,zero\n,,,\n,0.5,,\n")
    with pytest.raises(BatchFileError) as caught:
        read_batch_file(path)
    assert caught.value.problems == (
        "line 3: temperature 'hot' is not a number", "line 4: mode 'sketch' is not one of: generate, edit, compose",
        "line 5: count 'zero' is not a whole number", "line 7: no prompt")
    assert str(caught.value).splitlines() == list(caught.value.problems)

    # Rows that parse but cannot be sent: found by building every request, all reported together.
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok"}\n{"prompt": "big", "size": "4K"}\n{"prompt": "x", "images": ["gone.png"]}\n'
                    '{"prompt": "too hot", "temperature": 3}\n{"prompt": "many", "count": 101}\n')

    async def scenario(studio):
        return plan_batch(studio, read_batch_file(path), out_dir=tmp_path / "out")

    with pytest.raises(BatchFileError) as caught:
        in_studio(settings, scenario)
    assert [p.split(":")[0] for p in caught.value.problems] == ["line 2", "line 3", "line 4", "line 5"]
    assert "4K" in caught.value.problems[0] and "gone.png does not exist" in caught.value.problems[1]
    assert emulator.generate_requests == []


@pytest.mark.parametrize("name, content, line, field", [
    ("lone.jsonl", b'{"prompt": "fine"}\n{"prompt": "bad \\udcff here"}\n', 2, "prompt"),  # a JSON escape
    ("model.jsonl", b'{"prompt": "fine"}\n\n{"prompt": "p", "model": "gemini\\ud800"}\n', 3, "model"),
    ("paths.jsonl", b'{"prompt": "fine"}\n{"prompt": "p", "images": ["a\\udcff.png"]}\n', 2, "an image path"),
    ("latin1.txt", b"fine\n# comment\ncaf\xe9 au lait\n", 3, "prompt"),  # bytes that are not UTF-8
    ("latin1.csv", b"prompt,name\nfine,a\n\"two\nlines\",b\xff\n", 3, "name"),
])
def test_text_that_cannot_be_encoded_is_refused_with_its_line_number(emulator, tmp_path, monkeypatch, capsys, name,
                                                                    content, line, field):
    for key, value in cli_env(emulator, tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["batch", str(path), "--out", str(tmp_path / "out"), "--json"]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "Traceback" not in out.err and "unexpected" not in out.err
    assert f"error: 1 problem(s) in {path}; nothing was sent:" in out.err
    [problem] = [text.strip() for text in out.err.splitlines()[1:]]
    assert problem.startswith(f"line {line}: {field} holds '\\ud") and "lone surrogate" in problem
    assert emulator.generate_requests == []


def test_a_prompt_that_cannot_be_encoded_is_refused_by_generate(emulator, tmp_path, monkeypatch, capsys):
    for key, value in cli_env(emulator, tmp_path / "home").items():
        monkeypatch.setenv(key, value)
    assert main(["generate", "caf\udce9 au lait", "--json"]) == 2  # how Python passes a Latin-1 argument
    out = capsys.readouterr()
    assert out.err.startswith("error: The prompt holds '\\udce9' at character 4") and "Traceback" not in out.err
    assert json.loads(out.out)["error_type"] == "InputError" and emulator.generate_requests == []


def test_unknown_extension_and_unknown_columns_are_clear(tmp_path):
    (tmp_path / "prompts.xlsx").write_text("x")
    with pytest.raises(BatchFileError, match=r"unknown batch file type '\.xlsx'; use \.txt"):
        read_batch_file(tmp_path / "prompts.xlsx")
    with pytest.raises(BatchFileError, match=r"line 1: unknown column\(s\) 'colour'"):
        parse_batch_text("prompt,colour\nfox,red\n", fmt="csv", base_dir=tmp_path)
    with pytest.raises(BatchFileError, match=r"line 2: not valid JSON"):
        parse_batch_text('{"prompt": "a"}\n{"prompt": \n', fmt="jsonl", base_dir=tmp_path)


# Running.

def test_one_items_failure_never_stops_the_batch(settings, emulator, tmp_path):
    path = tmp_path / "four.txt"
    path.write_text("one\ntwo\nthree\nfour\nfive\n")
    # One at a time, so the faults land on known rows: 2 is blocked, 4 has its image withheld (neither is retried).
    emulator.fail_next(Fault.delay(0), Fault.blocked("SAFETY"), Fault.delay(0), Fault.no_image("IMAGE_SAFETY"))
    _, summary, outcomes = run_file(settings, path, tmp_path / "out", concurrency=1)
    assert (summary.done, summary.failed, summary.cancelled) == (3, 2, False)
    assert [(f.row, f.error_type) for f in summary.failures] == [(2, "PromptBlockedError"),
                                                                 (4, "ImageWithheldError")]
    assert len(emulator.generate_requests) == 5
    lines = {line["row"]: line for line in manifest(tmp_path / "out")}
    assert {row: line["status"] for row, line in lines.items()} == {1: "done", 2: "failed", 3: "done", 4: "failed",
                                                                    5: "done"}
    assert "blocked" in lines[2]["error"].lower() and lines[2]["paths"] == []
    assert sorted(o.row for o in outcomes if o.status == "done") == [1, 3, 5]


def test_duplicate_lines_are_one_api_call(settings, emulator, tmp_path):
    emulator.delay_s = 0.3  # the duplicates are in flight together: de-duplicated, not just cached
    path = tmp_path / "dups.txt"
    path.write_text("a fox\na fox\na cat\na fox\n")
    _, summary, outcomes = run_file(settings, path, tmp_path / "out")
    assert sorted(r.prompt for r in emulator.generate_requests) == ["a cat", "a fox"]
    assert (summary.done, summary.cached, summary.failed) == (2, 2, 0)
    fox = [o for o in outcomes if o.prompt == "a fox"]
    assert sorted(o.row for o in fox) == [1, 2, 4] and all(len(o.paths) == 1 and o.paths[0].is_file() for o in fox)
    assert len({o.paths[0].read_bytes() for o in fox}) == 1  # one answer, saved under each row's name
    assert summary.cost_usd == pytest.approx(sum(o.cost_usd for o in outcomes if o.status == "done"))
    assert sum(o.cost_usd for o in fox) == max(o.cost_usd for o in fox)  # paid once


def test_manifest_matches_the_images_on_disk(settings, emulator, tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"prompt": "hero shot", "count": 2, "name": "Hero"}\n{"prompt": "a lamp"}\n'
                    '{"prompt": "blocked"}\n')
    emulator.fail_next(Fault.delay(0), Fault.delay(0), Fault.delay(0), Fault.blocked())
    out = tmp_path / "out"
    _, summary, _ = run_file(settings, path, out, concurrency=1)
    lines = manifest(out)
    assert len(lines) == 4 and summary.failed == 1
    listed = {p for line in lines for p in line["paths"]}
    on_disk = {p.name for p in out.iterdir() if p.name != "manifest.jsonl"}
    assert listed == on_disk == {"0001_hero.png", "0001_hero_v1.png", "0002_a-lamp.png"}
    for line in lines:
        assert {"row", "prompt", "variation", "status", "paths", "cost_usd", "error", "error_type", "key"} <= set(line)
        for image in line.get("images", []):
            assert hashlib.sha256((out / image["path"]).read_bytes()).hexdigest() == image["sha256"]


def test_every_batch_request_is_a_history_entry(settings, emulator, tmp_path):
    path = tmp_path / "h.txt"
    path.write_text("first\nsecond\nthird\n")
    emulator.fail_next(Fault.delay(0), Fault.blocked())

    async def scenario(studio):
        plan = plan_batch(studio, read_batch_file(path), out_dir=tmp_path / "out")
        await run_batch(studio, plan, out_dir=tmp_path / "out", concurrency=1)
        return sorted((e.prompt, e.ok) for e in studio.history.page(limit=10))

    assert in_studio(settings, scenario) == [("first", True), ("second", False), ("third", True)]


def test_cancel_stops_starting_new_requests(settings, emulator, tmp_path):
    emulator.delay_s = 0.1
    items = [BatchItem(row=n, prompt=f"prompt {n}", mode=Mode.GENERATE, images=(), model=None,
                       options=ImageOptions()) for n in range(1, 11)]

    async def scenario(studio):
        cancel = asyncio.Event()
        plan = plan_batch(studio, items, out_dir=tmp_path / "out")
        return await run_batch(studio, plan, out_dir=tmp_path / "out", concurrency=2,
                               on_outcome=lambda _: cancel.set(), cancel=cancel)

    summary = in_studio(settings, scenario)
    assert summary.cancelled and summary.done <= 2 and len(emulator.generate_requests) <= 2
    assert len(manifest(tmp_path / "out")) == summary.done


def test_default_concurrency_follows_the_rate_limit(settings, emulator, tmp_path):
    emulator.delay_s = 2.5  # long enough that six arrivals fit before the first answer even on a loaded machine
    limited = settings.__class__(**{**settings.__dict__, "rpm": 6})
    items = [BatchItem(row=n, prompt=f"p{n}", mode=Mode.GENERATE, images=(), model=None, options=ImageOptions())
             for n in range(1, 7)]

    async def scenario(studio, concurrency=None):
        plan = plan_batch(studio, items, out_dir=tmp_path / f"out{concurrency}")
        return await run_batch(studio, plan, out_dir=tmp_path / f"out{concurrency}", concurrency=concurrency)

    in_studio(limited, scenario)
    arrivals = [r.received_at for r in emulator.generate_requests]
    # All six in flight together (not a fixed cap of a few): the last arrived before the first could be answered.
    assert len(arrivals) == 6 and max(arrivals) - min(arrivals) < emulator.delay_s


# The command line.

def cli_env(emulator, home: Path, **extra: str) -> dict[str, str]:
    return app_env(GEMINI_API_KEY=TEST_KEY, NANOBANANA_BASE_URL=emulator.base_url, NANOBANANA_HOME=str(home),
                   PYTHONPATH=str(ROOT), **extra)


@pytest.mark.slow
def test_resume_after_kill_9_sends_no_finished_item_again(emulator, tmp_path):
    emulator.delay_s = 0.4
    path = tmp_path / "slow.txt"
    path.write_text("".join(f"item {n}\n" for n in range(1, 13)))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "nanobanana_ui", "batch", str(path), "--out", str(out), "--concurrency", "2",
               "--json"]
    env = cli_env(emulator, tmp_path / "home")
    first = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not (out / "manifest.jsonl").exists() or len(manifest(out)) < 4):
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    finished_before = {line["prompt"] for line in manifest(out) if line["status"] == "done"}
    sent_before = [r.prompt for r in emulator.generate_requests]
    assert 4 <= len(finished_before) < 12, "the kill must land mid-run"

    second = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    sent_after = [r.prompt for r in emulator.generate_requests][len(sent_before):]
    assert not set(sent_after) & finished_before  # nothing finished is sent again
    assert len(set(sent_after) & set(sent_before)) <= 2  # at most the requests in flight at the kill (concurrency)
    assert len(sent_before) + len(sent_after) <= 12 + 2  # so at most 2 of the 12 were paid twice
    records = [json.loads(line) for line in second.stdout.splitlines()]
    assert sorted(r["row"] for r in records) == list(range(1, 13))  # every item, the earlier ones too
    assert {r["prompt"] for r in records if r["status"] == "earlier"} == finished_before
    final = {(line["row"]) for line in manifest(out) if line["status"] in ("done", "cached")}
    assert final == set(range(1, 13))
    assert all(Path(r["path"]).is_file() for r in records)


def test_dry_run_validates_and_sends_nothing(emulator, tmp_path, monkeypatch, capsys):
    for name, value in cli_env(emulator, tmp_path / "home").items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "plan.csv"
    path.write_text("prompt,count\na fox,3\na cat,\n")
    assert main(["batch", str(path), "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "2 item(s), 4 request(s); 0 done in an earlier run, 4 to send" in err
    assert "estimated cost $0.13" in err and "line 2: generate x3" in err  # 4 x $0.0336 (the default, 2.1 at 1K)
    assert emulator.generate_requests == [] and not (tmp_path / "home" / "batches").exists()

    path.write_text("prompt,size\na fox,8K\nok,\n")
    assert main(["batch", str(path), "--dry-run"]) == 2
    assert "line 2:" in capsys.readouterr().err and emulator.generate_requests == []


@pytest.mark.slow
def test_an_expensive_batch_needs_confirmation(emulator, tmp_path):
    path = tmp_path / "many.txt"
    path.write_text("".join(f"shot {n}\n" for n in range(60)))  # 60 x $0.0336 = $2.02 (the default, 2.1 at 1K)
    env = cli_env(emulator, tmp_path / "home")
    command = [sys.executable, "-m", "nanobanana_ui", "batch", str(path)]
    refused = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
    assert refused.returncode == 2
    assert "estimated at $2.02" in refused.stderr and "--yes" in refused.stderr
    assert emulator.generate_requests == []
    done = subprocess.run([*command, "--yes", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert len(emulator.generate_requests) == 60 and len(done.stdout.splitlines()) == 60


def test_cli_exit_code_is_the_first_failures_and_json_has_failed_items(emulator, tmp_path, monkeypatch, capsys):
    for name, value in cli_env(emulator, tmp_path / "home").items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "f.txt"
    path.write_text("ok\nblocked\n")
    emulator.fail_next(Fault.delay(0), Fault.blocked())
    assert main(["batch", str(path), "--concurrency", "1", "--json", "--out", str(tmp_path / "o")]) == 5
    out = capsys.readouterr()
    records = [json.loads(line) for line in out.out.splitlines()]
    assert [(r["row"], r["status"]) for r in records] == [(1, "done"), (2, "failed")]
    assert records[1]["error_type"] == "PromptBlockedError" and records[1]["prompt"] == "blocked"
    assert {"path", "prompt", "row", "model", "cached", "cost_usd", "finish_reason", "tokens"} <= set(records[0])
    assert "failed: line 2:" in out.err


def test_cancel_leaves_requests_waiting_for_the_rate_limit_unsent(settings, emulator, tmp_path):
    limited = settings.__class__(**{**settings.__dict__, "rpm": 2, "rate_window_s": 60.0})
    items = [BatchItem(row=n, prompt=f"slow {n}", mode=Mode.GENERATE, images=(), model=None, options=ImageOptions())
             for n in range(1, 5)]

    async def scenario(studio):
        cancel = asyncio.Event()
        plan = plan_batch(studio, items, out_dir=tmp_path / "out")
        asyncio.get_running_loop().call_later(1.0, cancel.set)  # rows 3 and 4 then wait a minute for the limit
        started = time.perf_counter()
        summary = await run_batch(studio, plan, out_dir=tmp_path / "out", cancel=cancel)
        return summary, time.perf_counter() - started, studio.sender._limiter.used()

    summary, elapsed, used = in_studio(limited, scenario)
    assert summary.cancelled and (summary.done, summary.failed) == (2, 0) and elapsed < 30  # not the 60 s window
    assert sorted(r.prompt for r in emulator.generate_requests) == ["slow 1", "slow 2"]
    assert used == 2  # the slots taken but not used were given back, not held for a window
