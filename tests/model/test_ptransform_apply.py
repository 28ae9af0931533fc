"""Applying transforms: eager application to plain data, with_outputs unpacking, and
PTransform subclasses that skip ``super().__init__()``."""

from __future__ import annotations

import pytest

import headrace.beam as beam
from headrace.model.pipeline import Pipeline
from headrace.testing.util import assert_that, equal_to


class SplitParity(beam.DoFn):
    def process(self, x):
        yield beam.pvalue.TaggedOutput("odd", x) if x % 2 else x


class AddN(beam.PTransform):
    """A composite whose __init__ does not call super().__init__() (Beam allows it)."""

    def __init__(self, n):
        self.n = n

    def expand(self, pcoll):
        return pcoll | beam.Map(lambda x, n: x + n, self.n)


def test_plain_list_in_gives_a_list_out() -> None:
    """Beam's eager mode (``PTransform.__ror__`` in apache_beam/transforms/ptransform.py; the
    notebooks and ``snippets_test`` use ``[1, 2] | beam.Map(f)``): a list in, a list out."""
    assert [1, 2, 3] | beam.Map(lambda x: x * 2) == [2, 4, 6]
    assert [] | beam.Map(lambda x: x) == []
    assert sorted(["b", "a", "b"] | beam.combiners.Count.PerElement()) == [("a", 1), ("b", 2)]


def test_eager_chains_and_labels() -> None:
    out = [("a", 1), ("a", 2), ("b", 3)] | "Group" >> beam.GroupByKey()
    assert sorted((k, sorted(v)) for k, v in out) == [("a", [1, 2]), ("b", [3])]
    assert [1, 2, 3] | beam.CombineGlobally(sum) == [6]


def test_eager_tuple_of_lists_is_several_inputs() -> None:
    assert sorted(([1, 2], [3]) | beam.Flatten()) == [1, 2, 3]


def test_a_list_of_pcollections_is_not_plain_data() -> None:
    with Pipeline() as p:
        a = p | "A" >> beam.Create([1])
        b = p | "B" >> beam.Create([2])
        assert_that([a, b] | beam.Flatten(), equal_to([1, 2]))


def test_eager_multi_output() -> None:
    out = [1, 2, 3] | beam.ParDo(SplitParity()).with_outputs("odd", main="even")
    assert (out.even, sorted(out.odd), out[None]) == ([2], [1, 3], [2])
    evens, odds = out
    assert (evens, sorted(odds)) == ([2], [1, 3])


def test_with_outputs_without_main_unpacks_only_the_declared_tags() -> None:
    """Beam's ``DoOutputsTuple.__iter__`` (apache_beam/pvalue.py) yields the main output only
    when ``main=`` is given: ``odd, = ... .with_outputs('odd')``."""
    with Pipeline() as p:
        pc = p | beam.Create([1, 2, 3])
        (odd,) = pc | "NoMain" >> beam.ParDo(SplitParity()).with_outputs("odd")
        assert_that(odd, equal_to([1, 3]), label="Odd")
        tagged = pc | "NoMain2" >> beam.ParDo(SplitParity()).with_outputs("odd")
        assert_that(tagged[None], equal_to([2]), label="MainByNone")
        even, odd2 = pc | "WithMain" >> beam.ParDo(SplitParity()).with_outputs("odd", main="e")
        assert_that(even, equal_to([2]), label="Even")
        assert_that(odd2, equal_to([1, 3]), label="Odd2")


def test_ptransform_subclass_without_super_init() -> None:
    """Beam's ``ptransform_test`` applies composites that never call ``super().__init__()``."""
    t = AddN(5)
    assert t.label == "AddN"
    with Pipeline() as p:
        assert_that(p | beam.Create([1]) | t, equal_to([6]))
        assert_that(p | "Two" >> beam.Create([1]) | "Named" >> AddN(1), equal_to([2]), label="N")
    assert [1] | AddN(2) == [3]


def test_empty_tuple_still_needs_a_pipeline() -> None:
    with pytest.raises(ValueError, match="pass pipeline=p"):
        _ = () | beam.Flatten()


def test_pardo_of_a_plain_function_is_a_flatmap() -> None:
    """Beam's ParDo wraps a callable as a DoFn whose process is the function (ptransform_test
    ``test_group_by_key_*_special_types`` use ``beam.ParDo(generate)``)."""

    def generate(x, ts=beam.DoFn.TimestampParam):
        yield x
        yield x * 10

    with Pipeline() as p:
        assert_that(p | beam.Create([1]) | beam.ParDo(generate), equal_to([1, 10]))
    with pytest.raises(TypeError, match="DoFn or a function"):
        beam.ParDo(3)


def test_repr_and_resource_hints() -> None:
    """Beam's PTransform repr is ``<Name(PTransform) label=[label]>``."""
    assert repr(beam.PTransform()) == "<PTransform(PTransform) label=[PTransform]>"
    t = beam.Map(str)
    assert t.with_resource_hints(min_ram="1GB") is t


def test_partition_accepts_numpy_integers_and_refuses_bools() -> None:
    """Beam's ``ApplyPartitionFnFn``: any numbers.Integral but bool (core_test
    test_partition_with_numpy_integers / test_partition_with_bools)."""
    import numpy as np

    with Pipeline() as p:
        low, high = p | beam.Create([1, 5]) | beam.Partition(lambda x, n: np.int64(x > 2), 2)
        assert_that(low, equal_to([1]), label="Low")
        assert_that(high, equal_to([5]), label="High")
    q = Pipeline()
    _ = q | beam.Create([1]) | beam.Partition(lambda x, n: True, 2)
    with pytest.raises(ValueError, match="PartitionFn yielded a 'bool'"):
        q.run().wait_until_finish()


def test_flatmap_without_a_function_flattens() -> None:
    """Beam's ``FlatMap(fn=identity)`` (core_test FlatMapTest.test_default)."""
    assert sorted([[1, 2], [3]] | beam.FlatMap()) == [1, 2, 3]
    with pytest.raises(TypeError, match="Map needs a callable"):
        beam.Map()
