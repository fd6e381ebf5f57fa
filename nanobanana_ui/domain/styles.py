"""The style library as data: the shipped styles.json merged with the user's NANOBANANA_HOME/styles.json.

A style is a prompt template holding `{prompt}`, with a name, a category, a one-line description and optionally a
suggested model and aspect ratio. A user file with an error never stops the app: its problems are reported (with the
line or the style id) and the shipped styles, and the user's good entries, are still used.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from .templates import PromptCraft, Template, TemplateError, parse_template

__all__ = ["SHIPPED", "STYLES_FILE", "USER", "CraftedPrompt", "Style", "StyleBook", "UnknownStyleError",
           "craft_prompt", "load_styles", "save_user_style", "shipped_styles"]

STYLES_FILE = "styles.json"
SHIPPED, USER = "shipped", "user"
_STYLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*\Z")


class UnknownStyleError(TemplateError):
    """A style id that is neither shipped nor in the user's styles.json."""


@dataclass(frozen=True)
class Style:
    """One style: a template with `{prompt}`, its names, and what it suggests."""

    id: str
    name: str
    category: str
    template: str
    description: str = ""
    model: str | None = None
    aspect_ratio: str | None = None
    source: str = SHIPPED  # "shipped" or "user"

    def apply(self, prompt: str) -> str:
        """The style's template with `{prompt}` replaced by the prompt verbatim (`{{`/`}}` become braces)."""
        return _template(self).fill({"prompt": prompt})

    def to_dict(self) -> dict[str, Any]:
        """The style as `styles --json` prints it (and styles.json holds it, with `source`)."""
        data = {"id": self.id, "name": self.name, "category": self.category, "source": self.source,
                "template": self.template, "description": self.description}
        if self.model:
            data["model"] = self.model
        if self.aspect_ratio:
            data["aspect_ratio"] = self.aspect_ratio
        return data


@lru_cache(maxsize=512)
def _parsed(text: str) -> Template:
    return parse_template(text, what="the style's template")


def _template(style: Style) -> Template:
    return _parsed(style.template)


def _style(entry: Any, source: str) -> Style:
    """A Style from one JSON entry; ValueError (or TemplateError) says what is wrong."""
    if not isinstance(entry, Mapping):
        raise ValueError("each style must be a JSON object")
    style_id = entry.get("id")
    if not isinstance(style_id, str) or not style_id.strip():
        raise ValueError("a style has no id")
    for key in ("name", "category", "template"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise ValueError(f"style {style_id!r} has no {key}")
    for key in ("description", "model", "aspect_ratio"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise ValueError(f"style {style_id!r}: {key} must be text")
    if not _STYLE_ID.match(style_id):
        raise ValueError(f"style id {style_id!r} must be letters, digits, - and _ (no spaces)")
    template = parse_template(entry["template"], what=f"style {style_id!r}'s template")
    if template.variables != ("prompt",):
        others = [name for name in template.variables if name != "prompt"]
        raise ValueError(f"style {style_id!r}'s template must hold {{prompt}}" +
                         (f" and no other variable (it has {', '.join('{' + n + '}' for n in others)})" if others
                          else ""))
    return Style(id=style_id, name=entry["name"].strip(), category=entry["category"].strip(),
                 template=entry["template"], description=(entry.get("description") or "").strip(),
                 model=entry.get("model") or None, aspect_ratio=entry.get("aspect_ratio") or None, source=source)


def _entries(data: Any) -> list[Any]:
    if isinstance(data, dict):
        data = data.get("styles")
    if not isinstance(data, list):
        raise ValueError('the file must hold {"styles": [...]} or a list of styles')
    return data


@lru_cache(maxsize=1)
def shipped_styles() -> tuple[Style, ...]:
    """The shipped library, in file order (an error in it is a bug: it raises)."""
    data = json.loads(resources.files(__package__).joinpath(STYLES_FILE).read_text("utf-8"))
    return tuple(_style(entry, SHIPPED) for entry in _entries(data))


@dataclass(frozen=True)
class StyleBook:
    """The styles in use: shipped ones merged with the user's (by id), and any problems of the user's file."""

    styles: tuple[Style, ...]
    problems: tuple[str, ...] = ()
    user_file: Path | None = None

    def find(self, style_id: str) -> Style | None:
        """The style with this id, or None."""
        wanted = style_id.strip()
        return next((style for style in self.styles if style.id == wanted), None)

    def get(self, style_id: str) -> Style:
        """The style with this id; UnknownStyleError names it, and says where the ids are listed."""
        style = self.find(style_id)
        if style is None:
            broken = f" ({self.problems[0]})" if self.problems else ""
            raise UnknownStyleError(f"Unknown style {style_id.strip()!r}: `styles` lists the ids{broken}.")
        return style

    def search(self, text: str = "") -> tuple[Style, ...]:
        """The styles whose id, name, category or description holds every word of `text` (any case)."""
        words = text.lower().split()
        return tuple(style for style in self.styles
                     if all(word in f"{style.id} {style.name} {style.category} {style.description}".lower()
                            for word in words))


def load_styles(home: Path | None) -> StyleBook:
    """The shipped styles merged with NANOBANANA_HOME/styles.json (a user style replaces a shipped one of its id).

    A user file that cannot be read or parsed is ignored whole; a bad entry is skipped. Each problem is one line
    naming the file and the line or style id; the app goes on with what is good.
    """
    merged = {style.id: style for style in shipped_styles()}
    if home is None:
        return StyleBook(tuple(merged.values()))
    path = Path(home) / STYLES_FILE
    problems: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return StyleBook(tuple(merged.values()), user_file=path)
    except (OSError, UnicodeDecodeError) as exc:
        return StyleBook(tuple(merged.values()), (f"{path}: cannot be read ({exc}); using the shipped styles",), path)
    try:
        entries = _entries(json.loads(text))
    except json.JSONDecodeError as exc:
        return StyleBook(tuple(merged.values()),
                         (f"{path}: line {exc.lineno}: {exc.msg}; using the shipped styles",), path)
    except ValueError as exc:
        return StyleBook(tuple(merged.values()), (f"{path}: {exc}; using the shipped styles",), path)
    for number, entry in enumerate(entries, start=1):
        try:
            style = _style(entry, USER)
        except (ValueError, TemplateError) as exc:
            problems.append(f"{path}: style {number}: {getattr(exc, 'message', exc)}; skipped")
            continue
        merged[style.id] = style
    return StyleBook(tuple(merged.values()), tuple(problems), path)


def save_user_style(home: Path, *, style_id: str, name: str, category: str, template: str, description: str = "",
                    model: str | None = None, aspect_ratio: str | None = None) -> Style:
    """Add (or replace, by id) a style in NANOBANANA_HOME/styles.json, written atomically; the new Style.

    The template must hold `{prompt}` (and no other variable); a bad one raises TemplateError and nothing is written.
    """
    if not _STYLE_ID.match(style_id):
        raise TemplateError(f"The style id {style_id!r} must be letters, digits, - and _ (e.g. 'my-look').")
    entry = {"id": style_id, "name": name or style_id, "category": category or "user", "template": template,
             "description": description, **({"model": model} if model else {}),
             **({"aspect_ratio": aspect_ratio} if aspect_ratio else {})}
    try:
        style = _style(entry, USER)
    except ValueError as exc:
        raise TemplateError(str(exc)) from None
    path = Path(home) / STYLES_FILE
    existing: list[Any] = []
    if path.is_file():
        try:
            existing = _entries(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, OSError) as exc:
            raise TemplateError(f"{path} has an error ({exc}); fix it before saving a style to it.") from None
    kept = [e for e in existing if not (isinstance(e, Mapping) and e.get("id") == style_id)]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".styles-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"styles": [*kept, entry]}, out, indent=2, ensure_ascii=False)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return style


@dataclass(frozen=True)
class CraftedPrompt:
    """The prompt to send, and how it was made (None: the prompt as typed, nothing applied)."""

    prompt: str
    craft: PromptCraft | None = None
    style: Style | None = None


def craft_prompt(book: StyleBook, prompt: str, *, style: str | None = None,
                 variables: Mapping[str, str] | None = None) -> CraftedPrompt:
    """Fill the prompt's `{name}` variables, then wrap it in the style's template: the final prompt to send.

    `{{` and `}}` are sent as single braces. Refused (TemplateError, naming what is wrong): an unclosed brace, a bad
    variable name, a variable without a value, a value for a variable the prompt lacks, an unknown style id.
    """
    values = dict(variables or {})
    parsed = parse_template(prompt)
    unused = [name for name in values if name not in parsed.variables]
    if unused:
        names = ", ".join("{" + name + "}" for name in unused)
        raise TemplateError(f"--var gives {names}, but the prompt has no such variable"
                            + (f" (it has {', '.join('{' + n + '}' for n in parsed.variables)})."
                               if parsed.variables else "."))
    filled = parsed.fill(values)
    chosen = book.get(style) if style and style.strip() else None
    if chosen is None and filled == prompt:
        return CraftedPrompt(prompt)
    craft = PromptCraft(style=chosen.id if chosen else None, template=prompt if filled != prompt else None,
                        variables=tuple((name, values[name]) for name in parsed.variables))
    return CraftedPrompt(chosen.apply(filled) if chosen else filled, craft, chosen)
