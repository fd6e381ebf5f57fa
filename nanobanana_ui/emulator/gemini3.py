"""Emulator: answering the Gemini 3 controls — thought images and tokens, refusals, Google Search grounding."""

from __future__ import annotations

import base64
import hashlib
from typing import Any
from urllib.parse import quote

from PIL import Image, ImageFilter

from ..domain.models import ModelSpec
from .pictures import png_base64
from .types import Controls

__all__ = ["grounding_metadata", "refusal", "thought_parts", "thought_tokens"]

# Thinking tokens a Gemini 3 image model reports (usageMetadata.thoughtsTokenCount), by thinking level.
_THOUGHT_TOKENS = {"MINIMAL": 64, "HIGH": 512}


def refusal(controls: Controls, spec: ModelSpec, model: str | None) -> str | None:
    """The 400 INVALID_ARGUMENT message the API gives for a control this model lacks, or None."""
    levels = tuple(level.upper() for level in spec.thinking_levels)
    if controls.thinking_level is not None and controls.thinking_level not in levels:
        if not levels:
            return f"Thinking level is not supported for models/{model}."
        return f"Thinking level {controls.thinking_level} is not supported for models/{model}. " \
               f"Supported levels: {', '.join(levels)}."
    if controls.search and not spec.search:
        return f"Search Grounding is not supported for models/{model}."
    if controls.image_search and not spec.image_search:
        return f"Image search is not supported for models/{model}."
    return None


def thought_parts(final: Image.Image, controls: Controls) -> list[dict[str, Any]]:
    """What Gemini 3 sends before the answer: a thought summary, then 1 (minimal) or 2 (high) interim images."""
    drafts = [final.convert("L")]
    if controls.thinking_level == "HIGH":  # more thinking, one more draft: a blurrier first sketch
        drafts.insert(0, final.convert("L").filter(ImageFilter.GaussianBlur(6)))
    parts: list[dict[str, Any]] = [
        {"text": "**Sketching the placeholder**\nLaying out the label and the prompt.", "thought": True}]
    for draft in drafts:
        draft.thumbnail((256, 256))
        parts.append({"inlineData": {"mimeType": "image/png", "data": png_base64(draft)}, "thought": True})
    return parts


def thought_tokens(controls: Controls, spec: ModelSpec, thoughts_shown: bool) -> int:
    """usageMetadata.thoughtsTokenCount: Gemini 3 models always think.

    A model with levels thinks at the level asked for (minimal by default); one without (Pro) at its own, high.
    """
    if not (spec.thoughts or thoughts_shown):
        return 0
    default = "MINIMAL" if spec.thinking_levels else "HIGH"
    return _THOUGHT_TOKENS.get(controls.thinking_level or default, _THOUGHT_TOKENS[default])


def _slug(prompt: str) -> str:
    words = "".join(c if c.isalnum() else " " for c in prompt.lower()).split()
    return "-".join(words[:6]) or "query"


def grounding_metadata(prompt: str, controls: Controls, answer_text: str) -> dict[str, Any]:
    """groundingMetadata for a searched answer: the query, web (and image) chunks, supports and the entry point."""
    query = " ".join(prompt.split())[:120] or "image"
    tag = hashlib.sha256(query.encode()).hexdigest()[:8]
    slug = _slug(query)
    chunks: list[dict[str, Any]] = [
        {"web": {"uri": f"https://vertexaisearch.cloud.google.com/grounding-api-redirect/{tag}-1",
                 "title": f"{slug}.example.org"}},
        {"web": {"uri": f"https://vertexaisearch.cloud.google.com/grounding-api-redirect/{tag}-2",
                 "title": "emulator.example.com"}},
    ]
    meta: dict[str, Any] = {"webSearchQueries": [query]}
    if controls.image_search:
        chunks.append({"image": {"sourceUri": f"https://images.example.org/{slug}",
                                 "imageUri": f"https://images.example.org/{slug}/{tag}.jpg",
                                 "title": f"Image of {query[:60]}", "domain": "images.example.org"}})
        meta["imageSearchQueries"] = [query]
    end = len(answer_text.encode("utf-8"))
    chunk_numbers = list(range(len(chunks)))
    meta.update(
        groundingChunks=chunks,
        groundingSupports=[{"segment": {"startIndex": 0, "endIndex": end, "text": answer_text},
                            "groundingChunkIndices": chunk_numbers,
                            "confidenceScores": [0.9] * len(chunk_numbers)}] if answer_text else [],
        searchEntryPoint={
            "renderedContent": (
                '<style>.container{font-family:Roboto,Arial,sans-serif}.chip{display:inline-block;'
                'border:1px solid #d2d2d2;border-radius:16px;padding:5px 16px;margin:4px}</style>'
                f'<div class="container"><a class="chip" href="https://www.google.com/search?q={quote(query)}">'
                f'{_escape(query)}</a></div>'),
            "sdkBlob": base64.b64encode(f'[["{_escape(query)}","https://www.google.com/search?q={quote(query)}"]]'
                                        .encode()).decode("ascii")},
    )
    return meta


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
