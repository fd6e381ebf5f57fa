"""The `styles` command, and the --style and --var options every request command shares."""

from __future__ import annotations

import argparse
import json
import sys

from ..domain.config import load_settings
from ..domain.styles import CraftedPrompt, StyleBook, craft_prompt, load_styles
from ..domain.templates import TemplateError, parse_var

__all__ = ["add_craft_options", "add_styles_parser", "craft_from_args", "run_styles_command", "variables_from_args",
           "warn_style_problems"]


def add_craft_options(group: argparse._ArgumentGroup) -> None:
    """--style ID and --var NAME=VALUE (repeatable)."""
    group.add_argument("--style", metavar="ID", help="wrap the prompt in a style's template (see `styles`)")
    group.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                       help="a value for the prompt's {NAME} (repeat for several; write {{ }} for literal braces)")


def variables_from_args(args: argparse.Namespace) -> dict[str, str]:
    """The --var values by name; a bad name, a missing '=' or a name given twice is refused."""
    values: dict[str, str] = {}
    for item in getattr(args, "var", None) or ():
        name, value = parse_var(item)
        if name in values and values[name] != value:
            raise TemplateError(f"--var {name} is given twice ({values[name]!r} and {value!r}): give it once.")
        values[name] = value
    return values


def warn_style_problems(book: StyleBook) -> None:
    """One stderr line per problem of the user's styles.json (the shipped styles are used regardless)."""
    for problem in book.problems:
        print(f"warning: {problem}", file=sys.stderr, flush=True)


def craft_from_args(book: StyleBook, prompt: str, args: argparse.Namespace) -> CraftedPrompt:
    """The final prompt for a command line: its {variables} filled from --var, wrapped in --style's template."""
    style = getattr(args, "style", None)
    if style:
        warn_style_problems(book)
    return craft_prompt(book, prompt, style=style, variables=variables_from_args(args))


def add_styles_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `styles [--json] [--search WORDS]`."""
    styles = commands.add_parser("styles", help="list the prompt styles (shipped and your own)",
                                 description="The style library: shipped styles merged with NANOBANANA_HOME/"
                                             "styles.json (your own, by id). Use one with --style ID.")
    styles.add_argument("--json", action="store_true", help="one JSON object per style: id, name, category, "
                                                            "source, template, description (model, aspect_ratio)")
    styles.add_argument("--search", metavar="WORDS", default="", help="only styles matching every word")


def run_styles_command(args: argparse.Namespace) -> int:
    """List the styles; problems of the user's file go to stderr (exit 0: the shipped styles still work)."""
    book = load_styles(load_settings().home)
    warn_style_problems(book)
    for style in book.search(args.search):
        if args.json:
            print(json.dumps(style.to_dict(), ensure_ascii=False), flush=True)
            continue
        suggests = ", ".join(filter(None, [style.model, style.aspect_ratio]))
        extra = f" [{suggests}]" if suggests else ""
        mark = " (yours)" if style.source == "user" else ""
        print(f"{style.id:28} {style.category:15} {style.name}{mark}{extra}: {style.description}")
    return 0
