"""Emulator answers for text models: a deterministic prompt enhancement or image description, from what was sent.

An enhancement keeps the input's words verbatim and adds labelled sections (quoted text is repeated exactly). A
description states each image's pixel size and dominant colours, read from its pixels; with two images it writes the
instruction that turns the first into the second.
"""

from __future__ import annotations

import re
import secrets
from collections import Counter

from PIL import Image

from ..domain.models import ModelSpec
from ..domain.text_models import text_models
from .answers import usage_metadata
from .pictures import open_image
from .types import JsonObject, RecordedRequest, Reply, error_reply

__all__ = ["dominant_colours", "enhancement", "is_text_model", "text_answer"]

_NAMED = {"black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128), "red": (220, 30, 30),
          "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (240, 220, 40), "orange": (245, 140, 30),
          "purple": (130, 50, 170), "pink": (240, 130, 180), "brown": (120, 75, 40), "cyan": (40, 200, 220)}
_QUOTED = re.compile(r'"([^"]+)"|“([^”]+)”')


def is_text_model(model: str | None) -> bool:
    """True for an id the registry lists as a text model (kind: text)."""
    return any(spec.id == model for spec in text_models())


def _name(rgb: tuple[int, int, int]) -> str:
    return min(_NAMED, key=lambda name: sum((a - b) ** 2 for a, b in zip(_NAMED[name], rgb, strict=True)))


def dominant_colours(image: Image.Image, count: int = 3) -> list[tuple[str, str, float]]:
    """The image's `count` most common colours (coarsely binned): (name, #hex, share of the pixels)."""
    small = image.convert("RGB").resize((48, 48), Image.Resampling.NEAREST)
    data = small.tobytes()
    pixels = [(data[i], data[i + 1], data[i + 2]) for i in range(0, len(data), 3)]
    def bin_of(c: int) -> int:
        return min(255, (c // 32) * 32 + 16)

    binned = Counter((bin_of(r), bin_of(g), bin_of(b)) for r, g, b in pixels)
    total = sum(binned.values())
    return [(_name(rgb), "#{:02x}{:02x}{:02x}".format(*rgb), n / total) for rgb, n in binned.most_common(count)]


def _palette(image: Image.Image) -> str:
    return ", ".join(f"{name} {hexa} ({share:.0%})" for name, hexa, share in dominant_colours(image))


def enhancement(idea: str) -> str:
    """The emulator's rewrite of an idea: its words kept verbatim, then labelled sections."""
    idea = idea.strip()
    quoted = [a or b for a, b in _QUOTED.findall(idea)]
    text = "; ".join(f'"{q}"' for q in quoted) if quoted else "none"
    return (f"{idea}\n\nSubject: {idea}\nComposition: the subject centred, rule of thirds, clean background\n"
            "Lighting: soft natural key light with a gentle rim light\nPalette: harmonious, muted, one accent colour\n"
            f"Lens or medium: 50mm lens, shallow depth of field\nText to render: {text}")


def _description(images: list[Image.Image]) -> str:
    first = images[0]
    if len(images) == 1:
        w, h = first.size
        shape = "square" if w == h else "landscape" if w > h else "portrait"
        return (f"A {w}x{h} {shape} image. Subject: the main shape in the frame. Style: flat digital graphic. "
                f"Composition: {shape} frame. Lighting: even, flat. Palette: {_palette(first)}. Camera: straight "
                "on. Visible text: none.")
    before, after = images[0], images[-1]
    return (f"Change the {before.size[0]}x{before.size[1]} image (palette {_palette(before)}) into a "
            f"{after.size[0]}x{after.size[1]} image with the palette {_palette(after)}; keep the composition.")


def text_answer(rec: RecordedRequest, spec: ModelSpec) -> Reply:
    """The answer of a text model: a description when images were sent, else an enhancement; or a 400."""
    if not rec.prompt.strip() and not rec.images:
        return error_reply(400, "INVALID_ARGUMENT",
                           "* GenerateContentRequest.contents: contents must contain text or an image.")
    images = []
    for data in rec.images:
        image = open_image(data)
        if image is None:
            return error_reply(400, "INVALID_ARGUMENT", "Unable to process input image.")
        images.append(image)
    words = _description(images) if images else enhancement(rec.prompt)
    out = {"TEXT": len(words) // 4 + 1}
    candidate: JsonObject = {"content": {"role": "model", "parts": [{"text": words}]}, "finishReason": "STOP",
                             "index": 0}
    body = {"candidates": [candidate], "usageMetadata": usage_metadata(rec, spec, out), "modelVersion": rec.model,
            "responseId": secrets.token_urlsafe(16)}
    return 200, {}, body
