"""The HTTP API (gradio_client, MCP): the /generate, /edit, /compose and /refine events, on inputs of their own.

The page's buttons call the Studio tab's handlers, which turn a refusal into a warning toast; an API caller needs the
refusal as an error (gradio_client raises AppError), so the public events call the Runner directly. Their inputs are
hidden components that describe the API: every model's sizes and aspect ratios (the Studio judges them against the
model asked for), `count` as an int, Compose's `images` as a plain list of image files. Parameter names and order
are the API (the Runner's signatures): the image(s) and prompt first, `api_key` last, with `transparent` just before
it (and /edit's optional `mask` before that).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from ..domain.models import get_model, known_models
from .components import let_studio_judge_uploads
from .controls import AUTO, IMAGE_AND_TEXT, MAX_UI_COUNT, MODEL_DEFAULT, OUTPUT_CHOICES, model_choices
from .runner import Runner

__all__ = ["all_aspect_ratios", "all_sizes", "all_thinking_levels", "public_endpoints"]

_SIZE_ORDER = ("512", "1K", "2K", "4K")


def all_sizes() -> list[str]:
    """Every size some model in the registry makes, smallest first."""
    sizes = dict.fromkeys(size for spec in known_models() for size in spec.sizes)
    return sorted(sizes, key=lambda size: _SIZE_ORDER.index(size) if size in _SIZE_ORDER else len(_SIZE_ORDER))


def all_aspect_ratios() -> list[str]:
    """"auto", then every aspect ratio some model in the registry offers."""
    return [AUTO, *dict.fromkeys(ratio for spec in known_models() for ratio in spec.aspect_ratios)]


def all_thinking_levels() -> list[str]:
    """"" (the model's default), then every thinking level some model in the registry offers."""
    return [MODEL_DEFAULT, *dict.fromkeys(level for spec in known_models() for level in spec.thinking_levels)]


def public_endpoints(runner: Runner, *, outputs: list[Any], api_key: gr.Textbox, session: gr.State,
                     default_model: str) -> None:
    """Add the API's hidden inputs and its four public events (call inside the Blocks)."""
    spec = get_model(default_model)
    with gr.Column(visible=False):  # described by the API page and gradio_client; never shown
        prompt = gr.Textbox(label="Prompt")
        parent_id = gr.Textbox(label="Id of the result to refine")
        instruction = gr.Textbox(label="Instruction")
        # Like the page's: a file Pillow cannot open reaches the Studio, whose message names the problem.
        image = let_studio_judge_uploads(gr.Image(label="Image to edit", type="filepath", image_mode=None))
        images = gr.File(label="Images to combine, in order", file_count="multiple", file_types=["image"],
                         type="filepath")
        settings = [
            gr.Dropdown(model_choices(default_model), value=default_model, label="Model", allow_custom_value=True),
            gr.Dropdown(all_aspect_ratios(), value=AUTO, label="Aspect ratio", allow_custom_value=True),
            gr.Dropdown(all_sizes(), value=spec.default_size, label="Image size", allow_custom_value=True),
            gr.Slider(0, 2, value=1.0, step=0.05, label="Temperature"),
            gr.Slider(0, 1, value=0.95, step=0.01, label="Top-p"),
            gr.Number(value=0, precision=0, minimum=0, maximum=1000, label="Top-k"),
            gr.Number(value=-1, precision=0, minimum=-1, maximum=2**31 - 1, label="Seed"),
            gr.Number(value=1, precision=0, minimum=1, maximum=MAX_UI_COUNT, label="Number of images"),
            gr.Radio(list(OUTPUT_CHOICES), value=IMAGE_AND_TEXT, label="Output"),
            # Gemini 3 controls (added after `output`, before `api_key`, each with a default): every model's
            # levels; the Studio refuses one the model asked for lacks, before any call.
            gr.Dropdown(all_thinking_levels(), value=MODEL_DEFAULT, label="Thinking level", allow_custom_value=True),
            gr.Checkbox(value=False, label="Show thinking"),
            gr.Checkbox(value=False, label="Google Search grounding"),
            gr.Checkbox(value=False, label="Image search"),
        ]
        # The region to change in an edit (white = change it); a plain file, so the Studio judges it (size, empty,
        # full, not an image) with its own message rather than Gradio re-encoding or refusing it first.
        mask = gr.File(label="Mask (white = the region to change)", type="filepath")
        style = gr.Textbox(value="", label="Style id (see `styles`; empty for none)")  # has a value: optional
        # "" opaque, "difference" (2 calls) or "key" (1 call): an RGBA PNG (service.transparency); after the others.
        transparent = gr.Dropdown(["", "difference", "key"], value="", label="Transparent background",
                                  allow_custom_value=True)
        kit = gr.Textbox(value="", label="Kit (NAME or NAME@VERSION)")  # the caller's kits, sent after the images
        trigger = gr.Button()
    # One pool for every generation event: they all wait on the same API and quota, not on this machine.
    pool: dict[str, Any] = runner.events  # the fair gate in Runner decides who runs (docs/crowds.md)
    endpoints: list[tuple[Any, list[Any], list[Any], str]] = [
        (runner.generate, [prompt], [style, transparent], "generate"),
        (runner.edit, [image, prompt], [mask, style, transparent], "edit"),
        (runner.compose, [images, prompt], [style, transparent], "compose")]
    for fn, inputs, extra, name in endpoints:
        # api_key comes last of the API's parameters: callers that pass the others by position keep working.
        trigger.click(fn, [*inputs, *settings, *extra, kit, api_key, session], outputs, api_name=name,
                      api_visibility="public", **pool)
    # /refine: an earlier result's id and the instruction, then the same options (api_key last).
    trigger.click(runner.refine, [parent_id, instruction, *settings, style, kit, api_key, session], outputs,
                  api_name="refine",
                  api_visibility="public", **pool)
