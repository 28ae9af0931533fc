"""Apache Beam's module paths over headrace: ``import headrace.beam as beam``.

Re-exports only, no logic. A Beam pipeline runs on headrace after changing its imports from
``apache_beam`` to ``headrace.beam``.
"""

from headrace.beam import (
    coders,
    io,
    metrics,
    options,
    pvalue,
    runners,
    testing,
    transforms,
    typehints,
    utils,
    window,
)
from headrace.beam.transforms import combiners
from headrace.model.pipeline import Pipeline
from headrace.model.pvalue import PBegin, PCollection, PDone, TaggedOutput
from headrace.model.row import Row
from headrace.model.transforms.combiners import (
    CombinerWithoutDefaults,
)
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
    WindowInto,
)
from headrace.model.transforms.ptransform import PTransform, ptransform_fn
from headrace.model.transforms.util import (
    BatchElements,
    CoGroupByKey,
    Distinct,
    Keys,
    KvSwap,
    RemoveDuplicates,
    Reshuffle,
    ToString,
    Values,
    WithKeys,
)
from headrace.model.userstate import TimeDomain
from headrace.model.window import TimestampedValue

__all__ = [
    "BatchElements",
    "CoGroupByKey",
    "CombineFn",
    "CombineGlobally",
    "CombinePerKey",
    "CombineValues",
    "CombinerWithoutDefaults",
    "Create",
    "Distinct",
    "DoFn",
    "Filter",
    "FlatMap",
    "FlatMapTuple",
    "Flatten",
    "GroupByKey",
    "Impulse",
    "Keys",
    "KvSwap",
    "Map",
    "MapTuple",
    "PBegin",
    "PCollection",
    "PDone",
    "PTransform",
    "ParDo",
    "Partition",
    "PartitionFn",
    "Pipeline",
    "RemoveDuplicates",
    "Reshuffle",
    "Row",
    "TaggedOutput",
    "TimeDomain",
    "TimestampedValue",
    "ToString",
    "Values",
    "WindowInto",
    "WithKeys",
    "coders",
    "combiners",
    "io",
    "metrics",
    "options",
    "ptransform_fn",
    "pvalue",
    "runners",
    "testing",
    "transforms",
    "typehints",
    "utils",
    "window",
]
