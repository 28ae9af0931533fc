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
from headrace.beam.transforms import combiners, core
from headrace.model.pipeline import Pipeline
from headrace.model.pvalue import PBegin, PCollection, PDone, TaggedOutput
from headrace.model.row import Row
from headrace.model.secret import GcpHsmGeneratedSecret, GcpSecret, Secret
from headrace.model.transforms.combiners import (
    CombinerWithoutDefaults,
)
from headrace.model.transforms.composites import FlattenWith, LogElements, Reify, Tee, WaitOn
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
from headrace.model.transforms.regex import Regex
from headrace.model.transforms.schemas import GroupBy, Select
from headrace.model.transforms.stats import ApproximateQuantiles, ApproximateUnique
from headrace.model.transforms.util import (
    BatchElements,
    CoGroupByKey,
    Distinct,
    GroupIntoBatches,
    Keys,
    KvSwap,
    RemoveDuplicates,
    Reshuffle,
    SortAndBatchElements,
    ToString,
    Values,
    WithKeys,
)
from headrace.model.userstate import TimeDomain
from headrace.model.window import TimestampedValue

__all__ = [
    "ApproximateQuantiles",
    "ApproximateUnique",
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
    "FlattenWith",
    "GcpHsmGeneratedSecret",
    "GcpSecret",
    "GroupBy",
    "GroupByKey",
    "GroupIntoBatches",
    "Impulse",
    "Keys",
    "KvSwap",
    "LogElements",
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
    "Regex",
    "Reify",
    "RemoveDuplicates",
    "Reshuffle",
    "Row",
    "Secret",
    "Select",
    "TaggedOutput",
    "Tee",
    "TimeDomain",
    "TimestampedValue",
    "ToString",
    "Values",
    "WaitOn",
    "WindowInto",
    "WithKeys",
    "coders",
    "combiners",
    "core",
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
