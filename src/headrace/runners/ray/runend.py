"""A run's end as every Ray worker process that ran its tasks sees it: DoFn ``teardown``.

Ray tasks keep DoFn instances set up between tasks (:mod:`headrace.runners.dofncache`), so
``setup`` runs once per worker process. ``teardown`` cannot wait for the process to exit: Ray
ends its worker processes without running Python's exit handlers (measured with Ray 2.60: neither
``atexit`` nor a ``SIGTERM`` handler runs when a job's driver leaves a cluster or a local Ray shuts
down). So when a run's plan holds a DoFn with a ``teardown`` of its own (:func:`needs_run_end`),
the driver makes one small actor for the run (:class:`RunEnd`, no CPU reserved):

1. each worker process checks in on its first task of the run (:func:`check_in`) and starts a
   thread that waits for the run's end on the actor;
2. when the run ends (done, failed or cancelled) the driver calls :meth:`RunEnd.end`: every
   waiting thread tears down the run's idle instances in its process and acknowledges;
3. ``end`` returns once every worker that checked in acknowledged, or after a timeout (a worker
   killed mid-run never does), and the driver drops the actor before it returns the result or
   shuts its local Ray down.

Beam calls ``teardown`` best effort too; here it runs in every live worker process that set the
DoFn up, before the run's result is returned.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from typing import Any

from headrace.graph import kinds
from headrace.plan.stages import ExecutionPlan
from headrace.runners.dofncache import PROCESS_DOFNS

__all__ = ["RunEnd", "check_in", "needs_run_end"]

# Runs this process waits on (one thread each), by run id.
_WATCHED: set[str] = set()
_LOCK = threading.Lock()


def needs_run_end(plan: ExecutionPlan) -> bool:
    """True when a ParDo of ``plan`` has a DoFn defining its own ``teardown``.

    >>> class Plain:
    ...     def process(self, x):
    ...         yield x
    >>> _defines_teardown(Plain()), _defines_teardown(print)
    (False, False)
    """
    for node in plan.leaves.values():
        if node.kind == kinds.PARDO and node.payload is not None:
            dofn = node.payload.load()[0]
            if _defines_teardown(dofn):
                return True
    return False


def _defines_teardown(dofn: Any) -> bool:
    """Whether ``dofn``'s class (not the SDK's ``DoFn`` base) defines ``teardown``."""
    for cls in type(dofn).__mro__:
        if "teardown" in vars(cls):
            return not (cls.__name__ == "DoFn" and cls.__module__.startswith("headrace."))
    return False


class RunEnd:
    """The run's end, shared by the driver and the worker processes (a Ray actor; its methods
    run on one event loop, so a waiting worker never blocks another call)."""

    def __init__(self) -> None:
        self._ended = asyncio.Event()
        self._all_acked = asyncio.Event()
        self._held: set[str] = set()
        self._acked: set[str] = set()

    async def check_in(self, worker: str) -> None:
        self._held.add(worker)
        self._all_acked.clear()

    async def wait(self) -> None:
        await self._ended.wait()

    async def ack(self, worker: str) -> None:
        self._acked.add(worker)
        if self._acked >= self._held:
            self._all_acked.set()

    async def end(self, timeout: float) -> tuple[int, int]:
        """Tell every worker the run ended; ``(checked in, acknowledged)`` once all did, or
        after ``timeout`` seconds."""
        self._ended.set()
        if not self._acked >= self._held:
            try:
                await asyncio.wait_for(self._all_acked.wait(), timeout)
            except TimeoutError:
                pass
        return len(self._held), len(self._acked & self._held)


def check_in(handle: Any, run_id: str) -> None:
    """In a worker process, before a task of run ``run_id`` runs: the first time, tell the
    run's :class:`RunEnd` and start the thread that tears down the run's DoFns at its end."""
    with _LOCK:
        if run_id in _WATCHED:
            return
        _WATCHED.add(run_id)
    import ray

    worker = f"{socket.gethostname()}:{os.getpid()}"
    ray.get(handle.check_in.remote(worker))
    threading.Thread(
        target=_await_end, args=(handle, run_id, worker), name=f"headrace-run-end-{run_id[:8]}",
        daemon=True,
    ).start()  # fmt: skip


def _await_end(handle: Any, run_id: str, worker: str) -> None:
    import ray

    try:
        ray.get(handle.wait.remote())
    except Exception:  # the actor is gone: its driver left without ending the run
        pass
    else:
        try:
            PROCESS_DOFNS.close_run(run_id)
        finally:
            try:
                ray.get(handle.ack.remote(worker))
            except Exception:
                pass
    finally:
        with _LOCK:
            _WATCHED.discard(run_id)
