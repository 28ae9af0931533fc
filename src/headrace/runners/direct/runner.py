"""DirectRunner: runs an execution plan stage by stage, in this process or in worker processes.

States of a run (:class:`DirectPipelineResult`): ``RUNNING`` from ``run()``; then ``DONE`` when
every stage finished and every sink committed, ``FAILED`` when a task or a commit raised, or
``CANCELLED`` after ``cancel()``. Only the coordinator thread moves the state. ``drain()``
(streaming runs only) makes a run stop reading its sources and finish normally: ``DRAINED``.

A batch run is the runner-neutral :class:`~headrace.runners.coordinator.BatchCoordinator` on one
of two executors: :class:`~headrace.runners.executors.InlineExecutor` (the default, and the
reference path) or :class:`~headrace.runners.direct.workers.LocalProcessExecutor` (with
``direct_running_mode='multi_processing'`` and ``direct_num_workers > 1``), in a thread of its
own. Spill and shuffle blobs live in a :class:`~headrace.exec.spill.LocalSpillSpace`: one
temporary folder per run, removed at the end. A streaming run is a
:class:`~headrace.runners.direct.streaming.StreamingRun`.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headrace.exec.errors import annotate, element_of, label_of
from headrace.exec.spill import LocalSpillSpace, SpillSpace
from headrace.graph.nodes import PipelineGraph
from headrace.graph.validate import validate_graph
from headrace.model.metrics import DirectMetricResults, MetricUpdates
from headrace.model.result import PipelineResult, PipelineState
from headrace.plan.stages import ExecutionPlan, build_plan
from headrace.runners import events
from headrace.runners.coordinator import BatchCoordinator, StageProgress
from headrace.runners.direct.steps import StreamingProgress
from headrace.runners.direct.streaming import StreamingRun
from headrace.runners.direct.workers import LocalProcessExecutor
from headrace.runners.executors import Executor, InlineExecutor
from headrace.runners.tasks import Cancelled

__all__ = ["DirectPipelineResult", "DirectRunner", "StageProgress"]

_LOGGER = logging.getLogger(__name__)

# The state every step of a streaming run shows once the run ended.
_STEP_STATES = {
    PipelineState.DONE: "done",
    PipelineState.DRAINED: "done",
    PipelineState.CANCELLED: "cancelled",
}


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

    def executor(self) -> Executor:
        """The executor of a batch run with these settings."""
        if self.multi_process:
            return LocalProcessExecutor(self.num_workers)
        return InlineExecutor()


class DirectRunner:
    """Runs pipelines on this machine; the default runner.

    Options: ``direct_num_workers`` and ``direct_running_mode='multi_processing'`` for worker
    processes, ``direct_memory_budget_mb`` for grouping memory per process before spilling,
    ``direct_bundle_size`` for elements per chunk. Worker settings that cannot take effect
    (workers without ``multi_processing``, or on a streaming run) are logged as a warning on this
    module's logger, naming the option and saying the run uses this one process.

    ``executor`` (for tests and other runners' experiments) makes the executor of every batch
    run from its settings, instead of the inline or local-process one the options choose.
    """

    def __init__(self, executor: Callable[[DirectSettings], Executor] | None = None) -> None:
        self.make_executor = executor

    def run_pipeline(self, pipeline: Any, options: Any) -> DirectPipelineResult:
        graph: PipelineGraph = pipeline.to_graph() if hasattr(pipeline, "to_graph") else pipeline
        validate_graph(graph)
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
            executor = self.make_executor(settings) if self.make_executor else None
            result = DirectPipelineResult(build_plan(graph), settings, executor=executor)
        result._start()
        return result


class DirectPipelineResult(PipelineResult):
    """The handle on a direct run. ``wait_until_finish`` re-raises a failure."""

    def __init__(
        self,
        plan: ExecutionPlan | None,
        settings: DirectSettings,
        streaming: StreamingRun | None = None,
        executor: Executor | None = None,
        spill: SpillSpace | None = None,
    ) -> None:
        super().__init__(PipelineState.RUNNING)
        self.plan = plan
        self.settings = settings
        self.streaming = streaming
        self._error: BaseException | None = None
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._metrics = MetricUpdates()
        self._thread: threading.Thread | None = None
        self.run_id = f"run-{uuid.uuid4().hex[:12]}"
        self.coordinator: BatchCoordinator | None = None
        if plan is not None:
            self.executor = executor if executor is not None else settings.executor()
            self.coordinator = BatchCoordinator(
                plan,
                self.executor,
                spill if spill is not None else LocalSpillSpace.make_temporary(),
                budget_bytes=settings.budget_mb * 1024 * 1024,
                bundle_size=settings.bundle_size,
                cancel=self._cancel,
                run_id=self.run_id,
            )
            self.progress: list[StageProgress] = self.coordinator.progress
        else:
            assert streaming is not None
            self._steps = StreamingProgress(streaming, self.run_id)
            self.progress = self._steps.progress
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

    def drain(self) -> PipelineState:
        """Drain a streaming run and return at once: its sources are read no more, their
        watermarks jump to the end, every window fires and the run finishes ``DRAINED`` with
        what it had read (Beam's drain on Dataflow). A batch run has no sources to stop: use
        ``cancel()``."""
        if self.streaming is None:
            raise ValueError(
                f"run {self.run_id} is a batch run: drain applies to streaming runs (their "
                "sources stop and their windows fire); use cancel() to stop a batch run"
            )
        self.streaming.draining.set()
        return self._state

    def cancel(self) -> PipelineState:
        self._cancel.set()
        if self.streaming is not None:
            self.streaming.cancelled.set()
        self._done.wait()
        return self._state

    def metrics(self) -> DirectMetricResults:
        return DirectMetricResults(self._metrics)

    @property
    def error(self) -> BaseException | None:
        return self._error

    # -- running ---------------------------------------------------------------------------------

    @property
    def batch_plan(self) -> ExecutionPlan:
        assert self.plan is not None, "a streaming run has no batch plan"
        return self.plan

    def _start(self) -> None:
        names = tuple(p.name for p in self.progress)
        events.emit(
            events.RunSubmitted(self.run_id, self.streaming is not None, names, result=self)
        )
        if self.coordinator is not None:
            # Worker processes fork here, in the thread that called run(), before the
            # coordinator thread exists.
            self.executor.start(self.batch_plan)
            target = self._run
        else:
            target = self._run_streaming
        self._thread = threading.Thread(target=target, name="headrace-direct", daemon=True)
        self._thread.start()

    def _finished(self) -> None:
        self.finished = time.perf_counter()
        e = self._error
        if e is None:
            events.emit(events.RunFinished(self.run_id, self._state.name))
        else:
            trace = "".join(traceback.format_exception(e))
            events.emit(
                events.RunFinished(
                    self.run_id, self._state.name, f"{type(e).__name__}: {e}",
                    step=label_of(e), element=element_of(e), traceback=trace,
                )
            )  # fmt: skip
        self._done.set()

    def _run(self) -> None:
        coordinator = self.coordinator
        assert coordinator is not None
        events.emit(events.RunStarted(self.run_id))
        try:
            coordinator.run()
            self._state = PipelineState.DONE
        except BaseException as e:
            if isinstance(e, Cancelled) or self._cancel.is_set():
                self._state = PipelineState.CANCELLED
            else:
                self._error = e
                self._state = PipelineState.FAILED
        finally:
            self._metrics = coordinator.outputs.metrics
            try:
                self.executor.close(cancel=self._cancel.is_set() or self._error is not None)
            finally:
                coordinator.spill.cleanup()
                self._finished()

    def _run_streaming(self) -> None:
        run = self.streaming
        assert run is not None
        events.emit(events.RunStarted(self.run_id))
        self._steps.start()
        try:
            with events.capture_logs(self.run_id):
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
            drained = run.draining.is_set()
            self._state = PipelineState.DRAINED if drained else PipelineState.DONE
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
            self._steps.stop(_STEP_STATES.get(self._state, "failed"))
            self._finished()

    def _abort_streaming(self, run: StreamingRun) -> None:
        for tid, records in run.finalize_records.items():
            node = run.graph.transforms[tid]
            if node.payload is not None:
                try:
                    node.payload.load().abort(records)
                except Exception as e:
                    if self._error is not None:
                        self._error.add_note(f"headrace: aborting {node.label!r} failed: {e!r}")
