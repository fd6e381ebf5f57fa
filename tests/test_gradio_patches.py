"""The Gradio patches fit the Gradio they were written for, and step aside (with a warning) on any other.

When Gradio moves, these fail first: check each patch against the new release, then move PATCHED_GRADIO."""

from __future__ import annotations

import inspect

import gradio as gr
import pytest
from gradio.data_classes import FileData

from nanobanana_ui.ui.components import PATCHED_GRADIO, gradio_patchable, let_studio_judge_uploads


def test_gradio_is_the_release_the_patches_were_written_for():
    assert gr.__version__ == PATCHED_GRADIO, "Gradio moved: re-check ui/components.py and webapp.py's patches"
    assert gradio_patchable("anything")


def test_the_patched_attributes_are_still_what_the_patches_expect():
    from gradio import mcp

    # patch_mcp_tool_outputs replaces this static method, called as pop_returned_state(components, data).
    assert list(inspect.signature(mcp.GradioMCPServer.pop_returned_state).parameters) == ["components", "data"]
    # let_studio_judge_uploads wraps an instance's preprocess(payload).
    assert list(inspect.signature(gr.Image(type="filepath").preprocess).parameters) == ["payload"]


def test_an_upload_pillow_cannot_open_reaches_the_studio_by_path(tmp_path):
    notes = tmp_path / "notes.png"
    notes.write_text("shopping list\n")
    payload = FileData(path=str(notes), orig_name="notes.png")
    with pytest.raises(Exception):  # noqa: B017, PT011 - Gradio's own failure, whatever its type
        gr.Image(type="filepath", image_mode=None).preprocess(payload)
    assert let_studio_judge_uploads(gr.Image(type="filepath", image_mode=None)).preprocess(payload) == str(notes)


def test_on_another_gradio_the_patches_are_skipped_with_a_warning(monkeypatch):
    from gradio import mcp

    from nanobanana_ui.webapp import patch_mcp_tool_outputs

    monkeypatch.setattr(gr, "__version__", "7.0.0")
    image = gr.Image(type="filepath")
    original = image.preprocess
    with pytest.warns(RuntimeWarning, match="Gradio 7.0.0 is not 6.31.0: the let_studio_judge_uploads patch"):
        assert let_studio_judge_uploads(image).preprocess == original
    before = mcp.GradioMCPServer.pop_returned_state
    with pytest.warns(RuntimeWarning, match="patch_mcp_tool_outputs patch is skipped"):
        patch_mcp_tool_outputs()
    assert mcp.GradioMCPServer.pop_returned_state is before
