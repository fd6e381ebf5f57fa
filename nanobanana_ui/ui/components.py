"""Small adjustments to Gradio: an image input that leaves judging a bad file to the Studio; the version check that
every patch of Gradio's internals goes through (webapp.patch_mcp_tool_outputs uses it too)."""

from __future__ import annotations

import functools
import warnings
from typing import Any

import gradio as gr
from PIL import Image, UnidentifiedImageError

__all__ = ["PATCHED_GRADIO", "gradio_patchable", "let_studio_judge_uploads"]

# The Gradio release the patches were written against and tested on (requirements.txt pins it). On any other
# release they are skipped with a warning: Gradio's internals change between releases, and a patch that no longer
# fits would break the page in ways nobody tests. tests/test_gradio_patches.py fails when the pin moves.
PATCHED_GRADIO = "6.31.0"


def gradio_patchable(patch: str, version: str | None = None) -> bool:
    """True on the Gradio release the patches fit; else a warning naming the patch skipped, and False."""
    version = version or gr.__version__
    if version == PATCHED_GRADIO:
        return True
    warnings.warn(f"Gradio {version} is not {PATCHED_GRADIO}: the {patch} patch is skipped (check it still "
                  "applies, then update PATCHED_GRADIO).", RuntimeWarning, stacklevel=2)
    return False

_UNREADABLE = (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError)


def let_studio_judge_uploads(component: gr.Image) -> gr.Image:
    """Make an Image input hand a file Pillow cannot open to the handler by path, for the Studio to explain."""
    # gr.Image opens every upload with Pillow before handing it on; a text file named .png or a damaged image then
    # fails inside Gradio and the visitor sees a bare "Error". The Studio's loader names the problem instead.
    # (Patched on the instance, not by subclassing: Gradio writes a .pyi stub beside any module defining a
    # component class. The patch holds as long as no event returns a property update for this component, which
    # would make Gradio build a fresh, unpatched copy for that session.)
    if not gradio_patchable("let_studio_judge_uploads"):
        return component
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
