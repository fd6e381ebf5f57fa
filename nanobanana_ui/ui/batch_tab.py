"""The Batch tab's layout and events (handlers in batch.py); the Studio tab's settings are the batch's defaults."""

from __future__ import annotations

from typing import Any

import gradio as gr

from .batch import BatchPage, BatchState

__all__ = ["batch_tab"]

PRIVATE: dict[str, Any] = {"api_visibility": "private"}
NOTE = ("One prompt per line (blank lines and `#` comments skipped), or a .csv / .jsonl file with a `prompt` column "
        "and optional per-row `mode`, `images`, `model`, `aspect_ratio`, `size`, `temperature`, `top_p`, `top_k`, "
        "`seed`, `count`, `name`. The Studio tab's settings (model, aspect ratio, size, temperature, top-p, "
        "top-k, seed, output) are the defaults a row can override. Runs go at the pace of the rate limit; a run "
        "cancelled or with failures resumes when you run the same input again.")


def batch_tab(page: BatchPage, settings_inputs: list, concurrency_limit: int, api_key=None) -> gr.Tab:
    """Upload or paste prompts, estimate, run with progress, cancel, watch the results arrive, download a ZIP."""
    with gr.Tab("Batch", id="batch", elem_id="batch-tab") as tab:
        state = gr.State(BatchState())
        with gr.Row():
            with gr.Column(scale=2):
                file = gr.File(label="Prompt file (.txt, .csv, .jsonl)", file_types=[".txt", ".csv", ".jsonl"],
                               type="filepath", elem_id="batch-file")
                text = gr.Textbox(label="Or paste prompts, one per line", lines=8, elem_id="batch-text",
                                  placeholder="A red fox in the snow\nAn owl at night, watercolour")
                gr.Markdown(NOTE)
                with gr.Row():
                    estimate = gr.Button("Estimate", elem_id="batch-estimate-button")
                    run = gr.Button("Run", variant="primary", elem_id="batch-run-button")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="batch-cancel-button")
                plan = gr.Markdown(elem_id="batch-plan")
            with gr.Column(scale=3):
                progress = gr.Markdown(elem_id="batch-progress")
                gallery = gr.Gallery(label="Results, as they arrive", format="png", columns=4, height=480,
                                     object_fit="contain", interactive=False, buttons=["download", "fullscreen"],
                                     elem_id="batch-gallery")
                summary = gr.Markdown(elem_id="batch-summary")
                archive = gr.File(label="This run (images + manifest.jsonl)", interactive=False, visible=False,
                                  elem_id="batch-zip")
    settings = [s for s in settings_inputs if s.elem_id != "count"]  # a row's `count` says how many; default 1
    inputs = [file, text, *settings, *([api_key] if api_key is not None else []), state]
    estimate.click(page.estimate, inputs, [plan], **PRIVATE)
    # Its own pool: a batch holds its slot for the whole run, and must not starve the Studio's single requests
    # (every request still goes through the Studio's shared rate limiter and budget).
    run.click(page.run, inputs, [gallery, progress, summary, archive, plan, state],
              concurrency_limit=concurrency_limit, concurrency_id="batch", **PRIVATE)
    cancel.click(page.cancel, None, [progress], **PRIVATE)
    return tab
