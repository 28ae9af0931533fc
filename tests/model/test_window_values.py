"""Windows, timestamps and windowed values as Beam's users see them: reprs and constructors.

Beam prints these objects in outputs that tests compare byte for byte (``top_wikipedia_sessions``
formats ``[start, end)`` windows into its output lines), so the formats follow Beam's code:
``apache_beam/utils/windowed_value.py`` (``_IntervalWindowBase.__repr__``, ``WindowedValue``,
``PaneInfo``), ``apache_beam/utils/timestamp.py`` (``Timestamp.__repr__``, ``Duration.__repr__``)
and ``apache_beam/transforms/window.py`` (``GlobalWindow``, ``GlobalWindows.windowed_value``).
"""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

import headrace.beam as beam
from headrace.beam.transforms import window as beam_window
from headrace.beam.utils import windowed_value as beam_wv
from headrace.model.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP, Duration, Timestamp
from headrace.model.window import (
    GlobalWindow,
    GlobalWindows,
    IntervalWindow,
    PaneInfo,
    PaneInfoTiming,
    WindowedValue,
)
from headrace.testing.util import assert_that, equal_to


def test_interval_window_prints_as_beams_half_open_float_interval():
    """Beam: ``'[%s, %s)' % (float(start), float(end))``."""
    assert repr(IntervalWindow(0, 4)) == "[0.0, 4.0)"
    assert str(IntervalWindow(1.5, 1800)) == "[1.5, 1800.0)"
    assert f"{IntervalWindow(-10, 0)}" == "[-10.0, 0.0)"
    assert repr(GlobalWindow()) == "GlobalWindow"


def test_timestamp_and_duration_print_six_fraction_digits_like_beam():
    """Beam's Timestamp/Duration reprs: ``%d`` seconds, or ``%d.%06d`` when there is a fraction."""
    assert repr(Timestamp(12)) == "Timestamp(12)"
    assert repr(Timestamp(12.5)) == "Timestamp(12.500000)"
    assert repr(Timestamp(micros=-500_000)) == "Timestamp(-0.500000)"
    assert str(Timestamp(micros=-1_500_001)) == "Timestamp(-1.500001)"
    assert repr(MIN_TIMESTAMP) == "Timestamp(-9223372036854.775808)"
    assert repr(MAX_TIMESTAMP) == "Timestamp(9223372036854.775807)"
    assert repr(Duration(2.5)) == "Duration(2.500000)"
    assert repr(Duration(-3)) == "Duration(-3)"


def test_pane_info_timing_names_and_repr():
    assert PaneInfoTiming.to_string(PaneInfoTiming.ON_TIME) == "ON_TIME"
    assert PaneInfoTiming.from_string("LATE") is PaneInfoTiming.LATE
    pane = PaneInfo(True, False, PaneInfoTiming.EARLY, 0, -1)
    assert repr(pane) == (
        "PaneInfo(first: True, last: False, timing: EARLY, index: 0, nonspeculative_index: -1)"
    )


def test_beam_windowed_value_reads_seconds_not_microseconds():
    """Beam's ``WindowedValue(value, timestamp, windows)``: an int timestamp is seconds.

    headrace used to take it as microseconds, so an element stamped 5 s landed at 5 µs.
    """
    wv = beam_window.WindowedValue("a", 5, [IntervalWindow(0, 10)])
    assert isinstance(wv, WindowedValue)
    assert type(wv) is WindowedValue  # the executors' own type: no wrapper on the hot path
    assert wv.timestamp == Timestamp(5)
    assert wv.timestamp_micros == 5_000_000
    assert wv.windows == (IntervalWindow(0, 10),)
    assert wv.pane_info == beam_wv.PANE_INFO_UNKNOWN
    assert beam_wv.WindowedValue("b", 2.25, (GlobalWindow(),)).timestamp_micros == 2_250_000
    assert beam_wv.WindowedValue("c", Timestamp(7), ()).timestamp_micros == 7_000_000
    assert isinstance(wv, beam_wv.WindowedValue)
    assert not isinstance("a", beam_wv.WindowedValue)


def test_windowed_value_repr_is_beams():
    """Beam: ``(value, float seconds | MIN_TIMESTAMP | MAX_TIMESTAMP, windows, pane_info)``."""
    wv = beam_wv.WindowedValue("a", 5, [IntervalWindow(0, 10)])
    assert repr(wv) == (
        "('a', 5.0, ([0.0, 10.0),), PaneInfo(first: True, last: True, timing: UNKNOWN, "
        "index: 0, nonspeculative_index: 0))"
    )
    assert repr(GlobalWindows.windowed_value(1)).startswith("(1, MIN_TIMESTAMP, (GlobalWindow,),")


def test_global_windows_windowed_value():
    wv = beam.window.GlobalWindows.windowed_value("x", 3)
    assert (wv.value, wv.timestamp, wv.windows) == ("x", Timestamp(3), (GlobalWindow(),))
    assert GlobalWindows.windowed_value("y").timestamp == MIN_TIMESTAMP
    end = GlobalWindows.windowed_value_at_end_of_window("z")
    assert end.timestamp == GlobalWindow().max_timestamp()


def test_windowed_values_pickle():
    wv = beam_wv.WindowedValue(("k", 1), 3, [IntervalWindow(0, 4)])
    assert pickle.loads(pickle.dumps(wv)) == wv
    assert cloudpickle.loads(cloudpickle.dumps(wv)) == wv


class _TaggedWindow(IntervalWindow):
    """A user's window with a field of its own (Nexmark's WinningBids has one like it)."""

    def __init__(self, start, end, tag):
        super().__init__(start, end)
        self.tag = tag


def test_interval_window_subclass_keeps_its_class_and_fields_when_pickled():
    w = _TaggedWindow(0, 4, "auction 7")
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        back = loads(dumps(w))
        assert type(back) is _TaggedWindow
        assert (back.tag, back.start, back.end) == ("auction 7", Timestamp(0), Timestamp(4))
    plain = pickle.loads(pickle.dumps(IntervalWindow(0, 4)))
    assert type(plain) is IntervalWindow and plain == IntervalWindow(0, 4)


class _EmitInFinishBundle(beam.DoFn):
    """Buffers elements and emits them from ``finish_bundle`` as Beam's WindowedValue."""

    def start_bundle(self):
        self.seen = []

    def process(self, element):
        self.seen.append(element)

    def finish_bundle(self):
        for x in self.seen:
            yield beam.window.WindowedValue(x, x, [IntervalWindow(x - x % 4, x - x % 4 + 4)])


def test_finish_bundle_windowed_values_land_in_their_windows():
    """A WindowedValue made with seconds from finish_bundle groups by the window it names.

    Beam: ``DoFn.finish_bundle`` must yield ``WindowedValue`` (transforms/core.py); the timestamp
    is seconds. Read as microseconds, 1 and 5 would both sit in the window [0, 4) at 1 µs/5 µs.
    """
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create([1, 2, 5, 6, 7])
            | beam.Map(lambda x: beam.window.TimestampedValue(x, x))
            | beam.WindowInto(beam.window.FixedWindows(4))
            | beam.ParDo(_EmitInFinishBundle())
            | beam.Map(lambda x: ("k", x))
            | beam.GroupByKey()
            | beam.ParDo(_WithWindow())
        )
        assert_that(out, equal_to([("[0.0, 4.0)", [1, 2]), ("[4.0, 8.0)", [5, 6, 7])]))


def test_windowed_value_into_a_plain_global_collection_is_refused_loudly():
    """headrace moves globally windowed data without windows; a value in other windows is refused.

    Beam would keep the windows; headrace cannot here, so it says so instead of dropping them.
    """
    with pytest.raises(Exception, match="WindowInto"):
        with beam.Pipeline() as p:
            _ = p | beam.Create([1, 2]) | "Emit" >> beam.ParDo(_EmitInFinishBundle())


class _WithWindow(beam.DoFn):
    def process(self, kv, w=beam.DoFn.WindowParam, t=beam.DoFn.TimestampParam):
        assert t == w.max_timestamp()
        yield (str(w), sorted(kv[1]))


def test_windowing_value_as_beams():
    """Beam's ``transforms.core.Windowing``: defaults, equality of default strategies, and the
    ValueError for a non-default trigger without an accumulation mode."""
    from headrace.beam.transforms import trigger
    from headrace.beam.transforms.core import Windowing

    assert Windowing(GlobalWindows()).is_default()
    assert Windowing(GlobalWindows()) == Windowing(GlobalWindows(), trigger.DefaultTrigger())
    fixed = Windowing(
        beam.window.FixedWindows(10),
        trigger.AfterCount(2),
        trigger.AccumulationMode.ACCUMULATING,
        allowed_lateness=5,
    )
    assert not fixed.is_default() and fixed.allowed_lateness == Duration(5)
    assert fixed != Windowing(beam.window.FixedWindows(10))
    with pytest.raises(ValueError, match="accumulation_mode must be provided"):
        Windowing(GlobalWindows(), trigger.AfterCount(2))


def test_builtin_window_fns_assign_lists_as_beam():
    """Beam's ``window_test`` compares ``assign()`` results with lists: ``FixedWindows``,
    ``SlidingWindows``, ``Sessions`` and ``GlobalWindows`` return lists there."""
    from headrace.model.window import FixedWindows, Sessions, SlidingWindows, WindowFn

    ctx = WindowFn.AssignContext(Timestamp(7))
    assert FixedWindows(5).assign(ctx) == [IntervalWindow(5, 10)]
    assert SlidingWindows(10, 5).assign(ctx) == [IntervalWindow(5, 15), IntervalWindow(0, 10)]
    assert Sessions(3).assign(ctx) == [IntervalWindow(7, 10)]
    assert GlobalWindows().assign(ctx) == [GlobalWindow()]
