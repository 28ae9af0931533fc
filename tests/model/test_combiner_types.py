# ruff: noqa: UP006 - the element types are the typing forms, as Beam writes them
"""Element types of combiner outputs, as Beam's hints give them (apache_beam/transforms/
combiners.py, stats.py, core.py): downstream type checks see them, and a wrong use fails when
the pipeline is built instead of at run time."""

from __future__ import annotations

import typing

import pytest

import headrace.beam as beam
from headrace.beam.transforms import combiners as combine
from headrace.beam.typehints import TypeCheckError, with_input_types, with_output_types
from headrace.model.pipeline import Pipeline


@pytest.fixture
def ints():
    p = Pipeline()
    return p | beam.Create(range(5)).with_output_types(int)


@pytest.fixture
def pairs():
    p = Pipeline()
    return p | beam.Create([(True, 1)]).with_output_types(typing.Tuple[bool, int])


def test_global_combiners(ints) -> None:
    assert (ints | "Count" >> combine.Count.Globally()).element_type is int
    assert (ints | "Mean" >> combine.Mean.Globally()).element_type is float
    assert (ints | "Top" >> combine.Top.Of(2)).element_type == typing.List[int]
    assert (ints | "Sample" >> combine.Sample.FixedSizeGlobally(2)).element_type == typing.List[int]
    assert (ints | "ToList" >> combine.ToList()).element_type == typing.List[int]
    assert (ints | "ToSet" >> combine.ToSet()).element_type == typing.Set[int]
    assert (ints | "Each" >> combine.Count.PerElement()).element_type == typing.Tuple[int, int]
    quantiles = ints | "Q" >> beam.ApproximateQuantiles.Globally(3)
    assert quantiles.element_type == typing.List[int]
    assert (ints | "U" >> beam.ApproximateUnique.Globally(size=16)).element_type is int


def test_per_key_combiners_keep_the_key_type(pairs) -> None:
    assert (pairs | "Count" >> combine.Count.PerKey()).element_type == typing.Tuple[bool, int]
    assert (pairs | "Mean" >> combine.Mean.PerKey()).element_type == typing.Tuple[bool, float]
    top = pairs | "Top" >> combine.Top.PerKey(1)
    assert top.element_type == typing.Tuple[bool, typing.List[int]]
    assert (pairs | "ToDict" >> combine.ToDict()).element_type == typing.Dict[bool, int]
    quantiles = pairs | "Q" >> beam.ApproximateQuantiles.PerKey(2)
    assert quantiles.element_type == typing.Tuple[bool, typing.List[int]]
    unique = pairs | "U" >> beam.ApproximateUnique.PerKey(size=16)
    assert unique.element_type == typing.Tuple[bool, int]


def test_combine_transforms_take_the_combine_fns_output_hint(ints, pairs) -> None:
    @with_output_types(int)
    @with_input_types(values=typing.Iterable[int])
    def total(values):
        return sum(values)

    assert (ints | "G" >> beam.CombineGlobally(total)).element_type is int
    assert (ints | "Count" >> beam.CombineGlobally(combine.CountCombineFn())).element_type is int
    per_key = pairs | "K" >> beam.CombinePerKey(total)
    assert per_key.element_type == typing.Tuple[bool, int]
    # No hint, no type (rather than a guess).
    assert (ints | "Plain" >> beam.CombineGlobally(sum)).element_type is None
    overridden = ints | "Str" >> beam.CombineGlobally(sum).with_output_types(str)
    assert overridden.element_type is str


def test_a_mistyped_consumer_fails_at_construction(ints) -> None:
    counted = ints | combine.Count.Globally()
    with pytest.raises(TypeCheckError, match="requires PCollections of type"):
        counted | beam.Map(str.upper).with_input_types(str)


def test_typed_outputs_still_run() -> None:
    from headrace.beam.testing.util import assert_that, equal_to

    with Pipeline() as p:
        pairs = p | beam.Create([("a", 1), ("a", 3), ("b", 2)]).with_output_types(
            typing.Tuple[str, int]
        )
        means = pairs | combine.Mean.PerKey()
        assert_that(means, equal_to([("a", 2.0), ("b", 2.0)]))


def test_combine_fn_input_hints_are_checked_when_the_pipeline_is_built() -> None:
    """Beam's rules (apache_beam/transforms/core.py, ptransform.py): a per-key combine checks
    its input against Tuple[K, <the CombineFn's input hint>] and reports it as for a ParDo; a
    global combine keys its input with None first, so the check names its CombinePerKey."""
    p = Pipeline()
    words = p | "Words" >> beam.Create(["a"]).with_output_types(str)
    with pytest.raises(TypeCheckError) as e:
        words | "Mean" >> combine.Mean.Globally()
    message = str(e.value)
    assert "'Mean/CombineGlobally(MeanCombineFn)/CombinePerKey' requires" in message
    assert "Tuple[TypeVariable[K], <class 'Number'>]" in message
    assert "applied to a PCollection of type 'Tuple[None, <class 'str'>]'" in message

    ints = p | "Ints" >> beam.Create([1, 2]).with_output_types(int)
    with pytest.raises(TypeCheckError, match="^Input type hint violation at CountInts: expected"):
        ints | "CountInts" >> combine.Count.PerKey()
    with pytest.raises(TypeCheckError, match="requires.*Tuple\\[TypeVariable\\[T\\]"):
        ints | "Latest" >> beam.CombineGlobally(combine.LatestCombineFn())

    @with_input_types(a=int)
    def not_over_iterables(a):
        return a

    with pytest.raises(TypeCheckError) as e:
        ints | "Bad" >> beam.CombineGlobally(not_over_iterables)
    assert str(e.value) == (
        "All functions for a Combine PTransform must accept a single argument compatible with: "
        "Iterable[Any]. Instead a function with input type: <class 'int'> was received."
    )
    # Numbers of any kind are fine for Mean, and the check can be turned off.
    floats = p | "Floats" >> beam.Create([1.5]).with_output_types(float)
    assert (floats | "MeanF" >> combine.Mean.Globally()).element_type is float
    q = Pipeline()
    q.options.view_as(beam.options.pipeline_options.TypeOptions).pipeline_type_check = False
    q | beam.Create(["a"]).with_output_types(str) | combine.Mean.Globally()


def test_runtime_type_check_covers_combine_fns(make_pipeline) -> None:
    """With runtime_type_check, a CombineFn's inputs and results are checked against its hints
    while the pipeline runs (Beam's TypeCheckCombineFn), naming the combine step."""
    from headrace.beam.options.pipeline_options import TypeOptions

    def checked_pipeline():
        p = make_pipeline()
        options = p.options.view_as(TypeOptions)
        options.pipeline_type_check = False
        options.runtime_type_check = True
        return p

    p = checked_pipeline()
    _ = p | beam.Create(["t", "e"]).with_output_types(str) | "Mean" >> combine.Mean.Globally()
    with pytest.raises(Exception, match="Runtime type violation detected within Mean/"):
        p.run().wait_until_finish()

    @with_output_types(int)
    @with_input_types(values=typing.Iterable[int])
    def product_as_text(values):
        out = 1
        for v in values:
            out *= int(v)
        return str(out)

    p = checked_pipeline()
    _ = p | beam.Create([5, 5]) | "Mul" >> beam.CombineGlobally(product_as_text)
    with pytest.raises(
        Exception,
        match="within Mul/CombinePerKey: Type-hint for return type violated. Expected an "
        "instance of <class 'int'>, instead found 25, an instance of <class 'str'>",
    ):
        p.run().wait_until_finish()

    from headrace.beam.testing.util import assert_that, equal_to

    with checked_pipeline() as p:
        means = p | beam.Create([("a", 1), ("a", 2)]) | combine.Mean.PerKey()
        assert_that(means, equal_to([("a", 1.5)]))


def test_typed_per_key_outputs_feed_co_group_by_key() -> None:
    """A combiner's Tuple[K, V] output is a keyed input for CoGroupByKey (Beam's tf-idf example
    joins Count.PerElement output); a typed input that is not a pair is still refused."""
    from headrace.beam.testing.util import assert_that, equal_to

    with Pipeline() as p:
        words = p | "Words" >> beam.Create(["a", "b", "a"])
        counts = words | "Counts" >> combine.Count.PerElement()
        totals = words | "Keyed" >> beam.Map(lambda w: (w, 1)) | "Sum" >> beam.CombinePerKey(sum)
        joined = {"counts": counts, "totals": totals} | beam.CoGroupByKey()
        assert_that(
            joined | beam.MapTuple(lambda k, v: (k, list(v["counts"]), list(v["totals"]))),
            equal_to([("a", [2], [2]), ("b", [1], [1])]),
        )
    q = Pipeline()
    ints = q | beam.Create([1]).with_output_types(int)
    with pytest.raises(ValueError, match="needs \\(key, value\\) pairs"):
        {"ints": ints} | beam.CoGroupByKey()


def test_typed_per_key_outputs_feed_stateful_dofns() -> None:
    """A stateful DoFn needs keyed input; a combiner's Tuple[K, V] output is keyed."""
    from headrace.beam.transforms.userstate import ReadModifyWriteStateSpec

    class Remember(beam.DoFn):
        LAST = ReadModifyWriteStateSpec("last", coders_any())

        def process(self, element, last=beam.DoFn.StateParam(LAST)):
            last.write(element[1])
            yield element

    p = Pipeline()
    counts = p | beam.Create(["a", "b"]) | combine.Count.PerElement()
    assert counts.element_type == typing.Tuple[str, int]
    counts | beam.ParDo(Remember())  # accepted at construction


def coders_any():
    from headrace.beam.coders import PickleCoder

    return PickleCoder()


def test_pardo_of_a_function_emits_the_elements_of_its_output_hint(ints) -> None:
    """ParDo(function) treats the function's result as an iterable of outputs, so its output
    hint List[int] gives int elements (Beam strips the iterable for a wrapped callable)."""

    @with_output_types(list[int])
    @with_input_types(n=int)
    def range_from_zero(n):
        return list(range(n + 1))

    ranged = ints | "Total" >> beam.CombineGlobally(sum).with_output_types(int)
    assert (ranged | "Range" >> beam.ParDo(range_from_zero)).element_type is int
