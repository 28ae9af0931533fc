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

if TYPE_CHECKING:
    from headrace.model.pipeline import Pipeline

__all__ = ["PTransform", "ptransform_fn"]


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

    def with_output_types(self, type_hint: Any) -> PTransform:
        """Accepted for Beam compatibility; the hint is recorded on the transform."""
        self._output_type_hint = type_hint
        return self

    def with_input_types(self, *args: Any, **kwargs: Any) -> PTransform:
        """Accepted for Beam compatibility (input type hints are not checked yet)."""
        return self

    def __rrshift__(self, label: str) -> PTransform:
        if not isinstance(label, str):
            return NotImplemented
        named = copy.copy(self)
        named._label = label
        return named

    def __ror__(self, left: Any) -> Any:
        pipeline = _find_pipeline(left, self)
        return pipeline.apply(self, left)

    def __or__(self, right: PTransform) -> PTransform:
        if not isinstance(right, PTransform):
            return NotImplemented
        return _ChainedPTransform(self, right)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} label={self.label!r}>"


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
