"""Per-key partition names: a salted hash of an API key, stable across restarts, that does not reveal the key.

The salt is NANOBANANA_HOME/secret (32 random bytes, created once and atomically, mode 0600). The result cache and the
model listings use these names for a key's own entries; nobody can recover the key, or test a guess, from them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from ..domain.durable import fsync_dir

__all__ = ["SALT_FILE", "key_partition", "salted_hash", "stable_salt"]

SALT_FILE = "secret"
_SALT_BYTES = 32
_READ_TRIES = 20
_READ_PAUSE_S = 0.05  # 20 tries: a short file for a whole second is no writer at work but a crash's leftover


def stable_salt(home: Path) -> bytes:
    """The data directory's own secret (created once, mode 0600): salts the partitions' names.

    Created whole or not at all (a temp file, fsynced, then link()ed into place), so no reader ever sees it short. A
    short file is an older version's writer at work (read again), or its crash leftover: set aside and made anew.
    """
    path = home / SALT_FILE
    home.mkdir(parents=True, exist_ok=True)
    for _ in range(_READ_TRIES):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            _create(home, path)
            continue
        if len(data) >= _SALT_BYTES:
            return data
        time.sleep(_READ_PAUSE_S)
    return _replace_short(home, path)


def _create(home: Path, path: Path) -> None:
    """Put a new secret in place unless one is there already: whole, fsynced, then linked (first link wins)."""
    tmp = home / f".{SALT_FILE}-{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(_SALT_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process got there first: theirs is the secret
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(home)


def _replace_short(home: Path, path: Path) -> bytes:
    """A secret still short after a second: set it aside and make a new one (one process at a time decides)."""
    fd = os.open(home / f".{SALT_FILE}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if len(path.read_bytes()) < _SALT_BYTES:  # nothing was ever salted with it: every use of it failed
                os.replace(path, home / f"{SALT_FILE}.damaged-{time.time_ns()}")
        if not path.exists():
            _create(home, path)
        data = path.read_bytes()
    finally:
        os.close(fd)
    if len(data) < _SALT_BYTES:
        raise RuntimeError(f"{path} is damaged: remove it (the cached results of visitors' keys go with it).")
    return data




def salted_hash(salt: bytes, text: str) -> str:
    """32 hex digits of HMAC-SHA256(salt, text)."""
    return hmac.new(salt, text.encode(), hashlib.sha256).hexdigest()[:32]


def key_partition(home: Path, key: str, *, salt: bytes | None = None) -> str:
    """The key's partition name ("k" + a salted hash): the same for the same key and data directory."""
    return "k" + salted_hash(salt if salt is not None else stable_salt(home), key)
