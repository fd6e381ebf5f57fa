"""Kits as a request carries them: a named, versioned set of reference images, and how they join the request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import InputError
from .inputs import InputImage
from .models import ModelSpec

__all__ = ["MAX_KIT_REFERENCES", "ROLES", "KitReference", "KitUse", "parse_kit_spec", "reference_caps",
           "reference_total"]

ROLES = ("character", "object", "style")
MAX_KIT_REFERENCES = 14  # Gemini 3 takes up to 14 reference images a request
_SPEC = re.compile(r"\s*(?P<name>[^@]+?)\s*(?:@\s*(?P<version>\d+)\s*)?")


def parse_kit_spec(text: str) -> tuple[str, int | None]:
    """`NAME` (newest version: None) or `NAME@3` as (name, version); a malformed one raises InputError."""
    match = _SPEC.fullmatch(text or "")
    if match is None or not match.group("name").strip():
        raise InputError(f"{text!r} is not a kit: write NAME or NAME@VERSION (e.g. storyboard@3).")
    version = match.group("version")
    if version is not None and int(version) < 1:
        raise InputError(f"Kit versions start at 1 (got {text!r}).")
    return match.group("name"), None if version is None else int(version)


def reference_caps(spec: ModelSpec) -> dict[str, int]:
    """The model's per-role reference caps from the registry's `reference_caps` ({"object": 10, ...}); {} when it
    publishes none."""
    return dict(spec.reference_caps or {})


def reference_total(spec: ModelSpec) -> int:
    """How many images in all the model takes in one request: the registry's `max_references`, else (a model built
    without it) `max_input_images`."""
    return spec.max_references if spec.max_references is not None else spec.max_input_images


@dataclass(frozen=True)
class KitReference:
    """One reference of a kit: its name ("Mia"), role, optional line of guidance and the image as it is sent."""

    name: str
    role: str
    image: InputImage
    guidance: str = ""

    def label(self) -> str:
        """The text part sent just before the image: it names the reference and its role."""
        line = f'Reference image "{self.name}" ({self.role})'
        return f"{line}: {self.guidance}" if self.guidance else f"{line}."

    def describe(self) -> dict[str, Any]:
        """name, role, guidance (when set), sha256 and mime_type: JSON-able, no bytes."""
        return {"name": self.name, "role": self.role, **({"guidance": self.guidance} if self.guidance else {}),
                "sha256": self.image.sha256, "mime_type": self.image.mime_type}


@dataclass(frozen=True)
class KitUse:
    """The exact version of a kit a request uses: name, version, its line of text and its references, in order."""

    name: str
    version: int
    references: tuple[KitReference, ...]
    text: str = ""

    @property
    def spec(self) -> str:
        """NAME@VERSION, as provenance and re-runs name it."""
        return f"{self.name}@{self.version}"

    def parts(self) -> list[str | InputImage]:
        """What the kit adds to the user turn, after the user's own inputs: its line of text (when it has one),
        then each reference preceded by the text part that names it and its role."""
        added: list[str | InputImage] = [f'Kit "{self.name}": {self.text}'] if self.text else []
        for reference in self.references:
            added += [reference.label(), reference.image]
        return added

    def cache_part(self) -> dict[str, Any]:
        """What of the kit shapes the answer, for the cache key: the text parts sent and each image's hash (not the
        name or version: the same references under another version are the same request)."""
        return {"text": self.text, "references": [[r.name, r.role, r.guidance, r.image.sha256]
                                                  for r in self.references]}

    def describe(self) -> dict[str, Any]:
        """name, version, text (when set) and references: what the history and the PNG record."""
        return {"name": self.name, "version": self.version, **({"text": self.text} if self.text else {}),
                "references": [reference.describe() for reference in self.references]}

    def role_counts(self) -> dict[str, int]:
        """How many references of each role the kit holds."""
        counts: dict[str, int] = {}
        for reference in self.references:
            counts[reference.role] = counts.get(reference.role, 0) + 1
        return counts
