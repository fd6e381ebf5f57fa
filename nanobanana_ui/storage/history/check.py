"""Checking the history against its files (verify) and fixing what is found (repair). Run under the write lock."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

from .files import TEMP_PREFIX, ImageFiles, sha256_file

__all__ = ["Problems", "find_problems", "repair"]

_KINDS = {"input": "input image", "model": "model-turn image"}


@dataclass
class Problems:
    """What a check found: image rows without a sound file, files no row uses, leftover temp files."""

    broken: list[tuple[str, int, Path, str]] = field(default_factory=list)  # entry id, position, path, why
    orphans: list[Path] = field(default_factory=list)
    temps: list[Path] = field(default_factory=list)
    inputs: list[tuple[str, str, Path, str]] = field(default_factory=list)  # kept inputs: entry id, role, path, why
    lost: list[tuple[str, str, int, Path, str]] = field(default_factory=list)  # entry id, kind, position, path, why

    def lines(self) -> list[str]:
        """One human-readable line per problem."""
        return ([f"entry {entry_id}: image {number + 1} {why}: {path}" for entry_id, number, path, why in self.broken]
                + [f"entry {entry_id}: its {role} {why}: {path}" for entry_id, role, path, why in self.inputs]
                + [f"orphan file (no entry uses it): {path}" for path in self.orphans]
                + [f"leftover temporary file: {path}" for path in self.temps]
                + [f"entry {entry_id}: {_KINDS[kind]} {number + 1} {why}: {path}"
                   for entry_id, kind, number, path, why in self.lost])


def find_problems(db: sqlite3.Connection, files: ImageFiles) -> Problems:
    """Compare every image row with its file (present, bytes matching the digest) and every file with the rows."""
    problems = Problems()
    wanted: set[Path] = set()
    digests: dict[Path, str] = {}
    used: set[str] = set()
    for entry_id, position, sha, mime in db.execute(
            "SELECT entry_id, position, sha256, mime_type FROM images ORDER BY entry_id, position"):
        path = files.path_for(sha, mime)
        wanted.add(path)
        used.add(sha)
        if path not in digests:
            digests[path] = sha256_file(path) if path.is_file() else ""
        if not digests[path]:
            problems.broken.append((entry_id, position, path, "file is missing"))
        elif digests[path] != sha:
            problems.broken.append((entry_id, position, path, "bytes do not match their sha256"))
    for entry_id, role, sha, mime in db.execute(
            "SELECT entry_id, role, sha256, mime_type FROM inputs ORDER BY entry_id, role"):
        path = files.path_for(sha, mime)  # an input an entry keeps (a region edit's mask), checked the same way
        wanted.add(path)
        if path not in digests:
            digests[path] = sha256_file(path) if path.is_file() else ""
        if not digests[path]:
            problems.inputs.append((entry_id, role, path, "file is missing"))
        elif digests[path] != sha:
            problems.inputs.append((entry_id, role, path, "bytes do not match their sha256"))
    for sha, mime in db.execute("SELECT DISTINCT sha256, mime_type FROM kit_refs"):
        wanted.add(files.path_for(sha, mime))  # a kit's image: kept while any version of the kit names it
        used.add(sha)
    for entry_id, kind, position, sha, mime in db.execute(
            "SELECT entry_id, kind, position, sha256, mime_type FROM files ORDER BY entry_id, kind, position"):
        path = files.path_for(sha, mime)
        wanted.add(path)
        if path not in digests:
            digests[path] = sha256_file(path) if path.is_file() else ""
        if digests[path] != sha:
            problems.lost.append((entry_id, kind, position, path,
                                  "file is missing" if not digests[path] else "bytes do not match their sha256"))
    for path in files.all_files():
        if path.name.startswith(TEMP_PREFIX):
            problems.temps.append(path)
        elif path.parent == files.thumbs:
            if path.name.split("-")[0] not in used:
                problems.orphans.append(path)
        elif path not in wanted:
            problems.orphans.append(path)
    return problems


def repair(db: sqlite3.Connection, files: ImageFiles) -> list[str]:
    """Unlink images whose file is missing or altered (the entry stays, marked "image file missing"), delete
    orphans and temp files; returns one line per fix."""
    problems = find_problems(db, files)
    done = []
    if problems.broken or problems.inputs or problems.lost:
        db.execute("BEGIN IMMEDIATE")
        try:
            for entry_id, role, _, why in problems.inputs:  # the entry stays; it just cannot be re-run as it was
                db.execute("DELETE FROM inputs WHERE entry_id = ? AND role = ?", (entry_id, role))
                done.append(f"entry {entry_id}: dropped its {role} ({why}); entry kept")
            for entry_id, kind, position, _, why in problems.lost:
                # Without the file the entry's turn is rebuilt as for entries older than conversations: inputs
                # not kept are left out, and a model turn not kept is its output with the documented bypass.
                db.execute("DELETE FROM files WHERE entry_id = ? AND kind = ? AND position = ?",
                           (entry_id, kind, position))
                if kind == "model":
                    db.execute("UPDATE entries SET model_turn = NULL WHERE id = ?", (entry_id,))
                done.append(f"entry {entry_id}: dropped {_KINDS[kind]} {position + 1} ({why}); "
                            "its conversation continues without it")
            for entry_id, position, _, why in problems.broken:
                db.execute("DELETE FROM images WHERE entry_id = ? AND position = ?", (entry_id, position))
                db.execute("UPDATE entries SET error = 'image file missing', error_type = 'MissingImage' "
                           "WHERE id = ? AND error IS NULL", (entry_id,))
                done.append(f"entry {entry_id}: dropped image {position + 1} ({why}); entry kept, marked missing")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        for path, why in ([(p, w) for _, _, p, w in chain(problems.broken, problems.inputs)]
                          + [(p, w) for *_, p, w in problems.lost]):
            # an altered file is no longer that digest's bytes
            if why != "file is missing" and path.is_file():
                path.unlink()
                done.append(f"removed altered file {path}")
    for path in problems.orphans:
        path.unlink(missing_ok=True)
        done.append(f"removed orphan file {path}")
    for path in problems.temps:
        path.unlink(missing_ok=True)
        done.append(f"removed temporary file {path}")
    return done
