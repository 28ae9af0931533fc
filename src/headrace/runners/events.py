"""Run events: what a running pipeline tells the outside (progress displays, the job service).

Every runner reports the life of a run as a stream of small, frozen events delivered to the
registered listeners, in order within a run. The coordinating thread emits them; in a streaming
run the per-step ``StageUpdated`` and ``Watermark`` events come from a sampler thread, and
``LogRecord`` events from the thread that ran the user code (so a listener must be thread-safe):

==================  ============================================================================
event               when
==================  ============================================================================
``RunSubmitted``    ``run()`` accepted the pipeline; carries the result handle (Job API) and the
                    names of the stages (batch) or steps (streaming)
``RunStarted``      the coordinator began
``StageStarted``    a batch stage's tasks were submitted
``StageUpdated``    counts of a stage or a streaming step moved (at most every ``PROGRESS_S``)
``TaskFinished``    one task ended: its element counts, seconds and metric updates
``StageFinished``   a stage ended (``done`` or ``failed``) with its totals
``Watermark``       a streaming step's output watermark advanced
``LogRecord``       user code logged through :mod:`logging` while a step ran
``RunFinished``     the run ended: ``DONE``, ``FAILED`` (with the error) or ``CANCELLED``
==================  ============================================================================

Listeners are callables taking one event. :func:`add_listener` registers one for every run of
this process (the CLI's progress table does so); ``listening`` does the same for a ``with``
block. A listener that raises is logged and dropped from that run's delivery, never allowed to
break the run. Events other than ``RunSubmitted`` hold only plain data, so a service can forward
them to another process as they are.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from headrace.model.metrics import MetricUpdates, current_container

__all__ = [
    "PROGRESS_S",
    "LogRecord",
    "RunEvent",
    "RunFinished",
    "RunListener",
    "RunStarted",
    "RunSubmitted",
    "StageFinished",
    "StageStarted",
    "StageUpdated",
    "TaskFinished",
    "Watermark",
    "add_listener",
    "capture_logs",
    "emit",
    "listening",
    "remove_listener",
]

# Least seconds between two StageUpdated events of one stage or step.
PROGRESS_S = 0.25

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunEvent:
    """Base of every event: the run it belongs to and when (``time.time()``)."""

    run_id: str
    at: float = field(default_factory=time.time, kw_only=True)


@dataclass(frozen=True)
class RunSubmitted(RunEvent):
    streaming: bool
    stages: tuple[str, ...]
    result: Any = field(default=None, repr=False, compare=False)  # the handle; in-process only


@dataclass(frozen=True)
class RunStarted(RunEvent):
    pass


@dataclass(frozen=True)
class RunFinished(RunEvent):
    state: str  # a PipelineState name
    error: str | None = None
    # for a failed run, when known: the transform whose code raised, the element it was
    # processing (a short repr) and the Python traceback with the error's notes
    step: str | None = None
    element: str | None = None
    traceback: str | None = None


@dataclass(frozen=True)
class StageStarted(RunEvent):
    stage: int
    name: str
    tasks: int


@dataclass(frozen=True)
class StageUpdated(RunEvent):
    stage: int
    name: str
    elements_in: int
    elements_out: int


@dataclass(frozen=True)
class TaskFinished(RunEvent):
    stage: int
    name: str
    elements_in: int
    elements_out: int
    seconds: float
    metrics: MetricUpdates
    # elements in and out of each fused transform of the task and its own seconds, by id
    operators: Mapping[str, tuple[int, int, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class StageFinished(RunEvent):
    stage: int
    name: str
    state: str  # "done" or "failed"
    elements_in: int
    elements_out: int
    seconds: float
    tasks: int
    spills: int


@dataclass(frozen=True)
class Watermark(RunEvent):
    step: str
    watermark_us: int


@dataclass(frozen=True)
class LogRecord(RunEvent):
    step: str | None  # the transform whose code logged, when one was running
    level: int
    logger: str
    message: str


RunListener = Callable[[RunEvent], None]

_listeners: list[RunListener] = []
_lock = threading.Lock()


def add_listener(listener: RunListener) -> None:
    """Deliver the events of every run of this process to ``listener`` from now on."""
    with _lock:
        _listeners.append(listener)


def remove_listener(listener: RunListener) -> None:
    with _lock:
        if listener in _listeners:
            _listeners.remove(listener)


@contextmanager
def listening(listener: RunListener) -> Iterator[RunListener]:
    """Register ``listener`` for the ``with`` block.

    >>> seen = []
    >>> with listening(seen.append):
    ...     emit(RunStarted("run-1"))
    >>> [type(e).__name__ for e in seen]
    ['RunStarted']
    """
    add_listener(listener)
    try:
        yield listener
    finally:
        remove_listener(listener)


def emit(event: RunEvent) -> None:
    """Hand ``event`` to every registered listener; a listener's failure is only logged."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(event)
        except Exception:
            _log.exception("headrace: a run-event listener failed on %s", type(event).__name__)


class _TaskLogHandler(logging.Handler):
    """Collects records logged while a task runs, with the step whose code was running.

    With ``run_id`` it emits each as a :class:`LogRecord` event at once instead (streaming runs,
    whose "task" lasts as long as the run).
    """

    def __init__(self, run_id: str | None = None) -> None:
        super().__init__(logging.NOTSET)
        self.run_id = run_id
        self.records: list[tuple[str | None, int, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith("headrace"):
            return
        container = current_container()
        try:
            message = record.getMessage()
        except Exception:  # a bad format string in user code must not fail the task
            message = str(record.msg)
        step = container.step if container is not None else None
        if self.run_id is not None:
            emit(LogRecord(self.run_id, step, record.levelno, record.name, message))
        else:
            self.records.append((step, record.levelno, record.name, message))


@contextmanager
def capture_logs(run_id: str | None = None) -> Iterator[list[tuple[str | None, int, str, str]]]:
    """Collect ``(step, level, logger, message)`` of user log records inside the block.

    With ``run_id`` the records are emitted as :class:`LogRecord` events as they happen instead.
    The handler sits on the root logger, so records still reach the handlers the user set up.
    Records below the level of their logger are not seen (as with any handler), and records
    logged by other threads of the process during the block are attributed to this run.
    """
    handler = _TaskLogHandler(run_id)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler.records
    finally:
        root.removeHandler(handler)
