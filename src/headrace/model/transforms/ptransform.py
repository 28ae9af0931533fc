"""PTransform: the unit of pipeline construction.

A primitive transform records one graph node through ``Pipeline._apply_primitive``; a composite
overrides :meth:`PTransform.expand` and applies other transforms, which the pipeline records as its
parts. ``"Label" >> transform`` names a transform; ``pvalue | transform`` applies it.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from headrace.model.transforms.dofn import DoFn

if TYPE_CHECKING:
    from headrace.model.pipeline import Pipeline

__all__ = ["MaterializedOutputs", "PTransform", "ptransform_fn"]


class PTransform:
    """Base class of every transform.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create, Map
    >>> from headrace.testing.util import assert_that, equal_to
    >>> class Double(PTransform):
    ...     def expand(self, pcoll):
    ...         return pcoll | Map(lambda x: x * 2)
    >>> with Pipeline() as p:
    ...     out = p | Create([1, 2]) | "Twice" >> Double()
    ...     assert_that(out, equal_to([2, 4]))
    """

    # Class-level defaults, so that a subclass whose __init__ does not call
    # ``super().__init__()`` still works (Beam allows that).
    _label: str | None = None
    pipeline: Pipeline | None = None

    def __init__(self, label: str | None = None) -> None:
        self._label = label

    @property
    def label(self) -> str:
        return self._label or self.default_label()

    @label.setter
    def label(self, value: str | None) -> None:
        self._label = value

    def default_label(self) -> str:
        return type(self).__name__

    def expand(self, input_or_inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement expand()")

    _input_type_hint: Any = None
    # Whether an input hint violation is reported as Beam reports it for a ParDo ("The transform
    # 'X' requires PCollections of type ...") rather than for a PTransform's own hint ("Input
    # type hint violation at X: expected ..., got ...").
    _checks_like_pardo: bool = False
    _output_type_hint: Any = None

    def with_output_types(self, type_hint: Any, *args: Any, **kwargs: Any) -> PTransform:
        """The element type of the output (checked against the next transform's input hint).
        Hints of additional outputs (keywords) are accepted and not checked."""
        self._output_type_hint = type_hint
        return self

    def with_input_types(self, input_type_hint: Any, *args: Any, **kwargs: Any) -> PTransform:
        """The element type this transform requires of its main input; checked when it is
        applied (pipeline option ``pipeline_type_check``). Side-input hints are not checked."""
        self._input_type_hint = input_type_hint
        return self

    def _input_hint(self) -> Any:
        """The type hint of the main input, if any (subclasses add hints of user functions)."""
        return self._input_type_hint

    def _output_hint(self) -> Any:
        """The element type of the main output, if a hint gives it."""
        return self._output_type_hint

    def __rrshift__(self, label: str) -> PTransform:
        if not isinstance(label, str):
            return NotImplemented
        named = copy.copy(self)
        named._label = label
        return named

    def __ror__(self, left: Any) -> Any:
        if _is_plain_data(left, self):
            return _apply_eagerly(self, left)
        pipeline = _find_pipeline(left, self)
        return pipeline.apply(self, left)

    def __or__(self, right: PTransform) -> PTransform:
        if not isinstance(right, PTransform):
            return NotImplemented
        return _ChainedPTransform(self, right)

    def with_resource_hints(self, **hints: Any) -> PTransform:
        """Accepted for Beam compatibility: resource hints (memory, accelerators) change where
        a runner places work, never results; headrace's runners place all work alike."""
        return self

    def __repr__(self) -> str:
        # Beam's form (apache_beam/transforms/ptransform.py): inputs and side inputs when a
        # transform carries them as attributes.
        text = f"<{type(self).__name__}(PTransform) label=[{self.label}]"
        inputs, sides = getattr(self, "inputs", None), getattr(self, "side_inputs", None)
        if inputs:
            text += f" inputs={inputs}"
        if sides:
            text += f" side_inputs={sides}"
        return text + ">"


class _ChainedPTransform(PTransform):
    def __init__(self, *parts: PTransform) -> None:
        super().__init__("|".join(p.label for p in parts))
        self._parts = parts

    def expand(self, pvalue: Any) -> Any:
        for part in self._parts:
            pvalue = pvalue | part
        return pvalue


def _find_pipeline(left: Any, transform: PTransform) -> Pipeline:
    from headrace.model.pipeline import Pipeline
    from headrace.model.pvalue import PValue

    if isinstance(left, Pipeline):
        return left
    if isinstance(left, PValue):
        return left.pipeline
    items = list(left.values()) if isinstance(left, dict) else left
    if isinstance(items, (list, tuple)):
        for item in items:
            if isinstance(item, PValue):
                return item.pipeline
        pipeline = getattr(transform, "pipeline", None)
        if pipeline is not None:
            return pipeline
        raise ValueError(
            f"cannot apply {transform.label!r} to an empty {type(left).__name__}; "
            "pass pipeline=p (e.g. beam.Flatten(pipeline=p)) to say which pipeline it belongs to"
        )
    raise TypeError(f"cannot apply {transform.label!r} to {left!r}: expected a PCollection")


def _is_plain_data(left: Any, transform: PTransform) -> bool:
    """Whether ``left`` holds no PValue at all: ``[1, 2] | beam.Map(f)`` (Beam runs it eagerly)."""
    from headrace.model.pipeline import Pipeline
    from headrace.model.pvalue import PValue

    if isinstance(left, (Pipeline, PValue)) or getattr(transform, "pipeline", None) is not None:
        return False
    if isinstance(left, list):
        return not _holds_pvalue(left)
    if isinstance(left, dict):
        values = list(left.values())
    elif isinstance(left, tuple):
        values = list(left)
    else:
        return False
    return bool(values) and not any(_holds_pvalue(v) for v in values)


def _holds_pvalue(value: Any) -> bool:
    from headrace.model.pvalue import PValue

    if isinstance(value, PValue):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_pvalue(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_pvalue(v) for v in value.values())
    return False


# Elements collected by eager applications, by token (the collecting DoFn runs in this process).
_MATERIALIZED: dict[str, list[Any]] = {}


def _apply_eagerly(transform: PTransform, data: Any) -> Any:
    """Apply ``transform`` to in-memory data in a pipeline of its own, run it, and return the
    outputs as lists (Beam's eager mode: a list in, a list out; a tuple or dict of lists gives
    one input PCollection per item)."""
    import uuid

    from headrace.model.options import PipelineOptions
    from headrace.model.pipeline import Pipeline
    from headrace.model.transforms.core import Create

    p = Pipeline(options=PipelineOptions(direct_num_workers=1))
    if isinstance(data, list):
        pvalueish: Any = p | "CreatePInput0" >> Create(data, reshuffle=False)
    elif isinstance(data, dict):
        pvalueish = {
            k: p | f"CreatePInput{i}" >> Create(v, reshuffle=False)
            for i, (k, v) in enumerate(data.items())
        }
    else:
        pvalueish = tuple(
            p | f"CreatePInput{i}" >> Create(v, reshuffle=False) for i, v in enumerate(data)
        )
    result = p.apply(transform, pvalueish)
    run_id = uuid.uuid4().hex
    tokens: list[str] = []
    materialized = _materialize(result, run_id, tokens)
    try:
        p.run().wait_until_finish()
        return _collect(materialized)
    finally:
        for token in tokens:
            _MATERIALIZED.pop(token, None)


class _Materialized:
    def __init__(self, token: str) -> None:
        self.token = token


class MaterializedOutputs:
    """The outputs of an eagerly applied multi-output transform, as lists by tag."""

    def __init__(self, main_tag: str, outputs: dict[str, list[Any]], unpack_main: bool) -> None:
        self._main_tag = main_tag
        self._outputs = outputs
        self._unpack_main = unpack_main

    def __getitem__(self, tag: str | int | None) -> list[Any]:
        key = self._main_tag if tag is None else str(tag)
        try:
            return self._outputs[key]
        except KeyError:
            raise KeyError(
                f"no output tagged {tag!r}; outputs are {sorted(self._outputs)}"
            ) from None

    def __getattr__(self, tag: str) -> list[Any]:
        if tag.startswith("_"):
            raise AttributeError(tag)
        try:
            return self._outputs[tag]
        except KeyError:
            raise AttributeError(f"no output tagged {tag!r}") from None

    def __iter__(self) -> Any:
        if self._unpack_main:
            yield self._outputs[self._main_tag]
        for tag, values in self._outputs.items():
            if tag != self._main_tag:
                yield values


def _materialize(result: Any, run_id: str, tokens: list[str]) -> Any:
    from headrace.model.pvalue import DoOutputsTuple, PCollection
    from headrace.model.transforms.core import ParDo

    if isinstance(result, PCollection):
        token = f"{run_id}:{len(tokens)}"
        tokens.append(token)
        _MATERIALIZED[token] = []
        _ = result | f"_MaterializeValues{len(tokens)}" >> ParDo(_Collect(token))
        return _Materialized(token)
    if isinstance(result, DoOutputsTuple):
        outs = {tag: _materialize(pc, run_id, tokens) for tag, pc in result._outputs.items()}
        return ("__outputs__", result._main_tag, outs, result._unpack_main)
    if isinstance(result, tuple):
        return tuple(_materialize(r, run_id, tokens) for r in result)
    if isinstance(result, list):
        return [_materialize(r, run_id, tokens) for r in result]
    if isinstance(result, dict):
        return {k: _materialize(v, run_id, tokens) for k, v in result.items()}
    return None


def _collect(node: Any) -> Any:
    if isinstance(node, _Materialized):
        return list(_MATERIALIZED[node.token])
    if isinstance(node, tuple) and len(node) == 4 and node[0] == "__outputs__":
        outputs = {k: _collect(v) for k, v in node[2].items()}
        return MaterializedOutputs(node[1], outputs, node[3])
    if isinstance(node, tuple):
        return tuple(_collect(n) for n in node)
    if isinstance(node, list):
        return [_collect(n) for n in node]
    if isinstance(node, dict):
        return {k: _collect(v) for k, v in node.items()}
    return None


class _Collect(DoFn):
    """Appends every element to ``_MATERIALIZED[token]`` (eager application, in process)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def process(self, element: Any) -> None:
        _MATERIALIZED[self.token].append(element)


class _PTransformFnTransform(PTransform):
    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        super().__init__()
        self._fn, self._args, self._kwargs = fn, args, kwargs

    def default_label(self) -> str:
        return self._fn.__name__

    def expand(self, pvalue: Any) -> Any:
        return self._fn(pvalue, *self._args, **self._kwargs)


def ptransform_fn(fn: Callable[..., Any]) -> Callable[..., PTransform]:
    """Turn ``fn(pcoll, *args)`` into a transform factory, as Beam's ``@ptransform_fn`` does.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create, Map
    >>> from headrace.testing.util import assert_that, equal_to
    >>> @ptransform_fn
    ... def AddN(pcoll, n):
    ...     return pcoll | Map(lambda x: x + n)
    >>> with Pipeline() as p:
    ...     assert_that(p | Create([1]) | AddN(10), equal_to([11]))
    """

    @functools.wraps(fn)
    def factory(*args: Any, **kwargs: Any) -> PTransform:
        return _PTransformFnTransform(fn, args, kwargs)

    return factory
