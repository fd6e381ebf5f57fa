"""The History tab's data: pages of the visitor's entries with cached thumbnails, exports, re-built requests.

`owner_of(request)` says whose entries a visitor sees: None (everything) on a private install; the public mode can
pass the visitor's id, and every read, delete and export here is then limited to that owner's entries.
"""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, ImageDraw

from ..domain.request import ImageRequest, Mode
from ..imaging.images import load_input_path
from ..service.studio import Studio
from ..storage.history import HistoryEntry, HistoryStore
from .actions import refuse
from .exports import export_path
from .runner_base import no_owner, studio_errors
from .session import Session, image_options
from .text import entry_details

__all__ = ["NO_SELECTION", "PAGE_SIZE", "REFINE", "THUMB_SIZE", "Browse", "Library", "LibraryPage", "caption",
           "details", "original", "page_info"]

PAGE_SIZE = 24
THUMB_SIZE = 192
PRIVATE: dict[str, Any] = {"api_visibility": "private"}
_MIMES = ("image/png", "image/jpeg", "image/webp", "image/gif")
NO_SELECTION = "Click a thumbnail to see everything about that request."


@dataclass
class Browse:
    """One visitor's place in the History tab (gr.State): filters, page, the ids shown, the opened entry."""

    search: str = ""
    model: str = ""
    mode: str = ""
    page: int = 0
    ids: tuple[str, ...] = ()
    selected: str | None = None
    armed: str | None = None  # Delete was clicked once for this entry: the next click deletes it


@dataclass(frozen=True)
class LibraryPage:
    """One page of the History tab: thumbnails with captions, the entries' ids, and where it is in the whole."""

    items: list[tuple[str, str]]
    ids: tuple[str, ...]
    page: int
    pages: int
    total: int
    info: str


REFINE = "refine"  # the Mode filter's choice for refinements (entries with a parent), beside the three modes


def caption(entry: HistoryEntry) -> str:
    """The caption under a thumbnail: "failed" for failures, the prompt (shortened: it shows first), the mode."""
    prompt = " ".join(entry.prompt.split())
    prompt = prompt if len(prompt) <= 50 else prompt[:47] + "..."
    what = f"refine, turn {entry.turn}" if entry.kind == "refine" else entry.mode
    return f"{'failed: ' if entry.error else ''}{prompt} · {what}"


def details(entry: HistoryEntry | None) -> str:
    """Everything about one entry, as Markdown (the same description as the session panel's)."""
    return NO_SELECTION if entry is None else entry_details(entry)


@lru_cache(maxsize=1)
def _no_image_thumbnail() -> str:
    """A grey square shown for a failed request (no image) or a missing file; made once per process."""
    path = Path(tempfile.gettempdir()) / "nanobanana-ui" / f"no-image-{THUMB_SIZE}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        image = Image.new("RGB", (THUMB_SIZE, THUMB_SIZE), (225, 225, 225))
        ImageDraw.Draw(image).text((THUMB_SIZE // 2, THUMB_SIZE // 2), "no image", fill=(90, 90, 90), anchor="mm")
        tmp = path.with_name(f".{secrets.token_hex(4)}-{path.name}")
        image.save(tmp, format="PNG")
        tmp.replace(path)
    return str(path)


def page_info(page: int, pages: int, total: int, filtered: bool) -> str:
    """The line under the gallery, e.g. "Page 2 of 84 · 2,000 entries, newest first"."""
    if not total:
        return "No entries match these filters." if filtered else "Nothing has been made on this data directory yet."
    noun = "entry" if total == 1 else "entries"
    return f"Page {page + 1} of {pages} · {total:,} {noun}{' match' if filtered else ''}, newest first"


class Library:
    """The History tab's data over the Studio's HistoryStore: pages, thumbnails, exports, re-built requests."""

    def __init__(self, studio: Studio, owner_of: Callable[[gr.Request | None], str | None] = no_owner) -> None:
        self.studio, self.owner_of = studio, owner_of

    @property
    def store(self) -> HistoryStore:
        """The Studio's history (opened on first use)."""
        return self.studio.history

    def thumbnail(self, entry: HistoryEntry) -> str:
        """The entry's first image as a small cached WEBP (made on first view), or the "no image" square."""
        if not entry.images:
            return _no_image_thumbnail()
        try:
            return str(self.store.thumbnail(entry.images[0], THUMB_SIZE))
        except (OSError, ValueError, Image.DecompressionBombError):  # file gone or damaged: `history --verify`
            return _no_image_thumbnail()

    def page_data(self, search: str = "", model: str = "", mode: str = "", page: int = 0,
                  owner: str | None = None) -> LibraryPage:
        """One page of entries with their thumbnails: what the tab shows (the benchmark times this)."""
        filters: dict[str, Any] = {"search": (search or "").strip() or None, "model": model or None,
                                   "mode": mode or None, "owner": owner}
        total = self.store.count(**filters)
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(max(page, 0), pages - 1)
        entries = self.store.page(offset=page * PAGE_SIZE, limit=PAGE_SIZE, **filters)
        filtered = any(filters[k] for k in ("search", "model", "mode"))
        return LibraryPage([(self.thumbnail(e), caption(e)) for e in entries], tuple(e.id for e in entries), page,
                           pages, total, page_info(page, pages, total, filtered))

    def entry(self, browse: Browse, request: gr.Request | None) -> HistoryEntry | None:
        """The opened entry, if the visitor may see it."""
        return self.store.get(browse.selected, owner=self.owner_of(request)) if browse.selected else None

    def selected(self, browse: Browse, request: gr.Request | None) -> HistoryEntry:
        """The opened entry; refused when none is open."""
        entry = self.entry(browse, request)
        if entry is None:
            raise refuse("Open an entry first: click its thumbnail in the History tab.")
        return entry

    def export(self, browse: Browse, request: gr.Request | None = None) -> str:
        """A ZIP of the entries on the current page (images + manifest.jsonl)."""
        if not browse.ids:
            raise refuse("This page is empty: nothing to export.")
        dest = export_path(f"nanobanana-history-{datetime.now():%Y%m%d-%H%M%S}")
        return str(self.store.export_zip(browse.ids, dest, owner=self.owner_of(request)))

    def next_variation(self, image_request: ImageRequest, studio: Studio | None = None) -> int:
        """The first variation number after this request's that the cache (of this visitor's key) does not hold."""
        number = image_request.options.variation + 1
        while (studio or self.studio).cache.lookup(image_request.with_variation(number).cache_key()) is not None:
            number += 1
        return number

    def rebuild(self, entry: HistoryEntry, session: Session | None = None) -> tuple[ImageRequest, tuple[str, ...]]:
        """The ImageRequest an entry recorded, and its input files; inputs are found by hash among the history's
        images and the visitor's uploads this session, or the request cannot be repeated (said clearly).

        A region edit is rebuilt exactly, with the mask the history keeps (Studio.rebuild_request); its original is
        kept too, so it is found here by its hash."""
        if entry.mode not in {mode.value for mode in Mode}:  # prompt craft (enhance, describe): words, not an image
            raise refuse(f"This entry is a prompt {entry.mode.replace('-', ' for an edit: ')}, not an image: copy "
                         "its prompt into the Studio tab to use it.")
        inputs = [self._find_input(sha, session) for sha in entry.input_hashes]
        missing = sum(path is None for path in inputs)
        if missing:
            raise refuse(
                f"This {entry.mode} used {len(inputs)} input image{'s' if len(inputs) != 1 else ''}, and "
                f"{missing} of them {'is' if missing == 1 else 'are'} no longer available: the history keeps the "
                f"images it made, not the ones you uploaded. Open the original{'s' if missing != 1 else ''} in "
                f"{entry.mode.capitalize()} and run it from there.")
        paths = tuple(str(path) for path in inputs)
        with studio_errors():
            if entry.region is not None:  # the kept mask, crop, feather, extend ratio and anchor: the same request
                return self.studio.rebuild_request(entry, images=paths), paths
            image_request = self.studio.build_request(Mode(entry.mode), entry.prompt, paths, model=entry.model,
                                                      options=image_options(entry.options),
                                                      kit=self.studio.entry_kit(entry))  # the version it was made with
        return image_request, paths

    def _find_input(self, sha: str, session: Session | None) -> Path | None:
        for mime in _MIMES:  # an earlier output sent on to Edit or Compose is stored under its digest
            path = self.store.files.path_for(sha, mime)
            if path.is_file():
                return path
        uploads = [*session.last_inputs, *(p for paths in session.inputs.values() for p in paths)] if session else []
        for candidate in dict.fromkeys(uploads):
            try:
                if Path(candidate).is_file() and load_input_path(candidate).sha256 == sha:
                    return Path(candidate)
            except Exception:  # noqa: BLE001 - an unreadable upload is simply not the one we look for
                continue
        return None


def original(entry: HistoryEntry | None) -> str | None:
    """The entry's first image file that still exists, to download (None: nothing to download)."""
    if entry is None:
        return None
    found = [image.path for image in entry.images if Path(image.path).is_file()]
    return str(found[0]) if found else None
