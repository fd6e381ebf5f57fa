"""Settings resolve in one chain: explicit value, then .env, then the environment, then the default."""

from __future__ import annotations

from pathlib import Path

import pytest

from nanobanana_ui.domain.config import load_settings
from nanobanana_ui.domain.errors import ConfigError


def test_defaults(tmp_path):
    settings = load_settings(environ={})
    assert settings.model == "gemini-nano-banana-2.1"  # Nano Banana 2.1, GA since 2026-10-06 (3.1 Flash deprecated)
    assert settings.api_key is None and settings.uses_emulator
    assert (settings.rpm, settings.rpd, settings.cache_size_bytes) == (60, 1500, 2 * 1024**3)


def test_chain_order(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("NANOBANANA_MODEL=from-dotenv\nNANOBANANA_RPM=7\n")
    environ = {"NANOBANANA_MODEL": "from-env", "NANOBANANA_RPM": "9", "NANOBANANA_RPD": "11"}
    settings = load_settings({"rpm": 3}, env_file=env_file, environ=environ)
    assert settings.model == "from-dotenv"  # .env beats the environment
    assert settings.rpm == 3  # explicit beats both
    assert settings.rpd == 11  # environment beats the default


def test_key_aliases_and_precedence():
    assert load_settings(environ={"NANO_BANANA_API_KEY": "old"}).api_key == "old"
    assert load_settings(environ={"GOOGLE_API_KEY": "g", "NANO_BANANA_API_KEY": "old"}).api_key == "g"
    assert load_settings(environ={"GOOGLE_API_KEY": "g", "GEMINI_API_KEY": "ours"}).api_key == "ours"


def test_key_from_dotenv_file_is_used_but_never_shown(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("GEMINI_API_KEY=secret-from-file\n")
    settings = load_settings(env_file=env_file, environ={})
    assert settings.api_key == "secret-from-file" and not settings.uses_emulator
    assert "secret-from-file" not in repr(settings)


def test_base_url_ours_first_then_the_sdks():
    sdk = {"GOOGLE_GEMINI_BASE_URL": "http://relay.example/"}
    assert load_settings(environ=sdk).base_url == "http://relay.example"
    both = {**sdk, "NANOBANANA_BASE_URL": "http://ours.example"}
    assert load_settings(environ=both).base_url == "http://ours.example"


def test_home_offline_and_output_dir(tmp_path):
    settings = load_settings(environ={"NANOBANANA_HOME": str(tmp_path), "NANOBANANA_OFFLINE": "1",
                                      "GEMINI_API_KEY": "k"})
    assert settings.home == Path(tmp_path) and settings.offline and settings.uses_emulator
    assert settings.output_dir == Path(tmp_path) / "outputs"


@pytest.mark.parametrize("environ, message", [
    ({"NANOBANANA_RPM": "fast"}, "NANOBANANA_RPM='fast' is not a number"),
    ({"NANOBANANA_RPD": "0"}, "must be at least 1"),
    ({"NANOBANANA_OFFLINE": "maybe"}, "not a yes/no value"),
    ({"NANOBANANA_CONCURRENCY": "0"}, "NANOBANANA_CONCURRENCY='0' must be at least 1"),
])
def test_bad_values_are_clear_errors(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_web_concurrency_defaults_to_48_and_is_configurable(tmp_path):
    assert load_settings(environ={}).concurrency == 48
    assert load_settings(environ={"NANOBANANA_CONCURRENCY": "9"}).concurrency == 9


def test_crowd_settings_have_documented_defaults_and_are_configurable():
    default = load_settings(environ={}, env_file=None)
    assert (default.visitor_concurrency, default.visitor_queue, default.queue_size, default.cpu_threads,
            default.proxy_hops, default.max_sessions, default.emulator_log, default.emulator_delay_s) == (
        2, 8, 64, 0, 0, 500, 100, 0.0)
    assert default.cpu_workers >= 1
    custom = load_settings(environ={"NANOBANANA_VISITOR_CONCURRENCY": "3", "NANOBANANA_VISITOR_QUEUE": "0",
                                    "NANOBANANA_QUEUE_SIZE": "10", "NANOBANANA_CPU_THREADS": "5",
                                    "NANOBANANA_PROXY_HOPS": "2", "NANOBANANA_MAX_SESSIONS": "50",
                                    "NANOBANANA_EMULATOR_LOG": "0", "NANOBANANA_EMULATOR_DELAY": "1.5"},
                           env_file=None)
    assert (custom.visitor_concurrency, custom.visitor_queue, custom.queue_size, custom.cpu_workers,
            custom.proxy_hops, custom.max_sessions, custom.emulator_log, custom.emulator_delay_s) == (
        3, 0, 10, 5, 2, 50, 0, 1.5)
    assert load_settings(environ={"SYSTEM": "spaces"}, env_file=None).proxy_hops == 1  # behind Spaces' proxy
    assert load_settings(environ={"SYSTEM": "spaces", "NANOBANANA_PROXY_HOPS": "0"}, env_file=None).proxy_hops == 0
    with pytest.raises(ConfigError, match="NANOBANANA_VISITOR_CONCURRENCY"):
        load_settings(environ={"NANOBANANA_VISITOR_CONCURRENCY": "0"}, env_file=None)
