"""The batch coordinator: runs an execution plan stage by stage on any executor.

One coordinator serves every batch runner. It walks the stages in plan order (or, when the
executor says ``concurrent_stages``, starts every stage whose inputs are complete, so
independent stages run at the same time); for each it makes
the tasks (source splits, one per partition of a grouping, or shares of a collection), submits
them to the :class:`~headrace.runners.executors.Executor`, and records what they wrote in
:class:`RunOutputs`: grouping runs per partition, collection runs, metric updates. After the last
stage it hands each ``Finalize`` its records (``commit``); when anything failed or the run was
cancelled it calls ``abort`` instead, so no sink output becomes visible.

Where outputs live: a task writes through the run's :class:`~headrace.exec.spill.SpillSpace` and
returns small descriptors (keys and offsets, or an in-memory table when the executor shares the
coordinator's memory); :class:`RunOutputs` keeps those descriptors and turns them into the next
stage's :class:`~headrace.runners.tasks.TaskInput` values. So a task never needs to know which
worker produced its input, only the space it reads from.

The coordinator runs in one thread and is the only code that moves a run's state; cancellation
is an event it checks between chunks (inline) or while it waits for results (other executors).
It reports each stage through :mod:`headrace.runners.events` (``StageStarted``, ``StageUpdated``,
``TaskFinished`` with the task's metric updates, ``LogRecord`` for what user code logged,
``StageFinished``) under the ``run_id`` it was given.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from headrace.exec.collect import CollectionRun, read_collection
from headrace.exec.errors import annotate
from headrace.exec.grouping import Run
from headrace.exec.spill import SpillSpace
from headrace.model.metrics import MetricUpdates
from headrace.model.window import WindowedValue
from headrace.plan.stages import ExecutionPlan, Stage
from headrace.runners import events
from headrace.runners.executors import Executor
from headrace.runners.tasks import Cancelled, TaskContext, TaskInput, TaskResult

__all__ = ["BatchCoordinator", "RunOutputs", "StageProgress"]

# How often (seconds) the coordinator looks at the cancel event while it waits for a task.
_POLL = 0.05


@dataclass
class StageProgress:
    """Live counts of one stage, for progress displays."""

    name: str
    state: str = "pending"  # pending -> running -> done | failed
    started: float | None = None
    elements_in: int = 0
    elements_out: int = 0
    seconds: float = 0.0
    tasks: int = 0
    spills: int = 0
    watermark_us: int | None = None  # streaming steps: the output watermark


@dataclass
class RunOutputs:
    """What the finished tasks of a run wrote, as descriptors the next stages' tasks read."""

    groupings: dict[str, list[list[Run]]] = field(default_factory=dict)
    collections: dict[str, list[CollectionRun]] = field(default_factory=dict)
    metrics: MetricUpdates = field(default_factory=MetricUpdates)

    # The stage of each descriptor in the lists above, position by position: several stages
    # may write one grouping or collection, and finish in any order when stages run at once.
    _stages: dict[tuple[str, str, int], list[int]] = field(default_factory=dict)

    def add(self, result: TaskResult) -> None:
        """Record one task's outputs. A stage's tasks are added in task order; descriptors of
        different stages are kept in stage order, whichever stage finished first, so what a
        later stage reads (and its order) does not depend on timing."""
        for gid, parts in result.groupings.items():
            target = self.groupings.setdefault(gid, [[] for _ in range(len(parts))])
            for p, runs in enumerate(parts):
                self._insert(("g", gid, p), target[p], runs, result.stage)
        for pid, coll_runs in result.collections.items():
            target_c = self.collections.setdefault(pid, [])
            self._insert(("c", pid, 0), target_c, coll_runs, result.stage)
        self.metrics.merge(result.metrics)

    def _insert(
        self, key: tuple[str, str, int], target: list[Any], items: list[Any], stage: int
    ) -> None:
        stages = self._stages.setdefault(key, [])
        at = bisect.bisect_right(stages, stage)
        target[at:at] = items
        stages[at:at] = [stage] * len(items)

    def tasks(self, plan: ExecutionPlan, stage: Stage, partitions: int) -> list[TaskInput]:
        """The inputs of ``stage``'s tasks: how the stage finds what earlier stages wrote."""
        root, n = stage.root, partitions
        if root.kind == "source":
            node = plan.leaves[root.node]
            assert node.payload is not None
            source = node.payload.load()
            elements = source.as_list() if node.payload.is_shared else None
            if elements is not None:
                # The elements travel once, with the plan; each task gets index ranges of them.
                size = max(1, -(-len(elements) // n))
                ranges = [
                    (lo, min(lo + size, len(elements))) for lo in range(0, len(elements), size)
                ]
                return [TaskInput(ranges=[r]) for r in ranges] or [TaskInput(ranges=[(0, 0)])]
            try:
                splits = source.split(n) if n > 1 else [source]
            except Exception as e:
                raise annotate(e, node.label, what="split()") from None
            return [TaskInput(sources=splits[i::n]) for i in range(min(n, len(splits)))]
        if root.kind == "impulse":
            return [TaskInput(sources=[None])]
        if root.kind == "grouping":
            parts = self.groupings.get(root.node, [])
            return [TaskInput(runs=runs) for runs in parts if runs]
        if root.kind == "collection":
            runs = self.collections.get(root.node, [])
            return [TaskInput(collection=runs, part=(i, n)) for i in range(n)] if runs else []
        return [TaskInput()]

    def records(self, pid: str, spill: SpillSpace) -> list[Any]:
        """Every element of the materialised collection ``pid``, values only (for sinks)."""
        records: list[Any] = []
        for chunk in read_collection(self.collections.get(pid, []), spill):
            records.extend(x.value if type(x) is WindowedValue else x for x in chunk)
        return records


@dataclass
class _StageRun:
    """A stage started by :meth:`BatchCoordinator._run_concurrently` and not finished yet."""

    stage: Stage
    progress: StageProgress
    futures: list[Any]
    results: list[TaskResult | None]
    pending: list[int]
    errors: dict[int, BaseException] = field(default_factory=dict)


class BatchCoordinator:
    """Runs ``plan`` on ``executor``; see the module docstring.

    ``run()`` returns normally when every stage finished and every sink committed; it raises the
    first failure (after aborting the sinks), or :class:`~headrace.runners.tasks.Cancelled` when
    ``cancel`` was set. ``outputs.metrics`` holds the metric updates of the finished tasks either
    way. The executor must have been started; the coordinator does not close it.
    """

    def __init__(
        self,
        plan: ExecutionPlan,
        executor: Executor,
        spill: SpillSpace,
        *,
        budget_bytes: int,
        bundle_size: int,
        cancel: threading.Event | None = None,
        run_id: str = "",
    ) -> None:
        self.run_id = run_id
        self.plan = plan
        self.executor = executor
        self.spill = spill
        self.budget_bytes = budget_bytes
        self.bundle_size = bundle_size
        self.cancel = cancel if cancel is not None else threading.Event()
        self.outputs = RunOutputs()
        self.progress = [StageProgress(s.name) for s in plan.stages]
        self._side_inputs = {s.pcollection for n in plan.leaves.values() for s in n.side_inputs}

    def run(self) -> None:
        try:
            if getattr(self.executor, "concurrent_stages", False):
                self._run_concurrently()
            else:
                for stage in self.plan.stages:
                    if self.cancel.is_set():
                        raise Cancelled()
                    self._run_stage(stage)
            self._commit()
        except BaseException as e:
            self._abort(e)
            raise

    # -- one stage -------------------------------------------------------------------------------

    def _context(self, progress: StageProgress) -> TaskContext:
        inline = self.executor.shares_memory

        last = [0.0]

        def on_chunk(n: int) -> None:
            progress.elements_in += n
            now = time.monotonic()
            if now - last[0] >= events.PROGRESS_S:
                last[0] = now
                self._updated(progress)

        return TaskContext(
            num_partitions=self.executor.parallelism,
            spill=self.spill,
            budget_bytes=self.budget_bytes,
            bundle_size=self.bundle_size,
            in_memory_handoff=inline,
            side_data={pid: self.outputs.collections.get(pid, []) for pid in self._side_inputs},
            cancelled=self.cancel.is_set if inline else None,
            on_chunk=on_chunk if inline else None,
        )

    def _updated(self, progress: StageProgress) -> None:
        stage = self.progress.index(progress)
        events.emit(
            events.StageUpdated(
                self.run_id, stage, progress.name, progress.elements_in, progress.elements_out
            )
        )

    def _run_stage(self, stage: Stage) -> None:
        progress = self.progress[stage.id]
        progress.state = "running"
        started = progress.started = time.perf_counter()
        try:
            self._run_stage_tasks(stage, progress)
        except BaseException:
            progress.state = "failed"
            progress.seconds = time.perf_counter() - started
            self._stage_finished(stage, progress)
            raise
        progress.seconds = time.perf_counter() - started
        progress.state = "done"
        self._stage_finished(stage, progress)

    def _stage_finished(self, stage: Stage, p: StageProgress) -> None:
        events.emit(
            events.StageFinished(
                self.run_id,
                stage.id,
                stage.name,
                p.state,
                p.elements_in,
                p.elements_out,
                p.seconds,
                p.tasks,
                p.spills,
            )
        )

    def _task_finished(self, stage: Stage, result: TaskResult) -> None:
        events.emit(
            events.TaskFinished(
                self.run_id,
                stage.id,
                stage.name,
                result.elements_in,
                result.elements_out,
                result.seconds,
                result.metrics,
                result.operators,
            )
        )
        for step, level, logger, message in result.logs:
            events.emit(events.LogRecord(self.run_id, step, level, logger, message))

    def _run_stage_tasks(self, stage: Stage, progress: StageProgress) -> None:
        tasks = self.outputs.tasks(self.plan, stage, self.executor.parallelism)
        progress.tasks = len(tasks)
        events.emit(events.StageStarted(self.run_id, stage.id, stage.name, len(tasks)))
        ctx = self._context(progress)
        futures = [self.executor.submit(stage, task, ctx) for task in tasks]
        results: list[TaskResult | None] = [None] * len(futures)
        # Results are taken as tasks finish and recorded in task order below, so collections
        # keep their order. When a task fails, the run fails with the failure of the first task
        # in task order (the tasks before it are waited for), so the error does not depend on
        # timing. The inline executor runs a task when it is first waited for: still in order.
        errors: dict[int, BaseException] = {}
        pending = list(range(len(futures)))
        while pending:
            waiting = []
            for i in pending:
                if errors and i > min(errors):
                    continue  # never start (inline) or wait for a task after a failed one
                if futures[i].wait(0):
                    try:
                        results[i] = self._consume(stage, progress, futures[i])
                    except BaseException as e:
                        errors[i] = e
                        for step, level, logger, message in getattr(e, "_headrace_logs", ()):
                            events.emit(events.LogRecord(self.run_id, step, level, logger, message))
                else:
                    waiting.append(i)
            if waiting and len(waiting) == len(pending) and not futures[waiting[0]].wait(_POLL):
                if self.cancel.is_set():
                    raise Cancelled()
            pending = waiting
        if errors:
            raise errors[min(errors)]
        for r in results:
            assert r is not None
            self.outputs.add(r)

    # -- stages at once (executors with ``concurrent_stages``) -------------------------------------

    def _run_concurrently(self) -> None:
        """Start every stage whose inputs are complete; take results as they come.

        A stage starts once every stage it depends on is done, so independent branches of a
        pipeline run side by side; the executor bounds the work in flight. Per stage, results
        are recorded in task order and a failure is the first failed task's in task order, as
        in :meth:`_run_stage_tasks`; the first stage to fail fails the run.
        """
        waiting = list(self.plan.stages)
        done: set[int] = set()
        active: dict[int, _StageRun] = {}
        while waiting or active:
            if self.cancel.is_set():
                raise Cancelled()
            for stage in [s for s in waiting if all(d in done for d in s.depends_on)]:
                waiting.remove(stage)
                active[stage.id] = self._start_stage(stage)
            if not active:  # pragma: no cover - a plan's dependencies have no cycle
                raise RuntimeError("no stage of the plan can start")
            moved = False
            for sid, run in list(active.items()):
                moved |= self._poll_stage(run)
                if run.pending:
                    continue
                del active[sid]
                progress = run.progress
                progress.seconds = time.perf_counter() - (progress.started or 0.0)
                if run.errors:
                    progress.state = "failed"
                    self._stage_finished(run.stage, progress)
                    raise run.errors[min(run.errors)]
                for r in run.results:
                    assert r is not None
                    self.outputs.add(r)
                progress.state = "done"
                self._stage_finished(run.stage, progress)
                done.add(sid)
            if not moved and active:
                first = next(iter(active.values()))
                if first.pending:
                    first.futures[first.pending[0]].wait(_POLL)

    def _start_stage(self, stage: Stage) -> _StageRun:
        progress = self.progress[stage.id]
        progress.state = "running"
        progress.started = time.perf_counter()
        tasks = self.outputs.tasks(self.plan, stage, self.executor.parallelism)
        progress.tasks = len(tasks)
        events.emit(events.StageStarted(self.run_id, stage.id, stage.name, len(tasks)))
        ctx = self._context(progress)
        futures = [self.executor.submit(stage, task, ctx) for task in tasks]
        return _StageRun(stage, progress, futures, [None] * len(futures), list(range(len(tasks))))

    def _poll_stage(self, run: _StageRun) -> bool:
        """Take the finished results of ``run``; True when any was taken."""
        moved = False
        still = []
        for i in run.pending:
            if run.errors and i > min(run.errors):
                continue  # a task after a failed one is not waited for
            if run.futures[i].wait(0):
                moved = True
                try:
                    run.results[i] = self._consume(run.stage, run.progress, run.futures[i])
                except BaseException as e:
                    run.errors[i] = e
            else:
                still.append(i)
        run.pending = still
        return moved

    def _consume(self, stage: Stage, progress: StageProgress, future: Any) -> TaskResult:
        result: TaskResult = future.result()
        if not self.executor.shares_memory:
            progress.elements_in += result.elements_in
        progress.elements_out += result.elements_out
        progress.spills += result.spills
        self._task_finished(stage, result)
        self._updated(progress)
        return result

    # -- sinks -----------------------------------------------------------------------------------

    def _commit(self) -> None:
        for tid, pid in self.plan.finalizers:
            node = self.plan.leaves[tid]
            assert node.payload is not None
            finalizer = node.payload.load()
            try:
                finalizer.commit(self.outputs.records(pid, self.spill))
            except Exception as e:
                raise annotate(e, node.label, what="commit") from None

    def _abort(self, error: BaseException) -> None:
        for tid, pid in self.plan.finalizers:
            node = self.plan.leaves[tid]
            assert node.payload is not None
            records: list[Any] = []
            try:
                records = self.outputs.records(pid, self.spill)
            except Exception:
                pass
            try:
                node.payload.load().abort(records)
            except Exception as e:  # keep the original failure; report this one beside it
                if not isinstance(error, Cancelled):
                    error.add_note(f"headrace: aborting {node.label!r} also failed: {e!r}")
