"""``ReadUnbounded``: the primitive that reads an :class:`~headrace.model.sources.UnboundedSource`.

It records a graph node of kind ``"Read"`` whose payload is the source, with an *unbounded* output
PCollection. Running a pipeline that contains one needs a streaming run (``streaming=True`` in the
pipeline options, or ``--streaming``); the runner checks this when the pipeline is submitted. The
connectors in :mod:`headrace.io.streaming` are composites over this primitive.
"""

from __future__ import annotations

from headrace.model.pvalue import PBegin, PCollection
from headrace.model.sources import UnboundedSource
from headrace.model.transforms.ptransform import PTransform

__all__ = ["ReadUnbounded"]


class ReadUnbounded(PTransform):
    """Read an :class:`~headrace.model.sources.UnboundedSource` (needs ``streaming=True``).

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.sources import UnboundedReader, UnboundedSource
    >>> class Ticks(UnboundedSource):
    ...     def create_reader(self, checkpoint=None):
    ...         raise NotImplementedError  # a real source returns its reader here
    >>> p = Pipeline()
    >>> ticks = p | ReadUnbounded(Ticks())
    >>> ticks, ticks.is_bounded
    (PCollection[Read(Ticks)], False)
    """

    def __init__(self, source: UnboundedSource) -> None:
        super().__init__()
        if not isinstance(source, UnboundedSource):
            raise TypeError(
                f"ReadUnbounded needs an UnboundedSource, got {source!r}; "
                "for a finite source use beam.io.Read"
            )
        self.source = source

    def default_label(self) -> str:
        return f"Read({self.source.default_label()})"

    def expand(self, pbegin: PBegin) -> PCollection:
        if not isinstance(pbegin, PBegin):
            raise TypeError(f"{self.label!r} must be applied to a pipeline, not {pbegin!r}")
        result: PCollection = pbegin.pipeline._apply_primitive(
            self, "Read", [], payload=self.source, bounded=False
        )
        return result
