"""One visitor's session, kept in gr.State: their generations (newest first) and what "New variation" re-runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from ..request import ImageOptions, ImageRequest, ImageResult, Mode

__all__ = ["MAX_HISTORY", "HistoryEntry", "Session", "existing"]

MAX_HISTORY = 200  # entries per session; each holds paths and settings only, the images stay on disk


@dataclass(frozen=True)
class HistoryEntry:
    """One result in the history: what was asked (to reuse it) and what came back (to show and send on)."""

    result_id: str
    mode: Mode
    model: str
    prompt: str
    options: ImageOptions
    paths: tuple[str, ...]
    inputs: tuple[str, ...]  # the input image files as the page had them (Gradio's upload cache), for Reuse
    status: str
    cached: bool
    cost_usd: float | None
    saved_usd: float
    created: datetime

    @classmethod
    def from_result(cls, result: ImageResult, inputs: tuple[str, ...], status: str) -> HistoryEntry:
        """The entry for one ImageResult."""
        request = result.request
        return cls(result_id=result.id, mode=request.mode, model=request.model, prompt=request.prompt,
                   options=request.options, paths=tuple(str(image.path) for image in result.images if image.path),
                   inputs=inputs, status=status, cached=result.cached, cost_usd=result.cost_usd,
                   saved_usd=result.saved_usd, created=datetime.now())

    @property
    def thumbnail(self) -> str | None:
        """The first image's file, shown in the history gallery."""
        return self.paths[0] if self.paths else None


@dataclass
class Session:
    """Everything the page remembers for one visitor; never shared between visitors."""

    entries: list[HistoryEntry] = field(default_factory=list)  # newest first
    last_request: ImageRequest | None = None
    last_inputs: tuple[str, ...] = ()
    last_count: int = 1
    next_variation: int = 1
    selected: int | None = None  # index into entries, from the history gallery
    shown: tuple[str, ...] = ()  # the images in the output gallery
    shown_selected: int = 0
    compose_selected: int | None = None

    def record(self, request: ImageRequest, inputs: tuple[str, ...], count: int,
               results: list[tuple[ImageResult, str]]) -> None:
        """Remember a finished run: its results go on top of the history, its request becomes "last"."""
        self.last_request = request
        self.last_inputs = inputs
        self.last_count = count
        self.next_variation = request.options.variation + count
        new = [HistoryEntry.from_result(result, inputs, status) for result, status in results]
        # Variation 0 first within one run, so the order in the history matches the order in the output gallery.
        self.entries[:0] = [entry for entry in new if entry.paths]
        del self.entries[MAX_HISTORY:]
        self.selected = None
        self.shown = tuple(path for result, _ in results for path in (str(i.path) for i in result.images if i.path))
        self.shown_selected = 0

    def entry(self, index: int | None) -> HistoryEntry | None:
        """The entry at an index, or None when there is none."""
        if index is None or not 0 <= index < len(self.entries):
            return None
        return self.entries[index]

    @property
    def selected_entry(self) -> HistoryEntry | None:
        """The entry picked in the history gallery (the newest when none was picked)."""
        return self.entry(self.selected if self.selected is not None else 0)

    @property
    def shown_image(self) -> str | None:
        """The output image picked in the output gallery (the first when none was picked)."""
        if not self.shown:
            return None
        return self.shown[min(self.shown_selected, len(self.shown) - 1)]

    def totals(self) -> tuple[int, float, float]:
        """Images made in this session, USD spent, and USD the cache saved."""
        spent = sum(entry.cost_usd or 0.0 for entry in self.entries)
        saved = sum(entry.saved_usd for entry in self.entries)
        return sum(len(entry.paths) for entry in self.entries), spent, saved


def existing(paths: tuple[str, ...]) -> list[str]:
    """The paths that still exist (Gradio may have cleaned its upload cache)."""
    return [path for path in paths if Path(path).is_file()]
