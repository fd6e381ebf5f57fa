"""Every no-image outcome and every error class: the typed error, its message, and the CLI's exit code."""

from __future__ import annotations

import socket

import pytest
from conftest import TEST_KEY, in_studio

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain import errors
from nanobanana_ui.domain.config import Settings
from nanobanana_ui.emulator import Fault

CASES = [
    (Fault.blocked("PROHIBITED_CONTENT"), errors.PromptBlockedError, r"blocked the prompt \(PROHIBITED_CONTENT\)", 5),
    (Fault.no_image("IMAGE_SAFETY"), errors.ImageWithheldError, r"safety filter withheld the image", 5),
    (Fault.no_image("NO_IMAGE"), errors.ImageWithheldError, r"without making an image \(NO_IMAGE\)", 5),
    (Fault.text_only("Which fox do you mean?"), errors.TextOnlyError, "text instead of an image: Which fox", 5),
    (Fault.rate_limit(retry_delay="12.77s"), errors.RateLimitError, "Rate limit reached .* try again in 13 s", 4),
    (Fault.daily_quota(), errors.RateLimitError, r"daily quota .* resets at midnight Pacific time, in \d+ h", 4),
    (Fault.server_error(500), errors.ServerError, "internal error", 6),
    (Fault.overloaded(), errors.ServerError, "overloaded", 6),
    (Fault.server_error(504), errors.ServerError, "took too long", 6),
    (Fault.server_error(502), errors.ServerError, r"\(502 Bad Gateway\): an HTML page instead of an API answer", 6),
    (Fault.bad_key(), errors.InvalidKeyError, "API key was rejected.*aistudio.google.com/apikey", 3),
    (Fault.permission_denied(), errors.PermissionDeniedError, "Permission denied", 3),
    (Fault.not_found(), errors.ModelNotFoundError, "not found: the id is wrong or the model was retired", 2),
    (Fault.drop_connection(), errors.NetworkError, "Could not reach Gemini", 6),
    (Fault.not_json(), errors.BadResponseError, "answered something unreadable", 6),
]


@pytest.mark.parametrize("fault, error_type, message, exit_code", CASES, ids=[c[0].kind for c in CASES])
def test_outcome_becomes_typed_error_with_message(settings, emulator, fault, error_type, message, exit_code):
    emulator.fail_next(fault)
    # A 404 from a retiring model (the fixture's 2.5 Flash) is sent once more on its successor (issue 20): a GA one
    # shows the 404 as it is.
    model = "gemini-3-pro-image" if fault.kind == "not_found" else None
    with pytest.raises(error_type, match=message) as caught:
        in_studio(settings, lambda s: s.generate("a fox", model=model))
    assert caught.value.exit_code == exit_code
    assert TEST_KEY not in str(caught.value)
    assert len(emulator.generate_requests) == 1


@pytest.mark.parametrize("fault, error_type, message, exit_code", CASES, ids=[c[0].kind for c in CASES])
def test_cli_reports_one_line_and_exit_code(emulator, monkeypatch, capsys, tmp_path, fault, error_type, message,
                                            exit_code):
    monkeypatch.setenv("GEMINI_API_KEY", TEST_KEY)
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.base_url)
    monkeypatch.setenv("NANOBANANA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NANOBANANA_RETRIES", "1")  # the scripted failure is the outcome
    emulator.fail_next(fault)
    assert main(["generate", "a fox"]) == exit_code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "Traceback" not in err[0] and TEST_KEY not in err[0]


def test_rate_limit_error_carries_the_servers_wait_and_quota(settings, emulator):
    emulator.fail_next(Fault.rate_limit(retry_delay="17s"))
    with pytest.raises(errors.RateLimitError) as caught:
        in_studio(settings, lambda s: s.generate("a fox"))
    assert caught.value.retry_after_s == 17.0
    assert caught.value.quota_id == "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
    assert not caught.value.per_day
    emulator.fail_next(Fault.daily_quota())
    with pytest.raises(errors.RateLimitError) as caught:
        in_studio(settings, lambda s: s.generate("a fox"))
    assert caught.value.per_day


def test_unknown_model_lists_the_image_models_the_key_can_use(settings, emulator):
    with pytest.raises(errors.ModelNotFoundError) as caught:
        in_studio(settings, lambda s: s.generate("a fox", model="gemini-1.0-retired-image"))
    assert "gemini-2.5-flash-image" in caught.value.available
    assert "Image models this key can use: " in caught.value.message
    assert any(r.path.startswith("/v1beta/models") and r.method == "GET" for r in emulator.requests)


def test_timeout_is_a_service_timeout(emulator, tmp_path):
    settings = Settings(api_key=TEST_KEY, base_url=emulator.base_url, home=tmp_path / "h", timeout_s=1,
                        max_attempts=1)
    emulator.fail_next(Fault.delay(3))
    with pytest.raises(errors.ServiceTimeoutError, match="did not answer in time"):
        in_studio(settings, lambda s: s.generate("slow"))


@pytest.mark.slow
def test_nothing_listening_is_a_network_error(tmp_path):
    with socket.socket() as sock:  # find a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(api_key=TEST_KEY, base_url=f"http://127.0.0.1:{port}", home=tmp_path / "h", timeout_s=5)
    with pytest.raises(errors.NetworkError, match="NANOBANANA_BASE_URL"):
        in_studio(settings, lambda s: s.generate("unreachable"))


def test_map_error_passes_studio_errors_through_and_wraps_the_unknown():
    original = errors.InputError("x")
    assert errors.map_error(original) is original
    assert type(errors.map_error(RuntimeError("boom"))) is errors.StudioError
