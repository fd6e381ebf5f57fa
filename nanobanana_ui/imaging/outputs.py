"""Saving outputs: the exact bytes the API returned, written atomically, under names that sort by time.

A saved output never shares its file with the store (the cache's blob, the history's images/<sha>): a user may edit
it in place. It is a copy, made as a reflink (shared blocks, copied on write) where the file system offers one.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import shutil
import tempfile
import unicodedata
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from ..domain.errors import BadResponseError, InputError
from ..domain.request import GeneratedImage, ImageRequest, ImageResult
from .images import image_size
from .pngmeta import embed_png_text, provenance_chunks

__all__ = ["clone_file", "dimensions", "extension_for", "output_name", "save_images", "save_output",
           "save_thought_images", "slugify", "with_provenance"]

log = logging.getLogger(__name__)

_FICLONE = 0x40049409  # Linux ioctl: make the target share the source's blocks, copy-on-write (btrfs, XFS, ...)
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
    """Hard-link our own temp file to target, or target-2, -3, ... when taken; never overwrite (link is atomic)."""
    for n in range(1, 1000):
        candidate = target if n == 1 else target.with_name(f"{target.stem}-{n}{target.suffix}")
        try:
            os.link(source, candidate)
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"no free file name near {target}")


def _reflink(source: Path, handle: BinaryIO) -> bool:
    """Make the open, empty file `handle` a reflink of source (no bytes copied); False where that is not offered."""
    try:
        with open(source, "rb", buffering=0) as src:
            fcntl.ioctl(handle.fileno(), _FICLONE, src.fileno())
    except OSError:  # ext4, tmpfs, another file system, or the source is gone
        return False
    return True


def clone_file(source: Path, target: Path) -> None:
    """Copy source to the new file target (never a hard link): a reflink where offered, else the bytes; fsynced."""
    with open(target, "xb", buffering=0) as handle:
        try:
            if not _reflink(source, handle):
                with open(source, "rb", buffering=0) as src:
                    shutil.copyfileobj(src, handle, 1 << 20)
            os.fsync(handle.fileno())
        except BaseException:
            target.unlink(missing_ok=True)
            raise


def save_output(data: bytes, out_dir: Path, name: str, *, stored_copy: Path | None = None) -> Path:
    """Write an image to out_dir/name atomically: a file of its own, a reflink of the cache's copy where offered."""
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".partial-", suffix=".tmp", dir=out_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            if stored_copy is None or not _reflink(stored_copy, handle):
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
    """Save a result's images, each with the request's provenance (a reflink of the cache's copy where offered)."""
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
