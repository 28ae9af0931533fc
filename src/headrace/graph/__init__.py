"""The portable pipeline graph: plain, frozen, serialisable data.

Pipeline-building code only adds nodes; planners and runners only read them. User objects (DoFns,
sources, window functions, ...) travel inside nodes as opaque cloudpickle payloads.

``nodes``     :class:`~headrace.graph.nodes.PipelineGraph`, its transform and PCollection
              nodes, windowing strategies, side-input descriptors, payloads, and the JSON round
              trip that a runner in another process receives.
``kinds``     the transform kinds as constants, the typed ``params`` of each kind, and
              :func:`~headrace.graph.kinds.executable_leaves`, the one walk that says which nodes
              a runner executes.
``validate``  :func:`~headrace.graph.validate.validate_graph`: a graph checked at submission
              (and when read from JSON) with errors naming the node.
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
from headrace.graph.validate import GraphError, validate_graph

__all__ = [
    "PRIMITIVE_KINDS",
    "GraphError",
    "PCollectionNode",
    "Payload",
    "PipelineGraph",
    "SideInputNode",
    "TransformNode",
    "WindowingStrategy",
    "validate_graph",
]
