"""Public mode with bring-your-own-key: two visitors of `python app.py` (NANOBANANA_PUBLIC=1), their keys sent to a test
emulator through NANOBANANA_BASE_URL; each key goes only with its visitor's requests, nobody gets another's cached
image or history, a visitor without a key sends nothing, and no key is left in any file, log, page or /config."""

from __future__ import annotations

import asyncio
import os
import urllib.request
from pathlib import Path

import pytest
from conftest import TEST_KEY
from servers import app_env, start_app, stop_app

from nanobanana_ui.domain.config import Settings, load_settings
from nanobanana_ui.domain.errors import InvalidKeyError, MissingKeyError, RateLimitError
from nanobanana_ui.emulator import Fault
from nanobanana_ui.service.studio import Studio
from nanobanana_ui.service.visitors import MISSING_KEY_MESSAGE, KeyRing, VisitorLimits
from nanobanana_ui.ui.batch_tab import BatchPage
from nanobanana_ui.ui.history_library import Library
from nanobanana_ui.ui.runner import Runner
from nanobanana_ui.ui.runner_base import visitor_owner

KEY_A = "fakeVisitorA-0123456789abcdefghijklmnopq"
KEY_B = "fakeVisitorB-zyxwvutsrqponmlkjihgfedcba9"
HOST_KEY = "fakeHostKey-do-not-use-for-visitors-42"


@pytest.fixture(scope="module")
def public_app(module_emulator, tmp_path_factory):
    """The app in public mode (no host key), API calls to the test's emulator; yields (url, home, temp, log)."""
    home, temp = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("gradio")
    env = app_env(NANOBANANA_PUBLIC="1", NANOBANANA_BASE_URL=module_emulator.base_url, NANOBANANA_HOME=str(home),
                  GRADIO_TEMP_DIR=str(temp))
    process, url = start_app(env)
    yield url, home, temp
    output = stop_app(process)
    assert output is not None and KEY_A not in output and KEY_B not in output  # the app's whole log


def client(url):
    from gradio_client import Client

    return Client(url, verbose=False)


def app_error(call):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        call()
    return str(caught.value)


def test_each_visitors_key_goes_only_with_their_own_requests(public_app, emu):
    url = public_app[0]
    a, b = client(url), client(url)
    a.predict("a red fox", api_key=KEY_A, api_name="/generate")
    b.predict("a blue owl", api_key=KEY_B, api_name="/generate")
    a.predict("a green frog", api_key=KEY_A, api_name="/generate")
    sent = emu.generate_requests
    assert [(r.prompt, r.api_key) for r in sent] == [("a red fox", KEY_A), ("a blue owl", KEY_B),
                                                    ("a green frog", KEY_A)]


def test_b_sending_as_exact_request_gets_no_cached_result_of_as(public_app, emu):
    url = public_app[0]
    a, b = client(url), client(url)
    a_gallery, a_status = a.predict("a lighthouse at dusk", seed=7, api_key=KEY_A, api_name="/generate")
    a_again, again_status = a.predict("a lighthouse at dusk", seed=7, api_key=KEY_A, api_name="/generate")
    assert len(emu.generate_requests) == 1 and "cache" in again_status.lower()  # A's own repeat: A's cache
    b_gallery, b_status = b.predict("a lighthouse at dusk", seed=7, api_key=KEY_B, api_name="/generate")
    sent = emu.generate_requests
    assert len(sent) == 2 and sent[1].api_key == KEY_B  # B's request went out, with B's key
    assert "cache" not in b_status.lower()


def test_a_visitor_without_a_key_gets_the_message_and_nothing_is_sent(public_app, emu, tmp_path):
    url = public_app[0]
    c = client(url)
    message = app_error(lambda: c.predict("a red fox", api_name="/generate"))
    assert "aistudio.google.com/apikey" in message and "key" in message.lower()
    from gradio_client import handle_file
    from PIL import Image

    path = tmp_path / "in.png"
    Image.new("RGB", (32, 32), (10, 200, 10)).save(path)
    assert "apikey" in app_error(lambda: c.predict(handle_file(str(path)), "make it red", api_name="/edit"))
    pair = [handle_file(str(path))] * 2
    assert "apikey" in app_error(lambda: c.predict(pair, "combine", api_name="/compose"))
    assert emu.requests == []  # not even a model listing


def test_no_key_anywhere_after_the_run(public_app, module_emulator):
    """Runs last in this module (pytest keeps file order): the files, the page, /config and the log so far."""
    url, home, temp = public_app
    client(url).predict("one more", api_key=KEY_A, api_name="/generate")  # something was made for sure
    for page in ("", "config", "gradio_api/info"):
        with urllib.request.urlopen(url + page, timeout=10) as response:
            body = response.read().decode("utf-8", "replace")
        for key in (KEY_A, KEY_B):
            assert key not in body, page
    files = [p for root in (home, temp) for p in Path(root).rglob("*") if p.is_file()]
    assert files  # history, cache and outputs exist
    for path in files:
        data = path.read_bytes()
        for key in (KEY_A, KEY_B):
            assert key.encode() not in data, path
            assert key not in path.name
    outputs = [p for p in (home / "outputs").rglob("*.png")]
    assert outputs and all(p.parent.parent == home / "outputs" and len(p.parent.name) == 33 for p in outputs)
    secret = home / "secret"
    assert secret.is_file() and (secret.stat().st_mode & 0o777) == 0o600


@pytest.fixture
def byok_app(emu, tmp_path):
    """A second app (function scope) whose whole output is checked for keys after a run."""
    home, temp = tmp_path / "home", tmp_path / "gradio"
    env = app_env(NANOBANANA_PUBLIC="1", NANOBANANA_BASE_URL=emu.base_url, NANOBANANA_HOME=str(home),
                  GRADIO_TEMP_DIR=str(temp), GEMINI_API_KEY=HOST_KEY)
    process, url = start_app(env)
    yield url, process
    if process.poll() is None:
        stop_app(process)


def test_host_key_is_not_used_for_keyless_visitors_and_no_key_is_logged(byok_app, emu):
    url, process = byok_app
    c = client(url)
    assert "apikey" in app_error(lambda: c.predict("a red fox", api_name="/generate"))
    assert emu.generate_requests == []
    c.predict("a red fox", api_key=KEY_A, api_name="/generate")
    emu.fail_next(Fault.bad_key())
    message = app_error(lambda: c.predict("a blue fox", api_key=KEY_B, api_name="/generate"))
    assert KEY_B not in message
    assert [r.api_key for r in emu.generate_requests] == [KEY_A, KEY_B]
    log = stop_app(process)
    for key in (KEY_A, KEY_B, HOST_KEY):
        assert key not in log


@pytest.mark.slow
def test_allow_server_key_serves_keyless_visitors_with_the_hosts_key(emu, tmp_path):
    env = app_env(NANOBANANA_PUBLIC="1", NANOBANANA_ALLOW_SERVER_KEY="1", NANOBANANA_BASE_URL=emu.base_url,
                  NANOBANANA_HOME=str(tmp_path / "home"), GRADIO_TEMP_DIR=str(tmp_path / "gradio"),
                  GEMINI_API_KEY=HOST_KEY)
    process, url = start_app(env)
    try:
        c = client(url)
        c.predict("a red fox", api_name="/generate")
        c.predict("a red fox 2", api_key=KEY_A, api_name="/generate")
    finally:
        log = stop_app(process)
    assert [r.api_key for r in emu.generate_requests] == [HOST_KEY, KEY_A]
    assert HOST_KEY not in log and KEY_A not in log


# -- in process -------------------------------------------------------------------------------------------------


def test_settings_public_mode(tmp_path):
    assert load_settings(environ={}, env_file=None).public is False
    spaces = load_settings(environ={"SYSTEM": "spaces"}, env_file=None)
    assert spaces.public and spaces.max_file_size == "10mb" and spaces.delete_cache == (3600, 3600)
    assert not load_settings(environ={"SYSTEM": "spaces", "NANOBANANA_PUBLIC": "0"}, env_file=None).public
    custom = load_settings(environ={"NANOBANANA_PUBLIC": "1", "NANOBANANA_ALLOW_SERVER_KEY": "1",
                                    "NANOBANANA_VISITOR_RPM": "3", "NANOBANANA_MAX_UPLOAD_MB": "5"}, env_file=None)
    assert (custom.allow_server_key, custom.visitor_rpm, custom.max_file_size) == (True, 3, "5mb")
    private = load_settings(environ={}, env_file=None)
    assert private.max_file_size == "50mb" and private.delete_cache == (3600, 86400)  # Gradio's list of files: bounded


class FakeRequest:
    def __init__(self, session_hash: str, username: str | None = None) -> None:
        self.session_hash, self.username = session_hash, username


def test_key_ring_public_mode(emulator, tmp_path):
    settings = Settings(home=tmp_path / "home", base_url=emulator.base_url, public=True, timeout_s=10,
                        max_attempts=1)

    async def scenario():
        async with Studio(settings) as host:
            ring = KeyRing(host, capacity=2)
            with pytest.raises(MissingKeyError) as missing:
                ring.studio_for("")
            assert missing.value.message == MISSING_KEY_MESSAGE
            for bad in ("two words", "ключ-" + KEY_A, "x" * 300, "AIza\r\nX-Injected: 1"):
                with pytest.raises(InvalidKeyError) as refused:
                    ring.studio_for(bad)
                assert bad not in refused.value.message and "Nothing was sent" in refused.value.message
            a, b = ring.studio_for(KEY_A, "s1"), ring.studio_for(KEY_B, "s2")
            assert a is ring.studio_for(f" {KEY_A} ", "s1") and a is not b and not a.offline and not b.offline
            assert all(KEY_A not in k and KEY_B not in k for k in ring._studios)  # salted hashes only
            assert ring.partition(KEY_A) != ring.partition(KEY_B) and KEY_A not in ring.partition(KEY_A)
            assert ring.partition(KEY_A) == KeyRing(host).partition(KEY_A)  # stable: the salt is on disk
            await a.generate("same prompt")
            hit = await a.generate("same prompt")
            other = await b.generate("same prompt")
            assert hit.cached and not other.cached
            assert KEY_A in a.history._redact and KEY_B in b.history._redact  # each key's history redacts it
            assert [r.api_key for r in emulator.generate_requests] == [KEY_A, KEY_B]
            ring.forget_session("s2")
            assert len(ring) == 1
            ring.studio_for(KEY_B, "s2")
            ring.studio_for("third-key", "s3")  # capacity 2: the least recently used (A) is closed
            assert len(ring) == 2 and ring.studio_for(KEY_A) is not a
            await asyncio.sleep(0.1)
            await ring.aclose()
            assert emulator.requests and all(r.api_key in (KEY_A, KEY_B) for r in emulator.requests)

    asyncio.run(scenario())


def test_private_install_keyless_visitors_use_the_hosts_studio(settings):
    async def scenario():
        async with Studio(settings) as host:
            ring = KeyRing(host)
            assert ring.studio_for("") is host and ring.studio_for(TEST_KEY) is host
            assert ring.studio_for(KEY_A) is not host

    asyncio.run(scenario())


def test_visitor_limits():
    limits = VisitorLimits(3, window_s=60)
    limits.take("a", 2)
    limits.take("b", 3)
    limits.take("a")
    with pytest.raises(RateLimitError) as over:
        limits.take("a")
    assert "3 requests per minute" in over.value.message
    with pytest.raises(RateLimitError):
        limits.take("c", 4)


def test_owner_is_the_login_else_the_session():
    assert visitor_owner(FakeRequest("abc")) == "session:abc"
    assert visitor_owner(FakeRequest("abc", "ana")) == "user:ana"
    assert visitor_owner(None) is None


def test_two_visitors_see_only_their_own_history(emulator, tmp_path):
    from nanobanana_ui.ui.history_library import Browse

    settings = Settings(home=tmp_path / "home", base_url=emulator.base_url, public=True, timeout_s=10,
                        max_attempts=1)
    alice, bob = FakeRequest("sess-alice"), FakeRequest("sess-bob")

    async def scenario():
        async with Studio(settings) as host:
            runner = Runner(host, owner_of=visitor_owner)
            await runner.generate("alice's fox", api_key=KEY_A, request=alice, progress=lambda *a, **k: None)
            await runner.generate("bob's owl", api_key=KEY_B, request=bob, progress=lambda *a, **k: None)
            library = Library(host, visitor_owner)
            a_items = library.page_data(owner=visitor_owner(alice)).items
            b_items = library.page_data(owner=visitor_owner(bob)).items
            assert [c for _, c in a_items] == ["alice's fox · generate"]
            assert [c for _, c in b_items] == ["bob's owl · generate"]
            b_browse = Browse()
            b_browse.ids = (library.page_data(owner="session:sess-alice").ids[0],)  # Bob tries Alice's entry id
            b_browse.selected = b_browse.ids[0]
            assert library.entry(b_browse, bob) is None
            await runner.keys.aclose()

    asyncio.run(scenario())


def test_public_batch_refuses_server_image_paths(tmp_path, emulator):
    import gradio as gr

    from nanobanana_ui.ui.controls import FormSettings

    settings = Settings(home=tmp_path / "home", base_url=emulator.base_url, public=True)
    csv = tmp_path / "rows.csv"
    (tmp_path / "x.png").write_bytes(b"not read")
    csv.write_text("prompt,images\nfirst,\nsecond,x.png\n")
    page = BatchPage(Studio(settings))
    form = FormSettings("", "auto", "", 1.0, 0.95, 0, -1, 1, "Image + text")
    with pytest.raises(gr.Error) as refused:
        page.read(str(csv), None, form)
    assert "rows 3" in refused.value.message and "images" in refused.value.message
    assert emulator.requests == []
    assert os.environ.get("GEMINI_API_KEY") is None


def test_a_visitor_is_told_the_service_is_unreachable_and_sees_the_retries(tmp_path):
    import gradio as gr
    from servers import free_port

    from nanobanana_ui.ui.runner_base import UNREACHABLE

    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    settings = Settings(home=tmp_path / "home", base_url=nowhere, public=True, timeout_s=5, max_attempts=2)
    lines = []

    async def scenario():
        async with Studio(settings) as host:
            runner = Runner(host, owner_of=visitor_owner)
            try:
                with pytest.raises(gr.Error) as refused:
                    await runner.generate("a fox", api_key=KEY_A, request=FakeRequest("s"),
                                          progress=lambda fraction, desc=None: lines.append(desc))
            finally:
                await runner.keys.aclose()
            return refused.value.message

    message = asyncio.run(scenario())
    assert message == UNREACHABLE  # not the transport's name or the host's settings
    assert "NANOBANANA_BASE_URL" not in message and "ConnectError" not in message
    assert any("retrying" in (line or "").lower() for line in lines), lines  # the retries show as progress


def test_refine_endpoint_continues_a_visitors_own_result_only(public_app, emu):
    """/refine over gradio_client: the owner's id goes on with its whole path; another visitor's id is unknown."""
    import sqlite3

    url, home = public_app[0], public_app[1]
    a, b = client(url), client(url)
    a.predict("a paper boat", seed=3, api_key=KEY_A, api_name="/generate")
    with sqlite3.connect(home / "history.sqlite3") as db:
        root_id, owner = db.execute("SELECT id, owner FROM entries WHERE prompt = 'a paper boat'").fetchone()
    assert owner and owner.startswith("session:")
    message = app_error(lambda: b.predict(root_id, "make it red", api_key=KEY_B, api_name="/refine"))
    assert f"No result with id '{root_id}'" in message
    assert len(emu.generate_requests) == 1  # B's refusal sent nothing
    gallery, status = a.predict(root_id, "make it red", api_key=KEY_A, api_name="/refine")
    sent = emu.generate_requests[-1]
    assert sent.api_key == KEY_A and [t.role for t in sent.turns] == ["user", "model", "user"]
    assert sent.turns[0].parts[0].text == "a paper boat" and sent.turns[2].parts[0].text == "make it red"
    assert status.startswith(f"Turn 2 (refines {root_id}) · id ") and gallery
    with sqlite3.connect(home / "history.sqlite3") as db:
        child = db.execute("SELECT parent, turn, owner FROM entries WHERE prompt = 'make it red'").fetchall()
    assert child == [(root_id, 2, owner)]
    assert "prompt is empty" in app_error(lambda: a.predict(root_id, "  ", api_key=KEY_A, api_name="/refine"))
    assert len(emu.generate_requests) == 2  # the empty instruction sent nothing
