"""The Refine tab's data: a result's conversation as one visitor may see it (`RefineView`), and the next turn's price.

`RefineView` reads a conversation from the history for one visitor (their owner id) and prices the next turn; `Turns`
is what the tab shows for a selected turn on a line; `Place` is where the visitor is in it (kept in gr.State).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import gradio as gr

from ..domain.errors import StudioError
from ..service.conversation import UnknownResultError
from ..service.studio import Studio
from ..storage.history import HistoryEntry
from .actions import refuse

__all__ = ["ESTIMATE_NOTE", "NOTHING_OPEN", "Place", "RefineView", "Turns", "branch_note", "caption", "first_image",
           "refine_label"]

ESTIMATE_NOTE = ("Each refinement sends the whole path again: input tokens (and the cost of a turn) grow with "
                 "every turn.")
NOTHING_OPEN = "Open a result first: its id (History, `--json`), or the Refine button under a Studio result."
PLACEHOLDER = "…"  # priced in place of an instruction not typed yet (a few characters: nothing in the estimate)


@dataclass
class Place:
    """Where the visitor is in a conversation (kept in gr.State): the line shown and the turn selected on it."""

    line: tuple[str, ...] = ()  # entry ids, root first, down to the line's tip
    selected: str | None = None  # the selected turn (on the line)
    strip: tuple[str, ...] = ()  # the path strip's turns (the line's entries that have an image), in order
    branches: tuple[str, ...] = ()  # the selected turn's children that have an image, as their strip shows them

    def at(self, index: int | None, ids: Sequence[str]) -> str | None:
        """The id at a strip's clicked index (None when out of range)."""
        return ids[index] if isinstance(index, int) and 0 <= index < len(ids) else None


class Turns(NamedTuple):
    """What the tab shows for a selected turn on a line."""

    entry: HistoryEntry  # the selected turn
    line: list[HistoryEntry]  # root first, down to the line's tip (the selected turn is on it)
    branches: list[HistoryEntry]  # the selected turn's children that have an image, oldest first

    @property
    def position(self) -> int:
        """The selected turn's place on the line."""
        return [e.id for e in self.line].index(self.entry.id)

    @property
    def parent(self) -> HistoryEntry | None:
        """The selected turn's parent (None for a root)."""
        return self.line[self.position - 1] if self.position > 0 else None

    @property
    def image(self) -> str | None:
        """The selected turn's first image file (the stored original)."""
        return first_image(self.entry)

    @property
    def strip(self) -> list[HistoryEntry]:
        """The line's turns that have an image (a failed refinement has none), as the path strip shows them."""
        return [e for e in self.line if e.images]

    @property
    def strip_position(self) -> int | None:
        """The selected turn's place on the path strip (None when it has no image)."""
        ids = [e.id for e in self.strip]
        return ids.index(self.entry.id) if self.entry.id in ids else None

    @property
    def path(self) -> list[tuple[str, str]]:
        """The path strip: (image file, "turn N: instruction") for each turn of the line that has an image."""
        return [(image, caption(e)) for e in self.line if (image := first_image(e))]

    @property
    def before_after(self) -> tuple[str, str] | None:
        """The slider's default: the parent's image and the selected one (None for a root)."""
        before, after = first_image(self.parent) if self.parent else None, self.image
        return (before, after) if before and after else None

    @property
    def summary(self) -> str:
        """The turn count, the branches, and what the path to the selected turn cost."""
        cost = sum(e.cost_usd or 0.0 for e in self.line[:self.position + 1])
        tip = self.line[-1]
        count = len(self.branches)
        where = (f"**Turn {self.entry.turn}** of {tip.turn} on this line" if tip.id != self.entry.id
                 else f"**Turn {self.entry.turn}**")
        forks = f" · {count} branch{'es' if count != 1 else ''} from here" if count else ""
        return f"{where}{forks} · the path to it cost ${cost:.4f} · id `{self.entry.id}`"


def first_image(entry: HistoryEntry | None) -> str | None:
    """The entry's first image file, as stored in the history (None when it has none)."""
    return str(entry.images[0].path) if entry is not None and entry.images else None


def caption(entry: HistoryEntry) -> str:
    """A turn's label: its number and instruction (shortened)."""
    prompt = entry.prompt if len(entry.prompt) <= 60 else entry.prompt[:59] + "…"
    return f"turn {entry.turn}: {prompt}"


def refine_label(turns: Turns) -> str:
    """The send button says what it will do: continue a leaf, or start a new branch beside existing ones."""
    return f"Branch from turn {turns.entry.turn}" if turns.branches else f"Refine turn {turns.entry.turn}"


def branch_note(turns: Turns) -> str:
    """Why the send button starts a branch (or that it continues the line)."""
    count = len(turns.branches)
    if not count:
        return "Refining continues this line from the selected turn."
    return (f"Turn {turns.entry.turn} already has {count} branch{'es' if count != 1 else ''} (below): sending "
            "starts a **new branch** from it; the others stay as they are.")


class RefineView:
    """Conversations from the history, as one visitor may see them (`owner_of` their request)."""

    def __init__(self, studio: Studio, owner_of: Callable[[gr.Request | None], str | None]) -> None:
        self.studio = studio
        self.owner_of = owner_of

    def _path(self, entry_id: str | None, request: gr.Request | None) -> list[HistoryEntry]:
        if not (entry_id or "").strip():
            raise refuse(NOTHING_OPEN)
        try:
            return self.studio.conversation_path((entry_id or "").strip(), owner=self.owner_of(request))
        except UnknownResultError as error:  # the service's words name CLI commands; the page names its own places
            raise refuse(f"No result with id {error.entry_id!r} in your history. Open a picture in the History tab "
                         "and press Refine, or press Refine under a result in the Studio tab.") from None
        except StudioError as error:
            raise refuse(error.message) from None

    def turns(self, entry_id: str, request: gr.Request | None = None, *, line: Sequence[str] = ()) -> Turns:
        """The selected turn, the line it is shown on, its branches (blocking); refused for an unknown (or
        another's) id. `line`: the ids shown so far; kept when the selected turn is on it, else the path to it."""
        path = self._path(entry_id, request)
        entry = path[-1]
        shown = path
        if entry.id in line and line[-1] != entry.id:  # a turn of the line shown: keep the line (down to its tip)
            tip = self._path(line[-1], request)
            shown = tip if entry.id in [e.id for e in tip] else path
        try:
            children = self.studio.branches(entry.id, owner=self.owner_of(request))
        except StudioError as error:
            raise refuse(error.message) from None
        return Turns(entry, shown, [c for c in children if c.images])  # a failed try is no branch to show

    def image_of(self, entry_id: str | None, request: gr.Request | None = None) -> str | None:
        """One turn's image (for the slider), owner-checked (blocking)."""
        return first_image(self._path(entry_id, request)[-1]) if entry_id else None

    async def estimate(self, entry_id: str, instruction: str, request: gr.Request | None = None) -> str:
        """What the next turn from this one will send and cost, before sending; why not, when it cannot be sent."""
        try:
            plan = await self.studio.prepare_refine(parent_id=entry_id, instruction=(instruction or "").strip()
                                                    or PLACEHOLDER, owner=self.owner_of(request))
        except StudioError as error:
            return f"The next turn cannot be sent: {error.message}"
        cost = "an unknown price" if plan.estimated_cost_usd is None else f"about ${plan.estimated_cost_usd:.4f}"
        return (f"Next: turn {plan.turn} sends the {plan.turn - 1} earlier turn{'s' if plan.turn != 2 else ''} "
                f"again, about {plan.input_tokens:,} input tokens: {cost}. {ESTIMATE_NOTE}")
