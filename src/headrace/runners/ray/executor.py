"""RayExecutor: each task of a batch run is a Ray task; shuffle outputs live in Ray's object store.

A task runs on a Ray worker through the same :func:`~headrace.runners.tasks.run_stage_task` as
on the direct runner. It writes its blobs (shuffle runs, collection chunks) into a
:class:`_TaskSpace`, a temporary folder of the worker; when it finishes, the Ray task returns
``2 + P`` objects: the small :class:`~headrace.runners.tasks.TaskResult` (the only one the driver
fetches), one bundle ``{key: bytes}`` with the collection blobs it wrote, and one bundle per
grouping partition ``p`` with the runs of that partition. The driver keeps only the object
*references*, by blob key, in an :class:`ObjectStoreSpill` (a grouping run's reference is dropped
once the one task that reads it finished, so Ray can free it); a later task receives the references
of exactly the bundles it reads as top-level arguments, so Ray moves those bytes from worker to
worker (across nodes if needed) and they never pass through the driver. Side inputs are the
bundles of the tasks that collected them: stored once, passed by reference.

Ray reuses its worker processes, so tasks ask ``run_stage_task`` to keep set-up DoFn instances
in the process (``TaskContext.reuse_dofns``, :mod:`headrace.runners.dofncache`): a DoFn's
``setup`` runs once per worker process and run, not once per task, and ``teardown`` in each of
those processes when the run ends (:mod:`headrace.runners.ray.runend`).

Only sinks read blobs on the driver: the records a sink's ``Finalize`` commits (file names of
temporary shards, small by design) are fetched after the whole run succeeded.

Work in flight is bounded: :meth:`RayExecutor.submit` queues a task, and at most
``max_in_flight`` queued tasks are handed to Ray at once; the others follow as earlier ones
finish (``ray.wait``). A user exception inside a task comes back as the task's own exception
(with the transform label and element notes that ``run_stage_task`` added); a worker process
that dies is retried by Ray (``max_retries``), and after that the task fails with
:class:`~headrace.runners.executors.WorkerLost`.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
import traceback
import uuid
from collections import deque
from dataclasses import replace
from typing import IO, Any

from headrace.exec.collect import FileCollection
from headrace.exec.grouping import FileRun
from headrace.plan.stages import ExecutionPlan, Stage
from headrace.runners.executors import TaskFuture, WorkerLost
from headrace.runners.ray.runend import RunEnd, check_in, needs_run_end
from headrace.runners.tasks import TaskContext, TaskInput, TaskResult, run_stage_task

__all__ = ["ObjectStoreSpill", "RayExecutor"]

# Times Ray re-runs a task whose worker process died (user exceptions are never retried).
MAX_RETRIES = 3
# Seconds the driver waits, at a run's end, for the worker processes to tear down its DoFns
# (a worker killed mid-run never answers); after a cancellation, the shorter one.
TEARDOWN_WAIT = 10.0
TEARDOWN_WAIT_CANCELLED = 2.0
# Seconds a cancelled task gets to stop by itself before its worker process is killed.
CANCEL_GRACE = 5.0


class _TaskSpace:
    """The spill space a task sees on its worker: input blobs in memory, new blobs in a folder."""

    def __init__(self, inputs: dict[str, bytes]) -> None:
        self.inputs = inputs
        self.root = tempfile.mkdtemp(prefix="headrace-ray-task-")

    def create(self, kind: str) -> tuple[str, IO[bytes]]:
        key = f"{kind}-{uuid.uuid4().hex}"
        return key, open(os.path.join(self.root, key), "wb")

    def open(self, key: str) -> IO[bytes]:
        data = self.inputs.get(key)
        if data is not None:
            return io.BytesIO(data)
        return open(os.path.join(self.root, key), "rb")

    def read(self, key: str) -> bytes:
        with self.open(key) as f:
            return f.read()

    def delete(self, key: str) -> None:
        if self.inputs.pop(key, None) is None:
            try:
                os.unlink(os.path.join(self.root, key))
            except FileNotFoundError:
                pass

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class _Unset:
    """Stands in for the driver's spill space in the context shipped to a worker."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("a Ray task reads its blobs through its own _TaskSpace")


def execute_task(
    plan: ExecutionPlan,
    stage_id: int,
    task: TaskInput,
    ctx: TaskContext,
    partitions: int,
    run_end: Any,
    *bundles: dict[str, bytes],
) -> tuple[Any, ...]:
    """The body of every Ray task (see the module docstring); runs on a worker. ``run_end``: the
    run's :class:`~headrace.runners.ray.runend.RunEnd` actor, or None (no DoFn tears down)."""
    if run_end is not None:
        check_in(run_end, ctx.run_id)
    inputs: dict[str, bytes] = {}
    for bundle in bundles:
        inputs.update(bundle)
    space = _TaskSpace(inputs)
    try:
        result = run_stage_task(plan, plan.stages[stage_id], task, replace(ctx, spill=space))
        parts: list[dict[str, bytes]] = [{} for _ in range(partitions)]
        for runs_by_part in result.groupings.values():
            for p, runs in enumerate(runs_by_part):
                for run in runs:
                    if not isinstance(run, FileRun):
                        raise TypeError(f"a Ray task produced an in-memory run: {run!r}")
                    parts[p][run.key] = space.read(run.key)
        collected: dict[str, bytes] = {}
        for coll_runs in result.collections.values():
            for coll in coll_runs:
                if not isinstance(coll, FileCollection):
                    raise TypeError(f"a Ray task produced an in-memory collection: {coll!r}")
                collected[coll.key] = space.read(coll.key)
        return (result, collected, *parts)
    except BaseException as e:  # the user's file and line, as the direct runner's workers report
        e.add_note("Traceback in the Ray worker process:\n" + traceback.format_exc().rstrip())
        raise
    finally:
        space.cleanup()


class ObjectStoreSpill:
    """The driver's view of a run's blobs: for each key, the Ray object (a bundle) holding it.

    The driver only reads blobs for sinks (:meth:`open`); it never writes one. :meth:`cleanup`
    drops every reference, so Ray frees the objects.
    """

    def __init__(self) -> None:
        self.refs: dict[str, Any] = {}

    def create(self, kind: str) -> tuple[str, IO[bytes]]:
        raise RuntimeError("the Ray driver writes no blobs; tasks write them on workers")

    def open(self, key: str) -> IO[bytes]:
        import ray

        bundle: dict[str, bytes] = ray.get(self.refs[key])
        return io.BytesIO(bundle[key])

    def delete(self, key: str) -> None:
        self.refs.pop(key, None)

    def cleanup(self) -> None:
        self.refs.clear()


def _input_keys(task: TaskInput, ctx: TaskContext) -> list[str]:
    keys = [r.key for r in task.runs if isinstance(r, FileRun)]
    keys += [c.key for c in task.collection if isinstance(c, FileCollection)]
    for runs in ctx.side_data.values():
        keys += [c.key for c in runs if isinstance(c, FileCollection)]
    return keys


class _RayFuture:
    def __init__(self, executor: RayExecutor, consumed: list[str]) -> None:
        self.executor = executor
        self.consumed = consumed  # keys of the grouping runs only this task reads
        self.refs: list[Any] | None = None  # set once submitted to Ray
        self._result: TaskResult | None = None

    def wait(self, timeout: float) -> bool:
        import ray

        self.executor._pump()
        if self.refs is None:  # still queued behind the in-flight bound
            heads = self.executor._in_flight_heads()
            if heads:
                ray.wait(heads, num_returns=1, timeout=timeout)
            self.executor._pump()
            return False
        ready, _ = ray.wait(self.refs[:1], timeout=timeout)
        return bool(ready)

    def _handle_errors(self) -> None:
        """Fetch the failed task's other returns, so Ray does not print them as unhandled."""
        import ray

        for ref in (self.refs or [])[1:]:
            try:
                ray.get(ref)
            except Exception:
                pass

    def result(self) -> TaskResult:
        import ray
        from ray.exceptions import RayTaskError, WorkerCrashedError

        if self._result is not None:
            return self._result
        assert self.refs is not None, "wait() for the task first"
        try:
            result: TaskResult = ray.get(self.refs[0])
        except RayTaskError as e:
            self._handle_errors()
            cause = getattr(e, "cause", None)
            if isinstance(cause, BaseException):
                raise cause.with_traceback(None) from None
            raise
        except WorkerCrashedError as e:
            self._handle_errors()
            raise WorkerLost(
                f"a Ray worker died running a task (after {MAX_RETRIES} retries): {e}"
            ) from None
        finally:
            self.executor._done(self)
        refs = self.executor.spill.refs
        for key in self.consumed:  # read by this task only: let Ray free the bundle
            refs.pop(key, None)
        for runs_by_part in result.groupings.values():
            for p, runs in enumerate(runs_by_part):
                for run in runs:
                    refs[run.key] = self.refs[2 + p]  # type: ignore[union-attr]
        for coll_runs in result.collections.values():
            for coll in coll_runs:
                refs[coll.key] = self.refs[1]  # type: ignore[union-attr]
        self._result = result
        return result


class RayExecutor:
    """Runs each task as a Ray task (see the module docstring); Ray must be initialised."""

    name = "ray"
    shares_memory = False
    concurrent_stages = True  # the coordinator starts every stage whose inputs are complete

    def __init__(
        self, spill: ObjectStoreSpill, parallelism: int, max_in_flight: int | None = None
    ) -> None:
        self.spill = spill
        self.parallelism = parallelism
        self.max_in_flight = max_in_flight or 2 * parallelism
        self._plan_ref: Any = None
        self._run_id = ""
        self._remote: Any = None
        self._queue: deque[tuple[_RayFuture, tuple[Any, ...]]] = deque()
        self._running: list[_RayFuture] = []
        self._run_end: Any = None

    def start(self, plan: ExecutionPlan) -> None:
        import ray

        self._plan_ref = ray.put(plan)  # once per run; every task gets the reference
        self._run_id = uuid.uuid4().hex  # DoFn instances are reused per worker within a run
        self._remote = ray.remote(execute_task)
        if needs_run_end(plan):
            self._run_end = ray.remote(num_cpus=0)(RunEnd).remote()

    def submit(self, stage: Stage, task: TaskInput, ctx: TaskContext) -> TaskFuture:
        assert self._remote is not None, "start() the executor first"
        bundles: dict[str, Any] = {}
        for key in _input_keys(task, ctx):
            ref = self.spill.refs[key]
            bundles[ref.hex()] = ref
        shipped = replace(
            ctx,
            spill=_Unset(),
            cancelled=None,
            on_chunk=None,
            reuse_dofns=True,
            run_id=self._run_id,
        )
        args = (
            self._plan_ref, stage.id, task, shipped, ctx.num_partitions, self._run_end,
            *bundles.values(),
        )  # fmt: skip
        future = _RayFuture(self, [r.key for r in task.runs if isinstance(r, FileRun)])
        self._queue.append((future, args))
        self._pump()
        return future

    def _in_flight_heads(self) -> list[Any]:
        return [f.refs[0] for f in self._running if f.refs is not None]

    def _pump(self) -> None:
        while self._queue and len(self._running) < self.max_in_flight:
            future, args = self._queue.popleft()
            partitions = args[4]
            future.refs = self._remote.options(
                num_returns=2 + partitions, max_retries=MAX_RETRIES
            ).remote(*args)
            self._running.append(future)

    def _done(self, future: _RayFuture) -> None:
        if future in self._running:
            self._running.remove(future)
        self._pump()

    def close(self, cancel: bool = False) -> None:
        import ray

        if cancel:
            # First as Ray's gentle cancel (KeyboardInterrupt in the task, so it unwinds and
            # its DoFns tear down), then, for tasks still running after a grace period, by
            # killing their worker processes.
            running = [f.refs[0] for f in self._running if f.refs is not None]
            for ref in running:
                ray.cancel(ref, force=False)
            if running:
                _, stuck = ray.wait(running, num_returns=len(running), timeout=CANCEL_GRACE)
                for ref in stuck:
                    ray.cancel(ref, force=True)
        self._queue.clear()
        self._running = []
        self._plan_ref = None
        run_end, self._run_end = self._run_end, None
        if run_end is not None:  # every worker process tears the run's DoFns down
            wait = TEARDOWN_WAIT_CANCELLED if cancel else TEARDOWN_WAIT
            try:
                ray.get(run_end.end.remote(wait))
                ray.kill(run_end)
            except Exception:  # best effort, as Beam's teardown: never fail the run for it
                pass
