"""A grouping's output carries the continuation of its input's trigger, as in Beam.

Beam's ``GroupByKey.get_windowing`` (apache_beam/transforms/core.py) gives the grouped output
the trigger's ``get_continuation_trigger()``: after ``Repeatedly(AfterCount(3))`` a second
grouping fires on every pane it receives (``Repeatedly(AfterCount(1))``). The expected panes below
are what Apache Beam 2.77's direct runner printed for the same pipeline (three panes of one group
each); headrace used to apply ``AfterCount(3)`` again and emitted one pane of three groups.
"""

from __future__ import annotations

import headrace.beam as beam
from headrace.beam.options.pipeline_options import PipelineOptions
from headrace.beam.testing.test_stream import TestStream
from headrace.beam.testing.util import assert_that, equal_to
from headrace.beam.transforms import trigger, window
from headrace.model.trigger import (
    AfterAll,
    AfterAny,
    AfterCount,
    AfterEach,
    AfterProcessingTime,
    AfterWatermark,
    Always,
    DefaultTrigger,
    OrFinally,
    Repeatedly,
)


def test_a_second_grouping_fires_per_pane_as_in_beam() -> None:
    stream = (
        TestStream()
        .add_elements([("k", i) for i in range(3)])
        .add_elements([("k", i) for i in range(3, 6)])
        .add_elements([("k", i) for i in range(6, 9)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline(options=PipelineOptions(["--streaming"])) as p:
        sizes = (
            p
            | stream
            | beam.WindowInto(
                window.GlobalWindows(),
                trigger=trigger.Repeatedly(trigger.AfterCount(3)),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
            )
            | "G1" >> beam.GroupByKey()
            | beam.MapTuple(lambda k, vs: ("all", sorted(vs)))
            | "G2" >> beam.GroupByKey()
            | beam.MapTuple(lambda k, vs: sorted(len(v) for v in vs))
        )
        assert_that(sizes, equal_to([[3], [3], [3]]))


def test_continuation_triggers_are_beams() -> None:
    """apache_beam/transforms/trigger_test.py ContinuationTriggerTest, and Beam's
    _AfterSynchronizedProcessingTime (fires on every element, never finishes) as Always()."""
    assert AfterCount(100).get_continuation_trigger() == AfterCount(1)
    assert Repeatedly(AfterCount(5)).get_continuation_trigger() == Repeatedly(AfterCount(1))
    assert AfterAll(AfterCount(2), AfterCount(5)).get_continuation_trigger() == AfterAll(
        AfterCount(1), AfterCount(1)
    )
    assert AfterAny(AfterCount(2), AfterCount(5)).get_continuation_trigger() == AfterAny(
        AfterCount(1), AfterCount(1)
    )
    assert AfterEach(AfterCount(2), AfterCount(5)).get_continuation_trigger() == Repeatedly(
        AfterAny(AfterCount(1), AfterCount(1))
    )
    assert OrFinally(Repeatedly(AfterCount(2)), AfterCount(5)).get_continuation_trigger() == (
        OrFinally(Repeatedly(AfterCount(1)), AfterCount(1))
    )
    assert AfterWatermark(early=AfterCount(9)).get_continuation_trigger() == AfterWatermark(
        early=AfterCount(1)
    )
    assert AfterProcessingTime(10).get_continuation_trigger() == Always()
    assert DefaultTrigger().get_continuation_trigger() == DefaultTrigger()
    assert Always().get_continuation_trigger() == Always()


def test_a_processing_time_trigger_fires_after_its_window_expired() -> None:
    """Beam's snippets_test model_setting_trigger: the watermark passes the window's end before
    processing time reaches AfterProcessingTime's delay; Beam 2.77 still emits the window's
    counts when it does (its trigger driver keeps the state until the trigger fires), and so
    does headrace (it dropped them at expiry)."""
    stream = (
        TestStream()
        .advance_watermark_to(10)
        .add_elements(["a", "a", "a", "b", "b"])
        .advance_watermark_to(70)
        .advance_processing_time(600)
    )
    options = PipelineOptions(["--streaming", "--allow_unsafe_triggers"])
    with beam.Pipeline(options=options) as p:
        counts = (
            p
            | stream
            | beam.Map(lambda x: (x, 1))
            | beam.WindowInto(
                window.FixedWindows(60),
                trigger=trigger.AfterProcessingTime(600),
                accumulation_mode=trigger.AccumulationMode.DISCARDING,
            )
            | beam.GroupByKey()
            | beam.Map(lambda kv: (kv[0], sum(kv[1])))
        )
        assert_that(counts, equal_to([("a", 3), ("b", 2)]))
