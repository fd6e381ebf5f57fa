"""One run at a time per batch folder: the lock both batch modes take, and the refusal while a Gemini job is open."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ...domain.errors import InputError
from .gemini_journal import JobRecord, Journal

__all__ = ["RunFolderLock", "hold_run_folder", "open_job_message", "refuse_open_gemini_job"]

class RunFolderLock:
    """An exclusive lock on a run folder while one run (interactive or Gemini Batch Mode) uses it.

    Two runs of the same folder at once (the CLI and the app, say) could otherwise both find the same rows unfinished
    and pay for them twice. The lock is flock on the folder itself (no lock file is left among the images). The OS
    drops it when its process dies, kill -9 included, so a crash never leaves it stuck. flock locks belong to an open
    file: a second lock of the same folder in the same process is refused too.
    """

    def __init__(self, folder: Path) -> None:
        """Remember the folder (nothing is locked yet)."""
        self.path = Path(folder)
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock without waiting (creating the folder if needed); False when another run holds it."""
        try:
            import fcntl
        except ImportError:  # not POSIX: no lock (one run per folder is then the user's business)
            return True
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Let go of the lock."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextmanager
def hold_run_folder(folder: Path) -> Iterator[None]:
    """Hold the folder's lock for the block; InputError at once (no waiting) when another run holds it."""
    lock = RunFolderLock(folder)
    if not lock.acquire():
        raise InputError(f"another run is using {folder} right now (the CLI or the app): wait for it to finish, "
                         "or stop it, then run this again")
    try:
        yield
    finally:
        lock.release()


def open_job_message(record: JobRecord) -> str:
    """Why an interactive run is refused while `record` is open, and the commands that fetch or cancel it."""
    name = record.job or f"{record.display_name} (being submitted)"
    return (f"this folder has an open Gemini Batch Mode job {name} ({len(record.keys)} request(s), submitted "
            f"{record.created_at}); sending its rows now would pay for them twice. Fetch it with "
            "`python -m nanobanana_ui batch FILE --gemini-batch` (add --no-wait to only check), or cancel it with "
            "`python -m nanobanana_ui batch FILE --gemini-batch --cancel` (or the Batch tab's jobs list), "
            "then run this again.")


def refuse_open_gemini_job(folder: Path) -> None:
    """InputError when the folder's Gemini journal has a job still open (its rows are not in the manifest yet)."""
    record = Journal(Path(folder)).open_record()
    if record is not None:
        raise InputError(open_job_message(record))
