"""The web app as users start it (`python app.py`) and as API clients see it (gradio_client, named endpoints)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import without_text_chunks
from PIL import Image
from servers import ROOT, app_env, running_app

from nanobanana_ui.domain.models import pixel_size
from nanobanana_ui.emulator import Fault
from nanobanana_ui.service.regions import DEFAULT_FEATHER

UI_KEY = "ui-test-key"
PUBLIC = {"/generate", "/edit", "/compose", "/refine"}


@pytest.fixture(scope="module")
def app_url(module_emulator, tmp_path_factory):
    """The app with a key, its API calls sent to the test's emulator through NANOBANANA_BASE_URL."""
    home = tmp_path_factory.mktemp("home")
    # NANOBANANA_MODEL: Nano Banana (2.5 Flash, 1K only, 3 inputs), whose fixed limits these tests lean on.
    env = app_env(GEMINI_API_KEY=UI_KEY, NANOBANANA_BASE_URL=module_emulator.base_url, NANOBANANA_HOME=str(home),
                  NANOBANANA_MODEL="gemini-2.5-flash-image",
                  GRADIO_TEMP_DIR=str(tmp_path_factory.mktemp("gradio")))
    with running_app(env, UI_KEY) as url:
        yield url


@pytest.fixture
def client(app_url):
    from gradio_client import Client

    return Client(app_url, verbose=False)


def write_png(path: Path, color: tuple[int, int, int], size=(64, 48)) -> Path:
    Image.new("RGB", size, color).save(path, format="PNG")
    return path


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def returned_files(gallery: list[dict]) -> list[Path]:
    return [Path(item["image"]) for item in gallery]


def test_exactly_four_public_endpoints_with_inputs_first_and_defaults_after(client, app_url):
    api = client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == PUBLIC and not api["unnamed_endpoints"]
    firsts = {"/generate": ["prompt"], "/edit": ["image", "prompt"], "/compose": ["images", "prompt"],
              "/refine": ["parent_id", "instruction"]}
    for name, endpoint in api["named_endpoints"].items():
        params = [p["parameter_name"] for p in endpoint["parameters"]]
        # api_key was added last (bring your own key): positional callers of the earlier parameters keep working;
        # /edit's optional mask (region edits) came after, then every endpoint's style (prompt craft), then
        # transparent (not on /refine), then `kit` (kits), before it.
        assert params == [*firsts[name], "model", "aspect_ratio", "size", "temperature", "top_p", "top_k", "seed",
                          "count", "output", "thinking", "show_thoughts", "search", "image_search",
                          *(["mask"] if name == "/edit" else []), "style",
                          *(["transparent"] if name != "/refine" else []), "kit", "api_key"]
        assert all(p["parameter_has_default"] for p in endpoint["parameters"][len(firsts[name]):])
        assert [r["component"] for r in endpoint["returns"]] == ["Gallery", "Markdown"]
    with urllib.request.urlopen(app_url + "config", timeout=10) as response:
        dependencies = json.load(response)["dependencies"]
    public = {"/" + d["api_name"] for d in dependencies if d["api_visibility"] == "public"}
    assert public == PUBLIC and len(dependencies) > len(PUBLIC)  # the page's own events exist, all private


def test_the_api_advertises_every_models_choices_an_int_count_and_compose_images_as_files(client):
    from nanobanana_ui.domain.models import known_models

    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    params = {name: {p["parameter_name"]: p for p in endpoint["parameters"]} for name, endpoint in api.items()}
    for name in PUBLIC:
        assert params[name]["count"]["python_type"]["type"] == "int"
        sizes, ratios = params[name]["size"]["python_type"]["type"], params[name]["aspect_ratio"]["python_type"]["type"]
        for spec in known_models():
            assert all(f"'{size}'" in sizes for size in spec.sizes), (spec.id, sizes)
            assert all(f"'{ratio}'" in ratios for ratio in spec.aspect_ratios), (spec.id, ratios)
    images = params["/compose"]["images"]
    assert images["python_type"]["type"] == "list[filepath]" and "video" not in json.dumps(images).lower()


def test_generate_with_defaults_only_then_the_cache(client, emu):
    gallery, status = client.predict("a red fox", api_name="/generate")
    [sent] = emu.generate_requests
    assert sent.prompt == "a red fox" and sent.api_key == UI_KEY and sent.model == "gemini-2.5-flash-image"
    config = sent.generation_config
    assert "imageConfig" not in config and "seed" not in config and "topK" not in config  # auto, 1K-only, unset
    # The page's sliders say 1.0 and 0.95, the model's own defaults: not sent, so the CLI's request is the same one.
    assert "temperature" not in config and "topP" not in config and config["responseModalities"] == ["TEXT", "IMAGE"]
    [path] = returned_files(gallery)
    assert without_text_chunks(path.read_bytes()) == sent.reply_images[0]  # the API's bytes + provenance
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == (1024, 1024)
    assert "$0.0387" in status and "offline placeholder" in status
    assert "STOP" not in status and " 0.0 s" not in status  # a normal finish goes unsaid; fast calls in ms
    _, again = client.predict("a red fox", api_name="/generate")
    assert again.startswith("cached · $0") and len(emu.generate_requests) == 1


def test_generate_sends_every_option_from_the_parameters(client, emu):
    gallery, status = client.predict("a lighthouse", model="gemini-3.1-flash-image", aspect_ratio="16:9",
                                     size="2K", temperature=0.4, top_p=0.5, top_k=20, seed=7, output="Image only",
                                     api_name="/generate")
    [sent] = emu.generate_requests
    assert sent.model == "gemini-3.1-flash-image"
    assert sent.generation_config == {"temperature": 0.4, "topP": 0.5, "topK": 20.0, "seed": 7,
                                      "responseModalities": ["IMAGE"],
                                      "imageConfig": {"aspectRatio": "16:9", "imageSize": "2K"}}
    with Image.open(returned_files(gallery)[0]) as image:
        assert image.size == pixel_size("gemini-3.1-flash-image", "16:9", "2K") == (2752, 1536)
    cost = float(re.search(r"\$(\d+\.\d{4})", status).group(1))
    assert 0.1008 < cost < 0.1018  # the 2K image ($0.1008), plus the prompt's and the minimal thinking's tokens


def test_several_images_are_parallel_calls_each_its_own_variation(client, emu):
    emu.fail_next(Fault.delay(1.0), Fault.delay(1.0), Fault.delay(1.0))
    gallery, status = client.predict("three owls", count=3, api_name="/generate")
    assert len(emu.generate_requests) == 3 and len(gallery) == 3
    arrivals = [r.received_at for r in emu.generate_requests]
    assert max(arrivals) - min(arrivals) < 1.0  # three 1 s calls side by side: each sent before any was answered
    assert len({p.name for p in returned_files(gallery)}) == 3  # three saved files (the emulator draws alike)
    assert [line[:3] for line in status.splitlines()] == ["1. ", "2. ", "3. "]
    names = sorted(p.name for p in returned_files(gallery))
    assert [n.endswith("_v1.png") for n in names].count(True) == 1 and any(n.endswith("_v2.png") for n in names)


def test_edit_sends_the_uploaded_image_byte_for_byte(client, emu, tmp_path):
    from gradio_client import handle_file

    source = write_png(tmp_path / "photo.png", (200, 30, 30), size=(96, 64))
    gallery, status = client.predict(handle_file(str(source)), "make the sky stormy", api_name="/edit")
    [sent] = emu.generate_requests
    assert sent.prompt == "make the sky stormy" and sent.images == [source.read_bytes()]
    assert sent.part_kinds == ["text", "image"]
    assert "aspectRatio" not in sent.generation_config.get("imageConfig", {})  # auto: keep the input's shape
    assert without_text_chunks(returned_files(gallery)[0].read_bytes()) == sent.reply_images[0]
    assert re.match(r"\$0\.03\d\d · ", status) and "STOP" not in status


def test_a_file_that_is_not_an_image_gets_the_studios_message(client, emu, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    fake = tmp_path / "notes.png"
    fake.write_text("shopping list: bananas\n")
    with pytest.raises(AppError, match=r"notes\.png is not an image \(it looks like text\)"):
        client.predict(handle_file(str(fake)), "make it blue", api_name="/edit")
    assert emu.generate_requests == []


def test_edit_with_a_mask_changes_only_the_region(client, emu, app_url, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    rng = np.random.default_rng(7)  # every pixel differs from its neighbours: any stray change shows
    original = Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8))
    photo, mask = tmp_path / "photo.png", tmp_path / "mask.png"
    original.save(photo)
    region = Image.new("L", original.size, 0)
    region.paste(255, (60, 40, 100, 80))
    region.save(mask)
    gallery, status = client.predict(handle_file(str(photo)), "a red hat", mask=handle_file(str(mask)),
                                     api_name="/edit")
    [sent] = emu.generate_requests
    # The model got the framed instruction, a crop around the region and that crop's mask, not the whole photo.
    assert sent.part_kinds == ["text", "image", "image"] and sent.prompt.endswith("The change to make: a red hat")
    crop, crop_mask = (Image.open(io.BytesIO(data)) for data in sent.images)
    assert crop.size == crop_mask.size and crop.size[0] < original.size[0]
    with Image.open(returned_files(gallery)[0]) as out:
        out.load()
    assert out.size == original.size and out.mode == original.mode and status.startswith("$")
    may_change = np.zeros((120, 160), bool)
    may_change[40 - DEFAULT_FEATHER:80 + DEFAULT_FEATHER, 60 - DEFAULT_FEATHER:100 + DEFAULT_FEATHER] = True
    a, b = np.asarray(out), np.asarray(original)
    assert np.array_equal(a[~may_change], b[~may_change])  # byte-identical outside the mask and its feather band
    assert (a[40:80, 60:100] != b[40:80, 60:100]).any(axis=-1).mean() > 0.9  # the answer went in
    # Positionally too: the mask is the parameter just after image_search.
    client.predict(handle_file(str(photo)), "a red hat", "", "auto", "", 1.0, 0.95, 0, -1, 1, "Image + text",
                   "", False, False, False, handle_file(str(mask)), api_name="/edit")
    assert len(emu.generate_requests) == 1  # the same request again: a cache hit, no second call

    small = tmp_path / "small.png"
    region.resize((80, 60)).save(small)
    with pytest.raises(AppError, match=r"is 80x60 but the image is 160x120"):
        client.predict(handle_file(str(photo)), "a red hat", mask=handle_file(str(small)), api_name="/edit")
    assert len(emu.generate_requests) == 1


def test_transparent_parameter_makes_an_rgba_png_in_two_calls_and_refuses_a_region(client, emu, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    gallery, status = client.predict("a glass of orange juice", model="gemini-3.1-flash-image", size="512",
                                     aspect_ratio="1:1", transparent="difference", api_name="/generate")
    assert len(emu.generate_requests) == 2 and "transparent: difference matting, 2 calls" in status
    [path] = returned_files(gallery)
    with Image.open(path) as image:
        assert image.mode == "RGBA" and image.getextrema()[3] == (0, 255)
    gallery, status = client.predict("a glass of orange juice", model="gemini-3.1-flash-image", size="512",
                                     aspect_ratio="1:1", transparent="key", api_name="/generate")
    assert len(emu.generate_requests) == 3 and "chroma key #00FF00, 1 call" in status
    photo, mask = write_png(tmp_path / "p.png", (9, 9, 9)), tmp_path / "m.png"
    region = Image.new("L", (64, 48), 0)
    region.paste(255, (10, 10, 30, 30))
    region.save(mask)
    with pytest.raises(AppError, match="--mask or --extend-to"):
        client.predict(handle_file(str(photo)), "a hat", mask=handle_file(str(mask)), transparent="difference",
                       api_name="/edit")
    with pytest.raises(AppError, match="transparent must be"):
        client.predict("a cat", transparent="glass", api_name="/generate")
    assert len(emu.generate_requests) == 3


def test_compose_sends_the_images_in_order_with_the_options(client, emu, tmp_path):
    from gradio_client import handle_file

    files = [write_png(tmp_path / f"in{i}.png", color) for i, color in enumerate([(255, 0, 0), (0, 0, 255)])]
    images = [handle_file(str(path)) for path in files]  # a plain list of files, the first thing anyone tries
    gallery, status = client.predict(images, "the red one above the blue one", model="gemini-3-pro-image-preview",
                                     aspect_ratio="9:16", size="4K", api_name="/compose")
    [sent] = emu.generate_requests
    assert sent.model == "gemini-3-pro-image"  # the shut-down preview id asked for is sent as its GA replacement
    assert status.splitlines()[0] == "gemini-3-pro-image-preview was shut down on 2026-06-25; used gemini-3-pro-image"
    assert sent.images == [path.read_bytes() for path in files] and sent.prompt == "the red one above the blue one"
    assert sent.generation_config["imageConfig"] == {"aspectRatio": "9:16", "imageSize": "4K"}
    with Image.open(returned_files(gallery)[0]) as image:
        assert image.format == "PNG" and image.size == pixel_size("gemini-3-pro-image", "9:16", "4K") == (3072, 5504)
    assert "$0.24" in status


def test_compose_over_the_models_limit_is_refused_before_any_call(client, emu, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    images = [handle_file(str(write_png(tmp_path / f"{i}.png", (i * 60, 0, 0)))) for i in range(4)]
    with pytest.raises(AppError, match="accepts at most 3 input images; you gave 4"):
        client.predict(images, "all four", api_name="/compose")
    assert emu.generate_requests == []


@pytest.mark.parametrize("args, kwargs, message", [
    (("   ",), {}, "The prompt is empty"),
    (("a fox",), {"size": "4K"}, "does not make 4K images"),
    (("a fox",), {"aspect_ratio": "8:1"}, "does not offer aspect ratio 8:1"),
    (("a fox",), {"temperature": 1.5, "count": 4, "seed": -1}, None),  # the sentinel: seed -1 is "no seed"
])
def test_bad_requests_are_refused_before_any_call(client, emu, args, kwargs, message):
    from gradio_client.exceptions import AppError

    if message is None:
        client.predict(*args, **kwargs, api_name="/generate")
        assert len(emu.generate_requests) == 4 and all("seed" not in r.generation_config for r in emu.requests)
        return
    with pytest.raises(AppError, match=message):
        client.predict(*args, **kwargs, api_name="/generate")
    assert emu.generate_requests == []


def test_service_errors_reach_the_client_as_messages(client, emu):
    from gradio_client.exceptions import AppError

    emu.fail_next(Fault.blocked("SAFETY"))
    with pytest.raises(AppError, match=r"blocked the prompt \(SAFETY\)"):
        client.predict("something", api_name="/generate")
    emu.fail_next(Fault.daily_quota())  # never retried: the message says when it resets
    with pytest.raises(AppError, match="daily quota .* resets at midnight Pacific"):
        client.predict("something else", api_name="/generate")


def test_requests_from_different_visitors_run_concurrently(app_url, emu):
    from gradio_client import Client

    emu.fail_next(*[Fault.delay(1.5)] * 3)
    clients = [Client(app_url, verbose=False) for _ in range(3)]
    threads = [threading.Thread(target=c.predict, args=(f"visitor {i}",), kwargs={"api_name": "/generate"})
               for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(emu.generate_requests) == 3
    arrivals = [r.received_at for r in emu.generate_requests]
    assert max(arrivals) - min(arrivals) < 1.5  # served side by side: with a limit of 1 each waits for a 1.5 s call


def python_block(doc: str, heading: str) -> str:
    """The first ```python block after a heading of a Markdown file (README.md, docs/...)."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    return re.search(r"```python\n(.*?)```", text[text.index(heading):], re.S).group(1)


def test_the_docs_gradio_client_examples_run_as_written(app_url, emu, tmp_path, monkeypatch, capsys):
    code = python_block("docs/api-and-mcp.md", "## HTTP API (gradio_client)")
    assert 'Client("http://127.0.0.1:7860/")' in code
    readme = python_block("README.md", "## The HTTP API and MCP")  # the README's tour is a part of this block
    assert [line for line in readme.splitlines() if line not in code.splitlines()] == []
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), (30, 30, 200)).save(photo, format="JPEG")
    cat, hat = write_png(tmp_path / "cat.png", (200, 100, 0)), write_png(tmp_path / "hat.png", (0, 0, 0))
    mask = Image.new("L", (64, 48), 0)  # the region-edit example's mask: white = the part that may change
    mask.paste(255, (20, 10, 40, 30))
    mask.save(tmp_path / "mask.png")
    monkeypatch.chdir(tmp_path)
    exec(compile(code.replace("http://127.0.0.1:7860/", app_url), "docs/api-and-mcp.md", "exec"), {})  # noqa: S102
    generate, edit, region, compose = emu.generate_requests
    assert region.part_kinds == ["text", "image", "image"]  # the mask example: a crop and its mask were sent
    assert generate.generation_config["imageConfig"] == {"aspectRatio": "16:9"}
    assert edit.images == [photo.read_bytes()] and edit.prompt == "make the sky stormy"
    assert compose.images == [cat.read_bytes(), hat.read_bytes()] and compose.model == "gemini-3-pro-image"
    assert compose.generation_config["imageConfig"] == {"imageSize": "2K"}
    assert "$0.03" in capsys.readouterr().out  # the printed status (this app runs gemini-2.5-flash-image)


# The page's own behaviour, in-process: the session, history and controls the browser tests drive through clicks.

ELEM_IDS = {  # the browser tests' locators: keep them stable
    "mode-tabs", "generate-tab", "edit-tab", "compose-tab", "prompt", "generate-button", "edit-image", "edit-prompt",
    "edit-button", "compose-limit", "compose-images", "compose-earlier", "compose-later", "compose-remove",
    "compose-prompt", "compose-button", "settings", "model", "model-info", "aspect-ratio", "size", "temperature",
    "top-p", "advanced", "top-k", "seed", "count", "output-mode", "out-gallery", "status", "new-variation-button",
    "output-to-edit-button", "out-files", "history-summary", "history-gallery", "history-details", "reuse-button",
    "send-to-edit-button", "add-to-compose-button", "meter", "main-tabs", "studio-tab", "api-key",
    "history-tab", "history-search", "history-model", "history-mode", "history-page-gallery", "history-prev",
    "history-next", "history-page-info", "history-item-details", "history-rerun", "history-variation",
    "history-send-to-edit", "history-add-to-compose", "history-download", "history-delete", "history-export",
    "history-export-file", "pnginfo-tab", "pnginfo-image", "pnginfo-preview", "pnginfo-message", "pnginfo-text",
    "pnginfo-use-button", "batch-tab", "batch-file", "batch-text", "batch-estimate-button", "batch-plan",
    "batch-run-button", "batch-cancel-button", "batch-progress", "batch-gallery", "batch-summary", "batch-zip",
    "keep-metadata", "store-requests", "vertex-options", "output-format", "jpeg-quality", "person-generation",
    "model-notes", "gemini3-controls", "thinking", "show-thoughts", "search", "image-search", "kit", "thoughts",
    "kits-tab", "kits-pick", "kits-version", "kits-gallery", "kits-details", "kits-use", "kits-upload", "kits-role",
    "kits-label", "kits-guidance", "kits-add", "kits-remove-name", "kits-remove",
    "kits-earlier", "kits-later", "kits-set-role", "kits-rename", "kits-export", "kits-zip",
    "history-add-to-kit",
    "thought-gallery", "sources",
    "batch-run-mode", "batch-jobs-panel", "batch-jobs", "batch-job", "batch-jobs-refresh", "batch-jobs-fetch",
    "batch-jobs-cancel",
    "region-panel", "region-editor", "region-feather", "region-extend", "region-anchor", "before-after", "compare",
    "compare-left-pick", "compare-left", "compare-right-pick", "compare-right",
    "transparent-controls", "transparent", "transparent-method", "backdrop", "transparent-style",
    "transparent-estimate",
    "output-to-refine-button", "history-refine", "refine-tab", "refine-id", "refine-open", "refine-summary",
    "refine-current",
    "refine-slider", "refine-compare-a", "refine-compare-b", "refine-path", "refine-instruction", "refine-branch-note",
    "refine-estimate", "refine-button", "refine-undo", "refine-to-edit", "refine-to-compose", "refine-download",
    "refine-status", "refine-branches",
    # prompt craft (ui/prompt_craft.py)
    "prompt-craft", "style-picker", "style-info", "variable-fields", *(f"variable-{n}" for n in range(8)),
    "prompt-preview", "enhance-button", "describe-button", "enhanced-box", "enhance-before", "enhance-after",
    "enhance-status", "enhance-accept", "enhance-dismiss", "enhance-undo", "style-name", "save-style",
}


class Progress:
    """Records what a handler reports through gr.Progress."""

    def __init__(self):
        self.calls = []

    def __call__(self, fraction, desc=None):
        self.calls.append((fraction, desc))


PAGE_SCRIPT = """
import json, sys
import app
demo, studio = app.build(app.parse_args(sys.argv[1:]))
ids = {c["props"]["elem_id"]: c["props"] for c in demo.get_config_file()["components"] if c["props"].get("elem_id")}
print(json.dumps({"ids": ids, "offline": studio.offline, "emulator_started": studio.emulator_url is not None}))
"""


def built_page(tmp_path, *args: str) -> dict:
    """The page app.py builds with these options (in a subprocess: building Blocks in pytest leaks sockets)."""
    env = app_env(GEMINI_API_KEY=UI_KEY, NANOBANANA_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", PAGE_SCRIPT, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_offline_flag_shows_the_banner_and_building_the_page_starts_nothing(tmp_path):
    page = built_page(tmp_path, "--offline")
    assert page["offline"] and not page["emulator_started"]  # the emulator waits for the first request
    banner = page["ids"]["offline-banner"]["value"]
    assert "Offline mode" in banner and "GEMINI_API_KEY" in banner
    assert set(page["ids"]) == ELEM_IDS | {"offline-banner"}


def test_page_has_the_stable_elem_ids_and_no_banner_with_a_key(app_url):
    with urllib.request.urlopen(app_url + "config", timeout=10) as response:
        config = json.load(response)
    ids = {c["props"]["elem_id"]: c["props"] for c in config["components"] if c.get("props", {}).get("elem_id")}
    assert set(ids) == ELEM_IDS  # no offline banner: this app has a key
    assert ids["out-gallery"]["format"] == "png"
    assert [value for _, value in ids["size"]["choices"]] == ["1K"]  # the default model is 1K-only
    # The Gemini API has no output format or person generation: hidden; the keep-metadata box is everyone's.
    assert [ids[name]["visible"] for name in ("vertex-options", "output-format", "jpeg-quality",
                                             "person-generation", "keep-metadata")] == [False] * 4 + [True]


def test_model_change_redraws_the_controls_from_the_model():
    from nanobanana_ui.domain.models import get_model
    from nanobanana_ui.ui.studio_tab import model_controls
    from nanobanana_ui.ui.text import compose_limit, model_info

    controls = model_controls("gemini-3.1-flash-image", "16:9", "1K", "gemini-2.5-flash-image")
    aspect, size = controls["aspect_ratio"], controls["size"]
    assert size["choices"] == ["512", "1K", "2K", "4K"] and "value" not in size  # kept: not sent back (a race)
    assert ("8:1", "8:1") in aspect["choices"] and "value" not in aspect
    assert ("Auto", "auto") in aspect["choices"]  # plain "Auto": the same box serves Generate
    assert "up to 14 input images" in model_info(get_model("gemini-3.1-flash-image"), "1K")
    limit = compose_limit(get_model("gemini-3.1-flash-image"), 5)
    assert "(5 added)" in limit and "Too many" not in limit
    controls = model_controls("gemini-2.5-flash-image", "8:1", "4K", "gemini-2.5-flash-image")
    assert controls["size"]["choices"] == ["1K"] and controls["size"]["value"] == "1K"  # never 4K on a 1K model
    assert controls["aspect_ratio"]["value"] == "auto"
    assert "$0.0387 per 1K image" in model_info(get_model("gemini-2.5-flash-image"), "1K")
    assert "Too many: remove 2" in compose_limit(get_model("gemini-2.5-flash-image"), 5)
    assert "(0 added)" in compose_limit(get_model("gemini-2.5-flash-image"), 0)


def test_form_values_become_image_options():
    from nanobanana_ui.domain.models import get_model
    from nanobanana_ui.domain.request import ImageOptions
    from nanobanana_ui.ui.controls import FormSettings

    flash, two = get_model("gemini-2.5-flash-image"), get_model("gemini-3.1-flash-image")
    assert FormSettings(size="1K", top_k=0, seed=-1).options(flash) == ImageOptions(temperature=1.0, top_p=0.95)
    assert FormSettings(aspect_ratio="4:1", size="512", top_k=5, seed=0, output="Image only").options(two) == \
        ImageOptions(aspect_ratio="4:1", size="512", temperature=1.0, top_p=0.95, top_k=5, seed=0, with_text=False)


def run_in_studio(settings, scenario):
    """Run `await scenario(runner, default_model)` against a Studio on the test's emulator."""
    import asyncio

    from nanobanana_ui.service.studio import Studio
    from nanobanana_ui.ui.runner import Runner

    async def main():
        async with Studio(settings) as studio:
            return await scenario(Runner(studio), settings.model)

    return asyncio.run(main())


def test_history_newest_first_and_new_variation_goes_past_the_cache(settings, emulator):
    async def scenario(runner, default_model):
        progress = Progress()
        _, _, session = await runner.generate("a cat", count=2, seed=3, progress=progress)
        assert progress.calls[0][1].startswith("Nano Banana: making 2 images") and progress.calls[-1][0] == 1.0
        assert [call[1] for call in progress.calls[1:3]] == ["1 of 2 images done", "2 of 2 images done"]
        files, status, session = await runner.new_variation(session, progress=Progress())
        assert "cached" not in status and len(emulator.generate_requests) == 4  # the same count, variations 2 and 3
        files, status, session = await runner.generate("a dog", session=session, progress=Progress())
        return files, session, default_model

    files, session, _ = run_in_studio(settings, scenario)
    assert [e.prompt for e in session.entries] == ["a dog", "a cat", "a cat", "a cat", "a cat"]
    assert [e.options["variation"] for e in session.entries] == [0, 2, 3, 0, 1]
    assert session.next_variation == 1 and session.shown == tuple(files)
    from nanobanana_ui.ui.text import entry_caption, history_summary

    assert "a dog" in entry_caption(session.entries[0]) and "seed 3" in entry_caption(session.entries[1])
    assert "5 images" in history_summary(session)


def test_reuse_send_to_edit_and_add_to_compose(settings, emulator, tmp_path):
    import gradio as gr

    from nanobanana_ui.storage.history import HistoryEntry
    from nanobanana_ui.ui import actions

    photo = write_png(tmp_path / "photo.png", (10, 200, 10))

    async def scenario(runner, default_model):
        _, _, session = await runner.edit(str(photo), "add a hat", model="gemini-3-pro-image-preview",
                                          aspect_ratio="3:2", size="2K", temperature=0.3, top_k=9,
                                          output="Image only", progress=Progress())
        return session, default_model

    session, default_model = run_in_studio(settings, scenario)
    entry = session.selected_entry
    assert isinstance(entry, HistoryEntry) and entry.mode == "edit"  # the History tab's own entry type
    values = actions.reuse_settings(entry, session.inputs[entry.id], default_model)
    assert values["mode_tabs"].selected == "edit" and values["edit_prompt"] == "add a hat"
    assert values["edit_image"] == str(photo) and values["model"] == "gemini-3-pro-image"  # the id actually used
    assert values["size"]["value"] == "2K" and "4K" in values["size"]["choices"]
    assert (values["aspect_ratio"]["value"], values["temperature"], values["top_k"], values["seed"],
            values["output"]) == ("3:2", 0.3, 9, -1, "Image only")
    image = str(entry.images[0].path)
    sent = actions.send_to_edit(entry)
    assert sent["edit_image"] == image and sent["mode_tabs"].selected == "edit"
    added = actions.add_to_compose(entry, [("a.png", None)], "gemini-2.5-flash-image", default_model)
    assert added["compose_images"] == ["a.png", image] and added["mode_tabs"].selected == "compose"
    assert "(2 added)" in added["compose_limit"]
    with pytest.raises(gr.Error, match="at most 3 input images"):
        actions.add_to_compose(entry, [("a.png", None)] * 3, "gemini-2.5-flash-image", default_model)
    for action in (lambda: actions.reuse_settings(None, (), default_model), lambda: actions.send_to_edit(None),
                   lambda: actions.add_to_compose(None, [], "", default_model)):
        with pytest.raises(gr.Error, match="There is no image to use yet"):  # one message for all three
            action()


def test_compose_inputs_can_be_reordered_and_removed():
    import gradio as gr

    from nanobanana_ui.ui.studio_tab import compose_move, compose_remove

    images, where = compose_move(["a", "b", "c"], 2, -1)
    assert images == ["a", "c", "b"] and where == 1  # the highlight follows the image that moved
    assert compose_move(images, 1, 1) == (["a", "b", "c"], 2)
    assert compose_remove(images, where) == ["a", "b"]
    with pytest.raises(gr.Error, match="Click an image in Compose first"):
        compose_remove([], None)


def test_partial_failures_keep_the_images_that_worked(settings, emulator):
    emulator.fail_next(Fault.server_error(500))

    async def scenario(runner, _):
        with pytest.warns(UserWarning, match="1 of 2 images failed: Gemini had an internal error"):
            return await runner.generate("two bees", count=2, progress=Progress())

    files, status, session = run_in_studio(settings, scenario)
    assert len(files) == 1 and len(session.entries) == 1 and "failed: Gemini had an internal error" in status


def test_the_meter_shows_todays_requests_cost_and_savings_and_retries_show_as_progress(settings, emulator):
    emulator.fail_next(Fault.rate_limit(retry_delay="0.2s"))
    retrying = settings.with_overrides(max_attempts=3, rpd=40)

    async def scenario(runner, _):
        progress = Progress()
        await runner.generate("metered fox", progress=progress)
        await runner.generate("metered fox", progress=Progress())  # a cache hit: saved, not spent
        return progress, runner.meter()

    progress, meter = run_in_studio(retrying, scenario)
    assert any(call[1].startswith("Rate limit reached; retrying in 0.") and call[1].endswith("(attempt 2 of 3)")
               for call in progress.calls)
    assert re.search(r"Today: 2 of 40 requests · \$0\.03\d\d spent · \$0\.03\d\d saved by the cache · resets in "
                     r"\d+ h \d+ min \(midnight Pacific\)", meter), meter


def test_prompts_and_model_words_are_shown_as_typed_not_as_markdown():
    from nanobanana_ui.ui.text import plain

    typed = "a *star*, <b>bold</b> & [link](x) # not a heading_1"
    shown = plain(typed)
    assert "<b>" not in shown and "&lt;b" in shown
    assert re.sub(r"\\(.)", r"\1", shown).replace("&lt;", "<").replace("&amp;", "&") == typed
