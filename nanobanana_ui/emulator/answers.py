"""Emulator answers: the JSON bodies of generateContent, countTokens and models replies, checked like the real API."""

from __future__ import annotations

import base64
import re
import secrets

from PIL import Image

from ..domain.models import ModelSpec, get_model, pixel_size
from .cutout import Cutouts, asked_background, cutout_picture
from .faults import Fault
from .gemini3 import grounding_metadata, refusal, thought_parts, thought_tokens
from .pictures import history_image, nearest_ratio, open_image, png_base64, refined, render
from .signatures import check_signatures, sign, signs
from .types import HELP, JsonObject, RecordedRequest, Reply, error_reply, inline_data

_IMAGE_MIME = ("image/png", "image/jpeg", "image/webp", "image/heic", "image/heif")


def _text_tokens(text: str) -> int:
    return len(text) // 4 + 1


def _candidate(parts: list[JsonObject]) -> JsonObject:
    return {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}


def input_token_limit(name: str) -> int:
    """The model's input token limit, as the API lists it (inputTokenLimit)."""
    return 32768 if name.startswith("gemini-2") else 65536


def model_entry(name: str, display_name: str | None = None, description: str | None = None) -> JsonObject:
    """The models.get / models.list entry for a model id (a test may give its display name and description)."""
    spec = get_model(name)
    label = spec.label if display_name is None else display_name
    return {"name": f"models/{name}", "version": "emulator", "displayName": label,
            "description": f"Offline emulator stand-in for {label}." if description is None else description,
            "inputTokenLimit": input_token_limit(name), "outputTokenLimit": 32768,
            "supportedGenerationMethods": ["generateContent", "countTokens"], "temperature": 1.0,
            "topP": 0.95, "topK": 64, "maxTemperature": 2.0}


def usage_metadata(rec: RecordedRequest, spec: ModelSpec, out: dict[str, int] | None = None) -> JsonObject:
    """The usageMetadata of a reply: prompt tokens by modality, and `out` (output tokens by modality)."""
    contents = (rec.body or {}).get("contents") or []
    parts = [p for c in contents if isinstance(c, dict) for p in c.get("parts") or [] if isinstance(p, dict)]
    text = sum(_text_tokens(str(p["text"])) for p in parts if "text" in p)
    images = spec.input_image_tokens * sum(1 for p in parts if inline_data(p))
    usage: JsonObject = {"promptTokenCount": text + images, "totalTokenCount": text + images,
                   "promptTokensDetails": [{"modality": "TEXT", "tokenCount": text}]}
    if images:
        usage["promptTokensDetails"].append({"modality": "IMAGE", "tokenCount": images})
    if out:
        usage["candidatesTokenCount"] = sum(out.values())
        usage["candidatesTokensDetails"] = [{"modality": k, "tokenCount": v} for k, v in out.items()]
        usage["totalTokenCount"] += sum(out.values())
    return usage


def _envelope(rec: RecordedRequest, spec: ModelSpec, out: dict[str, int] | None, **fields: object) -> Reply:
    body = {**fields, "usageMetadata": usage_metadata(rec, spec, out), "modelVersion": rec.model,
            "responseId": secrets.token_urlsafe(16)}
    return 200, {}, body


def fault_content(rec: RecordedRequest, spec: ModelSpec, fault: Fault) -> Reply:
    """The 200 answer a blocked, no_image or text_only Fault asks for."""
    if fault.kind == "blocked":
        return _envelope(rec, spec, None, promptFeedback={"blockReason": fault.reason})
    if fault.kind == "no_image":
        return _envelope(rec, spec, None, candidates=[{"finishReason": fault.reason, "index": 0}])
    if fault.kind == "continuation":  # the answer stopped at the per-request limit; the token would resume it
        token = base64.b64encode(b"emulator-continuation").decode()
        candidate = {**_candidate([{"text": fault.message}]), "finishReason": "CONTINUATION",
                     "continuationToken": token}
        return _envelope(rec, spec, {"TEXT": _text_tokens(fault.message)}, candidates=[candidate])
    candidate = _candidate([{"text": fault.message}])
    return _envelope(rec, spec, {"TEXT": _text_tokens(fault.message)}, candidates=[candidate])


def _invalid(rec: RecordedRequest, spec: ModelSpec, inputs: list[Image.Image]) -> Reply | None:
    """Validate the request like the real API; on success fill `inputs` with the decoded images."""
    config, model = rec.generation_config, rec.model
    lacking = refusal(rec.controls, spec, model)  # a thinking level, search or image search this model lacks
    image_config = config.get("imageConfig") or {}
    size, ratio = image_config.get("imageSize"), image_config.get("aspectRatio")
    checks = [
        (rec.body is None, "Invalid JSON payload received."),
        (int(config.get("candidateCount") or 1) > 1, f"Multiple candidates is not enabled for models/{model}"),
        (size not in (None, *spec.sizes),
         f"Image size {size!r} is not supported by models/{model}. Supported sizes: {', '.join(spec.sizes)}."),
        (ratio not in (None, *spec.aspect_ratios), f"Aspect ratio {ratio!r} is not supported by models/{model}. "
         f"Supported aspect ratios: {', '.join(spec.aspect_ratios)}."),
        (not rec.prompt.strip() and not rec.images,
         "* GenerateContentRequest.contents: contents must contain text or an image."),
        *((mime not in _IMAGE_MIME, f"Unsupported MIME type: {mime}") for mime in rec.image_mime_types),
        (lacking is not None, lacking or ""),
    ]
    for failed, message in checks:
        if failed:
            return error_reply(400, "INVALID_ARGUMENT", message)
    contents = (rec.body or {}).get("contents") or []
    unsigned = check_signatures(contents) if signs(spec) and isinstance(contents, list) else None
    if unsigned is not None:  # like the Gemini API: a model turn must come back with the signatures it was given
        return error_reply(400, "INVALID_ARGUMENT", unsigned)
    tokens, limit = usage_metadata(rec, spec)["promptTokenCount"], input_token_limit(model or "")
    if tokens > limit:
        return error_reply(400, "INVALID_ARGUMENT",
                           f"The input token count ({tokens}) exceeds the maximum number of tokens allowed ({limit}).")
    for data in rec.images:
        img = open_image(data)
        if img is None:
            return error_reply(400, "INVALID_ARGUMENT", f"Unable to process input image. {HELP}")
        inputs.append(img)
    return None


_REFERENCE = re.compile(r'Reference image "([^"]+)" \((character|object|style)\)')


def _first_text(contents: list[JsonObject]) -> str:
    """The text of a conversation's first user turn (what a cut-out's subject follows on every turn)."""
    parts = contents[0].get("parts") or [] if contents else []
    return " ".join(str(p["text"]) for p in parts if isinstance(p, dict) and "text" in p)


def answer(rec: RecordedRequest, spec: ModelSpec, include_thoughts: bool, cutouts: Cutouts | None = None) -> Reply:
    """The normal answer: a text part and a placeholder image, as the request's modalities ask; or a 400.

    A prompt asking for a flat white, black or key-colour background is answered with the known cut-out subject over
    it (cutout.py), the same subject on every turn of the conversation; `cutouts` holds the tests' knobs.

    Thought parts come first when the request asks for them (thinkingConfig.includeThoughts, on a model that
    thinks) or the emulator was made with include_thoughts; groundingMetadata comes with googleSearch.
    """
    inputs: list[Image.Image] = []
    invalid = _invalid(rec, spec, inputs)
    if invalid is not None:
        return invalid
    controls = rec.controls
    show_thoughts = include_thoughts or (controls.include_thoughts and spec.thoughts)
    contents = [c for c in (rec.body or {}).get("contents") or [] if isinstance(c, dict)]
    turn = sum(1 for c in contents if c.get("role", "user") == "user")
    # Multi-turn: "now make it blue" edits the last image of the earlier turns.
    earlier = history_image({"contents": contents[:-1]}) if turn > 1 else []
    image_config = rec.generation_config.get("imageConfig") or {}
    size = image_config.get("imageSize") or spec.default_size
    shape = earlier or inputs
    ratio = image_config.get("aspectRatio") or (nearest_ratio(shape[0], spec) if shape else "1:1")
    modalities = [str(m).upper() for m in rec.generation_config.get("responseModalities") or ["TEXT", "IMAGE"]]
    parts: list[JsonObject] = []
    out: dict[str, int] = {}
    if "TEXT" in modalities:
        named = _REFERENCE.findall(rec.prompt)  # a kit's references, as the text parts before them name them
        heard = f"\nReferences received: {', '.join(f'{n} ({r})' for n, r in named)}." if named else ""
        parts.append({"text": f"Here is an offline placeholder image for: {rec.prompt[:200]}{heard}"})
        out["TEXT"] = _text_tokens(parts[0]["text"])
    if "IMAGE" in modalities:
        # Like the real model: the same seed draws the same picture; without one, every answer differs.
        seed = rec.generation_config.get("seed")
        variety = f"seed {seed}" if seed is not None else secrets.token_hex(8)
        background = None if cutouts is None else asked_background(rec.prompt)
        ignore, shift = cutouts.take(turn) if cutouts is not None and background is not None else (False, (0, 0))
        if background is not None and not ignore:
            img = cutout_picture(pixel_size(spec, ratio, size), background, _first_text(contents), shift)
        elif earlier and turn > 1:
            img = refined(rec.model or "", rec.prompt, earlier[0], inputs, pixel_size(spec, ratio, size), turn)
        else:
            img = render(rec.model or "", rec.prompt, inputs, pixel_size(spec, ratio, size), variety)  # its table
        parts.append({"inlineData": {"mimeType": "image/png", "data": png_base64(img)}})
        out["IMAGE"] = spec.output_image_tokens.get(size, 1290)
        if show_thoughts:
            parts[:0] = thought_parts(img, controls)
    if signs(spec):  # Gemini 3: every answer image, and the first text part when it comes before any image
        answer_parts = [p for p in parts if not p.get("thought")]
        for index, part in enumerate(answer_parts):
            if "inlineData" in part or (index == 0 and "text" in part and len(answer_parts) > 1):
                part["thoughtSignature"] = sign(part)
    rec.reply_images = [base64.b64decode(p["inlineData"]["data"]) for p in parts if "inlineData" in p]
    candidate = _candidate(parts)
    if controls.search:  # the supports point into the answer's words (not a thought summary)
        words = next((str(p["text"]) for p in parts if "text" in p and not p.get("thought")), "")
        candidate["groundingMetadata"] = grounding_metadata(rec.prompt, controls, words)
    reply = _envelope(rec, spec, out, candidates=[candidate])
    body = reply[2]
    thinking = thought_tokens(controls, spec, show_thoughts) if "IMAGE" in modalities else 0
    if thinking and isinstance(body, dict):
        usage = body["usageMetadata"]
        usage["thoughtsTokenCount"] = thinking
        usage["totalTokenCount"] += thinking
    return reply
