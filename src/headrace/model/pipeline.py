"""Pipeline: records applied transforms as a graph and hands the graph to a runner.

Building a pipeline only adds nodes to the graph (see :mod:`headrace.graph`). Each ``apply``
pushes a scope, calls the transform's ``expand``, and records either the primitive node that
``expand`` created through :meth:`Pipeline._apply_primitive`, or a composite node listing its parts.
Labels are full paths (``Outer/Inner``) and must be unique.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from headrace.graph.nodes import (
    Payload,
    PCollectionNode,
    PipelineGraph,
    SideInputNode,
    TransformNode,
    WindowingStrategy,
)
from headrace.model.pvalue import (
    AsSideInput,
    DoOutputsTuple,
    PBegin,
    PCollection,
    PDone,
    PValue,
)

if TYPE_CHECKING:
    from headrace.model.options import PipelineOptions
    from headrace.model.result import PipelineResult
    from headrace.model.transforms.ptransform import PTransform

__all__ = ["AppliedPTransform", "Pipeline", "resolve_runner"]

# Runners are looked up by name at run time so that the model never imports a runner.
_RUNNERS = {
    "directrunner": "headrace.runners.direct:DirectRunner",
    "direct": "headrace.runners.direct:DirectRunner",
    "bundlebaseddirectrunner": "headrace.runners.direct:DirectRunner",
    "switchingdirectrunner": "headrace.runners.direct:DirectRunner",
    "fnapirunner": "headrace.runners.direct:DirectRunner",
    "prismrunner": "headrace.runners.direct:DirectRunner",
    "rayrunner": "headrace.runners.ray:RayRunner",
    "ray": "headrace.runners.ray:RayRunner",
}


# Reporting to a job service is looked up the same way: the model never imports the service.
_SERVICE_REPORTING = "headrace.service.client:report_to"


def _report_to_service(options: PipelineOptions) -> None:
    """With ``--service URL`` or ``$HEADRACE_SERVICE``, report this process's runs to that job
    service from now on (once per URL; what is queued is posted when the process exits)."""
    import os

    from headrace.model.options import ServiceOptions

    url = options.view_as(ServiceOptions).service or os.environ.get("HEADRACE_SERVICE")
    if not url:
        return
    module, _, name = _SERVICE_REPORTING.partition(":")
    try:
        report_to = getattr(importlib.import_module(module), name)
    except ImportError as e:  # pragma: no cover - the client is standard library only
        raise RuntimeError(f"cannot report to the job service at {url}: {e}") from e
    report_to(url, os.environ.get("HEADRACE_TOKEN"))


def resolve_runner(runner: Any) -> Any:
    """A runner instance from a name such as ``"DirectRunner"``, or the object itself."""
    if runner is None:
        runner = "DirectRunner"
    if not isinstance(runner, str):
        if not hasattr(runner, "run_pipeline"):
            raise TypeError(f"runner {runner!r} has no run_pipeline(pipeline, options) method")
        return runner
    target = _RUNNERS.get(runner.lower())
    if target is None:
        from headrace.model.options import PipelineOptionsError

        raise PipelineOptionsError(
            f"Invalid pipeline option --runner: unknown runner {runner!r}; headrace has "
            "DirectRunner (also selected by Beam's names BundleBasedDirectRunner, FnApiRunner, "
            "PrismRunner and SwitchingDirectRunner) and RayRunner (pip install 'headrace[ray]')",
            "runner",
        )
    module_name, _, cls_name = target.partition(":")
    return getattr(importlib.import_module(module_name), cls_name)()


@dataclass
class _Scope:
    id: str
    label: str
    parts: list[str] = field(default_factory=list)
    primitive: bool = False


class AppliedPTransform:
    """A transform as applied in a pipeline: what ``PCollection.producer`` gives.

    As in Beam (apache_beam/pipeline.py), a PCollection's producer is the innermost (primitive)
    transform that made it: ``full_label``, the ``transform`` object, its main ``inputs`` and its
    ``outputs`` by tag. Read-only information about the built graph; changing it changes nothing.
    """

    def __init__(
        self,
        full_label: str,
        transform: PTransform,
        inputs: tuple[PCollection, ...],
        outputs: dict[str, PCollection],
    ) -> None:
        self.full_label = full_label
        self.transform = transform
        self.inputs = inputs
        self.outputs = outputs

    def __repr__(self) -> str:
        return f"AppliedPTransform({self.full_label}, {type(self.transform).__name__})"


class Pipeline:
    """A graph of transforms; a context manager that runs itself on exit.

    >>> from headrace.model.transforms.core import Create, Map
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     squares = p | Create([1, 2, 3]) | Map(lambda x: x * x)
    ...     assert_that(squares, equal_to([1, 4, 9]))
    """

    def __init__(
        self,
        runner: Any = None,
        options: PipelineOptions | None = None,
        argv: Sequence[str] | None = None,
    ) -> None:
        from headrace.model.options import PipelineOptions

        if options is None:
            options = PipelineOptions(list(argv) if argv is not None else [])
        elif not isinstance(options, PipelineOptions):
            raise TypeError(f"options must be a PipelineOptions, got {type(options).__name__}")
        self._options = options
        self.runner = runner
        self._transforms: dict[str, TransformNode] = {}
        self._pcollections: dict[str, PCollectionNode] = {}
        self._roots: list[str] = []
        self._labels: set[str] = set()
        self._error_handlers: list[Any] = []  # ErrorHandlers given error PCollections
        self._output_handles: dict[str, list[PCollection]] = {}  # primitive id -> outputs
        self._scopes: list[_Scope] = []
        self._next_id = 0
        self.result: PipelineResult | None = None

    # -- construction ---------------------------------------------------------------------------

    @property
    def options(self) -> PipelineOptions:
        return self._options

    @property
    def applied_labels(self) -> frozenset[str]:
        """The full labels (``Outer/Inner``) of every transform applied so far."""
        return frozenset(self._labels)

    def current_label_prefix(self) -> str:
        """``"Outer/"`` while the composite ``Outer`` expands, ``""`` at the top level."""
        return f"{self._scopes[-1].label}/" if self._scopes else ""

    def _new_id(self, prefix: str) -> str:
        self._next_id += 1
        return f"{prefix}{self._next_id}"

    def apply(self, transform: PTransform, pvalueish: Any = None, label: str | None = None) -> Any:
        """Apply ``transform`` to ``pvalueish`` (this pipeline's begin when None)."""
        from headrace.model.transforms.ptransform import PTransform

        if not isinstance(transform, PTransform):
            raise TypeError(
                f"expected a PTransform, got {transform!r}; did you forget to call it, "
                "e.g. beam.GroupByKey() instead of beam.GroupByKey?"
            )
        if label is not None:
            transform = label >> transform
        if pvalueish is None or pvalueish is self:
            pvalueish = PBegin(self)
        parent = self._scopes[-1] if self._scopes else None
        full_label = f"{parent.label}/{transform.label}" if parent else transform.label
        if full_label in self._labels:
            raise ValueError(
                f"a transform labelled {full_label!r} already exists in this pipeline; labels must "
                f"be unique: write pcoll | 'NewLabel' >> {type(transform).__name__}(...)"
            )
        inputs = self._input_pcollections(pvalueish, full_label)
        if len(inputs) == 1:
            _type_check_input(self, transform, inputs[0], full_label)
        self._labels.add(full_label)
        scope = _Scope(self._new_id("t"), full_label)
        if parent:
            parent.parts.append(scope.id)
        else:
            self._roots.append(scope.id)
        self._scopes.append(scope)
        known = (set(self._transforms), set(self._pcollections))
        try:
            result = transform.expand(pvalueish)
        except BaseException:
            self._forget_since(scope, parent, known, full_label)
            raise
        finally:
            self._scopes.pop()
        if isinstance(result, PCollection):
            hint = transform._output_hint()
            if hint is not None:
                result.element_type = hint
                result._output_hinted = True
            kind = "ParDo" if hasattr(transform, "_fn_kind") else type(transform).__name__
            result._producer_desc = f"{kind}({transform.label})"
        if not scope.primitive:
            kind, payload, params = getattr(transform, "_graph_composite", ("Composite", None, {}))
            self._transforms[scope.id] = TransformNode(
                id=scope.id,
                label=full_label,
                kind=kind,
                inputs=tuple(pc.node_id for pc in inputs),
                outputs=_output_ids(result),
                payload=_payload(payload, full_label),
                parent=parent.id if parent else None,
                parts=tuple(scope.parts),
                params=dict(params),
            )
        return result

    def _forget_since(
        self,
        scope: _Scope,
        parent: _Scope | None,
        known: tuple[set[str], set[str]],
        label: str,
    ) -> None:
        """Undo a failed apply: nothing of it may stay in the graph."""
        (parent.parts if parent else self._roots).remove(scope.id)
        for tid in set(self._transforms) - known[0]:
            self._labels.discard(self._transforms.pop(tid).label)
        for pid in set(self._pcollections) - known[1]:
            del self._pcollections[pid]
        self._labels = {
            lbl for lbl in self._labels if lbl != label and not lbl.startswith(label + "/")
        }

    def _input_pcollections(self, pvalueish: Any, label: str) -> list[PCollection]:
        if isinstance(pvalueish, PBegin):
            items: list[Any] = []
        elif isinstance(pvalueish, PValue):
            items = [pvalueish]
        elif isinstance(pvalueish, dict):
            items = list(pvalueish.values())
        elif isinstance(pvalueish, (list, tuple, DoOutputsTuple)):
            items = list(pvalueish)
        else:
            raise TypeError(f"{label!r} was applied to {pvalueish!r}, which is not a PCollection")
        out = []
        for item in items:
            if not isinstance(item, PCollection):
                raise TypeError(f"{label!r} was applied to {item!r}, which is not a PCollection")
            self._check_owned(item, label)
            out.append(item)
        return out

    def _check_owned(self, pcoll: PCollection, label: str) -> None:
        if pcoll.pipeline is not self:
            raise ValueError(
                f"transform {label!r} was given {pcoll!r}, which belongs to another pipeline; "
                "build every transform of a pipeline from that pipeline's own PCollections"
            )

    def _apply_primitive(
        self,
        transform: PTransform,
        kind: str,
        inputs: Sequence[PCollection],
        payload: Any = None,
        outputs: Sequence[str] | None = ("main",),
        side_inputs: Sequence[tuple[AsSideInput, str]] = (),
        params: Mapping[str, Any] | None = None,
        windowing: WindowingStrategy | None = None,
        element_type: Any = None,
        bounded: bool | None = None,
        multi_output: bool = False,
    ) -> Any:
        """Record the current scope as a primitive node; return its output(s).

        ``params`` are the kind's typed params (``graph.kinds.PARAMS_OF``: ``ParDoParams``,
        ``GroupingParams``); they are stored as the node's plain JSON-able dict."""
        scope = self._scopes[-1]
        if scope.primitive:
            raise RuntimeError(f"{scope.label!r} tried to record two primitive nodes")
        scope.primitive = True
        parent = self._scopes[-2] if len(self._scopes) > 1 else None
        for pc in inputs:
            self._check_owned(pc, scope.label)
        side_nodes = []
        for view, slot in side_inputs:
            self._check_owned(view.pvalue, scope.label)
            default = view.default
            from headrace.model.pvalue import _NO_DEFAULT

            side_nodes.append(
                SideInputNode(
                    pcollection=view.pvalue.node_id,
                    view=view.view,
                    default=None if default is _NO_DEFAULT else Payload.of(default),
                    slot=slot,
                )
            )
        if windowing is None:
            windowing = inputs[0].windowing if inputs else WindowingStrategy()
        if bounded is None:
            bounded = all(pc.is_bounded for pc in inputs)
        out_pcolls: dict[str, PCollection] = {}
        for tag in outputs or ():
            pid = self._new_id("pc")
            self._pcollections[pid] = PCollectionNode(
                id=pid,
                producer=scope.id,
                tag=tag,
                windowing=windowing,
                bounded=bounded,
                element_type=_type_name(element_type),
            )
            out_pcolls[tag] = PCollection(
                self, pid, scope.label, tag, windowing, element_type, bounded
            )
        applied = AppliedPTransform(scope.label, transform, tuple(inputs), dict(out_pcolls))
        for pc in out_pcolls.values():
            pc.producer = applied
        self._output_handles[scope.id] = list(out_pcolls.values())
        self._transforms[scope.id] = TransformNode(
            id=scope.id,
            label=scope.label,
            kind=kind,
            inputs=tuple(pc.node_id for pc in inputs),
            outputs=tuple((tag, pc.node_id) for tag, pc in out_pcolls.items()),
            payload=_payload(payload, scope.label),
            side_inputs=tuple(side_nodes),
            parent=parent.id if parent else None,
            params=dict(params or {}),
        )
        if outputs is None:
            return PDone(self)
        if multi_output:
            outs = DoOutputsTuple(next(iter(out_pcolls)), out_pcolls)
            if (params or {}).get("allow_unknown_tags"):
                outs._add_output = lambda tag: self._add_output(scope.id, tag)
            return outs
        return next(iter(out_pcolls.values()))

    def _add_output(self, transform_id: str, tag: str) -> PCollection:
        """A new output ``tag`` of the primitive ``transform_id`` (a ParDo that allows unknown
        tags, read after it was applied)."""
        import dataclasses

        node = self._transforms[transform_id]
        first = self._pcollections[node.outputs[0][1]]
        pid = self._new_id("pc")
        self._pcollections[pid] = dataclasses.replace(first, id=pid, tag=tag, element_type=None)
        params = dict(node.params)
        if "tags" in params:
            params["tags"] = [*params["tags"], tag]
        self._transforms[transform_id] = dataclasses.replace(
            node, outputs=(*node.outputs, (tag, pid)), params=params
        )
        main = next(pc for pc in self._handles(transform_id))
        pc = PCollection(self, pid, node.label, tag, first.windowing, None, first.bounded)
        pc.producer = main.producer
        if main.producer is not None:
            main.producer.outputs[tag] = pc
        return pc

    def _handles(self, transform_id: str) -> list[PCollection]:
        return self._output_handles.get(transform_id, [])

    # -- graph ----------------------------------------------------------------------------------

    def to_graph(self) -> PipelineGraph:
        """The pipeline as plain frozen data."""
        if self._scopes:
            raise RuntimeError("to_graph() called while a transform is being expanded")
        return PipelineGraph(
            transforms=dict(self._transforms),
            pcollections=dict(self._pcollections),
            roots=tuple(self._roots),
        )

    def to_json(self, indent: int | None = None) -> str:
        """The whole graph as JSON; user functions travel as base64 cloudpickle payloads."""
        return self.to_graph().to_json(indent=indent)

    @classmethod
    def from_json(
        cls, text: str, runner: Any = None, options: PipelineOptions | None = None
    ) -> Pipeline:
        """Rebuild a runnable pipeline from :meth:`to_json` output."""
        graph = PipelineGraph.from_json(text)
        p = cls(runner=runner, options=options)
        p._transforms = dict(graph.transforms)
        p._pcollections = dict(graph.pcollections)
        p._roots = list(graph.roots)
        p._labels = {t.label for t in graph.transforms.values()}
        numbers = [int(i.lstrip("tpc")) for i in [*graph.transforms, *graph.pcollections]]
        p._next_id = max(numbers, default=0)
        return p

    # -- running --------------------------------------------------------------------------------

    def run(self) -> PipelineResult:
        """Run the pipeline with its runner and return the result (it may still be running)."""
        from headrace.model.options import StandardOptions

        for handler in self._error_handlers:
            handler.verify_closed()
        runner = resolve_runner(self.runner or self._options.view_as(StandardOptions).runner)
        _report_to_service(self._options)
        self.result = runner.run_pipeline(self, self._options)
        return self.result

    def _register_error_handler(self, handler: Any) -> None:
        """An ErrorHandler received an error PCollection: :meth:`run` checks it was closed."""
        if all(h is not handler for h in self._error_handlers):
            self._error_handlers.append(handler)

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.run().wait_until_finish()

    def __repr__(self) -> str:
        return f"<Pipeline with {len(self._transforms)} transforms>"


def _type_check_input(
    pipeline: Pipeline, transform: PTransform, pcoll: PCollection, label: str
) -> None:
    """Raise TypeCheckError when ``transform``'s input hint rejects ``pcoll``'s element type."""
    from headrace.model.options import TypeOptions
    from headrace.model.typehints import TypeCheckError, format_hint, is_consistent_with

    options = pipeline.options.view_as(TypeOptions)
    if not options.pipeline_type_check:
        return
    if options.type_check_strictness == "ALL_REQUIRED" and not pcoll._output_hinted:
        raise TypeCheckError(
            "Pipeline type checking is enabled, however no output type-hint was found for the "
            f"PTransform {pcoll._producer_desc}"
        )
    hint = transform._input_hint()
    if hint is None or pcoll.element_type is None:
        return
    if not is_consistent_with(pcoll.element_type, hint) and not transform._checks_like_pardo:
        # Beam's message for a PTransform's own input hint (ParDo and the per-key combines,
        # whose hints come from their functions, use the one below).
        raise TypeCheckError(
            f"Input type hint violation at {transform.label}: expected {format_hint(hint)}, "
            f"got {format_hint(pcoll.element_type)}"
        )
    if not is_consistent_with(pcoll.element_type, hint):
        raise TypeCheckError(
            f"The transform '{label}' requires PCollections of type '{format_hint(hint)}' but "
            f"was applied to a PCollection of type '{format_hint(pcoll.element_type)}' "
            f"(produced by the transform '{pcoll.producer_label}'). Fix the hints, or turn the "
            "check off with the pipeline option --no_pipeline_type_check."
        )


def _output_ids(result: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(result, PCollection):
        return (("main", result.node_id),)
    if isinstance(result, DoOutputsTuple):
        return tuple((tag, pc.node_id) for tag, pc in result._outputs.items())
    if isinstance(result, dict):
        return tuple((str(k), v.node_id) for k, v in result.items() if isinstance(v, PCollection))
    if isinstance(result, (list, tuple)):
        return tuple(
            (str(i), v.node_id) for i, v in enumerate(result) if isinstance(v, PCollection)
        )
    return ()


def _payload(obj: Any, label: str) -> Payload | None:
    if obj is None or isinstance(obj, Payload):
        return obj
    try:
        return Payload.of(obj)
    except Exception as e:
        raise TypeError(
            f"{label!r} holds something that cannot be pickled ({e}); user functions travel to "
            "workers by pickling, so create locks, connections and clients in DoFn.setup() "
            "instead of capturing them"
        ) from e


def _type_name(t: Any) -> str | None:
    if t is None:
        return None
    return getattr(t, "__name__", None) or repr(t)
