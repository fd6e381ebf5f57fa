"""A visitor's batch runs on the page: which run folder is theirs, and the folder zipped for download."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BatchState", "zip_folder"]


@dataclass
class BatchState:
    """One visitor's last run (gr.State): which input and settings it was, its folder, whether it completed."""

    fingerprint: str = ""
    folder: str = ""
    complete: bool = False


def zip_folder(folder: Path, dest: Path) -> Path:
    """Zip every file of a run folder (images and manifest.jsonl; hidden files left out) into dest."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and not any(part.startswith(".") for part in relative.parts):
                # PNGs are compressed already: stored as they are
                kind = zipfile.ZIP_STORED if path.suffix.lower() == ".png" else zipfile.ZIP_DEFLATED
                archive.write(path, relative.as_posix(), compress_type=kind)
    tmp.replace(dest)
    return dest
