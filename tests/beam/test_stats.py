"""ApproximateQuantiles and ApproximateUnique (Beam's apache_beam/transforms/stats.py).

Values marked "Beam 2.77 gives" were computed by running the same calls on Apache Beam 2.77's
``apache_beam.transforms.stats``; the algorithm is deterministic for a given call sequence, so
headrace must give the same lists, collapses included.
"""

from __future__ import annotations

import math
import pickle
import random

import pytest

import headrace.beam as beam
from headrace.beam.coders import coders
from headrace.beam.testing.util import assert_that, equal_to
from headrace.beam.transforms.stats import (
    ApproximateQuantilesCombineFn,
    ApproximateUniqueCombineFn,
)
from headrace.model.coder_registry import registry

# -- ApproximateQuantiles: the combine fn ---------------------------------------------------------

SCRAMBLED = [(i * 7919) % 10007 for i in range(10000)]


def test_sizing_follows_munro_paterson_and_meets_both_constraints() -> None:
    """b and k from (epsilon, N) as Beam sizes them; (b-2)2^(b-2) + 1/2 <= eN and k 2^(b-1) >= N
    (the paper's two constraints)."""
    assert ApproximateQuantilesCombineFn.create(5)._spec.num_buffers == 25
    assert ApproximateQuantilesCombineFn.create(5)._spec.buffer_size == 60
    fn = ApproximateQuantilesCombineFn.create(10, epsilon=0.01, max_num_elements=10**6)
    assert (fn._spec.num_buffers, fn._spec.buffer_size) == (11, 977)
    for eps in (0.1, 0.03, 0.005, 0.001):
        for n in (10**3, 10**5, 10**8):
            spec = ApproximateQuantilesCombineFn.create(10, eps, n)._spec
            b, k = spec.num_buffers, spec.buffer_size
            assert (b - 2) * (1 << (b - 2)) + 0.5 <= eps * n or b == 2
            assert k * (1 << (b - 1)) >= n


def test_exact_order_statistics_without_collapse() -> None:
    fn = ApproximateQuantilesCombineFn.create(5)
    data = list(range(101))
    random.Random(3).shuffle(data)
    assert fn.apply(data) == [0, 25, 50, 75, 100]
    assert ApproximateQuantilesCombineFn.create(5, reverse=True).apply(data) == [100, 75, 50, 25, 0]
    assert fn.apply([389]) == [389] * 5
    assert fn.apply([]) == []
    assert ApproximateQuantilesCombineFn.create(2).apply([5, 1, 9]) == [1, 9]


def test_collapsed_buffers_give_beams_picks() -> None:
    """Input large enough for several collapses (with the alternating rounding of even
    weights): Beam 2.77 gives exactly these lists."""
    fn = ApproximateQuantilesCombineFn.create(7, epsilon=0.05, max_num_elements=2000)
    assert (fn._spec.num_buffers, fn._spec.buffer_size) == (6, 63)
    assert fn.apply(SCRAMBLED) == [0, 1710, 3339, 5041, 6678, 8380, 10006]

    weighted = ApproximateQuantilesCombineFn.create(
        5, epsilon=0.05, max_num_elements=500, weighted=True
    )
    a, b = weighted.create_accumulator(), weighted.create_accumulator()
    for i, x in enumerate(SCRAMBLED[:3000]):
        if i % 2:
            a = weighted.add_input(a, (x, 1 + i % 3))
        else:
            b = weighted.add_input(b, (x, 0.5))
    merged = weighted.merge_accumulators([a, b])
    assert weighted.extract_output(merged) == [0, 2914, 5051, 7687, 10006]

    by_length = ApproximateQuantilesCombineFn.create(4, key=len, reverse=True)
    words = ["a" * (i % 13) + str(i) for i in range(200)]
    assert by_length.apply(words) == ["aaaaaaaaaaaa103", "aaaaaaaaa9", "aaaa82", "0"]


def test_weighted_quantiles_count_weights() -> None:
    """Beam's own docstring claims [0, 2, 5, 7, 100] for this input; Beam 2.77 computes
    [0, 2, 4, 7, 100], which is what headrace matches."""
    fn = ApproximateQuantilesCombineFn.create(5, weighted=True)
    assert fn.apply([(i, 1 if i < 10 else 1e-5) for i in range(101)]) == [0, 2, 4, 7, 100]
    # Every weight on one value: all the inner quantiles are that value.
    heavy = [(i, 1000.0 if i == 42 else 1.0) for i in range(100)]
    assert fn.apply(heavy)[1:-1] == [42, 42, 42]


def test_rank_error_stays_within_epsilon_after_merging_many_accumulators() -> None:
    eps, n = 0.01, 1000
    fn = ApproximateQuantilesCombineFn.create(5, eps, n)
    data = list(range(n))
    random.Random(7).shuffle(data)
    accumulators = []
    for start in range(0, n, 10):
        acc = fn.create_accumulator()
        for x in data[start : start + 10]:
            acc = fn.add_input(acc, x)
        accumulators.append(acc)
    result = fn.extract_output(fn.merge_accumulators(accumulators))
    for got, exact in zip(result, [0, 249.75, 499.5, 749.25, 999], strict=True):
        assert abs(got - exact) <= eps * n


def test_batched_inputs_equal_unbatched_ones() -> None:
    values = [(j * 37) % 211 for j in range(500)]
    weights = [1 + j % 4 for j in range(500)]
    plain = ApproximateQuantilesCombineFn.create(9)
    batched = ApproximateQuantilesCombineFn.create(9, input_batched=True)
    batches = [values[i : i + 23] for i in range(0, 500, 23)] + [[]]
    assert batched.apply(batches) == plain.apply(values)
    w_plain = ApproximateQuantilesCombineFn.create(9, weighted=True)
    w_batched = ApproximateQuantilesCombineFn.create(9, weighted=True, input_batched=True)
    w_batches = [(values[i : i + 23], weights[i : i + 23]) for i in range(0, 500, 23)]
    assert w_batched.apply(w_batches) == w_plain.apply(list(zip(values, weights, strict=True)))


def test_extract_output_leaves_the_accumulator_usable() -> None:
    fn = ApproximateQuantilesCombineFn.create(3)
    acc = fn.create_accumulator()
    for x in range(1, 8):
        acc = fn.add_input(acc, x)
    assert fn.extract_output(acc) == fn.extract_output(acc) == [1, 4, 7]
    acc = fn.add_input(acc, 100)
    assert fn.extract_output(acc) == [1, 4, 100]
    copy = pickle.loads(pickle.dumps(acc))
    assert fn.extract_output(copy) == [1, 4, 100]


def test_quantiles_refuse_bad_arguments_and_inputs() -> None:
    with pytest.raises(ValueError, match="num_quantiles >= 2"):
        beam.ApproximateQuantiles.Globally(1)
    fn = ApproximateQuantilesCombineFn.create(3, weighted=True)
    with pytest.raises(TypeError, match=r"\(value, weight\) pairs, got 5"):
        fn.add_input(fn.create_accumulator(), 5)
    batched = ApproximateQuantilesCombineFn.create(3, weighted=True, input_batched=True)
    with pytest.raises(ValueError, match="2 values but 1 weights"):
        batched.add_input(batched.create_accumulator(), ([1, 2], [1.0]))


# -- ApproximateQuantiles: the transforms ---------------------------------------------------------


def test_quantiles_globally_and_per_key_in_a_pipeline(make_pipeline) -> None:
    with make_pipeline() as p:
        numbers = p | "Numbers" >> beam.Create(list(range(1001)))
        quartiles = numbers | "Quartiles" >> beam.ApproximateQuantiles.Globally(5)
        assert_that(quartiles, equal_to([[0, 250, 500, 750, 1000]]), label="CheckQuartiles")

        pairs = p | "Pairs" >> beam.Create([("a", 1), ("a", 2), ("a", 3), ("b", 1), ("b", 10)])
        ranges = pairs | "Ranges" >> beam.ApproximateQuantiles.PerKey(2, reverse=True)
        assert_that(ranges, equal_to([("a", [3, 1]), ("b", [10, 1])]), label="CheckRanges")

        words = p | "Words" >> beam.Create([("k", "a" * n) for n in (3, 1, 4, 1, 5)])
        by_length = words | "ByLength" >> beam.ApproximateQuantiles.PerKey(3, key=len)
        assert_that(by_length, equal_to([("k", ["a", "aaa", "aaaaa"])]), label="CheckByLength")


def test_weighted_batched_quantiles_in_a_pipeline(make_pipeline) -> None:
    batches = [([i * 10 + j for j in range(10)], [float(i)] * 10) for i in range(20)]
    with make_pipeline() as p:
        result = (
            p
            | beam.Create(batches)
            | beam.ApproximateQuantiles.Globally(3, weighted=True, input_batched=True)
        )
        fn = ApproximateQuantilesCombineFn.create(3, weighted=True, input_batched=True)
        assert_that(result, equal_to([fn.apply(batches)]))


# -- ApproximateUnique ----------------------------------------------------------------------------


def test_sample_size_from_size_or_error() -> None:
    parse = beam.ApproximateUnique.parse_input_params
    assert parse(size=16) == 16
    assert [parse(error=e) for e in (0.5, 0.2, 0.05, 0.01)] == [16, 100, 1600, 40000]
    cases = [
        ({"size": 10}, beam.ApproximateUnique._INPUT_SIZE_ERR_MSG % 10),
        ({"size": 100.0}, beam.ApproximateUnique._INPUT_SIZE_ERR_MSG % 100.0),
        ({"error": 0.6}, beam.ApproximateUnique._INPUT_ERROR_ERR_MSG % 0.6),
        ({}, beam.ApproximateUnique._NO_VALUE_ERR_MSG),
        ({"size": 30, "error": 0.2}, beam.ApproximateUnique._MULTI_VALUE_ERR_MSG % (30, 0.2)),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError) as info:
            beam.ApproximateUnique.Globally(**kwargs)
        assert info.value.args[0] == message
    assert "size = 10" in beam.ApproximateUnique._INPUT_SIZE_ERR_MSG % 10


def test_counts_are_exact_below_the_sample_size() -> None:
    fn = ApproximateUniqueCombineFn(50, registry.get_coder(int))
    assert fn.apply([10] * 50 + [20] * 50 + list(range(30))) == 30
    assert fn.apply([]) == 0


@pytest.mark.parametrize("size", [16, 64, 400])
def test_estimates_stay_within_the_promised_error(size: int) -> None:
    """The relative error is about 2 / sqrt(size); check it over several populations (hashing is
    deterministic, so this is not a random test)."""
    fn = ApproximateUniqueCombineFn(size, registry.get_coder(str))
    for distinct in (size + 1, 1000, 20000):
        values = [f"v{i % distinct}" for i in range(distinct * 2)]
        estimate = fn.apply(values)
        assert abs(estimate - distinct) / distinct <= 2 / math.sqrt(size), (distinct, estimate)


def test_merging_samples_equals_one_sample() -> None:
    fn = ApproximateUniqueCombineFn(32, registry.get_coder(int))
    values = list(range(5000))
    parts = []
    for start in range(0, 5000, 700):
        acc = fn.create_accumulator()
        for v in values[start : start + 700]:
            acc = fn.add_input(acc, v)
        parts.append(pickle.loads(pickle.dumps(acc)))
    assert fn.extract_output(fn.merge_accumulators(parts)) == fn.apply(values)


def test_unique_needs_a_deterministic_encoding() -> None:
    with pytest.raises(ValueError, match='The key coder "Base64PickleCoder" for Approx'):
        ApproximateUniqueCombineFn(30, coders.Base64PickleCoder())
    fn = ApproximateUniqueCombineFn(30, coders.FloatCoder())
    with pytest.raises(RuntimeError, match="Runtime exception.*cannot encode 'a'"):
        fn.add_input(fn.create_accumulator(), "a")
    # The default coder's deterministic variant: equal dicts count once, objects are refused.
    default = ApproximateUniqueCombineFn(30, registry.get_coder(object))
    assert default.apply([{"a": 1, "b": 2}, {"b": 2, "a": 1}, {"a": 1}]) == 2

    class Opaque:
        pass

    with pytest.raises(RuntimeError, match="type test_unique_needs.*Opaque would be pickled"):
        default.apply([Opaque()])


def test_unique_globally_and_per_key_in_a_pipeline(make_pipeline) -> None:
    pairs = [(k, v) for k in range(1, 4) for v in range(k * 10)] * 2
    with make_pipeline() as p:
        per_key = p | "Pairs" >> beam.Create(pairs) | beam.ApproximateUnique.PerKey(size=64)
        assert_that(per_key, equal_to([(1, 10), (2, 20), (3, 30)]), label="CheckPerKey")
        estimate = (
            p
            | "Many" >> beam.Create(list(range(3000)))
            | beam.ApproximateUnique.Globally(error=0.1)
            | beam.Map(lambda n: abs(n - 3000) / 3000 <= 0.1)
        )
        assert_that(estimate, equal_to([True]), label="CheckGlobal")
