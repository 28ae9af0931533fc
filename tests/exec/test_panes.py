"""The pane engine: timestamp combiners, holds, lateness, merging windows, many keys, combining,
and properties that tie streaming runs to the batch result."""

from __future__ import annotations

import pickle
from collections import Counter, defaultdict

import cloudpickle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    assert out == [pane(W0, ["a", "b", "c"], ts, True, True, ON_TIME, 0, 0)]


def test_timestamp_combiner_names_are_accepted_as_strings():
    engine = PaneEngine(FixedWindows(60), timestamp_combiner="OUTPUT_AT_LATEST")
    out = panes([*els(("a", 10), ("b", 20)), EndOfInput()], engine)
    assert out == [pane(W0, ["a", "b"], 20 * S, True, True, ON_TIME, 0, 0)]


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
    on_time_ts = {TC.OUTPUT_AT_EOW: EOW0, TC.OUTPUT_AT_LATEST: 10 * S}.get(combiner, 10 * S)
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
    assert out == [pane(W0, ["a", "b"], ts, True, True, ON_TIME, 0, 0)]


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
    engine = PaneEngine(FixedWindows(60), Repeatedly(AfterCount(2)), allowed_lateness_us=100 * S)
    engine.advance_watermark(70 * S)
    engine.add("x", 1, 10 * S, [W0])
    assert engine.hold() == MAX_US and engine.drain() == []
    assert [(wv.value, wv.pane.timing) for wv in engine.finish()] == [(("x", [1]), LATE)]


# -- lateness and expiry -------------------------------------------------------------------------


def test_expired_window_with_data_its_trigger_never_emitted_gets_a_final_pane():
    engine = PaneEngine(
        FixedWindows(60),
        AfterWatermark(early=AfterCount(3), late=AfterCount(5)),
        allowed_lateness_us=10 * S,
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
    assert out == [pane(IntervalWindow(1, 30), ["a", "b", "c", "d"], ts, True, True, ON_TIME, 0, 0)]


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
        pane(IntervalWindow(1, 11), ["a"], 10_999_999, True, True, ON_TIME, 0, 0)
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
    engine = PaneEngine(FixedWindows(60), Repeatedly(AfterCount(2)))
    bundle = [WindowedValue((k, v), 1 * S, (W0,)) for k, v in [("x", 1), ("y", 2), ("x", 3)]]
    assert [(wv.value, wv.pane.index) for wv in engine.process(bundle)] == [(("x", [1, 3]), 0)]
    bundle = [WindowedValue(("y", 4), 61 * S, (W1,)), WindowedValue(("y", 5), 2 * S, (W0,))]
    assert [(wv.value, wv.windows) for wv in engine.process(bundle)] == [(("y", [2, 5]), (W0,))]
    out = engine.finish()
    assert [(wv.value, wv.windows, wv.pane.timing) for wv in out] == [(("y", [4]), (W1,), ON_TIME)]


def test_an_element_in_several_sliding_windows():
    out = panes([Element("a", 45), WatermarkTo(60), EndOfInput()], window_fn=SlidingWindows(60, 30))
    assert out == [
        pane(IntervalWindow(0, 60), ["a"], EOW0, True, True, ON_TIME, 0, 0),
        pane(IntervalWindow(30, 90), ["a"], 89_999_999, True, True, ON_TIME, 0, 0),
    ]


@pytest.mark.parametrize(
    ("mode", "sums"), [(DISC, [3, 7, 5]), (ACC, [3, 10, 15])], ids=["disc", "acc"]
)
def test_combine_fn_panes(mode, sums):
    events = [*els((1, 1), (2, 2), (3, 3), (4, 4), (5, 5)), EndOfInput()]
    out = simulate(
        events, trigger=Repeatedly(AfterCount(2)), accumulation_mode=mode, combine_fn=SumFn()
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


# -- properties ----------------------------------------------------------------------------------

KEYS = st.sampled_from(["x", "y", "z"])
EVENT_TIMES = st.integers(min_value=0, max_value=300)
ELEMENTS = st.lists(st.tuples(KEYS, EVENT_TIMES, st.integers(0, 99)), min_size=0, max_size=60)
WINDOW_FNS = st.sampled_from(
    [FixedWindows(60), FixedWindows(7), SlidingWindows(30, 10), Sessions(15)]
)


def _assign(window_fn, t_us):
    return window_fn.assign_us(t_us)


def _sessions(times, gap):
    """Reference sessions: merge sorted timestamps while they are less than ``gap`` apart."""
    out = []
    for t in sorted(times):
        if out and t < out[-1][1]:
            out[-1][1] = max(out[-1][1], t + gap)
            out[-1][2].append(t)
        else:
            out.append([t, t + gap, [t]])
    return out


def _batch_groups(window_fn, elements):
    """(key, window) -> (sorted values, timestamps) by a plain group-by."""
    groups = defaultdict(lambda: ([], []))
    if isinstance(window_fn, Sessions):
        by_key = defaultdict(list)
        for k, t, v in elements:
            by_key[k].append((t * S, v))
        for k, items in by_key.items():
            for start, end, times in _sessions([t for t, _ in items], window_fn.gap_us):
                w = IntervalWindow.from_us(start, end)
                for t, v in items:
                    if start <= t < end:
                        groups[(k, w)][0].append(v)
                        groups[(k, w)][1].append(t)
        assert sum(len(vs) for vs, _ in groups.values()) == len(elements)
    else:
        for k, t, v in elements:
            for w in _assign(window_fn, t * S):
                groups[(k, w)][0].append(v)
                groups[(k, w)][1].append(t * S)
    return {gk: (sorted(vs), ts) for gk, (vs, ts) in groups.items()}


@settings(max_examples=150, deadline=None)
@given(
    elements=ELEMENTS,
    window_fn=WINDOW_FNS,
    combiner=st.sampled_from(list(TC)),
    lateness=st.sampled_from([0, 5 * S, 1000 * S]),
    bundles=st.lists(st.integers(1, 7), min_size=1, max_size=10),
    clock=st.lists(st.integers(0, 50), max_size=10),
)
def test_default_trigger_matches_a_plain_group_by(
    elements, window_fn, combiner, lateness, bundles, clock
):
    engine = PaneEngine(
        window_fn, DefaultTrigger(), allowed_lateness_us=lateness, timestamp_combiner=combiner
    )
    items = [WindowedValue((k, v), t * S, _assign(window_fn, t * S)) for k, t, v in elements]
    out, i, b = [], 0, 0
    while i < len(items):
        size = bundles[b % len(bundles)]
        out += engine.process(items[i : i + size])
        if clock:
            out += engine.advance_processing_time(sum(clock[: b % len(clock) + 1]) * S)
        i, b = i + size, b + 1
    assert out == []  # nothing fires before the watermark moves
    out = engine.finish()
    expected = _batch_groups(window_fn, elements)
    got = {(wv.value[0], wv.windows[0]): wv for wv in out}
    assert len(got) == len(out) == len(expected)
    for gk, (values, times) in expected.items():
        wv = got[gk]
        assert sorted(wv.value[1]) == values
        assert wv.pane == PaneInfo(True, True, ON_TIME, 0, 0)
        eow = gk[1].max_timestamp_us()
        want = {TC.OUTPUT_AT_EOW: eow, TC.OUTPUT_AT_LATEST: max(times)}.get(combiner, min(times))
        assert wv.timestamp_us == want
    assert engine.pane_count == 0 and engine.hold() == MAX_US


TRIGGERS = st.sampled_from(
    [
        DefaultTrigger(),
        Always(),
        AfterCount(2),
        Repeatedly(AfterCount(3)),
        AfterProcessingTime(5),
        Repeatedly(AfterProcessingTime(5)),
        AfterWatermark(early=AfterCount(2)),
        AfterWatermark(early=AfterProcessingTime(4), late=AfterCount(1)),
        AfterAny(AfterCount(4), AfterProcessingTime(3)),
        AfterAll(AfterCount(2), AfterProcessingTime(3)),
        AfterEach(AfterCount(1), AfterCount(2)),
        OrFinally(Repeatedly(AfterCount(2)), AfterCount(7)),
        Repeatedly(AfterAny(AfterCount(3), AfterWatermark())),
    ]
)


def _streaming_run(engine, elements, steps):
    """Elements in event-time order; the watermark follows them, the clock moves in ``steps``."""
    order = sorted(elements, key=lambda e: e[1])
    out = []
    for n, (k, t, v) in enumerate(order):
        out += engine.advance_processing_time((n + 1) * steps[n % len(steps)] * S)
        out += engine.advance_watermark(t * S)  # never past a later element: no late data
        engine.add(k, v, t * S, _assign(engine.window_fn, t * S))
        out += engine.drain()
    return out + engine.finish()


def _check_pane_sequences(out):
    by_window = defaultdict(list)
    for wv in out:
        by_window[(wv.value[0], wv.windows[0])].append(wv.pane)
    for seq in by_window.values():
        assert [p.index for p in seq] == list(range(len(seq)))
        assert [p.is_first for p in seq] == [i == 0 for i in range(len(seq))]
        assert [p.is_last for p in seq[:-1]] == [False] * (len(seq) - 1)
        timings = [p.timing for p in seq]
        assert timings == sorted(timings) and timings.count(ON_TIME) <= 1
        assert [p.nonspeculative_index for p in seq if p.timing is not EARLY] == list(
            range(sum(p.timing is not EARLY for p in seq))
        )
    return by_window


@settings(max_examples=150, deadline=None)
@given(
    elements=ELEMENTS,
    window_fn=WINDOW_FNS,
    trigger=TRIGGERS,
    steps=st.lists(st.integers(0, 4), min_size=1, max_size=5),
)
def test_discarding_panes_partition_the_input(elements, window_fn, trigger, steps):
    engine = PaneEngine(window_fn, trigger, AccumulationMode.DISCARDING)
    out = _streaming_run(engine, elements, steps)
    _check_pane_sequences(out)
    emitted = Counter((wv.value[0], v) for wv in out for v in wv.value[1])
    copies = sum(len(_assign(window_fn, t * S)) for _, t, _ in elements)
    if isinstance(window_fn, Sessions):
        copies = len(elements)
    assert sum(emitted.values()) + engine.dropped_closed == copies
    assert engine.dropped_late == 0 and engine.pane_count == 0
    if not trigger.may_finish():
        assert engine.dropped_closed == 0
        if isinstance(window_fn, Sessions):  # a pane emitted before a merge keeps its window
            assert emitted == Counter((k, v) for k, _, v in elements)
            return
        expected = _batch_groups(window_fn, elements)
        got = defaultdict(list)
        for wv in out:
            got[(wv.value[0], wv.windows[0])] += wv.value[1]
        got = {gk: sorted(vs) for gk, vs in got.items() if vs}
        assert got == {gk: vs for gk, (vs, _) in expected.items()}


@settings(max_examples=150, deadline=None)
@given(
    elements=ELEMENTS,
    window_fn=WINDOW_FNS,
    trigger=TRIGGERS.filter(lambda t: not t.may_finish()),
    steps=st.lists(st.integers(0, 4), min_size=1, max_size=5),
)
def test_accumulating_last_pane_equals_the_batch_result(elements, window_fn, trigger, steps):
    engine = PaneEngine(window_fn, trigger, AccumulationMode.ACCUMULATING)
    out = _streaming_run(engine, elements, steps)
    by_window = _check_pane_sequences(out)
    last = {}
    for wv in out:
        last[(wv.value[0], wv.windows[0])] = sorted(wv.value[1])
    expected = _batch_groups(window_fn, elements)
    if not isinstance(window_fn, Sessions):  # merged-away session windows keep their old panes
        assert set(by_window) == set(expected)
    for gk, (values, _) in expected.items():
        assert last[gk] == values


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("element"), KEYS, EVENT_TIMES, st.integers(0, 99)),
        st.tuples(st.just("watermark"), EVENT_TIMES),
        st.tuples(st.just("clock"), st.integers(0, 6)),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(
    ops=OPS,
    window_fn=WINDOW_FNS,
    trigger=TRIGGERS,
    combiner=st.sampled_from(list(TC)),
    lateness=st.sampled_from([0, 10 * S, 100 * S]),
)
def test_out_of_order_runs_lose_nothing_silently_and_respect_holds(
    ops, window_fn, trigger, combiner, lateness
):
    engine = PaneEngine(window_fn, trigger, DISC, lateness, combiner)
    out, copies, now = [], 0, 0
    for op in [*ops, ("finish",)]:
        output_watermark = min(engine.watermark, engine.hold())
        if op[0] == "element":
            _, k, t, v = op
            windows = _assign(window_fn, t * S)
            copies += len(windows)
            engine.add(k, v, t * S, windows)
            step = engine.drain()
        elif op[0] == "watermark":
            step = engine.advance_watermark(op[1] * S)
        elif op[0] == "clock":
            now += op[1] * S
            step = engine.advance_processing_time(now)
        else:
            step = engine.finish()
        for wv in step:  # only LATE panes may be behind the output watermark
            assert wv.pane.timing is LATE or wv.timestamp_us >= output_watermark
        out += step
    _check_pane_sequences(out)
    emitted = sum(len(wv.value[1]) for wv in out)
    assert emitted + engine.dropped_late + engine.dropped_closed == copies
    assert engine.pane_count == 0 and engine.hold() == MAX_US and engine.next_deadline() is None


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
