"""Beam semantics of the core transforms, run in this process and with two worker processes.

Every pipeline test takes ``make_pipeline`` (tests/conftest.py), so it runs once per direct-runner
configuration. Counts that must survive worker processes are kept in files under ``tmp_path``.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from headrace.model.pipeline import Pipeline
from headrace.model.pvalue import (
    AsDict,
    AsIter,
    AsList,
    AsMultiMap,
    AsSingleton,
    EmptySideInput,
    TaggedOutput,
)
from headrace.model.transforms.core import (
    CombineFn,
    CombineGlobally,
    CombinePerKey,
    CombineValues,
    Create,
    Filter,
    FlatMap,
    FlatMapTuple,
    Flatten,
    GroupByKey,
    Map,
    MapTuple,
    ParDo,
    Partition,
    PartitionFn,
    WindowInto,
)
from headrace.model.transforms.dofn import DoFn
from headrace.model.window import (
    MIN_TIMESTAMP,
    FixedWindows,
    GlobalWindow,
    GlobalWindows,
    IntervalWindow,
    Sessions,
    SlidingWindows,
    TimestampCombiner,
    TimestampedValue,
)
from headrace.testing.util import BeamAssertException, assert_that, equal_to, is_empty

# -- helpers ------------------------------------------------------------------------------------


class Reify(DoFn):
    """(value, timestamp in seconds, window) of each element."""

    def process(self, x, t=DoFn.TimestampParam, w=DoFn.WindowParam):
        yield (x, t.micros / 1e6, w)


def stamped(p, label, values, window_fn=None):
    """``Create(values)`` with timestamps: the value itself, or ``v[1]`` for pairs (seconds)."""
    pc = (
        p
        | f"{label}Create" >> Create(values)
        | f"{label}Stamp" >> Map(lambda v: TimestampedValue(v, v[1] if isinstance(v, tuple) else v))
    )
    if window_fn is not None:
        pc = pc | f"{label}Window" >> WindowInto(window_fn)
    return pc


def sorted_values(kv):
    return (kv[0], sorted(kv[1]))


class Mean(CombineFn):
    def create_accumulator(self):
        return (0, 0)

    def add_input(self, acc, x):
        return (acc[0] + x, acc[1] + 1)

    def merge_accumulators(self, accs):
        accs = list(accs)
        return (sum(a[0] for a in accs), sum(a[1] for a in accs))

    def extract_output(self, acc):
        return acc[0] / acc[1] if acc[1] else None


# -- ParDo and the DoFn lifecycle ---------------------------------------------------------------


class LifecycleRecorder(DoFn):
    """Appends each lifecycle call to a per-instance log file in ``folder``."""

    def __init__(self, folder: str, fail_on=None) -> None:
        self.folder = folder
        self.fail_on = fail_on
        self.log = None

    def _note(self, event):
        with open(self.log, "a") as f:
            f.write(event + "\n")

    def setup(self):
        self.log = str(Path(self.folder) / f"{uuid.uuid4().hex}.log")
        self._note("setup")

    def start_bundle(self):
        self._note("start")
        self.in_bundle = 0

    def process(self, x):
        self._note("process")
        if x == self.fail_on:
            raise RuntimeError(f"boom on {x}")
        self.in_bundle += 1
        yield x * 10

    def finish_bundle(self):
        self._note("finish")
        yield TaggedOutput("counts", self.in_bundle)

    def teardown(self):
        self._note("teardown")


def _logs(folder: Path) -> list[str]:
    return [p.read_text() for p in sorted(folder.glob("*.log"))]


def test_dofn_lifecycle_order_and_counts(make_pipeline, runner_config, tmp_path):
    values = list(range(3000))
    with make_pipeline() as p:
        out = (
            p
            | Create(values)
            | ParDo(LifecycleRecorder(str(tmp_path))).with_outputs("counts", main="main")
        )
        assert_that(out.main, equal_to([v * 10 for v in values]), label="CheckMain")
        assert_that(out.counts | CombineGlobally(sum), equal_to([len(values)]), label="CheckCounts")
    logs = _logs(tmp_path)
    assert logs, "setup was never called"
    # every instance is torn down by the time the run returns (those kept between tasks of a
    # worker process too, at the run's end)
    pattern = re.compile(r"setup\n(start\n(process\n)*finish\n)+teardown\n")
    for log in logs:
        assert pattern.fullmatch(log), log[:200]
    assert sum(log.count("process\n") for log in logs) == len(values)


def test_teardown_runs_when_process_fails(pipeline_options, runner_config, tmp_path):
    p = Pipeline(options=pipeline_options)
    _ = p | Create(list(range(100))) | "Fails" >> ParDo(LifecycleRecorder(str(tmp_path), fail_on=7))
    with pytest.raises(RuntimeError, match="boom on 7"):
        p.run().wait_until_finish()
    logs = _logs(tmp_path)
    assert logs
    assert all(log.startswith("setup\n") for log in logs)
    # the instance that raised is torn down at once, the others at the run's end (or, in worker
    # processes the executor terminates, as their task unwinds): each exactly once
    assert all(log.count("teardown\n") == 1 for log in logs), [log[-40:] for log in logs]


def test_process_return_styles(make_pipeline):
    class ReturnsList(DoFn):
        def process(self, x):
            return [x, x]

    class Yields(DoFn):
        def process(self, x):
            yield x
            yield -x

    class ReturnsNone(DoFn):
        def process(self, x):
            return None

    class ReturnsTupleSometimes(DoFn):
        def process(self, x):
            if x % 2:
                return (x,)
            return None

    with make_pipeline() as p:
        pc = p | Create([1, 2])
        assert_that(pc | ParDo(ReturnsList()), equal_to([1, 1, 2, 2]), label="CheckList")
        assert_that(pc | ParDo(Yields()), equal_to([1, -1, 2, -2]), label="CheckYield")
        assert_that(pc | ParDo(ReturnsNone()), is_empty(), label="CheckNone")
        assert_that(pc | ParDo(ReturnsTupleSometimes()), equal_to([1]), label="CheckMixed")


def test_process_returning_a_string_is_an_error(pipeline_options):
    class ReturnsStr(DoFn):
        def process(self, x):
            return "abc"

    p = Pipeline(options=pipeline_options)
    _ = p | Create([1]) | "Stringy" >> ParDo(ReturnsStr())
    with pytest.raises(TypeError, match="'Stringy'.*str"):
        p.run().wait_until_finish()


def test_extra_positional_and_keyword_arguments(make_pipeline):
    class AddBoth(DoFn):
        def process(self, x, a, b=0, *, c=0):
            yield x + a + b + c

    with make_pipeline() as p:
        pc = p | Create([1, 2])
        assert_that(
            pc | "DoFnArgs" >> ParDo(AddBoth(), 10, b=100, c=1000),
            equal_to([1111, 1112]),
            label="CheckDoFn",
        )
        assert_that(
            pc | "MapArgs" >> Map(lambda x, a, b: x * a + b, 3, b=1),
            equal_to([4, 7]),
            label="CheckMap",
        )
        assert_that(
            pc | "FlatMapArgs" >> FlatMap(lambda x, n: [x] * n, 2),
            equal_to([1, 1, 2, 2]),
            label="CheckFlatMap",
        )
        assert_that(
            pc | "FilterArgs" >> Filter(lambda x, limit: x > limit, 1),
            equal_to([2]),
            label="CheckFilter",
        )
        pairs = p | "Pairs" >> Create([("a", 1)])
        assert_that(
            pairs | "MapTupleArgs" >> MapTuple(lambda k, v, sep: f"{k}{sep}{v}", sep="="),
            equal_to(["a=1"]),
            label="CheckMapTuple",
        )
        assert_that(
            pairs | "FlatMapTupleArgs" >> FlatMapTuple(lambda k, v, n: [k] * (v + n), 1),
            equal_to(["a", "a"]),
            label="CheckFlatMapTuple",
        )


class SplitParity(DoFn):
    def process(self, x):
        if x < 0:
            yield TaggedOutput("negative", x)
        elif x % 2:
            yield TaggedOutput("odd", x)
        else:
            yield x


def test_with_outputs_by_attribute_by_tag_and_unpacking(make_pipeline):
    with make_pipeline() as p:
        pc = p | Create([-1, 0, 1, 2, 3])
        out = pc | "Named" >> ParDo(SplitParity()).with_outputs("odd", "negative", main="even")
        assert_that(out.even, equal_to([0, 2]), label="CheckEvenAttr")
        assert_that(out["odd"], equal_to([1, 3]), label="CheckOddItem")
        assert_that(out.negative, equal_to([-1]), label="CheckNegative")
        main, odd, negative = pc | "Unpacked" >> ParDo(SplitParity()).with_outputs(
            "odd", "negative", main="main"
        )
        assert_that(main, equal_to([0, 2]), label="CheckMainUnpacked")
        assert_that(odd, equal_to([1, 3]), label="CheckOddUnpacked")
        assert_that(negative, equal_to([-1]), label="CheckNegUnpacked")


def test_with_outputs_unknown_tag_access_is_an_error(make_pipeline):
    p = make_pipeline()
    out = p | Create([1]) | ParDo(SplitParity()).with_outputs("odd", "negative", main="even")
    with pytest.raises(AttributeError, match="no output tagged 'nope'"):
        _ = out.nope
    with pytest.raises(KeyError, match="no output tagged 'nope'"):
        _ = out["nope"]


def test_emitting_an_undeclared_tag_fails_with_the_label(pipeline_options):
    p = Pipeline(options=pipeline_options)
    _ = p | Create([1]) | "Split" >> ParDo(SplitParity()).with_outputs("negative")
    with pytest.raises(ValueError, match="'Split'.*'odd'"):
        p.run().wait_until_finish()


# -- side inputs --------------------------------------------------------------------------------


def test_side_input_views_positional_and_keyword(make_pipeline):
    with make_pipeline() as p:
        main = p | "Main" >> Create([1, 2])
        single = p | "Single" >> Create([10])
        many = p | "Many" >> Create([3, 1, 2])
        pairs = p | "KV" >> Create([("a", 1), ("b", 2), ("a", 3)])
        unique_pairs = p | "UKV" >> Create([("a", 1), ("b", 2)])
        assert_that(
            main | "Singleton" >> Map(lambda x, s: x + s, AsSingleton(single)),
            equal_to([11, 12]),
            label="CheckSingleton",
        )
        assert_that(
            main | "SingletonKw" >> Map(lambda x, s=0: x * s, s=AsSingleton(single)),
            equal_to([10, 20]),
            label="CheckSingletonKw",
        )
        assert_that(
            main | "Iter" >> Map(lambda x, it: (x, sorted(it)), AsIter(many)),
            equal_to([(1, [1, 2, 3]), (2, [1, 2, 3])]),
            label="CheckIter",
        )
        assert_that(
            main | "List" >> Map(lambda x, lst: (x, sorted(lst), type(lst).__name__), AsList(many)),
            equal_to([(1, [1, 2, 3], "list"), (2, [1, 2, 3], "list")]),
            label="CheckList",
        )
        assert_that(
            main | "Dict" >> Map(lambda x, d: (x, d), d=AsDict(unique_pairs)),
            equal_to([(1, {"a": 1, "b": 2}), (2, {"a": 1, "b": 2})]),
            label="CheckDict",
        )
        assert_that(
            main
            | "MultiMap"
            >> Map(lambda x, m: (x, {k: sorted(v) for k, v in m.items()}), AsMultiMap(pairs)),
            equal_to([(1, {"a": [1, 3], "b": [2]}), (2, {"a": [1, 3], "b": [2]})]),
            label="CheckMultiMap",
        )
        assert_that(
            main
            | "Mixed"
            >> ParDo(_MixedSides(), AsList(many), total=AsSingleton(many | CombineGlobally(sum))),
            equal_to([(1, 3, 6), (2, 3, 6)]),
            label="CheckMixed",
        )


class _MixedSides(DoFn):
    def process(self, x, items, total=None):
        yield (x, len(items), total)


def test_side_input_singleton_default_and_empty_views(make_pipeline):
    with make_pipeline() as p:
        main = p | "Main" >> Create([1])
        empty = p | "Empty" >> Create([])
        assert_that(
            main | "Default" >> Map(lambda x, s: (x, s), AsSingleton(empty, default_value="dflt")),
            equal_to([(1, "dflt")]),
            label="CheckDefault",
        )
        assert_that(
            main
            | "NoneDefault" >> Map(lambda x, s: (x, s), AsSingleton(empty, default_value=None)),
            equal_to([(1, None)]),
            label="CheckNoneDefault",
        )
        assert_that(
            main
            | "EmptyViews"
            >> Map(
                lambda x, it, lst, d, mm: (list(it), lst, d, mm),
                AsIter(empty),
                AsList(empty),
                AsDict(empty),
                AsMultiMap(empty),
            ),
            equal_to([([], [], {}, {})]),
            label="CheckEmptyViews",
        )


def test_empty_singleton_without_default_gives_empty_side_input(make_pipeline):
    """Beam (pvalue.py, ``AsSingleton._from_runtime_iterable``): an empty PCollection read as a
    singleton with no default gives an ``EmptySideInput`` instance, not an error."""
    with make_pipeline() as p:
        main = p | "Main" >> Create([1])
        empty = p | "Empty" >> Create([])
        out = main | "UsesSide" >> Map(
            lambda x, s: (x, isinstance(s, EmptySideInput)), AsSingleton(empty)
        )
        assert_that(out, equal_to([(1, True)]))


def test_multimap_gives_an_empty_list_for_a_missing_key(make_pipeline):
    """Beam (pvalue.py, ``AsMultiMap._from_runtime_iterable``): a ``defaultdict(list)``, so a
    key with no values reads as ``[]`` (headrace raised KeyError)."""
    with make_pipeline() as p:
        main = p | "Main" >> Create(["a", "zz"])
        pairs = p | "Pairs" >> Create([("a", 1), ("a", 2)])
        out = main | "Look" >> Map(lambda k, m: (k, sorted(m[k])), AsMultiMap(pairs))
        assert_that(out, equal_to([("a", [1, 2]), ("zz", [])]))


def test_singleton_with_several_elements_is_a_clear_error(pipeline_options):
    p = Pipeline(options=pipeline_options)
    main = p | "Main" >> Create([1])
    two = p | "Two" >> Create([1, 2])
    _ = main | "UsesSide" >> Map(lambda x, s: x, AsSingleton(two))
    with pytest.raises(ValueError, match="'UsesSide'.*2 elements"):
        p.run().wait_until_finish()


def test_side_input_computed_from_the_main_input(make_pipeline):
    with make_pipeline() as p:
        data = p | Create(list(range(10)))
        total = data | CombineGlobally(sum)
        shares = data | Map(lambda x, t: x / t, AsSingleton(total))
        assert_that(shares | "Sum" >> CombineGlobally(sum), equal_to([1.0]))


def test_windowed_side_input_is_read_per_window(make_pipeline):
    with make_pipeline() as p:
        main = stamped(p, "M", [("a", 1), ("b", 61)], FixedWindows(60))
        side = (
            stamped(p, "S", [1, 2, 61], FixedWindows(60)) | CombineGlobally(sum).without_defaults()
        )
        out = main | Map(lambda kv, s: (kv[0], s), AsSingleton(side))
        assert_that(out, equal_to([("a", 3), ("b", 61)]))


def test_global_side_input_is_seen_by_every_window(make_pipeline):
    with make_pipeline() as p:
        main = stamped(p, "M", [1, 61], FixedWindows(60))
        side = p | "Side" >> Create(["s"])
        out = main | Map(lambda x, s: (x, s), AsList(side))
        assert_that(out, equal_to([(1, ["s"]), (61, ["s"])]))


# -- Map family ---------------------------------------------------------------------------------


def test_map_family(make_pipeline):
    with make_pipeline() as p:
        nums = p | "Nums" >> Create([1, 2, 3, 4])
        assert_that(nums | Map(lambda x: x * x), equal_to([1, 4, 9, 16]), label="CheckMap")
        assert_that(
            nums | "FlatGen" >> FlatMap(lambda x: (i for i in range(x))),
            equal_to([0, 0, 1, 0, 1, 2, 0, 1, 2, 3]),
            label="CheckFlatMapGen",
        )
        assert_that(
            nums | "FlatNone" >> FlatMap(lambda x: None), is_empty(), label="CheckFlatMapNone"
        )
        assert_that(nums | Filter(lambda x: x > 2), equal_to([3, 4]), label="CheckFilter")
        assert_that(
            nums | "FilterTruthy" >> Filter(lambda x: x % 2), equal_to([1, 3]), label="CheckTruthy"
        )
        pairs = p | "Pairs" >> Create([("a", 2), ("b", 0)])
        assert_that(
            pairs | MapTuple(lambda k, v: k * v), equal_to(["aa", ""]), label="CheckMapTuple"
        )
        assert_that(
            pairs | FlatMapTuple(lambda k, v: [k] * v),
            equal_to(["a", "a"]),
            label="CheckFlatMapTuple",
        )
        assert_that(
            p | "E" >> Create([]) | "MapEmpty" >> Map(lambda x: x), is_empty(), label="CheckEmpty"
        )


def test_map_with_timestamp_and_window_params(make_pipeline):
    with make_pipeline() as p:
        out = p | Create([1]) | Map(lambda x, t=DoFn.TimestampParam, w=DoFn.WindowParam: (x, t, w))
        assert_that(out, equal_to([(1, MIN_TIMESTAMP, GlobalWindow())]))


# -- GroupByKey and combining -------------------------------------------------------------------


def test_group_by_key(make_pipeline):
    pairs = [(i % 7, i) for i in range(2000)] + [((1, "t"), "x"), (None, "n"), ("s", "y")]
    expected: dict = {}
    for k, v in pairs:
        expected.setdefault(k, []).append(v)
    with make_pipeline() as p:
        grouped = (
            p | Create(pairs) | GroupByKey() | Map(lambda kv: (kv[0], sorted(kv[1], key=repr)))
        )
        assert_that(grouped, equal_to([(k, sorted(vs, key=repr)) for k, vs in expected.items()]))
        assert_that(p | "E" >> Create([]) | "GE" >> GroupByKey(), is_empty(), label="CheckEmpty")


def test_group_by_key_in_the_global_window_outputs_at_its_end(make_pipeline):
    with make_pipeline() as p:
        out = stamped(p, "A", [("k", 5)]) | GroupByKey() | ParDo(Reify())
        g = GlobalWindow()
        assert_that(out, equal_to([(("k", [5]), g.max_timestamp().micros / 1e6, g)]))


def test_combine_per_key_builtins_lambda_and_combinefn(make_pipeline):
    pairs = [("a", 1), ("b", 5), ("a", 3), ("a", 2), ("b", 4)]
    with make_pipeline() as p:
        pc = p | Create(pairs)
        assert_that(pc | "Sum" >> CombinePerKey(sum), equal_to([("a", 6), ("b", 9)]), label="CSum")
        assert_that(pc | "Min" >> CombinePerKey(min), equal_to([("a", 1), ("b", 4)]), label="CMin")
        assert_that(pc | "Max" >> CombinePerKey(max), equal_to([("a", 3), ("b", 5)]), label="CMax")
        assert_that(
            pc | "Lambda" >> CombinePerKey(lambda vs: max(vs, default=None)),
            equal_to([("a", 3), ("b", 5)]),
            label="CLambda",
        )
        assert_that(
            pc | "Mean" >> CombinePerKey(Mean()), equal_to([("a", 2.0), ("b", 4.5)]), label="CMean"
        )
        assert_that(
            p | "E" >> Create([]) | "SumEmpty" >> CombinePerKey(sum), is_empty(), label="CEmpty"
        )


def test_combine_per_key_large_input(make_pipeline):
    pairs = [(f"k{i % 100}", i) for i in range(50_000)]
    expected: dict = {}
    for k, v in pairs:
        expected[k] = expected.get(k, 0) + v
    with make_pipeline() as p:
        pc = p | Create(pairs)
        assert_that(pc | "Sum" >> CombinePerKey(sum), equal_to(list(expected.items())), label="S")
        counts = pc | "Mean" >> CombinePerKey(Mean()) | "Keys" >> Map(lambda kv: kv[0])
        assert_that(counts, equal_to(list(expected)), label="M")


def test_combine_globally_defaults_and_views(make_pipeline):
    with make_pipeline() as p:
        nums = p | "Nums" >> Create([1, 2, 3])
        empty = p | "Empty" >> Create([])
        assert_that(nums | "Sum" >> CombineGlobally(sum), equal_to([6]), label="CSum")
        assert_that(empty | "SumEmpty" >> CombineGlobally(sum), equal_to([0]), label="CSumEmpty")
        assert_that(
            empty | "MeanEmpty" >> CombineGlobally(Mean()), equal_to([None]), label="CMeanEmpty"
        )
        assert_that(
            empty | "NoDefault" >> CombineGlobally(sum).without_defaults(),
            is_empty(),
            label="CNoDefault",
        )
        assert_that(
            nums | "NoDefaultFull" >> CombineGlobally(sum).without_defaults(),
            equal_to([6]),
            label="CNoDefaultFull",
        )
        view = nums | "AsView" >> CombineGlobally(max).as_singleton_view()
        assert_that(
            nums | "UseView" >> Map(lambda x, m: x == m, view),
            equal_to([False, False, True]),
            label="CView",
        )


def test_combine_globally_with_defaults_on_windowed_input_is_an_error(make_pipeline):
    p = make_pipeline()
    windowed = stamped(p, "A", [1], FixedWindows(10))
    with pytest.raises(ValueError, match="'Total'.*without_defaults"):
        windowed | "Total" >> CombineGlobally(sum)


def test_combine_values(make_pipeline):
    with make_pipeline() as p:
        pc = p | Create([("a", [1, 2, 3]), ("b", []), ("c", (4,))])
        assert_that(
            pc | "Sum" >> CombineValues(sum), equal_to([("a", 6), ("b", 0), ("c", 4)]), label="S"
        )
        assert_that(
            pc | "Mean" >> CombineValues(Mean()),
            equal_to([("a", 2.0), ("b", None), ("c", 4.0)]),
            label="M",
        )


# -- Flatten and Partition ----------------------------------------------------------------------


def test_flatten(make_pipeline):
    with make_pipeline() as p:
        a = p | "A" >> Create([1, 2])
        b = p | "B" >> Create([3])
        empty = p | "E" >> Create([])
        assert_that((a, b, empty) | "Three" >> Flatten(), equal_to([1, 2, 3]), label="C3")
        assert_that([a, a] | "Twice" >> Flatten(), equal_to([1, 2, 1, 2]), label="CTwice")
        assert_that((a,) | "One" >> Flatten(), equal_to([1, 2]), label="COne")
        assert_that(() | "None" >> Flatten(pipeline=p), is_empty(), label="CNone")
        doubled = (a, b) | "Flat" >> Flatten() | "Double" >> Map(lambda x: x * 2)
        assert_that(doubled, equal_to([2, 4, 6]), label="CAfter")


def test_flatten_of_nothing_needs_the_pipeline():
    with pytest.raises(ValueError, match="pipeline=p"):
        () | Flatten()


def test_flatten_of_windowed_inputs_keeps_windows(make_pipeline):
    with make_pipeline() as p:
        a = stamped(p, "A", [("k", 1)], FixedWindows(60))
        b = stamped(p, "B", [("k", 2), ("k", 70)], FixedWindows(60))
        out = (a, b) | Flatten() | GroupByKey() | Map(sorted_values)
        assert_that(out, equal_to([("k", [1, 2]), ("k", [70])]))


def test_partition(make_pipeline):
    with make_pipeline() as p:
        nums = p | Create(list(range(10)))
        parts = nums | Partition(lambda x, n, offset: (x + offset) % n, 3, 1)
        assert len(parts) == 3
        assert_that(parts[0], equal_to([2, 5, 8]), label="C0")
        assert_that(parts[1], equal_to([0, 3, 6, 9]), label="C1")
        assert_that(parts[2], equal_to([1, 4, 7]), label="C2")
        first, *rest = p | "Small" >> Create([5]) | "One" >> Partition(lambda x, n: 0, 2)
        assert_that(first, equal_to([5]), label="CFirst")
        assert_that(rest[0], is_empty(), label="CRest")


class ByLength(PartitionFn):
    def partition_for(self, element, num_partitions, cap):
        return min(len(element), cap) % num_partitions


def test_partition_with_a_partition_fn(make_pipeline):
    with make_pipeline() as p:
        words = p | Create(["", "a", "bb", "ccc", "dddd"])
        short, one, longer = words | Partition(ByLength(), 3, 2)
        assert_that(short, equal_to([""]), label="C0")
        assert_that(one, equal_to(["a"]), label="C1")
        assert_that(longer, equal_to(["bb", "ccc", "dddd"]), label="C2")


def test_partition_out_of_range_is_an_error(pipeline_options):
    p = Pipeline(options=pipeline_options)
    _ = p | Create([1]) | "Bad" >> Partition(lambda x, n: n, 2)
    with pytest.raises(
        ValueError, match=r"out-of-bounds partition index: 2(.|\n)*'Bad/ApplyPartitionFn'"
    ):
        p.run().wait_until_finish()


# -- windowing ----------------------------------------------------------------------------------


def test_fixed_windows_group_by_key_timestamps_and_windows(make_pipeline):
    with make_pipeline() as p:
        pc = stamped(p, "A", [("k", 1), ("k", 59), ("k", 60), ("j", 130)], FixedWindows(60))
        out = pc | GroupByKey() | Map(sorted_values) | ParDo(Reify())
        assert_that(
            out,
            equal_to(
                [
                    (("k", [1, 59]), 59.999999, IntervalWindow(0, 60)),
                    (("k", [60]), 119.999999, IntervalWindow(60, 120)),
                    (("j", [130]), 179.999999, IntervalWindow(120, 180)),
                ]
            ),
        )


def test_window_param_is_an_interval_window_with_start_and_end(make_pipeline):
    with make_pipeline() as p:
        pc = stamped(p, "A", [75], FixedWindows(60))
        out = pc | Map(
            lambda x, w=DoFn.WindowParam: (
                type(w).__name__,
                w.start.micros / 1e6,
                w.end.micros / 1e6,
                w.max_timestamp().micros,
            )
        )
        assert_that(out, equal_to([("IntervalWindow", 60.0, 120.0, 119_999_999)]))


def test_sliding_windows(make_pipeline):
    with make_pipeline() as p:
        pc = stamped(p, "A", [("k", 5), ("k", 12)], SlidingWindows(10, 5))
        out = pc | GroupByKey() | Map(sorted_values) | ParDo(Reify())
        assert_that(
            out,
            equal_to(
                [
                    (("k", [5]), 9.999999, IntervalWindow(0, 10)),
                    (("k", [5, 12]), 14.999999, IntervalWindow(5, 15)),
                    (("k", [12]), 19.999999, IntervalWindow(10, 20)),
                ]
            ),
        )


def test_sessions(make_pipeline):
    with make_pipeline() as p:
        pc = stamped(p, "A", [("k", 1), ("k", 5), ("k", 30), ("j", 3)], Sessions(10))
        out = pc | GroupByKey() | Map(sorted_values) | ParDo(Reify())
        assert_that(
            out,
            equal_to(
                [
                    (("k", [1, 5]), 14.999999, IntervalWindow(1, 15)),
                    (("k", [30]), 39.999999, IntervalWindow(30, 40)),
                    (("j", [3]), 12.999999, IntervalWindow(3, 13)),
                ]
            ),
        )


def test_combine_per_key_in_windows(make_pipeline):
    with make_pipeline() as p:
        fixed = stamped(p, "F", [("k", 1), ("k", 2), ("k", 61)], FixedWindows(60))
        summed = (
            fixed | "SumF" >> CombinePerKey(lambda vs: sum(v for v in vs)) | "RF" >> ParDo(Reify())
        )
        assert_that(
            summed,
            equal_to(
                [
                    (("k", 3), 59.999999, IntervalWindow(0, 60)),
                    (("k", 61), 119.999999, IntervalWindow(60, 120)),
                ]
            ),
            label="CFixed",
        )
        sessions = stamped(p, "S", [("k", 1), ("k", 5), ("k", 30)], Sessions(10))
        merged = sessions | "SumS" >> CombinePerKey(sum) | "RS" >> ParDo(Reify())
        assert_that(
            merged,
            equal_to(
                [
                    (("k", 6), 14.999999, IntervalWindow(1, 15)),
                    (("k", 30), 39.999999, IntervalWindow(30, 40)),
                ]
            ),
            label="CSessions",
        )


def test_builtin_sum_per_key_in_fixed_and_sliding_windows(make_pipeline):
    """``CombinePerKey(sum)`` (lifted, summed in place per (key, window)) over fixed and sliding
    windows: each element counts once in every window it falls in, and each sum is output at its
    window's end. Follows Beam's ``test_combine_per_key_with_sliding_windows``-style cases in
    apache_beam/transforms/combiners_test.py (default ``TimestampCombiner.OUTPUT_AT_EOW``)."""
    with make_pipeline() as p:
        values = [("a", 1), ("b", 2), ("a", 4), ("a", 7), ("b", 11)]
        fixed = stamped(p, "F", values, FixedWindows(5))
        assert_that(
            fixed | "SumF" >> CombinePerKey(sum) | "RF" >> ParDo(Reify()),
            equal_to(
                [
                    (("a", 5), 4.999999, IntervalWindow(0, 5)),
                    (("b", 2), 4.999999, IntervalWindow(0, 5)),
                    (("a", 7), 9.999999, IntervalWindow(5, 10)),
                    (("b", 11), 14.999999, IntervalWindow(10, 15)),
                ]
            ),
            label="CFixed",
        )
        sliding = stamped(p, "S", values, SlidingWindows(10, 5))
        assert_that(
            sliding | "SumS" >> CombinePerKey(sum) | "RS" >> ParDo(Reify()),
            equal_to(
                [
                    (("a", 5), 4.999999, IntervalWindow(-5, 5)),
                    (("b", 2), 4.999999, IntervalWindow(-5, 5)),
                    (("a", 12), 9.999999, IntervalWindow(0, 10)),
                    (("b", 2), 9.999999, IntervalWindow(0, 10)),
                    (("a", 7), 14.999999, IntervalWindow(5, 15)),
                    (("b", 11), 14.999999, IntervalWindow(5, 15)),
                    (("b", 11), 19.999999, IntervalWindow(10, 20)),
                ]
            ),
            label="CSliding",
        )


def test_timestamp_combiner_earliest(make_pipeline):
    with make_pipeline() as p:
        pc = stamped(p, "A", [("k", 7), ("k", 3), ("k", 12)], None)
        windowed = pc | WindowInto(
            FixedWindows(60), timestamp_combiner=TimestampCombiner.OUTPUT_AT_EARLIEST
        )
        out = windowed | GroupByKey() | Map(lambda kv: kv[0]) | ParDo(Reify())
        assert_that(out, equal_to([("k", 3.0, IntervalWindow(0, 60))]))


def test_timestamped_value_sets_the_timestamp(make_pipeline):
    with make_pipeline() as p:
        out = (
            p
            | Create([1.5, 20])
            | Map(lambda t: TimestampedValue(f"at {t}", t))
            | Map(lambda x, t=DoFn.TimestampParam: (x, t.micros))
        )
        assert_that(out, equal_to([("at 1.5", 1_500_000), ("at 20", 20_000_000)]))


def test_rewindowing_into_global_window(make_pipeline):
    from headrace.model.window import GlobalWindows

    with make_pipeline() as p:
        pc = stamped(p, "A", [("k", 1), ("k", 61)], FixedWindows(60))
        out = pc | WindowInto(GlobalWindows()) | GroupByKey() | Map(sorted_values)
        assert_that(out, equal_to([("k", [1, 61])]))


# -- the graph as JSON --------------------------------------------------------------------------


class WriteLines(DoFn):
    def __init__(self, folder: str) -> None:
        self.folder = folder

    def start_bundle(self):
        self.lines = []

    def process(self, x):
        self.lines.append(repr(x))

    def finish_bundle(self):
        if self.lines:
            path = Path(self.folder) / f"{uuid.uuid4().hex}.txt"
            path.write_text("\n".join(self.lines) + "\n")


def _build_for_json(p: Pipeline, folder: str) -> None:
    nums = p | "Nums" >> Create(list(range(50)))
    keyed = nums | "Key" >> Map(lambda x: (x % 3, x))
    sums = keyed | "Sum" >> CombinePerKey(sum)
    total = nums | "Total" >> CombineGlobally(sum)
    shares = sums | "Share" >> Map(lambda kv, t: (kv[0], kv[1], t), AsSingleton(total))
    windowed = (
        nums
        | "Stamp" >> Map(lambda x: TimestampedValue(("w", x), x))
        | "Window" >> WindowInto(FixedWindows(10))
        | "GroupW" >> GroupByKey()
        | "Count" >> Map(lambda kv, w=DoFn.WindowParam: (w.start.micros, len(kv[1])))
    )
    _ = (
        (shares, windowed | "Rewindow" >> WindowInto(_global()))
        | "All" >> Flatten()
        | "Write" >> ParDo(WriteLines(folder))
    )
    assert_that(shares, equal_to([(0, 408, 1225), (1, 425, 1225), (2, 392, 1225)]), label="Check")


def _global():
    from headrace.model.window import GlobalWindows

    return GlobalWindows()


def _written(folder: Path) -> list[str]:
    return sorted(line for f in folder.glob("*.txt") for line in f.read_text().splitlines())


def test_to_json_from_json_round_trip_gives_the_same_result(pipeline_options, tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    p = Pipeline(options=pipeline_options)
    _build_for_json(p, str(first))
    p.run().wait_until_finish()

    p2 = Pipeline(options=pipeline_options)
    _build_for_json(p2, str(second))
    text = p2.to_json()
    restored = Pipeline.from_json(text, options=pipeline_options)
    assert restored.to_json() == text
    restored.run().wait_until_finish()
    assert _written(second) == _written(first)
    assert len(_written(first)) == 3 + 5


def test_from_json_pipeline_still_runs_its_assertions(pipeline_options):
    p = Pipeline(options=pipeline_options)
    assert_that(p | Create([1, 2]), equal_to([1, 2, 3]))
    restored = Pipeline.from_json(p.to_json(), options=pipeline_options)
    with pytest.raises(BeamAssertException, match="missing elements \\[3\\]"):
        restored.run().wait_until_finish()


# -- construction errors ------------------------------------------------------------------------


def test_duplicate_label_is_rejected_with_the_label(make_pipeline):
    p = make_pipeline()
    p | "Source" >> Create([1])
    with pytest.raises(ValueError, match="'Source' already exists"):
        p | "Source" >> Create([2])


def test_group_by_key_on_non_pairs_is_rejected_with_the_label(make_pipeline):
    p = make_pipeline()
    ints = p | Create([1, 2])
    with pytest.raises(ValueError, match="'Group'.*\\(key, value\\) pairs"):
        ints | "Group" >> GroupByKey()
    with pytest.raises(ValueError, match="'Sum'.*\\(key, value\\) pairs"):
        ints | "Sum" >> CombinePerKey(sum)


def test_group_by_key_on_non_pairs_at_run_time_names_the_label(pipeline_options):
    p = Pipeline(options=pipeline_options)
    _ = p | Create([("a", 1), 5]) | "Group" >> GroupByKey()
    with pytest.raises(ValueError, match="'Group' needs \\(key, value\\) pairs"):
        p.run().wait_until_finish()


def test_pcollection_of_another_pipeline_is_rejected(make_pipeline):
    p1, p2 = make_pipeline(), make_pipeline()
    a = p1 | "A" >> Create([1])
    b = p2 | "B" >> Create([2])
    with pytest.raises(ValueError, match="'Both'.*another pipeline"):
        (a, b) | "Both" >> Flatten()
    with pytest.raises(ValueError, match="'UseSide'.*another pipeline"):
        b | "UseSide" >> Map(lambda x, s: x, AsList(a))
    with pytest.raises(ValueError, match="'Apply'.*another pipeline"):
        p2.apply("Apply" >> Map(lambda x: x), a)


def test_applying_something_that_is_not_a_transform(make_pipeline):
    p = make_pipeline()
    pc = p | Create([("a", 1)])
    with pytest.raises(TypeError, match="forget to call it"):
        pc | GroupByKey
    with pytest.raises(TypeError, match="PTransform"):
        pc | (lambda x: x)
    with pytest.raises(ValueError, match="add \\(\\)"):  # Beam: ValueError here
        ParDo(Reify)
    with pytest.raises(TypeError, match="DoFn or a function"):
        ParDo(3)  # a callable is fine: Beam's ParDo wraps it like FlatMap
    with pytest.raises(TypeError, match="callable"):
        Map(3)
    with pytest.raises(TypeError, match="PCollection"):
        pc | Map(lambda x, side: x, pc)


# -- more windowing details ---------------------------------------------------------------------


def test_windowed_side_input_with_a_window_missing(make_pipeline):
    with make_pipeline() as p:
        main = stamped(p, "M", [1, 61], FixedWindows(60))
        side = stamped(p, "S", [5], FixedWindows(60))
        out = main | Map(
            lambda x, one, many: (x, one, many),
            AsSingleton(side, default_value="none"),
            AsList(side),
        )
        assert_that(out, equal_to([(1, 5, [5]), (61, "none", [])]))


def test_timestamped_value_output_keeps_the_current_window(make_pipeline):
    with make_pipeline() as p:
        pc = stamped(p, "A", [5], FixedWindows(60))
        moved = pc | "Move" >> Map(lambda x: TimestampedValue(x, 70)) | "R1" >> ParDo(Reify())
        assert_that(moved, equal_to([(5, 70.0, IntervalWindow(0, 60))]), label="CKept")
        rewindowed = (
            pc
            | "Move2" >> Map(lambda x: TimestampedValue(x, 70))
            | "Again" >> WindowInto(FixedWindows(60))
            | "R2" >> ParDo(Reify())
        )
        assert_that(rewindowed, equal_to([(5, 70.0, IntervalWindow(60, 120))]), label="CMoved")


def test_map_into_a_windowed_collection_keeps_timestamp_window_or_takes_its_own(make_pipeline):
    """A Map whose output is windowed (a WindowInto follows): a plain output keeps the input's
    timestamp and windows, a TimestampedValue output sets the timestamp and keeps the windows,
    and a Map over unwindowed input starts in the global window at the minimum timestamp.

    Follows Beam's ``DoFnRunner`` (apache_beam/runners/common.py ``_OutputHandler``: a
    non-WindowedValue result takes the input's windowed value; a TimestampedValue only replaces
    the timestamp) and ``test_timestamped_value_output_keeps_the_current_window`` above.
    """
    lowest = FixedWindows(60).assign_us(MIN_TIMESTAMP.micros)[0]
    with make_pipeline() as p:
        pc = stamped(p, "A", [5, 61], FixedWindows(60))
        plain = pc | "Double" >> Map(lambda x: 2 * x) | "R1" >> ParDo(Reify())
        assert_that(
            plain,
            equal_to([(10, 5.0, IntervalWindow(0, 60)), (122, 61.0, IntervalWindow(60, 120))]),
            label="CPlain",
        )
        moved = pc | "Move" >> Map(lambda x: TimestampedValue(x, x + 1)) | "R2" >> ParDo(Reify())
        assert_that(
            moved,
            equal_to([(5, 6.0, IntervalWindow(0, 60)), (61, 62.0, IntervalWindow(60, 120))]),
            label="CMoved",
        )
        fresh = (
            p
            | "B" >> Create([3, 70])
            | "Stamp" >> Map(lambda x: TimestampedValue(("k", x), x) if x > 50 else ("k", x))
            | "Win" >> WindowInto(FixedWindows(60))
            | "R3" >> ParDo(Reify())
        )
        assert_that(
            fresh,
            equal_to(
                [
                    (("k", 3), MIN_TIMESTAMP.micros / 1e6, lowest),
                    (("k", 70), 70.0, IntervalWindow(60, 120)),
                ]
            ),
            label="CFresh",
        )


def test_combine_globally_without_defaults_per_window(make_pipeline):
    with make_pipeline() as p:
        pc = stamped(p, "A", [1, 2, 61], FixedWindows(60))
        out = pc | CombineGlobally(sum).without_defaults() | ParDo(Reify())
        assert_that(
            out,
            equal_to(
                [(3, 59.999999, IntervalWindow(0, 60)), (61, 119.999999, IntervalWindow(60, 120))]
            ),
        )


def test_group_by_key_after_flattening_a_pcollection_with_itself(make_pipeline):
    with make_pipeline() as p:
        pc = p | Create([("a", 1), ("b", 2)])
        out = (pc, pc) | Flatten() | GroupByKey() | Map(sorted_values)
        assert_that(out, equal_to([("a", [1, 1]), ("b", [2, 2])]))


def test_run_result_state_and_context_manager(pipeline_options, tmp_path):
    from headrace.model.result import PipelineState

    p = Pipeline(options=pipeline_options)
    _ = p | Create([1]) | ParDo(LifecycleRecorder(str(tmp_path))).with_outputs("counts")
    assert p.run().wait_until_finish() == PipelineState.DONE
    assert _logs(tmp_path)

    ran = tmp_path / "ran"
    ran.mkdir()
    with pytest.raises(KeyError):
        with Pipeline(options=pipeline_options) as p2:
            _ = p2 | Create([1]) | ParDo(LifecycleRecorder(str(ran))).with_outputs("counts")
            raise KeyError("user code failed while building")
    assert not _logs(ran), "a pipeline whose construction raised must not run"


def test_create_of_timestamped_pairs_can_be_grouped(pipeline_options):
    from headrace.model.window import FixedWindows, TimestampedValue

    p = Pipeline(options=pipeline_options)
    out = (
        p
        | Create([TimestampedValue(("k", 1), 1), TimestampedValue(("k", 2), 70)])
        | WindowInto(FixedWindows(60))
        | CombinePerKey(sum)
    )
    assert_that(out, equal_to([("k", 1), ("k", 2)]))
    p.run().wait_until_finish()


def test_a_failed_apply_leaves_nothing_in_the_graph(pipeline_options):
    p = Pipeline(options=pipeline_options)
    nums = p | "Nums" >> Create([1, 2])
    with pytest.raises(ValueError):
        _ = nums | "Group" >> GroupByKey()
    assert_that(nums | "Double" >> Map(lambda x: 2 * x), equal_to([2, 4]))
    p.run().wait_until_finish()
    _ = nums | "Group" >> Map(lambda x: x)  # the failed label is free again


def _times_side(entry, vector):
    (i, j), a = entry
    return (i, a * vector[j])


def test_iterated_side_input_over_one_collection_is_planned(make_pipeline):
    """Beam's ``examples/matrix_power.py``: ``v = m | Map(f, AsDict(v)) | CombinePerKey(sum)``
    repeated over one matrix ``m``. Each multiply reads ``m`` and the previous vector; headrace
    put every cut multiply in one stage that waited for itself ("could not order the stages")."""
    with make_pipeline() as p:
        matrix = p | "Matrix" >> Create([((0, 0), 1), ((0, 1), 2), ((1, 0), 3), ((1, 1), 4)])
        vector = p | "Vector" >> Create([(0, 1), (1, 1)])
        for i in range(3):
            vector = (
                matrix
                | f"Multiply{i}" >> Map(_times_side, AsDict(vector))
                | f"Sum{i}" >> CombinePerKey(sum)
            )
        assert_that(vector, equal_to([(0, 91), (1, 199)]))  # [[1, 2], [3, 4]] ** 3 @ [1, 1]


def test_rewindowing_sliding_output_keeps_one_copy_per_window(make_pipeline):
    """Beam assigns windows once per (element, window) pair (``AssignWindowsDoFn`` takes
    ``DoFn.WindowParam``, so the runner explodes the element's windows): an element in two sliding
    windows becomes two elements in the new windowing. headrace kept one copy."""
    with make_pipeline() as p:
        sliding = (
            p
            | Create([1, 7])
            | Map(lambda x: TimestampedValue(x, x))
            | "Slide" >> WindowInto(SlidingWindows(10, 5))
        )
        fixed = (
            sliding
            | "Fixed" >> WindowInto(FixedWindows(100))
            | "KeyF" >> Map(lambda x: ("k", x))
            | "GroupF" >> GroupByKey()
            | "SortF" >> MapTuple(lambda k, vs: sorted(vs))
        )
        assert_that(fixed, equal_to([[1, 1, 7, 7]]), label="CheckFixed")
        glob = (
            sliding
            | "Global" >> WindowInto(GlobalWindows())
            | "KeyG" >> Map(lambda x: ("k", x))
            | "GroupG" >> GroupByKey()
            | "SortG" >> MapTuple(lambda k, vs: sorted(vs))
        )
        assert_that(glob, equal_to([[1, 1, 7, 7]]), label="CheckGlobal")


def test_pardo_of_a_dofn_class_is_a_value_error_as_in_beam():
    """Beam's ``ptransform_test.test_do_with_do_fn_class`` (ParDo(MyDoFn) without ``()``) expects
    ValueError; headrace raised TypeError."""

    class MyDoFn(DoFn):
        def process(self, x):
            yield x

    with pytest.raises(ValueError, match=r"MyDoFn; add \(\)"):
        ParDo(MyDoFn)
