"""Semantics of headrace.model.transforms.util, in this process and with two worker processes."""

from __future__ import annotations

import pickle
from collections import Counter

import cloudpickle
import pytest

from headrace.model.pipeline import Pipeline
from headrace.model.pvalue import AsSingleton
from headrace.model.transforms import batching, util
from headrace.model.transforms.core import (
    CombineGlobally,
    Create,
    FlatMap,
    GroupByKey,
    Map,
    MapTuple,
    ParDo,
    WindowInto,
)
from headrace.model.transforms.dofn import DoFn
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
from headrace.model.window import (
    FixedWindows,
    GlobalWindow,
    IntervalWindow,
    Sessions,
    SlidingWindows,
    TimestampedValue,
)
from headrace.testing.util import assert_that, equal_to, is_empty


class Reify(DoFn):
    """(value, timestamp in seconds, window) of each element."""

    def process(self, x, t=DoFn.TimestampParam, w=DoFn.WindowParam):
        yield (x, t.micros / 1e6, w)


def stamped(p, label, values, window_fn=None):
    """Create ``values`` with each value as its own timestamp (seconds), optionally windowed."""
    pc = (
        p
        | f"{label}Create" >> Create(values)
        | f"{label}Stamp"
        >> Map(lambda v: TimestampedValue(v, v if not isinstance(v, tuple) else v[1]))
    )
    if window_fn is not None:
        pc = pc | f"{label}Window" >> WindowInto(window_fn)
    return pc


def sorted_groups(kv):
    k, vs = kv
    return (k, sorted(vs))


# -- Keys / Values / KvSwap / WithKeys ----------------------------------------------------------


def test_keys_values_kvswap(make_pipeline):
    pairs = [("a", 1), ("b", 2), ("a", 3)]
    with make_pipeline() as p:
        pc = p | Create(pairs)
        assert_that(pc | Keys(), equal_to(["a", "b", "a"]), label="CheckK")
        assert_that(pc | Values(), equal_to([1, 2, 3]), label="CheckV")
        assert_that(pc | KvSwap(), equal_to([(1, "a"), (2, "b"), (3, "a")]), label="CheckS")
        assert_that(pc | Keys("OtherKeys"), equal_to(["a", "b", "a"]), label="CheckK2")


def test_keys_values_kvswap_on_empty_input(make_pipeline):
    with make_pipeline() as p:
        pc = p | Create([])
        assert_that(pc | Keys(), is_empty(), label="CheckK")
        assert_that(pc | Values(), is_empty(), label="CheckV")
        assert_that(pc | KvSwap(), is_empty(), label="CheckS")


def test_keys_label_is_the_given_one(make_pipeline):
    p = make_pipeline()
    pc = p | Create([("a", 1)])
    out = pc | Keys("MyKeys")
    assert out.producer_label == "MyKeys"
    with pytest.raises(ValueError, match="'Keys'.*already exists"):
        pc | Keys()
        pc | Keys()


def test_with_keys_callable_and_constant(make_pipeline):
    with make_pipeline() as p:
        words = p | Create(["apple", "fig", "kiwi"])
        assert_that(
            words | "Len" >> WithKeys(len),
            equal_to([(5, "apple"), (3, "fig"), (4, "kiwi")]),
            label="CheckByLen",
        )
        assert_that(
            words | "Const" >> WithKeys("k"),
            equal_to([("k", "apple"), ("k", "fig"), ("k", "kiwi")]),
            label="CheckByConst",
        )
        assert_that(
            words | "NoneKey" >> WithKeys(None),
            equal_to([(None, "apple"), (None, "fig"), (None, "kiwi")]),
            label="CheckByNone",
        )
        assert_that(
            p | "EmptyInput" >> Create([]) | "OnEmpty" >> WithKeys(len),
            is_empty(),
            label="CheckEmpty",
        )


def test_with_keys_passes_extra_and_side_input_arguments(make_pipeline):
    with make_pipeline() as p:
        words = p | "Words" >> Create(["ab", "abcd"])
        offset = p | "Offset" >> Create([100]) | CombineGlobally(sum)
        keyed = words | "Side" >> WithKeys(
            lambda w, off, scale=1: len(w) * scale + off, AsSingleton(offset), scale=10
        )
        assert_that(keyed, equal_to([(120, "ab"), (140, "abcd")]), label="CheckSide")
        plain = words | "Plain" >> WithKeys(lambda w, n: w[:n], 1)
        assert_that(plain, equal_to([("a", "ab"), ("a", "abcd")]), label="CheckPlain")


def test_with_keys_constant_with_arguments_is_an_error():
    with pytest.raises(TypeError, match="constant key"):
        WithKeys("k", 1)


def test_with_keys_on_windowed_input_keeps_windows(make_pipeline):
    with make_pipeline() as p:
        pc = stamped(p, "A", [5, 65], FixedWindows(60))
        out = pc | WithKeys("k") | ParDo(Reify())
        assert_that(
            out,
            equal_to(
                [(("k", 5), 5.0, IntervalWindow(0, 60)), (("k", 65), 65.0, IntervalWindow(60, 120))]
            ),
        )


# -- Distinct -----------------------------------------------------------------------------------


def test_distinct_large_input_with_duplicates(make_pipeline):
    values = [f"v{i % 997}" for i in range(30_000)] + [(i % 13, "t") for i in range(5_000)]
    expected = sorted(set(values), key=repr)
    with make_pipeline() as p:
        out = p | Create(values) | Distinct()
        assert_that(out, equal_to(expected))


def test_distinct_small_cases(make_pipeline):
    with make_pipeline() as p:
        assert_that(p | "E" >> Create([]) | "DE" >> Distinct(), is_empty(), label="CheckEmpty")
        assert_that(p | "O" >> Create([7]) | "DO" >> Distinct(), equal_to([7]), label="CheckOne")
        assert_that(
            p | "N" >> Create([None, None, 0, ""]) | "DN" >> Distinct(),
            equal_to([None, 0, ""]),
            label="CheckFalsy",
        )
        assert_that(
            p | "R" >> Create(["x", "x", "y"]) | RemoveDuplicates(),
            equal_to(["x", "y"]),
            label="CheckAlias",
        )


def test_distinct_is_per_window(make_pipeline):
    with make_pipeline() as p:
        pc = stamped(p, "A", [1, 1, 2, 61, 61], FixedWindows(60))
        out = pc | Distinct() | ParDo(Reify())
        assert_that(
            out,
            equal_to(
                [
                    (1, 59.999999, IntervalWindow(0, 60)),
                    (2, 59.999999, IntervalWindow(0, 60)),
                    (61, 119.999999, IntervalWindow(60, 120)),
                ]
            ),
        )


def test_distinct_unhashable_elements_error_names_the_label(pipeline_options):
    p = Pipeline(options=pipeline_options)
    _ = p | Create([[1, 2], [1, 2]]) | "Dedup" >> Distinct()
    with pytest.raises(TypeError, match=r"'Dedup/.*unhashable.*list"):
        p.run().wait_until_finish()


# -- Reshuffle ----------------------------------------------------------------------------------


def test_reshuffle_preserves_the_multiset(make_pipeline):
    values = [i % 1000 for i in range(20_000)] + ["a", "a", ("t", 1)]
    with make_pipeline() as p:
        out = p | Create(values) | Reshuffle()
        assert_that(out, equal_to(values), label="CheckDefault")
        few = p | "Again" >> Create(values) | "Few" >> Reshuffle(num_buckets=3)
        assert_that(few, equal_to(values), label="CheckFewBuckets")


def test_reshuffle_empty_input(make_pipeline):
    with make_pipeline() as p:
        assert_that(p | Create([]) | Reshuffle(), is_empty())
        windowed = stamped(p, "W", [], FixedWindows(10)) | "R2" >> Reshuffle()
        assert_that(windowed, is_empty(), label="CheckWindowed")


def test_reshuffle_keeps_timestamps_in_the_global_window(make_pipeline):
    with make_pipeline() as p:
        out = stamped(p, "A", [3, 1, 2]) | Reshuffle() | ParDo(Reify())
        g = GlobalWindow()
        assert_that(out, equal_to([(1, 1.0, g), (2, 2.0, g), (3, 3.0, g)]))


def test_reshuffle_keeps_fixed_windows_and_timestamps(make_pipeline):
    with make_pipeline() as p:
        out = stamped(p, "A", [1, 5, 61], FixedWindows(60)) | Reshuffle() | ParDo(Reify())
        assert_that(
            out,
            equal_to(
                [
                    (1, 1.0, IntervalWindow(0, 60)),
                    (5, 5.0, IntervalWindow(0, 60)),
                    (61, 61.0, IntervalWindow(60, 120)),
                ]
            ),
        )


def test_reshuffle_keeps_windowing_for_later_groupings(make_pipeline):
    with make_pipeline() as p:
        # Sliding windows: an element in two windows is counted in both, as without Reshuffle.
        sliding = (
            stamped(p, "S", [("k", 5), ("k", 12)], SlidingWindows(10, 5))
            | "RS" >> Reshuffle()
            | "GS" >> GroupByKey()
            | "SortS" >> Map(sorted_groups)
        )
        assert_that(
            sliding,
            equal_to([("k", [5]), ("k", [5, 12]), ("k", [12])]),
            label="CheckSliding",
        )
        # Sessions: the output windows merge after the shuffle exactly as before it.
        sessions = (
            stamped(p, "T", [("k", 1), ("k", 5), ("k", 30)], Sessions(10)) | "RT" >> Reshuffle()
        )
        assert_that(
            sessions | "ReifyT" >> ParDo(Reify()),
            equal_to(
                [
                    (("k", 1), 1.0, IntervalWindow(1, 11)),
                    (("k", 5), 5.0, IntervalWindow(5, 15)),
                    (("k", 30), 30.0, IntervalWindow(30, 40)),
                ]
            ),
            label="CheckUnmerged",
        )
        merged = (
            sessions
            | "GT" >> GroupByKey()
            | "SortT" >> Map(sorted_groups)
            | "ReifyM" >> ParDo(Reify())
        )
        assert_that(
            merged,
            equal_to(
                [
                    (("k", [1, 5]), 14.999999, IntervalWindow(1, 15)),
                    (("k", [30]), 39.999999, IntervalWindow(30, 40)),
                ]
            ),
            label="CheckMerged",
        )


def test_reshuffle_output_can_be_flattened_with_its_input(make_pipeline):
    from headrace.model.transforms.core import Flatten

    with make_pipeline() as p:
        pc = stamped(p, "A", [1, 2], FixedWindows(60))
        both = (pc, pc | Reshuffle()) | Flatten()
        assert_that(both, equal_to([1, 2, 1, 2]))


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "3"])
def test_reshuffle_rejects_bad_num_buckets(bad):
    with pytest.raises(ValueError, match="num_buckets"):
        Reshuffle(num_buckets=bad)


# -- CoGroupByKey -------------------------------------------------------------------------------


def test_cogroupbykey_dict_three_inputs_with_missing_keys(make_pipeline):
    with make_pipeline() as p:
        a = p | "A" >> Create([("x", 1), ("y", 2), ("x", 3)])
        b = p | "B" >> Create([("y", "b1")])
        c = p | "C" >> Create([("z", None), ("x", "c1")])
        out = {"a": a, "b": b, 333: c} | CoGroupByKey()
        normalised = out | Map(
            lambda kv: (kv[0], {t: sorted(vs, key=repr) for t, vs in kv[1].items()})
        )
        assert_that(
            normalised,
            equal_to(
                [
                    ("x", {"a": [1, 3], "b": [], 333: ["c1"]}),
                    ("y", {"a": [2], "b": ["b1"], 333: []}),
                    ("z", {"a": [], "b": [], 333: [None]}),
                ]
            ),
        )
        tag_order = out | "Tags" >> Map(lambda kv: list(kv[1]))
        assert_that(tag_order, equal_to([["a", "b", 333]] * 3), label="CheckTagOrder")


def test_cogroupbykey_tuple_and_list_forms(make_pipeline):
    with make_pipeline() as p:
        a = p | "A" >> Create([("x", 1), ("x", 2)])
        b = p | "B" >> Create([("y", "b")])
        c = p | "C" >> Create([("x", "c"), ("y", "c")])
        expected = [("x", ([1, 2], [], ["c"])), ("y", ([], ["b"], ["c"]))]
        out = (a, b, c) | "Tuple" >> CoGroupByKey()
        assert_that(
            out | "SortT" >> Map(lambda kv: (kv[0], tuple(sorted(v) for v in kv[1]))),
            equal_to(expected),
            label="CheckTuple",
        )
        out_list = [a, b, c] | "List" >> CoGroupByKey()
        assert_that(
            out_list | "SortL" >> Map(lambda kv: (kv[0], tuple(sorted(v) for v in kv[1]))),
            equal_to(expected),
            label="CheckList",
        )
        assert_that(
            out_list | "IsTuple" >> Map(lambda kv: type(kv[1]).__name__ + str(len(kv[1]))),
            equal_to(["tuple3", "tuple3"]),
            label="CheckShape",
        )


def test_cogroupbykey_with_empty_inputs(make_pipeline):
    with make_pipeline() as p:
        a = p | "A" >> Create([("x", 1)])
        empty = p | "E" >> Create([])
        out = {"a": a, "e": empty} | "OneEmpty" >> CoGroupByKey()
        assert_that(out, equal_to([("x", {"a": [1], "e": []})]), label="CheckOneEmpty")
        all_empty = (empty, p | "E2" >> Create([])) | "AllEmpty" >> CoGroupByKey()
        assert_that(all_empty, is_empty(), label="CheckAllEmpty")
        no_inputs = {} | "NoInputs" >> CoGroupByKey(pipeline=p)
        assert_that(no_inputs, is_empty(), label="CheckNoInputs")


def test_cogroupbykey_without_inputs_needs_the_pipeline():
    with pytest.raises(ValueError, match="pipeline=p"):
        {} | CoGroupByKey()


def test_cogroupbykey_windowed_inputs_group_per_window(make_pipeline):
    with make_pipeline() as p:
        a = stamped(p, "A", [("k", 1), ("k", 61)], FixedWindows(60))
        b = stamped(p, "B", [("k", 2), ("j", 62)], FixedWindows(60))
        out = {"a": a, "b": b} | CoGroupByKey() | ParDo(Reify())
        assert_that(
            out,
            equal_to(
                [
                    (("k", {"a": [1], "b": [2]}), 59.999999, IntervalWindow(0, 60)),
                    (("k", {"a": [61], "b": []}), 119.999999, IntervalWindow(60, 120)),
                    (("j", {"a": [], "b": [62]}), 119.999999, IntervalWindow(60, 120)),
                ]
            ),
        )


def test_cogroupbykey_construction_errors(make_pipeline):
    p = make_pipeline()
    ints = p | "Ints" >> Create([1, 2])
    pairs = p | "Pairs" >> Create([("a", 1)])
    with pytest.raises(ValueError, match=r"'Join/pair_with_nums'.*\(key, value\) pairs"):
        {"nums": ints, "pairs": pairs} | "Join" >> CoGroupByKey()
    windowed = pairs | WindowInto(FixedWindows(10))
    with pytest.raises(ValueError, match="different windowing"):
        (pairs, windowed) | "Mixed" >> CoGroupByKey()
    with pytest.raises(TypeError, match="not a PCollection"):
        {"a": pairs, "b": [("x", 1)]} | "NotPc" >> CoGroupByKey()


def test_cogroupbykey_non_pair_elements_fail_clearly(pipeline_options):
    p = Pipeline(options=pipeline_options)
    mixed = p | Create([("a", 1), "oops"])
    _ = {"m": mixed} | "Join" >> CoGroupByKey()
    with pytest.raises(ValueError, match=r"'Join/pair_with_m' needs \(key, value\) pairs.*oops"):
        p.run().wait_until_finish()


# -- BatchElements ------------------------------------------------------------------------------


def test_batch_elements_keeps_every_element_and_respects_the_maximum(make_pipeline):
    values = list(range(5_000))
    with make_pipeline() as p:
        batches = p | Create(values) | BatchElements(min_batch_size=2, max_batch_size=50)
        assert_that(batches | "Flat" >> FlatMap(lambda b: b), equal_to(values), label="CheckAll")
        assert_that(
            batches
            | "Sizes" >> Map(lambda b: isinstance(b, list) and 1 <= len(b) <= 50)
            | "Distinct" >> Distinct(),
            equal_to([True]),
            label="CheckSizes",
        )


def test_batch_elements_fixed_size_and_empty_input(make_pipeline):
    with make_pipeline() as p:
        batches = p | Create(list(range(1000))) | BatchElements(min_batch_size=7, max_batch_size=7)
        # Only the last batch of each bundle may be short; there are at most a few bundles.
        short = batches | "Short" >> FlatMap(lambda b: [len(b)] if len(b) != 7 else [])
        assert_that(short | "Few" >> CombineGlobally(len) | Map(lambda n: n <= 4), equal_to([True]))
        assert_that(p | "E" >> Create([]) | "BE" >> BatchElements(), is_empty(), label="CheckEmpty")


def test_batch_elements_element_size_fn(make_pipeline):
    words = ["a" * n for n in (3, 3, 3, 3, 3, 3)]
    with make_pipeline() as p:
        batches = (
            p
            | Create(words)
            | BatchElements(min_batch_size=6, max_batch_size=6, element_size_fn=len)
        )
        assert_that(batches | "Flat" >> FlatMap(lambda b: b), equal_to(words), label="CheckAll")
        assert_that(
            batches | Map(lambda b: sum(map(len, b)) <= 6) | "D" >> Distinct(),
            equal_to([True]),
            label="CheckSizes",
        )


def test_batch_elements_per_window(make_pipeline):
    with make_pipeline() as p:
        pc = stamped(p, "A", [1, 2, 3, 61, 62], FixedWindows(60))
        batches = pc | BatchElements(min_batch_size=100, max_batch_size=100) | ParDo(Reify())
        regrouped = (
            batches
            | "Key" >> Map(lambda b: (b[2], (b[1], b[0])))
            | GroupByKey()
            | MapTuple(
                lambda w, items: (
                    w,
                    sorted(v for _, batch in items for v in batch),
                    {t for t, _ in items},
                )
            )
        )
        assert_that(
            regrouped,
            equal_to(
                [
                    (IntervalWindow(0, 60), [1, 2, 3], {59.999999}),
                    (IntervalWindow(60, 120), [61, 62], {119.999999}),
                ]
            ),
        )


def test_batch_elements_rejects_bad_sizes():
    with pytest.raises(ValueError, match="must not be greater"):
        BatchElements(min_batch_size=5, max_batch_size=2)
    with pytest.raises(ValueError, match="positive"):
        BatchElements(min_batch_size=0)
    with pytest.raises(TypeError, match="callable"):
        BatchElements(element_size_fn=3)


# -- ToString -----------------------------------------------------------------------------------


def test_to_string(make_pipeline):
    with make_pipeline() as p:
        assert_that(
            p | "E" >> Create([1, "a", (1, 2)]) | ToString.Element(),
            equal_to(["1", "a", "(1, 2)"]),
            label="CheckElement",
        )
        kvs = p | "K" >> Create([("a", 1), ("b", None)])
        assert_that(kvs | ToString.Kvs(), equal_to(["a,1", "b,None"]), label="CheckKvs")
        assert_that(
            kvs | "Tab" >> ToString.Kvs("\t"), equal_to(["a\t1", "b\tNone"]), label="CheckTab"
        )
        iters = p | "I" >> Create([[1, 2], (), "xy"])
        assert_that(iters | ToString.Iterables(), equal_to(["1,2", "", "x,y"]), label="CheckIter")
        assert_that(
            iters | "Semi" >> ToString.Iterables(";"),
            equal_to(["1;2", "", "x;y"]),
            label="CheckSemi",
        )


# -- pickling and the graph ---------------------------------------------------------------------


def test_helpers_pickle_with_pickle_and_cloudpickle():
    helpers = [
        util._ConstantKey("k"),
        util._KeyFrom(len),
        util._TagValue(2, "CoGroupByKey/pair_with_x"),
        util._SplitByTag(["a", 7], 2),
        util._SplitByTag(None, 3),
        util._AddRandomKeyGlobal(None),
        util._AddRandomKeyWindowed(5),
        util._KeepWindows(),
        batching._BatchGlobalWindow(batching._BatchSizer(1, 10, None)),
        batching._BatchPerWindow(batching._BatchSizer(2, 4, len)),
        util._KvToString("="),
        util._IterableToString(";"),
    ]
    for h in helpers:
        for dumps in (pickle.dumps, cloudpickle.dumps):
            copy = pickle.loads(dumps(h))
            assert type(copy) is type(h)
    assert pickle.loads(pickle.dumps(util._SplitByTag(["a", 7], 2)))(("k", [(1, "v")])) == (
        "k",
        {"a": [], 7: ["v"]},
    )
    assert pickle.loads(pickle.dumps(util._SplitByTag(None, 2)))(("k", [(0, "v")])) == (
        "k",
        (["v"], []),
    )
    assert pickle.loads(pickle.dumps(util._KeyFrom(len)))("abc") == (3, "abc")
    sizer = pickle.loads(pickle.dumps(batching._BatchSizer(2, 8, None)))
    assert (sizer.min_size, sizer.max_size, sizer.target) == (2, 8, 2)


def test_util_pipeline_round_trips_through_json(pipeline_options):
    def build(p):
        a = p | "A" >> Create([("x", 1), ("y", 2), ("x", 1)])
        b = p | "B" >> Create([("x", "b")])
        joined = (
            {"a": a, "b": b}
            | CoGroupByKey()
            | Map(lambda kv: (kv[0], sorted(kv[1]["a"]), kv[1]["b"]))
        )
        assert_that(joined, equal_to([("x", [1, 1], ["b"]), ("y", [2], [])]), label="CheckJoined")
        dedup = a | Reshuffle() | Distinct() | WithKeys("k") | Values() | KvSwap() | Keys()
        assert_that(dedup, equal_to([1, 2]), label="CheckDedup")
        sizes = a | BatchElements(min_batch_size=5, max_batch_size=5) | "Len" >> Map(len)
        assert_that(sizes | "Total" >> CombineGlobally(sum), equal_to([3]), label="CheckSizes")

    p = Pipeline(options=pipeline_options)
    build(p)
    text = p.to_json()
    Pipeline.from_json(text, options=pipeline_options).run().wait_until_finish()


def test_composites_are_recorded_with_their_parts(make_pipeline):
    p = make_pipeline()
    a = p | "A" >> Create([("x", 1)])
    _ = {"a": a} | "Join" >> CoGroupByKey()
    _ = a | Reshuffle()
    graph = p.to_graph()
    labels = Counter(t.label for t in graph.transforms.values())
    for label in (
        "Join",
        "Join/pair_with_a",
        "Join/Flatten",
        "Join/GroupByKey",
        "Reshuffle",
        "Reshuffle/Group",
    ):
        assert labels[label] == 1, label
