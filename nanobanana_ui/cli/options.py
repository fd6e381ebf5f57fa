"""Options that several commands read the same way from their parsed flags."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["output_options"]


def output_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Vertex-only output options of a command line, as ImageOptions fields (absent flags: absent)."""
    return {"output_mime_type": f"image/{args.output_format}" if args.output_format else None,
            "output_quality": args.jpeg_quality,
            "person_generation": args.person_generation.upper() if args.person_generation else None}
