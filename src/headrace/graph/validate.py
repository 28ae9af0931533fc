"""Checking a pipeline graph before it runs, with errors that name the node.

A graph built by :class:`~headrace.model.pipeline.Pipeline` is consistent by construction; a graph
received as JSON from another process (a job service, a remote runner) may not be. A runner calls
:func:`validate_graph` when a graph is submitted, and :meth:`PipelineGraph.from_json
<headrace.graph.nodes.PipelineGraph.from_json>` calls it on what it decoded, so a broken graph
fails at once with the transform's label and the field at fault, never deep inside a task with a
``KeyError``.

What is checked: every id a node refers to exists (roots, inputs, outputs, side inputs, parts,
parents, producers); each output's PCollection of a leaf names that leaf as its producer; kinds
are known (:mod:`headrace.graph.kinds`); primitives that need a payload have one, with the right
input count; ``params`` have the types their kind documents.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, get_type_hints

from headrace.graph.kinds import (
    COMBINE_PER_KEY,
    COMPOSITE_KINDS,
    FINALIZE,
    FLATTEN,
    FN_KINDS,
    GROUP_BY_KEY,
    IMPULSE,
    PARAMS_OF,
    PARDO,
    PRIMITIVE_KINDS,
    READ,
    WINDOW_INTO,
)

if TYPE_CHECKING:
    from headrace.graph.nodes import PipelineGraph, TransformNode

__all__ = ["GraphError", "validate_graph"]

_NEEDS_PAYLOAD = frozenset({READ, PARDO, FINALIZE, COMBINE_PER_KEY})
_ONE_INPUT = frozenset({PARDO, GROUP_BY_KEY, WINDOW_INTO, FINALIZE, COMBINE_PER_KEY})
_NO_INPUT = frozenset({IMPULSE, READ})


class GraphError(ValueError):
    """A pipeline graph is inconsistent; the message names the transform and the field."""


def _where(node: TransformNode) -> str:
    return f"transform {node.label!r} (id {node.id}, kind {node.kind})"


def _check_params(node: TransformNode) -> None:
    shape = PARAMS_OF.get(node.kind)
    if shape is None:
        return
    hints = get_type_hints(shape)
    for name, value in node.params.items():
        if name not in hints:
            continue  # extra keys are allowed: newer writers may add fields
        expected: Any = hints[name]
        pytype = expected if isinstance(expected, type) else getattr(expected, "__origin__", None)
        if pytype is not None and not isinstance(value, pytype):
            raise GraphError(
                f"{_where(node)}: params[{name!r}] should be {getattr(pytype, '__name__', pytype)},"
                f" not {type(value).__name__} ({value!r})"
            )
    fn_kind = node.params.get("fn_kind")
    if node.kind == PARDO and fn_kind is not None and fn_kind not in FN_KINDS:
        raise GraphError(
            f"{_where(node)}: params['fn_kind'] is {fn_kind!r}; expected one of "
            f"{', '.join(sorted(FN_KINDS))}"
        )


def _check_node(graph: PipelineGraph, node: TransformNode) -> None:
    where = _where(node)
    known = PRIMITIVE_KINDS | COMPOSITE_KINDS
    if node.kind not in known and not node.parts:
        raise GraphError(
            f"{where}: unknown kind with no parts; a runner executes only "
            f"{', '.join(sorted(PRIMITIVE_KINDS))} (and composites through their parts)"
        )
    for pid in node.inputs:
        if pid not in graph.pcollections:
            raise GraphError(f"{where}: input {pid!r} is not a PCollection of this graph")
    for side in node.side_inputs:
        if side.pcollection not in graph.pcollections:
            raise GraphError(
                f"{where}: side input {side.pcollection!r} is not a PCollection of this graph"
            )
    for tag, pid in node.outputs:
        pc = graph.pcollections.get(pid)
        if pc is None:
            raise GraphError(
                f"{where}: output {tag!r} ({pid!r}) is not a PCollection of this graph"
            )
        if pc.producer != node.id and not node.parts:  # a composite's come from its parts
            raise GraphError(
                f"{where}: output {tag!r} ({pid!r}) says it is produced by {pc.producer!r}"
            )
    for part in node.parts:
        if part not in graph.transforms:
            raise GraphError(f"{where}: part {part!r} is not a transform of this graph")
    if node.parent is not None and node.parent not in graph.transforms:
        raise GraphError(f"{where}: parent {node.parent!r} is not a transform of this graph")
    if node.parts:
        _check_params(node)
        return
    if node.kind in _NEEDS_PAYLOAD and node.payload is None:
        raise GraphError(f"{where}: has no payload (the user object it runs)")
    if node.kind in _ONE_INPUT and len(node.inputs) != 1:
        raise GraphError(f"{where}: takes one input, has {len(node.inputs)}")
    if node.kind in _NO_INPUT and node.inputs:
        raise GraphError(f"{where}: is a root and takes no input, has {len(node.inputs)}")
    if node.kind == FLATTEN and not node.outputs:
        raise GraphError(f"{where}: has no output")
    _check_params(node)


def validate_graph(graph: PipelineGraph) -> PipelineGraph:
    """``graph`` itself when it is consistent; :class:`GraphError` naming the node otherwise."""
    for root in graph.roots:
        if root not in graph.transforms:
            raise GraphError(f"root {root!r} is not a transform of this graph")
    for tid, node in graph.transforms.items():
        if node.id != tid:
            raise GraphError(f"{_where(node)} is stored under another id, {tid!r}")
        _check_node(graph, node)
    for pid, pc in graph.pcollections.items():
        if pc.producer not in graph.transforms:
            raise GraphError(f"PCollection {pid!r}: producer {pc.producer!r} is not in the graph")
    return graph
