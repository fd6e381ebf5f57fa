"""The prompt enhancer and image to prompt, through the real SDK against the emulator: what was sent, cost, cache,
history, and the refusals (blocked, empty, a text model the key lacks)."""

from __future__ import annotations

import io
import json

import pytest
from conftest import TEST_KEY, png_bytes
from PIL import Image

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.models import known_models
from nanobanana_ui.emulator.faults import Fault
from nanobanana_ui.storage.history import HistoryStore

TEXT_MODEL = "gemini-3.1-flash-lite"



def one(text: str) -> dict:
    [record] = [json.loads(line) for line in text.splitlines() if line.strip()]
    return record


def entries(home):
    store = HistoryStore(home)
    try:
        return store.page()
    finally:
        store.close()


def test_enhance_keeps_the_words_adds_sections_costs_caches_and_records(keyed_env, capsys, tmp_path):
    idea = 'a fox in snow holding a sign that says "OPEN LATE"'
    assert main(["prompt", "enhance", idea, "--json"]) == 0
    record = one(capsys.readouterr().out)
    [sent] = keyed_env.generate_requests
    assert sent.model == TEXT_MODEL and sent.prompt == idea and not sent.images
    system = sent.body["systemInstruction"]["parts"][0]["text"]
    assert "subject" in system and "quoted exactly" in system
    assert sent.generation_config["responseModalities"] == ["TEXT"]
    assert record["model"] == TEXT_MODEL and record["prompt"].startswith(idea)
    for label in ("Subject:", "Composition:", "Lighting:", "Palette:", "Lens or medium:"):
        assert label in record["prompt"]
    assert 'Text to render: "OPEN LATE"' in record["prompt"]
    tokens = record["tokens"]
    assert record["cost_usd"] == pytest.approx((tokens["prompt"] * 0.25 + tokens["output"] * 1.50) / 1e6)
    assert record["cost_usd"] > 0 and record["cached"] is False

    assert main(["prompt", "enhance", idea, "--json"]) == 0
    again = one(capsys.readouterr().out)
    assert again["cached"] is True and again["cost_usd"] == 0 and again["prompt"] == record["prompt"]
    assert len(keyed_env.generate_requests) == 1  # the cache answered: no second call

    newest, first = entries(tmp_path / "home")
    assert (first.mode, first.model, first.prompt, first.text) == ("enhance", TEXT_MODEL, idea, record["prompt"])
    assert first.cost_usd == record["cost_usd"] and newest.cached and first.id == record["id"]


def test_enhance_with_a_style_sends_the_styled_idea(keyed_env, capsys):
    assert main(["prompt", "enhance", "a lamp", "--style", "product-studio", "--json"]) == 0
    record = one(capsys.readouterr().out)
    assert keyed_env.generate_requests[0].prompt.startswith("Studio product photograph of a lamp on a seamless")
    assert record["style"] == "product-studio"


def test_text_model_override_and_a_model_the_key_lacks(keyed_env, capsys, monkeypatch):
    keyed_env.allow_models(TEST_KEY, [spec.id for spec in known_models()])  # image models only
    assert main(["prompt", "enhance", "a fox"]) == 2
    err = capsys.readouterr().err
    assert TEXT_MODEL in err and "NANOBANANA_TEXT_MODEL" in err and "Traceback" not in err
    monkeypatch.setenv("NANOBANANA_TEXT_MODEL", "gemini-9-text")
    assert main(["prompt", "enhance", "a fox"]) == 2
    assert keyed_env.generate_requests[-1].model == "gemini-9-text"


@pytest.mark.parametrize(("fault", "message"), [
    (Fault.blocked("PROHIBITED_CONTENT"), "blocked the request (PROHIBITED_CONTENT); the original prompt is kept"),
    (Fault.text_only(""), "answered with no words"),
])
def test_a_blocked_or_empty_answer_says_so(keyed_env, capsys, tmp_path, fault, message):
    keyed_env.fail_next(fault)
    assert main(["prompt", "enhance", "a fox"]) == 5
    assert message in capsys.readouterr().err
    [entry] = entries(tmp_path / "home")
    assert entry.mode == "enhance" and entry.error and message.split(" (")[0] in entry.error


def test_describe_states_size_and_dominant_colours_and_strips_metadata(keyed_env, capsys, tmp_path):
    photo = tmp_path / "photo.jpg"
    image = Image.new("RGB", (320, 200), (30, 60, 220))
    exif = Image.Exif()
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPSInfo: a latitude
    exif[0x013B] = "Jane Owner"  # Artist
    image.save(photo, exif=exif, quality=95)
    assert main(["prompt", "describe", str(photo), "--json"]) == 0
    record = one(capsys.readouterr().out)
    [sent] = keyed_env.generate_requests
    assert sent.model == TEXT_MODEL and len(sent.images) == 1
    with Image.open(io.BytesIO(sent.images[0])) as received:
        assert received.size == (320, 200)
        assert not received.getexif().get(0x8825) and not received.getexif().get(0x013B)  # privacy stripped
    assert "320x200" in record["prompt"] and "blue" in record["prompt"]
    assert set(record) >= {"prompt", "model", "cost_usd"} and record["cost_usd"] > 0
    [entry] = entries(tmp_path / "home")
    assert entry.mode == "describe" and entry.text == record["prompt"] and len(entry.input_hashes) == 1


def test_describe_for_edit_writes_the_instruction_between_two_images(keyed_env, capsys, tmp_path):
    before, after = tmp_path / "before.png", tmp_path / "after.png"
    before.write_bytes(png_bytes((64, 48), (220, 20, 20)))
    after.write_bytes(png_bytes((64, 48), (20, 200, 40)))
    assert main(["prompt", "describe", str(before), str(after), "--for-edit", "--json"]) == 0
    record = one(capsys.readouterr().out)
    assert len(keyed_env.generate_requests[0].images) == 2
    assert record["prompt"].startswith("Change the 64x48 image") and "red" in record["prompt"]
    assert "green" in record["prompt"]
    assert main(["prompt", "describe", str(before), "--for-edit"]) == 2
    assert "two images" in capsys.readouterr().err
    assert len(keyed_env.generate_requests) == 1


def test_enhance_retries_a_rate_limit_counts_the_budget_and_meters_the_cost(settings, emulator):
    from dataclasses import replace

    from conftest import in_studio

    from nanobanana_ui.service.prompt_craft import PromptCrafter

    emulator.fail_next(Fault.rate_limit("0.2s"))
    events: list[str] = []

    async def scenario(studio):
        result = await PromptCrafter(studio).enhance("a quiet harbour", on_event=events.append)
        return result, studio.usage_today()

    result, usage = in_studio(replace(settings, max_attempts=3), scenario)
    assert [r.status for r in emulator.generate_requests] == [429, 200]  # the server's wait, then the answer
    assert any("retrying in" in line for line in events)
    assert usage.requests == 2 and result.cost_usd > 0
    assert usage.cost_usd == pytest.approx(result.cost_usd, abs=1e-6)  # the meter counts micro-dollars
