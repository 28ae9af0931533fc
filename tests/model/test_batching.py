"""SortAndBatchElements, WithLengthBucketKey and BatchElements' length options, as Beam has them.

Beam: ``apache_beam/transforms/util.py`` (``SortAndBatchElements``, ``WithLengthBucketKey``,
``BatchElements(max_batch_duration_secs=, length_fn=, bucket_boundaries=)``); the cases follow
``util_test.py`` (``SortAndBatchElementsTest``, ``BatchElementsTest``).
"""

from __future__ import annotations

import cloudpickle
import pytest

import headrace.beam as beam
from headrace.beam.transforms import util
from headrace.testing.util import assert_that, equal_to


def check(values, transform, expected, then=None):
    with beam.Pipeline() as p:
        out = p | beam.Create(values) | transform
        if then is not None:
            out = out | then
        assert_that(out, equal_to(expected))


def test_sort_and_batch_sorts_a_bundle_by_size_then_cuts_batches():
    data = ["aaaaa", "bb", "cccc", "a", "ddd"]
    check(data, util.SortAndBatchElements(1, 5, 100), [["a", "bb", "ddd", "cccc", "aaaaa"]])
    check(["a"] * 10, util.SortAndBatchElements(1, 3, 100), [3, 3, 3, 1], beam.Map(len))
    # weight: a batch closes before reaching max_batch_weight (5 + 5 + 5 >= 12)
    four = ["aaaaa", "bbbbb", "ccccc", "ddddd"]
    check(four, util.SortAndBatchElements(1, 10, 12), [2, 2], beam.Map(len))
    # no len(): size 1
    check([10, 20, 30, 40, 50], util.SortAndBatchElements(1, 3, 100), [3, 2], beam.Map(len))
    texts = [{"t": "a"}, {"t": "bbb"}, {"t": "cc"}]
    sized = util.SortAndBatchElements(1, 3, 100, element_size_fn=lambda x: len(x["t"]))
    check(texts, sized, [[{"t": "a"}, {"t": "cc"}, {"t": "bbb"}]])


def test_sort_and_batch_per_window():
    data = [("a", 1), ("ccc", 2), ("bb", 12)]
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create(data)
            | beam.Map(lambda kv: beam.window.TimestampedValue(kv[0], kv[1]))
            | beam.WindowInto(beam.window.FixedWindows(10))
            | util.SortAndBatchElements(1, 10, 100)
        )
        assert_that(out, equal_to([["a", "ccc"], ["bb"]]))


def test_sort_and_batch_validation():
    with pytest.raises(ValueError, match="min_batch_size must be >= 1"):
        util.SortAndBatchElements(0, 10, 100)
    with pytest.raises(ValueError, match="max_batch_size"):
        util.SortAndBatchElements(5, 2, 100)
    with pytest.raises(ValueError, match="max_batch_weight"):
        util.SortAndBatchElements(1, 2, 0)
    with pytest.raises(TypeError, match="callable"):
        util.SortAndBatchElements(1, 2, 10, element_size_fn=3)


def test_with_length_bucket_key():
    dofn = util.WithLengthBucketKey(length_fn=len, bucket_boundaries=[10, 50, 100])
    assert [dofn._get_bucket(n) for n in (5, 10, 11, 50, 51, 100, 999)] == [0, 1, 1, 2, 2, 3, 3]
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create(["short", "x" * 30, "y" * 60])
            | beam.ParDo(util.WithLengthBucketKey(len, [10, 50]))
        )
        assert_that(
            out
            | beam.Map(lambda kv: (isinstance(kv[0][0], str) and kv[0][0] != "", kv[0][1], kv[1])),
            equal_to([(True, 0, "short"), (True, 1, "x" * 30), (True, 2, "y" * 60)]),
        )
    assert cloudpickle.loads(cloudpickle.dumps(dofn))._bucket_boundaries == [10, 50, 100]


def test_batch_elements_length_buckets_with_max_batch_duration():
    short = ["x" * i for i in range(1, 6)] * 4
    long = ["y" * i for i in range(50, 56)] * 4
    be = util.BatchElements(
        min_batch_size=5,
        max_batch_size=10,
        max_batch_duration_secs=100,
        length_fn=len,
        bucket_boundaries=[10, 50],
    )
    with beam.Pipeline() as p:
        batches = p | beam.Create(short + long) | be
        assert_that(
            batches | beam.Map(lambda b: max(map(len, b)) - min(map(len, b)) < 50),
            lambda flags: None if flags and all(flags) else _fail(flags),
            label="Homogeneous",
        )
        assert_that(batches | beam.FlatMap(lambda b: b), equal_to(short + long), label="Everything")
    assert util.BatchElements(max_batch_duration_secs=100, length_fn=len)._bucket_boundaries == [
        16,
        32,
        64,
        128,
        256,
        512,
    ]


def _fail(flags):
    raise AssertionError(f"a batch mixes length buckets: {flags}")


def test_batch_elements_length_option_validation():
    with pytest.raises(ValueError, match="requires length_fn"):
        util.BatchElements(max_batch_duration_secs=100, bucket_boundaries=[10, 20])
    for bad in ([], [20, 10], [0, 10]):
        with pytest.raises(ValueError, match="non-empty sorted list of positive"):
            util.BatchElements(max_batch_duration_secs=100, length_fn=len, bucket_boundaries=bad)


def test_group_into_batches_per_key_and_window():
    """Beam's ``util_test.GroupIntoBatchesTest``: batches of at most batch_size values of one
    key; the last batch of a key holds the rest."""
    pairs = [("a", i) for i in range(5)] + [("b", 9)]
    check(
        pairs,
        util.GroupIntoBatches(2),
        [("a", 2), ("a", 2), ("a", 1), ("b", 1)],
        beam.Map(lambda kv: (kv[0], len(kv[1]))),
    )
    check(pairs, util.GroupIntoBatches(10), [("a", [0, 1, 2, 3, 4]), ("b", [9])])
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create([("k", 1), ("k", 2), ("k", 12)])
            | beam.Map(lambda kv: beam.window.TimestampedValue(kv, kv[1]))
            | beam.WindowInto(beam.window.FixedWindows(10))
            | util.GroupIntoBatches(5)
            | beam.MapTuple(lambda k, vs: sorted(vs))
        )
        assert_that(out, equal_to([[1, 2], [12]]))


def test_group_into_batches_with_sharded_key():
    from headrace.beam.utils.sharded_key import ShardedKey

    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create([("a", 1), ("a", 2), ("a", 3)])
            | util.GroupIntoBatches.WithShardedKey(2)
            | beam.MapTuple(lambda sk, vs: (type(sk) is ShardedKey, sk.key, len(vs)))
        )
        assert_that(out, equal_to([(True, "a", 2), (True, "a", 1)]))
    assert ShardedKey("a", b"1") == ShardedKey("a", b"1") != ShardedKey("a", b"2")
    assert cloudpickle.loads(cloudpickle.dumps(ShardedKey("a", b"1"))) == ShardedKey("a", b"1")


def test_group_into_batches_validation():
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="batch_size must be a positive"):
            util.GroupIntoBatches(bad)
    with pytest.raises(ValueError, match="non-negative"):
        util.GroupIntoBatches(2, max_buffering_duration_secs=-1)


def test_sample_any_and_fanout_hints():
    """Beam's ``combiners_test``: Sample.Any(n) gives up to n elements (all if fewer, none for
    n=0) and rejects a negative n with ValueError; with_fanout / with_hot_key_fanout change
    nothing in the result."""
    check([1, 2, 3], beam.combiners.Sample.Any(5), [1, 2, 3])
    check([1, 2, 3], beam.combiners.Sample.Any(0), [])
    check([1, 1, 1, 1], beam.combiners.Sample.Any(2), [1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        beam.combiners.Sample.Any(-1)
    check([1, 2, 3], beam.CombineGlobally(sum).with_fanout(4), [6])
    check([("a", 1), ("a", 2)], beam.CombinePerKey(sum).with_hot_key_fanout(3), [("a", 3)])
    with pytest.raises(ValueError, match="with_fanout"):
        beam.CombineGlobally(sum).with_fanout(-2)
