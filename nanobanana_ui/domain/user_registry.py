"""The user's own model registry: a models.json merged over the shipped one, model by model and field by field.

The file is NANOBANANA_MODELS, else NANOBANANA_HOME/models.json (read from the environment). It has the shipped
file's shape: {"default": ID, "models": [{"id": ..., fields...}]}. A model the registry has gets only the fields the
file gives (a price, a status); a new id is a new model, with conservative values for what it leaves out. A field
that is wrong is ignored with a warning that names the file, the model and the field; invalid JSON leaves the
shipped registry as it is. Nothing here raises for a bad file: the app always starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["REGISTRY", "USER", "merge_user_registry", "user_registry_path"]

REGISTRY, USER = "registry", "user"  # where a model's entry comes from (ModelSpec.source; "discovered" elsewhere)
ORIGIN = "_origin"  # the key a merged entry carries its origin under
_TEN = ["1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"]
# A model only the user's file names gets the most conservative values for what the file leaves out.
_NEW_MODEL: dict[str, Any] = {
    "status": "ga", "sizes": ["1K"], "aspect_ratios": _TEN, "pixel_table": "gemini-2.5", "max_input_images": 3,
    "input_image_tokens": 258, "output_image_tokens": {}, "price_per_million": None, "multi_image": True,
    "multi_turn": True,
}
_MERGED_DICTS = ("price_per_million", "output_image_tokens", "price_per_image")  # merged key by key


def user_registry_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the user's models.json is: NANOBANANA_MODELS, else NANOBANANA_HOME/models.json (~/.nanobanana)."""
    env = os.environ if env is None else env
    if env.get("NANOBANANA_MODELS", "").strip():
        return Path(env["NANOBANANA_MODELS"].strip()).expanduser()
    home = env.get("NANOBANANA_HOME", "").strip()
    return (Path(home).expanduser() if home else Path.home() / ".nanobanana") / "models.json"


def _number(value: object, *, whole: bool = False) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
        return f"{value!r} is not a {'whole number' if whole else 'number'}"
    return f"{value!r} is negative" if value < 0 else None


def _strings(value: object) -> str | None:
    ok = isinstance(value, list) and all(isinstance(item, str) and item for item in value)
    return None if ok else f"{value!r} is not a list of strings"


def _text(value: object) -> str | None:
    return None if value is None or isinstance(value, str) else f"{value!r} is not text"


def _flag(value: object) -> str | None:
    return None if isinstance(value, bool) else f"{value!r} is not true or false"


def _optional_number(value: object) -> str | None:
    return None if value is None else _number(value)


def _optional_count(value: object) -> str | None:
    return None if value is None else _number(value, whole=True)


def _number_map(keys: tuple[str, ...] | None, whole: bool = False) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        if value is None and not whole:
            return None
        if not isinstance(value, dict):
            return f"{value!r} is not an object"
        for key, item in value.items():
            if keys is not None and key not in keys:
                return f"{key!r} is not one of {', '.join(keys)}"
            problem = _number(item, whole=whole)
            if problem:
                return f"{key}: {problem}"
        return None
    return check


def _checks(statuses: tuple[str, ...]) -> dict[str, Callable[[object], str | None]]:
    def status(value: object) -> str | None:
        return None if value in statuses else f"{value!r} is not a status (use {', '.join(statuses)})"

    return {
        "label": lambda v: None if isinstance(v, str) and v.strip() else f"{v!r} is not a name",
        "status": status, "since": _text, "deprecated_since": _text, "shutdown": _text, "replaced_by": _text,
        "note": _text, "source": _text, "pixel_table": _text,
        "sizes": _strings, "aspect_ratios": _strings, "aliases": _strings, "thinking_levels": _strings,
        "max_input_images": lambda v: _number(v, whole=True), "max_references": _optional_count,
        "input_image_tokens": lambda v: _number(v, whole=True),
        "reference_caps": lambda v: None if v is None else _number_map(("object", "character", "style"), True)(v),
        "output_image_tokens": _number_map(None, whole=True),
        "price_per_million": _number_map(("input", "output_text", "output_image")),
        "price_per_image": _number_map(None),
        "default_temperature": _optional_number, "default_top_p": _optional_number,
        "search_price_per_1000": _optional_number,
        "multi_image": _flag, "multi_turn": _flag, "thoughts": _flag, "search": _flag, "image_search": _flag,
    }


def _merged_field(name: str, old: object, new: object) -> object:
    if name in _MERGED_DICTS and isinstance(old, dict) and isinstance(new, dict):
        return {**old, **new}
    return new


def merge_user_registry(shipped: dict[str, Any], path: Path, statuses: tuple[str, ...],
                        tables: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The shipped registry data with the user's file at `path` merged over it, and the warnings the file earned.

    Each entry of the result carries ORIGIN: "user" when the file added or changed it, else "registry". A missing
    file is no warning; an unreadable or invalid one leaves the shipped data as it is.
    """
    entries = [{**entry, ORIGIN: REGISTRY} for entry in shipped["models"]]
    merged = {**shipped, "models": entries}
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return merged, ()
    except (OSError, UnicodeDecodeError) as exc:
        return merged, (f"{path}: cannot be read ({exc}); using the shipped model registry only.",)
    try:
        data = json.loads(text)
    except ValueError as exc:
        return merged, (f"{path}: not valid JSON ({exc}); using the shipped model registry only.",)
    if not isinstance(data, dict) or not isinstance(data.get("models", []), list):
        return merged, (f'{path}: expected an object with a "models" list, like the shipped models.json; '
                        "using the shipped model registry only.",)
    warnings: list[str] = []
    checks = _checks(statuses)
    by_id = {entry["id"]: entry for entry in entries}
    seen: set[str] = set()
    for number, raw in enumerate(data.get("models", []), start=1):
        model_id = raw.get("id") if isinstance(raw, dict) else None
        if not isinstance(model_id, str) or not model_id.strip():
            warnings.append(f'{path}: model #{number} has no "id" field; that entry is ignored.')
            continue
        if model_id in seen:
            warnings.append(f"{path}: model {model_id!r}, field 'id': listed twice; the second entry is ignored.")
            continue
        seen.add(model_id)
        known = model_id in by_id
        entry = by_id[model_id] if known else {"id": model_id, "label": model_id, **_NEW_MODEL}
        for name, value in raw.items():
            if name == "id" or name.startswith("_"):
                continue
            check = checks.get(name)
            problem = f"is not a registry field (fields: {', '.join(sorted(checks))})" if check is None else \
                check(value)
            if problem is None and name == "pixel_table" and value is not None and value not in tables:
                problem = f"{value!r} names no pixel table (tables: {', '.join(sorted(tables))})"
            if problem:
                warnings.append(f"{path}: model {model_id!r}, field {name!r}: {problem}; that field is ignored.")
                continue
            entry[name] = _merged_field(name, entry.get(name), value)
        entry[ORIGIN] = USER
        if not known:
            entries.append(entry)
            by_id[model_id] = entry
    if "default" in data:
        default = data["default"]
        target = by_id.get(default) if isinstance(default, str) else None
        if target is None or target.get("status") == "shut down":
            why = "names no model in the registry" if target is None else "is shut down"
            warnings.append(f"{path}: field 'default': {default!r} {why}; the default stays {shipped['default']}.")
        else:
            merged["default"] = default
    return merged, tuple(warnings)
