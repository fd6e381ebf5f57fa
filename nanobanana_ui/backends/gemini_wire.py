"""The Gemini request and reply shapes: an ImageRequest as SDK contents and config, a response as a BackendReply."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..domain.errors import BadResponseError, ImageWithheldError, PromptBlockedError, TextOnlyError
from ..domain.request import ImageRequest, Source, ThoughtImage, Usage
from ..domain.turns import Turn, TurnPart

__all__ = ["CONTINUATION", "BackendReply", "build_config", "build_contents", "enum_name", "parse_response"]

_WITHHELD_HINTS = {
    "IMAGE_SAFETY": "Gemini's safety filter withheld the image",
    "IMAGE_PROHIBITED_CONTENT": "Gemini withheld the image as prohibited content",
    "IMAGE_RECITATION": "Gemini withheld the image because it resembled existing work too closely",
    "SAFETY": "Gemini's safety filter stopped the answer",
    "PROHIBITED_CONTENT": "Gemini stopped the answer as prohibited content",
    "RECITATION": "Gemini stopped the answer because it resembled existing work too closely",
    "NO_IMAGE": "Gemini finished without making an image",
    "MAX_TOKENS": "Gemini ran out of output tokens before making an image",
}
CONTINUATION = "CONTINUATION"  # the answer hit the per-request limit; the SDK would re-send (and bill) to go on
_CONTINUATION_MESSAGE = ("Gemini stopped before it finished (CONTINUATION: it reached the per-request limit) and made "
                         "no image. Trying again costs another call.")


@dataclass(frozen=True)
class BackendReply:
    """What the API returned for a request that produced at least one image."""

    images: tuple[tuple[bytes, str], ...]  # (exact bytes, mime type), thought images excluded
    text: str
    finish_reason: str | None
    usage: Usage
    thought_images: tuple[ThoughtImage, ...] = ()  # interim images (part.thought), in order: never the answer
    sources: tuple[Source, ...] = ()  # Google Search grounding chunks: web pages, and images with image search
    search_entry_point: str | None = None  # Google's search-suggestions HTML, to be shown as given
    search_queries: int = 0  # searches the answer reports having run (what Google charges for)
    model_parts: tuple[TurnPart, ...] = ()  # the candidate's content as returned: every part, thoughts, signatures
    model_version: str | None = None  # the response's modelVersion: which model answered (Google reroutes some ids)


def _sdk_part(part: TurnPart) -> Any:
    from google.genai import types

    if part.data is not None:
        blob = types.Blob(data=part.data, mime_type=part.mime_type)
        return types.Part(inline_data=blob, thought=part.thought or None, thought_signature=part.thought_signature)
    return types.Part(text=part.text or "", thought=part.thought or None, thought_signature=part.thought_signature)


def _sdk_content(turn: Turn) -> Any:
    from google.genai import types

    return types.Content(role=turn.role, parts=[_sdk_part(part) for part in turn.parts])


def build_contents(request: ImageRequest, files: Mapping[str, str] | None = None) -> list[Any]:
    """The earlier turns of a refinement (as stored), then the user turn: the prompt verbatim (a region edit's with
    its framing), then each image, then a kit's references (each after the text part that names it).

    `files` maps an image's sha256 to its Files API uri: such a kit image is sent as `fileData`, not inline.
    """
    from google.genai import types

    parts = [types.Part.from_text(text=request.model_prompt())]
    parts += [types.Part.from_bytes(data=image.data, mime_type=image.mime_type) for image in request.images]
    for added in request.kit.parts() if request.kit is not None else ():  # after the user's own inputs
        if isinstance(added, str):
            parts.append(types.Part.from_text(text=added))
        elif added.sha256 in (files or {}):
            parts.append(types.Part.from_uri(file_uri=(files or {})[added.sha256], mime_type=added.mime_type))
        else:
            parts.append(types.Part.from_bytes(data=added.data, mime_type=added.mime_type))
    return [*(_sdk_content(turn) for turn in request.history), types.Content(role="user", parts=parts)]


def _turn_part(part: Any) -> TurnPart:
    """One SDK part as plain data, nothing dropped: the next turn must send it back exactly."""
    blob = part.inline_data
    if blob is not None and blob.data is not None:
        return TurnPart(data=bytes(blob.data), mime_type=blob.mime_type or "application/octet-stream",
                        thought=bool(part.thought), thought_signature=part.thought_signature)
    return TurnPart(text=part.text or "", thought=bool(part.thought), thought_signature=part.thought_signature)


def build_config(request: ImageRequest) -> Any:
    """The GenerateContentConfig for a request; options left as None are not sent."""
    from google.genai import types

    opts = request.options
    image_config = None
    vertex_only = opts.output_mime_type or opts.output_quality is not None or opts.person_generation
    if opts.aspect_ratio or opts.size or vertex_only:
        image_config = types.ImageConfig(  # the SDK itself refuses the Vertex-only fields on the Gemini API
            aspect_ratio=opts.aspect_ratio, image_size=opts.size, output_mime_type=opts.output_mime_type,
            output_compression_quality=opts.output_quality, person_generation=opts.person_generation)
    thinking_config = None
    if opts.thinking is not None or opts.show_thoughts:
        level = types.ThinkingLevel(opts.thinking.upper()) if opts.thinking else None
        thinking_config = types.ThinkingConfig(thinking_level=level,
                                               include_thoughts=True if opts.show_thoughts else None)
    tools: types.ToolListUnion | None = None
    if opts.search:
        # search_types unset means web search; image search must name both kinds (google-genai >= 3.x SearchTypes).
        search_types = (types.SearchTypes(web_search=types.WebSearch(), image_search=types.ImageSearch())
                        if opts.image_search else None)
        tools = [types.Tool(google_search=types.GoogleSearch(search_types=search_types))]
    return types.GenerateContentConfig(
        store=request.store,  # None (Vertex, or not decided here) is not sent
        response_modalities=["TEXT", "IMAGE"] if opts.with_text else ["IMAGE"],
        temperature=opts.temperature,
        top_p=opts.top_p,
        top_k=opts.top_k,
        seed=opts.seed,
        image_config=image_config,
        thinking_config=thinking_config,
        tools=tools,
    )


def enum_name(value: Any) -> str | None:
    """An SDK enum (or plain string) as its name: "STOP", "IMAGE_SAFETY", "IMAGE"; None stays None."""
    if value is None:
        return None
    return str(getattr(value, "value", None) or getattr(value, "name", None) or value)


def _usage(meta: Any) -> Usage:
    if meta is None:
        return Usage()
    by_modality = {"IMAGE": 0, "TEXT": 0}
    for detail in meta.candidates_tokens_details or ():
        name = enum_name(detail.modality)
        if name in by_modality:
            by_modality[name] += detail.token_count or 0
    return Usage(
        prompt_tokens=meta.prompt_token_count or 0,
        output_tokens=meta.candidates_token_count or 0,
        image_tokens=by_modality["IMAGE"],
        text_tokens=by_modality["TEXT"],
        total_tokens=meta.total_token_count or 0,
        thought_tokens=meta.thoughts_token_count or 0,
    )


def _grounding(candidate: Any) -> tuple[tuple[Source, ...], str | None, int]:
    """Sources, the search entry point's HTML and the number of searches from a candidate's grounding metadata."""
    meta = candidate.grounding_metadata
    if meta is None:
        return (), None, 0
    sources: list[Source] = []
    for chunk in meta.grounding_chunks or ():
        if chunk.web is not None and chunk.web.uri:
            sources.append(Source(title=chunk.web.title or chunk.web.domain or chunk.web.uri, uri=chunk.web.uri))
        elif chunk.image is not None and (chunk.image.source_uri or chunk.image.image_uri):
            page = chunk.image.source_uri or chunk.image.image_uri or ""
            sources.append(Source(title=chunk.image.title or chunk.image.domain or page, uri=page,
                                  image_uri=chunk.image.image_uri))
    entry = meta.search_entry_point.rendered_content if meta.search_entry_point is not None else None
    # Google charges per search query; an answer grounded without listing its queries ran at least one.
    queries = len(meta.web_search_queries or ()) + len(meta.image_search_queries or ())
    return tuple(dict.fromkeys(sources)), entry or None, queries or (1 if sources or entry else 0)


def parse_response(response: Any) -> BackendReply:
    """Read a GenerateContentResponse; every no-image outcome raises its own NoImageError subclass."""
    feedback = response.prompt_feedback
    if not response.candidates:
        reason = enum_name(feedback.block_reason) if feedback is not None else None
        if reason:
            raise PromptBlockedError(
                f"Gemini blocked the prompt ({reason}). Rephrase it, or change the input images.", reason=reason)
        raise BadResponseError("Gemini answered with no candidates and no reason. Try again.")
    candidate = response.candidates[0]
    finish = enum_name(candidate.finish_reason)
    parts = (candidate.content.parts if candidate.content is not None else None) or ()
    images: list[tuple[bytes, str]] = []
    thoughts: list[ThoughtImage] = []
    texts: list[str] = []
    for part in parts:
        blob = part.inline_data
        if part.thought:  # Gemini 3 sends interim "thinking" images and notes: not the answer
            if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
                thoughts.append(ThoughtImage(data=blob.data, mime_type=blob.mime_type or "image/png"))
            continue
        if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
            images.append((blob.data, blob.mime_type))
        elif part.text:
            texts.append(part.text)
    text = "\n".join(texts).strip()
    if images:
        model_parts = tuple(_turn_part(part) for part in parts)
        sources, entry, queries = _grounding(candidate)
        return BackendReply(tuple(images), text, finish, _usage(response.usage_metadata),
                            thought_images=tuple(thoughts), sources=sources, search_entry_point=entry,
                            search_queries=queries, model_parts=model_parts,
                            model_version=getattr(response, "model_version", None) or None)
    if finish == CONTINUATION:
        raise ImageWithheldError(_CONTINUATION_MESSAGE + (f" It said: {text}" if text else ""), reason=finish,
                                 text=text)
    if finish and finish not in ("STOP", "FINISH_REASON_UNSPECIFIED"):
        hint = _WITHHELD_HINTS.get(finish, "Gemini finished without an image")
        said = f" It said: {text}" if text else ""
        raise ImageWithheldError(f"{hint} ({finish}). Change the prompt or the input image and try again.{said}",
                                 reason=finish, text=text)
    if text:
        raise TextOnlyError(f"Gemini replied with text instead of an image: {text}", reason=finish, text=text)
    raise ImageWithheldError("Gemini returned neither an image nor text. Try again.", reason=finish)
