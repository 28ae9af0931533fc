"""``apache_beam.pvalue``."""

from headrace.model.pvalue import (
    AsDict,
    AsIter,
    AsList,
    AsMultiMap,
    AsSideInput,
    AsSingleton,
    DoOutputsTuple,
    EmptySideInput,
    PBegin,
    PCollection,
    PDone,
    PValue,
    TaggedOutput,
)
from headrace.model.row import Row

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
    "Row",
    "TaggedOutput",
]
