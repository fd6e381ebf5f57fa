"""The `refine` command and `history --tree`: continue a conversation by id, and draw a conversation as a tree."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from ..domain.config import load_settings
from ..domain.errors import InputError, StudioError
from ..domain.request import ImageOptions, ImageResult
from ..storage.history import HistoryEntry

__all__ = ["add_refine_parser", "draw_tree", "run_refine", "short_id"]


def add_refine_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser],
                      shared: argparse.ArgumentParser) -> None:
    """Register `refine ID PROMPT` with the shared options."""
    refine = commands.add_parser(
        "refine", parents=[shared], help="continue the conversation of a result: send an instruction after it",
        description="Refine a result by its id (printed by generate/edit/compose --json, listed by history --json "
                    "and history --tree). The whole conversation path is sent again, so input tokens grow with "
                    "each turn. The model defaults to the parent's; aspect ratio and size follow the parent's. "
                    "--count N makes N branches from the same turn.")
    refine.add_argument("id", metavar="ID", help="the id of the result to refine")
    refine.add_argument("prompt", metavar="PROMPT", help='the instruction, e.g. "make it night"')
    refine.add_argument("--image", type=Path, action="append", default=[], metavar="FILE",
                        help="an image to add in this turn (repeat for several)")


async def run_refine(args: argparse.Namespace, show: Callable[[ImageResult], None],
                     report: Callable[[StudioError], None]) -> int:
    """Run `refine`: prepare (all checks, nothing sent), say what the turn costs, send --count branches."""
    from ..service.studio import Studio

    settings = load_settings({"offline": True if args.offline else None,
                              "store": True if getattr(args, "store", False) else None,
                              "retry_timeouts": True if args.retry_timeouts else None})
    options = ImageOptions(aspect_ratio=args.aspect_ratio, size=args.size, temperature=args.temperature,
                           top_p=args.top_p, top_k=args.top_k, seed=args.seed, with_text=not args.image_only)
    if not 1 <= args.count <= 100:
        raise InputError(f"The number of images must be between 1 and 100 (got {args.count}).")
    async with Studio(settings) as studio:
        from .styles import craft_from_args

        crafted = craft_from_args(studio.styles, args.prompt, args)  # --var and --style: the final instruction
        plan = await studio.prepare_refine(parent_id=args.id, instruction=crafted.prompt, images=tuple(args.image),
                                           model=args.model, options=options, craft=crafted.craft, kit=args.kit)
        cost = "" if plan.estimated_cost_usd is None else f", about ${plan.estimated_cost_usd:.4f} each if not cached"
        if studio.offline:
            cost = f", $0 offline{' (Gemini: ' + cost[2:] + ')' if cost else ''}"
        print(f"turn {plan.turn}: sending the whole path ({plan.turn - 1} earlier turn(s), about "
              f"{plan.input_tokens:,} input tokens; input grows with every turn{cost})", file=sys.stderr, flush=True)

        async def one(variation: int) -> ImageResult | StudioError:
            request = plan.request.with_variation(plan.request.options.variation + variation)
            try:
                return await studio.run_refinement(replace(plan, request=request), use_cache=not args.no_cache,
                                                   out_dir=args.out,
                                                   on_event=lambda line: print(line, file=sys.stderr, flush=True))
            except StudioError as error:
                return error

        outcomes = await asyncio.gather(*(one(i) for i in range(args.count)))
    failures = [o for o in outcomes if isinstance(o, StudioError)]
    for outcome in outcomes:
        if isinstance(outcome, StudioError):
            report(outcome)
        else:
            show(outcome)
    return failures[0].exit_code if failures else 0


def short_id(entry_id: str) -> str:
    """The id's random end, as `history --tree` shows it (`refine` takes it when it is unique)."""
    return entry_id.rsplit("-", 1)[-1]


def _label(entry: HistoryEntry, marked: str) -> str:
    words = " ".join(entry.prompt.split())
    words = words if len(words) <= 60 else words[:59] + "…"
    notes = []
    if entry.error:
        notes.append(f"failed: {entry.error[:60]}")
    elif entry.cached:
        notes.append("cached")
    if entry.model_turn is None and entry.ok:
        notes.append("model turn not kept: sent with the bypass signature")
    mark = "  <== " + marked if entry.id == marked else ""
    return f"{entry.turn}  {short_id(entry.id)}  {words}{' (' + '; '.join(notes) + ')' if notes else ''}{mark}"


def draw_tree(tree: Sequence[tuple[int, HistoryEntry]], marked: str) -> list[str]:
    """An ASCII tree of a conversation (depth-first from the root): turn number, short id, instruction."""
    lines = []
    last_at: list[bool] = []  # for each open level: was its entry the last child (no more siblings below)?
    for index, (depth, entry) in enumerate(tree):
        later = [d for d, _ in tree[index + 1:]]
        is_last = next((d for d in later if d <= depth), -1) != depth
        del last_at[max(depth - 1, 0):]
        prefix = "".join("    " if done else "|   " for done in last_at)
        if depth:
            prefix += "`-- " if is_last else "|-- "
            last_at.append(is_last)
        lines.append(prefix + _label(entry, marked))
    return lines
