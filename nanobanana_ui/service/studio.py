"""The Studio service: generate, edit and compose, with the result cache, limits, history and saved outputs.

Every front end (CLI, Gradio UI, HTTP API) goes through this class and nothing else.

The Studio is a chain of capabilities, each in its own room: StudioBase (studio_base.py: settings, backend, cache,
history, limits), MakingStudio (studio_making.py: build, send or answer from the cache, keep), and Studio here:
conversations (refine, branches, paths) and re-runs of what the history holds.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from ..domain.kits import KitUse
from ..domain.region import Region
from ..domain.request import ImageOptions, ImageRequest, ImageResult, Mode
from ..domain.templates import PromptCraft
from ..storage.history import HistoryEntry
from .conversation import ConversationError, Refinement, UnknownResultError, build_refinement
from .kits import kit_from_record
from .regions import with_source_name
from .sending import EventSink
from .studio_base import MAX_COUNT, Backend, ModelLister, TextBackend
from .studio_making import MakingStudio
from .validation import ImageSource, load_inputs

__all__ = ["MAX_COUNT", "Backend", "ModelLister", "Studio", "TextBackend"]


def _entry_options(entry: HistoryEntry) -> ImageOptions:
    """The options a history entry recorded, as ImageOptions (keys this version does not know are left out)."""
    return ImageOptions(**{key: value for key, value in entry.options.items()
                           if key in ImageOptions.__dataclass_fields__})


class Studio(MakingStudio):
    """Generate, edit and compose images; one instance per key (it owns that key's client)."""

    def _unknown(self, entry_id: str) -> ConversationError:
        return UnknownResultError(entry_id, f"No result with id {entry_id!r} in your history. Use an `id` printed "
                                  "by generate/edit/compose --json or listed by `history --json`.")

    def conversation_path(self, entry_id: str, *, owner: str | None = None) -> list[HistoryEntry]:
        """The entries from the conversation's root to this one, root first (blocking: run it off the event loop).

        `owner` given: only that owner's entries (in public mode it is required). An unknown, foreign or broken id
        raises ConversationError (exit code 2), the same message for unknown and foreign.
        """
        if self.settings.public and owner is None:
            raise ConversationError("In public mode only the owner of a conversation can continue it, and this "
                                    "request says nobody's. Nothing was sent.")
        full = self.history.resolve_id(entry_id, owner=owner)
        path = self.history.path_to(full, owner=owner) if full else []
        if not path:
            raise self._unknown(entry_id)
        if path[0].parent is not None:
            raise ConversationError(f"An earlier turn of this conversation (entry {path[0].parent}) was deleted "
                                    "from the history, so the path cannot be sent. Start afresh with `edit` on this "
                                    "image. Nothing was sent.")
        return path

    def branches(self, entry_id: str, *, owner: str | None = None) -> list[HistoryEntry]:
        """The refinements made from this entry (its branches), oldest first (blocking)."""
        parent = self.conversation_path(entry_id, owner=owner)[-1]
        return self.history.children(parent.id, owner=owner)

    def conversation_tree(self, entry_id: str, *, owner: str | None = None) -> list[tuple[int, HistoryEntry]]:
        """Every entry of the conversation this one belongs to, depth first from its root, with each depth (blocking).

        Failed refinements are included (they show what was tried); a deleted ancestor makes the topmost entry
        still held the root.
        """
        if self.settings.public and owner is None:
            raise ConversationError("In public mode a conversation is shown only to its owner.")
        full = self.history.resolve_id(entry_id, owner=owner)
        path = self.history.path_to(full, owner=owner) if full else []
        if not path:
            raise self._unknown(entry_id)
        tree: list[tuple[int, HistoryEntry]] = []
        stack = [(0, path[0])]
        while stack:
            depth, entry = stack.pop()
            tree.append((depth, entry))
            stack += [(depth + 1, child) for child in reversed(self.history.children(entry.id, owner=owner))]
        return tree

    async def prepare_refine(self, *, parent_id: str, instruction: str, images: Sequence[ImageSource] = (),
                             model: str | None = None, options: ImageOptions | None = None,
                             owner: str | None = None, craft: PromptCraft | None = None,
                             kit: str | KitUse | None = None) -> Refinement:
        """Check a refinement and build its request (the whole path), without sending anything.

        The model defaults to the parent's; an aspect ratio or size left unset follows the parent's.
        """
        path = await asyncio.to_thread(self.conversation_path, parent_id, owner=owner)
        parent = path[-1]
        if not parent.ok or not parent.images:
            why = parent.error or "it has no image"
            raise ConversationError(f"Entry {parent.id} has no image to refine ({why}). Refine an entry that made "
                                    "one (history --tree shows the conversation).")
        base = self.build_request(Mode.GENERATE, instruction, (), model=model or parent.model, options=options,
                                  craft=craft, kit=kit, owner=owner)
        # A region edit's refinement goes on in the region: blended into the same original, mask, crop and feather.
        region = None if parent.region is None else await asyncio.to_thread(self.region_of, parent)
        inputs = await asyncio.to_thread(load_inputs, tuple(images))
        return await asyncio.to_thread(build_refinement, path, self.history.read_file, base, inputs, region=region)

    async def refine(self, *, parent_id: str, instruction: str, images: Sequence[ImageSource] = (),
                     model: str | None = None, options: ImageOptions | None = None, owner: str | None = None,
                     use_cache: bool = True, out_dir: Path | None = None,
                     on_event: EventSink | None = None, kit: str | KitUse | None = None) -> ImageResult:
        """Continue the conversation of a result: `instruction` (and optional new images) sent after its whole path.

        The new result is a child of `parent_id` (refining one parent twice makes two branches); its `id`, `parent`
        and `turn` are set, and it goes into the history under `owner`. Only the owner may refine an entry.

        Refining a region edit (masked or extend-to) stays in its region: the conversation about the crop (or canvas)
        goes on, and the new answer is blended into the region edit's ORIGINAL with the same mask, crop box and
        feather (or at the same place on the canvas), so every pixel outside the mask and its feather band (every
        pixel of the original, for an extend) stays byte-identical to the original, turn after turn. The original
        and the mask come from the history; when either is gone, ConversationError says so and nothing is sent.
        """
        plan = await self.prepare_refine(parent_id=parent_id, instruction=instruction, images=images, model=model,
                                         options=options, owner=owner, kit=kit)
        return await self.run_refinement(plan, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner)

    async def run_refinement(self, plan: Refinement, *, use_cache: bool = True, out_dir: Path | None = None,
                             on_event: EventSink | None = None, owner: str | None = None,
                             finish: Callable[[ImageResult], ImageResult] | None = None) -> ImageResult:
        """Send a prepared refinement (from the cache when its whole path was answered before: $0, no call);
        `finish` as for `run`."""
        return await self._run(plan.request, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner,
                               parent=plan.parent, turn=plan.turn, finish=finish)

    async def rerun(self, *, entry_id: str, owner: str | None = None, use_cache: bool = True,
                    out_dir: Path | None = None, on_event: EventSink | None = None) -> ImageResult:
        """Send a history entry's request again, from the history alone (its stored inputs; no session needed).

        A refinement is re-run as a new branch from the same parent. A region edit is re-run exactly (its kept
        original and mask, crop, feather, extend ratio and anchor: the same cache key, so a cache hit costs $0).
        Entries whose inputs the history no longer holds raise ConversationError (the images must be given again).
        """
        path = await asyncio.to_thread(self.conversation_path, entry_id, owner=owner)
        entry = path[-1]
        if entry.parent is not None:
            # A refinement's stored inputs are the images its own turn added (a region's original is the parent's).
            if entry.region is None and len(entry.inputs) < len(entry.input_hashes):
                raise self._inputs_gone(entry)
            return await self.refine(parent_id=entry.parent, instruction=entry.prompt,
                                     images=[file.path for file in entry.inputs], model=entry.model,
                                     options=_entry_options(entry), owner=owner, use_cache=use_cache,
                                     out_dir=out_dir, on_event=on_event, kit=self.entry_kit(entry))
        request = await asyncio.to_thread(self.rebuild_request, entry)
        return await self.run(request, use_cache=use_cache, out_dir=out_dir, on_event=on_event, owner=owner)

    @staticmethod
    def _inputs_gone(entry: HistoryEntry) -> ConversationError:
        return ConversationError(f"Entry {entry.id} is from before the history kept input images: add its "
                                 f"{len(entry.input_hashes)} image(s) again (edit or compose). Nothing was sent.")

    def rebuild_request(self, entry: HistoryEntry, *, images: Sequence[ImageSource] | None = None) -> ImageRequest:
        """The one-shot request a history entry recorded, built again: the same cache key (blocking: disk work).

        `images` replaces the entry's input images (default: those the history kept). A region edit is rebuilt from
        its original (`images[0]`, or the one the history kept) and its kept mask, with its feather, extend ratio
        and anchor, and checked against its record (mask hash, crop box or canvas); an original or mask that is
        gone, or a region that would come out different, raises ConversationError before anything is sent.
        """
        if entry.mode not in {mode.value for mode in Mode}:  # prompt craft (enhance, describe): no image request
            raise ConversationError(f"Entry {entry.id} is a prompt {entry.mode}, not an image request: nothing to "
                                    "re-run. Nothing was sent.")
        options = _entry_options(entry)
        kit = self.entry_kit(entry)  # the exact version the entry used, even after the kit has changed
        if entry.region is None:
            if images is None:
                if len(entry.inputs) < len(entry.input_hashes):
                    raise self._inputs_gone(entry)
                images = [file.path for file in entry.inputs]
            return self.build_request(Mode(entry.mode), entry.prompt, images, model=entry.model, options=options,
                                      craft=PromptCraft.from_dict(entry.craft), kit=kit)
        record = entry.region
        source: ImageSource = images[0] if images else self._kept_source_bytes(entry)
        mask = self._kept_mask_bytes(entry)
        request = self.build_request(Mode.EDIT, entry.prompt, (source,), model=entry.model, options=options,
                                     mask=mask, feather=record.get("feather"), extend_to=record.get("extend_to"),
                                     anchor=record.get("anchor"), craft=PromptCraft.from_dict(entry.craft), kit=kit)
        if request.region is not None and record.get("source_name"):
            request = with_source_name(request, str(record["source_name"]))
        if request.region is None or request.region.describe() != record:
            raise ConversationError(f"Entry {entry.id}'s region edit cannot be repeated exactly (its crop or canvas "
                                    "would come out different, e.g. after a change to the model's aspect ratios): "
                                    "open the original in Edit and paint the region again. Nothing was sent.")
        return request

    def entry_kit(self, entry: HistoryEntry) -> KitUse | None:
        """The kit version a history entry used, from its record and the stored files (None: it used none)."""
        if not entry.kit:
            return None
        try:
            return kit_from_record(entry.kit, self.history.read_file)
        except (FileNotFoundError, KeyError, ValueError):
            raise ConversationError(f"Entry {entry.id} used kit {entry.kit.get('name')}@{entry.kit.get('version')}, "
                                    "whose images the history no longer holds. Nothing was sent.") from None

    def region_of(self, entry: HistoryEntry) -> Region:
        """A region edit entry's region as recorded (crop box or canvas, feather), with its kept original and mask.

        Blocking (disk work). What is gone from the history raises ConversationError, and nothing is sent.
        """
        if entry.region is None:
            raise ConversationError(f"Entry {entry.id} is not a region edit.")
        return Region.from_record(entry.region, source=self._kept_source_bytes(entry),
                                  mask_png=self._kept_mask_bytes(entry))

    def _kept_source_bytes(self, entry: HistoryEntry) -> bytes:
        """The region edit's original, checked against the digest it was recorded with."""
        sha256 = entry.input_hashes[0] if entry.input_hashes else ""
        return self._read_kept(self._kept_original(entry), sha256, "original image", entry)

    def _kept_mask_bytes(self, entry: HistoryEntry) -> bytes | None:
        """The masked edit's mask, checked against its recorded digest; None for an extend-to (it has no mask)."""
        record = entry.region or {}
        if record.get("kind") != "mask":
            return None
        return self._read_kept(self._kept_mask(entry), str(record.get("mask_sha256")), "mask", entry)

    def _kept_original(self, entry: HistoryEntry) -> Path:
        """The region edit's original as the history keeps it (or, for entries from before that, an earlier output
        with the same bytes); ConversationError when it is gone."""
        kept = self.history.kept_input(entry, "source")
        if kept is not None:
            found: Path | None = kept.path
        else:
            found = self.history.find_file(entry.input_hashes[0]) if entry.input_hashes else None
        if found is None:
            raise ConversationError(
                f"The original image of region edit {entry.id} is no longer in the history (`history --verify` "
                "reports lost files), so it cannot be repeated or refined: open the original in Edit and paint the "
                "region again. Nothing was sent.")
        return found

    def _kept_mask(self, entry: HistoryEntry) -> Path:
        """The masked edit's mask as the history keeps it; ConversationError when it is gone."""
        found = self.history.mask_path(entry)
        if found is None:
            raise ConversationError(
                f"The mask of masked edit {entry.id} (sha256 {str((entry.region or {}).get('mask_sha256'))[:12]}) is "
                "no longer in the history (`history --verify` reports lost files), so it cannot be repeated or "
                "refined: open the original in Edit and paint the mask again. Nothing was sent.")
        return found

    @staticmethod
    def _read_kept(path: Path, sha256: str, what: str, entry: HistoryEntry) -> bytes:
        """A kept file's bytes, checked against the digest the entry recorded (an altered file is a lost one)."""
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ConversationError(f"The {what} of region edit {entry.id} no longer holds the bytes it was kept "
                                    "with (`history --verify` reports it): open the original in Edit and paint the "
                                    "region again. Nothing was sent.")
        return data
