"""The Vertex AI backend through the real SDK and google-auth, against the emulator's Vertex paths and tokens."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from conftest import in_studio
from PIL import Image
from test_privacy import has_gps, photo

from nanobanana_ui.backends.capabilities import GEMINI_API, VERTEX_AI
from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.config import Settings, load_settings
from nanobanana_ui.domain.errors import AuthError, ConfigError, InvalidKeyError, UnsupportedOptionError
from nanobanana_ui.domain.request import ImageOptions

PROJECT, EMAIL = "banana-test-project", "studio@banana-test-project.iam.gserviceaccount.com"
MODEL = "gemini-nano-banana-2.1"  # the default model
VERTEX_PATH = f"/v1beta1/projects/{PROJECT}/locations/global/publishers/google/models/{MODEL}:generateContent"


@pytest.fixture(scope="module")
def rsa_keys() -> tuple[str, bytes]:
    """A throwaway RSA key pair for the test service account (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def service_account_file(path: Path, private_pem: str, token_uri: str, project: str | None = PROJECT) -> Path:
    info = {"type": "service_account", "private_key_id": "test-key-1", "private_key": private_pem,
            "client_email": EMAIL, "client_id": "1234567890", "token_uri": token_uri,
            **({"project_id": project} if project else {})}
    path.write_text(json.dumps(info))
    return path


@pytest.fixture
def vertex_settings(emulator, tmp_path, rsa_keys) -> Settings:
    """Settings of a team on Vertex AI with a service-account key; calls and token requests go to the emulator."""
    emulator.tokens.public_keys[EMAIL] = rsa_keys[1]  # the emulator checks each JWT's signature
    key_file = service_account_file(tmp_path / "sa.json", rsa_keys[0], emulator.token_uri)
    return Settings(backend="vertex", google_project=PROJECT, google_credentials=key_file, base_url=emulator.base_url,
                    home=tmp_path / "home", timeout_s=10, max_attempts=1)


def test_generate_goes_to_the_vertex_path_with_a_service_account_token(vertex_settings, emulator):
    async def scenario(studio):
        first = await studio.generate("a lighthouse at dusk")
        again = await studio.generate("a lighthouse at dusk")
        return first, again, studio.history.page(limit=5)

    first, again, history = in_studio(vertex_settings, scenario)
    [request] = emulator.generate_requests  # the second answer came from the cache
    assert request.vertex is not None and request.vertex.path == VERTEX_PATH
    assert (request.vertex.project, request.vertex.location) == (PROJECT, "global")
    assert request.api_key is None and request.headers["authorization"] == f"Bearer {request.vertex.token}"
    [grant] = emulator.tokens.grants
    assert grant["iss"] == EMAIL and grant["scope"] == "https://www.googleapis.com/auth/cloud-platform"
    assert request.prompt == "a lighthouse at dusk" and first.images[0].path.is_file()
    assert first.cost_usd and first.cost_usd > 0 and again.cached and again.cost_usd == 0
    assert [entry.prompt for entry in history] == ["a lighthouse at dusk"] * 2


def test_edit_and_compose_on_vertex_send_private_inputs(vertex_settings, emulator):
    original = photo()

    async def scenario(studio):
        await studio.edit(original, "make it autumn")
        await studio.compose([original, photo(size=(64, 64))], "side by side")

    in_studio(vertex_settings, scenario)
    edit, compose = emulator.generate_requests
    assert edit.vertex.path == compose.vertex.path == VERTEX_PATH
    assert edit.part_kinds == ["text", "image"] and compose.part_kinds == ["text", "image", "image"]
    assert not any(has_gps(image) for image in edit.images + compose.images)


def test_jpeg_output_with_quality_and_person_generation(vertex_settings, emulator):
    options = ImageOptions(output_mime_type="image/jpeg", output_quality=80, person_generation="ALLOW_ADULT")
    result = in_studio(vertex_settings, lambda studio: studio.generate("a crowd at a market", options=options))
    image_config = emulator.generate_requests[0].generation_config["imageConfig"]
    assert image_config["imageOutputOptions"] == {"mimeType": "image/jpeg", "compressionQuality": 80}
    assert image_config["personGeneration"] == "ALLOW_ADULT"
    [image] = result.images
    assert image.mime_type == "image/jpeg" and image.path.suffix == ".jpg"
    assert image.path.read_bytes() == emulator.generate_requests[0].reply_images[0]
    with Image.open(image.path) as saved:
        assert saved.format == "JPEG"


def test_vertex_only_options_are_refused_on_the_gemini_api_before_any_call(settings, emulator):
    for options, words in [(ImageOptions(output_mime_type="image/jpeg"), "Output format image/jpeg"),
                           (ImageOptions(output_quality=90), "JPEG quality"),
                           (ImageOptions(person_generation="ALLOW_ALL"), "Person generation")]:
        with pytest.raises(UnsupportedOptionError, match=words) as caught:
            in_studio(settings, lambda studio, o=options: studio.generate("people", options=o))
        assert "NANOBANANA_BACKEND=vertex" in caught.value.message
    assert emulator.requests == []


def test_express_mode_uses_the_api_key_on_the_publisher_path(emulator, tmp_path):
    settings = Settings(backend="vertex", api_key="vertex-express-test-key", base_url=emulator.base_url,
                        home=tmp_path / "home", timeout_s=10, max_attempts=1)
    in_studio(settings, lambda studio: studio.generate("a pear"))
    [request] = emulator.generate_requests
    assert request.vertex.path == f"/v1beta1/publishers/google/models/{MODEL}:generateContent"
    assert request.api_key == "vertex-express-test-key" and "authorization" not in request.headers


def test_an_expired_token_is_refreshed_before_the_call(vertex_settings, emulator):
    emulator.tokens.lifetime_s = 120  # under google-auth's refresh margin (3 min 45 s): stale before every call

    async def scenario(studio):
        await studio.generate("first")
        await studio.generate("second")

    in_studio(vertex_settings, scenario)
    first, second = emulator.generate_requests
    assert len(emulator.tokens.grants) == 2 and first.vertex.token != second.vertex.token
    assert first.status == second.status == 200


def test_a_token_the_service_no_longer_accepts_is_one_clear_line(vertex_settings, emulator):
    async def scenario(studio):
        await studio.generate("first")
        emulator.tokens.expire_all()  # revoked server-side; google-auth still believes it is good
        await studio.generate("second")

    with pytest.raises(InvalidKeyError) as caught:
        in_studio(vertex_settings, scenario)
    assert "Vertex AI rejected the credentials (401" in caught.value.message
    assert "gcloud auth application-default login" in caught.value.message and "\n" not in caught.value.message


def test_a_key_the_token_service_refuses_is_one_clear_line(vertex_settings, emulator, rsa_keys):
    emulator.tokens.public_keys[EMAIL] = _other_public_key()  # the file's key is not the account's key
    with pytest.raises(AuthError) as caught:
        in_studio(vertex_settings, lambda studio: studio.generate("anything"))
    assert caught.value.message.startswith("Google Cloud would not issue an access token (invalid_grant")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in caught.value.message and emulator.generate_requests == []


def _other_public_key() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_settings_from_the_environment():
    assert load_settings(environ={}).backend == "gemini"
    env = {"NANOBANANA_BACKEND": "vertex", "GOOGLE_CLOUD_PROJECT": "p1", "GOOGLE_APPLICATION_CREDENTIALS": "/k.json"}
    settings = load_settings(environ=env)
    assert (settings.backend, settings.google_project, settings.google_location) == ("vertex", "p1", "global")
    assert settings.google_credentials == Path("/k.json") and not settings.uses_emulator
    assert load_settings(environ={"GOOGLE_GENAI_USE_VERTEXAI": "true"}).vertex
    assert load_settings(environ={"GOOGLE_CLOUD_LOCATION": "us-central1"}).google_location == "us-central1"
    both = {"GOOGLE_GENAI_USE_VERTEXAI": "true", "NANOBANANA_BACKEND": "gemini"}
    assert load_settings(environ=both).backend == "gemini"  # ours wins
    with pytest.raises(ConfigError, match="NANOBANANA_BACKEND='cloud' is not a backend"):
        load_settings(environ={"NANOBANANA_BACKEND": "cloud"})


def test_gcloud_application_default_file_is_found(tmp_path):
    (tmp_path / "gcloud").mkdir()
    (tmp_path / "gcloud" / "application_default_credentials.json").write_text("{}")
    settings = load_settings(environ={"NANOBANANA_BACKEND": "vertex", "CLOUDSDK_CONFIG": str(tmp_path / "gcloud")})
    assert settings.google_credentials == tmp_path / "gcloud" / "application_default_credentials.json"


@pytest.fixture
def vertex_env(monkeypatch, emulator, tmp_path, rsa_keys):
    """A shell set up for Vertex: backend, project, key file; base URL pointed at the emulator; no gcloud login."""
    emulator.tokens.public_keys[EMAIL] = rsa_keys[1]
    monkeypatch.setenv("NANOBANANA_BACKEND", "vertex")
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", PROJECT)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS",
                       str(service_account_file(tmp_path / "sa.json", rsa_keys[0], emulator.token_uri)))
    monkeypatch.setenv("NANOBANANA_BASE_URL", emulator.base_url)
    monkeypatch.setenv("NANOBANANA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "no-gcloud"))
    return emulator


def test_cli_on_vertex_makes_a_jpeg(vertex_env, capsys):
    assert main(["generate", "a teapot", "--json", "--output-format", "jpeg", "--jpeg-quality", "70"]) == 0
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["path"].endswith(".jpg") and Path(record["path"]).read_bytes()[:3] == b"\xff\xd8\xff"
    assert vertex_env.generate_requests[0].vertex.path == VERTEX_PATH


def test_cli_refuses_jpeg_on_the_gemini_api(monkeypatch, emulator, capsys):
    monkeypatch.setenv("GEMINI_API_KEY", "test-key-not-secret")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", emulator.base_url)
    assert main(["generate", "a teapot", "--output-format", "jpeg"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert "only on Vertex AI" in line and emulator.requests == []


@pytest.mark.parametrize(("change", "words"), [
    ({"GOOGLE_APPLICATION_CREDENTIALS": None}, "run `gcloud auth application-default login`, or set "
                                               "GOOGLE_APPLICATION_CREDENTIALS"),
    ({"GOOGLE_APPLICATION_CREDENTIALS": "/nowhere/sa.json"}, "GOOGLE_APPLICATION_CREDENTIALS=/nowhere/sa.json "
                                                             "does not exist"),
    ({"GOOGLE_APPLICATION_CREDENTIALS": "garbage"}, "is not a service-account key or gcloud credentials file"),
    ({"GOOGLE_CLOUD_PROJECT": None, "GOOGLE_APPLICATION_CREDENTIALS": "no-project"}, "set GOOGLE_CLOUD_PROJECT"),
])
def test_cli_setup_problems_are_one_line(vertex_env, monkeypatch, tmp_path, capsys, rsa_keys, change, words):
    for name, value in change.items():
        if value is None:
            monkeypatch.delenv(name)
        elif value == "garbage":
            (tmp_path / "garbage.json").write_text("not json at all")
            monkeypatch.setenv(name, str(tmp_path / "garbage.json"))
        elif value == "no-project":
            path = service_account_file(tmp_path / "np.json", rsa_keys[0], vertex_env.token_uri, project=None)
            monkeypatch.setenv(name, str(path))
        else:
            monkeypatch.setenv(name, value)
    assert main(["generate", "a teapot"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err
    assert vertex_env.requests == []


def test_capabilities_say_what_vertex_lacks():
    with pytest.raises(UnsupportedOptionError, match="Gemini Batch Mode does not exist on Vertex AI"):
        VERTEX_AI.require_batch_mode()
    with pytest.raises(UnsupportedOptionError, match="Files API does not exist on Vertex AI"):
        VERTEX_AI.require_files_api()
    GEMINI_API.require_batch_mode()
    GEMINI_API.require_files_api()
    assert VERTEX_AI.strict_thought_signatures is False and GEMINI_API.strict_thought_signatures is True
    assert "image/jpeg" in VERTEX_AI.output_mime_types and "image/jpeg" not in GEMINI_API.output_mime_types


def test_studio_capabilities_follow_the_backend(vertex_settings, settings):
    from nanobanana_ui.service.studio import Studio

    assert Studio(vertex_settings).capabilities is VERTEX_AI
    assert Studio(settings).capabilities is GEMINI_API


def test_a_visitors_own_key_on_a_vertex_host_uses_the_gemini_api_not_the_hosts_project(vertex_settings, emulator):
    from nanobanana_ui.service.studio import Studio
    from nanobanana_ui.service.visitors import KeyRing

    async def scenario():
        async with Studio(vertex_settings.with_overrides(public=True)) as host:
            ring = KeyRing(host)
            visitor = ring.studio_for("visitor-key-not-secret")
            try:
                await visitor.generate("a visitor's picture")
                assert visitor.capabilities is GEMINI_API
            finally:
                await visitor.aclose()

    asyncio.run(scenario())
    [request] = emulator.generate_requests
    assert request.vertex is None and request.api_key == "visitor-key-not-secret"
    assert emulator.tokens.grants == []  # the host's service account was never used


def test_a_batch_file_runs_on_vertex(vertex_env, tmp_path, capsys):
    rows = tmp_path / "rows.txt"
    rows.write_text("a red kite\na blue kite\n")
    assert main(["batch", str(rows), "--yes", "--json", "--out", str(tmp_path / "kites")]) == 0
    assert [r.vertex.path for r in vertex_env.generate_requests] == [VERTEX_PATH] * 2
    assert sorted(r.prompt for r in vertex_env.generate_requests) == ["a blue kite", "a red kite"]
    capsys.readouterr()
