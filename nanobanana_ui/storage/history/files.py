"""The history's files: content-addressed images under home/images, thumbnails, atomic writes and the write lock."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from ...domain.durable import fsync_dir
from ...imaging.outputs import clone_file, extension_for

__all__ = ["TEMP_PREFIX", "ImageFiles", "render_thumbnail", "sha256_file", "sniff_mime", "write_atomic"]

TEMP_PREFIX = ".tmp-"  # a file with this prefix is a write in progress, or the leftover of a killed one


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sniff_mime(data: bytes) -> str:
    """The MIME type of image bytes, from their content (not a name); "image/png" when Pillow cannot tell."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.get_format_mimetype() or "image/png"
    except (OSError, ValueError, Image.DecompressionBombError):
        return "image/png"




def write_atomic(path: Path, data: bytes) -> None:
    """Write a complete file or nothing: a temp file beside it, fsync'd, then renamed over the name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(6)}-{path.name}")
    try:
        with tmp.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def render_thumbnail(source: Path, size: int) -> bytes:
    """A WEBP at most size x size pixels, aspect kept."""
    with Image.open(source) as opened:
        opened.thumbnail((size, size))
        image: Image.Image = opened
        if image.mode not in ("RGB", "RGBA"):
            image = image.convert("RGBA" if "A" in image.getbands() or "transparency" in image.info else "RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="WEBP", quality=80)
    return buffer.getvalue()


class ImageFiles:
    """Image files named by their content's SHA-256 (the same bytes are stored once), and the lock around changes.

    Every change to the files happens under `lock()`, which also serialises the database writes that go with it,
    across threads and processes: so no checker ever sees a file placed for a row that is about to be committed.
    """

    def __init__(self, home: Path) -> None:
        self.home = home
        self.images = home / "images"
        self.thumbs = home / "thumbs"
        self._lock_path = home / "history.lock"
        self._thread_lock = threading.Lock()

    def path_for(self, sha256: str, mime_type: str) -> Path:
        """Where the image with this digest lives: images/<sha[:2]>/<sha>.<ext>."""
        return self.images / sha256[:2] / f"{sha256}{extension_for(mime_type)}"

    def thumb_path(self, sha256: str, size: int) -> Path:
        """Where the thumbnail of this size lives: thumbs/<sha>-<size>.webp."""
        return self.thumbs / f"{sha256}-{size}.webp"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the history's write lock (a thread lock plus an flock on home/history.lock)."""
        with self._thread_lock:
            self.home.mkdir(parents=True, exist_ok=True)
            with self._lock_path.open("a+b") as handle:
                try:
                    import fcntl
                except ImportError:  # pragma: no cover - Windows: one process per data dir
                    yield
                    return
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def place_copy(self, source: Path, mime_type: str) -> tuple[Path, str]:
        """Store a copy of source (never a hard link: the user may edit it) under the copy's digest. Locked.

        The copy is a reflink where the file system offers one. Its digest is taken from the copy itself, so an edit to
        source during the copy cannot leave images/<sha> with other bytes than its name says. Returns (path, sha256).
        """
        self.images.mkdir(parents=True, exist_ok=True)
        tmp = self.images / f"{TEMP_PREFIX}{secrets.token_hex(6)}"
        try:
            clone_file(source, tmp)
            sha256 = sha256_file(tmp)
            target = self.path_for(sha256, mime_type)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, target)  # atomic: the name appears with the complete file behind it
                fsync_dir(target.parent)
        finally:
            tmp.unlink(missing_ok=True)
        return target, sha256

    def place_bytes(self, data: bytes, sha256: str, mime_type: str) -> Path:
        """Store bytes under their digest (an input, a model turn's image, a region edit's mask); a no-op when held."""
        target = self.path_for(sha256, mime_type)
        if not target.exists():
            write_atomic(target, data)
        return target

    def remove(self, sha256: str, mime_type: str) -> None:
        """Delete an image's file and its thumbnails. Locked."""
        self.path_for(sha256, mime_type).unlink(missing_ok=True)
        for thumb in self.thumbs.glob(f"{sha256}-*.webp"):
            thumb.unlink(missing_ok=True)

    def all_files(self) -> Iterator[Path]:
        """Every file under images/ and thumbs/ (temp files included)."""
        for root in (self.images, self.thumbs):
            if root.is_dir():
                yield from (path for path in sorted(root.rglob("*")) if path.is_file())
