"""Worker processes for ``direct_running_mode='multi_processing'``: the local process executor.

:class:`LocalProcessExecutor` forks its workers from the thread that calls ``Pipeline.run()``
(before any coordinator thread exists) and inherits the execution plan from the fork, so the
plan is never sent; a worker that replaces a dead one is forked later, from the coordinator
thread. A task message carries only the stage id, the task's input descriptors (source splits or
spill-space runs) and the shared context; results come back as small descriptors of the blobs
the task wrote.

Each worker has its own pipe and runs one task at a time, so the executor always knows which task
a worker holds. The coordinator's ``wait`` pumps the pool: it hands queued tasks to idle workers,
reads finished results, and watches every worker's process sentinel. A worker that dies without
answering (SIGKILL from the OOM killer, ``os._exit`` in user code, a crash in a C extension) is
replaced, and its task is run once more on the new worker; if the task's second worker dies as
well, the task fails with :class:`~headrace.runners.executors.WorkerLost` naming the stage, the
worker and the signal, and the run fails instead of waiting forever.

A worker whose task left at least ``EXIT_AFTER_BYTES`` in dead grouping tables (a shuffle writer's
table, a reader's merged groups) does not free them: it sends its result flagged ``exiting`` and
calls ``os._exit``, and the executor forks its successor on receipt, while the other workers still
work (:mod:`headrace.exec.gcpolicy` says why). A retirement is not a death: no task attempt is
spent on it, and the next task never reaches the exiting process.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any

from headrace.exec.gcpolicy import defer_frees_to_exit, free_kept, kept_for_exit
from headrace.plan.stages import ExecutionPlan, Stage
from headrace.runners.executors import TaskFuture, WorkerLost
from headrace.runners.tasks import TaskContext, TaskInput, TaskResult, run_stage_task

__all__ = ["LocalProcessExecutor", "TaskFailure"]

# How many times a task runs at most when its worker process dies under it.
MAX_ATTEMPTS = 2

# A worker whose task left at least this much in dead grouping tables exits after sending its
# result instead of freeing them object by object (exec/gcpolicy.py); a fresh worker is forked.
# Deallocating costs ~1 ms per MB of small objects, forking a worker a few ms.
EXIT_AFTER_BYTES = 32 << 20


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


def _run_task(
    plan: ExecutionPlan, stage_id: int, task: TaskInput, ctx: TaskContext
) -> TaskResult | TaskFailure:
    try:
        return run_stage_task(plan, plan.stages[stage_id], task, ctx)
    except BaseException as e:
        tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
        try:
            data: bytes | None = pickle.dumps(e)
            pickle.loads(pickle.dumps(e))
        except Exception:
            data = None
        return TaskFailure(data, f"{type(e).__name__}: {e}", tb)


class _Terminated(BaseException):
    """Raised in a worker by the executor's SIGTERM (a run that failed or was cancelled): the
    running task unwinds, so its DoFns' ``teardown`` runs, and the worker leaves."""


_terminated = False


def _on_sigterm(signum: int, frame: Any) -> None:
    global _terminated
    _terminated = True
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: teardown is not interrupted again
    raise _Terminated


def _worker_main(conn: multiprocessing.connection.Connection, plan: ExecutionPlan) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C
    signal.signal(signal.SIGTERM, _on_sigterm)
    defer_frees_to_exit()
    try:
        _serve(conn, plan)
    except _Terminated:  # between tasks: nothing to tear down
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def _serve(conn: multiprocessing.connection.Connection, plan: ExecutionPlan) -> None:
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        outcome = _run_task(plan, *message)
        if _terminated:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)  # the executor stopped listening: nothing to report
        exiting = kept_for_exit() >= EXIT_AFTER_BYTES
        conn.send((outcome, exiting))
        if exiting:
            # Leave without freeing the task's dead tables (EXIT_AFTER_BYTES); the executor,
            # told so with the result, already counts this worker as gone.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)
        free_kept()


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by signal {-exitcode} ({name})"
    return f"exited with status {exitcode}"


class _Future:
    def __init__(self, pool: LocalProcessExecutor, stage: Stage, message: tuple[Any, ...]) -> None:
        self.pool = pool
        self.stage = stage
        self.message = message
        self.attempts = 0
        self.done = False
        self.outcome: TaskResult | BaseException | None = None

    def wait(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.done:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.pool.pump(left)
        return True

    def result(self) -> TaskResult:
        assert self.done, "wait() for the task first"
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        assert self.outcome is not None
        return self.outcome

    def finish(self, outcome: TaskResult | BaseException) -> None:
        self.outcome = outcome
        self.done = True


class _Worker:
    def __init__(self, ctx: Any, plan: ExecutionPlan) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, plan), daemon=True)
        self.process.start()
        child.close()
        self.task: _Future | None = None


class LocalProcessExecutor:
    """N forked worker processes running stage tasks; a dead worker is replaced (see module)."""

    name = "local_processes"
    shares_memory = False

    def __init__(self, num_workers: int) -> None:
        self.parallelism = num_workers
        self._ctx = multiprocessing.get_context("fork")
        self._workers: list[_Worker] = []
        self._queue: deque[_Future] = deque()
        self._plan: ExecutionPlan | None = None
        self._retired: list[Any] = []  # processes that exited on their own, to reap

    def start(self, plan: ExecutionPlan) -> None:
        self._plan = plan
        self._workers = [_Worker(self._ctx, plan) for _ in range(self.parallelism)]

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers (for monitoring, and tests that kill one)."""
        return [w.process.pid for w in self._workers]

    def submit(self, stage: Stage, task: TaskInput, ctx: TaskContext) -> TaskFuture:
        future = _Future(self, stage, (stage.id, task, ctx))
        self._queue.append(future)
        self._dispatch()
        return future

    def _dispatch(self) -> None:
        for worker in list(self._workers):
            if not self._queue:
                return
            if worker.task is None and not worker.process.is_alive():
                # Died while idle (exited after a big task, or was killed from outside): replace
                # it before it gets a task.
                worker = self._renew_idle(worker)
            if worker.task is None:
                future = self._queue.popleft()
                future.attempts += 1
                worker.task = future
                try:
                    worker.conn.send(future.message)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the worker died; pump() sees its sentinel and handles the task
                except Exception as e:  # the task itself cannot be sent (does not pickle)
                    worker.task = None
                    future.finish(e)

    def pump(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for news from the workers and act on it (see the module)."""
        busy = [w for w in self._workers if w.task is not None]
        if not busy:
            self._dispatch()
            busy = [w for w in self._workers if w.task is not None]
            if not busy:
                time.sleep(min(timeout, 0.01))
                return
        waitables: list[Any] = [w.conn for w in busy] + [w.process.sentinel for w in busy]
        ready = set(multiprocessing.connection.wait(waitables, timeout))
        for worker in busy:
            future = worker.task
            assert future is not None
            if worker.conn in ready:
                try:
                    outcome = worker.conn.recv()
                except (EOFError, OSError):
                    outcome = None  # died while answering: handled as a death below
                if outcome is not None:
                    outcome, exiting = outcome
                    worker.task = None
                    if exiting:
                        self._retire(worker)
                    if isinstance(outcome, TaskFailure):
                        future.finish(outcome.rebuild())
                    else:
                        future.finish(outcome)
                    continue
            if worker.conn in ready or worker.process.sentinel in ready:
                self._replace(worker)
        self._dispatch()

    def _renew_idle(self, worker: _Worker) -> _Worker:
        """A fresh worker in place of ``worker``, which held no task and has died."""
        assert self._plan is not None
        worker.conn.close()
        worker.process.join()
        fresh = self._workers[self._workers.index(worker)] = _Worker(self._ctx, self._plan)
        return fresh

    def _retire(self, worker: _Worker) -> None:
        """``worker`` sent its last result and exits (EXIT_AFTER_BYTES): fork its successor now,
        while other workers are still busy; the old process is reaped at :meth:`close`."""
        assert self._plan is not None
        worker.conn.close()
        self._retired.append(worker.process)
        self._workers[self._workers.index(worker)] = _Worker(self._ctx, self._plan)

    def _replace(self, worker: _Worker) -> None:
        """The worker died holding a task: start another worker; retry the task or fail it."""
        future = worker.task
        assert future is not None
        worker.process.join(5)
        how = _how_it_ended(worker.process.exitcode)
        pid = worker.process.pid
        worker.conn.close()
        assert self._plan is not None
        self._workers[self._workers.index(worker)] = _Worker(self._ctx, self._plan)
        if future.attempts < MAX_ATTEMPTS:
            self._queue.appendleft(future)
            return
        future.finish(
            WorkerLost(
                f"stage {future.stage.name!r}: the worker process (pid {pid}) running one of its "
                f"tasks {how}, after the task had already been retried once on a fresh worker "
                f"(attempt {future.attempts} of {MAX_ATTEMPTS}); a worker killed by SIGKILL is "
                "often the out-of-memory killer: lower direct_memory_budget_mb or the size of "
                "what one element makes"
            )
        )

    def close(self, cancel: bool = False) -> None:
        workers, self._workers = self._workers, []
        for w in workers:
            if cancel or w.task is not None:
                w.process.terminate()
            else:
                try:
                    w.conn.send(None)
                except OSError:
                    w.process.terminate()
        for w in workers:
            w.process.join(5)
            if w.process.is_alive():
                os.kill(w.process.pid, signal.SIGKILL)
                w.process.join()
            w.conn.close()
        retired, self._retired = self._retired, []
        for process in retired:
            process.join(5)
            if process.is_alive():
                os.kill(process.pid, signal.SIGKILL)
                process.join()
        self._queue.clear()
