"""The command line: generate, edit, compose, refine and batch through the Studio service, with --json for scripts.

Exit codes: 0 success, 1 unexpected error, 2 bad input or usage, 3 key missing/invalid/denied, 4 rate limit or
quota, 5 no image (prompt blocked, image withheld, text-only reply), 6 service or network failure, 130 interrupted,
141 the output's reader went away (a closed pipe).
`history --verify` exits 0 when the history is sound (after `--repair`: once repaired), 1 when problems remain.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from ..domain.config import load_settings
from ..domain.costs import cost_text
from ..domain.errors import InputError, StudioError
from ..domain.models import registry_warnings
from ..domain.request import ImageOptions, ImageResult, Mode, image_records
from ..service.regions import ANCHORS, DEFAULT_FEATHER
from ..service.validation import THINKING_LEVELS, unencodable_at
from .batch import add_batch_parser, run_batch_command
from .kits import add_kits_parser, run_kits_command
from .models import add_models_parser, run_models_command
from .options import output_options
from .prompt import add_prompt_parser, run_prompt_command
from .refine import add_refine_parser, draw_tree, run_refine
from .styles import add_craft_options, add_styles_parser, craft_from_args, run_styles_command
from .transparent import (
    add_transparent_options,
    describe_transparent,
    run_transparent,
    spell_out_bare_transparent,
)

__all__ = ["SIGPIPE_EXIT", "build_parser", "main"]

SIGPIPE_EXIT = 141  # what a shell reports for a tool stopped by a closed pipe (128 + SIGPIPE)


def _shared_options(*, batch: bool = False) -> argparse.ArgumentParser:
    shared = argparse.ArgumentParser(add_help=False)
    group = shared.add_argument_group("defaults for every row (a row's own columns win)" if batch
                                      else "options for every request")
    group.add_argument("--model", help="model id (default: NANOBANANA_MODEL or gemini-3.1-flash-image); "
                       "see `models`")
    group.add_argument("--aspect-ratio", help="e.g. 1:1, 16:9, 9:16 (default: the model's; edit keeps the input's)")
    group.add_argument("--size", help="image size: 512, 1K, 2K or 4K, as the model offers")
    group.add_argument("--temperature", type=float, help="0 to 2")
    group.add_argument("--top-p", type=float, help="0 to 1")
    group.add_argument("--top-k", type=int, help="1 or more")
    group.add_argument("--seed", type=int, help="best effort: the same seed need not give the same image")
    if not batch:  # a batch file has a count column instead
        group.add_argument("--count", type=int, default=1, help="how many images, as parallel calls (1 to 100)")
    group.add_argument("--image-only", action="store_true", help="ask for the image without the model's text")
    add_gemini3_options(group)
    add_craft_options(group)
    group.add_argument("--out", type=Path, help="folder for the run's images and manifest (default: "
                       "NANOBANANA_HOME/batches/<file name>)" if batch else
                       "folder for the images (default: NANOBANANA_HOME/outputs)")
    group.add_argument("--no-cache", action="store_true", help="always call the API (the answer is still cached)")
    group.add_argument("--offline", action="store_true", help="use the embedded emulator, even with a key")
    group.add_argument("--json", action="store_true", help="one JSON object per image on stdout")
    group.add_argument("--output-format", choices=("png", "jpeg"), help="Vertex AI only: the image format "
                       "returned (default png)")
    group.add_argument("--jpeg-quality", type=int, metavar="0-100", help="Vertex AI only, with --output-format jpeg")
    group.add_argument("--person-generation", choices=("allow_all", "allow_adult", "allow_none"),
                       help="Vertex AI only: whether people may be drawn")
    group.add_argument("--store", action="store_true", help="let Google store these requests (the Gemini API's "
                       "`store`; NANOBANANA_STORE=1). Off by default: requests are sent with store=false")
    group.add_argument("--keep-metadata", action="store_true", help="send input images with their GPS, camera "
                       "serial and owner metadata (default: removed; also NANOBANANA_KEEP_METADATA=1)")
    group.add_argument("--kit", metavar="NAME[@V]", help="send this kit's reference images after your own (see "
                       "`kits`; NAME: its newest version, NAME@3: version 3)" + (" unless a row's kit column says "
                       "otherwise" if batch else ""))
    group.add_argument("--retry-timeouts", action="store_true", help="retry a request that timed out after it was "
                       "sent (it may have been billed, so it may be paid twice; also NANOBANANA_RETRY_TIMEOUTS=1)")
    if not batch:  # a batch file has a `transparent` column instead
        add_transparent_options(group)
    return shared


def add_gemini3_options(group: argparse._ArgumentGroup) -> None:
    """--thinking, --show-thoughts, --search and --image-search (refused on models that lack them)."""
    group.add_argument("--thinking", choices=THINKING_LEVELS, help="thinking level (2.1: minimal, medium, high; "
                       "3.1 Flash: minimal, high)")
    group.add_argument("--show-thoughts", action="store_true",
                       help="also get the interim thought images (free; written to OUT/thoughts/, never cached)")
    group.add_argument("--search", action="store_true", help="ground the image in Google Search (Gemini 3; "
                       "each search is charged, see docs/cli.md)")
    group.add_argument("--image-search", action="store_true",
                       help="Google image search as well as web search (Gemini 3.1 Flash Image; implies --search)")


def options_from_args(args: argparse.Namespace) -> ImageOptions:
    """The ImageOptions the shared options ask for."""
    return ImageOptions(aspect_ratio=args.aspect_ratio, size=args.size, temperature=args.temperature,
                        top_p=args.top_p, top_k=args.top_k, seed=args.seed, with_text=not args.image_only,
                        thinking=args.thinking, show_thoughts=args.show_thoughts, search=args.search,
                        image_search=args.image_search, **output_options(args))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `python -m nanobanana_ui`."""
    parser = argparse.ArgumentParser(prog="nanobanana", description="Nano Banana Studio: Gemini image models.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = _shared_options()
    gen = commands.add_parser("generate", parents=[shared], help="make an image from a text prompt")
    gen.add_argument("prompt")
    edit = commands.add_parser("edit", parents=[shared], help="change an image with an instruction")
    edit.add_argument("image", type=Path)
    edit.add_argument("prompt")
    region = edit.add_argument_group("region edit (the rest of the image stays byte-identical)")
    region.add_argument("--mask", type=Path, metavar="MASK.png",
                        help="change only the white area of this image (same size as IMAGE; thresholded at 50%%)")
    region.add_argument("--feather", type=int, metavar="PX",
                        help=f"with --mask: blend over this many pixels outside the mask (default {DEFAULT_FEATHER})")
    region.add_argument("--extend-to", metavar="RATIO", help="extend the canvas to this aspect ratio, e.g. 16:9")
    region.add_argument("--anchor", choices=ANCHORS,
                        help="with --extend-to: where the original sits on the new canvas (default center)")
    compose = commands.add_parser("compose", parents=[shared], help="combine several images with an instruction")
    compose.add_argument("images", type=Path, nargs="+", metavar="IMAGE")
    compose.add_argument("--prompt", required=True)
    add_refine_parser(commands, shared)
    add_batch_parser(commands, _shared_options(batch=True))
    add_models_parser(commands)
    add_kits_parser(commands)
    add_styles_parser(commands)
    add_prompt_parser(commands)
    history = commands.add_parser("history", help="list past requests, newest first (or check them: --verify)")
    history.add_argument("--search", metavar="TEXT", help="only entries whose prompt has these words")
    history.add_argument("--limit", type=int, default=20, help="how many entries (default 20)")
    history.add_argument("--model", help="only this model's entries")
    history.add_argument("--mode", choices=[*(mode.value for mode in Mode), "refine"],
                         help="only generate, edit or compose (first turns), or refine (refinements)")
    history.add_argument("--json", action="store_true", help="one JSON object per entry on stdout")
    history.add_argument("--verify", action="store_true", help="check every entry's files; exit 1 on problems")
    history.add_argument("--repair", action="store_true", help="with --verify: fix what it finds")
    history.add_argument("--tree", metavar="ID", help="draw the conversation this id belongs to: turn numbers, "
                                                      "short ids (refine takes them) and instructions")
    return parser


def _print_result(result: ImageResult, as_json: bool, thought_paths: tuple[Path, ...] | None = None) -> None:
    for record in image_records(result.to_record()):
        if thought_paths is not None:  # only with --show-thoughts: written apart from the outputs
            record["thought_paths"] = [str(path) for path in thought_paths]
        if as_json:
            print(json.dumps(record, ensure_ascii=False), flush=True)
            continue
        cost = cost_text(record["cost_usd"], cached=result.cached)
        print(f"{record['path']}  ({record['width']}x{record['height']}, {cost}, {result.elapsed_s:.1f} s)")
        if result.parent:  # a refinement: where it sits in its conversation
            print(f"  id {result.id}, turn {result.turn}, refines {result.parent}")
    if as_json:
        return
    if result.transparent:
        print(f"  {describe_transparent(result.transparent)}")
    if result.text:
        print(f"  model said: {result.text}")
    for source in result.sources:
        print(f"  source: {source.title} <{source.uri}>")
    if thought_paths is not None:
        print(f"  thought images: {' '.join(map(str, thought_paths)) or 'none'}")


async def _run(args: argparse.Namespace) -> int:
    from ..service.studio import Studio  # imported here so `--help` stays instant

    settings = load_settings(_overrides(args))
    studio = Studio(settings)
    try:
        studio.connect()  # a Vertex setup problem is one line now, not one per image
        options = options_from_args(args)
        mode = Mode(args.command)
        images = {Mode.GENERATE: (), Mode.EDIT: (getattr(args, "image", None),),
                  Mode.COMPOSE: tuple(getattr(args, "images", ()))}[mode]
        region = {name: getattr(args, name, None) for name in ("mask", "feather", "extend_to", "anchor")}
        crafted = craft_from_args(studio.styles, args.prompt, args)  # --var and --style: the final prompt
        request = studio.build_request(mode, crafted.prompt, images, model=args.model, options=options, **region,
                                       craft=crafted.craft, kit=args.kit)
        if request.note:  # e.g. a shut-down preview id sent as its GA replacement
            print(f"note: {request.note}", file=sys.stderr, flush=True)
        said: set[str] = set()

        def tell(line: str) -> None:
            said.add(line)
            print(line, file=sys.stderr, flush=True)

        outcomes = await run_transparent(studio, request, args, tell) if args.transparent else \
            await studio.run_variations(request, args.count, use_cache=not args.no_cache, out_dir=args.out,
                                        on_event=tell)
        failures = [o for o in outcomes if isinstance(o, StudioError)]
        # A note that came with the answer (a model that answered 404 and was sent to its successor, an id Google
        # rerouted), unless it was said already while waiting.
        said.add(f"note: {request.note}")
        later = {part for o in outcomes if isinstance(o, ImageResult) and o.request.note
                 for part in o.request.note.split(" · ")}
        for note in sorted(part for part in later if f"note: {part}" not in said):
            print(f"note: {note}", file=sys.stderr, flush=True)
        for outcome in outcomes:
            if isinstance(outcome, StudioError):
                _report(outcome, as_json=args.json, prompt=args.prompt)
                continue
            # Thought images go to OUT/thoughts/, apart from the outputs (a cache hit has none to write).
            thoughts = studio.save_thoughts(outcome, out_dir=args.out) if args.show_thoughts else None
            _print_result(outcome, args.json, thoughts)
    finally:
        await studio.aclose()
    if studio.offline and not args.json and not failures:
        print("(offline: these are placeholder images from the built-in emulator; set GEMINI_API_KEY for real ones)",
              file=sys.stderr)
    return failures[0].exit_code if failures else 0


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """The settings a command line's flags override (flags left off change nothing)."""
    return {"offline": True if args.offline else None, "keep_metadata": True if args.keep_metadata else None,
            "store": True if getattr(args, "store", False) else None,
            "retry_timeouts": True if args.retry_timeouts else None}


def _report(error: StudioError, *, as_json: bool = False, prompt: str | None = None) -> None:
    print(f"error: {error.message}", file=sys.stderr)
    if as_json:
        record = {"error": error.message, "error_type": type(error).__name__, "prompt": prompt,
                  "exit_code": error.exit_code}
        line = json.dumps(record, ensure_ascii=False)
        if unencodable_at(line) is not None:  # the refused prompt itself is not text: escape it (still valid JSON)
            line = json.dumps(record)
        print(line, flush=True)




def _history(args: argparse.Namespace) -> int:
    from ..storage.history import HistoryStore

    if args.tree is not None:
        return _tree(args.tree)
    if args.limit < 1:
        raise InputError(f"--limit must be at least 1 (got {args.limit}).")
    store = HistoryStore(load_settings().home)
    try:
        if args.verify or args.repair:
            problems = store.verify()
            for line in problems:
                print(line)
            if args.repair and problems:
                for line in store.repair():
                    print(f"repaired: {line}")
                problems = store.verify()
            print(f"{len(problems)} problem(s)" if problems else "history ok", file=sys.stderr)
            return 1 if problems else 0
        for entry in store.page(limit=args.limit, search=args.search, model=args.model, mode=args.mode):
            if args.json:
                print(json.dumps(entry.to_record(), ensure_ascii=False), flush=True)
                continue
            when = entry.created.astimezone().strftime("%Y-%m-%d %H:%M:%S")
            cost = "cached" if entry.cached else ("$?" if entry.cost_usd is None else f"${entry.cost_usd:.4f}")
            prompt = " ".join(entry.prompt.split())
            prompt = prompt if len(prompt) <= 40 else prompt[:39] + "…"
            outcome = " ".join(str(image.path) for image in entry.images) if entry.ok else f"error: {entry.error}"
            print(f"{when}  {entry.mode:8} {entry.model:28} {cost:>8}  {prompt:40}  {outcome}")
    finally:
        store.close()
    return 0


def _tree(entry_id: str) -> int:
    from ..service.studio import Studio

    studio = Studio(load_settings())
    try:
        tree = studio.conversation_tree(entry_id)
    finally:
        asyncio.run(studio.aclose())
    wanted = entry_id.strip()
    marked = next((e.id for _, e in tree if e.id == wanted), None) or next(
        (e.id for _, e in tree if e.id.startswith(wanted) or e.id.endswith(wanted)), wanted)
    turns = max(entry.turn for _, entry in tree)
    print(f"conversation {tree[0][1].id}: {len(tree)} entries, {turns} turn(s) deep")
    for line in draw_tree(tree, marked):
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code and never lets a traceback reach the user."""
    args = build_parser().parse_args(spell_out_bare_transparent(sys.argv[1:] if argv is None else argv))
    for warning in registry_warnings():  # a broken user models.json: the shipped registry is used, and we say so
        print(f"warning: {warning}", file=sys.stderr)
    try:
        if args.command == "models":
            return run_models_command(args)
        if args.command == "history":
            return _history(args)
        if args.command == "batch":
            return run_batch_command(args)
        if args.command == "kits":
            return run_kits_command(args)
        if args.command == "styles":
            return run_styles_command(args)
        if args.command == "prompt":
            return run_prompt_command(args)
        if args.command == "refine":
            if args.transparent:  # the shared options offer it; a refinement is one more turn, always opaque
                raise InputError("--transparent applies to generate, edit and compose: a refinement continues the "
                                 "conversation as one opaque turn. Refine first, then `edit` the result with "
                                 "--transparent. Nothing was sent.")
            return asyncio.run(run_refine(args, lambda result: _print_result(result, args.json),
                                          lambda error: _report(error, as_json=args.json, prompt=args.prompt)))
        return asyncio.run(_run(args))
    except StudioError as error:
        _report(error, as_json=getattr(args, "json", False), prompt=getattr(args, "prompt", None))
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... --json | head`): what was made is saved; stop quietly, as a shell tool would, and
        # point stdout at /dev/null so Python's flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return SIGPIPE_EXIT
    except Exception as error:  # noqa: BLE001 - the promise is: never a traceback
        print(f"error: unexpected {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
