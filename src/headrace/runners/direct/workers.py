"""Worker processes for ``direct_running_mode='multi_processing'``.

The pool is forked from the thread that calls ``Pipeline.run()`` (before any coordinator thread
exists), after the execution plan has been stored in :data:`_PLAN`, so every worker inherits the
plan without it being sent again. A task message carries only the stage id, the task's input
descriptors (source splits or file runs) and the shared context; results come back as small
descriptors of the files the task wrote.
"""

from __future__ import annotations

import multiprocessing
import pickle
import signal
import traceback
from dataclasses import dataclass
from typing import Any

from headrace.plan.stages import ExecutionPlan
from headrace.runners.tasks import TaskContext, TaskInput, TaskResult, run_stage_task

__all__ = ["TaskFailure", "WorkerPool"]

_PLAN: ExecutionPlan | None = None


@dataclass
class TaskFailure:
    """An exception raised in a worker, made safe to send back."""

    exception: bytes | None
    description: str
    traceback: str

    def rebuild(self) -> BaseException:
        exc: BaseException | None = None
        if self.exception is not None:
            try:
                exc = pickle.loads(bytes(self.exception))
            except Exception:
                exc = None
        if exc is None:
            exc = RuntimeError(self.description)
        exc.add_note("Traceback in the worker process:\n" + self.traceback.rstrip())
        return exc


def _init_worker() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C


def _run_task(stage_id: int, task: TaskInput, ctx: TaskContext) -> TaskResult | TaskFailure:
    assert _PLAN is not None
    try:
        return run_stage_task(_PLAN, _PLAN.stages[stage_id], task, ctx)
    except BaseException as e:
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        try:
            data: bytes | None = pickle.dumps(e)
            pickle.loads(pickle.dumps(e))
        except Exception:
            data = None
        return TaskFailure(data, f"{type(e).__name__}: {e}", tb)


class WorkerPool:
    """N forked worker processes running stage tasks."""

    def __init__(self, num_workers: int, plan: ExecutionPlan) -> None:
        global _PLAN
        _PLAN = plan
        ctx = multiprocessing.get_context("fork")
        self.pool = ctx.Pool(num_workers, initializer=_init_worker)
        self.num_workers = num_workers

    def submit(self, stage_id: int, task: TaskInput, ctx: TaskContext) -> Any:
        return self.pool.apply_async(_run_task, (stage_id, task, ctx))

    def close(self, terminate: bool = False) -> None:
        if terminate:
            self.pool.terminate()
        else:
            self.pool.close()
        self.pool.join()
