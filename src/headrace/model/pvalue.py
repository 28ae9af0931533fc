"""PCollections and the other values that flow between transforms at construction time.

A :class:`PCollection` is a handle: the pipeline it belongs to plus the id of its node in the graph.
Side-input views (:class:`AsSingleton`, :class:`AsIter`, :class:`AsList`, :class:`AsDict`,
:class:`AsMultiMap`) wrap a PCollection to pass it as an extra argument of a ParDo.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from headrace.graph.nodes import WindowingStrategy

if TYPE_CHECKING:
    from headrace.model.pipeline import Pipeline
    from headrace.model.transforms.ptransform import PTransform

__all__ = [
    "AsDict",
    "AsIter",
    "AsList",
    "AsMultiMap",
    "AsSideInput",
    "AsSingleton",
    "DoOutputsTuple",
    "EmptySideInput",
    "PBegin",
    "PCollection",
    "PDone",
    "PValue",
    "TaggedOutput",
]


class PValue:
    """Something a transform can be applied to."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    def __or__(self, transform: PTransform) -> Any:
        return self.pipeline.apply(transform, self)

    def apply(self, transform: PTransform, label: str | None = None) -> Any:
        return self.pipeline.apply(transform, self, label)


class PBegin(PValue):
    """The input of a root transform such as Create or a Read."""

    def __repr__(self) -> str:
        return "PBegin"


class PDone(PValue):
    """The output of a transform that produces nothing further (a sink)."""

    def __repr__(self) -> str:
        return "PDone"


class PCollection(PValue):
    """A distributed, immutable collection of elements, possibly unbounded."""

    def __init__(
        self,
        pipeline: Pipeline,
        node_id: str,
        producer_label: str,
        tag: str | None,
        windowing: WindowingStrategy,
        element_type: Any = None,
        is_bounded: bool = True,
    ) -> None:
        super().__init__(pipeline)
        self.node_id = node_id
        self.producer_label = producer_label
        self.tag = tag
        self.windowing = windowing
        self.element_type = element_type
        self.is_bounded = is_bounded
        # Whether a type hint declared element_type, and who produced it (for type checks).
        self._output_hinted = False
        self._producer_desc = producer_label
        #: The primitive transform that made it (``AppliedPTransform``), as Beam's ``producer``.
        self.producer: Any = None

    def __repr__(self) -> str:
        tag = f"[{self.tag}]" if self.tag not in (None, "main") else ""
        return f"PCollection[{self.producer_label}{tag}]"

    def __reduce__(self) -> Any:
        raise TypeError(
            f"{self!r} cannot be pickled: a PCollection is a construction-time handle. "
            "Pass it as a side input (beam.pvalue.AsList(pcoll), ...) instead of capturing it "
            "in a function."
        )

    def windowing_strategy(self) -> WindowingStrategy:
        return self.windowing


class DoOutputsTuple:
    """The outputs of ``ParDo(...).with_outputs(...)``: by attribute, by ``[tag]`` or unpacked."""

    def __init__(
        self, main_tag: str, outputs: dict[str, PCollection], *, unpack_main: bool = True
    ) -> None:
        self._main_tag = main_tag
        self._outputs = outputs
        self._declared = tuple(outputs)
        # Beam's DoOutputsTuple.__iter__ yields the main output only when ``main=`` was given:
        # ``a, b = ... .with_outputs("a", "b")`` unpacks the two declared outputs.
        self._unpack_main = unpack_main
        # Set when the ParDo allows unknown tags (``with_outputs()`` without tags, dead-letter
        # outputs): reading an undeclared tag adds that output to the ParDo (as in Beam).
        self._add_output: Any = None

    def _get(self, tag: str) -> PCollection | None:
        pc = self._outputs.get(tag)
        if pc is None and self._add_output is not None:
            pc = self._outputs[tag] = self._add_output(tag)
        return pc

    def __getitem__(self, tag: str | None) -> PCollection:
        if tag is None:
            tag = self._main_tag
        pc = self._get(str(tag))
        if pc is None:
            raise KeyError(
                f"no output tagged {tag!r}; declared outputs are {sorted(self._outputs)}"
            )
        return pc

    def __getattr__(self, tag: str) -> PCollection:
        if tag.startswith("__"):
            raise AttributeError(tag)
        outputs = self.__dict__.get("_outputs", {})
        if tag in outputs:
            return outputs[tag]
        if self.__dict__.get("_add_output") is not None and not tag.startswith("_"):
            pc = self._get(tag)
            if pc is not None:
                return pc
        raise AttributeError(f"no output tagged {tag!r}; declared outputs are {sorted(outputs)}")

    def __iter__(self) -> Iterator[PCollection]:
        if self._unpack_main:
            yield self._outputs[self._main_tag]
        for tag in self._declared:
            if tag != self._main_tag:
                yield self._outputs[tag]

    def __len__(self) -> int:
        return len(self._declared) - (0 if self._unpack_main else 1)

    @property
    def pipeline(self) -> Pipeline:
        return self._outputs[self._main_tag].pipeline

    def __repr__(self) -> str:
        return f"DoOutputsTuple(main={self._main_tag!r}, tags={list(self._outputs)})"


class TaggedOutput:
    """Yield ``TaggedOutput(tag, value)`` from a DoFn to emit to a declared additional output."""

    __slots__ = ("tag", "value")

    def __init__(self, tag: str, value: Any) -> None:
        if not isinstance(tag, str):
            raise TypeError(f"TaggedOutput tag must be a str, got {tag!r}")
        self.tag = tag
        self.value = value

    def __repr__(self) -> str:
        return f"TaggedOutput({self.tag!r}, {self.value!r})"

    def __class_getitem__(cls, params: Any) -> Any:
        """``TaggedOutput[Literal['tag'], T]`` in return annotations (Beam >= 2.71)."""
        return types.GenericAlias(cls, params)


_NO_DEFAULT = object()


class EmptySideInput:
    """What a DoFn receives for ``AsSingleton`` of an empty PCollection given no default.

    As in Beam (``apache_beam/pvalue.py``): the DoFn can test ``isinstance(x, EmptySideInput)``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "EmptySideInput()"


class AsSideInput:
    """Base of side-input views: a PCollection read whole by every element of another transform."""

    view = ""

    def __init__(self, pcoll: PCollection) -> None:
        if not isinstance(pcoll, PCollection):
            raise TypeError(f"{type(self).__name__} needs a PCollection, got {pcoll!r}")
        self.pvalue = pcoll

    @property
    def default(self) -> Any:
        return _NO_DEFAULT

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.pvalue!r})"


class AsSingleton(AsSideInput):
    """View a PCollection of exactly one element as that element.

    An empty PCollection gives ``default_value`` when one was given, else an
    :class:`EmptySideInput` instance (Beam's behaviour); more than one element is an error.
    """

    view = "singleton"

    def __init__(self, pcoll: PCollection, default_value: Any = _NO_DEFAULT) -> None:
        super().__init__(pcoll)
        self.default_value = default_value

    @property
    def default(self) -> Any:
        return self.default_value


class AsIter(AsSideInput):
    """View a PCollection as an iterable of its elements."""

    view = "iter"


class AsList(AsSideInput):
    """View a PCollection as a list of its elements."""

    view = "list"


class AsDict(AsSideInput):
    """View a PCollection of ``(key, value)`` pairs as a dict (keys must be unique)."""

    view = "dict"


class AsMultiMap(AsSideInput):
    """View a PCollection of ``(key, value)`` pairs as a dict of key to list of values."""

    view = "multimap"
