"""The words the page shows: status lines, the offline banner, model facts, the compose limit, history details."""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from ..domain.costs import status_text
from ..domain.errors import StudioError
from ..domain.models import DEPRECATED, RETIRING, SHUT_DOWN, ModelSpec, get_model, known_models
from ..domain.request import ImageOptions, ImageResult
from ..quota.limits import DailyUsage
from ..service.validation import composers_hint
from ..storage.history import HistoryEntry
from .session import Session, image_options

__all__ = [
    "KEY_HELP", "OFFLINE_BANNER", "PUBLIC_BANNER", "PUBLIC_METER",
    "compose_limit", "daily_meter", "entry_caption", "entry_details", "history_summary",
    "model_info", "model_notes", "options_summary", "plain", "run_status", "sources_html", "status_line",
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
    """One line about a result: cost or the cache badge, an unusual finish reason, time, and the model's words."""
    return status_text(cost_usd=result.cost_usd, cached=result.cached, finish_reason=result.finish_reason,
                       elapsed_s=result.elapsed_s, text=plain(result.text.strip()))


def run_status(outcomes: list[ImageResult | StudioError],
               describe: Callable[[StudioError], str] = lambda error: error.message) -> str:
    """The status text for one click: a line per request, numbered when there are several, failures included
    (each in the words `describe` gives it: the visitor's, in public mode)."""
    lines = []
    for number, outcome in enumerate(outcomes, start=1):
        line = f"failed: {plain(describe(outcome))}" if isinstance(outcome, StudioError) else status_line(outcome)
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
    """The caption under a session thumbnail: the prompt (shortened) and the settings."""
    prompt = entry.prompt if len(entry.prompt) <= 60 else entry.prompt[:57] + "..."
    return f"{entry.mode}: {prompt} ({options_summary(entry.model, image_options(entry.options))})"


def entry_details(entry: HistoryEntry) -> str:
    """Everything about one entry, as Markdown: parameters, result or failure, tokens, the model's words, files.

    The one description of an entry, for the session panel and the History tab alike.
    """
    when = entry.created.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    tokens = entry.tokens or {}
    kind = (f"Refinement, turn {entry.turn} (of `{entry.parent}`)" if entry.kind == "refine"
            else entry.mode.capitalize())
    lines = [f"**{kind}** · {when} · `{entry.model}`",
             "> " + plain(entry.prompt).replace("\n", "\n> "),
             f"Settings: {options_summary(entry.model, image_options(entry.options))}"]
    if entry.error:
        lines.append(f"**Failed** ({entry.error_type}): {plain(entry.error)}")
    else:
        lines.append("Result: " + status_text(cached=entry.cached, cost_usd=entry.cost_usd,
                                              finish_reason=entry.finish_reason, elapsed_s=entry.elapsed_s))
    if any(tokens.values()):
        lines.append(f"Tokens: {tokens.get('prompt') or 0} in, {tokens.get('output') or 0} out, "
                     f"{tokens.get('total') or 0} total")
    if entry.text.strip():
        lines.append(f"The model's words: {plain(entry.text.strip())}")
    if entry.input_hashes:
        # Entries made before the history kept inputs (m004) name their inputs by hash only: Re-run needs them again.
        kept = "kept in the history" if entry.inputs else "not kept: an entry from before the history kept inputs"
        lines.append(f"Input images: {len(entry.input_hashes)} ({kept}; by hash: "
                     + ", ".join(f"`{sha[:12]}`" for sha in entry.input_hashes) + ")")
    region = entry.region or {}
    if region:  # what a re-run repeats besides the prompt and settings (the history keeps the mask and the original)
        what = (f"masked edit · mask `{str(region.get('mask_sha256'))[:12]}` · crop box "
                f"{', '.join(map(str, region.get('crop_box') or ()))}" if region.get("kind") == "mask" else
                f"extend to {region.get('extend_to')} · anchor {region.get('anchor')}")
        lines.append(f"Region: {what} · feather {region.get('feather')} px (Re-run repeats it exactly; refining it "
                     "changes only this region)")
    if entry.images:
        # Sizes and types only: on a shared server a full path says more about the machine than a visitor needs.
        lines.append("Images: " + ", ".join(f"{image.width}×{image.height} {image.mime_type.split('/')[-1].upper()}"
                                            for image in entry.images))
    lines.append(f"Id: `{entry.id}`")
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
    if usage.maybe_requests:  # timed out after they were sent: Gemini may have billed them
        saved += f" · {usage.maybe_requests} possibly billed (timeouts, up to ${usage.maybe_usd:.4f})"
    return (f"Today: {usage.requests} of {usage.budget} requests · ${usage.cost_usd:.4f} spent{saved} · "
            f"resets in {usage.resets_in} (midnight Pacific)")


def model_info(spec: ModelSpec, size: str | None) -> str:
    """What the selected model costs and takes, e.g. "$0.0672 per 1K image · $6.72 per 100 · batch $0.0336 per
    image · sizes 512, 1K · up to 14 input images", and its status when it is deprecated, retiring (or gone)."""
    inputs = f"{spec.max_input_images} input image" + ("s" if spec.max_input_images != 1 else "")
    line = f"{spec.price_summary(size)} · sizes {', '.join(spec.sizes)} · up to {inputs}"
    if spec.status in (DEPRECATED, RETIRING, SHUT_DOWN):
        line += f" · **{spec.lifecycle()}**"  # registry data, not user text
    return line


def model_notes(notes: Sequence[str]) -> str:
    """The note under the model dropdown: why a registry model is hidden, or why the whole registry is shown."""
    return "\n\n".join(f"<small>{plain(note)}</small>" for note in notes)


def _safe_link(uri: str) -> str | None:
    """The link itself when it is a web address (http or https), else None: a source must not run script."""
    return uri if urlsplit(uri).scheme in ("http", "https") else None


def sources_html(results: Sequence[ImageResult]) -> str:
    """The Search grounding under the result: each source's title as a link (titles escaped), then Google's
    search-suggestions snippet exactly as given (Google requires it shown unchanged). "" without Search."""
    parts: list[str] = []
    seen: set[tuple[str, str]] = set()
    items = []
    for result in results:
        for source in result.sources:
            if (source.title, source.uri) in seen:
                continue
            seen.add((source.title, source.uri))
            title = html.escape(source.title or source.uri)
            link = _safe_link(source.uri)
            items.append(f'<li><a href="{html.escape(link)}" target="_blank" rel="noopener noreferrer">{title}</a></li>'
                         if link else f"<li>{title}</li>")
    if items:
        parts.append('<div class="sources"><strong>Sources</strong><ul>' + "".join(items) + "</ul></div>")
    for snippet in dict.fromkeys(result.search_entry_point for result in results if result.search_entry_point):
        parts.append(f'<div class="search-entry-point">{snippet}</div>')
    return "\n".join(parts)


def compose_limit(spec: ModelSpec, count: int) -> str:
    """The compose tab's limit line: how many images this model takes and how many are in; a warning when over."""
    name = spec.label.split(" (")[0]
    if spec.max_input_images < 2:
        return f"**{name} cannot compose** (it takes one input image). {composers_hint()}"
    line = f"{name} takes 2 to {spec.max_input_images} images ({count} added)."
    if count > spec.max_input_images:
        more = [other.label.split(" (")[0] for other in known_models() if other.max_input_images >= count]
        hint = f", or pick a model that takes more ({', '.join(more)})" if more else ""
        line += f" **Too many: remove {count - spec.max_input_images}**{hint}."
    return line
