"""The pane engine: timestamp combiners, holds, lateness, merging windows, many keys, combining.

Every expected pane is explicit: (window, values, output timestamp in microseconds, PaneInfo).
"""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

from headrace.exec.panes import (
    Element,
    EndOfInput,
    PaneEngine,
    ProcessingTimeTo,
    WatermarkTo,
    simulate,
)
from headrace.model.timestamp import MAX_US, MIN_US, Timestamp
from headrace.model.transforms.core import WindowInto
from headrace.model.trigger import (
    AccumulationMode,
    AfterCount,
    AfterProcessingTime,
    AfterWatermark,
    Repeatedly,
)
from headrace.model.window import (
    FixedWindows,
    IntervalWindow,
    PaneInfo,
    PaneInfoTiming,
    Sessions,
    SlidingWindows,
    TimestampCombiner,
    WindowedValue,
)

EARLY, ON_TIME, LATE = PaneInfoTiming.EARLY, PaneInfoTiming.ON_TIME, PaneInfoTiming.LATE
ACC, DISC = AccumulationMode.ACCUMULATING, AccumulationMode.DISCARDING
TC = TimestampCombiner
W0 = IntervalWindow(0, 60)
W1 = IntervalWindow(60, 120)
EOW0 = 59_999_999
S = 1_000_000


def pane(window, values, ts, first, last, timing, index, nonspec):
    return (window, values, ts, PaneInfo(first, last, timing, index, nonspec))


def panes(events, engine=None, **kw):
    if engine is None:
        # These scripts pin the engine's mechanics, final panes at expiry included, so they run
        # with fire_at_expiry; the default (Beam's: no such pane) is pinned in test_triggers.py.
        kw.setdefault("fire_at_expiry", True)
    out = simulate(events, engine=engine, **kw)
    return [(wv.windows[0], wv.value[1], wv.timestamp_us, wv.pane) for wv in out]


def els(*pairs):
    return [Element(v, t) for v, t in pairs]


class ShiftedFixedWindows(FixedWindows):
    """Fixed windows whose transformed output time is one second after the input."""

    def get_transformed_output_time(self, window, input_timestamp):
        return input_timestamp + 1


class SumFn:
    def create_accumulator(self):
        return 0

    def add_input(self, acc, value):
        return acc + value

    def merge_accumulators(self, accs):
        return sum(accs)

    def extract_output(self, acc):
        return acc


# -- timestamp combiners and holds ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("combiner", "ts"),
    [
        (TC.OUTPUT_AT_EOW, EOW0),
        (TC.OUTPUT_AT_EARLIEST, 5 * S),
        (TC.OUTPUT_AT_LATEST, 30 * S),
        (TC.OUTPUT_AT_EARLIEST_TRANSFORMED, 6 * S),
    ],
)
def test_timestamp_combiners_single_pane(combiner, ts):
    events = [*els(("a", 10), ("b", 5), ("c", 30)), WatermarkTo(60)]
    out = panes(events, window_fn=ShiftedFixedWindows(60), timestamp_combiner=combiner)
    assert out == [pane(W0, ["a", "b", "c"], ts, True, False, ON_TIME, 0, 0)]


def test_timestamp_combiner_names_are_accepted_as_strings():
    engine = PaneEngine(FixedWindows(60), timestamp_combiner="OUTPUT_AT_LATEST")
    out = panes([*els(("a", 10), ("b", 20)), EndOfInput()], engine)
    assert out == [pane(W0, ["a", "b"], 20 * S, True, False, ON_TIME, 0, 0)]


@pytest.mark.parametrize("mode", [DISC, ACC], ids=["disc", "acc"])
@pytest.mark.parametrize(
    ("combiner", "early_ts", "on_time_ts"),
    [
        (TC.OUTPUT_AT_EOW, EOW0, EOW0),
        (TC.OUTPUT_AT_EARLIEST, 5 * S, 30 * S),
        (TC.OUTPUT_AT_LATEST, 10 * S, EOW0),
        (TC.OUTPUT_AT_EARLIEST_TRANSFORMED, 6 * S, 31 * S),
    ],
)
def test_timestamps_of_early_and_on_time_panes(mode, combiner, early_ts, on_time_ts):
    # After an EARLY pane the window is held at its end, so the ON_TIME pane's timestamp comes
    # from the elements that arrived since, combined with the end of the window.
    events = [*els(("a", 10), ("b", 5), ("c", 30)), WatermarkTo(60)]
    out = panes(
        events,
        window_fn=ShiftedFixedWindows(60),
        trigger=AfterWatermark(early=AfterCount(2)),
        accumulation_mode=mode,
        timestamp_combiner=combiner,
    )
    on_time_values = ["a", "b", "c"] if mode is ACC else ["c"]
    assert out == [
        pane(W0, ["a", "b"], early_ts, True, False, EARLY, 0, -1),
        pane(W0, on_time_values, on_time_ts, False, True, ON_TIME, 1, 0),
    ]


@pytest.mark.parametrize("combiner", list(TC))
def test_late_panes_are_emitted_at_the_end_of_the_window(combiner):
    events = [Element("a", 10), WatermarkTo(60), Element("late", 20), EndOfInput()]
    out = panes(
        events, window_fn=FixedWindows(60), timestamp_combiner=combiner, allowed_lateness_us=S * 30
    )
    on_time_ts = EOW0 if combiner is TC.OUTPUT_AT_EOW else 10 * S
    assert out == [
        pane(W0, ["a"], on_time_ts, True, False, ON_TIME, 0, 0),
        pane(W0, ["late"], EOW0, False, False, LATE, 1, 1),
    ]


@pytest.mark.parametrize(
    ("combiner", "ts"),
    [
        (TC.OUTPUT_AT_EOW, EOW0),
        (TC.OUTPUT_AT_EARLIEST, 30 * S),
        (TC.OUTPUT_AT_LATEST, EOW0),
        (TC.OUTPUT_AT_EARLIEST_TRANSFORMED, 31 * S),
    ],
)
def test_element_behind_the_watermark_is_held_at_the_end_of_its_window(combiner, ts):
    events = [WatermarkTo(20), Element("a", 10), Element("b", 30), WatermarkTo(60)]
    out = panes(events, window_fn=ShiftedFixedWindows(60), timestamp_combiner=combiner)
    assert out == [pane(W0, ["a", "b"], ts, True, False, ON_TIME, 0, 0)]


def test_hold_follows_the_earliest_pending_output_time():
    engine = PaneEngine(FixedWindows(60), timestamp_combiner=TC.OUTPUT_AT_EARLIEST)
    assert engine.hold() == MAX_US
    engine.add("x", 1, 10 * S, [W0])
    assert engine.hold() == 10 * S
    engine.add("y", 1, 5 * S, [W0])
    engine.add("x", 1, 70 * S, [W1])
    assert engine.hold() == 5 * S
    assert len(engine.advance_watermark(60 * S)) == 2
    assert engine.hold() == 70 * S
    engine.finish()
    assert engine.hold() == MAX_US


def test_hold_follows_the_latest_timestamp_when_it_moves_up():
    engine = PaneEngine(FixedWindows(60), timestamp_combiner=TC.OUTPUT_AT_LATEST)
    engine.add("x", 1, 10 * S, [W0])
    assert engine.hold() == 10 * S
    engine.add("x", 1, 30 * S, [W0])
    assert engine.hold() == 30 * S
    engine.add("y", 1, 20 * S, [W0])
    assert engine.hold() == 20 * S


def test_hold_at_end_of_window_after_an_early_pane():
    engine = PaneEngine(
        FixedWindows(60),
        AfterWatermark(early=AfterCount(1)),
        timestamp_combiner=TC.OUTPUT_AT_EARLIEST,
    )
    engine.add("x", 1, 10 * S, [W0])
    assert [wv.timestamp_us for wv in engine.drain()] == [10 * S]
    assert engine.hold() == EOW0  # the ON_TIME pane is still to come
    assert [wv.pane.timing for wv in engine.advance_watermark(60 * S)] == [ON_TIME]
    assert engine.hold() == MAX_US


def test_late_data_holds_nothing():
    engine = PaneEngine(
        FixedWindows(60),
        Repeatedly(AfterCount(2)),
        allowed_lateness_us=100 * S,
        fire_at_expiry=True,
    )
    engine.advance_watermark(70 * S)
    engine.add("x", 1, 10 * S, [W0])
    assert engine.hold() == MAX_US and engine.drain() == []
    assert [(wv.value, wv.pane.timing) for wv in engine.finish()] == [(("x", [1]), LATE)]


# -- lateness and expiry -------------------------------------------------------------------------


def test_expired_window_with_data_its_trigger_never_emitted_gets_a_final_pane_if_asked():
    engine = PaneEngine(
        FixedWindows(60),
        AfterWatermark(early=AfterCount(3), late=AfterCount(5)),
        allowed_lateness_us=10 * S,
        fire_at_expiry=True,
    )
    events = [
        *els(("a", 1), ("b", 2), ("c", 3)),
        WatermarkTo(60),
        *els(("d", 4), ("e", 5)),  # late, but AfterCount(5) never fires
        WatermarkTo(70),  # past the allowed lateness: d and e come out, in the last pane
    ]
    assert panes(events, engine) == [
        pane(W0, ["a", "b", "c"], EOW0, True, False, EARLY, 0, -1),
        pane(W0, [], EOW0, False, False, ON_TIME, 1, 0),
        pane(W0, ["d", "e"], EOW0, False, True, LATE, 2, 1),
    ]
    assert engine.pane_count == 0 and engine.dropped_late == 0


def test_lateness_boundary_is_inclusive_of_the_garbage_collection_time():
    engine = PaneEngine(FixedWindows(60), allowed_lateness_us=10 * S)
    engine.advance_watermark(EOW0 + 10 * S)  # exactly the GC time: still accepted
    engine.add("k", "ok", 1 * S, [W0])
    assert [wv.value for wv in engine.drain()] == [("k", ["ok"])]
    engine.advance_watermark(EOW0 + 10 * S + 1)
    engine.add("k", "dropped", 1 * S, [W0])
    assert engine.dropped_late == 1 and engine.drain() == []


def test_watermark_and_clock_never_go_back():
    engine = PaneEngine(FixedWindows(60), Repeatedly(AfterProcessingTime(5)))
    engine.advance_watermark(30 * S)
    engine.advance_processing_time(10 * S)
    engine.advance_watermark(10 * S)
    engine.advance_processing_time(1 * S)
    assert engine.watermark == 30 * S and engine.processing_time == 10 * S
    engine.add("k", 1, 40 * S, [W0])
    assert engine.next_deadline() == 15 * S


# -- merging windows -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("combiner", "ts"),
    [(TC.OUTPUT_AT_EOW, 29_999_999), (TC.OUTPUT_AT_EARLIEST, 1 * S), (TC.OUTPUT_AT_LATEST, 20 * S)],
)
def test_sessions_merge_into_one_pane(combiner, ts):
    events = [*els(("a", 1), ("b", 5), ("c", 20)), Element("d", 12), WatermarkTo(40)]
    out = panes(events, window_fn=Sessions(10), timestamp_combiner=combiner)
    assert out == [
        pane(IntervalWindow(1, 30), ["a", "b", "c", "d"], ts, True, False, ON_TIME, 0, 0)
    ]


@pytest.mark.parametrize("mode", [DISC, ACC], ids=["disc", "acc"])
def test_sessions_merge_after_an_early_pane_start_a_new_window(mode):
    events = [
        *els(("a", 1), ("b", 3)),  # session [1, 13): an EARLY pane
        Element("c", 20),  # session [20, 30)
        Element("d", 12),  # bridges both: session [1, 30), a new window
        WatermarkTo(40),
    ]
    out = panes(
        events,
        window_fn=Sessions(10),
        trigger=AfterWatermark(early=AfterCount(2)),
        accumulation_mode=mode,
    )
    acc = mode is ACC
    assert out == [
        pane(IntervalWindow(1, 13), ["a", "b"], 12_999_999, True, False, EARLY, 0, -1),
        pane(
            IntervalWindow(1, 30),
            ["a", "b", "c", "d"] if acc else ["c", "d"],
            29_999_999,
            True,
            False,
            EARLY,
            0,
            -1,
        ),
        pane(
            IntervalWindow(1, 30),
            ["a", "b", "c", "d"] if acc else [],
            29_999_999,
            False,
            True,
            ON_TIME,
            1,
            0,
        ),
    ]


def test_session_growing_inside_an_existing_window_keeps_its_pane_index():
    events = [*els(("a", 1), ("b", 9), ("c", 5), ("d", 7)), EndOfInput()]
    out = panes(events, window_fn=Sessions(10), trigger=Repeatedly(AfterCount(2)))
    assert out == [
        pane(IntervalWindow(1, 19), ["a", "b"], 18_999_999, True, False, EARLY, 0, -1),
        pane(IntervalWindow(1, 19), ["c", "d"], 18_999_999, False, False, EARLY, 1, -1),
    ]


@pytest.mark.parametrize("mode", [DISC, ACC], ids=["disc", "acc"])
def test_late_element_merging_into_a_session(mode):
    engine = PaneEngine(Sessions(10), accumulation_mode=mode, allowed_lateness_us=10 * S)
    events = [Element("a", 1), WatermarkTo(20), Element("b", 5), EndOfInput()]
    assert panes(events, engine) == [
        pane(IntervalWindow(1, 11), ["a"], 10_999_999, True, False, ON_TIME, 0, 0),
        pane(
            IntervalWindow(1, 15),
            ["a", "b"] if mode is ACC else ["b"],
            14_999_999,
            True,
            False,
            LATE,
            0,
            0,
        ),
    ]


def test_sessions_drop_elements_whose_own_session_is_past_lateness():
    engine = PaneEngine(Sessions(10))
    events = [Element("a", 1), WatermarkTo(20), Element("b", 5), EndOfInput()]
    assert panes(events, engine) == [
        pane(IntervalWindow(1, 11), ["a"], 10_999_999, True, False, ON_TIME, 0, 0)
    ]
    assert engine.dropped_late == 1


def test_a_closed_session_absorbs_what_merges_into_it():
    engine = PaneEngine(Sessions(10), AfterCount(2))
    events = [
        *els(("a", 1), ("b", 3)),  # session [1, 13) fires and closes
        Element("c", 20),  # session [20, 30), pending
        Element("d", 12),  # bridges them: the merged session is closed, "d" is dropped
        Element("e", 2),  # inside the closed session: dropped
        EndOfInput(),
    ]
    assert panes(events, engine) == [
        pane(IntervalWindow(1, 13), ["a", "b"], 12_999_999, True, True, EARLY, 0, -1),
        pane(IntervalWindow(20, 30), ["c"], 29_999_999, True, True, EARLY, 0, -1),
    ]
    assert engine.dropped_closed == 2 and engine.pane_count == 0


def test_sessions_with_processing_time_triggers_keep_the_earliest_deadline():
    engine = PaneEngine(Sessions(10), Repeatedly(AfterProcessingTime(10)))
    engine.add("k", "a", 1 * S, [IntervalWindow(1, 11)])
    engine.advance_processing_time(4 * S)
    engine.add("k", "b", 5 * S, [IntervalWindow(5, 15)])
    assert engine.next_deadline() == 10 * S
    out = engine.advance_processing_time(10 * S)
    assert [(wv.windows, wv.value) for wv in out] == [((IntervalWindow(1, 15),), ("k", ["a", "b"]))]


def test_sessions_with_a_combine_fn_merge_accumulators():
    engine = PaneEngine(Sessions(10), combine_fn=SumFn())
    out = simulate([*els((1, 1), (2, 15), (3, 8)), EndOfInput()], engine=engine)
    assert [(wv.windows, wv.value) for wv in out] == [((IntervalWindow(1, 25),), ("k", 6))]


# -- many keys, several windows per element, combining, building, pickling -----------------------


def test_many_keys_and_bundles():
    engine = PaneEngine(FixedWindows(60), Repeatedly(AfterCount(2)), fire_at_expiry=True)
    bundle = [WindowedValue((k, v), 1 * S, (W0,)) for k, v in [("x", 1), ("y", 2), ("x", 3)]]
    assert [(wv.value, wv.pane.index) for wv in engine.process(bundle)] == [(("x", [1, 3]), 0)]
    bundle = [WindowedValue(("y", 4), 61 * S, (W1,)), WindowedValue(("y", 5), 2 * S, (W0,))]
    assert [(wv.value, wv.windows) for wv in engine.process(bundle)] == [(("y", [2, 5]), (W0,))]
    out = engine.finish()
    assert [(wv.value, wv.windows, wv.pane.timing) for wv in out] == [(("y", [4]), (W1,), ON_TIME)]


def test_an_element_in_several_sliding_windows():
    out = panes([Element("a", 45), WatermarkTo(60), EndOfInput()], window_fn=SlidingWindows(60, 30))
    assert out == [
        pane(IntervalWindow(0, 60), ["a"], EOW0, True, False, ON_TIME, 0, 0),
        pane(IntervalWindow(30, 90), ["a"], 89_999_999, True, False, ON_TIME, 0, 0),
    ]


@pytest.mark.parametrize(
    ("mode", "sums"), [(DISC, [3, 7, 5]), (ACC, [3, 10, 15])], ids=["disc", "acc"]
)
def test_combine_fn_panes(mode, sums):
    events = [*els((1, 1), (2, 2), (3, 3), (4, 4), (5, 5)), EndOfInput()]
    out = simulate(
        events,
        trigger=Repeatedly(AfterCount(2)),
        accumulation_mode=mode,
        combine_fn=SumFn(),
        fire_at_expiry=True,
    )
    assert [wv.value[1] for wv in out] == sums


def test_engine_from_a_windowing_strategy():
    transform = WindowInto(
        FixedWindows(60),
        trigger=AfterWatermark(late=AfterCount(1)),
        accumulation_mode=ACC,
        timestamp_combiner=TC.OUTPUT_AT_LATEST,
        allowed_lateness=30,
    )
    engine = PaneEngine.from_strategy(transform._strategy())
    assert engine.accumulating and engine.lateness == 30 * S
    assert engine.timestamp_combiner is TC.OUTPUT_AT_LATEST
    assert engine.machine.trigger == AfterWatermark(late=AfterCount(1))
    default = PaneEngine.from_strategy(WindowInto(FixedWindows(10))._strategy())
    assert default.machine.is_default and not default.accumulating


def test_engine_arguments_are_checked():
    with pytest.raises(ValueError, match="AccumulationMode.DISCARDING"):
        PaneEngine(accumulation_mode="RETRACTING")
    with pytest.raises(ValueError, match="TimestampCombiner"):
        PaneEngine(timestamp_combiner="OUTPUT_AT_NOON")
    with pytest.raises(ValueError, match="negative"):
        PaneEngine(allowed_lateness_us=-1)
    with pytest.raises(TypeError, match="use Element"):
        simulate(["not an event"])


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_an_engine_pickles_mid_run_and_carries_on_identically(dumps):
    engine = PaneEngine(
        Sessions(10),
        AfterWatermark(early=Repeatedly(AfterProcessingTime(5))),
        allowed_lateness_us=5 * S,
    )
    first = [Element("a", 1), ProcessingTimeTo(2), Element("b", 4), Element("c", 30)]
    simulate(first, engine=engine)
    copy = pickle.loads(dumps(engine))
    rest = [ProcessingTimeTo(7), Element("d", 8), WatermarkTo(20), Element("e", 9), EndOfInput()]
    expected = panes(rest, engine)
    assert expected and panes(rest, copy) == expected


def test_finish_from_the_minimum_watermark_is_the_batch_path():
    engine = PaneEngine(FixedWindows(60), watermark_us=MIN_US)
    engine.add("k", 1, -5 * S, FixedWindows(60).assign_us(-5 * S))
    (wv,) = engine.finish()
    assert wv.windows == (IntervalWindow(-60, 0),) and wv.timestamp_us == -1
    assert Timestamp(micros=wv.timestamp_us) < Timestamp(0)


def test_malformed_elements_are_reported_with_the_label():
    engine = PaneEngine(FixedWindows(60), label="CountPerUser")
    with pytest.raises(ValueError, match="'CountPerUser' needs \\(key, value\\) pairs, got 7"):
        engine.process([WindowedValue(7, 0, (W0,))])
    with pytest.raises(TypeError, match="'CountPerUser' got the unhashable key \\['a'\\]"):
        engine.process([WindowedValue((["a"], 1), 0, (W0,))])


@pytest.mark.parametrize("combine", [None, SumFn()], ids=["values", "combine_fn"])
@pytest.mark.parametrize(
    "window_fn", [FixedWindows(60), SlidingWindows(60, 20)], ids=["fixed", "sliding"]
)
def test_bundles_and_single_adds_give_the_same_panes(window_fn, combine):
    """``process`` of a bundle (its own loop for the default trigger at the end of the window)
    must fire, hold, drop and count exactly as ``add`` element by element: on-time, late within
    the allowed lateness, and dropped past it, except that the late elements of one bundle in one
    key and window make one LATE pane, where ``add`` (a bundle of one) makes one each. These are
    Beam's semantics (``ReduceFnRunner.processElements``: the default trigger fires when the
    watermark passes the window's end, and after each bundle bringing late data to a window; data
    past the garbage-collection time is dropped). The reference merges the per-element late panes
    of each bundle and renumbers the panes."""
    import random

    r = random.Random(5)
    steps = []
    wm = 0
    for _ in range(30):
        bundle = [
            (f"k{r.randrange(4)}", r.randrange(10), max(0, wm + r.randrange(-90, 120)) * S)
            for _ in range(r.randrange(1, 12))
        ]
        wm += r.randrange(0, 50)
        steps.append((bundle, wm * S))

    def run(by_bundle):
        engine = PaneEngine(window_fn, allowed_lateness_us=30 * S, combine_fn=combine)
        out = []
        for bundle, to in steps:
            if by_bundle:
                chunk = [WindowedValue((k, v), t, window_fn.assign_us(t)) for k, v, t in bundle]
                late = engine.process(chunk)
            else:
                for k, v, t in bundle:
                    engine.add(k, v, t, window_fn.assign_us(t))
                late = merge_bundle(engine.drain())
            out.extend(late)
            out.extend(engine.advance_watermark(to))
        out.extend(engine.finish())
        if by_bundle:  # the engine numbers its panes itself
            assert [wv.pane for wv in renumber(out)] == [wv.pane for wv in out]
        got = [(wv.value, wv.timestamp_us, wv.windows, wv.pane) for wv in renumber(out)]
        return got, engine.dropped_late, engine.dropped_closed

    def merge_bundle(panes_of_bundle):
        merged = {}
        for wv in panes_of_bundle:
            assert wv.pane.timing is LATE
            key, values = wv.value
            old = merged.get((key, wv.windows))
            if old is None:
                merged[(key, wv.windows)] = wv
            else:
                more = old.value[1] + values  # lists concatenate, sums add
                merged[(key, wv.windows)] = WindowedValue(
                    (key, more), old.timestamp_us, old.windows, old.pane
                )
        return list(merged.values())

    def renumber(out):
        seen = {}
        fixed = []
        for wv in out:
            n = seen.get((wv.value[0], wv.windows), 0)
            seen[(wv.value[0], wv.windows)] = n + 1
            p = wv.pane
            info = PaneInfo(n == 0, p.is_last, p.timing, n, n)  # no EARLY panes here
            fixed.append(WindowedValue(wv.value, wv.timestamp_us, wv.windows, info))
        return fixed

    by_bundle, single = run(True), run(False)
    assert by_bundle == single
    assert by_bundle[1] > 0  # some data was past the lateness
    assert sum(p.timing is LATE for *_, p in by_bundle[0]) > 3


# -- triggers fire per bundle, late data included -----------------------------------------------
# Beam's trigger driver (apache_beam/transforms/trigger.py, GeneralTriggerDriver.process_elements)
# adds every element of a bundle to its window, then asks the trigger once per window: late
# elements of one bundle make one LATE pane, whatever the trigger (the default one included).


def _late_bundle(engine, chunk_values):
    engine.add("k", "on time", 10 * S, (W0,))
    on_time = engine.advance_watermark(61 * S)
    chunk = [WindowedValue(("k", v), 20 * S, (W0,)) for v in chunk_values]
    return on_time, engine.process(chunk)


@pytest.mark.parametrize(
    "strategy",
    [
        {},  # the default trigger, output at the end of the window (the common fast path)
        {"timestamp_combiner": TC.OUTPUT_AT_EARLIEST},
        {"trigger": AfterWatermark(late=AfterCount(1))},
    ],
    ids=["default", "default-earliest", "late-aftercount1"],
)
def test_late_elements_of_one_bundle_make_one_late_pane(strategy):
    engine = PaneEngine(FixedWindows(60), allowed_lateness_us=100 * S, **strategy)
    on_time, late = _late_bundle(engine, ["x", "y", "z"])
    assert [(wv.value, wv.pane.timing) for wv in on_time] == [(("k", ["on time"]), ON_TIME)]
    assert [(wv.value, wv.pane.timing, wv.pane.index) for wv in late] == [
        (("k", ["x", "y", "z"]), LATE, 1)
    ]


def test_late_elements_added_one_at_a_time_are_bundles_of_one():
    engine = PaneEngine(FixedWindows(60), allowed_lateness_us=100 * S)
    engine.add("k", "on time", 10 * S, (W0,))
    engine.advance_watermark(61 * S)
    engine.add("k", "x", 20 * S, (W0,))
    engine.add("k", "y", 20 * S, (W0,))
    assert [wv.value[1] for wv in engine.drain()] == [["x"], ["y"]]


def test_late_bundle_fires_each_key_and_window_once_in_arrival_order():
    engine = PaneEngine(FixedWindows(60), allowed_lateness_us=100 * S, combine_fn=None)
    engine.advance_watermark(200 * S)
    w2 = IntervalWindow(120, 180)
    chunk = [
        WindowedValue((k, v), 130 * S, (w2,)) for k, v in [("b", 1), ("a", 2), ("b", 3), ("a", 4)]
    ]
    out = engine.process(chunk)
    assert [(wv.value, wv.pane.timing, wv.timestamp_us) for wv in out] == [
        (("b", [1, 3]), LATE, w2.max_timestamp_us()),
        (("a", [2, 4]), LATE, w2.max_timestamp_us()),
    ]
