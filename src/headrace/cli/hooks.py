"""Observing or intercepting the pipelines a script runs, without changing the script.

Both hooks act for the duration of a ``with`` block, in this process only (the second patches
classes and puts the original methods back on exit, also on error):

- :func:`observe_runs` delivers the run events (:mod:`headrace.runners.events`) of every run
  submitted inside the block to a :class:`~headrace.cli.progress.RunMonitor`. Nothing is
  patched.
- :func:`capture_pipelines` replaces ``Pipeline.run`` (and, for scripts that call a runner
  directly, ``DirectRunner.run_pipeline``): the pipeline's graph is recorded and planned, and a
  :class:`PlannedResult` comes back instead of a run. ``with Pipeline() as p:`` blocks end
  normally, since their exit calls ``run().wait_until_finish()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from headrace.graph.nodes import PipelineGraph
from headrace.model.metrics import DirectMetricResults, MetricUpdates
from headrace.model.pipeline import Pipeline
from headrace.model.result import PipelineResult, PipelineState
from headrace.plan.stages import ExecutionPlan, build_plan
from headrace.runners.direct.runner import DirectRunner
from headrace.runners.events import listening

__all__ = ["CapturedPipeline", "PlannedResult", "capture_pipelines", "observe_runs"]


@contextmanager
def observe_runs(monitor: Any) -> Iterator[None]:
    """Deliver the events of every run submitted inside the block to ``monitor.on_event``."""
    with listening(monitor.on_event):
        yield


@dataclass
class CapturedPipeline:
    """A pipeline the script asked to run under ``headrace plan``: its graph and its plan.

    ``error`` is set instead of ``plan`` when the planner rejected the graph.
    """

    graph: PipelineGraph
    plan: ExecutionPlan | None
    error: BaseException | None


class PlannedResult(PipelineResult):
    """What ``Pipeline.run()`` returns under ``headrace plan``: nothing ran, nothing will.

    Its state is ``DONE`` so that scripts which check or wait for their result carry on;
    metrics are empty.
    """

    def __init__(self) -> None:
        super().__init__(PipelineState.DONE)

    def wait_until_finish(self, duration: float | None = None) -> PipelineState:
        return self._state

    def cancel(self) -> PipelineState:
        return self._state

    def metrics(self) -> DirectMetricResults:
        return DirectMetricResults(MetricUpdates())


def _capture(pipeline: Any) -> CapturedPipeline:
    graph = pipeline.to_graph() if hasattr(pipeline, "to_graph") else pipeline
    try:
        return CapturedPipeline(graph, build_plan(graph), None)
    except Exception as e:
        return CapturedPipeline(graph, None, e)


@contextmanager
def capture_pipelines() -> Iterator[list[CapturedPipeline]]:
    """Inside the block, running a pipeline records it instead; yields the list of records."""
    captured: list[CapturedPipeline] = []
    original_run = Pipeline.run
    original_runner = DirectRunner.run_pipeline

    def run(self: Pipeline) -> PipelineResult:
        captured.append(_capture(self))
        self.result = PlannedResult()
        return self.result

    def run_pipeline(self: DirectRunner, pipeline: Any, options: Any) -> PipelineResult:
        captured.append(_capture(pipeline))
        return PlannedResult()

    Pipeline.run = run  # type: ignore[method-assign]
    DirectRunner.run_pipeline = run_pipeline  # type: ignore[method-assign,assignment]
    try:
        yield captured
    finally:
        Pipeline.run = original_run  # type: ignore[method-assign]
        DirectRunner.run_pipeline = original_runner  # type: ignore[method-assign]
