"""Saving outputs: the exact bytes the API returned, written atomically, under names that sort by time."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import unicodedata
from datetime import datetime
from pathlib import Path

from ..domain.errors import BadResponseError, InputError
from ..domain.request import GeneratedImage, ImageRequest, ImageResult
from .images import image_size
from .pngmeta import embed_png_text, provenance_chunks

__all__ = ["dimensions", "extension_for", "output_name", "save_images", "save_output", "save_thought_images", "slugify",
           "with_provenance"]

log = logging.getLogger(__name__)

_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/webp": ".webp", "image/gif": ".gif"}


def slugify(text: str, max_length: int = 40) -> str:
    """A short lowercase ASCII slug of a prompt, safe in any file system ("image" when nothing is left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "image"


def extension_for(mime_type: str) -> str:
    """The file extension for an image MIME type."""
    return _EXTENSIONS.get(mime_type, ".png")


def output_name(prompt: str, mime_type: str, when: datetime, suffix: str = "") -> str:
    """File name like 20261127-215600-123_a-red-fox_v1.png: time first (sorts), then the prompt's slug."""
    stamp = when.strftime("%Y%m%d-%H%M%S-") + f"{when.microsecond // 1000:03d}"
    return f"{stamp}_{slugify(prompt)}{suffix}{extension_for(mime_type)}"


def _claim(source: Path, target: Path) -> Path:
    """Hard-link source to target, or to target-2, -3, ... when taken; never overwrite (link is atomic)."""
    for n in range(1, 1000):
        candidate = target if n == 1 else target.with_name(f"{target.stem}-{n}{target.suffix}")
        try:
            os.link(source, candidate)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free file name near {target}")


def save_output(data: bytes, out_dir: Path, name: str, *, stored_copy: Path | None = None) -> Path:
    """Write an image to out_dir/name atomically; share the cache's copy (a hard link) when one is given."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if stored_copy is not None:
        try:
            return _claim(stored_copy, out_dir / name)
        except OSError:
            pass  # another file system, or no hard links: write a copy instead
    fd, tmp_name = tempfile.mkstemp(prefix=".partial-", suffix=".tmp", dir=out_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            return _claim(tmp, out_dir / name)
        except OSError:  # no hard links here: rename instead (a name clash is vanishingly unlikely at ms resolution)
            final = out_dir / name
            os.replace(tmp, final)
            return final
    finally:
        tmp.unlink(missing_ok=True)


def with_provenance(data: bytes, mime: str, request: ImageRequest, text: str, finish_reason: str | None) -> bytes:
    """A PNG with the request's parameters embedded as text chunks (pixels untouched); other formats unchanged."""
    if mime != "image/png":
        return data
    try:
        return embed_png_text(data, provenance_chunks(request, text=text, finish_reason=finish_reason))
    except ValueError as error:  # a PNG our splicer cannot read: keep the image rather than lose it
        log.warning("could not embed parameters in an image: %s", error)
        return data


def dimensions(data: bytes) -> tuple[int, int]:
    """Width and height of an image the API returned; a broken one is the service's fault, not the user's."""
    try:
        return image_size(data)
    except InputError:
        raise BadResponseError("Gemini returned an image that cannot be read. Try again.") from None


def save_images(request: ImageRequest, images: list[tuple[bytes, str, Path | None]], text: str,
                finish_reason: str | None, out_dir: Path) -> tuple[GeneratedImage, ...]:
    """Save a result's images, each with the request's provenance, sharing the cache's copy where the bytes match."""
    now = datetime.now()
    variation = f"_v{request.options.variation}" if request.options.variation else ""
    saved = []
    for index, (cached_data, mime, stored) in enumerate(images):
        data = with_provenance(cached_data, mime, request, text, finish_reason)
        if data != cached_data:  # a cache hit for a request described differently (e.g. input file names)
            stored = None
        suffix = variation + (f"_{index + 1}" if len(images) > 1 else "")
        path = save_output(data, out_dir, output_name(request.prompt, mime, now, suffix), stored_copy=stored)
        width, height = dimensions(data)
        saved.append(GeneratedImage(sha256=hashlib.sha256(data).hexdigest(), mime_type=mime, width=width,
                                    height=height, path=path))
    return tuple(saved)


def save_thought_images(result: ImageResult, folder: Path) -> tuple[Path, ...]:
    """Write a result's thought images, as returned, to folder ("..._thought-1.png", ...); none: nothing written."""
    now = datetime.now()
    variation = f"_v{result.request.options.variation}" if result.request.options.variation else ""
    return tuple(save_output(thought.data, folder, output_name(result.request.prompt, thought.mime_type, now,
                                                               f"{variation}_thought-{n}"))
                 for n, thought in enumerate(result.thought_images, start=1))
