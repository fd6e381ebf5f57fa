"""Prompt templates: `{name}` variables, `{{`/`}}` for literal braces, and what a crafted prompt records.

A template's text is split once into literal pieces and variables; filling it substitutes values verbatim (a value's
own braces are never read again). Every problem is an InputError that names the offending variable or position.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InputError

__all__ = ["PromptCraft", "Template", "TemplateError", "check_variable_name", "parse_template", "parse_var"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_LITERAL_HINT = "write {{ and }} for literal braces"


class TemplateError(InputError):
    """A template or variable that cannot be used: an unclosed brace, a bad name, a missing value."""


def check_variable_name(name: str, *, what: str = "variable") -> str:
    """`name` if it is a usable variable name (letters, digits, _; not starting with a digit), else TemplateError."""
    if not name:
        raise TemplateError(f"An empty {what} name: use letters, digits and _ ({_LITERAL_HINT}).")
    if any(ch.isspace() for ch in name):
        raise TemplateError(f"The {what} name {name!r} has spaces: use letters, digits and _ "
                            f"(e.g. {'_'.join(name.split())!r}).")
    if not _NAME.match(name):
        raise TemplateError(f"{name!r} is not a {what} name: use letters, digits and _, not starting with a digit "
                            f"({_LITERAL_HINT}).")
    return name


@dataclass(frozen=True)
class Template:
    """A parsed template: its text and its pieces, each a literal text or a variable name."""

    text: str
    pieces: tuple[tuple[bool, str], ...]  # (is_variable, literal text or variable name)

    @property
    def variables(self) -> tuple[str, ...]:
        """The variable names, each once, in order of first use."""
        return tuple(dict.fromkeys(name for is_var, name in self.pieces if is_var))

    def missing(self, values: Mapping[str, str]) -> tuple[str, ...]:
        """The variables that `values` lacks (or gives as empty text)."""
        return tuple(name for name in self.variables if not str(values.get(name) or "").strip())

    def fill(self, values: Mapping[str, str]) -> str:
        """The text with each variable replaced by its value verbatim; TemplateError names any missing one."""
        missing = self.missing(values)
        if missing:
            names = ", ".join("{" + name + "}" for name in missing)
            raise TemplateError(f"No value for {names}: give each variable a value (--var NAME=VALUE), or "
                                f"{_LITERAL_HINT}.")
        return "".join(str(values[text]) if is_var else text for is_var, text in self.pieces)


def parse_template(text: str, *, what: str = "the prompt") -> Template:
    """Split `text` into literals and `{name}` variables; an unclosed or lone brace, or a bad name, is refused."""
    pieces: list[tuple[bool, str]] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "{}" and text.startswith(ch * 2, i):
            literal.append(ch)
            i += 2
            continue
        if ch == "}":
            raise TemplateError(f"A lone }} at character {i + 1} of {what}: {_LITERAL_HINT}.")
        if ch == "{":
            end = text.find("}", i + 1)
            nested = text.find("{", i + 1)
            if end < 0 or 0 <= nested < end:
                raise TemplateError(f"An unclosed {{ at character {i + 1} of {what}: close it with }}, or "
                                    f"{_LITERAL_HINT}.")
            name = text[i + 1:end]
            check_variable_name(name)
            if literal:
                pieces.append((False, "".join(literal)))
                literal = []
            pieces.append((True, name))
            i = end + 1
            continue
        literal.append(ch)
        i += 1
    if literal:
        pieces.append((False, "".join(literal)))
    return Template(text, tuple(pieces))


def parse_var(item: str) -> tuple[str, str]:
    """One `NAME=VALUE` (the --var flag): the name checked, the value verbatim."""
    name, equals, value = item.partition("=")
    if not equals:
        raise TemplateError(f"--var {item!r} has no '=': write --var NAME=VALUE.")
    return check_variable_name(name.strip()), value


@dataclass(frozen=True)
class PromptCraft:
    """How a prompt was made: the style applied, and the template and variables it was filled from."""

    style: str | None = None
    template: str | None = None  # the prompt as typed, before variables and style
    variables: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """{"style", "template", "variables"}: only what is set (as history, --json and PNG metadata record it)."""
        data: dict[str, Any] = {}
        if self.style:
            data["style"] = self.style
        if self.template is not None:
            data["template"] = self.template
        if self.variables:
            data["variables"] = dict(self.variables)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> PromptCraft | None:
        """The inverse of to_dict() (None for nothing recorded)."""
        if not data:
            return None
        variables: Iterable[tuple[str, Any]] = (data.get("variables") or {}).items()
        return cls(style=data.get("style") or None, template=data.get("template"),
                   variables=tuple((str(k), str(v)) for k, v in variables))
