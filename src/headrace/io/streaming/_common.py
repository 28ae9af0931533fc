"""Helpers shared by the streaming connectors: optional imports, clocks and a private event loop.

``require`` imports a client library that lives in the ``streaming`` extra and says how to install
it when it is missing. ``LoopThread`` runs an asyncio event loop in a daemon thread owned by one
reader, so an asyncio client (nats-py) can sit behind the synchronous poll API. asyncio is
imported when a loop is made, not with this module: it is slow to import and most pipelines never
need it.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, TypeVar

__all__ = ["Clock", "LoopThread", "clock_us", "require"]

T = TypeVar("T")

Clock = Callable[[], float]
"""A processing-time clock: seconds since the epoch, like :func:`time.time`."""


def require(module: str, package: str, transform: str) -> ModuleType:
    """Import ``module``; if it is missing, raise an ImportError naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{transform} needs the {package!r} package, which is not installed; install it with "
            f"pip install 'headrace[streaming]' (or pip install {package})"
        ) from exc


def clock_us(clock: Clock | None) -> int:
    """The current time of ``clock`` (the real clock when None) in integer microseconds."""
    if clock is None:
        return time.time_ns() // 1000
    return round(clock() * 1_000_000)


class LoopThread:
    """An asyncio event loop running in its own daemon thread, for one reader.

    ``run(coro, timeout)`` runs a coroutine on the loop and waits for its result from the
    calling thread. ``close()`` cancels what is left, stops the loop and joins the thread.
    """

    def __init__(self, name: str) -> None:
        import asyncio

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()

    def _main(self) -> None:
        import asyncio

        asyncio.set_event_loop(self._loop)
        self._loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        if self._loop.is_closed():
            coro.close()
            raise RuntimeError("the reader is closed")
        import asyncio

        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        if self._loop.is_closed():
            return
        if self._thread.is_alive():
            try:
                self.run(self._cancel_all(), timeout=10)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(10)
        self._loop.close()

    @staticmethod
    async def _cancel_all() -> None:
        import asyncio

        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.get_running_loop().shutdown_asyncgens()
