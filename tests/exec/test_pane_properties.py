"""Properties of the pane engine: streaming runs agree with the batch result, lose nothing
silently, and never emit a non-LATE pane behind the output watermark they allowed."""

from __future__ import annotations

from collections import Counter, defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.exec.panes import PaneEngine
from headrace.model.timestamp import MAX_US
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
DISC = AccumulationMode.DISCARDING
TC = TimestampCombiner
S = 1_000_000

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
        assert wv.pane == PaneInfo(
            True, False, ON_TIME, 0, 0
        )  # never last: the trigger never finishes
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
    engine = PaneEngine(window_fn, trigger, AccumulationMode.DISCARDING, fire_at_expiry=True)
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
    engine = PaneEngine(window_fn, trigger, AccumulationMode.ACCUMULATING, fire_at_expiry=True)
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
    engine = PaneEngine(window_fn, trigger, DISC, lateness, combiner, fire_at_expiry=True)
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
