"""Where the page's downloads (history and kit ZIPs) are written: one folder, pruned as new exports are made."""

from __future__ import annotations

import secrets
import tempfile
import time
from pathlib import Path

EXPORT_TTL_S = 3600  # exports older than this are removed when the next one is made


def export_path(stem: str, suffix: str = ".zip") -> Path:
    """A new path for a download named `stem-<random>.zip`; older exports are removed first, since Gradio copies each
    into its own cache as it is handed over, so a public demo's temporary folder does not grow with every click."""
    folder = Path(tempfile.gettempdir()) / "nanobanana-ui" / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(f"*{suffix}"):
        try:
            if time.time() - old.stat().st_mtime > EXPORT_TTL_S:
                old.unlink(missing_ok=True)
        except FileNotFoundError:  # another process pruned it first
            pass
    return folder / f"{stem}-{secrets.token_hex(3)}{suffix}"
