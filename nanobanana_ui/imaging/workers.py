"""A bounded pool for CPU-heavy steps (PNG encoding and writing, blending, decoding uploads, thumbnails).

Waiting on the API costs no thread, so many requests can wait at once; what costs CPU runs here, on at most as many
threads as there are cores (NANOBANANA_CPU_THREADS), so a crowd's image work queues instead of oversubscribing the
machine and starving the event loop. Disk-only waits stay on asyncio.to_thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["THREAD_PREFIX", "configure", "cpu_pool", "on_cpu", "run_on_cpu", "shutdown"]

THREAD_PREFIX = "nb-cpu"
P = ParamSpec("P")
T = TypeVar("T")

_pool: ThreadPoolExecutor | None = None
_size: int | None = None
_lock = threading.Lock()


def _cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def configure(threads: int | None) -> None:
    """Set the pool's size (0 or None: the cores) before its first use; a running pool of another size is replaced
    (its queued work still finishes)."""
    global _size, _pool
    size = threads if threads and threads > 0 else _cores()
    with _lock:
        if _pool is not None and size != _size:
            _pool.shutdown(wait=False)
            _pool = None
        _size = size


def cpu_pool() -> ThreadPoolExecutor:
    """The process's CPU pool, made on first use with the configured number of threads."""
    global _pool, _size
    with _lock:
        if _pool is None:
            _size = _size or _cores()
            _pool = ThreadPoolExecutor(max_workers=_size, thread_name_prefix=THREAD_PREFIX)
        return _pool


async def on_cpu(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a CPU-heavy function in the pool without blocking the event loop (context variables carried over)."""
    if threading.current_thread().name.startswith(THREAD_PREFIX):
        return fn(*args, **kwargs)
    context = contextvars.copy_context()
    call = functools.partial(context.run, fn, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(cpu_pool(), call)


def run_on_cpu(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """From a plain thread (a sync handler): run `fn` in the pool and wait, so at most the pool's size run at once."""
    if threading.current_thread().name.startswith(THREAD_PREFIX):
        return fn(*args, **kwargs)
    return cpu_pool().submit(fn, *args, **kwargs).result()


def shutdown() -> None:
    """Stop the pool (tests, app close); the next use makes a new one."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True)
