"""Streaming semantics pinned against what Apache Beam 2.77 does with the same pipelines.

- A grouping's output carries the continuation of its input's trigger: Beam's
  ``GroupByKey.get_windowing`` (apache_beam/transforms/core.py) gives the grouped output the
  trigger's ``get_continuation_trigger()``, so after ``Repeatedly(AfterCount(3))`` a second
  grouping fires on every pane it receives (Beam's direct runner printed three panes of one group
  each; headrace used to apply ``AfterCount(3)`` again and emitted one pane of three groups).
- A processing-time trigger still fires a window that expired meanwhile (snippets_test).
- Each output of a TestStream has its own watermark (test_stream_test).
- Sliding-window side inputs and one method serving two timers (sideinputs_test, userstate_test).
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


def test_each_output_of_a_test_stream_has_its_own_watermark() -> None:
    """Beam's test_stream_test test_multiple_outputs_with_watermark_advancement: the 'numbers'
    output's watermark at 20 does not make the 'letters' (at 5) late; each output's window gets
    its early pane and its empty on-time pane (headrace used one watermark for all outputs and
    dropped the letters as late)."""
    from headrace.beam.transforms.window import FixedWindows, TimestampedValue

    stream = (
        TestStream()
        .advance_watermark_to(0, tag="letters")
        .advance_watermark_to(0, tag="numbers")
        .advance_watermark_to(20, tag="numbers")
        .advance_watermark_to(5, tag="letters")
        .add_elements([TimestampedValue(c, t) for c, t in (("a", 6), ("b", 7))], tag="letters")
        .advance_watermark_to(10, tag="letters")
        .add_elements([TimestampedValue("1", 21)], tag="numbers")
        .advance_watermark_to(30, tag="numbers")
    )
    with beam.Pipeline(options=PipelineOptions(["--streaming"])) as p:
        main = p | stream
        for tag, window_start, values in (("letters", 0, ["a", "b"]), ("numbers", 15, ["1"])):
            grouped = (
                main[tag]
                | f"{tag} windows"
                >> beam.WindowInto(
                    FixedWindows(15),
                    trigger=trigger.AfterWatermark(early=trigger.AfterCount(1)),
                    accumulation_mode=trigger.AccumulationMode.DISCARDING,
                )
                | f"{tag} keyed" >> beam.Map(lambda x: ("k", x))
                | f"{tag} grouped" >> beam.GroupByKey()
                | f"{tag} window" >> beam.ParDo(_WithWindow())
            )
            expected = [(window_start, sorted(values)), (window_start, [])]
            assert_that(grouped, equal_to(expected), label=f"{tag} panes")


class _WithWindow(beam.DoFn):
    def process(self, kv, w=beam.DoFn.WindowParam):
        yield int(w.start), sorted(kv[1])


def test_sliding_window_side_inputs_map_each_main_window_to_itself() -> None:
    """Beam's sideinputs_test test_sliding_windows: the side window read for a main window is the
    last one Beam's default mapping assigns to the main window's end (``[-1]``), which for the
    same sliding windows is the main window itself (headrace took the first, [0, 6) for all)."""
    with beam.Pipeline() as p:
        pcoll = p | beam.Create([1, 2, 4]) | beam.Map(lambda t: window.TimestampedValue(t, t))
        main = pcoll | "WindowMain" >> beam.WindowInto(window.SlidingWindows(size=6, period=2))
        side = pcoll | "WindowSide" >> beam.WindowInto(window.SlidingWindows(size=6, period=2))
        res = main | beam.Map(lambda x, s: (x, sorted(s)), beam.pvalue.AsList(side))
        assert_that(
            res,
            equal_to(
                [(1, [1]), (1, [1, 2]), (1, [1, 2, 4]), (2, [1, 2]), (2, [1, 2, 4]), (2, [2, 4]),
                 (4, [1, 2, 4]), (4, [2, 4]), (4, [4])]
            ),
        )  # fmt: skip


def test_one_method_serves_two_timers() -> None:
    """Beam's userstate_test test_two_timers_one_function: a method under two @on_timer
    decorators fires for each timer (Beam records the bag's value twice)."""
    from headrace.beam.coders import StrUtf8Coder
    from headrace.beam.transforms.timeutil import TimeDomain
    from headrace.beam.transforms.userstate import BagStateSpec, TimerSpec, on_timer

    bag_spec = BagStateSpec("bag_state", StrUtf8Coder())
    emit = TimerSpec("emit_timer", TimeDomain.WATERMARK)
    twice = TimerSpec("clear_timer", TimeDomain.WATERMARK)

    class EmitTwice(beam.DoFn):
        def process(
            self,
            element,
            bag=beam.DoFn.StateParam(bag_spec),
            emit_timer=beam.DoFn.TimerParam(emit),
            twice_timer=beam.DoFn.TimerParam(twice),
        ):
            bag.add(element[1])
            twice_timer.set(100)
            emit_timer.set(1000)

        @on_timer(twice)
        @on_timer(emit)
        def emit_values(self, bag=beam.DoFn.StateParam(bag_spec)):
            yield from bag.read()

    stream = (
        TestStream()
        .advance_watermark_to(0)
        .add_elements([("key", "value")])
        .advance_watermark_to(100)
    )
    with beam.Pipeline(options=PipelineOptions(["--streaming"])) as p:
        out = p | stream | beam.ParDo(EmitTwice())
        assert_that(out, equal_to(["value", "value"]))
