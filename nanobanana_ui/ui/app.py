"""A first Gradio page: Generate, with the offline banner and the named /generate endpoint.

The full Studio UI (Edit and Compose tabs, settings panel, history) builds on this in its own issue.
"""

from __future__ import annotations

import gradio as gr

from ..errors import StudioError
from ..models import get_model
from ..request import ImageOptions, ImageResult
from ..studio import Studio

OFFLINE_BANNER = (
    "**Offline mode:** no API key is configured, so images come from the built-in Gemini emulator "
    "(labelled placeholders). Add `GEMINI_API_KEY=...` to `.env` or the environment and restart for real images "
    "(get a key at https://aistudio.google.com/apikey)."
)


def status_line(result: ImageResult) -> str:
    """One line about a result: cost or cache badge, finish reason, time, and the model's words."""
    cost = "cached · $0" if result.cached else (
        f"${result.cost_usd:.4f}" if result.cost_usd is not None else "cost unknown")
    words = f" · {result.text}" if result.text else ""
    return f"{cost} · {result.finish_reason or 'done'} · {result.elapsed_s:.1f} s{words}"


def build_app(studio: Studio) -> gr.Blocks:
    """The Blocks app for one Studio."""
    spec = get_model(studio.settings.model)

    async def generate(prompt: str, aspect_ratio: str = "1:1") -> tuple[list[str], str]:
        """Make an image from a text prompt; returns the saved image files and a status line."""
        try:
            result = await studio.generate(prompt, options=ImageOptions(aspect_ratio=aspect_ratio or None))
        except StudioError as error:
            raise gr.Error(error.message) from None
        return [str(image.path) for image in result.images], status_line(result)

    with gr.Blocks(title="Nano Banana Studio") as demo:
        gr.Markdown("# 🍌 Nano Banana Studio")
        if studio.offline:
            gr.Markdown(OFFLINE_BANNER, elem_id="offline-banner")
        with gr.Row():
            with gr.Column():
                prompt = gr.Textbox(label="Prompt", lines=3, value="", elem_id="prompt")
                aspect = gr.Dropdown(list(spec.aspect_ratios), value="1:1", label="Aspect ratio")
                button = gr.Button("Generate", variant="primary", elem_id="generate-button")
            with gr.Column():
                gallery = gr.Gallery(label="Result", format="png", elem_id="out-gallery")
                status = gr.Markdown(elem_id="status")
        button.click(generate, [prompt, aspect], [gallery, status], api_name="generate", concurrency_limit=4)
    return demo
