"""How stage processes start: job processes of the daemon and datum workers of a job.

A process is forked straight from its parent when the parent runs a single thread (a few
milliseconds, nothing imported again). With other threads about (Ray's, a web server's, a
test runner's), a lock one of them holds could be copied held into the child, so children come
from a fork server instead. A fork server is started once and keeps the environment, working
folder and import path it was started with, so a child made by it would see a stale world: an
environment variable set since (a transform's configuration), a module folder added to
``sys.path`` since. :class:`CallerState` carries the parent's current ones to the child, which
applies them first, whichever way it was made.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from dataclasses import dataclass
from typing import Any

__all__ = ["CallerState", "process_context"]


def process_context(preload: tuple[str, ...] = ()) -> Any:
    """The multiprocessing context children start with: fork, or a fork server with threads.

    >>> process_context().get_start_method() in ("fork", "forkserver")
    True
    """
    if threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    if preload:
        context.set_forkserver_preload(list(preload))
    return context


@dataclass(frozen=True)
class CallerState:
    """The environment, working folder and import path of the parent when it starts a child.

    >>> state = CallerState.here()
    >>> state.environ == dict(os.environ) and state.path == sys.path
    True
    """

    environ: dict[str, str]
    cwd: str
    path: list[str]

    @classmethod
    def here(cls) -> CallerState:
        return cls(dict(os.environ), os.getcwd(), list(sys.path))

    def apply(self) -> None:
        """Make this process's environment, folder and import path the parent's."""
        if os.environ != self.environ:
            os.environ.clear()
            os.environ.update(self.environ)
        if sys.path != self.path:
            sys.path[:] = self.path
        try:
            if os.getcwd() != self.cwd:
                os.chdir(self.cwd)
        except OSError:  # the parent's folder is gone: stay where the server is
            pass
