"""``apache_beam.transforms.core``."""

from headrace.model.transforms.composites import FlattenWith
from headrace.model.transforms.core import (
    CombineFn,
    CombineGlobally,
    CombinePerKey,
    CombineValues,
    Create,
    DoFn,
    Filter,
    FlatMap,
    FlatMapTuple,
    Flatten,
    GroupByKey,
    Impulse,
    Map,
    MapTuple,
    ParDo,
    Partition,
    PartitionFn,
    Read,
    WindowInto,
)
from headrace.model.transforms.deadletter import DeadLetter
from headrace.model.transforms.dofn import CallableWrapperCombineFn
from headrace.model.transforms.ptransform import PTransform
from headrace.model.transforms.schemas import GroupBy, Select
from headrace.model.windowing import Windowing

__all__ = [
    "CallableWrapperCombineFn",
    "CombineFn",
    "CombineGlobally",
    "CombinePerKey",
    "CombineValues",
    "Create",
    "DeadLetter",
    "DoFn",
    "Filter",
    "FlatMap",
    "FlatMapTuple",
    "Flatten",
    "FlattenWith",
    "GroupBy",
    "GroupByKey",
    "Impulse",
    "Map",
    "MapTuple",
    "PTransform",
    "ParDo",
    "Partition",
    "PartitionFn",
    "Read",
    "Select",
    "WindowInto",
    "Windowing",
]
