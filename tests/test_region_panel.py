"""The Edit tab's region controls, handler by handler: the painted layers become the mask, the Studio gets the same
region edit the CLI makes (checked on what the emulator received), and a refusal is a toast that changes nothing."""

from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from conftest import in_studio
from PIL import Image, ImageFilter
from test_privacy_ui import studio_tab
from test_regions import noise

from nanobanana_ui.service.regions import DEFAULT_FEATHER
from nanobanana_ui.ui import region_panel
from nanobanana_ui.ui.compare_view import CompareView
from nanobanana_ui.ui.extras import PNG
from nanobanana_ui.ui.region_panel import (
    EDITOR_SIDE,
    NO_EXTEND,
    RegionPanel,
    before_after,
    painted_mask,
    region_arguments,
    upright_size,
)
from nanobanana_ui.ui.session import Session
from nanobanana_ui.ui.studio_tab import StudioTab

STROKE = (255, 0, 160, 127)  # what the page's half-opaque brush leaves on its layer


class Progress:
    def __call__(self, fraction, desc=None):
        pass


def layer(size: tuple[int, int], *boxes: tuple[int, int, int, int], rim: int = 0) -> Image.Image:
    """An editor layer: clear, with strokes (the brush's colour at half opacity) over `boxes`, and a faint rim."""
    im = Image.new("RGBA", size, (0, 0, 0, 0))
    for x0, y0, x1, y1 in boxes:
        if rim:
            im.paste((255, 0, 160, 20), (x0 - rim, y0 - rim, x1 + rim, y1 + rim))  # anti-aliased edge: left out
        im.paste(STROKE, (x0, y0, x1, y1))
    return im


def editor_value(*layers: Image.Image) -> dict:
    """What gr.ImageEditor(type="pil") hands the handler."""
    size = layers[0].size if layers else (10, 10)
    return {"background": Image.new("RGBA", size, "white"), "layers": list(layers), "composite": None}


def test_painted_layers_become_one_white_mask_and_nothing_painted_is_none():
    first, second = layer((40, 30), (5, 5, 10, 10), rim=2), layer((40, 30), (20, 15, 30, 25))
    mask = painted_mask(editor_value(first, second), (40, 30))
    assert mask.mode == "L" and mask.size == (40, 30)
    expected = np.zeros((30, 40), bool)
    expected[5:10, 5:10] = expected[15:25, 20:30] = True  # both layers; the faint rim is not the region
    assert np.array_equal(np.asarray(mask) == 255, expected) and set(np.unique(np.asarray(mask))) == {0, 255}
    assert painted_mask(editor_value(layer((40, 30))), (40, 30)) is None  # an empty (or fully erased) layer
    faint = Image.new("RGBA", (40, 30), (0, 0, 0, 0))
    faint.paste((255, 0, 160, 20), (5, 5, 10, 10))
    assert painted_mask(editor_value(faint), (40, 30)).getbbox() is None  # touched, too faint: empty, refused
    assert painted_mask(editor_value(), (40, 30)) is None and painted_mask(None, (40, 30)) is None


def test_a_smaller_canvas_is_scaled_to_the_image_and_another_shape_is_left_for_the_studio_to_refuse():
    small = layer((100, 75), (50, 0, 100, 75))  # the right half, painted on a canvas shown at a quarter size
    mask = painted_mask(editor_value(small), (400, 300))
    assert mask.size == (400, 300)
    assert np.asarray(mask)[:, 200:].all() and not np.asarray(mask)[:, :200].any()
    assert painted_mask(editor_value(layer((100, 100), (0, 0, 9, 9))), (400, 300)).size == (100, 100)


def test_region_arguments_write_the_mask_in_a_folder_of_the_requests_own_and_remove_it(tmp_path):
    image = tmp_path / "photo.png"
    Image.new("RGB", (40, 30)).save(image)
    with region_arguments(str(image), None, 8, NO_EXTEND, "center") as plain:
        assert plain == {}  # nothing painted, no extend: a plain edit, exactly as before
    painted = editor_value(layer((40, 30), (5, 5, 20, 20)))
    with region_arguments(str(image), painted, 12.0, NO_EXTEND, "left") as one, \
            region_arguments(str(image), painted, 12.0, NO_EXTEND, "left") as other:
        assert one["feather"] == 12 and one["extend_to"] is None and one["anchor"] is None
        assert Path(one["mask"]).parent != Path(other["mask"]).parent  # two visitors never share a file
        assert np.array_equal(np.asarray(Image.open(one["mask"])), np.asarray(painted_mask(painted, (40, 30))))
    assert not Path(one["mask"]).exists() and not Path(one["mask"]).parent.exists()
    with region_arguments(str(image), None, 8, "16:9", "left") as extend:
        assert extend == {"mask": None, "feather": 8, "extend_to": "16:9", "anchor": "left"}


def test_the_canvas_follows_the_image_upright_and_at_most_editor_side(tmp_path):
    from test_privacy import photo
    turned = tmp_path / "turned.jpg"
    turned.write_bytes(photo(orientation=6, size=(96, 64)))  # stored landscape, shown portrait
    assert upright_size(str(turned)) == (64, 96)
    assert RegionPanel.image_changed(str(turned))["background"].size == (64, 96)
    big = tmp_path / "big.png"
    Image.new("RGB", (EDITOR_SIDE * 2, EDITOR_SIDE)).save(big)
    assert RegionPanel.image_changed(str(big))["background"].size == (EDITOR_SIDE, EDITOR_SIDE // 2)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    assert RegionPanel.image_changed(str(text)) is None and RegionPanel.image_changed(None) is None


async def edit_clicked(tab: StudioTab, image: str, *, painted=None, feather=DEFAULT_FEATHER, extend_to=NO_EXTEND,
                       anchor="center", aspect_ratio="auto", session: Session | None = None):
    """The Edit button's handler, with the form's defaults otherwise."""
    return await tab.edit(image=image, prompt="a red hat", painted=painted, feather=feather, extend_to=extend_to,
                          anchor=anchor, model=tab.default_model, aspect_ratio=aspect_ratio, size="",
                          temperature=1.0, top_p=0.95, top_k=0, seed=-1, count=1, output="Image + text",
                          thinking="", show_thoughts=False, search=False, image_search=False, api_key="",
                          session=session or Session(), keep_metadata=False, output_format=PNG, jpeg_quality=90,
                          person_generation="", store=False, request=None, progress=Progress())


def test_a_painted_region_is_edited_through_the_studio_and_the_slider_shows_input_and_output(settings, emulator,
                                                                                                tmp_path):
    original = noise((320, 240), "RGB")
    image = tmp_path / "photo.png"
    original.save(image)
    strokes = layer((320, 240), (120, 80, 200, 150))

    async def scenario(studio):
        tab = studio_tab(studio)
        return tab, await edit_clicked(tab, str(image), painted=editor_value(strokes), feather=4)

    tab, shown = in_studio(settings, scenario)
    [sent] = emulator.generate_requests
    assert sent.part_kinds == ["text", "image", "image"] and sent.prompt.endswith("The change to make: a red hat")
    crop, crop_mask = (Image.open(io.BytesIO(data)) for data in sent.images)
    assert crop.size == crop_mask.size and crop.size[0] < 320  # a crop around the region, not the whole picture
    [output] = shown[tab.out_gallery]
    out = Image.open(output)
    assert out.size == original.size and out.mode == original.mode
    keep = ~(np.asarray(painted_mask(editor_value(strokes), (320, 240)).filter(ImageFilter.MaxFilter(9))) > 0)
    assert np.array_equal(np.asarray(out)[keep], np.asarray(original)[keep])  # byte-identical outside mask + 4 px
    assert shown[tab.before_after] == gr.update(value=(str(image), output), visible=True)
    assert shown[tab.compare.box].visible is False  # one image: nothing to compare


@pytest.mark.parametrize(("what", "message"), [
    ("full", "The mask painted-region.png covers the whole image"),
    ("faint", "The mask painted-region.png is empty"),
    ("other shape", "paint the mask on this image"),
    ("own ratio", "already 4:3"),
    ("mask and extend", "cannot be combined"),
    ("aspect ratio", "an aspect ratio does not apply"),
])
def test_a_refused_region_is_a_toast_that_sends_nothing_and_changes_nothing(settings, emulator, tmp_path, what,
                                                                            message):
    image = tmp_path / "photo.png"
    Image.new("RGB", (320, 240), (20, 120, 200)).save(image)
    faint = Image.new("RGBA", (320, 240), (0, 0, 0, 0))
    faint.paste((255, 0, 160, 20), (10, 10, 50, 50))
    strokes = {"full": layer((320, 240), (0, 0, 320, 240)), "other shape": layer((100, 100), (10, 10, 50, 50)),
               "faint": faint}
    painted = editor_value(strokes.get(what, layer((320, 240), (10, 10, 50, 50))))
    if what == "own ratio":
        painted = None
    extend = {"own ratio": "4:3", "mask and extend": "16:9"}.get(what, NO_EXTEND)
    aspect = "21:9" if what == "aspect ratio" else "auto"

    async def scenario(studio):
        return await edit_clicked(studio_tab(studio), str(image), painted=painted, extend_to=extend,
                                  aspect_ratio=aspect)

    with pytest.warns(UserWarning, match=message):  # the toast
        result = in_studio(settings, scenario)
    assert result == gr.skip() and emulator.generate_requests == []


def test_extending_the_canvas_from_the_page_keeps_the_original_in_place(settings, emulator, tmp_path):
    original = noise((200, 200), "RGB")
    image = tmp_path / "square.png"
    original.save(image)

    async def scenario(studio):
        tab = studio_tab(studio)
        return tab, await edit_clicked(tab, str(image), extend_to="16:9", anchor="left")

    tab, shown = in_studio(settings, scenario)
    [sent] = emulator.generate_requests
    assert sent.generation_config["imageConfig"]["aspectRatio"] == "16:9"
    canvas = Image.open(io.BytesIO(sent.images[0]))
    assert canvas.size == (356, 200)
    out = Image.open(shown[tab.out_gallery][0])
    assert out.size == (356, 200) and np.array_equal(np.asarray(out)[:, :200], np.asarray(original))  # anchored left


def test_before_after_is_for_edits_and_compare_for_runs_of_two_or_more(settings, emulator, tmp_path):
    async def scenario(studio):
        tab = studio_tab(studio)
        shown = await tab.generate(prompt="two owls", model=tab.default_model, aspect_ratio="auto", size="",
                                   temperature=1.0, top_p=0.95, top_k=0, seed=-1, count=2, output="Image + text",
                                   thinking="", show_thoughts=False, search=False, image_search=False, api_key="",
                                   session=Session(), keep_metadata=False, output_format=PNG, jpeg_quality=90,
                                   person_generation="", store=False, request=None, progress=Progress())
        return tab, shown

    tab, shown = in_studio(settings, scenario)
    files = shown[tab.out_gallery]
    assert len(files) == 2 and shown[tab.before_after] == gr.update(value=None, visible=False)
    left_pick, right_pick = tab.compare.picks
    assert shown[tab.compare.box].visible is True
    assert shown[left_pick]["choices"] == [("Image 1", "0"), ("Image 2", "1")]
    assert [shown[left_pick]["value"], shown[right_pick]["value"]] == ["0", "1"]
    assert [shown[image] for image in tab.compare.images] == files
    session = shown[tab.session]
    assert CompareView.picked(session, "0") == files[0] and CompareView.picked(session, "7") == gr.skip()
    assert before_after(Session()) == gr.update(value=None, visible=False)


def test_the_extend_picker_follows_the_model():
    from nanobanana_ui.domain.models import get_model
    flash = get_model("gemini-2.5-flash-image")
    update = RegionPanel.model_changed(flash, "16:9")
    assert update["value"] == "16:9" and update["choices"][0] == ("Don't extend", NO_EXTEND)
    assert [value for _, value in update["choices"][1:]] == list(flash.aspect_ratios)
    assert RegionPanel.model_changed(flash, "1:8")["value"] == NO_EXTEND  # a ratio it lacks
    assert region_panel.extend_choices(flash)[1:] == [(r, r) for r in flash.aspect_ratios]
