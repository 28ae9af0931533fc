"""``DoFn.SideInputParam`` and extra arguments after runner-filled parameters.

Beam (apache_beam/runners/common.py, how a DoFn's arguments are placed) gives a ParDo's extra
positional arguments, in order, to the parameters after the element that are not runner values
such as ``TimestampParam``; a parameter defaulting to ``DoFn.SideInputParam`` takes one of them
(Beam's sideinputs_test uses ``process(self, elm=ElementParam, ts=TimestampParam,
side=SideInputParam)``).
"""

from __future__ import annotations

from typing import Any

import pytest

import headrace.beam as beam
from headrace.beam import pvalue
from headrace.beam.testing.util import assert_that, equal_to


class Record(beam.DoFn):
    def process(
        self,
        elm: Any = beam.DoFn.ElementParam,
        ts: Any = beam.DoFn.TimestampParam,
        side: Any = beam.DoFn.SideInputParam,
    ) -> Any:
        yield (elm, float(ts), sorted(side))


def test_side_input_param_after_a_timestamp_param_gets_the_view() -> None:
    with beam.Pipeline() as p:
        side = pvalue.AsList(p | "Side" >> beam.Create([2, 1]))
        out = p | beam.Create([beam.window.TimestampedValue("a", 3)]) | beam.ParDo(Record(), side)
        assert_that(out, equal_to([("a", 3.0, [1, 2])]))


def test_plain_extra_argument_after_a_window_param() -> None:
    def tag(x: Any, w: Any = beam.DoFn.WindowParam, suffix: str = "") -> str:
        return f"{x}{suffix}:{type(w).__name__}"

    with beam.Pipeline() as p:
        out = p | beam.Create(["a"]) | beam.Map(tag, "!")
        assert_that(out, equal_to(["a!:GlobalWindow"]))


def test_side_input_param_by_keyword() -> None:
    with beam.Pipeline() as p:
        side = pvalue.AsList(p | "Side" >> beam.Create([5]))
        out = p | beam.Create(["b"]) | beam.ParDo(Record(), side=side)
        assert_that(out, equal_to([("b", float(beam.utils.timestamp.MIN_TIMESTAMP), [5])]))


def test_missing_side_input_for_the_param_is_refused_naming_it() -> None:
    p = beam.Pipeline()
    with pytest.raises(ValueError, match="'side' is a DoFn.SideInputParam"):
        _ = p | beam.Create([1]) | "Rec" >> beam.ParDo(Record())
