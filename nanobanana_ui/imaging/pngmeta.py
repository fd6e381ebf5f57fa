"""Provenance in saved images: write A1111-style parameters and our JSON request into PNGs, and read them back.

Writing splices iTXt chunks into the PNG byte stream right before the first IDAT; pixels are never decoded or
re-encoded, so every IDAT byte stays as it was. Reading ("PNG Info") walks PNG chunks without decoding pixels and
reads EXIF (UserComment / ImageDescription, as AUTOMATIC1111 does) from JPEG and WebP; it never raises on bad input.

``parameters`` is the prompt verbatim (it may span lines), then one line of ``Key: value`` pairs, e.g.
``Model: gemini-2.5-flash-image, Mode: generate, Aspect ratio: 16:9, Size: 1K, Seed: 42, Variation: 0``.
Options that are None (the model's default, sent as absent) are omitted, never written as "default": what is written
is what was sent. ``Input images: N`` appears only when there were inputs (names and hashes are in the JSON chunk).
Values containing a comma, newline or leading quote are JSON-quoted, as A1111 does. A region edit adds
``Region: mask, Mask sha256: ..., Crop box: "x0,y0,x1,y1", Feather: 8`` (or ``Region: extend, Extend to: 16:9,
Anchor: left, Feather: 8``); the JSON chunk's ``request.region`` has every field. A styled prompt adds ``Style: ID``
(the prompt written is the final one sent); the JSON chunk's request has ``style``, ``template`` and ``variables``.
"""

from __future__ import annotations

import io
import json
import re
import struct
import warnings
import zlib
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from PIL import Image, UnidentifiedImageError

from ..domain.request import ImageRequest, Mode

__all__ = ["PARAMETERS_KEY", "REQUEST_KEY", "ImageInfo", "embed_png_text", "parse_parameters", "provenance_chunks",
           "read_image_info"]

PARAMETERS_KEY = "parameters"  # AUTOMATIC1111's chunk name, human-readable
REQUEST_KEY = "nanobanana"  # our JSON chunk with the full request
APP_NAME = "Nano Banana Studio"

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_TYPES = (b"tEXt", b"zTXt", b"iTXt")
_COMPRESS_OVER = 2048  # UTF-8 bytes; smaller texts stay plain so any tool can read them
_MAX_TEXT = 16 * 1024 * 1024  # a compressed text chunk may not inflate beyond this (zip bomb)
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')  # A1111's own pattern
_A1111_KEYS = {"Steps", "Sampler", "CFG scale", "Schedule type", "Model hash", "Denoising strength"}
_DISPLAY_KEYS = (PARAMETERS_KEY, "Description", "Comment", "comment", "UserComment", "ImageDescription")
_OURS = {"Model": ("model", str), "Mode": ("mode", str), "Aspect ratio": ("aspect_ratio", str),
         "Size": ("size", str), "Temperature": ("temperature", float), "Top-p": ("top_p", float),
         "Top-k": ("top_k", int), "Seed": ("seed", int)}
_OPTION_KEYS = {"aspect_ratio": (str,), "size": (str,), "temperature": (int, float), "top_p": (int, float),
                "top_k": (int,), "seed": (int,), "thinking": (str,), "show_thoughts": (bool,), "search": (bool,),
                "image_search": (bool,)}
_REGION_KEYS = {"feather": (int,), "extend_to": (str,), "anchor": (str,), "mask_sha256": (str,)}  # region edits
_NO_PARAMETERS = "This image has no generation parameters (it may have been saved by a tool that strips metadata)."


@dataclass(frozen=True)
class ImageInfo:
    """What PNG Info shows about one image, and the settings "Use these settings" can restore."""

    parameters: str | None = None
    request: dict[str, Any] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    source: str = "none"  # "nanobanana", "automatic1111", "other" or "none"
    message: str = _NO_PARAMETERS


def provenance_chunks(request: ImageRequest, *, text: str = "", finish_reason: str | None = None,
                      created: datetime | None = None) -> dict[str, str]:
    """The text chunks to embed for one request: A1111-style ``parameters`` and our full JSON request.

    Without `created` the chunks depend on the request and answer alone, so a cache hit's file can share the bytes
    (and the disk space) of the first one; the history keeps the time of each request.
    """
    o = request.options
    pairs = [("Model", request.model), ("Mode", request.mode.value), ("Aspect ratio", o.aspect_ratio),
             ("Size", o.size), ("Temperature", o.temperature), ("Top-p", o.top_p), ("Top-k", o.top_k),
             ("Seed", o.seed), ("Variation", o.variation), ("Input images", len(request.images) or None),
             ("Thinking", o.thinking), ("Search", "image" if o.image_search else "web" if o.search else None),
             ("Style", request.craft.style if request.craft is not None else None),
             ("Kit", request.kit.spec if request.kit is not None else None)]  # its references' hashes: in the JSON
    if request.region is not None:  # what a region edit adds: the mask's hash, crop box and feather, or the extend
        region = request.region.describe()
        pairs += [("Region", region["kind"]), ("Mask sha256", region.get("mask_sha256")),
                  ("Crop box", ",".join(map(str, region["crop_box"])) if "crop_box" in region else None),
                  ("Extend to", region.get("extend_to")), ("Anchor", region.get("anchor")),
                  ("Feather", region["feather"])]
    line = ", ".join(f"{k}: {_quote(str(v))}" for k, v in pairs if v is not None)
    record = {"version": 1, "app": APP_NAME, "request": request.describe(), "text": text,
              "finish_reason": finish_reason}
    if created is not None:
        created = created if created.tzinfo else created.replace(tzinfo=UTC)
        record["created"] = created.isoformat(timespec="seconds")
    return {PARAMETERS_KEY: f"{request.prompt}\n{line}", REQUEST_KEY: json.dumps(record, ensure_ascii=False)}


def embed_png_text(png: bytes, chunks: Mapping[str, str]) -> bytes:
    """The same PNG with one iTXt chunk per item before the first IDAT, replacing text chunks of the same keys."""
    if not png.startswith(_SIGNATURE):
        raise ValueError("not a PNG: the data does not start with the PNG signature, so no text can be embedded")
    found, problem = _walk(png)
    if problem:
        raise ValueError(f"damaged PNG: {problem}; no text was embedded")
    if not found or found[0][0] != b"IHDR" or not any(t == b"IDAT" for t, _, _ in found):
        raise ValueError("damaged PNG: it must start with an IHDR chunk and contain image data (IDAT)")
    keys = {_keyword(k) for k in chunks}
    new = b"".join(_itxt(k, v) for k, v in chunks.items())
    view, placed = memoryview(png), False
    parts: list[bytes | memoryview] = [_SIGNATURE]
    for ctype, start, end in found:
        if ctype == b"IDAT" and not placed:
            parts.append(new)
            placed = True
        if ctype in _TEXT_TYPES and png[start + 8:min(end - 4, start + 88)].split(b"\0", 1)[0] in keys:
            continue  # an old chunk under one of our keywords: replaced, not duplicated
        parts.append(view[start:end])
    return b"".join(parts)


def read_image_info(data: bytes, name: str = "image") -> ImageInfo:
    """Everything PNG Info can tell about any dropped file; bad or damaged input gives a message, not an exception."""
    if not data:
        return ImageInfo(message=f"{name} is empty (0 bytes), so it is not an image.")
    if data.startswith(_SIGNATURE):
        texts, problem = _png_texts(data)
        if problem and not texts:
            return ImageInfo(message=f"{name} looks like a PNG but is damaged ({problem}); nothing could be read.")
        info = _interpret(texts)
        return replace(info, message=f"{info.message} Note: {name} is damaged ({problem}).") if problem else info
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # bomb or corrupt-EXIF warnings: pixels are never decoded here
            with Image.open(io.BytesIO(data)) as im:
                texts = _other_texts(im)
    except UnidentifiedImageError:
        return ImageInfo(message=f"{name} is not a picture this app can open (such as a PNG, JPEG or WebP file).")
    except (OSError, SyntaxError, EOFError, ValueError, TypeError, KeyError, IndexError, struct.error,
            zlib.error, Image.DecompressionBombError) as exc:
        return ImageInfo(message=f"{name} looks like an image but is damaged and could not be read ({exc}).")
    return _interpret(texts)


def parse_parameters(text: str) -> dict[str, Any]:
    """The restorable settings in A1111-style text: ours give every option, A1111's give prompt and seed."""
    lines = text.split("\n")
    params = _params(lines[-1])
    if len(params) < 3:  # A1111's rule: the last line holds settings only when it has three or more pairs
        params, prompt_lines = {}, lines
    else:
        prompt_lines = lines[:-1]
    ours = _is_ours(params)
    if not ours:  # A1111: the prompt ends where "Negative prompt:" begins
        cut = next((i for i, ln in enumerate(prompt_lines) if ln.startswith("Negative prompt:")), len(prompt_lines))
        prompt_lines = "\n".join(prompt_lines[:cut]).strip().split("\n")
    settings: dict[str, Any] = {"prompt": "\n".join(prompt_lines)} if any(prompt_lines) else {}
    for key, (name, kind) in _OURS.items():
        if key in params and (ours or key == "Seed"):
            with suppress(ValueError):
                settings[name] = kind(params[key])
    return settings


def _is_ours(params: dict[str, str]) -> bool:
    return params.get("Mode") in {m.value for m in Mode} and "Model" in params


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False) if "," in value or "\n" in value or value.startswith('"') else value


def _params(line: str) -> dict[str, str]:
    out = {key.strip(): value.strip() for key, value in _PARAM.findall(line)}
    for key, value in out.items():
        if len(value) > 1 and value[0] == value[-1] == '"':
            with suppress(ValueError):
                out[key] = str(json.loads(value))
    return out


def _keyword(key: str) -> bytes:
    raw = key.encode("latin-1", "replace")
    if raw.decode("latin-1") != key or not 1 <= len(raw) <= 79 or b"\0" in raw or key != key.strip():
        raise ValueError(f"PNG text keyword {key!r} must be 1-79 Latin-1 characters, without NUL or edge spaces")
    return raw


def _itxt(key: str, value: str) -> bytes:
    raw = value.encode("utf-8")
    packed = zlib.compress(raw, 9) if len(raw) > _COMPRESS_OVER else raw
    # keyword NUL, compression flag and method (0 = zlib), empty language tag and translated keyword, then the text
    body = _keyword(key) + (b"\0\1\0\0\0" + packed if len(packed) < len(raw) else b"\0\0\0\0\0" + raw)
    return struct.pack(">I4s", len(body), b"iTXt") + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(b"iTXt")))


def _walk(png: bytes) -> tuple[list[tuple[bytes, int, int]], str | None]:
    """(type, start, end) of each whole chunk, and what is wrong with the stream, if anything."""
    found: list[tuple[bytes, int, int]] = []
    pos, size = len(_SIGNATURE), len(png)
    while pos + 12 <= size:
        length, ctype = struct.unpack_from(">I4s", png, pos)
        end = pos + 12 + length
        if not ctype.isalpha():
            return found, f"a chunk header at byte {pos} is garbled"
        if end > size:
            return found, f"it is truncated inside a {ctype.decode()} chunk"
        found.append((ctype, pos, end))
        if ctype == b"IEND":
            return found, None
        pos = end
    return found, "it is truncated (no IEND chunk at the end)"


def _inflate(blob: bytes) -> bytes:
    d = zlib.decompressobj()
    out = d.decompress(blob, _MAX_TEXT)
    if d.unconsumed_tail:
        raise ValueError("compressed text is too large")
    return out


def _png_texts(png: bytes) -> tuple[dict[str, str], str | None]:
    found, problem = _walk(png)
    texts: dict[str, str] = {}
    for ctype, start, end in found:
        if ctype not in _TEXT_TYPES:
            continue
        body = png[start + 8:end - 4]
        if zlib.crc32(body, zlib.crc32(ctype)) != struct.unpack_from(">I", png, end - 4)[0]:
            problem = problem or f"a {ctype.decode()} chunk fails its checksum"
            continue
        key, _, rest = body.partition(b"\0")
        try:
            if ctype == b"tEXt":
                value = rest.decode("latin-1")
            elif ctype == b"zTXt":
                value = _inflate(rest[1:]).decode("latin-1")
            else:
                flag, rest = rest[:1], rest[2:]
                rest = rest.split(b"\0", 2)[2]  # skip language tag and translated keyword
                value = (_inflate(rest) if flag == b"\1" else rest).decode("utf-8")
        except (ValueError, IndexError, zlib.error):
            problem = problem or f"a {ctype.decode()} chunk is garbled"
            continue
        texts[key.decode("latin-1")] = value
    return texts, problem


def _other_texts(im: Image.Image) -> dict[str, str]:
    """Text metadata from a non-PNG image: EXIF UserComment / ImageDescription, and any text in ``info``."""
    texts = {k: v for k, v in im.info.items() if isinstance(k, str) and isinstance(v, str)}
    if isinstance(im.info.get("comment"), bytes):
        texts["comment"] = im.info["comment"].decode("utf-8", "replace")
    exif = im.getexif()
    if isinstance(exif.get(0x010E), str) and exif[0x010E].strip("\0 "):
        texts["ImageDescription"] = exif[0x010E].strip("\0")
    comment = exif.get_ifd(0x8769).get(0x9286)
    if comment:
        texts["UserComment"] = _user_comment(comment)
    return {k: v for k, v in texts.items() if v.strip()}


def _user_comment(raw: bytes | str) -> str:
    """Decode EXIF UserComment: an 8-byte charset prefix, then the text (A1111 writes UTF-16 big-endian)."""
    if isinstance(raw, str):
        return raw.strip("\0")
    prefix, body = raw[:8], raw[8:]
    if prefix.startswith(b"UNICODE"):
        little = body[1::2].count(0) > body[0::2].count(0)
        return body.decode("utf-16-le" if little else "utf-16-be", "replace").strip("\0")
    return body.decode("utf-8" if prefix != b"ASCII\0\0\0" else "ascii", "replace").strip("\0 ")


def _interpret(texts: dict[str, str]) -> ImageInfo:
    """Classify the text found in an image and pull out the settings it can restore."""
    try:
        record = json.loads(texts.get(REQUEST_KEY, "null"))
    except ValueError:
        record = None
    if not (isinstance(record, dict) and isinstance(record.get("request"), dict)):
        record = None
    key = next((k for k in _DISPLAY_KEYS if k in texts), None)
    parameters = texts[key] if key else None
    if record is not None:
        req = record["request"]
        settings = {k: req[k] for k in ("prompt", "mode", "model") if isinstance(req.get(k), str)}
        options = req.get("options") if isinstance(req.get("options"), dict) else {}
        settings.update({k: options[k] for k, kinds in _OPTION_KEYS.items() if type(options.get(k)) in kinds})
        region = req.get("region") if isinstance(req.get("region"), dict) else {}
        settings.update({k: region[k] for k, kinds in _REGION_KEYS.items() if type(region.get(k)) in kinds})
        when = f" on {record['created'][:10]}" if isinstance(record.get("created"), str) else ""
        return ImageInfo(parameters, record, settings, "nanobanana",
                         f"Made by {APP_NAME} with {settings.get('model', 'an unknown model')}{when}.")
    if parameters is None:
        others = {k: v for k, v in texts.items() if k != REQUEST_KEY}
        if not others:
            return ImageInfo()
        shown = "\n".join(f"{k}: {v[:2000]}" for k, v in others.items())
        return ImageInfo(shown, None, {}, "other",
                         "This image has text metadata, but no generation parameters this app recognises.")
    last = _params(parameters.rsplit("\n", 1)[-1])
    settings = parse_parameters(parameters)
    if _is_ours(last):
        return ImageInfo(parameters, None, settings, "nanobanana",
                         f"Made by {APP_NAME} with {settings.get('model', 'an unknown model')}.")
    if _A1111_KEYS & last.keys():
        return ImageInfo(parameters, None, settings, "automatic1111",
                         "Made with AUTOMATIC1111's web UI or a compatible tool; its prompt and seed can be reused.")
    if key != PARAMETERS_KEY and len(last) < 3:
        settings = {}  # a plain description or comment is not a prompt we should restore
    return ImageInfo(parameters, None, settings, "other",
                     f"This image has a {key!r} text, but not in a format this app recognises fully.")

