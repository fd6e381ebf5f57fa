"""Refining a result: the conversation path rebuilt from the history, the next request, and the checks before sending.

A refinement sends the whole path from the root: each earlier user turn (its text and input images) and each earlier
model turn exactly as the API returned it. Turns the model did not produce (entries from before conversations were
kept, cache hits whose model turn was not stored, turns made by another model) carry Google's documented bypass
signature instead; a model without signatures (Gemini 2.5 Flash Image) is sent none at all.

A region edit's conversation is about what the model saw: its crop (or extended canvas) and mask, sent again in the
first user turn with the words that framed them. Its refinements carry the same region, so each answer is blended
into the region edit's original with the same mask, crop box and feather (regions.py, region_blend.py).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from PIL import Image

from ..domain.errors import InputError
from ..domain.inputs import InputImage
from ..domain.kits import KitUse
from ..domain.models import ModelSpec, get_model
from ..domain.region import Region, region_words
from ..domain.request import ImageOptions, ImageRequest, Mode
from ..domain.turns import BYPASS_SIGNATURE, Turn, TurnPart, parts_from_json
from ..storage.history import HistoryEntry
from .kits import kit_from_record
from .regions import sendable

__all__ = ["ConversationError", "Refinement", "TurnsDontFitError", "UnknownResultError", "build_refinement",
           "context_tokens", "estimate_turn_tokens", "keeps_signatures", "kit_turn_parts", "path_turns",
           "supports_multi_turn"]

# Input token limits (the models' documented context for image generation); an unknown model gets the smallest.
_CONTEXT_TOKENS = {"gemini-2.5": 32_768, "gemini-3": 65_536}
_TEXT_CHARS_PER_TOKEN = 4  # the usual estimate for English text


class ConversationError(InputError):
    """A refinement that cannot be sent: unknown or foreign id, a failed parent, lost files, an unsuitable model."""


class UnknownResultError(ConversationError):
    """No result with this id in the (visitor's) history."""

    def __init__(self, entry_id: str, message: str) -> None:
        super().__init__(message)
        self.entry_id = entry_id


class TurnsDontFitError(ConversationError):
    """The path is longer than the model's context; the message says how many turns fit."""


def keeps_signatures(spec: ModelSpec) -> bool:
    """True when the model issues thought signatures and wants them back (Gemini 3); 2.5 Flash Image has none."""
    return spec.id.startswith("gemini-3") or any(alias.startswith("gemini-3") for alias in spec.aliases)


def supports_multi_turn(spec: ModelSpec) -> bool:
    """False for models Google says are not made for multi-turn editing (the registry's `multi_turn`: Flash Lite)."""
    return spec.multi_turn


def context_tokens(spec: ModelSpec) -> int:
    """How many input tokens the model reads (the registry's `input_token_limit` when it has one)."""
    limit = getattr(spec, "input_token_limit", None)
    if isinstance(limit, int) and limit > 0:
        return limit
    family = next((size for prefix, size in _CONTEXT_TOKENS.items() if spec.id.startswith(prefix)), None)
    return family or min(_CONTEXT_TOKENS.values())


def _text_tokens(text: str) -> int:
    return len(text) // _TEXT_CHARS_PER_TOKEN + 1


def estimate_turn_tokens(turn: Turn, spec: ModelSpec) -> int:
    """Input tokens one turn adds to every later request: text by length, each image at the registry's rate."""
    return sum(spec.input_image_tokens if part.is_image else _text_tokens(part.text or "") for part in turn.parts)


@dataclass(frozen=True)
class Refinement:
    """A refinement ready to send: the request (whole path included), the parent's id, and the new turn's number."""

    request: ImageRequest
    parent: str
    turn: int
    input_tokens: int  # estimated; grows with every turn of the path
    estimated_cost_usd: float | None  # the path's input tokens plus one output image (None: unknown price)


def _with_signatures(parts: Sequence[TurnPart], *, own: bool) -> tuple[TurnPart, ...]:
    """A model turn ready for a model that checks signatures.

    `own`: the turn came from this model and was kept as returned, so it goes back untouched. Otherwise the
    signatures it has mean nothing to this model: the first part and every answer image carry the bypass value.
    """
    if own:
        return tuple(parts)
    fixed = []
    for index, part in enumerate(parts):
        wants = part.thought_signature is not None or index == 0 or (part.is_image and not part.thought)
        fixed.append(replace(part, thought_signature=BYPASS_SIGNATURE if wants else None))
    return tuple(fixed)


def _lost(entry: HistoryEntry, turn: int) -> ConversationError:
    return ConversationError(
        f"Turn {turn} of this conversation (entry {entry.id}) has lost its stored files, so the path cannot be "
        "sent. Run `history --verify` to list them (`--repair` lets the conversation go on without them). "
        "Nothing was sent.")


def kit_turn_parts(kit: KitUse) -> list[TurnPart]:
    """A kit's parts as a user turn carried them (its text parts and images), to send that turn again."""
    return [TurnPart(text=part) if isinstance(part, str) else TurnPart(data=part.data, mime_type=part.mime_type)
            for part in kit.parts()]


def _sent_text(entry: HistoryEntry) -> str:
    """The text an entry's user turn sent: its prompt, framed as a region edit's was (regions.region_words)."""
    if entry.region is None:
        return entry.prompt
    return region_words(str(entry.region.get("kind")), entry.prompt, follow_up=entry.parent is not None)


def _crop_of(entry: HistoryEntry) -> tuple[int, int, int, int] | None:
    """A masked edit's crop box: its saved output is the original's size, but the model answered the crop."""
    box = (entry.region or {}).get("crop_box") if (entry.region or {}).get("kind") == "mask" else None
    return (int(box[0]), int(box[1]), int(box[2]), int(box[3])) if isinstance(box, list) and len(box) == 4 else None


def _as_answered(entry: HistoryEntry, data: bytes) -> bytes:
    """A saved output as the model's turn had it: a masked edit's crop of it (the conversation is about the crop)."""
    box = _crop_of(entry)
    if box is None:
        return data
    try:
        with Image.open(io.BytesIO(data)) as image:
            crop = sendable(image.crop(box))  # as a model answers: 8-bit (a 16-bit or palette original's mode)
        buffer = io.BytesIO()
        crop.save(buffer, "PNG")
    except (OSError, ValueError) as error:
        raise ValueError(f"unreadable output: {error}") from None
    return buffer.getvalue()


def path_turns(path: Sequence[HistoryEntry], read_file: Callable[[str, str], bytes], *,
               target: ModelSpec) -> tuple[Turn, ...]:
    """The contents for a path of entries (root first): user and model turn for each, ready for `target`.

    `read_file(sha256, mime_type)` returns a stored file's bytes (FileNotFoundError when gone).
    """
    signs = keeps_signatures(target)
    turns: list[Turn] = []
    for number, entry in enumerate(path, start=1):
        try:
            user = [TurnPart(text=_sent_text(entry))]
            user += [TurnPart(data=read_file(f.sha256, f.mime_type), mime_type=f.mime_type) for f in entry.inputs]
            user += kit_turn_parts(kit_from_record(entry.kit, read_file)) if entry.kit else []
            if entry.model_turn is not None:
                model = parts_from_json(entry.model_turn, read_file)
                own = get_model(entry.model).id == target.id
            else:  # not kept (older entry, or a cache hit without it): the words and the images as saved
                model = ((TurnPart(text=entry.text),) if entry.text else ()) + tuple(
                    TurnPart(data=_as_answered(entry, read_file(image.sha256, image.mime_type)),
                             mime_type="image/png" if _crop_of(entry) else image.mime_type)
                    for image in entry.images)
                own = False
        except (FileNotFoundError, KeyError, ValueError):
            raise _lost(entry, number) from None
        if not any(part.is_image and not part.thought for part in model):
            raise _lost(entry, number)
        model = _with_signatures(model, own=own) if signs else tuple(part.without_signature() for part in model)
        turns += [Turn("user", tuple(user)), Turn("model", model)]
    return tuple(turns)


def _inherit(options: ImageOptions | None, parent: HistoryEntry, spec: ModelSpec) -> ImageOptions:
    """The caller's options; an aspect ratio or size left unset follows the parent's (when the model offers it)."""
    options = options or ImageOptions()
    ratio, size = parent.options.get("aspect_ratio"), parent.options.get("size")
    if options.aspect_ratio is None and ratio in spec.aspect_ratios:
        options = replace(options, aspect_ratio=ratio)
    if options.size is None and size in spec.sizes:
        options = replace(options, size=size)
    return options


def _region_options(options: ImageOptions, parent: HistoryEntry, spec: ModelSpec) -> ImageOptions:
    """A region refinement's options: the region edit's aspect ratio (its crop's or canvas's), which must not change."""
    ratio = parent.options.get("aspect_ratio")
    if ratio is None:  # not recorded: the answer is scaled back to the crop whatever its shape
        return options
    if options.aspect_ratio not in (None, ratio):
        raise ConversationError(f"A refinement of a region edit keeps its {ratio} crop, so an aspect ratio does not "
                                "apply: leave it out.")
    if ratio not in spec.aspect_ratios:
        raise ConversationError(f"{spec.label} does not make {ratio} images, which this region edit's crop needs: "
                                f"refine it with {get_model(parent.model).label}.")
    return replace(options, aspect_ratio=ratio)


def build_refinement(path: Sequence[HistoryEntry], read_file: Callable[[str, str], bytes], base: ImageRequest,
                     inputs: tuple[InputImage, ...], *, region: Region | None = None) -> Refinement:
    """The refinement of the path's last entry, from a validated one-shot request (`base`: instruction, model and
    options) and the images added in this turn. Raises ConversationError before anything is sent.

    `region`: the parent is a region edit (masked or extend-to), whose region this is (regions.Region.from_record):
    the request carries it, so the answer is blended into the same original, with the same mask, crop and feather.
    """
    spec = get_model(base.model)
    parent = path[-1]
    if region is not None:
        base = replace(base, options=_region_options(base.options, parent, spec))
    if not supports_multi_turn(spec):
        raise ConversationError(f"{spec.label} is not made for multi-turn editing; refine with another model "
                                "(--model gemini-3.1-flash-image, for example).")
    if len(inputs) > spec.max_input_images:
        raise ConversationError(f"{spec.label} accepts at most {spec.max_input_images} input images; "
                                f"this turn adds {len(inputs)}.")
    history = path_turns(path, read_file, target=spec)
    request = replace(base, mode=Mode.EDIT, images=inputs, history=history,
                      options=_inherit(base.options, parent, spec), region=region)
    new_turn = Turn("user", (TurnPart(text=request.model_prompt()),) + tuple(
        TurnPart(data=image.data, mime_type=image.mime_type) for image in inputs) + tuple(
        kit_turn_parts(request.kit) if request.kit is not None else ()))
    per_pair = [estimate_turn_tokens(history[i], spec) + estimate_turn_tokens(history[i + 1], spec)
                for i in range(0, len(history), 2)]
    needed = sum(per_pair) + estimate_turn_tokens(new_turn, spec)
    limit = context_tokens(spec)
    if needed > limit:
        used, fit = estimate_turn_tokens(new_turn, spec), 0
        for tokens in per_pair:
            if used + tokens > limit:
                break
            used, fit = used + tokens, fit + 1
        advice = (f"Only the first {fit} turn{'s' if fit != 1 else ''} fit: refine turn {fit} or an earlier one "
                  "(history --tree shows them), or start afresh with `edit` on this image." if fit else
                  "Not even the first turn fits with this instruction: shorten it.")
        raise TurnsDontFitError(
            f"This conversation is {len(path)} turns long: with the new instruction that is about {needed:,} input "
            f"tokens, and {spec.label} reads at most {limit:,}. {advice} Nothing was sent.")
    output = spec.image_price(request.options.size)
    cost = None if spec.price is None or output is None else round(needed * spec.price.input / 1e6 + output, 6)
    return Refinement(request=request, parent=parent.id, turn=parent.turn + 1, input_tokens=needed,
                      estimated_cost_usd=cost)
