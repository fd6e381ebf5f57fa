"""The page's side of private inputs and Vertex: PNG Info names stripped fields, the keep-metadata checkbox, and
Vertex-only output controls drawn from the backend."""

from __future__ import annotations

import gradio as gr
from conftest import in_studio, page_for_handlers, png_bytes
from test_privacy import LATITUDE, OWNER, SERIAL, has_gps, photo
from test_vertex import rsa_keys, vertex_settings  # noqa: F401 (fixtures)

from nanobanana_ui.backends.capabilities import GEMINI_API, VERTEX_AI
from nanobanana_ui.ui.extras import JPEG, KEEP_METADATA_LABEL, PNG, ExtraControls
from nanobanana_ui.ui.pnginfo_tab import PngInfo
from nanobanana_ui.ui.runner import Runner
from nanobanana_ui.ui.session import Session
from nanobanana_ui.ui.studio_tab import StudioTab

VALUES = (SERIAL, OWNER, "51", "Jane")  # what must never be shown: the fields' contents


class Progress:
    def __call__(self, fraction, desc=None):
        pass


def studio_tab(studio) -> StudioTab:
    """A StudioTab laid out in a Blocks that is never launched (call with an event loop running)."""
    tab = StudioTab(Runner(studio), studio.settings.model)
    with page_for_handlers():
        session, api_key = gr.State(Session()), gr.Textbox()
        with gr.Tabs() as main_tabs:
            tab.layout(main_tabs, session, api_key)
    return tab


async def edit_clicked(tab: StudioTab, path: str, keep: bool, output_format: str = PNG, quality: float = 90,
                       person: str = "") -> dict:
    """The Edit button's handler with the form's defaults and these Advanced values, as the page calls it."""
    return await tab.edit(image=path, prompt="make it sunny", painted=None, feather=8, extend_to="none",
                          anchor="center", model=tab.default_model, aspect_ratio="auto", size="", temperature=1.0,
                          top_p=0.95, top_k=0, seed=-1, count=1, output="Image + text", thinking="",
                          show_thoughts=False, search=False, image_search=False, api_key="", session=Session(),
                          keep_metadata=keep, output_format=output_format, jpeg_quality=quality,
                          person_generation=person, store=False, request=None, progress=Progress())


def test_png_info_names_what_was_stripped_from_an_app_made_images_inputs(settings, emulator, tmp_path):
    source = tmp_path / "holiday.jpg"
    source.write_bytes(photo())

    async def scenario(studio):
        tab = studio_tab(studio)
        await edit_clicked(tab, str(source), keep=False)
        return studio.history.page(limit=1)[0]

    entry = in_studio(settings, scenario)
    message, _, found, _ = PngInfo(settings.model).inspect(str(entry.images[0].path))
    assert found["source"] == "nanobanana"
    assert "Personal metadata removed from its inputs before they were sent: holiday\\.jpg: " in message, message
    for name in ("EXIF:GPSLatitude", "EXIF:GPSLongitude", "EXIF:BodySerialNumber", "EXIF:Artist"):
        assert name in message
    assert not any(value in message for value in VALUES)


def test_png_info_lists_a_photos_personal_fields_names_only(settings, tmp_path):
    gps = tmp_path / "gps.jpg"
    gps.write_bytes(photo())
    message, _, found, preview = PngInfo(settings.model).inspect(str(gps))
    assert found["source"] != "nanobanana" and preview == str(gps)
    assert "holds personal metadata that is removed before it is sent" in message
    assert "EXIF:GPSLatitude" in message and "EXIF:BodySerialNumber" in message
    assert not any(value in message for value in VALUES) and str(LATITUDE[0]) not in message
    plain = tmp_path / "plain.png"
    plain.write_bytes(png_bytes())
    assert "personal metadata" not in PngInfo(settings.model).inspect(str(plain))[0]


def test_the_keep_metadata_checkbox_decides_what_the_emulator_receives(settings, emulator, tmp_path):
    original = photo()
    source = tmp_path / "holiday.jpg"
    source.write_bytes(original)

    async def scenario(studio):
        tab = studio_tab(studio)
        assert tab.extras.keep_metadata.value is False and tab.extras.keep_metadata.label == KEEP_METADATA_LABEL
        await edit_clicked(tab, str(source), keep=False)
        await edit_clicked(tab, str(source), keep=True)

    in_studio(settings, scenario)
    stripped, kept = emulator.generate_requests
    assert not has_gps(stripped.images[0]) and SERIAL.encode() not in stripped.images[0]
    assert kept.images == [original]  # kept: the file's bytes as they were, GPS included
    assert has_gps(kept.images[0])


def test_the_checkbox_defaults_to_the_setting(settings, emulator):
    async def scenario(studio):
        return studio_tab(studio).extras.keep_metadata.value

    assert in_studio(settings.with_overrides(keep_metadata=True), scenario) is True


def test_vertex_controls_are_hidden_on_the_gemini_api_and_send_nothing(settings, emulator):
    async def scenario(studio):
        tab = studio_tab(studio)
        extras = tab.extras
        assert not any(c.visible for c in (extras.output_format, extras.jpeg_quality, extras.person_generation))
        assert extras.keep_metadata.visible  # the checkbox is everyone's
        await tab.generate("a pear", tab.default_model, "auto", "", 1.0, 0.95, 0, -1, 1, "Image + text", "",
                           False, False, False, "", Session(),
                           False, PNG, 90, "", None, None, None, Progress())  # the hidden defaults

    in_studio(settings, scenario)
    [request] = emulator.generate_requests  # sent, with no Vertex option the Gemini API would refuse
    image_config = request.generation_config.get("imageConfig") or {}
    assert "imageOutputOptions" not in image_config and "personGeneration" not in image_config


def test_vertex_controls_are_shown_on_vertex_and_reach_the_request(vertex_settings, emulator):  # noqa: F811
    async def scenario(studio):
        tab = studio_tab(studio)
        extras = tab.extras
        assert all(c.visible for c in (extras.output_format, extras.jpeg_quality, extras.person_generation))
        assert [value for _, value in extras.person_generation.choices][1:] == list(VERTEX_AI.person_generation)
        await tab.generate("a crowd at a market", tab.default_model, "auto", "", 1.0, 0.95, 0, -1, 1,
                           "Image + text", "", False, False, False, "", Session(),
                           False, JPEG, 75, "ALLOW_ADULT", None, None, None, Progress())
        return studio.history.page(limit=1)[0]

    entry = in_studio(vertex_settings, scenario)
    image_config = emulator.generate_requests[0].generation_config["imageConfig"]
    assert image_config["imageOutputOptions"] == {"mimeType": "image/jpeg", "compressionQuality": 75}
    assert image_config["personGeneration"] == "ALLOW_ADULT"
    assert entry.images[0].path.suffix == ".jpg"


def test_page_extras_become_image_options():
    from nanobanana_ui.domain.request import ImageOptions

    gemini, vertex = ExtraControls(GEMINI_API, False), ExtraControls(VERTEX_AI, False)
    assert gemini.values(None, PNG, 90, "").apply(ImageOptions()) == ImageOptions()
    assert vertex.values(True, PNG, 90, "ALLOW_NONE").apply(ImageOptions()) == \
        ImageOptions(person_generation="ALLOW_NONE")  # the quality goes with JPEG only
    assert vertex.values(False, JPEG, 60.0, "").apply(ImageOptions()) == \
        ImageOptions(output_mime_type="image/jpeg", output_quality=60)
    assert vertex.values(True, PNG, 90, "").keep_metadata is True


def test_the_compose_edits_run_one_at_a_time_in_order(settings, emulator):
    """Two quick Removes left "(1 added)" under an empty compose gallery in a browser test: the limit line computed for
    the first change landed after the second Remove. Every compose edit and that line share one queue, one at a time."""
    import gradio as gr

    async def scenario(studio):
        tab = StudioTab(Runner(studio), studio.settings.model)
        with page_for_handlers() as page:
            session, api_key = gr.State(Session()), gr.Textbox()
            with gr.Tabs() as main_tabs:
                tab.layout(main_tabs, session, api_key)
            tab.wire()
        return tab, page

    tab, page = in_studio(settings, scenario)
    compose = [fn for fn in page.fns.values() if any(t[0] in (tab.compose_images._id, tab.remove._id, tab.earlier._id,
                                                               tab.later._id) for t in fn.targets)]
    assert {t[1] for fn in compose for t in fn.targets} == {"upload", "change", "select", "click"} and len(compose) == 6
    assert {(fn.concurrency_id, fn.concurrency_limit) for fn in compose} == {("compose-edits", 1)}
