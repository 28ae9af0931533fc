"""Submitting a pipeline graph to the service (Beam's Job API over REST): validate it, run it in
the service's process on the runner its options name, and keep its result handle so that a
cancel reaches it.

Validation happens before anything runs, and every refusal is a :class:`BadSubmission` whose
message says what is wrong: JSON that is not a pipeline graph, options that do not parse, a
graph the planner rejects (its message names the transform). Runs are recorded by the
:class:`~headrace.service.runs.RunRecorder` the service listens with, as any other run.

A submitted graph carries user code (cloudpickle payloads) that the service runs as its own
user: the service accepts submissions only when it has a token.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from headrace.graph.nodes import PipelineGraph
from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.plan.stages import build_plan

__all__ = ["BadSubmission", "Submitter", "graph_text"]


class BadSubmission(ValueError):
    """A submitted graph or its options cannot run; the message says why."""


class Submitter:
    """Runs submitted graphs; remembers the handles of those still running."""

    def __init__(self) -> None:
        self._results: dict[str, Any] = {}
        self._lock = threading.Lock()

    def submit(self, graph_json: str, options: dict[str, Any] | None = None) -> str:
        """Validate and start the pipeline; returns the run id."""
        try:
            graph = PipelineGraph.from_json(graph_json)
        except Exception as e:  # any malformed graph, whatever the parser raised
            raise BadSubmission(f"pipeline: not a pipeline graph (Pipeline.to_json()): {e}") from e
        try:
            parsed = PipelineOptions.from_dictionary(dict(options or {}))
        except Exception as e:
            raise BadSubmission(f"options: {type(e).__name__}: {e}") from e
        if int(parsed.get_all_options().get("direct_num_workers") or 1) > 1:
            raise BadSubmission(
                "options: direct_num_workers > 1 is not supported for submitted pipelines yet "
                "(the service would fork worker processes from its threads); run it with "
                "'headrace run --service' instead"
            )
        if not graph.transforms:
            raise BadSubmission("pipeline: the graph has no transforms")
        try:
            build_plan(graph)
        except Exception as e:  # the planner's messages name the transform
            raise BadSubmission(f"pipeline: {type(e).__name__}: {e}") from e
        try:
            pipeline = Pipeline.from_json(graph_json, options=parsed)
            result = pipeline.run()
        except Exception as e:
            raise BadSubmission(f"pipeline cannot start: {type(e).__name__}: {e}") from e
        run_id = str(result.run_id)
        with self._lock:
            self._results[run_id] = result
        threading.Thread(target=self._forget, args=(run_id, result), daemon=True).start()
        return run_id

    def _forget(self, run_id: str, result: Any) -> None:
        try:
            result.wait_until_finish()
        except Exception:  # the failure is recorded from the run's events
            pass
        with self._lock:
            self._results.pop(run_id, None)

    def cancel(self, run_id: str) -> bool:
        """Cancel a run of this process in the background; False if it is not one."""
        with self._lock:
            result = self._results.get(run_id)
        if result is None:
            return False
        threading.Thread(target=result.cancel, daemon=True).start()
        return True

    def drain(self, run_id: str) -> bool:
        """Drain a streaming run of this process; False if it is not one of this process."""
        with self._lock:
            result = self._results.get(run_id)
        if result is None:
            return False
        result.drain()
        return True

    def running(self) -> list[str]:
        with self._lock:
            return list(self._results)


def graph_text(value: Any) -> str:
    """The graph as JSON text, whether posted as a JSON object or as a string."""
    return value if isinstance(value, str) else json.dumps(value)
