"""FlattenWith, Tee, LogElements, Reify, WaitOn: Beam's inline composites
(apache_beam/transforms/core.py FlattenWith, util.py Tee/LogElements/Reify/WaitOn and their
tests in ptransform_test.py and util_test.py)."""

from __future__ import annotations

import logging

import pytest

import headrace.beam as beam
from headrace.model.pipeline import Pipeline
from headrace.model.window import FixedWindows, IntervalWindow, TimestampedValue
from headrace.testing.util import assert_that, equal_to


def test_flatten_with_pcollections_and_root_transforms() -> None:
    with Pipeline() as p:
        start = p | "Start" >> beam.Create(["AA", "BB"])
        out = (
            start
            | "WithPCollection" >> beam.FlattenWith(start | beam.Map(str.lower))
            | "WithPTransform" >> beam.FlattenWith(beam.Create(["x"]))
        )
        assert_that(out, equal_to(["AA", "BB", "aa", "bb", "x"]))
    with pytest.raises(TypeError, match="FlattenWith takes"):
        _ = Pipeline() | beam.Create([1]) | beam.FlattenWith(3)


def test_tee_applies_consumers_and_passes_the_input() -> None:
    with Pipeline() as p:
        out = (
            p
            | beam.Create([1, 2])
            | beam.Tee(
                lambda pc: assert_that(pc, equal_to([1, 2]), label="SideFn"),
                beam.Map(lambda x: x * 10),
            )
            | beam.Map(lambda x: x + 1)
        )
        assert_that(out, equal_to([2, 3]))


def test_log_elements_prints_and_logs(capsys, caplog) -> None:
    with Pipeline() as p:
        _ = (
            p
            | beam.Create([7])
            | beam.Map(lambda x: TimestampedValue(x, 10))
            | beam.WindowInto(FixedWindows(60))
            | beam.LogElements(prefix="> ", with_timestamp=True, with_window=True)
        )
    assert capsys.readouterr().out == (
        "> 7, timestamp='1970-01-01T00:00:10Z', window(start=1970-01-01T00:00:00Z, "
        "end=1970-01-01T00:01:00Z)\n"
    )
    with caplog.at_level(logging.INFO), Pipeline() as p:
        _ = p | beam.Create(["a"]) | beam.LogElements(level=logging.INFO, use_epoch_time=True)
    assert [r.getMessage() for r in caplog.records] == ["a"]


def test_reify_window_and_in_value() -> None:
    with Pipeline() as p:
        pc = (
            p
            | beam.Create([("k", 1)])
            | beam.Map(lambda kv: TimestampedValue(kv, 5))
            | beam.WindowInto(FixedWindows(10))
        )
        windows = pc | "W" >> beam.Reify.WindowInValue()
        assert_that(
            windows | "Fmt" >> beam.Map(lambda kv: (kv[0], kv[1][0], float(kv[1][1]), kv[1][2])),
            equal_to([("k", 1, 5.0, IntervalWindow(0, 10))]),
            label="WindowInValue",
        )
        stamped = pc | "T" >> beam.Reify.TimestampInValue()
        assert_that(
            stamped | "Fmt2" >> beam.Map(lambda kv: (kv[0], kv[1].value, float(kv[1].timestamp))),
            equal_to([("k", 1, 5.0)]),
            label="TimestampInValue",
        )


def test_wait_on_passes_elements_through() -> None:
    with Pipeline() as p:
        side = p | "Side" >> beam.Create([1, 2, 3])
        out = p | "Main" >> beam.Create(["a", "b"]) | beam.WaitOn(side)
        assert_that(out, equal_to(["a", "b"]))


def test_windowing_value_in_window_into() -> None:
    """Beam's ``transforms.core.Windowing`` (window_test imports it) given to WindowInto."""
    from headrace.beam.transforms.core import Windowing

    w = Windowing(FixedWindows(10))
    assert w == Windowing(FixedWindows(10)) and w != Windowing(FixedWindows(20))
    with Pipeline() as p:
        out = (
            p
            | beam.Create([1, 12])
            | beam.Map(lambda t: TimestampedValue(("k", t), t))
            | beam.WindowInto(w)
            | beam.GroupByKey()
            | beam.MapTuple(lambda k, vs: sorted(vs))
        )
        assert_that(out, equal_to([[1], [12]]))
