"""``GroupBy`` / ``aggregate_field`` and ``Select``, as Beam's ``transforms/core.py`` has them.

Cases after Beam's ``transforms/ptransform_test.py`` (``GroupByTest``-style usage) and the
programming guide's schema aggregations.
"""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

import headrace.beam as beam
from headrace.model.row import Row
from headrace.testing.util import assert_that, equal_to

ROWS = [Row(user="a", team="x", n=1), Row(user="a", team="x", n=2), Row(user="b", team="y", n=5)]


def test_group_by_one_field_keys_by_its_value():
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create(ROWS)
            | beam.GroupBy("user")
            | beam.MapTuple(lambda k, vs: (k, sorted(r.n for r in vs)))
        )
        assert_that(out, equal_to([("a", [1, 2]), ("b", [5])]))


def test_group_by_several_fields_keys_by_a_named_tuple():
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create(ROWS)
            | beam.GroupBy("user", big=lambda r: r.n > 1)
            | beam.MapTuple(lambda k, vs: (k.user, k.big, len(list(vs))))
        )
        assert_that(out, equal_to([("a", False, 1), ("a", True, 1), ("b", True, 1)]))


def test_aggregate_field_gives_result_tuples_with_key_and_dest_fields():
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create(ROWS)
            | beam.GroupBy("team")
            .aggregate_field("n", sum, "total")
            .aggregate_field(lambda r: r.n, max, "top")
            | beam.Map(lambda r: (r.team, r.total, r.top, type(r).__name__))
        )
        assert_that(out, equal_to([("x", 3, 2, "Result"), ("y", 5, 5, "Result")]))


def test_select_makes_rows_and_results_pickle():
    with beam.Pipeline() as p:
        out = p | beam.Create(ROWS[:1]) | beam.Select("user", lambda r: r.n + 1, t="team")
        assert_that(out, equal_to([Row(user="a", arg01=2, t="x")]))
    with pytest.raises(TypeError, match="callable or a string"):
        beam.Select(3)
    from headrace.model.transforms.schemas import _named_tuple

    result = _named_tuple("Result", ("team", "total"))("x", 3)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        assert pickle.loads(dumps(result)) == result
