"""Who wrote an entry of the shared limiter's file, and whether it still runs: pid, start time and PID namespace."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

__all__ = ["NAMESPACE", "namespace", "process_alive", "process_start"]


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (tells a reused pid apart); "" where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]  # field 22, counted after the parenthesised command name


def process_alive(pid: int, started: str) -> bool:
    """True if the process that wrote an entry still runs (the same pid with the same start time)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not started or process_start(pid) in ("", started)


def namespace() -> str:
    """This process's PID namespace: the boot id and the namespace's inode (pids compare only within one)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:  # no /proc: a name no other process has, so every entry is judged by its lease
        return f"{socket.gethostname()}:{uuid.uuid4().hex}"


NAMESPACE = namespace()  # this process's own, read once
