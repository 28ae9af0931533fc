"""Run events as plain JSON: what a pipeline process posts to the job service.

Each event becomes ``{"type": <class name>, <field>: <value>, ...}``. The in-process result
handle of ``RunSubmitted`` stays behind, but when it holds a batch plan the event gains
``depends_on``: for each stage, the positions of the stages it reads from (the graph's edges).
A task's metric updates travel as their counters,
``[[step, namespace, name, value], ...]`` (distributions and gauges are not sent yet).

>>> from headrace.runners.events import StageUpdated
>>> encode_event(StageUpdated("run-1", 0, "Read", 3, 3, at=1.5))
{'type': 'StageUpdated', 'run_id': 'run-1', 'at': 1.5, 'stage': 0, 'name': 'Read',
 'elements_in': 3, 'elements_out': 3}
"""

from __future__ import annotations

import dataclasses
from typing import Any

from headrace.runners.events import RunEvent, RunSubmitted

__all__ = ["EVENT_TYPES", "encode_event"]

# The event types the service understands, with the fields each must carry.
EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "RunSubmitted": ("streaming", "stages"),
    "RunStarted": (),
    "StageStarted": ("stage", "name", "tasks"),
    "StageUpdated": ("stage", "name", "elements_in", "elements_out"),
    "TaskFinished": ("stage", "name", "elements_in", "elements_out", "seconds", "metrics"),
    "StageFinished": (
        "stage", "name", "state", "elements_in", "elements_out", "seconds", "tasks", "spills",
    ),
    "Watermark": ("step", "watermark_us"),
    "LogRecord": ("step", "level", "logger", "message"),
    "RunFinished": ("state", "error"),
}  # fmt: skip


def encode_event(event: RunEvent) -> dict[str, Any]:
    """``event`` as a JSON-ready dict."""
    out: dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        if f.name == "result":
            continue
        value = getattr(event, f.name)
        if f.name == "metrics":
            value = [[*key, amount] for key, amount in value.counters.items()]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    if isinstance(event, RunSubmitted):
        depends = _stage_dependencies(event.result)
        if depends is not None:
            out["depends_on"] = depends
    return out


def _stage_dependencies(result: Any) -> list[list[int]] | None:
    """For each stage of the result's plan, the positions of the stages it reads from."""
    stages = getattr(getattr(result, "plan", None), "stages", None)
    if not stages:
        return None
    position = {stage.id: i for i, stage in enumerate(stages)}
    return [sorted(position[d] for d in stage.depends_on if d in position) for stage in stages]
