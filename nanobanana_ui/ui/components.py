"""Small adjustments to Gradio components: an image input that leaves judging a bad file to the Studio."""

from __future__ import annotations

import functools
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

__all__ = ["let_studio_judge_uploads"]

_UNREADABLE = (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError)


def let_studio_judge_uploads(component: gr.Image) -> gr.Image:
    """Make an Image input hand a file Pillow cannot open to the handler by path, for the Studio to explain."""
    # gr.Image opens every upload with Pillow before handing it on; a text file named .png or a damaged image then
    # fails inside Gradio and the visitor sees a bare "Error". The Studio's loader names the problem instead.
    # (Patched on the instance, not by subclassing: Gradio writes a .pyi stub beside any module defining a
    # component class. The patch holds as long as no event returns a property update for this component, which
    # would make Gradio build a fresh, unpatched copy for that session.)
    preprocess = component.preprocess

    @functools.wraps(preprocess)
    def lenient(payload: Any) -> Any:
        try:
            return preprocess(payload)
        except _UNREADABLE:
            path = getattr(payload, "path", None)
            if path is None:
                raise
            return str(path)

    component.preprocess = lenient  # type: ignore[method-assign]
    return component
