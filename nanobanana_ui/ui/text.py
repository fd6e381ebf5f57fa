"""The words the page shows: status lines, the offline banner, model facts, the compose limit, history details."""

from __future__ import annotations

import re
from pathlib import Path

from ..costs import status_text
from ..errors import StudioError
from ..limits import DailyUsage
from ..models import ModelSpec, get_model, known_models
from ..request import ImageOptions, ImageResult
from .history import HistoryEntry, Session

__all__ = [
    "KEY_HELP", "OFFLINE_BANNER", "PUBLIC_BANNER", "PUBLIC_METER",
    "compose_limit", "daily_meter", "entry_caption", "entry_details", "history_summary", "model_info",
    "options_summary", "plain", "run_status", "status_line",
]

PUBLIC_BANNER = (
    "**Public demo: bring your own key.** Paste your Gemini API key below (get one at "
    "https://aistudio.google.com/apikey). It is used only for your own requests, on your own quota, and is never "
    "stored or logged; you see only your own history.")
PUBLIC_METER = "Public demo: your requests use your own key and quota · at most {rpm} requests per minute per visitor."
KEY_HELP = ("Used only for your own requests; never stored, logged or shown to anyone. Get one at "
            "https://aistudio.google.com/apikey")
OFFLINE_BANNER = (
    "**Offline mode:** no API key is configured, so images come from the built-in Gemini emulator "
    "(labelled placeholders). Add `GEMINI_API_KEY=...` to `.env` or the environment and restart for real images "
    "(get a key at https://aistudio.google.com/apikey)."
)


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def plain(text: str) -> str:
    """Text shown as typed inside Markdown: no formatting, no HTML (prompts and the model's words are not markup)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;")
    return _MARKDOWN_SPECIALS.sub(r"\\\1", escaped)


def status_line(result: ImageResult) -> str:
    """One line about a result: cost or the cache badge, finish reason, time, and the model's words."""
    words = f" · {plain(result.text.strip())}" if result.text.strip() else ""
    return status_text(cost_usd=result.cost_usd, cached=result.cached, finish_reason=result.finish_reason,
                       elapsed_s=result.elapsed_s) + words


def run_status(outcomes: list[ImageResult | StudioError]) -> str:
    """The status text for one click: a line per request, numbered when there are several, failures included."""
    lines = []
    for number, outcome in enumerate(outcomes, start=1):
        line = f"failed: {plain(outcome.message)}" if isinstance(outcome, StudioError) else status_line(outcome)
        lines.append(line if len(outcomes) == 1 else f"{number}. {line}")
    return "\n".join(lines)


def options_summary(model: str, options: ImageOptions) -> str:
    """The settings of a request in a few words, e.g. "Nano Banana · 16:9 · 1K · t 1 · seed 7"."""
    spec = get_model(model)
    parts = [spec.label.split(" (")[0], options.aspect_ratio or "auto", options.size or spec.default_size]
    if options.temperature is not None:
        parts.append(f"t {options.temperature:g}")
    if options.top_p is not None:
        parts.append(f"top-p {options.top_p:g}")
    if options.top_k is not None:
        parts.append(f"top-k {options.top_k}")
    if options.seed is not None:
        parts.append(f"seed {options.seed}")
    if options.variation:
        parts.append(f"variation {options.variation}")
    if not options.with_text:
        parts.append("image only")
    return " · ".join(parts)


def entry_caption(entry: HistoryEntry) -> str:
    """The caption under a history thumbnail: the prompt (shortened) and the settings."""
    prompt = entry.prompt if len(entry.prompt) <= 60 else entry.prompt[:57] + "..."
    return f"{entry.mode.value}: {prompt} ({options_summary(entry.model, entry.options)})"


def entry_details(entry: HistoryEntry | None) -> str:
    """Everything about one history entry, as Markdown."""
    if entry is None:
        return "Select an image in the history to see its details."
    lines = [
        f"**{entry.mode.value.capitalize()}** · {entry.created:%H:%M:%S} · `{entry.model}`",
        "> " + plain(entry.prompt).replace("\n", "\n> "),
        f"Settings: {options_summary(entry.model, entry.options)}",
        f"Result: {entry.status}",
    ]
    if entry.inputs:
        lines.append(f"Input images: {len(entry.inputs)}")
    # File names only: on a shared server the full path says more about the machine than the visitor needs.
    lines.append("Files: " + ", ".join(f"`{Path(path).name}`" for path in entry.paths))
    return "\n\n".join(lines)  # Markdown: a blank line between lines, or they run together


def history_summary(session: Session) -> str:
    """The line above the history: how many images this session made, what they cost and what the cache saved."""
    count, spent, saved = session.totals()
    if not count:
        return "Your images from this session appear here, newest first (only you can see them)."
    saving = f", ${saved:.4f} saved by the cache" if saved else ""
    return f"This session: {count} image{'s' if count != 1 else ''}, ${spent:.4f} spent{saving}."


def daily_meter(usage: DailyUsage, offline: bool) -> str:
    """The quota and cost meter: today's requests against the budget, money spent and saved, when it resets."""
    if offline:
        return "Offline emulator: no quota used, nothing spent."
    saved = f" · ${usage.saved_usd:.4f} saved by the cache" if usage.saved_usd else ""
    return (f"Today: {usage.requests} of {usage.budget} requests · ${usage.cost_usd:.4f} spent{saved} · "
            f"resets in {usage.resets_in} (midnight Pacific)")


def model_info(spec: ModelSpec, size: str | None) -> str:
    """What the selected model costs and takes, e.g. "$0.0387 per 1K image · up to 3 input images"."""
    size = size if size in spec.sizes else spec.default_size
    price = spec.image_price(size)
    cost = f"${price:.4f} per {size} image" if price is not None else "price unknown"
    return f"{cost} · sizes {', '.join(spec.sizes)} · up to {spec.max_input_images} input images"


def compose_limit(spec: ModelSpec, count: int) -> str:
    """The compose tab's limit line: how many images this model takes and how many are in; a warning when over."""
    have = f"{count} added" if count else "none added yet"
    line = f"{spec.label.split(' (')[0]} takes 2 to {spec.max_input_images} images ({have})."
    if count > spec.max_input_images:
        more = [other.label.split(" (")[0] for other in known_models() if other.max_input_images >= count]
        hint = f", or pick a model that takes more ({', '.join(more)})" if more else ""
        line += f" **Too many: remove {count - spec.max_input_images}**{hint}."
    return line
