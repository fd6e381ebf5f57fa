"""Checking a request before any call: the prompt, the model id, options against the model, the input images."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from ..domain.errors import InputError, UnsupportedOptionError
from ..domain.inputs import InputImage
from ..domain.kits import KitUse, reference_caps, reference_total
from ..domain.models import Capability, ModelSpec, known_models, models_with, resolve
from ..domain.request import ImageOptions, ImageRequest, Mode
from ..imaging.images import check_request_size, load_input_image, load_input_path

__all__ = [
    "MAX_PROMPT_CHARS", "THINKING_LEVELS", "ImageSource", "build_request", "check_kit_limits", "composers_hint",
    "load_inputs", "normalize_options",
    "unencodable_at", "unencodable_problem", "validate_options",
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


def _as_input(source: ImageSource, index: int, keep_metadata: bool = False) -> InputImage:
    if isinstance(source, InputImage):
        return source
    if isinstance(source, bytes):
        return load_input_image(source, name=f"image {index + 1}", keep_metadata=keep_metadata)
    return load_input_path(source, keep_metadata=keep_metadata)


def _check_range(name: str, value: float | None, low: float, high: float) -> None:
    if value is not None and not low <= value <= high:
        raise UnsupportedOptionError(f"{name} must be between {low:g} and {high:g} (got {value:g}).")


def _who_has(offers: Callable[[ModelSpec], bool], what: str) -> str:
    """A sentence naming the registry's models that offer something ("Models with 512 images: ..."), or ""."""
    names = [f"{other.short_label} ({other.id})" for other in known_models() if offers(other)]
    return f" Models with {what}: {', '.join(names)}." if names else ""


def validate_options(spec: ModelSpec, options: ImageOptions) -> None:
    """Refuse, before any call, an option the model does not offer."""
    if options.size is not None and options.size not in spec.sizes:
        raise UnsupportedOptionError(
            f"{spec.label} does not make {options.size} images; choose one of: {', '.join(spec.sizes)}."
            + _who_has(lambda other: options.size in other.sizes, f"{options.size} images"))
    if options.aspect_ratio is not None and options.aspect_ratio not in spec.aspect_ratios:
        raise UnsupportedOptionError(
            f"{spec.label} does not offer aspect ratio {options.aspect_ratio}; "
            f"choose one of: {', '.join(spec.aspect_ratios)}."
            + _who_has(lambda other: options.aspect_ratio in other.aspect_ratios, options.aspect_ratio))
    _check_gemini3_controls(spec, options)
    _check_range("Temperature", options.temperature, 0.0, 2.0)
    _check_range("Top-p", options.top_p, 0.0, 1.0)
    _check_range("Top-k", options.top_k, 1, 1000)
    _check_range("Seed", options.seed, 0, 2**31 - 1)
    _check_range("Variation", options.variation, 0, 10**9)


THINKING_LEVELS = ("minimal", "medium", "high")  # each model takes its own subset (the registry says which)


def _offered_by(capability: Capability) -> str:
    """The registry models with a capability, for a refusal message."""
    specs = models_with(capability)
    return ", ".join(f"{spec.id} ({spec.label})" for spec in specs) or "no model in the registry"


def _check_gemini3_controls(spec: ModelSpec, options: ImageOptions) -> None:
    """Thinking, thought images and Google Search: only where the model offers them (from the registry)."""
    if options.thinking is not None:
        if options.thinking not in THINKING_LEVELS:
            raise UnsupportedOptionError(
                f"Thinking level {options.thinking!r} is not one of: {', '.join(THINKING_LEVELS)}.")
        if spec.thinking_levels and options.thinking not in spec.thinking_levels:
            having = [f"{other.id} ({other.label})" for other in known_models()
                      if options.thinking in other.thinking_levels]
            raise UnsupportedOptionError(
                f"{spec.label} takes thinking level {', '.join(spec.thinking_levels)}, not {options.thinking}; "
                f"models with {options.thinking}: {', '.join(having) or 'none in the registry'}.")
        if options.thinking not in spec.thinking_levels:
            raise UnsupportedOptionError(
                f"{spec.label} has no thinking level setting ({options.thinking}); "
                f"models that have it: {_offered_by('thinking_levels')}.")
    refusals: tuple[tuple[bool, str, Capability], ...] = (
        (options.show_thoughts and not spec.thoughts, "does not return its thought images", "thoughts"),
        (options.image_search and not spec.image_search, "does not offer Google image search", "image_search"),
        (options.search and not options.image_search and not spec.search,
         "does not offer Google Search grounding", "search"),
    )
    for refused, what, capability in refusals:
        if refused:
            raise UnsupportedOptionError(f"{spec.label} {what}; models that do: {_offered_by(capability)}.")


def normalize_options(spec: ModelSpec, options: ImageOptions) -> ImageOptions:
    """Options equal to the model's own default become None ("not sent"), so the page (which sends its sliders'
    defaults) and the CLI (which sends nothing) make the same request: one cache entry, the same wire."""
    if not spec.known:  # an unknown model's defaults are unknown: send what was asked
        return options
    return replace(
        options,
        size=None if options.size == spec.default_size else options.size,
        temperature=None if options.temperature == spec.default_temperature else options.temperature,
        top_p=None if options.top_p == spec.default_top_p else options.top_p,
    )


def build_request(mode: Mode, prompt: str, images: Sequence[ImageSource] = (), *, model: str,
                  options: ImageOptions | None = None, keep_metadata: bool = False) -> ImageRequest:
    """Validate everything that can be checked before a call, and build the request.

    Input images lose their personal metadata (GPS, serials, owner names) unless `keep_metadata` is set.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("The prompt is empty: describe the image you want (or the change to make).")
    problem = unencodable_problem("The prompt", prompt)
    if problem is not None:
        raise InputError(problem[0].upper() + problem[1:] + ".")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(f"The prompt is {len(prompt):,} characters long; the limit is {MAX_PROMPT_CHARS:,}.")
    if not _MODEL_ID.fullmatch(model):
        raise InputError(f"{model!r} is not a model id: ids look like gemini-2.5-flash-image.")
    spec, note = resolve(model)  # a shut-down id is sent as its replacement (with a note), or refused
    options = options or ImageOptions()
    validate_options(spec, options)
    options = normalize_options(spec, options)
    if mode is Mode.COMPOSE and spec.max_input_images < 2:
        raise InputError(f"{spec.label} cannot compose: it takes one input image. {composers_hint()}")
    if len(images) > spec.max_input_images:
        raise InputError(f"{spec.label} accepts at most {spec.max_input_images} input images; "
                         f"you gave {len(images)}. Remove some, or choose a model that takes more.")
    low, high = {Mode.GENERATE: (0, 0), Mode.EDIT: (1, 1), Mode.COMPOSE: (2, spec.max_input_images)}[mode]
    if not low <= len(images) <= high:
        wanted = {Mode.GENERATE: "no input image", Mode.EDIT: "exactly one input image",
                  Mode.COMPOSE: f"2 to {spec.max_input_images} input images"}[mode]
        raise InputError(f"{mode.value.capitalize()} needs {wanted}; got {len(images)}.")
    inputs = tuple(_as_input(source, i, keep_metadata) for i, source in enumerate(images))
    check_request_size(inputs)
    return ImageRequest(mode=mode, model=spec.id, prompt=prompt, images=inputs, options=options, note=note)


def composers_hint() -> str:
    """The models that can compose (take two or more input images), as a sentence naming them."""
    names = [spec.label.split(" (")[0] for spec in known_models() if spec.max_input_images >= 2]
    return f"Models that can compose: {', '.join(names)}." if names else "No model here can compose."


def load_inputs(images: Sequence[ImageSource]) -> tuple[InputImage, ...]:
    """Normalise input images ready to send (each checked like an edit's), and check their total size."""
    inputs = tuple(_as_input(source, i) for i, source in enumerate(images))
    check_request_size(inputs)
    return inputs


def _kit_fits(spec: ModelSpec, kit: KitUse, inputs: int) -> bool:
    caps = reference_caps(spec)
    return inputs + len(kit.references) <= reference_total(spec) and all(
        count <= caps.get(role, count) for role, count in kit.role_counts().items())


def check_kit_limits(spec: ModelSpec, kit: KitUse, inputs: int) -> None:
    """Refuse, before any call, a kit the model cannot take with `inputs` images of the user's own: over its total,
    or over its cap for a role (the registry's `max_references` and `reference_caps`); names the models that would."""
    takers = [f"{other.short_label} ({other.id})" for other in known_models()
              if other.id != spec.id and _kit_fits(other, kit, inputs)]
    advice = f" Models that would take it: {', '.join(takers)}." if takers else " No model in the registry takes it."
    total, limit = inputs + len(kit.references), reference_total(spec)
    if total > limit:
        raise InputError(f"{spec.label} takes at most {limit} images a request; your {inputs} input image(s) and "
                         f"kit {kit.spec}'s {len(kit.references)} references make {total}.{advice}")
    caps = reference_caps(spec)
    for role, count in kit.role_counts().items():
        if role in caps and count > caps[role]:
            raise InputError(f"{spec.label} takes at most {caps[role]} {role} references; kit {kit.spec} has "
                             f"{count}.{advice}")
