"""The `prompt` command: `prompt enhance TEXT` and `prompt describe IMAGE [IMAGE --for-edit]`, through a text model."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from ..domain.config import load_settings
from ..domain.costs import cost_text
from ..domain.text_request import TextResult

__all__ = ["add_prompt_parser", "run_prompt_command"]


def add_prompt_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `prompt enhance` and `prompt describe`."""
    prompt = commands.add_parser("prompt", help="write prompts with a text model: enhance an idea, describe an image",
                                 description="Prompt craft through a Gemini text model (NANOBANANA_TEXT_MODEL, "
                                             "default gemini-3.1-flash-lite): the same rate limit, retries, cache, "
                                             "cost meter and history as images.")
    actions = prompt.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", help="the text model (default: NANOBANANA_TEXT_MODEL or the registry's)")
    common.add_argument("--json", action="store_true", help="one JSON object: prompt, model, cost_usd, ...")
    common.add_argument("--no-cache", action="store_true", help="always call the model (the answer is still cached)")
    common.add_argument("--offline", action="store_true", help="use the embedded emulator, even with a key")
    enhance = actions.add_parser("enhance", parents=[common], help="rewrite a short idea into a full image prompt")
    enhance.add_argument("text", metavar="TEXT", help='the idea, e.g. "a fox in snow"')
    enhance.add_argument("--style", metavar="ID", help="write it in this style (see `styles`)")
    describe = actions.add_parser("describe", parents=[common], help="write the prompt that would remake an image")
    describe.add_argument("images", type=Path, nargs="+", metavar="IMAGE", help="the image (two with --for-edit)")
    describe.add_argument("--for-edit", action="store_true",
                          help="BEFORE AFTER: write the instruction that turns the first image into the second")


def _show(result: TextResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_record(), ensure_ascii=False), flush=True)
        return
    print(result.prompt, flush=True)
    print(f"({result.request.model}, {cost_text(result.cost_usd, cached=result.cached)}, "
          f"{result.elapsed_s:.1f} s, id {result.id})", file=sys.stderr, flush=True)


async def _main(args: argparse.Namespace) -> int:
    from ..service.prompt_craft import PromptCrafter
    from ..service.studio import Studio

    settings = load_settings({"offline": True if args.offline else None})
    async with Studio(settings) as studio:
        studio.connect()
        crafter = PromptCrafter(studio)

        def echo(line: str) -> None:  # rate-limit waits and retries
            print(line, file=sys.stderr, flush=True)

        if args.action == "enhance":
            if args.style:
                for problem in studio.styles.problems:
                    print(f"warning: {problem}", file=sys.stderr, flush=True)
            result = await crafter.enhance(args.text, style=args.style, model=args.model,
                                           use_cache=not args.no_cache, on_event=echo)
        else:
            result = await crafter.describe(tuple(args.images), for_edit=args.for_edit, model=args.model,
                                            use_cache=not args.no_cache, on_event=echo)
    _show(result, args.json)
    return 0


def run_prompt_command(args: argparse.Namespace) -> int:
    """Run `prompt enhance|describe` and return its exit code (errors are reported by the caller)."""
    return asyncio.run(_main(args))
