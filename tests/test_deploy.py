"""Hosting the app: login (--auth / NANOBANANA_AUTH), share link without internet, MCP, Spaces front matter, container.

The container test installs requirements.txt into a fresh venv (about 20-60 s): it is the one slow test here.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import yaml
from servers import ROOT, app_env, free_port, start_app, stop_app

TOOLS = {"generate": ["prompt"], "edit": ["image", "prompt"], "compose": ["images", "prompt"],
         "refine": ["parent_id", "instruction"]}
OPTIONS = ["model", "aspect_ratio", "size", "temperature", "top_p", "top_k", "seed", "count", "output", "thinking",
           "show_thoughts", "search", "image_search"]
SCRIPT = ROOT / "scripts" / "container-setup.sh"


def status_of(url: str, cookie: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def run_app(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=app_env(**env), capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def locked_app(tmp_path_factory):
    """The app behind two logins from NANOBANANA_AUTH (a password may hold a colon), on the offline emulator."""
    env = app_env(NANOBANANA_AUTH="alice:won:der, bob:builder", NANOBANANA_HOME=str(tmp_path_factory.mktemp("home")),
                  GRADIO_TEMP_DIR=str(tmp_path_factory.mktemp("gradio")))
    process, url = start_app(env, "--offline")
    yield url
    log = stop_app(process)
    assert "won:der" not in log


def test_with_auth_page_config_api_and_files_need_the_login(locked_app):
    from gradio_client import Client

    code, page = status_of(locked_app)
    assert code == 200 and '"auth_required":true' in page.replace(" ", "") and "generate-button" not in page
    for path in ("config", "gradio_api/info", "gradio_api/mcp/schema"):
        assert status_of(locked_app + path)[0] in (401, 404), path  # 404: no MCP server without --mcp
    with pytest.raises(Exception, match="(?i)login|credentials|auth"):
        Client(locked_app, verbose=False)
    with pytest.raises(Exception, match="(?i)login|credentials|auth|incorrect"):
        Client(locked_app, auth=("alice", "wrong"), verbose=False)
    client = Client(locked_app, auth=("alice", "won:der"), verbose=False, download_files=False)
    gallery, status = client.predict("a fox behind a login", api_name="/generate")
    assert "placeholder image for: a fox behind a login" in status  # the run went through the login
    url = gallery[0]["image"]["url"]
    assert url.startswith(locked_app + "gradio_api/file=")
    assert status_of(url)[0] in (401, 403)  # the image needs the login too
    assert Client(locked_app, auth=("bob", "builder"), verbose=False).predict("a second login",
                                                                              api_name="/generate")


@pytest.mark.slow
@pytest.mark.parametrize("args, env, message", [
    (["--auth", "alice"], {}, "--auth: an entry has no colon"),
    (["--auth", "alice:"], {}, "--auth: 'alice' has no password"),
    ([], {"NANOBANANA_AUTH": "alice:pw,:secret"}, "NANOBANANA_AUTH: an entry has no user name"),
    (["--mcp", "--auth", "alice:pw"], {}, "--mcp cannot be combined with a login"),
])
def test_bad_logins_and_mcp_with_a_login_exit_2_with_one_line(args, env, message):
    done = run_app(*args, **env)
    assert done.returncode == 2 and done.stderr.strip().startswith(f"error: {message}"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "secret" not in done.stderr


def test_a_bad_login_is_refused_before_gradio_is_even_imported():
    check = ("import sys\nfrom nanobanana_ui.webapp import main\ntry:\n    main(['--auth', 'alice'])\n"
             "except SystemExit as stop:\n    print(stop.code, 'gradio' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", check], cwd=ROOT, env=app_env(), capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.split() == ["2", "False"], done.stdout + done.stderr  # seconds sooner than a started app
    assert done.stderr.strip().startswith("error: --auth: an entry has no colon")


def upload(url: str, size: int) -> int:
    """POST a file of `size` bytes to Gradio's upload route; the HTTP status."""
    body = (b'--b\r\nContent-Disposition: form-data; name="files"; filename="x.png"\r\n'
            b"Content-Type: image/png\r\n\r\n" + b"\0" * size + b"\r\n--b--\r\n")
    request = urllib.request.Request(url + "gradio_api/upload", data=body, method="POST",
                                     headers={"Content-Type": "multipart/form-data; boundary=b"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


@pytest.mark.slow
def test_share_without_a_tunnel_says_so_and_keeps_serving_locally_with_the_upload_limit(tmp_path):
    # The share server is a closed local port: the tunnel fails here whether or not this machine has internet.
    env = app_env(NANOBANANA_HOME=str(tmp_path / "home"), GRADIO_SHARE_SERVER_ADDRESS=f"127.0.0.1:{free_port()}",
                  NANOBANANA_MAX_UPLOAD_MB="0.5", GRADIO_TEMP_DIR=str(tmp_path / "gradio"))
    process, url = start_app(env, "--share", "--offline")
    try:
        time.sleep(1.0)  # the message follows the tunnel attempt
        assert status_of(url + "config")[0] == 200
        assert upload(url, 400_000) == 200 and upload(url, 600_000) == 413  # Settings.max_file_size reached launch()
    finally:
        log = stop_app(process)
    assert f"No share link: it could not be created (no internet, or the share server is unreachable). " \
           f"Still serving locally at {url}" in log


@pytest.mark.slow
def test_mcp_schema_lists_exactly_the_four_tools_with_their_parameters(tmp_path):
    env = app_env(NANOBANANA_HOME=str(tmp_path / "home"), GRADIO_TEMP_DIR=str(tmp_path / "gradio"))
    process, url = start_app(env, "--mcp", "--offline")
    try:
        code, body = status_of(url + "gradio_api/mcp/schema")
        listed, result = asyncio.run(call_generate_over_mcp(url + "gradio_api/mcp/"))
    finally:
        log = stop_app(process)
    assert listed == list(TOOLS) and not result.isError, result
    kinds = [item.type for item in result.content]
    assert kinds == ["image", "text", "text"], result.content  # the image, its URL, then the status line
    assert result.content[0].mimeType == "image/png" and "offline placeholder" in result.content[2].text
    assert code == 200, body
    tools = {tool["name"]: tool for tool in json.loads(body)}
    assert set(tools) == set(TOOLS)
    for name, firsts in TOOLS.items():
        schema = tools[name]["inputSchema"]
        mask = ["mask"] if name == "edit" else []  # /edit's optional region mask, just before api_key
        transparent = ["transparent"] if name != "refine" else []  # a refinement is one more turn, always opaque
        assert list(schema["properties"]) == [*firsts, *OPTIONS, *mask, "style", *transparent, "kit", "api_key"]
        assert "NAME@3" in schema["properties"]["kit"]["description"]  # the MCP tool describes the kit
        if mask:  # the MCP tool describes the mask to the agent
            assert "white where it may change" in schema["properties"]["mask"]["description"]
            assert "byte-identical" in tools[name]["description"]
        assert firsts[-1] in schema["required"] and set(schema["required"]) <= set(firsts)  # a Gallery has a default
        assert tools[name]["description"].startswith(("Make new images", "Edit one image", "Make one image",
                                                       "Refine an earlier"))
        # Every parameter explained in full: Gradio reads one line per parameter from the docstring's Args.
        assert all(prop.get("description", "").endswith(".") for prop in schema["properties"].values()), schema
    assert "Traceback" not in log and "gr.State input" not in log


async def call_generate_over_mcp(url: str):
    """The tools an MCP client lists, and the result of calling generate, over streamable HTTP."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        tools = await session.list_tools()
        result = await session.call_tool("generate", {"prompt": "a fox for an agent"})
    return [tool.name for tool in tools.tools], result


def front_matter() -> dict:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, "README.md must start with YAML front matter between --- lines"
    return yaml.safe_load(match.group(1))


def test_readme_front_matter_is_a_valid_spaces_config():
    import gradio

    meta = front_matter()
    required = {"title", "emoji", "colorFrom", "colorTo", "sdk", "sdk_version", "python_version", "app_file",
                "pinned", "short_description"}
    assert required <= set(meta)
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__
    assert meta["python_version"] == "3.11" and isinstance(meta["pinned"], bool)
    assert (ROOT / meta["app_file"]).is_file() and meta["app_file"] == "app.py"
    assert len(meta["short_description"]) <= 60  # the Hub's limit
    colours = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert {meta["colorFrom"], meta["colorTo"]} <= colours


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) per Dockerfile instruction, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def script_step(name: str) -> list[str]:
    """The command `scripts/container-setup.sh NAME` runs, as words (without `exec`)."""
    match = re.search(rf"^\s*{name}\) (.*?) ;;$", SCRIPT.read_text(encoding="utf-8"), re.M)
    assert match, name
    words = shlex.split(match.group(1))
    return words[1:] if words[0] == "exec" else words


def test_dockerfile_runs_the_scripts_steps_and_follows_the_spaces_rules():
    steps = dockerfile()
    instructions = dict(steps)  # the last of each kind
    assert steps[0] == ("FROM", "python:3.11-slim")
    assert ("RUN", "sh scripts/container-setup.sh install") in steps
    assert all("pip" not in args for kind, args in steps if kind == "RUN")  # installing happens only in the script
    assert json.loads(instructions["CMD"]) == script_step("start") == ["python", "app.py"]
    health = instructions["HEALTHCHECK"]
    assert json.loads(health[health.index("CMD") + 3:]) == script_step("healthcheck")
    assert any("useradd --create-home --uid 1000 user" in args for kind, args in steps if kind == "RUN")
    assert instructions["USER"] == "user" and instructions["EXPOSE"] == "7860" and instructions["VOLUME"] == "/data"
    env = container_env()
    assert env["GRADIO_SERVER_NAME"] == "0.0.0.0" and env["NANOBANANA_HOME"] == "/data"
    assert {".env", ".git", "tests"} <= set(dockerignore())  # never a key or a repository in the image


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def container_env() -> dict[str, str]:
    env = {}
    for kind, args in dockerfile():
        if kind == "ENV":
            env.update(dict(item.split("=", 1) for item in shlex.split(args)))
    return env


@pytest.mark.timeout(600)
@pytest.mark.slow
def test_container_steps_install_and_start_in_a_fresh_venv(tmp_path):
    """SLOW (about 20-60 s): the Dockerfile's steps, run as the script runs them, in a new venv and folder."""
    context = tmp_path / "app"  # what COPY brings in: the app without what .dockerignore leaves out
    shutil.copytree(ROOT, context, ignore=shutil.ignore_patterns(*(p.removeprefix("**/") for p in dockerignore())))
    assert (context / "app.py").is_file() and not (context / "tests").exists() and not (context / ".env").exists()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = app_env(PATH=f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}", VIRTUAL_ENV=str(venv))
    installed = subprocess.run(["sh", "scripts/container-setup.sh", "install"], cwd=context, env=env,
                               capture_output=True, text=True, timeout=540)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    # Start as CMD does, with the Dockerfile's ENV (data dir and port moved for the test).
    port = str(free_port())
    env.update(container_env(), NANOBANANA_HOME=str(tmp_path / "data"), GRADIO_SERVER_PORT=port)
    process = subprocess.Popen(["sh", "scripts/container-setup.sh", "start"], cwd=context, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, code = time.monotonic() + 90, None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                code = status_of(f"http://127.0.0.1:{port}/")[0]
                break
            except OSError:
                time.sleep(0.5)
        assert code == 200, process.stdout.read() if process.poll() is not None else "no answer in 90 s"
        health = subprocess.run(["sh", "scripts/container-setup.sh", "healthcheck"], cwd=context, env=env,
                                timeout=30)
        assert health.returncode == 0
    finally:
        process.terminate()  # what `docker stop` sends
        log, _ = process.communicate(timeout=20)
    assert f"Running on local URL:  http://0.0.0.0:{port}" in log  # GRADIO_SERVER_NAME from the Dockerfile
    assert process.returncode == 0 and "closing server" in log  # SIGTERM handled (PID 1 would ignore it otherwise)
    stopped = subprocess.run(["sh", "scripts/container-setup.sh", "healthcheck"], cwd=context, env=env,
                             capture_output=True, timeout=30)
    assert stopped.returncode != 0  # the health check does fail when the app is down
