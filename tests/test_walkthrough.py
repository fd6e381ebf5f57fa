"""What a new user tripped over this week (issue 19): page words, not command-line words; limits that can be met."""

from __future__ import annotations

import asyncio
import io

import gradio as gr
import pytest
from conftest import png_bytes
from PIL import Image

from nanobanana_ui.cli.main import main
from nanobanana_ui.domain.models import get_model
from nanobanana_ui.imaging.pngmeta import read_image_info
from nanobanana_ui.service.studio import Studio
from nanobanana_ui.ui.refine_view import RefineView
from nanobanana_ui.ui.runner_base import no_owner
from nanobanana_ui.ui.text import compose_limit, model_info

LITE = "gemini-3.1-flash-lite-image"


def test_compose_on_a_model_that_cannot_compose_says_so_and_names_those_that_can(emulator, tmp_path, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(png_bytes(color=(200, 0, 0)))
    b.write_bytes(png_bytes(color=(0, 0, 200)))
    assert main(["compose", str(a), str(b), "--prompt", "the two together", "--model", LITE]) == 2
    error = capsys.readouterr().err
    assert "cannot compose" in error and "remove" not in error.lower()
    assert "Nano Banana Pro" in error
    assert emulator.generate_requests == []  # refused before any call
    line = compose_limit(get_model(LITE), 2)
    assert "cannot compose" in line and "Nano Banana Pro" in line and "takes 2 to 1" not in line


def test_a_model_that_takes_one_input_image_says_image_not_images():
    assert "up to 1 input image" in model_info(get_model(LITE), "1K")
    assert "up to 1 input images" not in model_info(get_model(LITE), "1K")


def test_an_unknown_id_on_the_refine_tab_is_explained_in_page_words(emulator, settings):
    async def scenario():
        async with Studio(settings) as studio:
            return RefineView(studio, no_owner)._path("nope-123", None)

    with pytest.raises(gr.Error) as refused:
        asyncio.run(scenario())
    message = refused.value.message
    assert "nope-123" in message and "History tab" in message
    assert "--json" not in message and "generate/edit/compose" not in message


def test_png_info_on_a_file_that_is_not_a_picture_speaks_plainly():
    info = read_image_info(b"just some text, not a picture", "notes.png")
    assert "Pillow" not in info.message and "notes.png" in info.message
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG")
    assert read_image_info(buffer.getvalue(), "ok.png").message != info.message


def test_download_original_with_nothing_open_says_what_to_do():
    from nanobanana_ui.ui.refine_tab import RefineTab
    from nanobanana_ui.ui.refine_view import Place

    with pytest.warns(UserWarning, match="open a result first"):
        RefineTab.download_clicked(None, Place())  # type: ignore[arg-type]  # uses no state of the tab
