"""Text-model calls over google-genai: the contents and config of a TextRequest, and reading the words back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..domain.errors import NoImageError, PromptBlockedError
from ..domain.request import Usage
from ..domain.text_request import TextRequest
from .gemini_wire import enum_name

__all__ = ["EmptyAnswerError", "TextReply", "build_text_config", "build_text_contents", "parse_text_response"]


class EmptyAnswerError(NoImageError):
    """A text model answered with no words (or was stopped): the original prompt is kept."""


@dataclass(frozen=True)
class TextReply:
    """What a text model returned: its words, finish reason and token counts."""

    text: str
    finish_reason: str | None
    usage: Usage


def build_text_contents(request: TextRequest) -> list[Any]:
    """One user turn: the user's text, then each image (as sent, metadata already stripped)."""
    from google.genai import types

    parts = [types.Part.from_text(text=request.text)]
    parts += [types.Part.from_bytes(data=image.data, mime_type=image.mime_type) for image in request.images]
    return [types.Content(role="user", parts=parts)]


def build_text_config(request: TextRequest) -> Any:
    """The GenerateContentConfig: the system instruction, text out, the temperature when set."""
    from google.genai import types

    return types.GenerateContentConfig(system_instruction=request.instruction, response_modalities=["TEXT"],
                                       temperature=request.temperature)


def _usage(meta: Any) -> Usage:
    if meta is None:
        return Usage()
    output = meta.candidates_token_count or 0
    return Usage(prompt_tokens=meta.prompt_token_count or 0, output_tokens=output, text_tokens=output,
                 total_tokens=meta.total_token_count or 0, thought_tokens=meta.thoughts_token_count or 0)


def parse_text_response(response: Any, what: str = "The text model") -> TextReply:
    """The answer's words (thought parts skipped); a blocked or empty answer raises, saying which."""
    feedback = response.prompt_feedback
    if not response.candidates:
        reason = enum_name(feedback.block_reason) if feedback is not None else None
        raise PromptBlockedError(f"{what} blocked the request ({reason or 'no reason given'}); the original prompt "
                                 "is kept.", reason=reason)
    candidate = response.candidates[0]
    finish = enum_name(candidate.finish_reason)
    parts = (candidate.content.parts if candidate.content is not None else None) or ()
    text = "\n".join(part.text for part in parts if part.text and not part.thought).strip()
    if finish in ("SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST", "RECITATION", "SPII"):
        raise PromptBlockedError(f"{what}'s answer was blocked ({finish}); the original prompt is kept.",
                                 reason=finish, text=text)
    if not text:
        raise EmptyAnswerError(f"{what} answered with no words (finish reason {finish or 'none'}); the original "
                               "prompt is kept.", reason=finish)
    return TextReply(text, finish, _usage(response.usage_metadata))
