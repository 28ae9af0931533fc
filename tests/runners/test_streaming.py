"""Streaming runs of the direct runner, driven by TestStream: panes, lateness, triggers, holds."""

from __future__ import annotations

import time

import pytest

import headrace.beam as beam
from headrace.beam import window
from headrace.beam.options.pipeline_options import PipelineOptions
from headrace.beam.testing.test_stream import TestStream
from headrace.beam.testing.util import assert_that, equal_to
from headrace.beam.transforms.trigger import (
    AccumulationMode,
    AfterCount,
    AfterProcessingTime,
    AfterWatermark,
    Repeatedly,
)
from headrace.model.result import PipelineState
from headrace.model.sources import UnboundedReader, UnboundedSource
from headrace.model.transforms.unbounded import ReadUnbounded
from headrace.model.userstate import (
    BagStateSpec,
    CombiningValueStateSpec,
    TimeDomain,
    TimerSpec,
    on_timer,
)

TV = window.TimestampedValue


class Panes(beam.DoFn):
    """(key, sorted values, window start, pane timing, pane index) of each grouped element."""

    def process(self, kv, w=beam.DoFn.WindowParam, p=beam.DoFn.PaneInfoParam):
        yield (kv[0], sorted(kv[1]), float(w.start), p.timing.name, p.index)


def test_default_trigger_fires_each_window_once_the_watermark_passes_it():
    stream = (
        TestStream()
        .add_elements([TV(("k", 1), 1), TV(("k", 2), 5), TV(("k", 3), 12)])
        .advance_watermark_to(10)
        .add_elements([TV(("k", 4), 14)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline() as p:
        out = p | stream | beam.WindowInto(window.FixedWindows(10)) | beam.GroupByKey()
        assert_that(
            out | beam.ParDo(Panes()),
            equal_to([("k", [1, 2], 0.0, "ON_TIME", 0), ("k", [3, 4], 10.0, "ON_TIME", 0)]),
        )


def test_late_data_is_dropped_and_counted():
    stream = (
        TestStream()
        .add_elements([TV(("k", 1), 1)])
        .advance_watermark_to(20)
        .add_elements([TV(("k", 9), 5)])  # window [0, 10) has expired: dropped
        .advance_watermark_to_infinity()
    )
    p = beam.Pipeline()
    out = p | stream | beam.WindowInto(window.FixedWindows(10)) | "Group" >> beam.GroupByKey()
    assert_that(out | beam.ParDo(Panes()), equal_to([("k", [1], 0.0, "ON_TIME", 0)]))
    result = p.run()
    assert result.wait_until_finish() == PipelineState.DONE
    dropped = result.metrics().query(
        beam.metrics.MetricsFilter().with_name("droppedDueToLateness")
    )["counters"]
    assert [(m.key.step, m.committed) for m in dropped] == [("Group", 1)]


def test_allowed_lateness_gives_late_panes():
    stream = (
        TestStream()
        .add_elements([TV(("k", 1), 1)])
        .advance_watermark_to(15)
        .add_elements([TV(("k", 2), 3)])  # late but within 10 s of allowed lateness
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline() as p:
        out = (
            p
            | stream
            | beam.WindowInto(
                window.FixedWindows(10),
                trigger=AfterWatermark(late=AfterCount(1)),
                accumulation_mode=AccumulationMode.ACCUMULATING,
                allowed_lateness=10,
            )
            | beam.GroupByKey()
        )
        assert_that(
            out | beam.ParDo(Panes()),
            equal_to([("k", [1], 0.0, "ON_TIME", 0), ("k", [1, 2], 0.0, "LATE", 1)]),
        )


def test_early_count_firings_discarding():
    """Beam emits a pane only when the trigger fires: the fifth element, pending at the end, is
    not emitted (``GeneralTriggerDriver``; Beam's leader_board test). One element per bundle:
    Beam evaluates a trigger once per bundle, headrace after every element."""
    stream = TestStream()
    for i in range(5):
        stream = stream.add_elements([TV(("k", i), i)])
    stream = stream.advance_watermark_to_infinity()
    with beam.Pipeline() as p:
        out = (
            p
            | stream
            | beam.WindowInto(
                window.GlobalWindows(),
                trigger=Repeatedly(AfterCount(2)),
                accumulation_mode=AccumulationMode.DISCARDING,
            )
            | beam.GroupByKey()
            | beam.MapTuple(lambda k, vs: sorted(vs))
        )
        assert_that(out, equal_to([[0, 1], [2, 3]]))


def test_processing_time_trigger_follows_the_test_clock():
    """3 arrives after the clock moved and the clock never passes its delay: as in Beam, the
    window expires without emitting it."""
    stream = (
        TestStream()
        .add_elements([TV(("k", 1), 1), TV(("k", 2), 2)])
        .advance_processing_time(30)
        .add_elements([TV(("k", 3), 3)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline() as p:
        out = (
            p
            | stream
            | beam.WindowInto(
                window.GlobalWindows(),
                trigger=Repeatedly(AfterProcessingTime(10)),
                accumulation_mode=AccumulationMode.DISCARDING,
            )
            | beam.GroupByKey()
            | beam.MapTuple(lambda k, vs: sorted(vs))
        )
        assert_that(out, equal_to([[1, 2]]))


def test_windowed_sums_through_two_groupings_and_a_side_input():
    stream = TestStream()
    for minute in range(3):
        stream = stream.add_elements([TV(("a", minute + 1), minute * 60 + s) for s in (1, 2)])
        stream = stream.advance_watermark_to((minute + 1) * 60)
    stream = stream.advance_watermark_to_infinity()
    with beam.Pipeline() as p:
        per_minute = (
            p
            | stream
            | beam.WindowInto(window.FixedWindows(60))
            | "PerMinute" >> beam.CombinePerKey(sum)
        )
        total = (
            per_minute
            | beam.WindowInto(window.GlobalWindows())
            | beam.Values()
            | beam.CombineGlobally(sum)
        )
        assert_that(per_minute, equal_to([("a", 2), ("a", 4), ("a", 6)]), label="minutes")
        assert_that(total, equal_to([12]), label="total")


def test_batch_pipeline_with_a_trigger_runs_through_the_same_pane_engine():
    """Beam's batch trigger driver adds all of a key's elements, then evaluates the trigger once
    (``GeneralTriggerDriver.process_elements``): Repeatedly(AfterCount(2)) over 4 elements is one
    pane of 4 (checked on Beam 2.77: 5 elements in fixed windows gave one EARLY pane of 5)."""
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create([("k", i) for i in range(4)])
            | beam.WindowInto(
                window.GlobalWindows(),
                trigger=Repeatedly(AfterCount(2)),
                accumulation_mode=AccumulationMode.DISCARDING,
            )
            | beam.GroupByKey()
            | beam.MapTuple(lambda k, vs: len(vs))
        )
        assert_that(out, equal_to([4]))


class _Endless(UnboundedSource):
    def create_reader(self, checkpoint=None):
        return _EndlessReader()


class _EndlessReader(UnboundedReader):
    def __init__(self):
        self.n = 0

    def poll(self, max_elements, timeout_s):
        self.n += 1
        return [self.n]

    def watermark_us(self):
        return self.n * 1_000_000

    def checkpoint(self):
        return self.n

    def commit(self, checkpoint):
        pass

    def is_done(self):
        return False


def test_cancel_stops_an_endless_streaming_run():
    p = beam.Pipeline(options=PipelineOptions(streaming=True))
    _ = p | ReadUnbounded(_Endless()) | beam.Map(lambda x: x * 2)
    result = p.run()
    time.sleep(0.2)
    assert result.state == PipelineState.RUNNING
    assert result.cancel() == PipelineState.CANCELLED


def test_user_error_in_streaming_names_the_transform():
    stream = TestStream().add_elements([1, 0]).advance_watermark_to_infinity()
    p = beam.Pipeline()
    _ = p | stream | "Invert" >> beam.Map(lambda x: 1 / x)
    with pytest.raises(ZeroDivisionError) as info:
        p.run().wait_until_finish()
    assert "transform 'Invert' failed on element 0" in "\n".join(info.value.__notes__)


class _BufferUntilWindowEnd(beam.DoFn):
    """Per key: buffer values in a bag, emit their sum when the window's end timer fires."""

    BUFFER = BagStateSpec("buffer")
    COUNT = CombiningValueStateSpec("count", sum)
    FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)

    def process(
        self,
        kv,
        w=beam.DoFn.WindowParam,
        buffer=beam.DoFn.StateParam(BUFFER),
        count=beam.DoFn.StateParam(COUNT),
        flush=beam.DoFn.TimerParam(FLUSH),
    ):
        buffer.add(kv[1])
        count.add(1)
        flush.set(w.max_timestamp())

    @on_timer(FLUSH)
    def on_flush(
        self,
        key=beam.DoFn.KeyParam,
        buffer=beam.DoFn.StateParam(BUFFER),
        count=beam.DoFn.StateParam(COUNT),
    ):
        yield (key, sum(buffer.read()), count.read())
        buffer.clear()
        count.clear()


@pytest.mark.parametrize("streaming", [False, True])
def test_stateful_dofn_with_bag_state_and_event_time_timer(streaming):
    events = [TV(("a", 1), 1), TV(("b", 5), 2), TV(("a", 2), 8), TV(("a", 10), 12)]
    with beam.Pipeline() as p:
        if streaming:
            source = (
                p
                | TestStream()
                .add_elements(events[:3])
                .advance_watermark_to(10)
                .add_elements(events[3:])
                .advance_watermark_to_infinity()
            )
        else:
            source = p | beam.Create(events) | beam.Map(lambda tv: tv)
        out = (
            source | beam.WindowInto(window.FixedWindows(10)) | beam.ParDo(_BufferUntilWindowEnd())
        )
        assert_that(out, equal_to([("a", 3, 2), ("b", 5, 1), ("a", 10, 1)]))


def test_stateful_dofn_on_unkeyed_input_is_refused_at_construction():
    p = beam.Pipeline()
    with pytest.raises(ValueError, match="state or timers"):
        _ = p | beam.Create([1, 2]) | beam.ParDo(_BufferUntilWindowEnd())


class _Counting(UnboundedSource):
    commits: list = []

    def __init__(self, n):
        self.n = n

    def create_reader(self, checkpoint=None):
        return _CountingReader(self.n)


class _CountingReader(UnboundedReader):
    def __init__(self, n):
        self.n, self.i = n, 0

    def poll(self, max_elements, timeout_s):
        if self.i >= self.n:
            return []
        self.i += 1
        return [TV(("k", self.i), self.i)]

    def watermark_us(self):
        return self.i * 1_000_000

    def checkpoint(self):
        return self.i

    def commit(self, checkpoint):
        _Counting.commits.append(checkpoint)

    def is_done(self):
        return self.i >= self.n


def test_unbounded_source_commits_only_what_went_all_the_way_through():
    _Counting.commits.clear()
    with beam.Pipeline(options=PipelineOptions(streaming=True)) as p:
        sums = (
            p
            | ReadUnbounded(_Counting(25))
            | beam.WindowInto(window.FixedWindows(10))
            | beam.CombinePerKey(sum)
        )
        assert_that(sums, equal_to([("k", 45), ("k", 145), ("k", 135)]))
    assert _Counting.commits, "the source was never acknowledged"
    assert _Counting.commits[-1] == 25
    assert _Counting.commits == sorted(_Counting.commits)


def test_a_finishing_trigger_is_allowed_with_a_warning():
    from headrace.model.transforms.core import FinishingTriggerWarning

    p = beam.Pipeline()
    with pytest.warns(FinishingTriggerWarning, match="may finish"):
        _ = (
            p
            | beam.Create([("k", 1)])
            | "Once" >> beam.WindowInto(window.GlobalWindows(), trigger=AfterCount(2))
        )


class _SessionTotals(beam.DoFn):
    """Per key and session: sum values in combining state, emit when the session ends."""

    TOTAL = CombiningValueStateSpec("total", sum)
    END = TimerSpec("end", TimeDomain.WATERMARK)

    def process(
        self,
        kv,
        w=beam.DoFn.WindowParam,
        total=beam.DoFn.StateParam(TOTAL),
        end=beam.DoFn.TimerParam(END),
    ):
        total.add(kv[1])
        end.set(w.max_timestamp())

    @on_timer(END)
    def on_end(
        self, key=beam.DoFn.KeyParam, w=beam.DoFn.WindowParam, total=beam.DoFn.StateParam(TOTAL)
    ):
        yield (key, float(w.start), float(w.end), total.read())


def test_stateful_dofn_state_and_timers_merge_with_sessions():
    events = [TV(("a", 1), 1), TV(("a", 2), 5), TV(("a", 4), 30), TV(("b", 7), 3)]
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create(events)
            | beam.WindowInto(window.Sessions(10))
            | beam.ParDo(_SessionTotals())
        )
        assert_that(out, equal_to([("a", 1.0, 15.0, 3), ("a", 30.0, 40.0, 4), ("b", 3.0, 13.0, 7)]))


def test_a_trigger_is_evaluated_once_per_bundle_as_in_beam():
    """Beam's ``GeneralTriggerDriver.process_elements`` adds a bundle's elements, then asks the
    trigger once per window: a TestStream bundle of 5 under Repeatedly(AfterCount(2)) is one pane
    of 5 (checked on Beam 2.77's direct runner); then bundles of one fire every second element."""
    stream = TestStream().add_elements([TV(("k", i), i) for i in range(5)])
    for i in range(5, 8):
        stream = stream.add_elements([TV(("k", i), i)])
    stream = stream.advance_watermark_to_infinity()
    with beam.Pipeline() as p:
        out = (
            p
            | stream
            | beam.WindowInto(
                window.GlobalWindows(),
                trigger=Repeatedly(AfterCount(2)),
                accumulation_mode=AccumulationMode.DISCARDING,
            )
            | beam.GroupByKey()
            | beam.MapTuple(lambda k, vs: sorted(vs))
        )
        assert_that(out, equal_to([[0, 1, 2, 3, 4], [5, 6]]))


def test_late_elements_of_one_bundle_make_one_late_pane_under_the_default_trigger():
    """Late data is triggered per bundle too (``ReduceFnRunner.processElements`` and Python's
    ``GeneralTriggerDriver.process_elements`` add the whole bundle, then ask the trigger once per
    window). Beam 2.77's direct runner gives exactly these panes for this stream: the ON_TIME
    pane, then one LATE pane of both late elements; a later bundle of one is a pane of its own."""
    stream = (
        TestStream()
        .add_elements([TV(("k", 0), 1)])
        .advance_watermark_to(100)
        .add_elements([TV(("k", 1), 5), TV(("k", 2), 6)])
        .add_elements([TV(("k", 3), 7)])
        .advance_watermark_to_infinity()
    )
    with beam.Pipeline() as p:
        out = (
            p
            | stream
            | beam.WindowInto(window.FixedWindows(60), allowed_lateness=1000)
            | beam.GroupByKey()
        )
        assert_that(
            out | beam.ParDo(Panes()),
            equal_to(
                [
                    ("k", [0], 0.0, "ON_TIME", 0),
                    ("k", [1, 2], 0.0, "LATE", 1),
                    ("k", [3], 0.0, "LATE", 2),
                ]
            ),
        )
