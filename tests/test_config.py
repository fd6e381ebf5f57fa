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


def test_web_concurrency_defaults_to_4_and_is_configurable(tmp_path):
    assert load_settings(environ={}).concurrency == 4
    assert load_settings(environ={"NANOBANANA_CONCURRENCY": "9"}).concurrency == 9
