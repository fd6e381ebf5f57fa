"""Transparent PNGs: difference matting over two calls of one conversation, or one call on a chroma key.

Image models cannot output alpha. Difference matting (the default) asks for the subject on pure white (call 1), then,
as the next turn of the same conversation (thought signatures included, so the model keeps the subject), for the same
picture with only the background changed to pure black (call 2); imaging.matting solves alpha and colour per pixel.
Both calls are ordinary requests: each is cached, metered and in the history, call 2 as a refinement of call 1 whose
entry holds the transparent PNG (and the black picture). If the model moved the subject between the calls, the user's
`fallback` decides: "key" (default) keys the white out of call 1, "retry" sends call 2 once more (then keys).

The key method is one call on a flat key colour picked far from the prompt's colours (green, or magenta when the
prompt is green), keyed out with soft edges and spill suppression: cheaper, worse at glass and hair, and it works on
models not made for multi-turn editing (Flash Lite).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from PIL import Image

from ..domain.config import Settings
from ..domain.errors import InputError, NoImageError, StudioError, UnsupportedOptionError
from ..domain.models import get_model
from ..domain.request import GeneratedImage, ImageRequest, ImageResult
from ..imaging.matting import BLACK, WHITE, Matte, background_share, chroma_key, difference_matte, encode_rgba
from ..imaging.outputs import output_name, save_output
from ..imaging.pngmeta import PARAMETERS_KEY, REQUEST_KEY, embed_png_text, provenance_chunks
from .conversation import Refinement, supports_multi_turn
from .sending import EventSink
from .variations import gather_variations

__all__ = ["BLACK_WORDS", "FALLBACKS", "METHODS", "WHITE_WORDS", "Fallback", "Method", "Transparency",
           "TransparencyError", "check_transparency", "describe_transparent", "estimate_calls", "key_words",
           "make_transparent", "parse_transparent", "pick_key", "transparent_variations", "with_alpha_note"]

Method = Literal["difference", "key"]
Fallback = Literal["key", "retry"]
METHODS: tuple[Method, ...] = ("difference", "key")
FALLBACKS: tuple[Fallback, ...] = ("key", "retry")
WHITE_WORDS = ("Background: pure white (#FFFFFF), perfectly flat and even, with no shadow, floor, reflection, "
               "gradient, vignette or texture. Show the whole subject, not cut off by the frame.")
BLACK_WORDS = ("Change only the background to pure black (#000000), perfectly flat and even. Keep the subject exactly "
               "as it is, pixel for pixel: the same position, size, pose, colours, edges, see-through parts and "
               "lighting. Add nothing and remove nothing.")
_KEYS = {"green": (0, 255, 0), "magenta": (255, 0, 255)}
_GREENISH = re.compile(r"\b(green\w*|lime|leaf|leaves|grass\w*|frog\w*|emerald|olive|mint|jade|forest|fern\w*|"
                       r"moss\w*|cactus|plant\w*|tree\w*|avocado|broccoli|pea|peas|cucumber|lettuce|salad|"
                       r"spinach|kiwi|turtle|lizard|dinosaur|shrek|hulk|chroma)\b", re.IGNORECASE)
_ON_BACKGROUND = 0.6  # at least this share of the border must be the asked-for colour
_TRUE = ("1", "true", "yes", "on", "difference")


class TransparencyError(NoImageError):
    """No transparent image could be made from what the model answered (its pictures are kept; the message says)."""


@dataclass(frozen=True)
class Transparency:
    """What the user asked for: the method, and what to do when the subject moves between the two calls."""

    method: Method = "difference"
    fallback: Fallback = "key"

    @property
    def calls(self) -> int:
        """Calls one transparent image takes (a retry, when needed, adds one)."""
        return 2 if self.method == "difference" else 1


def parse_transparent(value: object, *, fallback: object = None) -> Transparency | None:
    """A flag, checkbox, batch cell or API value as a Transparency: off (None, "", false), on, "difference", "key"."""
    if value is None or value is False:
        return None
    text = "true" if value is True else str(value).strip().lower()
    if text in ("", "0", "false", "no", "off", "none"):
        return None
    if text not in (*_TRUE, "key"):
        raise InputError(f"transparent must be empty, \"difference\" or \"key\" (got {value!r}).")
    chosen = str(fallback or "key").strip().lower()
    if chosen not in FALLBACKS:
        raise InputError(f"The fallback for a moved subject must be \"key\" or \"retry\" (got {fallback!r}).")
    return Transparency("key" if text == "key" else "difference", "retry" if chosen == "retry" else "key")


def pick_key(prompt: str) -> tuple[str, tuple[int, int, int]]:
    """The key colour farthest from the prompt's colours: green, or magenta when the prompt is green."""
    name = "magenta" if _GREENISH.search(prompt) else "green"
    return name, _KEYS[name]


def key_words(name: str, colour: tuple[int, int, int]) -> str:
    """The background instruction for a chroma key colour."""
    hex_colour = "#{:02X}{:02X}{:02X}".format(*colour)
    return (f"Background: flat pure chroma-key {name} ({hex_colour}), perfectly even, with no shadow, floor, "
            f"reflection, gradient or texture, and no {name} on the subject itself. Show the whole subject, not cut "
            "off by the frame.")


def describe_transparent(info: dict[str, Any]) -> str:
    """One line on how a transparent result was made: method, calls, and any fallback."""
    if info.get("method") == "key":
        return f"transparent: chroma key {info.get('key_colour')}, 1 call"
    line = f"transparent: difference matting, {info.get('calls')} calls (ids {' '.join(info.get('ids') or [])})"
    return f"{line}; {info['note']}" if info.get("note") else line


def with_alpha_note(request: ImageRequest) -> ImageRequest:
    """The request with a note when an input image has see-through parts: the model answers opaque pictures."""
    import io

    seen = []
    for number, image in enumerate(request.images, start=1):
        if image.mime_type not in ("image/png", "image/webp"):
            continue
        try:
            with Image.open(io.BytesIO(image.data)) as opened:
                extrema = opened.getchannel("A").getextrema() if opened.mode in ("RGBA", "LA") else (255, 255)
                lowest = extrema[0] if isinstance(extrema, tuple) else 255
                if isinstance(lowest, (int, float)) and lowest < 255:
                    seen.append(str(number))
        except (OSError, ValueError):
            continue
    if not seen:
        return request
    note = (f"input image {', '.join(seen)} has see-through parts: the model cannot keep an alpha channel, so its "
            "answer is opaque (turn on Transparent background, --transparent, to cut the result out again)")
    return replace(request, note="; ".join(filter(None, [request.note, note])))


def check_transparency(request: ImageRequest, transparency: Transparency) -> None:
    """Refuse, before any call, what cannot be made transparent (a region edit, JPEG output, Lite with difference)."""
    if request.region is not None:
        raise InputError("A transparent result cannot be a region edit: --transparent does not go with --mask or "
                         "--extend-to (the whole picture is remade on a flat background). Nothing was sent.")
    if request.options.output_mime_type not in (None, "image/png"):
        raise UnsupportedOptionError("A transparent result is a PNG with alpha, which a JPEG cannot hold: leave out "
                                     "--output-format jpeg (and --jpeg-quality). Nothing was sent.")
    spec = get_model(request.model)
    if transparency.method == "difference" and not supports_multi_turn(spec):
        raise UnsupportedOptionError(f"{spec.label} is not made for multi-turn editing, which difference matting "
                                     "needs (its second call edits the first): use --transparent key on this model, "
                                     "or another model. Nothing was sent.")


def with_background(request: ImageRequest, words: str) -> ImageRequest:
    """The request with the background instruction added after the prompt (the app's words, not the user's)."""
    return replace(request, prompt=f"{request.prompt.rstrip()}\n\n{words}")


def estimate_calls(request: ImageRequest, transparency: Transparency) -> tuple[int, float | None]:
    """(calls, estimated USD) of one transparent image: call 1 as sent, plus call 2 reading call 1's whole turn."""
    spec = get_model(request.model)
    output = spec.image_price(request.options.size)
    if output is None or spec.price is None:
        return transparency.calls, None
    words = WHITE_WORDS if transparency.method == "difference" else key_words(*pick_key(request.prompt))
    first = with_background(request, words)
    tokens = len(first.prompt) // 4 + 1 + spec.input_image_tokens * len(request.images)
    cost = output + tokens * spec.price.input / 1e6
    if transparency.method == "difference":  # call 2 sends call 1 (words, inputs, its image) and the new words
        tokens += spec.input_image_tokens + len(BLACK_WORDS) // 4 + 1
        cost += output + tokens * spec.price.input / 1e6
    return transparency.calls, round(cost, 6)


class StudioLike(Protocol):
    """What this module needs from the Studio (service.studio.Studio), without importing it."""

    settings: Settings

    async def run(self, request: ImageRequest, *, use_cache: bool = True, out_dir: Path | None = None,
                  on_event: EventSink | None = None, owner: str | None = None,
                  finish: Callable[[ImageResult], ImageResult] | None = None) -> ImageResult: ...  # noqa: D102

    async def prepare_refine(self, *, parent_id: str, instruction: str, images: Sequence[Any] = (),  # noqa: D102
                             model: str | None = None, options: Any = None,
                             owner: str | None = None) -> Refinement: ...

    async def run_refinement(self, plan: Refinement, *, use_cache: bool = True,  # noqa: D102
                             out_dir: Path | None = None, on_event: EventSink | None = None,
                             owner: str | None = None,
                             finish: Callable[[ImageResult], ImageResult] | None = None) -> ImageResult: ...


@dataclass
class _Solve:
    """What the call-2 hook found (it runs in a worker thread, inside the Studio's run)."""

    white: ImageResult
    user: ImageRequest
    out_dir: Path
    last: bool = False
    matte: Matte | None = None
    on_black: float = 1.0
    note: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    calls: list[ImageResult] = field(default_factory=list)


def _pixels(image: GeneratedImage) -> Any:
    import numpy as np

    if image.path is None:
        raise TransparencyError("The picture to make transparent was not saved, so it cannot be read.")
    with Image.open(image.path) as opened:
        return np.asarray(opened.convert("RGB"), dtype=np.uint8)


def _save_rgba(rgba: Any, user: ImageRequest, out_dir: Path, info: dict[str, Any], text: str,
               finish_reason: str | None) -> GeneratedImage:
    """Write the RGBA PNG with the user's request and how it was made as provenance; nothing re-encodes it later."""
    png = encode_rgba(rgba)
    chunks = provenance_chunks(user, text=text, finish_reason=finish_reason)
    record = json.loads(chunks[REQUEST_KEY])
    record["transparent"] = info
    chunks[REQUEST_KEY] = json.dumps(record, ensure_ascii=False)
    chunks[PARAMETERS_KEY] += f", Transparent: {info['method']}, Calls: {info['calls']}"
    png = embed_png_text(png, chunks)
    name = output_name(user.prompt, "image/png", datetime.now(), f"_v{user.options.variation}_transparent"
                       if user.options.variation else "_transparent")
    path = save_output(png, out_dir, name)
    height, width = rgba.shape[:2]
    return GeneratedImage(sha256=hashlib.sha256(png).hexdigest(), mime_type="image/png", width=width,
                          height=height, path=path)


def _call_record(result: ImageResult) -> dict[str, Any]:
    image = result.images[-1] if result.images else None
    return {"id": result.id, "prompt": result.request.prompt, "cached": result.cached, "cost_usd": result.cost_usd,
            "sha256": None if image is None else image.sha256}


def _solve_black(state: _Solve, black: ImageResult) -> ImageResult:
    """Call 2's hook: solve the matte; misaligned on the last try, key call 1 instead. Returns what the entry keeps."""
    white_pixels = _pixels(state.white.images[0])
    black_pixels = _pixels(black.images[0])
    state.on_black = background_share(black_pixels, BLACK)
    calls = [*state.calls, black]
    if white_pixels.shape == black_pixels.shape and state.on_black >= _ON_BACKGROUND:
        state.matte = difference_matte(white_pixels, black_pixels)
        moved = state.matte.misaligned
        why = (f"the subject moved between the two calls ({state.matte.disagreeing_pixels} pixels disagree, "
               f"{state.matte.disagreement:.0%} of its outline)")
    else:
        moved = True
        why = ("call 2 came back another size" if white_pixels.shape != black_pixels.shape else
               f"call 2 is not on black (only {state.on_black:.0%} of its border is)")
    if moved and not state.last:
        state.note = why
        return black  # the entry keeps the black picture only; the caller tries call 2 again
    info: dict[str, Any] = {"method": "difference", "calls": len(calls) + 1,
                            "ids": [state.white.id, *(call.id for call in calls)],
                            "white": _call_record(state.white), "black": _call_record(black)}
    if moved:
        state.note = f"{why}: fell back to a chroma key of the white picture (call 1)"
        rgba = chroma_key(white_pixels, WHITE).rgba
        info.update(fallback="key", note=state.note)
    else:
        assert state.matte is not None
        rgba = state.matte.rgba
        if state.note:
            info.update(fallback="retry", note=f"{state.note}: call 2 was sent again and agreed")
    info["disagreement"] = None if state.matte is None else round(state.matte.disagreement, 4)
    image = _save_rgba(rgba, state.user, state.out_dir, info, black.text, black.finish_reason)
    state.calls, state.info = calls, info
    return replace(black, images=(image, *black.images))


def _not_on(result: ImageResult, colour: tuple[int, int, int], name: str, share: float, call: str) -> TransparencyError:
    where = result.images[0].path if result.images else None
    return TransparencyError(
        f"The model ignored the background instruction: {call} is not on {name} (only {share:.0%} of its border is), "
        f"so no transparency can be solved from it. Its picture was kept as it came, opaque: {where} (id "
        f"{result.id}); nothing else was sent. Try again (another seed), or the other method (--transparent key / "
        "difference).")


async def make_transparent(studio: StudioLike, request: ImageRequest, transparency: Transparency, *,
                           use_cache: bool = True, out_dir: Path | None = None, on_event: EventSink | None = None,
                           owner: str | None = None) -> ImageResult:
    """One transparent image for a validated request: its `images` hold the RGBA PNG, `transparent` says how."""
    check_transparency(request, transparency)
    out = out_dir or studio.settings.output_dir
    started = time.perf_counter()
    if transparency.method == "key":
        return await _keyed(studio, request, out, started, use_cache=use_cache, on_event=on_event, owner=owner)
    white = await studio.run(with_background(request, WHITE_WORDS), use_cache=use_cache, out_dir=out,
                             on_event=on_event, owner=owner)
    share = await asyncio.to_thread(lambda: background_share(_pixels(white.images[0]), WHITE))
    if share < _ON_BACKGROUND:
        raise _not_on(white, WHITE, "pure white", share, "call 1")
    # Call 2 repaints the background only: no new Google Search (call 1's grounding is in the conversation).
    options = replace(request.options, search=False, image_search=False)
    plan = await studio.prepare_refine(parent_id=white.id, instruction=BLACK_WORDS, model=white.request.model,
                                       options=options, owner=owner)
    state = _Solve(white=white, user=request, out_dir=out, last=transparency.fallback == "key")
    calls = [white]
    black = await studio.run_refinement(plan, use_cache=use_cache, out_dir=out, on_event=on_event, owner=owner,
                                        finish=lambda result: _solve_black(state, result))
    calls.append(black)
    if not state.info:  # not solved: misaligned, and the user chose to try call 2 once more
        if on_event is not None:
            on_event(f"transparent: {state.note}; sending call 2 once more")
        state.last, state.calls = True, [black]
        black = await studio.run_refinement(plan, use_cache=False, out_dir=out, on_event=on_event, owner=owner,
                                            finish=lambda result: _solve_black(state, result))
        calls.append(black)
    return _final(request, black, calls, state.info, started)


def _final(user: ImageRequest, last: ImageResult, calls: list[ImageResult], info: dict[str, Any],
           started: float) -> ImageResult:
    """The result the caller sees: the RGBA image, the user's own request, and every call's cost summed."""
    costs = [call.cost_usd for call in calls]
    return replace(last, request=user, images=last.images[:1],
                   cost_usd=None if None in costs else round(sum(c or 0.0 for c in costs), 6),
                   cached=all(call.cached for call in calls),
                   saved_usd=round(sum(call.saved_usd for call in calls), 6),
                   elapsed_s=time.perf_counter() - started, transparent=info)


async def _keyed(studio: StudioLike, request: ImageRequest, out: Path, started: float, *, use_cache: bool,
                 on_event: EventSink | None, owner: str | None) -> ImageResult:
    """The key method: one call on a key colour, keyed out in the hook (the entry keeps the PNG and the original)."""
    name, colour = pick_key(request.prompt)
    found: dict[str, Any] = {}

    def key_out(result: ImageResult) -> ImageResult:
        pixels = _pixels(result.images[0])
        found["share"] = background_share(pixels, colour)
        if found["share"] < _ON_BACKGROUND:
            return result
        info = {"method": "key", "calls": 1, "ids": [result.id], "key_colour": "#{:02X}{:02X}{:02X}".format(*colour),
                "keyed": _call_record(result)}
        image = _save_rgba(chroma_key(pixels, colour).rgba, request, out, info, result.text, result.finish_reason)
        found["info"] = info
        return replace(result, images=(image, *result.images))

    result = await studio.run(with_background(request, key_words(name, colour)), use_cache=use_cache, out_dir=out,
                              on_event=on_event, owner=owner, finish=key_out)
    if len(result.images) < 2:
        raise _not_on(result, colour, f"chroma-key {name}", found.get("share", 0.0), "the picture")
    return _final(request, result, [result], dict(found["info"]), started)


async def transparent_variations(studio: StudioLike, request: ImageRequest, transparency: Transparency, count: int,
                                 *, on_result: Callable[[ImageResult | StudioError], None] | None = None,
                                 use_cache: bool = True, out_dir: Path | None = None,
                                 on_event: EventSink | None = None,
                                 owner: str | None = None) -> list[ImageResult | StudioError]:
    """`count` transparent images (variation numbers n, n+1, ...) in parallel; errors are returned, not raised."""
    check_transparency(request, transparency)

    async def make(variation: ImageRequest) -> ImageResult:
        return await make_transparent(studio, variation, transparency, use_cache=use_cache, out_dir=out_dir,
                                      on_event=on_event, owner=owner)

    return await gather_variations(request, count, make, on_result)
