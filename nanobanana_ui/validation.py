"""Checking a request before any call: the prompt, the model id, options against the model, the input images."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

from .errors import InputError, UnsupportedOptionError
from .images import InputImage, check_request_size, load_input_image, load_input_path
from .models import ModelSpec, get_model
from .request import ImageOptions, ImageRequest, Mode

__all__ = [
    "MAX_PROMPT_CHARS", "ImageSource", "build_request", "unencodable_at", "unencodable_problem", "validate_options",
]

MAX_PROMPT_CHARS = 30_000  # the image models take about 32k input tokens; refuse clearly rather than get a 400
_MODEL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # it becomes part of the URL path
ImageSource = InputImage | bytes | str | os.PathLike[str]


def unencodable_at(text: str) -> int | None:
    """The index of the first character UTF-8 cannot encode (a lone surrogate), or None when there is none.

    Such characters come from a JSON escape like "\\udcff", or from bytes that were not UTF-8 (decoded with
    surrogateescape, as Python does for command-line arguments); no request can carry them.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def unencodable_problem(what: str, text: str) -> str | None:
    """A one-line refusal when `text` holds a character UTF-8 cannot encode, naming `what` and the position."""
    index = unencodable_at(text)
    if index is None:
        return None
    return (f"{what} holds {text[index]!r} at character {index + 1}, a lone surrogate that is not text (a JSON "
            "\\udcXX escape, or bytes that are not UTF-8): remove or retype it")


def _as_input(source: ImageSource, index: int) -> InputImage:
    if isinstance(source, InputImage):
        return source
    if isinstance(source, bytes):
        return load_input_image(source, name=f"image {index + 1}")
    return load_input_path(source)


def _check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise UnsupportedOptionError(f"{name} must be between {low:g} and {high:g} (got {value:g}).")


def validate_options(spec: ModelSpec, options: ImageOptions) -> None:
    """Refuse, before any call, an option the model does not offer."""
    if options.size is not None and options.size not in spec.sizes:
        raise UnsupportedOptionError(
            f"{spec.label} does not make {options.size} images; choose one of: {', '.join(spec.sizes)}.")
    if options.aspect_ratio is not None and options.aspect_ratio not in spec.aspect_ratios:
        raise UnsupportedOptionError(
            f"{spec.label} does not offer aspect ratio {options.aspect_ratio}; "
            f"choose one of: {', '.join(spec.aspect_ratios)}.")
    _check_range("Temperature", options.temperature, 0.0, 2.0)
    _check_range("Top-p", options.top_p, 0.0, 1.0)
    _check_range("Top-k", options.top_k, 1, 1000)
    _check_range("Seed", options.seed, 0, 2**31 - 1)
    _check_range("Variation", options.variation, 0, 10**9)


def build_request(mode: Mode, prompt: str, images: Sequence[ImageSource] = (), *, model: str,
                  options: ImageOptions | None = None) -> ImageRequest:
    """Validate everything that can be checked before a call, and build the request."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("The prompt is empty: describe the image you want (or the change to make).")
    problem = unencodable_problem("The prompt", prompt)
    if problem is not None:
        raise InputError(problem[0].upper() + problem[1:] + ".")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"The prompt is {len(prompt):,} characters long; the limit is {MAX_PROMPT_CHARS:,}.")
    if not _MODEL_ID.fullmatch(model):
        raise InputError(f"{model!r} is not a model id: ids look like gemini-2.5-flash-image.")
    spec = get_model(model)
    options = options or ImageOptions()
    validate_options(spec, options)
    if len(images) > spec.max_input_images:
        raise InputError(f"{spec.label} accepts at most {spec.max_input_images} input images; "
                         f"you gave {len(images)}. Remove some, or choose a model that takes more.")
    low, high = {Mode.GENERATE: (0, 0), Mode.EDIT: (1, 1), Mode.COMPOSE: (2, spec.max_input_images)}[mode]
    if not low <= len(images) <= high:
        wanted = {Mode.GENERATE: "no input image", Mode.EDIT: "exactly one input image",
                  Mode.COMPOSE: f"2 to {spec.max_input_images} input images"}[mode]
        raise InputError(f"{mode.value.capitalize()} needs {wanted}; got {len(images)}.")
    inputs = tuple(_as_input(source, i) for i, source in enumerate(images))
    check_request_size(inputs)
    return ImageRequest(mode=mode, model=model, prompt=prompt, images=inputs, options=options)
