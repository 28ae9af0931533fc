"""Tests of headrace.model.transforms.combiners: every CombineFn by hand and in pipelines."""

from __future__ import annotations

import math
import pickle
import random
from collections import Counter

import cloudpickle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.model.transforms import combiners
from headrace.model.transforms.combiners import (
    Count,
    CountCombineFn,
    Largest,
    Latest,
    LatestCombineFn,
    Mean,
    MeanCombineFn,
    Sample,
    SampleCombineFn,
    SingleInputTupleCombineFn,
    Smallest,
    ToDict,
    ToDictCombineFn,
    ToList,
    ToListCombineFn,
    Top,
    TopCombineFn,
    ToSet,
    ToSetCombineFn,
    TupleCombineFn,
)
from headrace.model.transforms.core import (
    CombineGlobally,
    CombinePerKey,
    Create,
    Map,
    MapTuple,
    WindowInto,
)
from headrace.model.window import FixedWindows, Sessions, TimestampedValue
from headrace.testing.util import BeamAssertException, assert_that, equal_to

MULTI = {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}


def _run_and_check(build, expected, **options):
    """Build ``p | Create(...) | ...`` with ``build(p)`` and check it equals ``expected``."""
    with Pipeline(options=PipelineOptions(**options)) as p:
        assert_that(build(p), equal_to(expected))


def _fold(fn, chunks):
    """Combine ``chunks`` as a runner would: one accumulator per chunk, compacted, merged."""
    accs = [fn.compact(fn.add_inputs(fn.create_accumulator(), list(c))) for c in chunks]
    return fn.extract_output(fn.merge_accumulators(accs))


# -- Count ----------------------------------------------------------------------------------------


def test_count_combine_fn_steps():
    fn = CountCombineFn()
    acc = fn.create_accumulator()
    assert acc == 0 and type(acc) is int
    acc = fn.add_input(acc, "x")
    acc = fn.add_inputs(acc, ["a", "b"])
    acc = fn.add_inputs(acc, (c for c in "cde"))
    assert acc == 6
    assert fn.merge_accumulators([acc, 4, 0, 1]) == 11
    assert fn.merge_accumulators([]) == 0
    assert fn.extract_output(11) == 11
    assert fn.apply(range(7)) == 7
    assert CountCombineFn.fast_path == "count"


def test_count_subclass_overriding_a_method_loses_the_fast_path():
    class CountEvens(CountCombineFn):
        def add_input(self, acc, element):
            return acc + (element % 2 == 0)

    class Plain(CountCombineFn):
        pass

    class Explicit(CountCombineFn):
        fast_path = "count"

        def extract_output(self, acc):
            return acc

    assert CountEvens.fast_path is None
    assert Plain.fast_path == "count"
    assert Explicit.fast_path == "count"
    assert CountCombineFn.fast_path == "count"
    _run_and_check(
        lambda p: p | Create([("k", 1), ("k", 2), ("k", 4)]) | CombinePerKey(CountEvens()),
        [("k", 2)],
    )


def test_count_globally_per_key_per_element(make_pipeline):
    words = ["a", "b", "a", "c", "a"]
    with make_pipeline() as p:
        pc = p | Create(words)
        assert_that(pc | Count.Globally(), equal_to([5]), label="CheckGlobally")
        assert_that(
            pc | Count.PerElement(), equal_to([("a", 3), ("b", 1), ("c", 1)]), label="CheckEl"
        )
        keyed = pc | Map(lambda w: (w, len(w) * 10))
        assert_that(
            keyed | Count.PerKey(), equal_to([("a", 3), ("b", 1), ("c", 1)]), label="CheckPK"
        )


def test_count_empty_input(make_pipeline):
    with make_pipeline() as p:
        empty = p | Create([])
        assert_that(empty | Count.Globally(), equal_to([0]), label="CheckDefault")
        assert_that(
            empty | "NoDefault" >> Count.Globally().without_defaults(),
            equal_to([]),
            label="CheckNoDefault",
        )
        assert_that(empty | Count.PerElement(), equal_to([]), label="CheckPerElement")
        assert_that(empty | Count.PerKey(), equal_to([]), label="CheckPerKey")


def test_count_per_element_takes_the_count_fast_path(monkeypatch):
    # If the executor called CountCombineFn at all, these would fail the run.
    def boom(*args, **kwargs):
        raise AssertionError("CountCombineFn was called: the count fast path was not taken")

    for name in ("add_input", "add_inputs", "merge_accumulators", "compact"):
        monkeypatch.setattr(CountCombineFn, name, boom)
    data = [i % 7 for i in range(500)]
    _run_and_check(
        lambda p: p | Create(data) | Count.PerElement(),
        sorted(Counter(data).items()),
        direct_bundle_size=16,
    )


def test_count_per_element_graph_uses_count_combine_fn(make_pipeline):
    p = make_pipeline()
    _ = p | Create(["a"]) | Count.PerElement()
    labels = [t.label for t in p.to_graph().transforms.values()]
    assert "PerElement" in labels
    assert "PerElement/PerElement:PairWithVoid" in labels
    assert "PerElement/CombinePerKey(CountCombineFn)" in labels


# -- Mean -----------------------------------------------------------------------------------------


def test_mean_combine_fn_steps():
    fn = MeanCombineFn()
    assert fn.create_accumulator() == (0, 0)
    acc = fn.add_input(fn.create_accumulator(), 4)
    acc = fn.add_inputs(acc, [1, 2])
    acc = fn.add_inputs(acc, iter([3]))
    assert acc == (10, 4)
    merged = fn.merge_accumulators([acc, (5, 1), (0, 0), (0.5, 1)])
    assert merged == (15.5, 6)
    assert fn.extract_output(merged) == pytest.approx(15.5 / 6)
    assert fn.extract_output((3, 2)) == 1.5
    assert math.isnan(fn.extract_output(fn.create_accumulator()))
    assert math.isnan(fn.apply([]))
    assert fn.apply([1, 2]) == 1.5


def test_mean_of_ints_is_exact():
    big = [10**20 + 1, 10**20 + 3]
    assert MeanCombineFn().apply(big) == (2 * 10**20 + 4) / 2


def test_mean_rejects_non_numbers_clearly():
    with pytest.raises(TypeError, match=r"Mean needs numbers, got 'x' of type str"):
        MeanCombineFn().add_inputs((0, 0), [1, "x"])
    with pytest.raises(TypeError, match="Mean needs numbers"):
        MeanCombineFn().add_input((0, 0), None)


def _is_nan_singleton(actual):
    actual = list(actual)
    if len(actual) != 1 or not math.isnan(actual[0]):
        raise BeamAssertException(f"expected [nan], got {actual!r}")


def test_mean_globally_and_per_key(make_pipeline):
    with make_pipeline() as p:
        assert_that(p | "Nums" >> Create([1, 2, 3, 4]) | Mean.Globally(), equal_to([2.5]))
        pairs = p | "Pairs" >> Create([("a", 1), ("b", 4), ("a", 2), ("a", 6)])
        assert_that(pairs | Mean.PerKey(), equal_to([("a", 3.0), ("b", 4.0)]), label="CheckPerKey")
        empty = p | "Empty" >> Create([])
        assert_that(empty | "G" >> Mean.Globally(), _is_nan_singleton, label="CheckEmptyNaN")
        assert_that(
            empty | "G2" >> Mean.Globally().without_defaults(), equal_to([]), label="CheckEmptyNone"
        )


# -- Top ------------------------------------------------------------------------------------------


def test_top_combine_fn_basics():
    data = [5, 1, 9, 3, 7, 9, 2]
    assert TopCombineFn(3).apply(data) == [9, 9, 7]
    assert TopCombineFn(3, reverse=True).apply(data) == [1, 2, 3]
    assert TopCombineFn(0).apply(data) == []
    assert TopCombineFn(10).apply(data) == sorted(data, reverse=True)
    assert TopCombineFn(2).apply([]) == []
    assert Largest(2).apply(data) == [9, 9]
    assert Smallest(2).apply(data) == [1, 2]
    assert Largest(2).default_label() == "Largest(2)"
    assert Smallest(4).default_label() == "Smallest(4)"
    assert TopCombineFn(3).default_label() == "TopCombineFn"


def test_top_combine_fn_key_and_reverse():
    words = ["pear", "fig", "banana", "kiwi", "apple", "plum"]
    assert TopCombineFn(2, key=len).apply(words) == ["banana", "apple"]
    # Within one accumulator, ties keep the earlier input first, as sorted() does.
    assert TopCombineFn(3, key=len, reverse=True).apply(words) == ["fig", "pear", "kiwi"]
    assert TopCombineFn(2, key=lambda w: w[-1]).apply(words) == ["pear", "plum"]
    records = [{"n": 3}, {"n": 1}, {"n": 2}]  # dicts are not comparable: key is needed
    assert TopCombineFn(2, key=lambda r: r["n"]).apply(records) == [{"n": 3}, {"n": 2}]


def test_top_merge_of_many_accumulators_and_compaction():
    rng = random.Random(7)
    data = [rng.randrange(1000) for _ in range(3000)]
    chunks = [data[i : i + 37] for i in range(0, len(data), 37)]
    for n, key, reverse in [(5, None, False), (5, None, True), (1, lambda x: -x, False)]:
        fn = TopCombineFn(n, key=key, reverse=reverse)
        expected = sorted(data, key=key, reverse=not reverse)[:n]
        assert _fold(fn, chunks) == expected
        accs = [fn.add_inputs(fn.create_accumulator(), c) for c in chunks]
        assert all(len(fn.compact(a)) == min(n, len(c)) for a, c in zip(accs, chunks))
        merged = fn.merge_accumulators(accs)
        assert len(merged) <= n
        assert fn.extract_output(merged) == expected


def test_top_accumulator_stays_bounded_while_adding():
    fn = TopCombineFn(3)
    acc = fn.create_accumulator()
    for x in range(1000):
        acc = fn.add_input(acc, x)
        assert len(acc) <= 3 + 16
    assert fn.extract_output(acc) == [999, 998, 997]
    big = TopCombineFn(100)
    acc = big.add_inputs(big.create_accumulator(), range(150))
    acc = big.add_inputs(acc, range(150, 300))
    assert len(acc) <= 200
    assert big.extract_output(acc) == list(range(299, 199, -1))


def test_top_errors_are_clear():
    with pytest.raises(TypeError, match="must be comparable.*pass key="):
        TopCombineFn(1).apply([{"a": 1}, {"b": 2}])
    with pytest.raises(ValueError, match="n >= 0"):
        TopCombineFn(-1)
    with pytest.raises(ValueError, match=r"Top\.Of needs a number of elements"):
        Top.Of("3")
    with pytest.raises(TypeError, match="key must be a callable"):
        TopCombineFn(2, key="len")


def test_top_transforms(make_pipeline):
    with make_pipeline() as p:
        nums = p | "Nums" >> Create([3, 4, 1, 2, 8, 5])
        assert_that(nums | Top.Of(3), equal_to([[8, 5, 4]]), label="CheckOf")
        assert_that(nums | "Rev" >> Top.Of(2, reverse=True), equal_to([[1, 2]]), label="CheckOfRev")
        assert_that(
            nums | "Key" >> Top.Of(2, key=lambda x: x % 4), equal_to([[3, 2]]), label="CheckK"
        )
        assert_that(nums | Top.Largest(2), equal_to([[8, 5]]), label="CheckLargest")
        assert_that(nums | Top.Smallest(2), equal_to([[1, 2]]), label="CheckSmallest")
        pairs = p | "Pairs" >> Create([("a", 1), ("a", 9), ("a", 5), ("b", 2)])
        assert_that(pairs | Top.PerKey(2), equal_to([("a", [9, 5]), ("b", [2])]), label="CheckPK")
        assert_that(
            pairs | "PKRev" >> Top.PerKey(2, reverse=True),
            equal_to([("a", [1, 5]), ("b", [2])]),
            label="CheckPKRev",
        )
        assert_that(
            pairs | "PKKey" >> Top.PerKey(1, key=lambda v: -v),
            equal_to([("a", [1]), ("b", [2])]),
            label="CheckPKKey",
        )
        assert_that(
            pairs | Top.LargestPerKey(1), equal_to([("a", [9]), ("b", [2])]), label="CheckLPK"
        )
        assert_that(
            pairs | Top.SmallestPerKey(2), equal_to([("a", [1, 5]), ("b", [2])]), label="CheckSPK"
        )


def test_top_empty_input(make_pipeline):
    with make_pipeline() as p:
        empty = p | Create([])
        assert_that(empty | Top.Of(3), equal_to([[]]), label="CheckOf")
        assert_that(empty | Top.Largest(3), equal_to([[]]), label="CheckLargest")
        assert_that(empty | Top.Smallest(3), equal_to([[]]), label="CheckSmallest")
        assert_that(
            empty | "NoDef" >> Top.Of(3).without_defaults(), equal_to([]), label="CheckNoDef"
        )
        assert_that(
            empty | "LN" >> Top.Largest(3, has_defaults=False), equal_to([]), label="CheckLNoDef"
        )
        assert_that(empty | Top.PerKey(3), equal_to([]), label="CheckPerKey")


def test_default_labels_follow_beam():
    assert Top.Of(3).label == "Top(3)"
    assert Top.PerKey(2).label == "TopPerKey(2)"
    assert Top.Largest(2).label == "Largest(2)"
    assert Top.Smallest(2).label == "Smallest(2)"
    assert Top.LargestPerKey(4).label == "LargestPerKey(4)"
    assert Top.SmallestPerKey(4).label == "SmallestPerKey(4)"
    assert Sample.FixedSizeGlobally(3).label == "FixedSizeGlobally(3)"
    assert Sample.FixedSizePerKey(3).label == "FixedSizePerKey(3)"
    assert Count.Globally().label == "Globally"
    assert Count.PerKey().label == "PerKey"
    assert Count.PerElement().label == "PerElement"
    assert Mean.Globally().label == "Globally"
    assert ToList().label == "ToList"
    assert ToDict().label == "ToDict"
    assert ToSet().label == "ToSet"


def test_with_defaults_returns_a_copy():
    t = Count.Globally()
    nd = t.without_defaults()
    assert nd is not t and t.has_defaults and not nd.has_defaults
    assert nd.with_defaults().has_defaults


# -- Sample ---------------------------------------------------------------------------------------


def test_sample_combine_fn_sizes():
    random.seed(1)
    fn = SampleCombineFn(3)
    assert sorted(fn.apply([1, 2])) == [1, 2]
    assert fn.apply([]) == []
    assert SampleCombineFn(0).apply(range(10)) == []
    for size in (3, 4, 10, 1000):
        out = fn.apply(range(size))
        assert len(out) == 3 and len(set(out)) == 3 and set(out) <= set(range(size))
    # Merging many accumulators of various sizes, including empty ones.
    chunks = [range(0), range(2), range(2, 3), range(3, 50), range(50, 51)]
    for _ in range(50):
        out = _fold(fn, chunks)
        assert len(out) == 3 and len(set(out)) == 3 and set(out) <= set(range(51))
    small = [range(1), range(1, 2)]
    assert sorted(_fold(fn, small)) == [0, 1]
    acc = fn.merge_accumulators([fn.add_inputs(fn.create_accumulator(), range(5)) for _ in "ab"])
    assert acc[0] == 10 and len(acc[1]) == 3
    assert fn.merge_accumulators([]) == [0, []]


def test_sample_is_uniform_including_across_merges():
    # 4 of 40 elements, spread over accumulators of very different sizes: each element must be
    # chosen with probability 1/10, whichever accumulator it went through. Seeded, so
    # deterministic; the bounds are about 5 standard deviations wide.
    random.seed(20240501)
    fn = SampleCombineFn(4)
    chunks = [range(1), range(1, 4), range(4, 30), range(30, 40)]
    trials = 6000
    counts = Counter()
    for i in range(trials):
        order = chunks if i % 2 else chunks[::-1]
        counts.update(_fold(fn, order))
    expected = trials * 4 / 40  # 600
    sd = math.sqrt(trials * 0.1 * 0.9)  # ~23
    assert set(counts) == set(range(40)), "every element must be reachable"
    for element in range(40):
        assert abs(counts[element] - expected) < 5 * sd, (element, counts[element])
    chi2 = sum((counts[e] - expected) ** 2 / expected for e in range(40))
    assert chi2 < 80  # 39 degrees of freedom: p < 1e-4 beyond this


def test_sample_adding_one_by_one_is_uniform():
    random.seed(99)
    fn = SampleCombineFn(2)
    counts = Counter()
    for _ in range(4000):
        acc = fn.create_accumulator()
        for x in range(8):
            acc = fn.add_input(acc, x)
        counts.update(fn.extract_output(acc))
    # each of 8 elements expected 1000 times; sd ~ 26
    assert all(abs(counts[x] - 1000) < 130 for x in range(8)), counts


def test_sample_output_order_is_random():
    random.seed(3)
    firsts = Counter(SampleCombineFn(5).apply(range(5))[0] for _ in range(500))
    assert set(firsts) == set(range(5))


def _sample_check(n, population):
    def match(actual):
        actual = list(actual)
        if len(actual) != 1:
            raise BeamAssertException(f"expected one sample, got {actual!r}")
        (sample,) = actual
        if len(sample) != min(n, len(population)) or not Counter(sample) <= Counter(population):
            raise BeamAssertException(f"{sample!r} is not a sample of {n} of {population!r}")

    return match


def test_sample_transforms(make_pipeline):
    data = list(range(100))
    with make_pipeline() as p:
        nums = p | "Nums" >> Create(data)
        assert_that(nums | Sample.FixedSizeGlobally(5), _sample_check(5, data), label="CheckG")
        few = p | "Few" >> Create([1, 2])
        assert_that(few | "FewG" >> Sample.FixedSizeGlobally(5) | Map(sorted), equal_to([[1, 2]]))
        empty = p | "Empty" >> Create([])
        assert_that(empty | "EG" >> Sample.FixedSizeGlobally(5), equal_to([[]]), label="CheckEmpty")
        assert_that(
            empty | "EGN" >> Sample.FixedSizeGlobally(5).without_defaults(),
            equal_to([]),
            label="CheckEmptyNoDefault",
        )
        pairs = p | "Pairs" >> Create([(i % 3, i) for i in range(30)] + [(9, 1)])
        sizes = (
            pairs
            | Sample.FixedSizePerKey(4)
            | MapTuple(lambda k, vs: (k, len(vs), all(v % 3 == k for v in vs), len(set(vs))))
        )
        assert_that(
            sizes,
            equal_to([(0, 4, True, 4), (1, 4, True, 4), (2, 4, True, 4), (9, 1, False, 1)]),
            label="CheckPerKey",
        )


# -- ToList, ToDict, ToSet ------------------------------------------------------------------------


def test_collection_combine_fns():
    lst = ToListCombineFn()
    acc = lst.add_input(lst.create_accumulator(), 1)
    acc = lst.add_inputs(acc, [2, 3])
    assert lst.merge_accumulators([acc, [], [4], [5, 6]]) == [1, 2, 3, 4, 5, 6]
    assert lst.merge_accumulators([]) == []
    assert lst.apply([]) == []
    d = ToDictCombineFn()
    acc = d.add_inputs(d.add_input(d.create_accumulator(), ("a", 1)), [("b", 2)])
    assert d.merge_accumulators([acc, {}, {"c": 3}]) == {"a": 1, "b": 2, "c": 3}
    assert d.merge_accumulators([]) == {}
    assert d.apply(iter([("x", 1)])) == {"x": 1}
    s = ToSetCombineFn()
    acc = s.add_inputs(s.add_input(s.create_accumulator(), 1), iter([1, 2]))
    assert s.merge_accumulators([acc, set(), {3, 1}]) == {1, 2, 3}
    assert s.merge_accumulators([]) == set()


def test_collection_combine_fn_errors():
    with pytest.raises(ValueError, match=r"ToDict needs \(key, value\) pairs, got 5"):
        ToDictCombineFn().apply([("a", 1), 5])
    with pytest.raises(TypeError, match=r"ToDict got the unhashable key \[1\]"):
        ToDictCombineFn().apply([([1], 1)])
    with pytest.raises(TypeError, match=r"ToSet got the unhashable element \[1\] of type list"):
        ToSetCombineFn().apply([1, [1]])


def test_collection_transforms(make_pipeline):
    with make_pipeline() as p:
        pairs = p | Create([("a", 1), ("b", 2), ("c", 3)])
        assert_that(
            pairs | ToList() | Map(sorted),
            equal_to([[("a", 1), ("b", 2), ("c", 3)]]),
            label="CheckL",
        )
        assert_that(pairs | ToDict(), equal_to([{"a": 1, "b": 2, "c": 3}]), label="CheckD")
        assert_that(
            pairs | Map(lambda kv: kv[0]) | ToSet(), equal_to([{"a", "b", "c"}]), label="CheckS"
        )


def test_collection_transforms_on_empty_input(make_pipeline):
    with make_pipeline() as p:
        empty = p | Create([])
        assert_that(empty | ToList(), equal_to([[]]), label="CheckL")
        assert_that(empty | ToDict(), equal_to([{}]), label="CheckD")
        assert_that(empty | ToSet(), equal_to([set()]), label="CheckS")
        assert_that(empty | "LN" >> ToList().without_defaults(), equal_to([]), label="CheckLN")


def test_to_list_graph_label_nesting_as_beam(make_pipeline):
    p = make_pipeline()
    _ = p | Create([1]) | ToList()
    labels = {t.label for t in p.to_graph().transforms.values()}
    assert "ToList/ToList" in labels


# -- Latest ---------------------------------------------------------------------------------------


def test_latest_combine_fn():
    fn = LatestCombineFn()
    assert fn.apply([]) is None
    assert fn.apply([("a", 1), ("b", 5), ("c", 3)]) == "b"
    accs = [fn.add_input(fn.create_accumulator(), e) for e in [("a", 1), ("b", 5), ("c", 3)]]
    assert fn.extract_output(fn.merge_accumulators([fn.create_accumulator(), *accs])) == "b"


def test_latest_transforms(make_pipeline):
    with make_pipeline() as p:
        stamped = (
            p
            | Create([("a", "x", 10), ("a", "y", 30), ("b", "z", 20), ("a", "w", 20)])
            | Map(lambda e: TimestampedValue((e[0], e[1]), e[2]))
        )
        assert_that(stamped | Latest.PerKey(), equal_to([("a", "y"), ("b", "z")]), label="CheckPK")
        assert_that(stamped | Latest.Globally(), equal_to([("a", "y")]), label="CheckG")
        empty = p | "Empty" >> Create([])
        assert_that(empty | "EG" >> Latest.Globally(), equal_to([None]), label="CheckEmpty")


# -- tuples of combiners --------------------------------------------------------------------------


def test_tuple_combine_fns():
    fn = TupleCombineFn(max, sum, CountCombineFn())
    assert fn.apply([(1, 10, "a"), (3, 20, "b")]) == (3, 30, 2)
    chunks = [[(1, 1, 0)], [(5, 2, 0), (2, 3, 0)], []]
    assert _fold(fn, chunks) == (5, 6, 3)
    single = fn.with_common_input()
    assert isinstance(single, SingleInputTupleCombineFn)
    assert single.apply([4, 2, 9]) == (9, 15, 3)
    assert _fold(SingleInputTupleCombineFn(min, MeanCombineFn()), [[4], [2, 9], []]) == (2, 5.0)
    _run_and_check(
        lambda p: (
            p
            | Create([("k", 1), ("k", 5), ("j", 2)])
            | CombinePerKey(SingleInputTupleCombineFn(min, max, MeanCombineFn()))
        ),
        [("k", (1, 5, 3.0)), ("j", (2, 2, 2.0))],
    )


def test_tuple_combine_fn_merges_lazily_in_bounded_batches():
    """Beam's merge_accumulators_batch_size (apache_beam/transforms/combiners.py): the input
    iterable is read a batch at a time and merged into the result so far, so at most a batch
    (plus the result) of accumulator tuples exist at once; the result is the full merge."""
    live = {"now": 0, "peak": 0}

    class Live(list):
        def __init__(self, *args):
            super().__init__(*args)
            live["now"] += 1
            live["peak"] = max(live["peak"], live["now"])

        def __del__(self):
            live["now"] -= 1

    def tuples(n):
        for i in range(n):
            yield Live([Live([i]), Live([i * 10])])

    class Concat(combiners.CombineFn):
        def create_accumulator(self):
            return Live()

        def merge_accumulators(self, accumulators):
            return Live(x for acc in accumulators for x in acc)

    fn = TupleCombineFn(Concat(), Concat(), merge_accumulators_batch_size=4)
    merged = fn.merge_accumulators(tuples(50))
    assert sorted(merged[0]) == list(range(50))
    assert sorted(merged[1]) == [i * 10 for i in range(50)]
    # A batch and the result so far (3 objects a tuple), the two lists being merged, and the
    # tuple the input generator is making: not the 150 objects of all 50 tuples.
    assert live["peak"] <= 3 * (4 + 1) + 2 + 3
    counts = TupleCombineFn(CountCombineFn(), CountCombineFn(), merge_accumulators_batch_size=1)
    assert counts.merge_accumulators(iter([[1, 2]])) == [1, 2]
    assert counts.merge_accumulators([[1, 2], [3, 1], [5, 0]]) == [9, 3]
    assert counts.merge_accumulators([]) == [0, 0]
    with pytest.raises(ValueError, match="at least 1"):
        TupleCombineFn(sum, merge_accumulators_batch_size=0)


def test_global_combine_with_defaults_on_triggered_unbounded_input_logs_an_error(caplog):
    """Beam logs (and does not refuse) a CombineGlobally with default values over an unbounded
    input whose windowing is not the default (apache_beam/transforms/core.py)."""
    from headrace.io.streaming.periodic import PeriodicImpulse
    from headrace.model.trigger import AccumulationMode, AfterCount, Repeatedly
    from headrace.model.window import GlobalWindows

    def triggered(p, name):
        ticks = p | name >> PeriodicImpulse(0, 4, 1)
        return ticks | f"{name}Window" >> WindowInto(
            GlobalWindows(),
            trigger=Repeatedly(AfterCount(2)),
            accumulation_mode=AccumulationMode.DISCARDING,
        )

    p = Pipeline()
    with caplog.at_level("ERROR"):
        triggered(p, "A") | combiners.Count.Globally()
    assert "unbounded collections" in caplog.text
    caplog.clear()
    with caplog.at_level("ERROR"):
        triggered(p, "B") | "Quiet" >> combiners.Count.Globally().without_defaults()
        p | "Bounded" >> Create([1]) | "Plain" >> combiners.Count.Globally()
        p | "C" >> PeriodicImpulse(0, 4, 1) | "Untriggered" >> combiners.Count.Globally()
    assert caplog.text == ""


# -- windowed input -------------------------------------------------------------------------------


def test_windowed_input_needs_without_defaults(make_pipeline):
    def windowed(p):
        return (
            p
            | Create([1, 2, 65])
            | Map(lambda t: TimestampedValue(t, t))
            | WindowInto(FixedWindows(60))
        )

    p = make_pipeline()
    with pytest.raises(ValueError, match="without_defaults"):
        _ = windowed(p) | Count.Globally()
    _run_and_check(lambda p: windowed(p) | Count.Globally().without_defaults(), [2, 1])
    _run_and_check(lambda p: windowed(p) | Top.Of(1).without_defaults(), [[2], [65]])
    _run_and_check(
        lambda p: windowed(p) | Map(lambda x: (x % 2, x)) | Mean.PerKey(),
        [(1, 1.0), (0, 2.0), (1, 65.0)],
    )


def test_per_key_combiners_on_merging_windows(make_pipeline):
    # Session windows are merged before combining, through the non-lifted path.
    def sessions(p):
        events = [("a", 1, 1), ("a", 5, 2), ("a", 3, 100), ("b", 7, 3)]
        return (
            p
            | Create(events)
            | Map(lambda e: TimestampedValue((e[0], e[1]), e[2]))
            | WindowInto(Sessions(10))
        )

    with make_pipeline() as p:
        pcoll = sessions(p)
        assert_that(
            pcoll | Count.PerKey(), equal_to([("a", 2), ("a", 1), ("b", 1)]), label="CheckCount"
        )
        assert_that(
            pcoll | Top.LargestPerKey(1),
            equal_to([("a", [5]), ("a", [3]), ("b", [7])]),
            label="CheckTop",
        )
        assert_that(
            pcoll | "Mean" >> Mean.PerKey(),
            equal_to([("a", 3.0), ("a", 3.0), ("b", 7.0)]),
            label="CheckMean",
        )


# -- pickling -------------------------------------------------------------------------------------


ALL_FNS = [
    CountCombineFn(),
    MeanCombineFn(),
    TopCombineFn(3),
    TopCombineFn(3, key=len, reverse=True),
    Largest(2),
    Smallest(2),
    SampleCombineFn(3),
    ToListCombineFn(),
    ToDictCombineFn(),
    ToSetCombineFn(),
    LatestCombineFn(),
    TupleCombineFn(max, CountCombineFn()),
    SingleInputTupleCombineFn(min, MeanCombineFn()),
]


@pytest.mark.parametrize("fn", ALL_FNS, ids=lambda f: type(f).__name__)
@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_combine_fns_pickle(fn, dumps):
    if isinstance(fn, TupleCombineFn):
        inputs = [(3, "a"), (1, "b")]
    elif isinstance(fn, ToDictCombineFn):
        inputs = [("k", 1), ("j", 2)]
    elif isinstance(fn, LatestCombineFn):
        inputs = [("a", 1), ("b", 2)]
    elif isinstance(fn, TopCombineFn) and fn._key is len:
        inputs = ["aaa", "b", "cc"]
    else:
        inputs = [3, 1, 2]
    copy = pickle.loads(dumps(fn))
    assert type(copy) is type(fn)
    expected = fn.apply(inputs)
    got = copy.apply(inputs)
    if isinstance(fn, SampleCombineFn):
        assert sorted(got) == sorted(expected)
    else:
        assert got == expected
    # accumulators travel between processes too
    acc = copy.add_inputs(copy.create_accumulator(), inputs)
    acc2 = pickle.loads(dumps(acc))
    out = copy.extract_output(copy.merge_accumulators([acc2, copy.create_accumulator()]))
    assert (sorted(out) == sorted(expected)) if isinstance(fn, SampleCombineFn) else out == expected


def test_top_with_lambda_key_pickles_with_cloudpickle():
    fn = TopCombineFn(2, key=lambda s: s[-1])
    copy = cloudpickle.loads(cloudpickle.dumps(fn))
    assert copy.apply(["ab", "cz", "dm"]) == ["cz", "dm"]


def test_transforms_pickle():
    for t in [
        Count.Globally(),
        Count.PerElement(),
        Mean.PerKey(),
        Top.Of(2, key=len),
        Top.Largest(3),
        Sample.FixedSizePerKey(2),
        ToList(),
        Latest.Globally(),
    ]:
        assert type(cloudpickle.loads(cloudpickle.dumps(t))) is type(t)


# -- runners: several processes, bundle sizes -----------------------------------------------------


def _everything(p, data, pairs):
    nums = p | "Nums" >> Create(data)
    kv = p | "Pairs" >> Create(pairs)
    checks = {
        "CountG": nums | "CountG" >> Count.Globally(),
        "CountE": nums | Count.PerElement(),
        "CountK": kv | "CountK" >> Count.PerKey(),
        "MeanG": nums | "MeanG" >> Mean.Globally(),
        "MeanK": kv | Mean.PerKey(),
        "TopOf": nums | Top.Of(3),
        "TopKey": nums | "TopKey" >> Top.Of(2, key=lambda x: (x % 5, x), reverse=True),
        "TopK": kv | Top.PerKey(2),
        "SmallK": kv | Top.SmallestPerKey(2),
        "List": nums | ToList() | "SortL" >> Map(sorted),
        "Set": nums | ToSet(),
        "Dict": kv | ToDict() | "SortD" >> Map(sorted),
        "SampleBig": nums | "SB" >> Sample.FixedSizeGlobally(10**6) | "SortS" >> Map(sorted),
        "SampleK": kv | Sample.FixedSizePerKey(2) | "LenK" >> MapTuple(lambda k, v: (k, len(v))),
    }
    return checks


def _expected(data, pairs):
    groups = {}
    for k, v in pairs:
        groups.setdefault(k, []).append(v)
    mean = sum(data) / len(data) if data else None
    return {
        "CountG": [len(data)],
        "CountE": sorted(Counter(data).items()),
        "CountK": [(k, len(vs)) for k, vs in groups.items()],
        "MeanG": [mean] if data else None,
        "MeanK": [(k, sum(vs) / len(vs)) for k, vs in groups.items()],
        "TopOf": [sorted(data, reverse=True)[:3]],
        "TopKey": [sorted(data, key=lambda x: (x % 5, x))[:2]],
        "TopK": [(k, sorted(vs, reverse=True)[:2]) for k, vs in groups.items()],
        "SmallK": [(k, sorted(vs)[:2]) for k, vs in groups.items()],
        "List": [sorted(data)],
        "Set": [set(data)],
        "Dict": [sorted(groups)],
        "SampleBig": [sorted(data)],
        "SampleK": [(k, min(2, len(vs))) for k, vs in groups.items()],
    }


def _check_everything(data, pairs, **options):
    expected = _expected(data, pairs)
    with Pipeline(options=PipelineOptions(**options)) as p:
        for name, pcoll in _everything(p, data, pairs).items():
            if expected[name] is None:
                assert_that(pcoll, _is_nan_singleton, label=f"Check{name}")
            else:
                assert_that(pcoll, equal_to(expected[name]), label=f"Check{name}")


DATA = [(i * 37) % 101 for i in range(300)]
PAIRS = [(f"k{i % 7}", (i * 13) % 50) for i in range(300)]


def test_all_combiners_in_one_process():
    _check_everything(DATA, PAIRS)


def test_all_combiners_with_two_worker_processes():
    _check_everything(DATA, PAIRS, **MULTI)


def test_all_combiners_with_two_worker_processes_and_small_bundles():
    _check_everything(DATA, PAIRS, direct_bundle_size=3, **MULTI)


def test_all_combiners_on_empty_input_with_two_worker_processes():
    _check_everything([], [], **MULTI)


def test_sample_with_two_worker_processes():
    data = list(range(1000))
    with Pipeline(options=PipelineOptions(direct_bundle_size=7, **MULTI)) as p:
        nums = p | Create(data)
        assert_that(nums | Sample.FixedSizeGlobally(10), _sample_check(10, data))


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.integers(-20, 20), max_size=25),
    pairs=st.lists(st.tuples(st.sampled_from("abc"), st.integers(-9, 9)), max_size=25),
    bundle_size=st.integers(1, 5),
    workers=st.integers(1, 3),
)
def test_results_do_not_depend_on_bundle_size(data, pairs, bundle_size, workers):
    _check_everything(data, pairs, direct_bundle_size=bundle_size, direct_num_workers=workers)


def test_module_exports_beam_names():
    for name in [
        "Count",
        "Mean",
        "Sample",
        "Top",
        "ToDict",
        "ToList",
        "ToSet",
        "Latest",
        "CountCombineFn",
        "MeanCombineFn",
        "SampleCombineFn",
        "TopCombineFn",
        "ToDictCombineFn",
        "ToListCombineFn",
        "ToSetCombineFn",
        "LatestCombineFn",
    ]:
        assert name in combiners.__all__
        assert getattr(combiners, name) is not None


def test_combine_globally_accepts_these_fns_directly():
    _run_and_check(lambda p: p | Create([1, 2, 3]) | CombineGlobally(MeanCombineFn()), [2.0])
    _run_and_check(lambda p: p | Create([]) | CombineGlobally(TopCombineFn(2)), [[]])


def test_top_shortcuts_take_a_key() -> None:
    """Beam's ``Top.Largest(n, has_defaults, key)`` / ``Smallest`` / ``*PerKey(n, key)``
    (apache_beam/transforms/combiners.py; combiners_test uses key=len)."""
    import headrace.beam as beam
    from headrace.model.pipeline import Pipeline
    from headrace.testing.util import assert_that, equal_to

    with Pipeline() as p:
        words = p | beam.Create(["aaa", "b", "cc"])
        assert_that(
            words | "L" >> beam.combiners.Top.Largest(1, key=len), equal_to([["aaa"]]), "Large"
        )
        assert_that(
            words | "S" >> beam.combiners.Top.Smallest(1, key=len), equal_to([["b"]]), "Small"
        )
        keyed = p | "K" >> beam.Create([("k", "aaa"), ("k", "b")])
        assert_that(
            keyed | "LK" >> beam.combiners.Top.LargestPerKey(1, key=len),
            equal_to([("k", ["aaa"])]),
            "LargeKey",
        )


def test_tuple_combine_fn_accepts_merge_batch_size() -> None:
    from headrace.model.transforms.combinefns import TupleCombineFn

    fn = TupleCombineFn(max, sum, merge_accumulators_batch_size=5)
    assert fn.apply([(1, 10), (3, 20)]) == (3, 30)
