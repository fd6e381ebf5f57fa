"""Per-key partition names: a salted hash of an API key, stable across restarts, that does not reveal the key.

The salt is NANOBANANA_HOME/secret (32 random bytes, created once with mode 0600). The result cache and the model
listings use these names for a key's own entries; nobody can recover the key, or test a guess, from them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

__all__ = ["SALT_FILE", "key_partition", "salted_hash", "stable_salt"]

SALT_FILE = "secret"


def stable_salt(home: Path) -> bytes:
    """The data directory's own secret (created once, mode 0600): salts the partitions' names."""
    path = home / SALT_FILE
    home.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
        raise RuntimeError(f"{path} is damaged: remove it (the cached results of visitors' keys go with it).") \
            from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(secrets.token_bytes(32))
    return path.read_bytes()


def salted_hash(salt: bytes, text: str) -> str:
    """32 hex digits of HMAC-SHA256(salt, text)."""
    return hmac.new(salt, text.encode(), hashlib.sha256).hexdigest()[:32]


def key_partition(home: Path, key: str, *, salt: bytes | None = None) -> str:
    """The key's partition name ("k" + a salted hash): the same for the same key and data directory."""
    return "k" + salted_hash(salt if salt is not None else stable_salt(home), key)
