"""The `models` command: the registry with statuses, `--json` for scripts, `--estimate N` (the cost calculator) and
`--available [--refresh]` (what this key can use now, from its model list)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from ..domain.config import load_settings
from ..domain.errors import InputError
from ..domain.models import ModelSpec, all_models, find_model, known_models

__all__ = ["ALL_SIZES", "SEED_FLAT_USD", "add_models_parser", "estimate_rows", "model_record", "run_models_command"]

SEED_FLAT_USD = 0.039  # the seed article's figure: every image priced like a 2.5 Flash 1K image
ALL_SIZES = ("512", "1K", "2K", "4K")
MAX_ESTIMATE = 10**9
DASH = "—"


def add_models_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register `models [--json] [--estimate N [--size S]]`."""
    models = commands.add_parser("models", help="list the image models, their status and prices; --estimate N "
                                                "compares what N images cost on each")
    models.add_argument("--json", action="store_true", help="one JSON object per model on stdout")
    models.add_argument("--estimate", type=int, metavar="N", help="what N images cost on each model, interactive "
                        f"and in Gemini Batch Mode (50%%), next to the flat ${SEED_FLAT_USD} per image")
    models.add_argument("--available", action="store_true", help="what this key can use now, from its model "
                        "list (kept a day): each model with its status and source (registry, user, discovered); "
                        "without a key, the offline emulator's models")
    models.add_argument("--refresh", action="store_true", help="with --available: list this key's models again now, "
                        "ignoring the day-old copy")
    models.add_argument("--size", metavar="S", help="with --estimate: only this size (512, 1K, 2K or 4K); "
                        "default: every size each model makes")


def model_record(spec: ModelSpec, default: str) -> dict[str, Any]:
    """The `models --json` object for one model."""
    return {
        "id": spec.id, "label": spec.label, "status": spec.status, "sizes": list(spec.sizes),
        "aspect_ratios": list(spec.aspect_ratios), "max_input_images": spec.max_input_images,
        "price_per_image": spec.price_table(), "default": spec.id == default, "since": spec.since,
        "shutdown": spec.shutdown, "replaced_by": spec.replaced_by, "multi_image": spec.multi_image,
        "multi_turn": spec.multi_turn, "note": spec.note, "source": spec.source,
        "deprecated_since": spec.deprecated_since, "max_references": spec.max_references,
        "reference_caps": spec.reference_caps, "thinking_levels": list(spec.thinking_levels),
    }


def estimate_rows(count: int, size: str | None = None) -> list[dict[str, Any]]:
    """One row per model and size: USD for `count` images interactive, in batch, and at the flat seed figure.

    With `size`, one row per model; a model that lacks that size has None prices and `missing` set.
    """
    rows = []
    for spec in known_models():
        for each in ((size,) if size else spec.sizes):
            price = spec.image_price(each) if each in spec.sizes else None
            batch = spec.batch_price(each) if each in spec.sizes else None
            rows.append({
                "id": spec.id, "label": spec.short_label, "status": spec.status, "size": each, "count": count,
                "per_image": None if price is None else round(price, 6),
                "interactive": None if price is None else round(price * count, 2),
                "batch": None if batch is None else round(batch * count, 2),
                "flat": round(SEED_FLAT_USD * count, 2), "missing": each not in spec.sizes,
                "sizes": list(spec.sizes),
            })
    return rows


def _money(value: float | None) -> str:
    return DASH if value is None else f"${value:,.2f}"


def _print_estimate(count: int, size: str | None) -> None:
    rows = estimate_rows(count, size)
    flat = SEED_FLAT_USD * count
    what = f"at {size}" if size else "at each size the model makes"
    print(f"{count:,} image{'s' if count != 1 else ''} per model, {what}: interactive, and Gemini Batch Mode "
          f"(50% off), against the seed article's flat ${SEED_FLAT_USD} per image (${flat:,.2f}).")
    print("Output images only: input images, text and Search are extra.")
    header = (f"{'model':<29} {'label':<18} {'status':<10} {'size':>4} {'per image':>10} {'interactive':>12} "
              f"{'batch':>11} {'flat $0.039':>12} {'interactive vs flat':>20}")
    print(header)
    print("-" * len(header))
    for row in rows:
        if row["missing"]:
            print(f"{row['id']:<29} {row['label']:<18} {row['status']:<10} {row['size']:>4} {DASH:>10} {DASH:>12} "
                  f"{DASH:>11} {_money(row['flat']):>12}   no {row['size']} (sizes: {', '.join(row['sizes'])})")
            continue
        if row["interactive"] is None:
            versus = "price unknown"

        else:
            diff = row["interactive"] - row["flat"]
            versus = f"{'+' if diff >= 0 else '-'}${abs(diff):,.2f} ({row['interactive'] / row['flat']:.2f}x)"
        per_image = "$" + format(row["per_image"], ".4f")
        print(f"{row['id']:<29} {row['label']:<18} {row['status']:<10} {row['size']:>4} {per_image:>10} "
              f"{_money(row['interactive']):>12} {_money(row['batch']):>11} {_money(row['flat']):>12} "
              f"{versus:>20}")


def _print_list(default: str) -> None:
    for spec in all_models():
        if not spec.usable:
            print(f"{spec.id:32} {spec.lifecycle()}")
            continue
        price = spec.image_price(spec.default_size)
        cost = f"${price:.3f} per {spec.default_size} image" if price is not None else "price unknown"
        print(f"{spec.id:32} {spec.label}: {spec.lifecycle()}; sizes {'/'.join(spec.sizes)}, up to "
              f"{spec.max_input_images} input image{'s' if spec.max_input_images != 1 else ''}, {cost}"
              + ("" if spec.multi_turn else "; not for multi-image or multi-turn editing")
              + ("; from your models.json" if spec.source == "user" else ""))
    chosen = find_model(default)
    known = "" if chosen is not None and chosen.usable else (
        " (not in the registry)" if chosen is None else f" ({chosen.lifecycle()})")
    print(f"default: {default}{known}")


LISTING_WAIT_S = 30.0  # how long `models --available` waits for the key's model list


def _run_available(as_json: bool, *, refresh: bool) -> int:
    """`models --available`: the models this key can use now, from its listing; 1 when it could not be read."""
    from ..service.studio import Studio  # imported here so `models` alone stays instant

    settings = load_settings()
    studio = Studio(settings)
    try:
        studio.connect()
        discovery = studio.discovery
        if refresh:
            discovery.refresh()
        else:
            discovery.start()
        discovery.wait(LISTING_WAIT_S)
        availability = studio.available_models()
    finally:
        asyncio.run(studio.aclose())
    if studio.offline:
        print("No API key: these are the offline emulator's models (set GEMINI_API_KEY to see your key's).",
              file=sys.stderr)
    for note in availability.notes:
        print(f"note: {note}", file=sys.stderr)
    for spec in availability.models:
        if as_json:
            print(json.dumps(model_record(spec, settings.model), ensure_ascii=False), flush=True)
            continue
        price = spec.image_price(spec.default_size)
        cost = f"${price:.4f} per {spec.default_size} image" if price is not None else "price unknown"
        print(f"{spec.id:32} {spec.label}: {spec.lifecycle()}; {spec.source}; {cost}")
    if not as_json and availability.fetched_at is not None:
        age = time.time() - availability.fetched_at
        print(f"listed {age / 60:.0f} min ago" if age >= 60 else "listed just now", file=sys.stderr)
    return 0 if availability.listed else 1


def run_models_command(args: argparse.Namespace) -> int:
    """Run `models`: the list, `--json` objects, or the `--estimate` table; returns the exit code."""
    if args.refresh and not args.available:
        raise InputError("--refresh goes with --available, e.g. `models --available --refresh`.")
    if args.available:
        if args.estimate is not None or args.size is not None:
            raise InputError("--available lists models; --estimate and --size go without it.")
        return _run_available(args.json, refresh=args.refresh)
    size = args.size
    if size is not None and args.estimate is None:
        raise InputError("--size goes with --estimate, e.g. `models --estimate 100 --size 2K`.")
    if size is not None and size not in ALL_SIZES:
        hint = " (with an uppercase K)" if size.upper() in ALL_SIZES else ""
        raise InputError(f"--size must be one of {', '.join(ALL_SIZES)}{hint}; got {size!r}.")
    if args.estimate is not None and not 1 <= args.estimate <= MAX_ESTIMATE:
        raise InputError(f"--estimate takes a number of images from 1 to {MAX_ESTIMATE:,} (got {args.estimate}).")
    default = load_settings().model
    if args.json:
        for spec in known_models():
            record = model_record(spec, default)
            if args.estimate is not None:
                record["estimate"] = [{k: row[k] for k in ("size", "count", "interactive", "batch", "flat")}
                                      for row in estimate_rows(args.estimate, size) if row["id"] == spec.id]
            print(json.dumps(record, ensure_ascii=False), flush=True)
        return 0
    if args.estimate is not None:
        _print_estimate(args.estimate, size)
        return 0
    _print_list(default)
    return 0
