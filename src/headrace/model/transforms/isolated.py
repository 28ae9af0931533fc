"""Running a DoFn's ``process`` under a time limit, or in a child process.

Used by ``with_exception_handling(timeout=..., use_subprocess=True)`` (see
:mod:`headrace.model.transforms.deadletter`), with Beam's meaning (``_TimeoutDoFn`` and
``_SubprocessDoFn`` in apache_beam/transforms/core.py):

* ``timeout``: each element's ``process`` (all of its outputs) runs in a helper thread and must
  finish within ``timeout`` seconds, else ``TimeoutError`` is raised for that element (a dead
  letter). The overrunning thread cannot be stopped; it is abandoned with its pool.
* ``use_subprocess``: the DoFn lives in one child process (set up lazily, bundle by bundle), so
  that a hard crash of an element (``os._exit``, a segfault in native code) becomes an exception
  for that element; the child is then replaced and the next element sets the DoFn up afresh.
  ``timeout`` applies to each element there too, and kills the child. Metrics updated in the
  child are not reported (as in Beam), and ``finish_bundle`` may not emit outputs.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import cloudpickle

from headrace.model.transforms.dofn import DoFn

__all__ = ["SubprocessDoFn", "TimeoutDoFn"]


class TimeoutDoFn(DoFn):
    """``fn`` whose ``process`` fails with ``TimeoutError`` after ``timeout`` seconds."""

    def __init__(self, fn: DoFn, timeout: float) -> None:
        self.fn = fn
        self.timeout = timeout
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pool": None}

    def setup(self) -> None:
        self.fn.setup()

    def start_bundle(self) -> None:
        self.fn.start_bundle()

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any]:
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(4, "headrace-timeout")

        def run() -> list[Any]:
            return list(self.fn.process(element, *args, **kwargs) or ())

        try:
            return self._pool.submit(run).result(self.timeout)
        except TimeoutError:
            self._pool.shutdown(wait=False)  # its thread runs on; a new pool serves what follows
            self._pool = None
            raise

    def finish_bundle(self) -> Iterable[Any] | None:
        return self.fn.finish_bundle()

    def teardown(self) -> None:
        try:
            self.fn.teardown()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None


# -- the child process's side: module state of the child only ---------------------------------

_child_fn: Any = None
_child_pickled: bytes = b""
_child_in_bundle = False


def _child_init(pickled: bytes) -> None:
    global _child_fn, _child_pickled, _child_in_bundle
    _child_fn, _child_pickled, _child_in_bundle = None, pickled, False


def _child_process(element: Any, *args: Any, **kwargs: Any) -> list[Any]:
    global _child_fn, _child_in_bundle
    if _child_fn is None:
        _child_fn = cloudpickle.loads(_child_pickled)
        _child_fn.setup()
    if not _child_in_bundle:
        _child_fn.start_bundle()
        _child_in_bundle = True
    return list(_child_fn.process(element, *args, **kwargs) or ())


def _child_finish_bundle() -> None:
    global _child_in_bundle
    if _child_in_bundle:
        _child_in_bundle = False
        if _child_fn.finish_bundle():
            raise RuntimeError(
                "finish_bundle() of a DoFn run with use_subprocess=True may not emit outputs: "
                "the child process can be replaced after a crash, so they could be lost"
            )


def _child_teardown() -> None:
    global _child_fn
    if _child_fn is not None:
        _child_fn.teardown()
    _child_fn = None


class SubprocessDoFn(DoFn):
    """``fn`` run in a child process; a crash there is an exception for the element."""

    def __init__(self, fn: DoFn, timeout: float | None = None) -> None:
        self.fn = fn
        self.timeout = timeout
        self._pickled = cloudpickle.dumps(fn)
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_pool": None}

    def setup(self) -> None:
        self._pool = None  # the child sets the DoFn up when the first element arrives

    def start_bundle(self) -> None:
        pass

    def process(self, element: Any, *args: Any, **kwargs: Any) -> Iterable[Any]:
        return self._call(_child_process, element, *args, **kwargs)

    def finish_bundle(self) -> Iterable[Any] | None:
        if self._pool is not None:
            self._call(_child_finish_bundle)
        return None

    def teardown(self) -> None:
        if self._pool is not None:
            try:
                self._call(_child_teardown)
            finally:
                self._stop()

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self._pool is None:
            context = multiprocessing.get_context("fork")
            self._pool = concurrent.futures.ProcessPoolExecutor(1, mp_context=context)
            self._pool.submit(_child_init, self._pickled).result()
        limit = self.timeout if method is _child_process else None
        try:
            return self._pool.submit(method, *args, **kwargs).result(limit)
        except (BrokenProcessPool, TimeoutError):
            self._stop()
            raise

    def _stop(self) -> None:
        """Shut the pool down, killing its child: nothing of it may stay alive."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list(getattr(pool, "_processes", {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in processes:
            if p.is_alive():
                p.kill()
        for p in processes:
            p.join(5)
