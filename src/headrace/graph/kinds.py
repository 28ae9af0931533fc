"""The graph's vocabulary: transform kinds, the typed params of each, and which nodes run.

Every :class:`~headrace.graph.nodes.TransformNode` has a ``kind``. The *primitives* are what a
runner executes; *composites* are recorded with their parts (so a UI can fold them), and a
runner executes their parts, except the composites a runner may execute whole (a lifted
``CombinePerKey``, a ``Reshuffle``). :func:`executable_leaves` is the one definition of that
walk; the planner and the streaming driver differ only in which composites they keep whole.

``params`` is free-form in the JSON form, but each kind has a documented shape
(:data:`PARAMS_OF`), which :mod:`headrace.graph.validate` checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from headrace.graph.nodes import PipelineGraph, TransformNode

__all__ = [
    "COMBINE_PER_KEY",
    "COMPOSITE",
    "COMPOSITE_KINDS",
    "FINALIZE",
    "FLATTEN",
    "FN_KINDS",
    "GROUP_BY_KEY",
    "IMPULSE",
    "PARAMS_OF",
    "PARDO",
    "PRIMITIVE_KINDS",
    "READ",
    "RESHUFFLE",
    "WINDOW_INTO",
    "GroupingParams",
    "ParDoParams",
    "ReadParams",
    "executable_leaves",
]

IMPULSE = "Impulse"  # one empty bytes element: the root of Create-less pipelines
READ = "Read"  # payload: a BoundedSource or UnboundedSource (or a TestStream's source)
PARDO = "ParDo"  # payload: (DoFn, args, kwargs); params: ParDoParams
GROUP_BY_KEY = "GroupByKey"  # params: GroupingParams
FLATTEN = "Flatten"
WINDOW_INTO = "WindowInto"  # payload: the WindowFn (None: into the global window)
FINALIZE = "Finalize"  # payload: a Finalizer; commits a sink's records after the run succeeded
COMBINE_PER_KEY = "CombinePerKey"  # composite; payload: (CombineFn, args, kwargs)
RESHUFFLE = "Reshuffle"  # composite; a runner may redistribute instead of running its parts
COMPOSITE = "Composite"  # any other composite: only its parts run

PRIMITIVE_KINDS = frozenset(
    {IMPULSE, READ, PARDO, GROUP_BY_KEY, COMBINE_PER_KEY, FLATTEN, WINDOW_INTO, FINALIZE}
)
COMPOSITE_KINDS = frozenset({COMBINE_PER_KEY, RESHUFFLE, COMPOSITE})

# What ParDoParams.fn_kind may say: a DoFn, or which callable wrapper made it.
FN_KINDS = frozenset({"dofn", "map", "flatmap", "filter", "maptuple", "flatmaptuple"})


class ParDoParams(TypedDict, total=False):
    """``params`` of a ``ParDo``."""

    fn_kind: str  # one of FN_KINDS
    main_tag: str  # the tag of the main output
    tags: list[str]  # every output tag, main first
    dofn_params: dict[str, Any]  # process() parameters asking for timestamp/window/pane/state
    stateful: bool  # the DoFn declares user state or timers
    allow_unknown_tags: bool  # outputs to undeclared tags are kept (Beam reads any tag)


class GroupingParams(TypedDict, total=False):
    """``params`` of a ``GroupByKey`` or ``CombinePerKey``."""

    elements_as_keys: bool  # the input elements are the keys (Count.PerElement)


class ReadParams(TypedDict, total=False):
    """``params`` of a ``Read``."""

    # False: no element is a TimestampedValue, so every element is at the minimum timestamp in
    # the global window (a Create of plain values); a planner may then move them unwrapped.
    timestamped: bool


PARAMS_OF: dict[str, type] = {
    READ: ReadParams,
    PARDO: ParDoParams,
    GROUP_BY_KEY: GroupingParams,
    COMBINE_PER_KEY: GroupingParams,
}


def executable_leaves(
    graph: PipelineGraph, whole: Callable[[TransformNode], bool] = lambda node: False
) -> Iterator[TransformNode]:
    """The nodes a runner executes, in application (topological) order.

    A node with parts is replaced by its parts, unless ``whole(node)`` says the runner executes
    that composite itself; a composite with no parts runs nothing; every other node runs.
    """

    def visit(tid: str) -> Iterator[TransformNode]:
        node = graph.transforms[tid]
        if node.parts and not whole(node):
            for part in node.parts:
                yield from visit(part)
        elif node.parts or node.kind != COMPOSITE:
            yield node

    for root in graph.roots:
        yield from visit(root)
