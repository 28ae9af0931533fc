"""Executors: where the tasks of a batch run execute, behind one small interface.

The batch coordinator (:mod:`headrace.runners.coordinator`) decides *which* tasks run and in
what order; an :class:`Executor` decides *where*. The model is dask's scheduler, whose one
``get_async(submit, ...)`` loop serves threads, processes and a distributed cluster, with
``get_sync`` as the synchronous reference for debugging. Here:

- :class:`InlineExecutor` runs each task in the coordinator's own thread, when the coordinator
  asks for its result. It is the reference path: same process, no pickling, in-memory handoff
  of grouping tables, live element counts and cancellation checks inside the task.
- ``LocalProcessExecutor`` (:mod:`headrace.runners.direct.workers`) runs tasks in forked worker
  processes of this machine, detecting workers that die.
- A distributed executor (Ray) submits each task to the cluster; its results come back as the
  same small :class:`~headrace.runners.tasks.TaskResult` descriptors.

An executor only moves :class:`~headrace.runners.tasks.TaskInput` values in and
:class:`~headrace.runners.tasks.TaskResult` values out; every byte a task writes for a later stage
goes through the run's :class:`~headrace.exec.spill.SpillSpace`, which is part of the
:class:`~headrace.runners.tasks.TaskContext`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from headrace.plan.stages import ExecutionPlan, Stage
from headrace.runners.tasks import TaskContext, TaskInput, TaskResult, run_stage_task

__all__ = ["Executor", "InlineExecutor", "TaskFuture", "WorkerLost"]


class WorkerLost(RuntimeError):
    """A task's worker process died (killed by a signal, or exited) before sending its result."""


@runtime_checkable
class TaskFuture(Protocol):
    """The pending result of one submitted task."""

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; ``True`` once the task has finished (or failed)."""
        ...

    def result(self) -> TaskResult:
        """The task's result; raises the task's exception when it failed. Call after ``wait``."""
        ...


@runtime_checkable
class Executor(Protocol):
    """Runs the tasks the coordinator submits; see the module docstring.

    ``shares_memory`` says the tasks run in the coordinator's process: then a grouping may hand
    its table over in memory, and the task reports chunks and checks cancellation live.
    ``parallelism`` is how many tasks can run at once, which is also how many partitions each
    grouping is split into.
    """

    name: str
    shares_memory: bool
    parallelism: int

    def start(self, plan: ExecutionPlan) -> None:
        """Get ready to run tasks of ``plan`` (called in the thread that called ``run()``)."""
        ...

    def submit(self, stage: Stage, task: TaskInput, ctx: TaskContext) -> TaskFuture:
        """Queue one task of ``stage``; never blocks for long."""
        ...

    def close(self, cancel: bool = False) -> None:
        """Release the workers; with ``cancel``, stop tasks that are still running."""
        ...


class _InlineFuture:
    def __init__(self, run: Callable[[], TaskResult]) -> None:
        self._run: Callable[[], TaskResult] | None = run
        self._result: TaskResult | None = None
        self._error: BaseException | None = None

    def wait(self, timeout: float) -> bool:
        if self._run is not None:
            run, self._run = self._run, None
            try:
                self._result = run()
            except BaseException as e:
                self._error = e
        return True

    def result(self) -> TaskResult:
        self.wait(0)
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class InlineExecutor:
    """Runs each task in the calling thread, when its result is first waited for (``get_sync``).

    Deferring the work to ``wait`` keeps the reference order: tasks run one after another in the
    order the coordinator collects them, and after a failure no later task of the stage starts.
    """

    name = "inline"
    shares_memory = True
    parallelism = 1

    def __init__(self) -> None:
        self._plan: ExecutionPlan | None = None

    def start(self, plan: ExecutionPlan) -> None:
        self._plan = plan

    def submit(self, stage: Stage, task: TaskInput, ctx: TaskContext) -> TaskFuture:
        plan = self._plan
        assert plan is not None, "start() the executor first"
        return _InlineFuture(lambda: run_stage_task(plan, stage, task, ctx))

    def close(self, cancel: bool = False) -> None:
        self._plan = None
