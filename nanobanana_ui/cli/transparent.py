"""The command line's --transparent [key] and --transparent-fallback: transparent PNGs through service.transparency."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..domain.errors import StudioError
from ..domain.request import ImageRequest, ImageResult
from ..service.transparency import (
    FALLBACKS,
    METHODS,
    describe_transparent,
    parse_transparent,
    transparent_variations,
)

if TYPE_CHECKING:  # the Studio (and the image stack under it) is imported when a command runs, not for --help
    from ..service.studio import Studio

__all__ = ["add_transparent_options", "describe_transparent", "run_transparent", "spell_out_bare_transparent"]
# (describe_transparent is the service's own, offered here so that cli.main imports one module for the flag)


def add_transparent_options(group: argparse._ArgumentGroup) -> None:
    """--transparent [key] (bare: difference matting, two calls) and --transparent-fallback key|retry."""
    group.add_argument("--transparent", nargs="?", const="difference", choices=METHODS, metavar="key",
                       help="make an RGBA PNG: bare, difference matting (2 calls: on white, then the same picture on "
                            "black); `key`, one call on a chroma-key colour (works on Flash Lite)")
    group.add_argument("--transparent-fallback", choices=FALLBACKS, default="key",
                       help="with difference matting, when the model moved the subject between the two calls: key "
                            "out the white picture (default) or `retry` the second call once")


def spell_out_bare_transparent(argv: list[str]) -> list[str]:
    """`--transparent` not followed by a method becomes `--transparent=difference`, so that
    `generate --transparent "a sticker"` reads the prompt as the prompt, not as the flag's value."""
    out = list(argv)
    for i, token in enumerate(out):
        if token == "--transparent" and (i + 1 == len(out) or out[i + 1] not in METHODS):
            out[i] = "--transparent=difference"
    return out


async def run_transparent(studio: Studio, request: ImageRequest, args: argparse.Namespace,
                          say: Callable[[str], None]) -> list[ImageResult | StudioError]:
    """`--count` transparent images of a built request (errors returned, as run_variations returns them)."""
    transparency = parse_transparent(args.transparent, fallback=args.transparent_fallback)
    assert transparency is not None
    return await transparent_variations(studio, request, transparency, args.count, use_cache=not args.no_cache,
                                        out_dir=args.out, on_event=say)
