"""Reading a batch file: .txt, .csv or .jsonl rows into BatchItems, every bad row reported with its line number."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ...domain.errors import InputError
from ...domain.request import ImageOptions, Mode
from ...domain.templates import Template, TemplateError, parse_template
from ..transparency import parse_transparent
from ..validation import unencodable_problem

__all__ = ["COLUMNS", "FORMATS", "BatchFileError", "BatchItem", "parse_batch_text", "read_batch_file"]

FORMATS = ("txt", "csv", "jsonl")
COLUMNS = ("prompt", "mode", "images", "model", "aspect_ratio", "size", "temperature", "top_p", "top_k", "seed",
           "count", "name", "thinking", "show_thoughts", "search", "image_search", "style", "transparent", "kit")
_OPTION_NAMES = {f.name for f in fields(ImageOptions)}
_Row = tuple[int, "dict[str, Any] | str"]  # a row's line number and its raw values, or what is wrong with it


@dataclass(frozen=True)
class BatchItem:
    """One row of a batch file: a prompt, its mode, inputs, model and options, and how many images it asks for."""

    row: int  # 1-based line number in the file (txt/jsonl), or the data row's first line (csv, header = line 1)
    prompt: str
    mode: Mode
    images: tuple[Path, ...]
    model: str | None
    options: ImageOptions  # the row's options over the shared defaults (variation 0)
    count: int = 1
    name: str | None = None
    kit: str | None = None  # NAME or NAME@V: the kit whose references this row sends (None: the batch's --kit)
    style: str | None = None  # a style id (the `style` column), applied when the plan is built
    template: str | None = None  # with --template: the template this row's prompt was filled from
    variables: tuple[tuple[str, str], ...] = ()  # ... and the row's values for its variables
    transparent: str | None = None  # "difference" or "key": a transparent PNG (service.transparency); None: opaque


class BatchFileError(InputError):
    """A batch file with bad rows; str() lists every problem, one per line ("line 7: temperature 'hot' is ...")."""

    def __init__(self, problems: list[str] | tuple[str, ...]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


def read_batch_file(path: Path, *, defaults: ImageOptions = ImageOptions(),  # noqa: B008
                    template: str | None = None, variables: Mapping[str, str] | None = None) -> list[BatchItem]:
    """Read a .txt, .csv or .jsonl batch file; image paths are relative to the file's folder.

    With `template` (--template), each .csv or .jsonl row fills the template's `{name}` variables from its columns
    (`variables` gives defaults); a row that lacks one is refused with its line number, before anything is sent.
    """
    path = Path(path)
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise BatchFileError([f"{path.name}: unknown batch file type {path.suffix or '(none)'!r}; "
                              "use .txt (one prompt per line), .csv or .jsonl"])
    try:
        # Bytes that are not UTF-8 become lone surrogates, refused with their line number like any other bad value.
        text = path.read_text(encoding="utf-8-sig", errors="surrogateescape")
    except FileNotFoundError:
        raise BatchFileError([f"{path} does not exist"]) from None
    except OSError as exc:
        raise BatchFileError([f"{path} cannot be read ({exc.strerror or exc})"]) from None
    return parse_batch_text(text, fmt=fmt, base_dir=path.parent, defaults=defaults, template=template,
                            variables=variables)


def parse_batch_text(text: str, *, fmt: str = "txt", base_dir: Path,
                     defaults: ImageOptions = ImageOptions(),  # noqa: B008
                     template: str | None = None, variables: Mapping[str, str] | None = None) -> list[BatchItem]:
    """Parse pasted or read batch text in one of FORMATS; raises BatchFileError listing every bad row."""
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise BatchFileError([f"unknown batch format {fmt!r}; use one of: {', '.join(FORMATS)}"])
    parsed: Template | None = None
    if template is not None:
        if fmt == "txt":
            raise BatchFileError(["--template fills its variables from columns: use a .csv or .jsonl file"])
        try:
            parsed = parse_template(template, what="--template")
        except TemplateError as error:
            raise BatchFileError([error.message]) from None
    names = parsed.variables if parsed is not None else ()
    body = text.lstrip("\ufeff")
    wanted = names if parsed is not None else None
    rows = _txt_rows(body) if fmt == "txt" else _csv_rows(body, wanted) if fmt == "csv" else _jsonl_rows(body, wanted)
    items, problems = [], []
    for line, fields_or_problem in rows:
        if isinstance(fields_or_problem, str):
            problems.append(f"line {line}: {fields_or_problem}")
            continue
        row_problems: list[str] = []
        raw = fields_or_problem
        if parsed is not None:
            raw = _filled(parsed, raw, dict(variables or {}), row_problems)
        item = _item(line, raw, Path(base_dir), defaults, row_problems)
        problems.extend(f"line {line}: {p}" for p in row_problems)
        if item is not None and not row_problems:
            items.append(item)
    if problems:
        raise BatchFileError(problems)
    if not items:
        raise BatchFileError(["the batch has no prompts"])
    return items


def _filled(template: Template, raw: dict[str, Any], defaults: dict[str, str],
            problems: list[str]) -> dict[str, Any]:
    """A row's columns with the template's variables taken out and its prompt filled in (a missing value refused)."""
    values = {**defaults, **{name: str(raw[name]) for name in template.variables if name in raw}}
    missing = template.missing(values)
    if missing:
        problems.append("no value for " + ", ".join("{" + name + "}" for name in missing) + " (the template needs "
                        + (f"the column{'s' if len(missing) > 1 else ''} " + ", ".join(map(repr, missing))) + ")")
        return {**{key: value for key, value in raw.items() if key not in template.variables},
                "prompt": template.text}  # refused already: not also "no prompt"
    rest = {key: value for key, value in raw.items() if key not in template.variables}
    used = tuple((name, values[name]) for name in template.variables)
    return {**rest, "prompt": template.fill(values), "_template": template.text, "_variables": used}


def _txt_rows(text: str) -> Iterator[_Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            yield number, {"prompt": stripped}


def _csv_rows(text: str, variables: tuple[str, ...] | None = None) -> Iterator[_Row]:
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        yield 1, f"unreadable CSV header ({exc})"
        return
    names = [h.strip() if h.strip() in (variables or ()) else h.strip().lower() for h in header]
    unknown = [n for n in names if n and n not in COLUMNS and n not in (variables or ())]
    if variables is not None and unknown:  # with --template: every column is a known one or a variable
        yield 1, (f"column(s) {', '.join(map(repr, unknown))} are neither template variables "
                  f"({', '.join(variables) or 'none'}) nor known columns ({', '.join(COLUMNS[1:])})")
        return
    if variables is None and ("prompt" not in names or unknown):
        problem = f"unknown column(s) {', '.join(map(repr, unknown))}" if unknown else "no 'prompt' column"
        yield 1, f"{problem}; the header must name a 'prompt' column and may add: {', '.join(COLUMNS[1:])}"
        return
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield start, f"unreadable CSV ({exc})"
            return
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(names):
            yield start, f"{len(cells)} cells but the header has {len(names)} columns (quote cells that hold commas)"
            continue
        yield start, {n: c for n, c in zip(names, cells, strict=False) if n and c.strip()}


def _jsonl_rows(text: str, variables: tuple[str, ...] | None = None) -> Iterator[_Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, f"not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        if not isinstance(value, dict):
            yield number, "each line must be a JSON object like {\"prompt\": \"...\"}"
            continue
        unknown = [k for k in value if k not in COLUMNS and k not in (variables or ())]
        if unknown:
            yield number, f"unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(COLUMNS)}"
            continue
        yield number, {k: v for k, v in value.items() if v is not None and v != ""}


def _number(kind: type[int] | type[float]) -> Callable[[Any], int | float]:
    def convert(value: Any) -> int | float:
        if isinstance(value, bool):
            raise ValueError
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        if kind is int and isinstance(value, str):
            return int(value.strip())
        return kind(value.strip() if isinstance(value, str) else value)

    return convert


_TRUE, _FALSE = ("true", "yes", "1", "on", "y"), ("false", "no", "0", "off", "n")


def _flag(value: Any) -> bool:
    """A yes/no cell: JSON true/false, or in CSV true/false, yes/no, 1/0, on/off."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else ""
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError


def _level(value: Any) -> str:
    """A thinking level cell, checked against the model later (validation names the models that have it)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    return value.strip().lower()


def _transparent(value: Any) -> str | None:
    """A transparent cell: empty/false (opaque), true or "difference" (two calls), or "key" (one call)."""
    try:
        chosen = parse_transparent(value)
    except InputError:
        raise ValueError from None
    return None if chosen is None else chosen.method


# Each converted column: its converter, and what the value must be ("temperature 'hot' is not a number").
_CONVERTERS: dict[str, tuple[Callable[[Any], Any], str]] = {
    "temperature": (_number(float), "a number"), "top_p": (_number(float), "a number"),
    "top_k": (_number(int), "a whole number"), "seed": (_number(int), "a whole number"),
    "count": (_number(int), "a whole number"), "thinking": (_level, "a thinking level (minimal or high)"),
    "show_thoughts": (_flag, "true or false"), "search": (_flag, "true or false"),
    "image_search": (_flag, "true or false"),
    "transparent": (_transparent, "empty, true (difference matting) or key")}


def _item(line: int, raw: dict[str, Any], base_dir: Path, defaults: ImageOptions,
          problems: list[str]) -> BatchItem | None:
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("_template", "_variables"):
            continue
        if key in _CONVERTERS:
            convert, wanted = _CONVERTERS[key]
            try:
                values[key] = convert(value)
            except (TypeError, ValueError):
                problems.append(f"{key} {value!r} is not {wanted}")
        elif key == "images":
            values[key] = _images(value, base_dir, problems)
        elif not isinstance(value, str):
            problems.append(f"{key} must be text, not {json.dumps(value)}")
        elif (problem := unencodable_problem(key, value)) is not None:
            problems.append(problem)
        else:
            values[key] = value.strip() if key != "prompt" else value
    prompt = values.get("prompt")
    if (not isinstance(prompt, str) or not prompt.strip()) and not any(p.startswith("prompt ") for p in problems):
        problems.append("no prompt")  # unless the prompt was refused already
    images = values.get("images") or ()
    mode_text = str(values.get("mode") or "").lower()
    if mode_text:
        try:
            mode = Mode(mode_text)
        except ValueError:
            problems.append(f"mode {mode_text!r} is not one of: generate, edit, compose")
            mode = Mode.GENERATE
    else:  # inferred from the inputs: none → generate, one → edit, several → compose
        mode = Mode.GENERATE if not images else Mode.EDIT if len(images) == 1 else Mode.COMPOSE
    count = values.get("count", 1)
    if isinstance(count, int) and count < 1:
        problems.append(f"count must be at least 1 (got {count})")
    if problems:
        return None
    overrides = {k: v for k, v in values.items() if k in _OPTION_NAMES}
    return BatchItem(row=line, prompt=str(prompt), mode=mode, images=tuple(images), model=values.get("model") or None,
                     options=replace(defaults, variation=0, **overrides), count=int(count),
                     name=values.get("name") or None, kit=values.get("kit") or None,
                     style=values.get("style") or None,
                     template=raw.get("_template"), variables=tuple(raw.get("_variables") or ()),
                     transparent=values.get("transparent"))


def _images(value: object, base_dir: Path, problems: list[str]) -> tuple[Path, ...]:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(";")]
    elif isinstance(value, list) and all(isinstance(p, str) for p in value):
        parts = [p.strip() for p in value]
    else:
        problems.append("images must be paths: ';'-separated in CSV, a list of strings in JSONL")
        return ()
    unencodable = [problem for p in parts if (problem := unencodable_problem("an image path", p)) is not None]
    if unencodable:
        problems.extend(unencodable)
        return ()
    return tuple(base_dir / Path(p).expanduser() for p in parts if p)
