"""Set-up DoFn instances kept by a worker process between tasks: ``setup`` once per process.

Beam lets a runner reuse a DoFn instance for many bundles: ``setup`` runs once when the instance
is made, ``start_bundle``/``finish_bundle`` once per bundle, and ``teardown`` once when the runner
drops the instance (best effort). A runner whose worker processes outlive a task (Ray reuses its
worker processes) opts in with ``TaskContext.reuse_dofns``; :func:`~headrace.runners.tasks.
run_stage_task` then *leases* each ParDo's ``(dofn, args, kwargs)`` from :data:`PROCESS_DOFNS`:

- a lease returns an idle instance already set up for the same run and transform, or unpickles a
  new one (which the task sets up);
- a task that succeeds gives its instances back, without ``teardown``; a task that fails tears
  them down and drops them (Beam drops an instance after an exception in it);
- idle instances of a run are torn down when the run ends (:meth:`DoFnCache.close_run`; on Ray
  :mod:`headrace.runners.ray.runend` tells each worker process), when the cache keeps more than
  :data:`MAX_RUNS` runs (oldest first), or at a normal interpreter exit (``atexit``; Ray's worker
  processes are ended without it).

Instances are keyed by the run's id and the transform's id, so two runs never share one, and
one instance serves one task at a time (two tasks running at once in one process get two).
"""

from __future__ import annotations

import atexit
import threading
from collections import OrderedDict
from typing import Any

__all__ = ["MAX_RUNS", "PROCESS_DOFNS", "DoFnCache"]

MAX_RUNS = 4  # runs whose idle instances a process keeps

Instance = tuple[Any, Any, Any]  # (dofn, args, kwargs) as Payload.load() returns them


class DoFnCache:
    """Idle set-up DoFn instances by ``(run id, transform id)``; see the module docstring.

    >>> class Fn:
    ...     def teardown(self):
    ...         print("teardown")
    >>> cache = DoFnCache()
    >>> made = []
    >>> def load():
    ...     made.append(1)
    ...     return (Fn(), (), {})
    >>> inst, fresh = cache.lease(("run1", "t1"), load)
    >>> fresh
    True
    >>> cache.give_back(("run1", "t1"), inst)
    >>> again, fresh = cache.lease(("run1", "t1"), load)
    >>> again is inst, fresh, len(made)
    (True, False, 1)
    >>> cache.give_back(("run1", "t1"), again)
    >>> cache.close()
    teardown
    """

    def __init__(self, max_runs: int = MAX_RUNS) -> None:
        self.max_runs = max_runs
        self._idle: OrderedDict[str, dict[Any, list[Instance]]] = OrderedDict()
        self._lock = threading.Lock()

    def lease(self, key: tuple[str, Any], load: Any) -> tuple[Instance, bool]:
        """An idle instance for ``key`` (``fresh`` False), or ``load()``'s (``fresh`` True)."""
        run, tid = key
        with self._lock:
            by_tid = self._idle.get(run)
            if by_tid is not None:
                self._idle.move_to_end(run)
                idle = by_tid.get(tid)
                if idle:
                    return idle.pop(), False
        return load(), True

    def give_back(self, key: tuple[str, Any], instance: Instance) -> None:
        """Keep ``instance`` (set up, between bundles) for the next task of the same run."""
        run, tid = key
        evicted: list[Instance] = []
        with self._lock:
            by_tid = self._idle.setdefault(run, {})
            self._idle.move_to_end(run)
            by_tid.setdefault(tid, []).append(instance)
            while len(self._idle) > self.max_runs:
                _, old = self._idle.popitem(last=False)
                evicted += [i for insts in old.values() for i in insts]
        for inst in evicted:
            teardown(inst)

    def close_run(self, run: str) -> None:
        """Tear down and drop the idle instances of run ``run`` (the run ended)."""
        with self._lock:
            by_tid = self._idle.pop(run, {})
        for insts in by_tid.values():
            for inst in insts:
                teardown(inst)

    def close(self) -> None:
        """Tear down every idle instance (process exit)."""
        with self._lock:
            runs = list(self._idle.values())
            self._idle.clear()
        for by_tid in runs:
            for insts in by_tid.values():
                for inst in insts:
                    teardown(inst)


def teardown(instance: Instance) -> None:
    """Best-effort ``teardown`` of a dropped instance (Beam does not promise it either)."""
    fn = getattr(instance[0], "teardown", None)
    if fn is None:
        return
    try:
        fn()
    except Exception:
        pass


PROCESS_DOFNS = DoFnCache()
atexit.register(PROCESS_DOFNS.close)
