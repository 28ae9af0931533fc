"""The portable pipeline graph: plain, frozen, serialisable data.

Pipeline-building code only adds nodes; planners and runners only read them. User objects (DoFns,
sources, window functions, ...) travel inside nodes as opaque cloudpickle payloads.

``nodes``  :class:`~headrace.graph.nodes.PipelineGraph`, its transform and PCollection nodes,
           windowing strategies, side-input descriptors, payloads, and the JSON round trip that
           a runner in another process receives.
"""

from headrace.graph.nodes import (
    PRIMITIVE_KINDS,
    Payload,
    PCollectionNode,
    PipelineGraph,
    SideInputNode,
    TransformNode,
    WindowingStrategy,
)

__all__ = [
    "PRIMITIVE_KINDS",
    "PCollectionNode",
    "Payload",
    "PipelineGraph",
    "SideInputNode",
    "TransformNode",
    "WindowingStrategy",
]
