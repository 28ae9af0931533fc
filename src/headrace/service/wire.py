"""Run events as plain JSON: what a pipeline process posts to the job service.

Each event becomes ``{"type": <class name>, <field>: <value>, ...}``. The in-process result
handle of ``RunSubmitted`` stays behind, but when it holds a batch plan the event gains
``depends_on``: for each stage, the positions of the stages it reads from (the graph's edges),
and ``transforms``: the pipeline's transforms with their composite nesting (see
:func:`plan_transforms`), so that a UI can draw the graph with composites folded.
A task's metric updates travel as their counters,
``[[step, namespace, name, value], ...]`` (distributions and gauges are not sent yet), and its
per-transform counts as ``operators``: ``{transform id: [elements in, elements out, seconds]}``.

>>> from headrace.runners.events import StageUpdated
>>> encode_event(StageUpdated("run-1", 0, "Read", 3, 3, at=1.5))
{'type': 'StageUpdated', 'run_id': 'run-1', 'at': 1.5, 'stage': 0, 'name': 'Read',
 'elements_in': 3, 'elements_out': 3}
"""

from __future__ import annotations

import dataclasses
from typing import Any

from headrace.runners.events import RunEvent, RunSubmitted

__all__ = ["EVENT_TYPES", "encode_event", "plan_transforms", "streaming_transforms"]

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
        elif f.name == "operators":
            value = {tid: list(counts) for tid, counts in value.items()}
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    if isinstance(event, RunSubmitted):
        depends = _stage_dependencies(event.result)
        streaming = getattr(event.result, "streaming", None)
        if depends is not None:
            out["depends_on"] = depends
            out["transforms"] = plan_transforms(getattr(event.result, "plan", None))
        elif streaming is not None and hasattr(streaming, "order"):
            out["transforms"] = streaming_transforms(streaming.graph, streaming.order)
    return out


def plan_transforms(plan: Any) -> list[dict[str, Any]]:
    """The transforms of a batch plan as the service keeps them, parents before their parts.

    Each entry: ``id``, ``label``, ``kind``, ``parent`` (the enclosing composite's id, or None),
    ``composite`` (True for a composite whose parts run), ``stage`` (the position of the fused
    stage that runs it: the stage it is fused into, or the stage it feeds when it is a source
    or a shuffle; None for a composite), ``root`` (True when the transform is that stage's
    input: its output count is the stage's input count) and ``reads`` (ids of the transforms
    whose output it reads, main and side inputs). Parts of a transform a runner executes whole
    (a lifted combine) are left out: they never run.
    """
    position = {stage.id: i for i, stage in enumerate(plan.stages)}
    stage_of: dict[str, tuple[int, bool]] = {}
    for stage in plan.stages:
        for tid in stage.operators:
            stage_of[tid] = (position[stage.id], False)
        if stage.root.kind in ("source", "impulse", "grouping"):
            stage_of.setdefault(stage.root.node, (position[stage.id], True))
    return _transforms(plan.graph, set(plan.leaves), stage_of)


def streaming_transforms(graph: Any, order: Any) -> list[dict[str, Any]]:
    """The transforms of a streaming run, as :func:`plan_transforms` gives a batch plan's: a
    streaming run's steps are its executed transforms (``order``), each its own ``stage``."""
    stage_of = {node.id: (i, False) for i, node in enumerate(order)}
    return _transforms(graph, set(stage_of), stage_of)


def _transforms(
    graph: Any, leaves: set[str], stage_of: dict[str, tuple[int, bool]]
) -> list[dict[str, Any]]:

    def owners(tid: str) -> set[str]:
        # the executed transforms a producer stands for: itself, the whole-run composite above
        # it, or, for a transform the planner left out (a pairing folded into a count), the
        # executed transforms it read from
        node = graph.transforms[tid]
        while node.id not in leaves and node.parent is not None:
            node = graph.transforms[node.parent]
        if node.id in leaves:
            return {node.id}
        skipped = graph.transforms[tid]
        return {o for p in skipped.inputs for o in owners(graph.pcollections[p].producer)}

    out: list[dict[str, Any]] = []

    def visit(tid: str) -> bool:
        node = graph.transforms[tid]
        if tid in leaves:
            reads = [graph.pcollections[p].producer for p in node.inputs]
            reads += [graph.pcollections[s.pcollection].producer for s in node.side_inputs]
            stage, root = stage_of.get(tid, (None, False))
            out.append(
                {
                    "id": tid, "label": node.label, "kind": node.kind, "parent": node.parent,
                    "composite": False, "stage": stage, "root": root,
                    "reads": sorted({o for r in reads for o in owners(r)}),
                }
            )  # fmt: skip
            return True
        entry = {
            "id": tid, "label": node.label, "kind": node.kind, "parent": node.parent,
            "composite": True, "stage": None, "root": False, "reads": [],
        }  # fmt: skip
        at = len(out)
        out.append(entry)
        kept = [visit(part) for part in node.parts]
        if not any(kept):
            del out[at]
            return False
        return True

    for tid in graph.roots:
        visit(tid)
    return out


def _stage_dependencies(result: Any) -> list[list[int]] | None:
    """For each stage of the result's plan, the positions of the stages it reads from."""
    stages = getattr(getattr(result, "plan", None), "stages", None)
    if not stages:
        return None
    position = {stage.id: i for i, stage in enumerate(stages)}
    return [sorted(position[d] for d in stage.depends_on if d in position) for stage in stages]
