"""The History tab's handlers: every request ever made on this data directory, from the persistent HistoryStore.

Pages of PAGE_SIZE entries, newest first, with small cached thumbnails (so a first page costs the same with twenty or
thousands of entries); search by prompt, filters by model and mode; an opened entry can be re-run (the same request:
a cache hit), varied (the next variation number the cache does not hold), sent to Edit or Compose, downloaded,
deleted (a second click confirms) or exported with the rest of its page as a ZIP.

`owner_of(request)` says whose entries a visitor sees: None (everything) on a private install; the public mode can
pass the visitor's id, and every read, delete and export here is then limited to that owner's entries.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image, ImageDraw

from ..history import HistoryEntry, HistoryStore
from ..images import load_input_path
from ..models import get_model
from ..request import ImageOptions, ImageRequest, Mode
from ..studio import Studio
from .controls import gallery_paths
from .events import TAB_IDS
from .handlers import Outputs, Runner, no_owner, studio_errors
from .history import Session
from .text import options_summary, plain

__all__ = ["MAIN_TABS", "PAGE_SIZE", "THUMB_SIZE", "Browse", "Library", "LibraryPage", "no_owner"]

PAGE_SIZE = 24
THUMB_SIZE = 192
MAIN_TABS = {"studio": "studio", "history": "history", "pnginfo": "pnginfo"}
_MIMES = ("image/png", "image/jpeg", "image/webp")
_EXPORT_TTL_S = 3600  # exports older than this are removed when the next one is made
_NO_SELECTION = "Click a thumbnail to see everything about that request."


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


def caption(entry: HistoryEntry) -> str:
    """The caption under a thumbnail: "failed" for failures, the prompt (shortened: it shows first), the mode."""
    prompt = " ".join(entry.prompt.split())
    prompt = prompt if len(prompt) <= 50 else prompt[:47] + "..."
    return f"{'failed: ' if entry.error else ''}{prompt} · {entry.mode}"


def image_options(options: dict) -> ImageOptions:
    """ImageOptions from a history entry's stored options (unknown keys ignored)."""
    known = {f.name for f in fields(ImageOptions)}
    return ImageOptions(**{k: v for k, v in options.items() if k in known})


def details(entry: HistoryEntry | None) -> str:
    """Everything about one entry, as Markdown: parameters, the model's words, cost, tokens, timing, files."""
    if entry is None:
        return _NO_SELECTION
    options = image_options(entry.options)
    when = entry.created.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    cost = "cached · $0" if entry.cached else ("cost unknown" if entry.cost_usd is None else f"${entry.cost_usd:.4f}")
    tokens = entry.tokens or {}
    lines = [f"**{entry.mode.capitalize()}** · {when} · `{entry.model}`",
             "> " + plain(entry.prompt).replace("\n", "\n> "),
             f"Settings: {options_summary(entry.model, options)}"]
    if entry.error:
        lines.append(f"**Failed** ({entry.error_type}): {plain(entry.error)}")
    else:
        lines.append(f"Result: {cost} · {entry.finish_reason or 'done'} · {entry.elapsed_s or 0:.1f} s")
    if any(tokens.values()):
        lines.append(f"Tokens: {tokens.get('prompt') or 0} in, {tokens.get('output') or 0} out, "
                     f"{tokens.get('total') or 0} total")
    if entry.text.strip():
        lines.append(f"The model's words: {plain(entry.text.strip())}")
    if entry.input_hashes:
        lines.append(f"Input images: {len(entry.input_hashes)} (the history keeps outputs only; inputs by hash: "
                     + ", ".join(f"`{sha[:12]}`" for sha in entry.input_hashes) + ")")
    if entry.images:
        lines.append("Images: " + ", ".join(f"{image.width}×{image.height} {image.mime_type.split('/')[-1].upper()}"
                                            for image in entry.images))
    lines.append(f"Id: `{entry.id}`")
    return "\n\n".join(lines)


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
    """The History tab's events, over the Studio's HistoryStore; generation goes through the Runner."""

    def __init__(self, studio: Studio, runner: Runner,
                 owner_of: Callable[[gr.Request | None], str | None] = no_owner) -> None:
        self.studio, self.runner, self.owner_of = studio, runner, owner_of

    @property
    def store(self) -> HistoryStore:
        """The Studio's history (opened on first use)."""
        return self.studio.history

    # -- pages -----------------------------------------------------------------------------------------------

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

    def _show(self, browse: Browse, request: gr.Request | None, note: str | None = None) -> tuple:
        data = self.page_data(browse.search, browse.model, browse.mode, browse.page, self.owner_of(request))
        browse.page, browse.ids, browse.armed = data.page, data.ids, None
        if browse.selected not in data.ids:
            browse.selected = None
        entry = self._entry(browse, request) if browse.selected else None
        text = details(entry) if entry else (note or _NO_SELECTION)
        return data.items, data.info, text, self._original(entry), _delete_button(False), browse

    def search(self, browse: Browse, search: str, model: str, mode: str,
               request: gr.Request | None = None) -> tuple:
        """New filters: back to the first page."""
        browse.search, browse.model, browse.mode, browse.page = search or "", model or "", mode or "", 0
        return self._show(browse, request)

    def refresh(self, browse: Browse, request: gr.Request | None = None) -> tuple:
        """The same page again (the tab was opened: new entries may have arrived)."""
        return self._show(browse, request)

    def previous(self, browse: Browse, request: gr.Request | None = None) -> tuple:
        """The page before (newer entries)."""
        browse.page = max(browse.page - 1, 0)
        return self._show(browse, request)

    def next(self, browse: Browse, request: gr.Request | None = None) -> tuple:
        """The page after (older entries)."""
        browse.page += 1
        return self._show(browse, request)

    def select(self, browse: Browse, evt: gr.SelectData, request: gr.Request | None = None) -> tuple:
        """Open the entry the visitor clicked: details and the original file to download."""
        index = evt.index if isinstance(evt.index, int) else -1
        browse.selected = browse.ids[index] if 0 <= index < len(browse.ids) else None
        browse.armed = None
        entry = self._entry(browse, request) if browse.selected else None
        return details(entry), self._original(entry), _delete_button(False), browse

    # -- actions on the opened entry -------------------------------------------------------------------------

    def delete(self, browse: Browse, request: gr.Request | None = None) -> tuple:
        """First click: ask to confirm. Second click on the same entry: delete it and its files."""
        entry = self._selected(browse, request)
        if browse.armed != entry.id:
            browse.armed = entry.id
            files = len(entry.images)
            warning = (f"**Click Delete again to delete this entry** and its {files} image file"
                       f"{'s' if files != 1 else ''} for good (files other entries share are kept).\n\n")
            return gr.update(), gr.update(), warning + details(entry), gr.update(), _delete_button(True), browse
        self.store.delete(entry.id, owner=self.owner_of(request))
        browse.selected = None
        return self._show(browse, request, note=f"Deleted the {entry.mode} of {entry.created:%Y-%m-%d %H:%M}.")

    def export(self, browse: Browse, request: gr.Request | None = None) -> str:
        """A ZIP of the entries on the current page (images + manifest.jsonl)."""
        if not browse.ids:
            raise gr.Error("This page is empty: nothing to export.", print_exception=False)
        folder = Path(tempfile.gettempdir()) / "nanobanana-ui" / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.zip"):  # exports are handed to Gradio's cache; ours need not stay
            if time.time() - old.stat().st_mtime > _EXPORT_TTL_S:
                old.unlink(missing_ok=True)
        dest = folder / f"nanobanana-history-{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}.zip"
        return str(self.store.export_zip(browse.ids, dest, owner=self.owner_of(request)))

    def send_to_edit(self, browse: Browse, request: gr.Request | None = None) -> tuple:
        """Put the opened entry's image into the Edit tab and show it."""
        path = self._image_path(self._selected(browse, request))
        return path, gr.Tabs(selected=MAIN_TABS["studio"]), gr.Tabs(selected=TAB_IDS[Mode.EDIT])

    def add_to_compose(self, browse: Browse, compose_images: Sequence | None, model: str,
                       request: gr.Request | None = None) -> tuple:
        """Append the opened entry's image to the Compose tab (within the model's input limit) and show it."""
        path = self._image_path(self._selected(browse, request))
        spec = get_model((model or "").strip() or self.studio.settings.model)
        images = list(gallery_paths(compose_images))
        if len(images) >= spec.max_input_images:
            raise gr.Error(f"{spec.label} takes at most {spec.max_input_images} input images, and Compose has "
                           f"{len(images)}. Remove one first, or pick a model that takes more.", print_exception=False)
        return images + [path], gr.Tabs(selected=MAIN_TABS["studio"]), gr.Tabs(selected=TAB_IDS[Mode.COMPOSE])

    async def rerun(self, browse: Browse, session: Session | None, api_key: str = "",
                    request: gr.Request | None = None,
                    progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
        """The very same request again, through the Studio: answered by the cache when it still holds it."""
        studio = self.runner.studio_for(api_key, request)
        entry = self._selected(browse, request)
        image_request, inputs = await asyncio.to_thread(self.rebuild, entry, session)
        return await self._run(image_request, inputs, session, request, progress, studio)

    async def variation(self, browse: Browse, session: Session | None, api_key: str = "",
                        request: gr.Request | None = None,
                        progress: gr.Progress = gr.Progress()) -> tuple:  # noqa: B008
        """The same request under the next variation number the cache does not hold: a new image."""
        studio = self.runner.studio_for(api_key, request)
        entry = self._selected(browse, request)
        image_request, inputs = await asyncio.to_thread(self.rebuild, entry, session)
        number = await asyncio.to_thread(self.next_variation, image_request, studio)
        return await self._run(image_request.with_variation(number), inputs, session, request, progress, studio)

    async def _run(self, image_request: ImageRequest, inputs: tuple[str, ...], session: Session | None,
                   request: gr.Request | None, progress: gr.Progress, studio: Studio | None = None) -> tuple:
        outputs: Outputs = await self.runner._run(image_request, inputs, 1, session or Session(), progress,
                                                  owner=self.owner_of(request), studio=studio, visitor=request)
        return (*outputs, gr.Tabs(selected=MAIN_TABS["studio"]))

    def next_variation(self, image_request: ImageRequest, studio: Studio | None = None) -> int:
        """The first variation number after this request's that the cache (of this visitor's key) does not hold."""
        number = image_request.options.variation + 1
        while (studio or self.studio).cache.lookup(image_request.with_variation(number).cache_key()) is not None:
            number += 1
        return number

    def rebuild(self, entry: HistoryEntry, session: Session | None = None) -> tuple[ImageRequest, tuple[str, ...]]:
        """The ImageRequest an entry recorded, and its input files; inputs are found by hash among the history's
        images and the visitor's uploads this session, or the request cannot be repeated (said clearly)."""
        inputs = [self._find_input(sha, session) for sha in entry.input_hashes]
        missing = sum(path is None for path in inputs)
        if missing:
            raise gr.Error(
                f"This {entry.mode} used {len(inputs)} input image{'s' if len(inputs) != 1 else ''}, and "
                f"{missing} of them {'is' if missing == 1 else 'are'} no longer available: the history keeps the "
                f"images it made, not the ones you uploaded. Open the original{'s' if missing != 1 else ''} in "
                f"{entry.mode.capitalize()} and run it from there.", print_exception=False)
        paths = tuple(str(path) for path in inputs)
        with studio_errors():
            image_request = self.studio.build_request(Mode(entry.mode), entry.prompt, paths, model=entry.model,
                                                      options=image_options(entry.options))
        return image_request, paths

    def _find_input(self, sha: str, session: Session | None) -> Path | None:
        for mime in _MIMES:  # an earlier output sent on to Edit or Compose is stored under its digest
            path = self.store.files.path_for(sha, mime)
            if path.is_file():
                return path
        uploads = [*session.last_inputs, *(p for e in session.entries for p in e.inputs)] if session else []
        for candidate in dict.fromkeys(uploads):
            try:
                if Path(candidate).is_file() and load_input_path(candidate).sha256 == sha:
                    return Path(candidate)
            except Exception:  # noqa: BLE001 - an unreadable upload is simply not the one we look for
                continue
        return None

    # -- helpers ---------------------------------------------------------------------------------------------

    def _entry(self, browse: Browse, request: gr.Request | None) -> HistoryEntry | None:
        return self.store.get(browse.selected, owner=self.owner_of(request)) if browse.selected else None

    def _selected(self, browse: Browse, request: gr.Request | None) -> HistoryEntry:
        entry = self._entry(browse, request)
        if entry is None:
            raise gr.Error("Open an entry first: click its thumbnail in the History tab.", print_exception=False)
        return entry

    @staticmethod
    def _image_path(entry: HistoryEntry) -> str:
        found = [image.path for image in entry.images if Path(image.path).is_file()]
        if not found:
            raise gr.Error("This entry has no image" + (" (the request failed)." if entry.error else
                                                       " file any more (see `history --verify`)."),
                           print_exception=False)
        return str(found[0])

    @staticmethod
    def _original(entry: HistoryEntry | None) -> str | None:
        if entry is None:
            return None
        found = [image.path for image in entry.images if Path(image.path).is_file()]
        return str(found[0]) if found else None


def _delete_button(armed: bool) -> dict:
    return gr.update(value="Confirm delete" if armed else "Delete", variant="stop" if armed else "secondary")
