"""One visitor's session panel, kept in gr.State: this page's results as history entries, and what to vary next.

The panel holds the same `HistoryEntry` records as the History tab (built from each ImageResult as it arrives), so
Send to Edit, Add to Compose and Reuse settings treat an entry the same wherever it was picked.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..domain.request import ImageOptions, ImageRequest, ImageResult
from ..storage.history import HistoryEntry, HistoryImage

__all__ = ["MAX_SESSION", "Session", "entry_from_result", "existing", "image_options"]

MAX_SESSION = 200  # entries per session; each holds paths and settings only, the images stay on disk


def entry_from_result(result: ImageResult, *, owner: str | None = None) -> HistoryEntry:
    """The history entry for one result, as the History tab would read it back (with the saved files' paths)."""
    request, usage = result.request, result.usage
    images = tuple(HistoryImage(image.sha256, image.mime_type, image.width, image.height, Path(image.path))
                   for image in result.images if image.path)
    return HistoryEntry(
        id=result.id, created=datetime.now(UTC), mode=request.mode.value, model=request.model,
        prompt=request.prompt, options=request.options.to_dict(),
        input_hashes=tuple(image.sha256 for image in request.images), images=images, text=result.text,
        finish_reason=result.finish_reason,
        tokens={"prompt": usage.prompt_tokens, "output": usage.output_tokens, "total": usage.total_tokens},
        cost_usd=result.cost_usd, cached=result.cached, elapsed_s=result.elapsed_s, error=None, error_type=None,
        owner=owner)


def image_options(options: dict[str, Any]) -> ImageOptions:
    """ImageOptions from an entry's stored options (unknown keys ignored)."""
    known = {f.name for f in fields(ImageOptions)}
    return ImageOptions(**{k: v for k, v in options.items() if k in known})


def image_paths(entry: HistoryEntry) -> tuple[str, ...]:
    """The entry's image files, as paths."""
    return tuple(str(image.path) for image in entry.images)


@dataclass
class Session:
    """Everything the page remembers for one visitor; never shared between visitors."""

    entries: list[HistoryEntry] = field(default_factory=list)  # newest first
    inputs: dict[str, tuple[str, ...]] = field(default_factory=dict)  # entry id -> the upload files, for Reuse
    saved_usd: dict[str, float] = field(default_factory=dict)  # entry id -> what the cache saved
    last_request: ImageRequest | None = None
    last_inputs: tuple[str, ...] = ()
    last_count: int = 1
    last_transparent: Any = None  # the last run's Transparency (service.transparency), so New variation keeps it
    next_variation: int = 1
    selected: int | None = None  # index into entries, from the session gallery
    shown: tuple[str, ...] = ()  # the images in the output gallery
    # The last run's results, for what the result area shows beside the images (sources, thought images);
    # held for this visitor's page only, never written anywhere.
    last_results: tuple[ImageResult, ...] = ()
    shown_selected: int = 0
    compose_selected: int | None = None

    def record(self, request: ImageRequest, inputs: tuple[str, ...], count: int, results: list[ImageResult]) -> None:
        """Remember a finished run: its results go on top of the panel, its request becomes "last"."""
        self.last_request = request
        self.last_inputs = inputs
        self.last_count = count
        self.last_transparent = None  # Runner.run sets it again for a transparent run
        self.next_variation = request.options.variation + count
        new = [entry_from_result(result) for result in results]
        for entry, result in zip(new, results, strict=True):
            self.inputs[entry.id] = inputs
            self.saved_usd[entry.id] = result.saved_usd
        # Variation 0 first within one run, so the order in the panel matches the order in the output gallery.
        self.entries[:0] = [entry for entry in new if entry.images]
        for gone in self.entries[MAX_SESSION:]:
            self.inputs.pop(gone.id, None)
            self.saved_usd.pop(gone.id, None)
        del self.entries[MAX_SESSION:]
        self.selected = None
        self.shown = tuple(path for entry in new for path in image_paths(entry))
        self.shown_selected = 0
        # Without the model turn's image bytes (refine reads them from the history and cache): a session holds
        # paths and words, plus at most the last run's thought pictures, so its memory does not grow with use.
        self.last_results = tuple(replace(result, model_turn=()) for result in results)

    def entry(self, index: int | None) -> HistoryEntry | None:
        """The entry at an index, or None when there is none."""
        if index is None or not 0 <= index < len(self.entries):
            return None
        return self.entries[index]

    @property
    def selected_entry(self) -> HistoryEntry | None:
        """The entry picked in the session gallery (the newest when none was picked)."""
        return self.entry(self.selected if self.selected is not None else 0)

    @property
    def last_ids(self) -> tuple[str, ...]:
        """The history ids of the last run's results, in order (what the Refine tab and /refine take)."""
        return tuple(result.id for result in self.last_results if result.id)

    @property
    def shown_id(self) -> str | None:
        """The history id of the output image picked in the output gallery (the first when none was picked)."""
        image = self.shown_image
        return next((result.id for result in self.last_results
                     if result.id and any(str(i.path) == image for i in result.images if i.path)), None)

    @property
    def shown_image(self) -> str | None:
        """The output image picked in the output gallery (the first when none was picked)."""
        if not self.shown:
            return None
        return self.shown[min(self.shown_selected, len(self.shown) - 1)]

    def totals(self) -> tuple[int, float, float]:
        """Images made in this session, USD spent, and USD the cache saved."""
        spent = sum(entry.cost_usd or 0.0 for entry in self.entries)
        saved = sum(self.saved_usd.get(entry.id, 0.0) for entry in self.entries)
        return sum(len(entry.images) for entry in self.entries), spent, saved


def existing(paths: tuple[str, ...]) -> list[str]:
    """The paths that still exist (Gradio may have cleaned its upload cache)."""
    return [path for path in paths if Path(path).is_file()]
