"""The History and PNG Info tabs' handlers, in-process: paging, search, filters, delete, export, re-run through the
Studio (a cache hit) and new variations, and PNG Info on our images, plain ones and AUTOMATIC1111's."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import gradio as gr
import pytest
from conftest import page_for_handlers, png_bytes
from PIL import Image, PngImagePlugin

from nanobanana_ui.domain.request import GeneratedImage, ImageOptions, ImageRequest, ImageResult, Mode
from nanobanana_ui.imaging.images import load_input_image, load_input_path
from nanobanana_ui.imaging.outputs import save_output
from nanobanana_ui.imaging.pngmeta import embed_png_text, provenance_chunks
from nanobanana_ui.service.studio import Studio
from nanobanana_ui.storage.history import HistoryStore
from nanobanana_ui.ui.history_library import PAGE_SIZE, Browse, Library
from nanobanana_ui.ui.history_tab import HistoryTab
from nanobanana_ui.ui.pnginfo_tab import PngInfo
from nanobanana_ui.ui.runner import Runner
from nanobanana_ui.ui.session import Session
from nanobanana_ui.ui.studio_tab import StudioTab
from nanobanana_ui.ui.text import entry_details

FLASH, PRO = "gemini-2.5-flash-image", "gemini-3-pro-image-preview"


class Progress:
    def __call__(self, fraction, desc=None):
        pass


def record(store: HistoryStore, folder: Path, prompt: str, n: int, *, mode: Mode = Mode.GENERATE,
           model: str = FLASH, inputs: tuple = (), owner: str | None = None) -> str:
    """Record one entry with its own small PNG, as the Studio would after a request."""
    data = png_bytes(size=(32, 24), color=(n % 256, (n // 256) % 256, 100))
    path = save_output(data, folder, f"{n:05d}.png")
    request = ImageRequest(mode=mode, model=model, prompt=prompt, images=inputs, options=ImageOptions(seed=n))
    result = ImageResult(id=str(n), request=request, images=(GeneratedImage("x", "image/png", 32, 24, path),),
                         text=f"words {n}", finish_reason="STOP", cost_usd=0.039)
    return store.record_result(result, owner=owner)


def select(index: int) -> gr.SelectData:
    return gr.SelectData(None, {"index": index, "value": None, "selected": True})


class Tab:
    """A HistoryTab laid out in a Blocks (never launched); its handlers' dicts read back by view name."""

    NAMES = ("items", "info", "details", "to_edit", "to_compose", "download", "delete", "browse")

    def __init__(self, studio: Studio, owner_of=None):
        try:  # gr.Blocks() makes (and leaves open) an event loop unless one is running: give it one
            asyncio.get_running_loop()
            self._build(studio, owner_of)
        except RuntimeError:
            async def build():
                self._build(studio, owner_of)

            asyncio.run(build())

    def _build(self, studio: Studio, owner_of) -> None:
        runner = Runner(studio)
        self.library = Library(studio, owner_of) if owner_of else Library(studio)
        with page_for_handlers():
            session, api_key = gr.State(Session()), gr.Textbox()
            with gr.Tabs() as main_tabs:
                studio_tab = StudioTab(runner, studio.settings.model)
                studio_tab.layout(main_tabs, session, api_key)
                self.tab = HistoryTab(self.library, runner, studio_tab)
                self.tab.layout()
        self.store, self.runner, self.studio_tab = self.library.store, runner, studio_tab
        t = self.tab
        self.components = dict(zip(self.NAMES, (t.gallery, t.info, t.details, t.to_edit, t.to_compose, t.download,
                                                t.delete, t.browse), strict=True))

    def named(self, out: dict) -> dict:
        """A handler's dict keyed by component -> by view name (values left out are missing)."""
        return {name: out[c] for name, c in self.components.items() if c in out}

    def __getattr__(self, name):  # refresh, filter, newer, older, select, delete_clicked ...: results by name
        fn = getattr(self.tab, name)
        return lambda *args, **kwargs: self.named(fn(*args, **kwargs))


def value(update):
    return update["value"] if isinstance(update, dict) else update


@pytest.fixture
def library(settings):
    studio = Studio(settings)
    yield Tab(studio)
    asyncio.run(studio.aclose())


def fill(library: Tab, tmp_path: Path) -> None:
    """30 entries: 20 foxes on Nano Banana (generate), 10 owls on Pro (edit of an unknown input); oldest first."""
    photo = load_input_image(png_bytes(color=(1, 2, 3)), "photo.png")
    for n in range(30):
        if n < 20:
            record(library.store, tmp_path / "out", f"a red fox number {n}", n)
        else:
            record(library.store, tmp_path / "out", f"an owl number {n}", n, mode=Mode.EDIT, model=PRO,
                   inputs=(photo,))


def test_pages_newest_first_with_thumbnails_made_once(library, tmp_path):
    fill(library, tmp_path)
    shown = library.refresh(Browse())
    items, info, browse = shown["items"], shown["info"], shown["browse"]
    assert len(items) == PAGE_SIZE and info == "Page 1 of 2 · 30 entries, newest first"
    assert items[0][1] == "an owl number 29 · edit" and items[-1][1] == "a red fox number 6 · generate"
    thumbs = [Path(path) for path, _ in items]
    assert all(p.parent == library.store.home / "thumbs" and p.suffix == ".webp" for p in thumbs)
    with Image.open(thumbs[0]) as thumb:
        assert max(thumb.size) <= 192
    made = {p: p.stat().st_mtime_ns for p in thumbs}
    shown = library.older(browse)
    assert [c for _, c in shown["items"]] == [f"a red fox number {n} · generate" for n in range(5, -1, -1)]
    assert shown["info"].startswith("Page 2 of 2")
    with pytest.warns(UserWarning, match="last page: nothing is older"):  # a toast, not a silent button
        shown = library.older(browse)  # past the end: stays on the last page
    assert shown["info"].startswith("Page 2 of 2")
    shown = library.newer(browse)
    assert {Path(p): Path(p).stat().st_mtime_ns for p, _ in shown["items"]} == made  # cached, not drawn again
    assert value(shown["download"]) is None and "Click a thumbnail" in shown["details"]
    assert shown["delete"]["value"] == "Delete"


def test_search_and_filters_go_back_to_the_first_page(library, tmp_path):
    fill(library, tmp_path)
    browse = Browse(page=1)
    shown = library.filter(browse, "owl", "", "")
    assert len(shown["items"]) == 10 and shown["info"] == "Page 1 of 1 · 10 entries match, newest first"
    assert browse.page == 0
    shown = library.filter(browse, "", FLASH, "")
    assert len(shown["items"]) == PAGE_SIZE - 4 and "20 entries match" in shown["info"]
    shown = library.filter(browse, "fox", "", "edit")
    assert shown["items"] == [] and shown["info"] == "No entries match these filters."
    shown = library.filter(browse, "number 7", "", "generate")
    assert [c for _, c in shown["items"]] == ["a red fox number 7 · generate"]


def test_open_download_delete_with_confirmation(library, tmp_path):
    fill(library, tmp_path)
    browse = library.refresh(Browse())["browse"]
    opened = library.select(browse, select(0))
    details = opened["details"]
    entry = library.store.get(browse.selected)
    assert entry.prompt == "an owl number 29" and value(opened["download"]) == str(entry.images[0].path)
    assert "The model's words: words 29" in details and "$0.0390" in details and f"`{PRO}`" in details
    assert "Input images: 1 (kept in the history; by hash: " in details and "seed 29" in details
    older = entry_details(replace(entry, inputs=()))  # an entry from before the history kept inputs
    assert "Input images: 1 (not kept: an entry from before the history kept inputs; by hash: " in older
    asked = library.delete_clicked(browse)  # first click: asks
    assert "Click Delete again" in asked["details"] and asked["delete"]["value"] == "Confirm delete"
    assert "items" not in asked  # the page stays as it is
    assert library.store.get(entry.id) is not None
    shown = library.delete_clicked(browse)  # second click: gone, files too
    assert library.store.get(entry.id) is None and not entry.images[0].path.exists()
    assert "29 entries" in shown["info"] and shown["details"].startswith("Deleted the edit of")
    assert value(shown["download"]) is None and shown["delete"]["value"] == "Delete" and browse.selected is None
    with pytest.warns(UserWarning, match="Open an entry first"):  # a toast; the page stays as it was
        assert library.tab.delete_clicked(browse) == gr.skip()


def test_a_changed_selection_disarms_delete(library, tmp_path):
    fill(library, tmp_path)
    browse = library.refresh(Browse())["browse"]
    library.select(browse, select(0))
    library.delete_clicked(browse)
    assert library.select(browse, select(1))["delete"]["value"] == "Delete"
    library.delete_clicked(browse)  # a first click again, on the new entry: nothing deleted
    assert library.store.count() == 30


def test_export_the_current_page_as_a_zip(library, tmp_path):
    fill(library, tmp_path)
    browse = library.filter(Browse(), "fox", "", "")["browse"]
    path = Path(library.library.export(browse))
    with zipfile.ZipFile(path) as archive:
        manifest = [json.loads(line) for line in archive.read("manifest.jsonl").decode().splitlines()]
        names = [n for n in archive.namelist() if n.startswith("images/")]
        assert [m["id"] for m in manifest] == list(browse.ids) and len(manifest) == 20 and len(names) == 20
        first = library.store.get(browse.ids[0])
        assert archive.read(manifest[0]["images"][0]["file"]) == first.images[0].path.read_bytes()
    assert manifest[0]["prompt"] == "a red fox number 19" and "owner" not in manifest[0]
    with pytest.raises(gr.Error, match="nothing to export"):
        library.library.export(Browse())
    with pytest.warns(UserWarning, match="nothing to export"):
        assert library.tab.export_clicked(Browse()) == gr.skip()


def run_result(tab: Tab, out: dict):
    """(files, status, session, main tab) from a re-run's dict."""
    s = tab.studio_tab
    return out[s.out_gallery], out[s.status], out[s.session], out[tab.tab.form["main_tabs"]]


def test_rerun_is_a_cache_hit_and_a_new_variation_goes_past_the_cache(settings, emulator):
    async def scenario():
        async with Studio(settings) as studio:
            tab = Tab(studio)
            await tab.runner.generate("a cat on a mat", count=2, seed=5, progress=Progress())  # variations 0 and 1
            browse = tab.refresh(Browse())["browse"]
            tab.select(browse, select(1))  # newest first: [1] is one of the two
            assert tab.store.get(browse.selected).options["variation"] in (0, 1)
            out = await tab.tab.rerun_clicked(browse, None, progress=Progress())
            files, status, session, tabs = run_result(tab, out)
            assert status.startswith("cached · $0") and len(emulator.generate_requests) == 2
            assert tabs.selected == "studio" and len(session.entries) == 1
            files, status, session, _ = run_result(tab, await tab.tab.variation_clicked(browse, session,
                                                                                        progress=Progress()))
            assert "cached" not in status and len(emulator.generate_requests) == 3
            assert session.entries[0].options["variation"] == 2  # 0 and 1 are in the cache already
            return tab.store.count(), session

    count, session = asyncio.run(scenario())
    assert count == 4 and [e.prompt for e in session.entries] == ["a cat on a mat"] * 2


def test_rerun_of_an_edit_needs_its_input(settings, emulator, tmp_path):
    photo = tmp_path / "photo.png"
    photo.write_bytes(png_bytes(color=(9, 99, 9)))

    async def scenario():
        async with Studio(settings) as studio:
            tab = Tab(studio)
            _, _, session = await tab.runner.generate("a tree", progress=Progress())
            made = str(session.entries[0].images[0].path)
            await tab.runner.edit(made, "add snow", progress=Progress())  # an earlier output: in the history
            await tab.runner.edit(str(photo), "add rain", progress=Progress())  # an upload: stored too
            browse = tab.refresh(Browse())["browse"]
            tab.select(browse, select(1))  # "add snow"
            _, status, _, _ = run_result(tab, await tab.tab.rerun(browse, None, "", None, Progress(), vary=False))
            assert status.startswith("cached · $0")
            tab.select(browse, select(0))  # "add rain": an upload, kept by the history since conversations
            _, status, _, _ = run_result(tab, await tab.tab.rerun(browse, None, "", None, Progress(), vary=False))
            assert status.startswith("cached · $0")
            # An entry from before the history kept inputs knows its upload only by hash...
            sha = load_input_path(photo).sha256
            studio.history._db.execute("DELETE FROM files WHERE kind = 'input' AND sha256 = ?", (sha,))
            studio.history.files.path_for(sha, "image/png").unlink()
            with pytest.raises(gr.Error, match="1 of them is no longer available: the history keeps the images"):
                await tab.tab.rerun(browse, None, "", None, Progress(), vary=False)
            with pytest.warns(UserWarning, match="no longer available"):  # the button: a toast, nothing changes
                assert await tab.tab.rerun_clicked(browse, None, progress=Progress()) == gr.skip()
            fresh = Session()
            fresh.record(*_edit_run(studio, str(photo)))  # ...unless this visitor's session still has the upload
            _, status, _, _ = run_result(tab, await tab.tab.rerun(browse, fresh, "", None, Progress(), vary=False))
            assert status.startswith("cached · $0")
            return len(emulator.generate_requests)

    assert asyncio.run(scenario()) == 3


def _edit_run(studio: Studio, path: str):
    request = studio.build_request(Mode.EDIT, "add rain", [path])
    result = ImageResult(id="x", request=request, images=())
    return request, (path,), 1, [result]


def test_send_to_edit_and_add_to_compose(library, tmp_path):
    fill(library, tmp_path)
    browse = library.refresh(Browse())["browse"]
    form = library.tab.form
    with pytest.warns(UserWarning, match="Open an entry first"):
        assert library.tab.send_to_edit(browse) == gr.skip()
    library.select(browse, select(3))
    path = str(library.store.get(browse.selected).images[0].path)
    sent = library.tab.send_to_edit(browse)
    assert sent[form["edit_image"]] == path and sent[form["main_tabs"]].selected == "studio"
    assert sent[form["mode_tabs"]].selected == "edit"
    added = library.tab.add_to_compose(browse, [("a.png", None)], FLASH)
    assert added[form["compose_images"]] == ["a.png", path] and added[form["mode_tabs"]].selected == "compose"
    with pytest.warns(UserWarning, match="at most 3 input images"):
        assert library.tab.add_to_compose(browse, [("a.png", None)] * 3, FLASH) == gr.skip()


def test_failed_requests_are_listed_with_a_placeholder_and_offer_nothing_to_send(settings, emulator):
    from nanobanana_ui.emulator import Fault

    emulator.fail_next(Fault.blocked("SAFETY"))

    async def scenario():
        async with Studio(settings) as studio:
            tab = Tab(studio)
            with pytest.raises(gr.Error):
                await tab.runner.generate("something blocked", progress=Progress())
            shown = tab.refresh(Browse())
            return shown["items"], tab.select(shown["browse"], select(0))

    items, opened = asyncio.run(scenario())
    assert items[0][1] == "failed: something blocked · generate" and Path(items[0][0]).is_file()
    assert "**Failed** (PromptBlockedError)" in opened["details"] and value(opened["download"]) is None
    # A failed request made no image: Send to Edit, Add to Compose and Download are not offered.
    assert [opened[name]["visible"] for name in ("to_edit", "to_compose", "download")] == [False] * 3


def test_an_owner_sees_and_exports_only_their_own_entries(settings, tmp_path):
    studio = Studio(settings)
    try:
        for n, owner in enumerate(["alice", "bob", None, "alice"]):
            record(studio.history, tmp_path / "out", f"picture {n} by {owner}", n, owner=owner)
        alice = Tab(studio, owner_of=lambda request: "alice")
        shown = alice.refresh(Browse())
        assert [c for _, c in shown["items"]] == ["picture 3 by alice · generate", "picture 0 by alice · generate"]
        assert shown["info"].startswith("Page 1 of 1 · 2 entries")
        with zipfile.ZipFile(alice.library.export(shown["browse"])) as archive:
            assert len(archive.read("manifest.jsonl").splitlines()) == 2
        everyone = Tab(studio)  # a private install: owner None sees all
        assert everyone.refresh(Browse())["info"].startswith("Page 1 of 1 · 4 entries")
    finally:
        asyncio.run(studio.aclose())


# -- PNG Info --------------------------------------------------------------------------------------------------


def test_png_info_on_our_image_fills_the_whole_form(tmp_path):
    request = ImageRequest(mode=Mode.GENERATE, model=PRO, prompt="a lighthouse, at dusk",
                           options=ImageOptions(aspect_ratio="16:9", size="2K", temperature=0.4, top_p=0.5, top_k=20,
                                                seed=7))
    path = tmp_path / "ours.png"
    path.write_bytes(embed_png_text(png_bytes(), provenance_chunks(request, text="here it is")))
    pnginfo = PngInfo(FLASH)
    message, text, found, preview = pnginfo.inspect(str(path))
    assert message.startswith(f"Made by Nano Banana Studio with {PRO}.") and preview == str(path)
    assert "restores: prompt, mode, model, aspect ratio, size, temperature, top-p, top-k, seed." in message
    assert text.startswith("a lighthouse, at dusk\nModel: gemini-3-pro-image-preview, Mode: generate")
    values = pnginfo.use(found, FLASH)
    assert values["main_tabs"].selected == "studio" and values["mode_tabs"].selected == "generate"
    assert (values["prompt"], values["model"], values["temperature"], values["top_p"], values["top_k"],
            values["seed"]) == ("a lighthouse, at dusk", PRO, 0.4, 0.5, 20, 7)
    assert values["aspect_ratio"]["value"] == "16:9" and values["size"]["value"] == "2K"
    assert "4K" in values["size"]["choices"]  # the choices are the image's model's, not the form's


def test_png_info_on_an_edit_says_the_input_is_not_in_the_file(tmp_path):
    photo = load_input_image(png_bytes(), "photo.png")
    request = ImageRequest(mode=Mode.EDIT, model=FLASH, prompt="make it blue", images=(photo,))
    path = tmp_path / "edit.png"
    path.write_bytes(embed_png_text(png_bytes(), provenance_chunks(request)))
    pnginfo = PngInfo(FLASH)
    message, _, found, _ = pnginfo.inspect(str(path))
    assert "Its input images are not in the file" in message
    values = pnginfo.use(found, FLASH)
    assert values["mode_tabs"].selected == "edit" and values["edit_prompt"] == "make it blue"
    assert values["seed"] == -1 and values["aspect_ratio"]["value"] == "auto" and values["temperature"] == 1.0


def test_png_info_without_metadata_says_so_and_has_nothing_to_use(tmp_path):
    path = tmp_path / "plain.png"
    path.write_bytes(png_bytes())
    pnginfo = PngInfo(FLASH)
    message, text, found, _ = pnginfo.inspect(str(path))
    assert message.startswith("This image has no generation parameters") and "Nothing here" in message
    assert text == ""
    with pytest.raises(gr.Error, match="no settings to use"):
        pnginfo.use(found, FLASH)
    assert pnginfo.inspect(None)[0].startswith("Drop an image")
    notes = tmp_path / "notes.png"
    notes.write_text("not an image")
    message, text, found, preview = pnginfo.inspect(str(notes))
    assert "notes.png is not a picture this app can open" in message and preview is None and found["settings"] == {}


def test_png_info_on_an_automatic1111_image_restores_prompt_and_seed_only(tmp_path):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a castle on a hill\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, "
                                "CFG scale: 7, Seed: 1234, Size: 512x512, Model hash: abc")
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    path = tmp_path / "a1111.png"
    path.write_bytes(buffer.getvalue())
    pnginfo = PngInfo(FLASH)
    message, text, found, _ = pnginfo.inspect(str(path))
    assert "AUTOMATIC1111" in message and "restores: prompt, seed." in message and "Steps: 20" in text
    values = pnginfo.use(found, FLASH)
    assert values["prompt"] == "a castle on a hill" and values["seed"] == 1234
    assert not {"model", "aspect_ratio", "size", "temperature", "top_p", "top_k"} & values.keys()  # left alone


def test_newer_and_older_on_an_empty_history_say_so(library):
    for move in (library.newer, library.older):
        with pytest.warns(UserWarning, match="Nothing has been made on this data directory yet"):
            shown = move(Browse())
        assert shown["items"] == [] and shown["browse"].page == 0


def test_a_refinement_is_listed_as_one_with_its_turn_and_parent_and_has_its_own_filter(emulator, settings):
    async def scenario():
        async with Studio(settings) as studio:
            root = await studio.generate("a lighthouse", model=PRO)
            await studio.refine(parent_id=root.id, instruction="make it night")
            await studio.edit(load_input_image(png_bytes(color=(9, 9, 9)), "photo.png"), "a red hat", model=PRO)
            tab = Tab(studio)
            shown = tab.filter(Browse(), "", "", "refine")
            return root, shown, tab.filter(Browse(), "", "", "edit"), tab.select(shown["browse"], select(0))

    root, shown, edits, opened = asyncio.run(scenario())
    assert [c for _, c in shown["items"]] == ["make it night · refine, turn 2"]
    assert [c for _, c in edits["items"]] == ["a red hat · edit"]  # a refinement is not listed as an edit
    assert f"**Refinement, turn 2 (of `{root.id}`)**" in opened["details"]
    assert len(emulator.generate_requests) == 3
