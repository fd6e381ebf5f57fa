"""The command line as scripts use it: --json lines, files on disk, exit codes, and no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TEST_KEY, png_bytes
from PIL import Image

from nanobanana_ui.cli.main import SIGPIPE_EXIT, main

REQUIRED = {"path", "prompt", "model", "cached", "cost_usd", "finish_reason", "tokens"}
ROOT = Path(__file__).resolve().parents[1]



def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_generate_json_with_options(keyed_env, capsys, tmp_path):
    code = main(["generate", "a red fox", "--json", "--aspect-ratio", "16:9", "--temperature", "0.4", "--top-p", "0.8",
                 "--top-k", "20", "--seed", "7", "--out", str(tmp_path / "out")])
    assert code == 0
    [record] = json_lines(capsys.readouterr().out)
    assert REQUIRED <= set(record)
    assert record["prompt"] == "a red fox" and record["model"] == "gemini-nano-banana-2.1"  # the default
    assert record["cached"] is False and record["cost_usd"] > 0 and record["finish_reason"] == "STOP"
    assert Path(record["path"]).parent == tmp_path / "out"
    with Image.open(record["path"]) as image:
        assert image.size == (1376, 768)  # Gemini 3's 16:9 at 1K
    config = keyed_env.generate_requests[0].generation_config
    assert (config["temperature"], config["topP"], config["topK"], config["seed"]) == (0.4, 0.8, 20, 7)


def test_one_result_record_for_generate_batch_and_history(keyed_env, capsys, tmp_path):
    """The --json record (ImageResult.to_record, one line per image) is the same for generate, batch and history."""
    keys = ["path", "prompt", "model", "mode", "cached", "cost_usd", "saved_usd", "finish_reason", "text", "width",
            "height", "sha256", "variation", "seed", "tokens", "elapsed_s", "id", "sources", "parent", "turn"]
    assert main(["generate", "one record", "--json", "--seed", "3", "--out", str(tmp_path / "g")]) == 0
    [made] = json_lines(capsys.readouterr().out)
    assert list(made) == keys
    sent = keyed_env.generate_requests[0]
    assert made["prompt"] == sent.prompt == "one record" and made["seed"] == sent.generation_config["seed"] == 3
    assert (made["mode"], made["variation"], made["cached"], made["saved_usd"]) == ("generate", 0, False, 0.0)
    assert (made["parent"], made["turn"]) == (None, 1)  # a root; refinements carry their parent and turn
    assert set(made["tokens"]) == {"prompt", "output", "total"} and made["tokens"]["output"] > 0
    with Image.open(made["path"]) as image:
        assert [made["width"], made["height"]] == list(image.size)

    batch = tmp_path / "rows.txt"
    batch.write_text("one record\n", encoding="utf-8")
    assert main(["batch", str(batch), "--json", "--seed", "3", "--out", str(tmp_path / "b")]) == 0
    [row] = json_lines(capsys.readouterr().out)
    assert list(row) == keys + ["row", "status"]
    assert (row["row"], row["status"], row["cached"], row["cost_usd"]) == (1, "cached", True, 0.0)
    assert row["saved_usd"] == made["cost_usd"] > 0 and row["sha256"] == made["sha256"]
    assert len(keyed_env.generate_requests) == 1  # the batch row was the same request: a cache hit
    manifest = json.loads((tmp_path / "b" / "manifest.jsonl").read_text(encoding="utf-8"))
    assert manifest["id"] == row["id"] and manifest["images"][0]["path"] == Path(row["path"]).name

    assert main(["history", "--json", "--limit", "1"]) == 0
    [entry] = json_lines(capsys.readouterr().out)
    assert list(entry) == ["id", "time", "mode", "model", "prompt", "paths", "cost_usd", "cached", "finish_reason",
                           "text", "tokens", "elapsed_s", "options", "error", "error_type", "sources", "parent",
                           "turn"]
    assert (entry["prompt"], entry["cached"], entry["tokens"]) == ("one record", True, made["tokens"])


def test_second_run_is_cached(keyed_env, capsys):
    main(["generate", "cached fox", "--json"])
    main(["generate", "cached fox", "--json"])
    records = json_lines(capsys.readouterr().out)
    assert [r["cached"] for r in records] == [False, True]
    assert records[1]["cost_usd"] == 0
    assert len(keyed_env.generate_requests) == 1
    main(["generate", "cached fox", "--json", "--no-cache"])
    assert len(keyed_env.generate_requests) == 2


def test_the_cli_and_the_page_word_cost_and_status_alike(keyed_env, capsys):
    from nanobanana_ui.domain.costs import cost_text, status_text

    assert [cost_text(0.03874, cached=False), cost_text(None), cost_text(0.04, cached=True)] == [
        "$0.0387", "cost unknown", "cached · $0"]
    assert status_text(cost_usd=0.5, cached=False, finish_reason=None, elapsed_s=4.24) == "$0.5000 · 4.2 s"
    assert status_text(cost_usd=None, cached=True, finish_reason="MAX_TOKENS", elapsed_s=0.0123, text=" hi ") == (
        "cached · $0 · finished: MAX_TOKENS · 12 ms · hi")
    main(["generate", "worded fox"])
    main(["generate", "worded fox"])
    first, second = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("  ")]
    assert ", $0.0" in first and ", cached · $0, " in second and len(keyed_env.generate_requests) == 1


def test_count_gives_n_images_from_n_calls(keyed_env, capsys):
    assert main(["generate", "many foxes", "--count", "4", "--json"]) == 0
    records = json_lines(capsys.readouterr().out)
    assert len(records) == 4 and len({r["path"] for r in records}) == 4
    assert sorted(r["variation"] for r in records) == [0, 1, 2, 3]
    assert len(keyed_env.generate_requests) == 4


def test_edit_and_compose(keyed_env, capsys, tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(png_bytes(color=(255, 0, 0)))
    b.write_bytes(png_bytes(color=(0, 0, 255)))
    assert main(["edit", str(a), "make it green", "--json"]) == 0
    assert main(["compose", str(a), str(b), "--prompt", "side by side", "--json"]) == 0
    edit, compose = keyed_env.generate_requests
    assert edit.images == [a.read_bytes()] and edit.prompt == "make it green"
    assert compose.images == [a.read_bytes(), b.read_bytes()] and compose.prompt == "side by side"
    assert len(json_lines(capsys.readouterr().out)) == 2


@pytest.mark.parametrize("argv, message", [
    (["generate", ""], "prompt is empty"),
    (["generate", "x", "--model", "gemini-2.5-flash-image", "--size", "4K"], "does not make 4K"),
    (["generate", "x", "--count", "0"], "between 1 and 100"),
    (["edit", "missing.png", "x"], "missing.png"),
])
def test_bad_input_exit_code_2_and_no_request(keyed_env, capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert keyed_env.requests == []


def test_models_lists_the_registry(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "gemini-2.5-flash-image" in out and "retiring" in out and "default: gemini-nano-banana-2.1" in out
    assert "gemini-3-pro-image-preview       shut down on 2026-06-25; use gemini-3-pro-image" in out


@pytest.mark.slow
def test_real_process_without_a_key_runs_offline(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE", "NANO"))}
    env.update(NANOBANANA_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "nanobanana_ui", "generate", "a red fox", "--json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [record] = json_lines(done.stdout)
    assert Path(record["path"]).is_file() and Path(record["path"]).is_relative_to(tmp_path / "home")
    assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_closed_pipe_stops_quietly_and_keeps_the_image(emulator, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE", "NANO"))}
    env.update(GEMINI_API_KEY=TEST_KEY, NANOBANANA_BASE_URL=emulator.base_url, NANOBANANA_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(ROOT))
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head -c 0`: the reader is gone before the record is printed
    try:
        done = subprocess.run([sys.executable, "-m", "nanobanana_ui", "generate", "a red fox", "--json"], cwd=tmp_path,
                              env=env, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (SIGPIPE_EXIT, "")  # no "unexpected BrokenPipeError", no traceback
    assert len(emulator.generate_requests) == 1
    assert len(list((tmp_path / "home" / "outputs").glob("*.png"))) == 1  # the image made is kept


@pytest.mark.slow
def test_real_process_bad_image_one_line_exit_2(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI", "GOOGLE", "NANO"))}
    env.update(NANOBANANA_HOME=str(tmp_path / "home"), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "nanobanana_ui", "edit", str(fake), "brighten"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "notes.png" in done.stderr
