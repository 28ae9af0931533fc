"""Every Beam module path and public name that headrace.beam promises imports and is usable."""

from __future__ import annotations

import importlib

import pytest

# (Beam module path relative to apache_beam, names a Beam pipeline imports from it)
PATHS: list[tuple[str, list[str]]] = [
    ("transforms.timeutil", ["TimeDomain"]),
    ("typehints", ["TypeCheckError", "TypeVariable", "with_input_types", "decorators"]),
    ("typehints.decorators", ["with_input_types", "with_output_types"]),
    ("options.pipeline_options", ["GoogleCloudOptions", "StreamingOptions", "TypeOptions"]),
    ("transforms.core", ["Windowing", "PTransform"]),
    ("", ["FlattenWith", "LogElements", "Reify", "Tee", "WaitOn", "core"]),
    ("transforms.util", ["LogElements", "Reify", "Tee", "WaitOn"]),
    ("transforms.core", ["FlattenWith"]),
    ("runners", ["PipelineResult", "PipelineState", "runner"]),
    ("runners.runner", ["PipelineResult", "PipelineState"]),
    ("io.filesystems", ["FileSystems", "BeamIOError", "MatchResult"]),
    ("coders", ["registry", "ToBytesCoder", "typecoders"]),
    ("coders.typecoders", ["registry", "CoderRegistry"]),
    ("transforms.core", ["DeadLetter"]),
    ("transforms.error_handling", ["ErrorHandler", "CollectingErrorHandler"]),
    ("utils.secret", ["Secret", "GcpSecret", "GcpHsmGeneratedSecret"]),
    ("transforms.util", ["Secret", "GcpSecret", "GcpHsmGeneratedSecret"]),
    ("", ["Secret", "GcpSecret", "GcpHsmGeneratedSecret"]),
    (
        "testing.util",
        [
            "SortLists",
            "contains_in_any_order",
            "equal_to_approx",
            "open_shards",
            "row_namedtuple_equals_fn",
            "matches_all",
            "has_at_least_one",
            "AssertThat",
        ],
    ),
    (
        "",
        [
            "TimeDomain",
            "Pipeline",
            "PTransform",
            "ParDo",
            "DoFn",
            "Map",
            "FlatMap",
            "Filter",
            "MapTuple",
            "FlatMapTuple",
            "GroupByKey",
            "CoGroupByKey",
            "CombineFn",
            "CombinePerKey",
            "CombineGlobally",
            "CombineValues",
            "Create",
            "Impulse",
            "Flatten",
            "Partition",
            "PartitionFn",
            "Reshuffle",
            "Distinct",
            "Keys",
            "Values",
            "KvSwap",
            "WithKeys",
            "WindowInto",
            "Row",
            "ptransform_fn",
            "pvalue",
            "window",
            "combiners",
            "io",
            "coders",
            "metrics",
            "options",
            "transforms",
            "testing",
            "PCollection",
            "TimestampedValue",
        ],
    ),
    (
        "pvalue",
        [
            "PCollection",
            "PBegin",
            "PDone",
            "TaggedOutput",
            "AsSingleton",
            "AsIter",
            "AsList",
            "AsDict",
            "AsMultiMap",
        ],
    ),
    (
        "transforms",
        [
            "PTransform",
            "ParDo",
            "DoFn",
            "Map",
            "GroupByKey",
            "CombineFn",
            "window",
            "combiners",
            "util",
            "core",
            "ptransform_fn",
        ],
    ),
    (
        "transforms.core",
        [
            "DoFn",
            "ParDo",
            "Map",
            "FlatMap",
            "GroupByKey",
            "CombineFn",
            "CombinePerKey",
            "CombineGlobally",
            "Create",
            "Flatten",
            "WindowInto",
            "Partition",
            "Impulse",
            "Read",
        ],
    ),
    ("transforms.ptransform", ["PTransform", "ptransform_fn"]),
    (
        "transforms.window",
        [
            "GlobalWindows",
            "FixedWindows",
            "SlidingWindows",
            "Sessions",
            "TimestampedValue",
            "IntervalWindow",
            "GlobalWindow",
            "WindowFn",
            "TimestampCombiner",
            "BoundedWindow",
            "NonMergingWindowFn",
        ],
    ),
    (
        "window",
        [
            "GlobalWindows",
            "FixedWindows",
            "SlidingWindows",
            "Sessions",
            "TimestampedValue",
            "IntervalWindow",
        ],
    ),
    (
        "transforms.combiners",
        [
            "Count",
            "Mean",
            "Top",
            "ToList",
            "ToDict",
            "ToSet",
            "Sample",
            "CountCombineFn",
            "MeanCombineFn",
            "TopCombineFn",
            "ToListCombineFn",
        ],
    ),
    (
        "transforms.util",
        [
            "Distinct",
            "Keys",
            "Values",
            "KvSwap",
            "WithKeys",
            "Reshuffle",
            "CoGroupByKey",
            "BatchElements",
        ],
    ),
    (
        "io",
        [
            "ReadFromText",
            "WriteToText",
            "ReadFromParquet",
            "WriteToParquet",
            "ReadFromAvro",
            "WriteToAvro",
            "ReadFromCsv",
            "ReadFromJson",
            "WriteToJson",
            "Read",
            "textio",
            "parquetio",
            "avroio",
        ],
    ),
    ("io.textio", ["ReadFromText", "WriteToText", "ReadFromCsv", "ReadFromJson", "WriteToJson"]),
    ("io.parquetio", ["ReadFromParquet", "WriteToParquet"]),
    ("io.avroio", ["ReadFromAvro", "WriteToAvro"]),
    (
        "options.pipeline_options",
        [
            "PipelineOptions",
            "StandardOptions",
            "DirectOptions",
            "SetupOptions",
            "DebugOptions",
            "TypeOptions",
        ],
    ),
    ("metrics", ["Metrics", "MetricsFilter"]),
    ("metrics.metric", ["Metrics", "MetricsFilter", "MetricResults"]),
    ("testing.util", ["assert_that", "equal_to", "is_empty", "BeamAssertException"]),
    ("testing.test_pipeline", ["TestPipeline"]),
    (
        "coders",
        [
            "VarIntCoder",
            "StrUtf8Coder",
            "BytesCoder",
            "FloatCoder",
            "PickleCoder",
            "TupleCoder",
            "FastPrimitivesCoder",
            "Coder",
        ],
    ),
    ("coders.coders", ["VarIntCoder", "StrUtf8Coder"]),
    ("utils.timestamp", ["Timestamp", "Duration", "MIN_TIMESTAMP", "MAX_TIMESTAMP"]),
    ("typehints", ["with_input_types", "with_output_types", "Tuple", "KV", "Iterable", "Any"]),
    (
        "transforms.trigger",
        [
            "AfterWatermark",
            "AfterProcessingTime",
            "AfterCount",
            "Repeatedly",
            "AfterAny",
            "AfterAll",
            "AfterEach",
            "OrFinally",
            "Always",
            "DefaultTrigger",
            "AccumulationMode",
        ],
    ),
    (
        "transforms.userstate",
        [
            "ReadModifyWriteStateSpec",
            "BagStateSpec",
            "CombiningValueStateSpec",
            "SetStateSpec",
            "TimerSpec",
            "TimeDomain",
            "on_timer",
        ],
    ),
    (
        "testing.test_stream",
        ["TestStream", "ElementEvent", "WatermarkEvent", "ProcessingTimeEvent"],
    ),
    ("window", ["TimestampCombiner", "IntervalWindow", "GlobalWindow", "WindowFn"]),
    ("transforms.periodicsequence", ["PeriodicImpulse", "PeriodicSequence"]),
    ("io.fileio", ["MatchContinuously"]),
]


@pytest.mark.parametrize(("path", "names"), PATHS, ids=[p or "beam" for p, _ in PATHS])
def test_beam_path_exports(path: str, names: list[str]) -> None:
    module = importlib.import_module("headrace.beam" + (f".{path}" if path else ""))
    missing = [n for n in names if not hasattr(module, n)]
    assert not missing, f"headrace.beam.{path} lacks {missing}"
    for name in getattr(module, "__all__", []):
        assert hasattr(module, name), f"{module.__name__}.__all__ names {name!r}, which is absent"


def test_from_imports_work() -> None:
    from headrace.beam.options.pipeline_options import PipelineOptions
    from headrace.beam.testing.util import assert_that, equal_to
    from headrace.beam.transforms.combiners import Count

    assert callable(assert_that) and callable(equal_to)
    assert PipelineOptions([]).view_as(PipelineOptions) is not None
    assert Count.PerElement is not None


def test_beam_style_pipeline_runs(tmp_path) -> None:
    """A pipeline written exactly as for Apache Beam, with only the import changed."""
    import headrace.beam as beam
    from headrace.beam.options.pipeline_options import PipelineOptions
    from headrace.beam.testing.util import assert_that, equal_to

    src = tmp_path / "in.txt"
    src.write_text("the cat\nthe dog and the bird\n")

    class ExtractWords(beam.DoFn):
        def __init__(self):
            self.words = beam.metrics.Metrics.counter(self.__class__, "words")

        def process(self, line):
            for word in line.split():
                self.words.inc()
                yield word

    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as p:
        counts = (
            p
            | "Read" >> beam.io.ReadFromText(str(src))
            | "Split" >> beam.ParDo(ExtractWords())
            | "Pair" >> beam.Map(lambda w: (w, 1))
            | "Sum" >> beam.CombinePerKey(sum)
        )
        assert_that(counts, equal_to([("the", 3), ("cat", 1), ("dog", 1), ("and", 1), ("bird", 1)]))
        (
            counts
            | beam.Map(lambda kv: f"{kv[0]}: {kv[1]}")
            | beam.io.WriteToText(str(tmp_path / "out"), file_name_suffix=".txt")
        )
    result = p.result
    words = result.metrics().query(beam.metrics.MetricsFilter().with_name("words"))["counters"]
    assert [m.committed for m in words] == [7]
    assert words[0].key.step == "Split"
    written = sorted((tmp_path).glob("out-*.txt"))
    assert [f.name for f in written] == ["out-00000-of-00001.txt"]
    assert sorted(written[0].read_text().splitlines())[0] == "and: 1"
