"""Garbage-collector policy while stages run, and freeing big tables at process exit.

Pipelines allocate many short-lived tuples (``(key, value)`` pairs, windowed values). With the
default gen-0 threshold (700 allocations) CPython's cyclic collector runs thousands of times per
second and rescans the long-lived grouping tables, costing 20-30% of a Map-heavy stage. While at
least one task runs, :func:`relaxed_gc` raises the gen-0 threshold; reference counting still frees
acyclic garbage immediately, and the collector still runs, only less often. The previous
thresholds come back when the last task ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "defer_frees_to_exit",
    "free_kept",
    "kept_for_exit",
    "leave_for_exit",
    "relaxed_gc",
]

GEN0_THRESHOLD = 50_000
_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def relaxed_gc() -> Iterator[None]:
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            if _saved[0] and _saved[0] < GEN0_THRESHOLD:
                gc.set_threshold(GEN0_THRESHOLD, _saved[1], _saved[2])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                gc.set_threshold(*_saved)


# -- freeing at exit ---------------------------------------------------------------------------
#
# Freeing a grouping table object by object costs about as much as building it took: 2.5 M ints
# in 100 k lists take ~0.1 s to deallocate, most of it cache misses. A worker process (and only
# one that asked for it, see runners/direct/workers.py) may instead keep its dead tables here and
# exit after the task, letting the OS take its pages back at once; its executor starts a fresh
# worker, whose heap is also unfragmented. Anywhere else, tables are freed as usual.

_defer_frees = False
_graveyard: list[Any] = []
_graveyard_bytes = 0


def defer_frees_to_exit() -> None:
    """Make :func:`leave_for_exit` keep objects in this process (called by a worker at start)."""
    global _defer_frees
    _defer_frees = True


def leave_for_exit(obj: Any, nbytes: int, limit: int) -> None:
    """Keep ``obj`` (estimated ``nbytes`` in memory) alive until the process exits, when this
    process defers frees and what is kept stays within ``limit`` bytes (the memory budget);
    otherwise do nothing: the caller drops its reference and ``obj`` is freed as usual."""
    global _graveyard_bytes
    if _defer_frees and _graveyard_bytes + nbytes <= limit:
        _graveyard.append(obj)
        _graveyard_bytes += nbytes


def kept_for_exit() -> int:
    """Estimated bytes kept by :func:`leave_for_exit` since the last :func:`free_kept`."""
    return _graveyard_bytes


def free_kept() -> None:
    """Free what :func:`leave_for_exit` kept (a worker that goes on running tasks)."""
    global _graveyard_bytes
    _graveyard.clear()
    _graveyard_bytes = 0
