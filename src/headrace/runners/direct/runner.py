"""DirectRunner: runs an execution plan stage by stage, in this process or in worker processes.

States of a run (:class:`DirectPipelineResult`): ``RUNNING`` from ``run()``; then ``DONE`` when
every stage finished and every sink committed, ``FAILED`` when a task or a commit raised, or
``CANCELLED`` after ``cancel()``. Only the coordinator thread moves the state.

The coordinator walks the stages in plan order. For each it makes the tasks (source splits, one
per partition of a grouping, or runs of a collection), runs them (inline, or in the worker pool),
and keeps what they wrote: grouping runs per partition, collection runs, metric updates. After the
last stage it hands each ``Finalize`` its records (``commit``); on failure it calls ``abort``
instead, so no sink output becomes visible. Spill and shuffle files live in one temporary folder
per run, removed at the end.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from headrace.exec.collect import CollectionRun, read_collection
from headrace.exec.errors import annotate
from headrace.exec.grouping import Run
from headrace.graph.nodes import PipelineGraph
from headrace.model.metrics import DirectMetricResults, MetricUpdates
from headrace.model.result import PipelineResult, PipelineState
from headrace.model.window import WindowedValue
from headrace.plan.stages import ExecutionPlan, Stage, build_plan
from headrace.runners.direct.streaming import StreamingRun
from headrace.runners.direct.workers import TaskFailure, WorkerPool
from headrace.runners.tasks import Cancelled, TaskContext, TaskInput, TaskResult, run_stage_task

__all__ = ["DirectPipelineResult", "DirectRunner", "StageProgress"]

_LOGGER = logging.getLogger(__name__)


@dataclass
class DirectSettings:
    num_workers: int = 1
    multi_process: bool = False
    budget_mb: int = 256
    bundle_size: int = 1024
    streaming: bool = False
    running_mode: str = "in_memory"

    @classmethod
    def from_options(cls, options: Any) -> DirectSettings:
        values = options.get_all_options() if options is not None else {}
        workers = int(values.get("direct_num_workers") or 1)
        mode = values.get("direct_running_mode") or "in_memory"
        return cls(
            num_workers=workers,
            multi_process=mode == "multi_processing" and workers > 1,
            budget_mb=int(values.get("direct_memory_budget_mb") or 256),
            bundle_size=int(values.get("direct_bundle_size") or 1024),
            streaming=bool(values.get("streaming")),
            running_mode=str(mode),
        )

    def warn_if_workers_unused(self, streaming_reason: str | None) -> None:
        """Log a warning when ``direct_num_workers > 1`` will not give worker processes."""
        if self.num_workers <= 1:
            return
        asked = f"--direct_num_workers={self.num_workers}"
        if streaming_reason is not None:
            _LOGGER.warning(
                "%s is ignored: this pipeline runs in streaming mode (%s), which the direct "
                "runner runs in this one process",
                asked,
                streaming_reason,
            )
        elif not self.multi_process:
            _LOGGER.warning(
                "%s is ignored with --direct_running_mode=%s: the pipeline runs in this one "
                "process; add --direct_running_mode=multi_processing for %d worker processes",
                asked,
                self.running_mode,
                self.num_workers,
            )


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


@dataclass
class _RunState:
    groupings: dict[str, list[list[Run]]] = field(default_factory=dict)
    collections: dict[str, list[CollectionRun]] = field(default_factory=dict)
    metrics: MetricUpdates = field(default_factory=MetricUpdates)


class DirectRunner:
    """Runs pipelines on this machine; the default runner.

    Options: ``direct_num_workers`` and ``direct_running_mode='multi_processing'`` for worker
    processes, ``direct_memory_budget_mb`` for grouping memory per process before spilling,
    ``direct_bundle_size`` for elements per chunk. Worker settings that cannot take effect
    (workers without ``multi_processing``, or on a streaming run) are logged as a warning on this
    module's logger, naming the option and saying the run uses this one process.
    """

    def run_pipeline(self, pipeline: Any, options: Any) -> DirectPipelineResult:
        graph: PipelineGraph = pipeline.to_graph() if hasattr(pipeline, "to_graph") else pipeline
        settings = DirectSettings.from_options(options)
        unbounded = any(not pc.bounded for pc in graph.pcollections.values())
        triggered = any(pc.windowing.trigger is not None for pc in graph.pcollections.values())
        stateful = any(t.params.get("stateful") for t in graph.transforms.values())
        reason = (
            "--streaming"
            if settings.streaming
            else "it reads an unbounded source"
            if unbounded
            else "it uses a custom trigger"
            if triggered
            else "it has a stateful DoFn"
            if stateful
            else None
        )
        settings.warn_if_workers_unused(reason)
        if reason is not None:
            # TestStream and unbounded sources run in streaming mode, as Beam's direct runner
            # does; so do bounded pipelines with custom triggers (batch is streaming with the
            # watermark jumping to the end of time), in one process.
            streaming = StreamingRun(graph, threading.Event())
            result = DirectPipelineResult(None, settings, streaming)
        else:
            result = DirectPipelineResult(build_plan(graph), settings)
        result._start()
        return result


class DirectPipelineResult(PipelineResult):
    """The handle on a direct run. ``wait_until_finish`` re-raises a failure."""

    def __init__(
        self,
        plan: ExecutionPlan | None,
        settings: DirectSettings,
        streaming: StreamingRun | None = None,
    ) -> None:
        super().__init__(PipelineState.RUNNING)
        self.plan = plan
        self.settings = settings
        self.streaming = streaming
        self.progress = [StageProgress(s.name) for s in plan.stages] if plan else []
        self._error: BaseException | None = None
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._pool: WorkerPool | None = None
        self._metrics = MetricUpdates()
        self._thread: threading.Thread | None = None
        self.started = time.perf_counter()
        self.finished: float | None = None

    # -- Job API ---------------------------------------------------------------------------------

    def wait_until_finish(self, duration: float | None = None) -> PipelineState:
        deadline = None if duration is None else time.monotonic() + duration / 1000.0
        try:
            while not self._done.wait(0.05):
                if deadline is not None and time.monotonic() >= deadline:
                    return self._state
        except KeyboardInterrupt:
            self.cancel()
            raise
        if self._state == PipelineState.FAILED and self._error is not None:
            raise self._error
        return self._state

    def cancel(self) -> PipelineState:
        if not self._done.is_set():
            self._cancel.set()
            if self._pool is not None:
                self._pool.close(terminate=True)
        if self.streaming is not None:
            self.streaming.cancelled.set()
        if not self._done.is_set():
            self._done.wait()
        return self._state

    def metrics(self) -> DirectMetricResults:
        return DirectMetricResults(self._metrics)

    @property
    def error(self) -> BaseException | None:
        return self._error

    # -- coordinator -----------------------------------------------------------------------------

    @property
    def batch_plan(self) -> ExecutionPlan:
        assert self.plan is not None, "a streaming run has no batch plan"
        return self.plan

    def _start(self) -> None:
        if self.streaming is not None:
            target = self._run_streaming
        else:
            target = self._run
        if self.settings.multi_process and self.streaming is None:
            self._pool = WorkerPool(self.settings.num_workers, self.batch_plan)
        self._thread = threading.Thread(target=target, name="headrace-direct", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        spill_dir = tempfile.mkdtemp(prefix="headrace-run-")
        state = _RunState()
        try:
            for stage in self.batch_plan.stages:
                if self._cancel.is_set():
                    raise Cancelled()
                self._run_stage(stage, state, spill_dir)
            self._metrics = state.metrics
            self._commit(state)
            self._state = PipelineState.DONE
        except BaseException as e:
            self._metrics = state.metrics
            self._abort(state)
            if isinstance(e, Cancelled) or self._cancel.is_set():
                self._state = PipelineState.CANCELLED
            else:
                self._error = e
                self._state = PipelineState.FAILED
        finally:
            if self._pool is not None and not self._cancel.is_set():
                self._pool.close()
            shutil.rmtree(spill_dir, ignore_errors=True)
            self.finished = time.perf_counter()
            self._done.set()

    def _run_streaming(self) -> None:
        run = self.streaming
        assert run is not None
        try:
            run.run()
            self._metrics = run.metric_updates()
            if run.cancelled.is_set():
                self._abort_streaming(run)
                self._state = PipelineState.CANCELLED
                return
            for tid, records in run.finalize_records.items():
                node = run.graph.transforms[tid]
                assert node.payload is not None
                try:
                    node.payload.load().commit(records)
                except Exception as e:
                    raise annotate(e, node.label, what="commit") from None
            run.commit_sources()
            self._state = PipelineState.DONE
        except BaseException as e:
            self._metrics = run.metric_updates()
            self._error = e
            self._abort_streaming(run)
            self._state = (
                PipelineState.CANCELLED if run.cancelled.is_set() else PipelineState.FAILED
            )
        finally:
            try:
                run.close()
            except Exception as e:  # closing must not hide the run's own outcome
                if self._error is not None:
                    self._error.add_note(f"headrace: closing the sources also failed: {e!r}")
            self.finished = time.perf_counter()
            self._done.set()

    def _abort_streaming(self, run: StreamingRun) -> None:
        for tid, records in run.finalize_records.items():
            node = run.graph.transforms[tid]
            if node.payload is not None:
                try:
                    node.payload.load().abort(records)
                except Exception as e:
                    if self._error is not None:
                        self._error.add_note(f"headrace: aborting {node.label!r} failed: {e!r}")

    def _partitions(self) -> int:
        return self.settings.num_workers if self.settings.multi_process else 1

    def _tasks(self, stage: Stage, state: _RunState) -> list[TaskInput]:
        root, n = stage.root, self._partitions()
        if root.kind == "source":
            node = self.batch_plan.leaves[root.node]
            assert node.payload is not None
            source = node.payload.load()
            try:
                splits = source.split(n) if n > 1 else [source]
            except Exception as e:
                raise annotate(e, node.label, what="split()") from None
            tasks = [TaskInput(sources=splits[i::n]) for i in range(min(n, len(splits)))]
            return tasks
        if root.kind == "impulse":
            return [TaskInput(sources=[None])]
        if root.kind == "grouping":
            parts = state.groupings.get(root.node, [])
            return [TaskInput(runs=runs) for runs in parts if runs]
        if root.kind == "collection":
            runs = state.collections.get(root.node, [])
            return [TaskInput(collection=runs, part=(i, n)) for i in range(n)] if runs else []
        return [TaskInput()]

    def _context(self, state: _RunState, spill_dir: str, progress: StageProgress) -> TaskContext:
        per_process = self.settings.budget_mb * 1024 * 1024

        def on_chunk(n: int) -> None:
            progress.elements_in += n

        return TaskContext(
            num_partitions=self._partitions(),
            spill_dir=spill_dir,
            budget_bytes=per_process,
            bundle_size=self.settings.bundle_size,
            in_memory_handoff=not self.settings.multi_process,
            side_data={pid: state.collections.get(pid, []) for pid in self._side_inputs()},
            cancelled=None if self.settings.multi_process else self._cancel.is_set,
            on_chunk=None if self.settings.multi_process else on_chunk,
        )

    def _side_inputs(self) -> set[str]:
        return {s.pcollection for n in self.batch_plan.leaves.values() for s in n.side_inputs}

    def _run_stage(self, stage: Stage, state: _RunState, spill_dir: str) -> None:
        progress = self.progress[stage.id]
        progress.state = "running"
        started = progress.started = time.perf_counter()
        try:
            self._run_stage_tasks(stage, state, spill_dir, progress)
        except BaseException:
            progress.state = "failed"
            raise
        progress.seconds = time.perf_counter() - started
        progress.state = "done"

    def _run_stage_tasks(
        self, stage: Stage, state: _RunState, spill_dir: str, progress: StageProgress
    ) -> None:
        tasks = self._tasks(stage, state)
        progress.tasks = len(tasks)
        ctx = self._context(state, spill_dir, progress)
        results: list[TaskResult] = []
        if self._pool is None:
            for task in tasks:
                results.append(run_stage_task(self.batch_plan, stage, task, ctx))
        else:
            pending = [self._pool.submit(stage.id, task, ctx) for task in tasks]
            for handle in pending:
                while not handle.ready():
                    handle.wait(0.05)
                    if self._cancel.is_set():
                        raise Cancelled()
                outcome = handle.get()
                if isinstance(outcome, TaskFailure):
                    raise outcome.rebuild()
                results.append(outcome)
                progress.elements_in += outcome.elements_in
        for r in results:
            for gid, parts in r.groupings.items():
                target = state.groupings.setdefault(gid, [[] for _ in range(len(parts))])
                for p, runs in enumerate(parts):
                    target[p].extend(runs)
            for pid, coll_runs in r.collections.items():
                state.collections.setdefault(pid, []).extend(coll_runs)
            state.metrics.merge(r.metrics)
            progress.elements_out += r.elements_out
            progress.spills += r.spills

    def _finalize_records(self, state: _RunState, pid: str) -> list[Any]:
        records: list[Any] = []
        for chunk in read_collection(state.collections.get(pid, [])):
            records.extend(x.value if type(x) is WindowedValue else x for x in chunk)
        return records

    def _commit(self, state: _RunState) -> None:
        for tid, pid in self.batch_plan.finalizers:
            node = self.batch_plan.leaves[tid]
            assert node.payload is not None
            finalizer = node.payload.load()
            try:
                finalizer.commit(self._finalize_records(state, pid))
            except Exception as e:
                raise annotate(e, node.label, what="commit") from None

    def _abort(self, state: _RunState) -> None:
        for tid, pid in self.batch_plan.finalizers:
            node = self.batch_plan.leaves[tid]
            assert node.payload is not None
            records: list[Any] = []
            try:
                records = self._finalize_records(state, pid)
            except Exception:
                pass
            try:
                node.payload.load().abort(records)
            except Exception as e:  # keep the original failure; report this one beside it
                if self._error is not None:
                    self._error.add_note(f"headrace: aborting {node.label!r} also failed: {e!r}")
