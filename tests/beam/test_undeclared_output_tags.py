"""Undeclared output tags (Beam: apache_beam/pvalue.py ``DoOutputsTuple.__getitem__``;
``with_outputs()`` without tags allows unknown tags, as do the dead-letter outputs of
``with_exception_handling``). Reading such a tag adds that output; outputs to tags that are
never read are dropped. ptransform_test ``test_undeclared_outputs``/``test_multiple_empty_outputs``.
"""

from __future__ import annotations

from typing import Any

import pytest

import headrace.beam as beam
from headrace.beam import pvalue
from headrace.beam.testing.util import assert_that, equal_to


def _classify(x: int) -> list[Any]:
    return [
        x,
        pvalue.TaggedOutput("even" if x % 2 == 0 else "odd", x),
        pvalue.TaggedOutput("extra", x),
    ]


def test_tags_read_after_with_outputs_without_tags() -> None:
    with beam.Pipeline() as p:
        results = p | beam.Create([1, 2, 3, 4]) | beam.FlatMap(_classify).with_outputs()
        assert_that(results[None], equal_to([1, 2, 3, 4]), label="Main")
        assert_that(results.odd, equal_to([1, 3]), label="Odd")
        assert_that(results["even"], equal_to([2, 4]), label="Even")
        # 'extra' is never read: its outputs are dropped, not an error


def test_a_read_tag_that_gets_no_output_is_empty() -> None:
    with beam.Pipeline() as p:
        results = p | beam.Create([1, 3]) | beam.FlatMap(_classify).with_outputs()
        assert_that(results.even, equal_to([]), label="Even")
        assert_that(results.odd, equal_to([1, 3]), label="Odd")


def test_dead_letter_outputs_allow_tags_of_the_dofn() -> None:
    def split(x: int) -> Any:
        if x < 0:
            raise ValueError(x)
        return pvalue.TaggedOutput("even" if x % 2 == 0 else "odd", x)

    with beam.Pipeline() as p:
        results = p | beam.Create([1, -1, 2, 3]) | beam.Map(split).with_exception_handling()
        assert_that(results.even, equal_to([2]), label="Even")
        assert_that(results.odd, equal_to([1, 3]), label="Odd")
        assert_that(results.bad | beam.Keys(), equal_to([-1]), label="Bad")
        good, bad = results  # unpacking still gives the declared outputs only
        assert good is results.good


def test_declared_tags_still_refuse_unknown_ones() -> None:
    p = beam.Pipeline()
    results = p | beam.Create([1]) | beam.FlatMap(_classify).with_outputs("odd", main="m")
    with pytest.raises(AttributeError, match="no output tagged 'even'"):
        _ = results.even
