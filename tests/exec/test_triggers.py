"""Triggers: the model objects, the compiled state machines, and a transcript for every trigger.

A transcript is a list of events (elements with event times in seconds, watermark and processing
time moves) and the exact panes they must produce: window, values, output timestamp (int
microseconds) and pane flags.
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
from headrace.exec.triggers import TriggerContext, TriggerMachine, pane_info
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
    TriggerFn,
)
from headrace.model.window import (
    GLOBAL_WINDOW,
    GLOBAL_WINDOW_MAX_US,
    FixedWindows,
    IntervalWindow,
    PaneInfo,
    PaneInfoTiming,
)

EARLY, ON_TIME, LATE = PaneInfoTiming.EARLY, PaneInfoTiming.ON_TIME, PaneInfoTiming.LATE
ACC, DISC = AccumulationMode.ACCUMULATING, AccumulationMode.DISCARDING
W0 = IntervalWindow(0, 60)
W1 = IntervalWindow(60, 120)
EOW0 = 59_999_999  # W0's max timestamp in microseconds
EOW1 = 119_999_999
GEND = GLOBAL_WINDOW_MAX_US
S = 1_000_000


def pane(window, values, ts, first, last, timing, index, nonspec):
    """An expected pane, in the form ``panes()`` returns."""
    return (window, values, ts, PaneInfo(first, last, timing, index, nonspec))


def panes(events, engine=None, **kw):
    """Run a transcript and return (window, values, timestamp_us, PaneInfo) per emitted pane."""
    if engine is None:
        # These scripts pin the engine's mechanics, final panes at expiry included, so they run
        # with fire_at_expiry; the default (Beam's: no such pane) is pinned in test_triggers.py.
        kw.setdefault("fire_at_expiry", True)
    out = simulate(events, engine=engine, **kw)
    assert all(wv.value[0] == "k" and len(wv.windows) == 1 for wv in out)
    return [(wv.windows[0], wv.value[1], wv.timestamp_us, wv.pane) for wv in out]


def els(*pairs):
    return [Element(v, t) for v, t in pairs]


# -- the model objects ---------------------------------------------------------------------------

ALL_TRIGGERS = [
    DefaultTrigger(),
    Always(),
    AfterCount(3),
    AfterProcessingTime(10),
    AfterProcessingTime(0.5),
    AfterWatermark(),
    AfterWatermark(early=AfterCount(2)),
    AfterWatermark(early=AfterProcessingTime(5), late=AfterCount(1)),
    Repeatedly(AfterCount(2)),
    AfterAny(AfterCount(2), AfterProcessingTime(3)),
    AfterAll(AfterCount(2), AfterProcessingTime(3)),
    AfterEach(AfterCount(1), Repeatedly(AfterCount(2))),
    OrFinally(Repeatedly(AfterCount(2)), AfterCount(5)),
]


@pytest.mark.parametrize("trigger", ALL_TRIGGERS, ids=repr)
def test_triggers_pickle_and_compare_by_value(trigger):
    for dumps in (pickle.dumps, cloudpickle.dumps):
        copy = pickle.loads(dumps(trigger))
        assert copy == trigger and type(copy) is type(trigger)
        assert hash(copy) == hash(trigger) and repr(copy) == repr(trigger)
    machine = pickle.loads(pickle.dumps(TriggerMachine.for_trigger(trigger)))
    assert machine.trigger == trigger


def test_equality_depends_on_type_and_arguments():
    assert AfterCount(2) != AfterCount(3)
    assert AfterAny(AfterCount(1), AfterCount(2)) != AfterAll(AfterCount(1), AfterCount(2))
    assert OrFinally(AfterCount(1), AfterCount(2)) != AfterAny(AfterCount(1), AfterCount(2))
    assert AfterWatermark(early=AfterCount(1)) != AfterWatermark(late=AfterCount(1))
    assert len({DefaultTrigger(), DefaultTrigger(), Always()}) == 2


def test_beam_names_and_shapes():
    assert AfterWatermark(early=AfterCount(1)).early == Repeatedly(AfterCount(1))
    assert AfterWatermark(early=Repeatedly(AfterCount(1))).early == Repeatedly(AfterCount(1))
    assert AfterWatermark().early is None and AfterWatermark().late is None
    assert OrFinally(AfterCount(1), AfterCount(2)).triggers == (AfterCount(1), AfterCount(2))
    assert isinstance(OrFinally(AfterCount(1), AfterCount(2)), AfterAny)
    assert repr(AfterWatermark(early=AfterCount(1), late=AfterCount(2))) == (
        "AfterWatermark(early=AfterCount(1), late=AfterCount(2))"
    )
    assert AccumulationMode.DISCARDING == 1 and AccumulationMode.ACCUMULATING == 2
    assert all(isinstance(t, TriggerFn) for t in ALL_TRIGGERS)


def test_beam_module_path():
    import headrace.beam as beam
    from headrace.beam.transforms import trigger

    assert beam.transforms.trigger is trigger
    assert trigger.AfterWatermark is AfterWatermark
    assert set(trigger.__all__) >= {
        "AccumulationMode",
        "TriggerFn",
        "DefaultTrigger",
        "AfterWatermark",
        "AfterProcessingTime",
        "AfterCount",
        "Repeatedly",
        "AfterAny",
        "AfterAll",
        "AfterEach",
        "OrFinally",
        "Always",
    }


@pytest.mark.parametrize(
    ("trigger", "may_finish"),
    [
        (DefaultTrigger(), False),
        (Always(), False),
        (AfterCount(2), True),
        (AfterProcessingTime(5), True),
        (Repeatedly(AfterCount(2)), False),
        (AfterWatermark(), True),
        (AfterWatermark(early=AfterCount(2)), True),
        (AfterWatermark(late=AfterCount(1)), False),
        (AfterAny(Repeatedly(AfterCount(1)), AfterCount(5)), True),
        (AfterAny(Repeatedly(AfterCount(1)), Always()), False),
        (AfterAll(Repeatedly(AfterCount(1)), AfterCount(5)), False),
        (AfterAll(AfterCount(1), AfterCount(5)), True),
        (AfterEach(AfterCount(1), AfterCount(2)), True),
        (AfterEach(AfterCount(1), Repeatedly(AfterCount(2))), False),
        (OrFinally(Repeatedly(AfterCount(2)), AfterCount(5)), True),
    ],
    ids=repr,
)
def test_may_finish(trigger, may_finish):
    assert trigger.may_finish() is may_finish


def test_after_watermark_without_late_firings_loses_nothing_without_lateness():
    assert AfterWatermark().may_finish(allowed_lateness=0) is False
    assert AfterWatermark().may_finish(allowed_lateness=10) is True


def test_has_ontime_pane():
    assert DefaultTrigger().has_ontime_pane() and AfterWatermark().has_ontime_pane()
    assert not AfterCount(2).has_ontime_pane() and not Always().has_ontime_pane()
    assert Repeatedly(AfterWatermark()).has_ontime_pane()
    assert AfterAny(AfterCount(2), AfterWatermark()).has_ontime_pane()


def test_bad_arguments_say_what_to_do():
    with pytest.raises(ValueError, match="positive integer"):
        AfterCount(0)
    with pytest.raises(ValueError, match="positive integer"):
        AfterCount(True)
    with pytest.raises(ValueError, match="0 or more seconds"):
        AfterProcessingTime(-1)
    with pytest.raises(TypeError, match="instance, got the class AfterCount"):
        Repeatedly(AfterCount)
    with pytest.raises(TypeError, match="needs a trigger such as"):
        AfterAny(AfterCount(1), 5)
    with pytest.raises(ValueError, match="at least one trigger"):
        AfterAll()
    with pytest.raises(TypeError, match="AfterWatermark"):
        AfterWatermark(early="soon")


def test_custom_trigger_subclasses_are_refused_clearly():
    class MyTrigger(TriggerFn):
        def may_finish(self, allowed_lateness=None):
            return False

        def has_ontime_pane(self):
            return False

    with pytest.raises(TypeError, match="compose those instead of subclassing TriggerFn"):
        TriggerMachine.for_trigger(Repeatedly(MyTrigger()))


# -- the machine on its own ----------------------------------------------------------------------


def test_machine_states_are_plain_lists_and_deadlines_are_reported():
    m = TriggerMachine.for_trigger(AfterWatermark(early=AfterProcessingTime(10)))
    ctx = TriggerContext(W0, EOW0, watermark=0, now=5 * S)
    st = m.new_state()
    assert st == m.new_state() and st is not m.new_state()
    assert m.next_deadline(st, ctx) is None
    m.on_element(st, ctx)
    assert m.next_deadline(st, ctx) == 15 * S
    assert not m.should_fire(st, ctx)
    ctx.now = 15 * S
    assert m.should_fire(st, ctx) and m.next_deadline(st, ctx) is None
    m.on_fire(st, ctx)
    assert not m.is_finished(st) and not m.should_fire(st, ctx)
    ctx.watermark = EOW0 + 1
    assert m.should_fire(st, ctx)
    m.on_fire(st, ctx)
    assert m.is_finished(st) and not m.should_fire(st, ctx)
    assert pickle.loads(pickle.dumps(st)) == st


def test_machine_merge_adds_counts_and_keeps_the_earliest_deadline():
    m = TriggerMachine.for_trigger(AfterAny(AfterCount(3), AfterProcessingTime(10)))
    ctx = TriggerContext(W0, EOW0, watermark=0, now=0)
    a, b = m.new_state(), m.new_state()
    m.on_element(a, ctx)
    ctx.now = 4 * S
    m.on_element(b, ctx)
    m.on_element(b, ctx)
    merged = m.merge([a, b], ctx)
    assert m.next_deadline(merged, ctx) == 10 * S
    assert m.should_fire(merged, ctx)  # 1 + 2 elements: AfterCount(3) is satisfied
    assert not m.should_fire(a, ctx) and not m.should_fire(b, ctx)


def test_machine_merge_finished_only_if_finished_in_every_window():
    m = TriggerMachine.for_trigger(AfterCount(1))
    ctx = TriggerContext(W0, EOW0, watermark=0, now=0)
    done, fresh = m.new_state(), m.new_state()
    m.on_element(done, ctx)
    m.on_fire(done, ctx)
    assert m.is_finished(done)
    assert not m.is_finished(m.merge([done, fresh], ctx))
    assert m.is_finished(m.merge([done, list(done)], ctx))


def test_after_watermark_merge_returns_to_early_phase_when_window_end_moves_out():
    m = TriggerMachine.for_trigger(AfterWatermark(late=AfterCount(1)))
    ctx = TriggerContext(W0, EOW0, watermark=EOW0 + 1, now=0)
    st = m.new_state()
    m.on_element(st, ctx)
    m.on_fire(st, ctx)  # the ON_TIME firing: now in the late phase
    later = TriggerContext(W1, EOW1, watermark=EOW0 + 1, now=0)
    merged = m.merge([st, m.new_state()], later)
    assert not m.should_fire(merged, later)  # waits for the merged window's end again
    later.watermark = EOW1 + 1
    assert m.should_fire(merged, later)


def test_pane_info_rules():
    assert pane_info(0, 0, True, 10, EOW0, False) == PaneInfo(True, False, EARLY, 0, -1)
    assert pane_info(3, 0, True, EOW0, EOW0, True) == PaneInfo(False, True, EARLY, 3, -1)
    assert pane_info(1, 0, True, EOW0 + 1, EOW0, False) == PaneInfo(False, False, ON_TIME, 1, 0)
    assert pane_info(1, 0, False, EOW0 + 1, EOW0, False) == PaneInfo(False, False, LATE, 1, 0)
    assert pane_info(4, 2, True, EOW0 + 1, EOW0, True) == PaneInfo(False, True, LATE, 4, 2)


# -- a transcript for every trigger --------------------------------------------------------------


def test_default_trigger_on_time_then_one_pane_per_late_element():
    engine = PaneEngine(FixedWindows(60), allowed_lateness_us=10 * S)
    events = [
        *els(("a", 1), ("b", 61), ("c", 2)),
        WatermarkTo(30),
        Element("d", 5),  # behind the watermark, but its window is still open
        WatermarkTo(60),
        Element("e", 10),  # late, within the allowed lateness
        Element("f", 20),
        WatermarkTo(70),  # W0 is garbage collected
        Element("g", 30),  # beyond the allowed lateness: dropped
        EndOfInput(),
    ]
    assert panes(events, engine) == [
        pane(W0, ["a", "c", "d"], EOW0, True, False, ON_TIME, 0, 0),
        pane(W0, ["e"], EOW0, False, False, LATE, 1, 1),
        pane(W0, ["f"], EOW0, False, False, LATE, 2, 2),
        pane(W1, ["b"], EOW1, True, False, ON_TIME, 0, 0),
    ]
    assert engine.dropped_late == 1 and engine.dropped_closed == 0
    assert engine.pane_count == 0


def test_default_trigger_without_lateness_emits_one_pane_and_drops_late_data():
    """The one pane is not marked last: Beam Python marks a pane last only when its trigger
    finished (apache_beam/transforms/trigger.py, GeneralTriggerDriver._output), and the default
    trigger never finishes, even when the window expires with the pane (Beam Java differs)."""
    engine = PaneEngine(FixedWindows(60))
    events = [*els(("a", 1), ("b", 2)), WatermarkTo(60), Element("c", 3), EndOfInput()]
    assert panes(events, engine) == [pane(W0, ["a", "b"], EOW0, True, False, ON_TIME, 0, 0)]
    assert engine.dropped_late == 1


def test_default_trigger_in_the_global_window_fires_at_end_of_input():
    """Streaming, so not last (batch's only firing of the global window is: see
    tests/runners/test_streaming_properties.py)."""
    out = panes([*els(("a", 1), ("b", 2)), WatermarkTo(1e9), EndOfInput()])
    assert out == [pane(GLOBAL_WINDOW, ["a", "b"], GEND, True, False, ON_TIME, 0, 0)]


@pytest.mark.parametrize(
    ("mode", "on_time_values"), [(DISC, ["c"]), (ACC, ["a", "b", "c"])], ids=["disc", "acc"]
)
def test_after_watermark_with_early_count_firings(mode, on_time_values):
    events = [*els(("a", 1), ("b", 2), ("c", 3)), WatermarkTo(60)]
    out = panes(
        events,
        window_fn=FixedWindows(60),
        trigger=AfterWatermark(early=AfterCount(2)),
        accumulation_mode=mode,
    )
    assert out == [
        pane(W0, ["a", "b"], EOW0, True, False, EARLY, 0, -1),
        pane(W0, on_time_values, EOW0, False, True, ON_TIME, 1, 0),
    ]


@pytest.mark.parametrize(("mode", "values"), [(DISC, []), (ACC, ["a", "b"])], ids=["disc", "acc"])
def test_on_time_pane_is_emitted_even_when_nothing_new_arrived(mode, values):
    events = [*els(("a", 1), ("b", 2)), WatermarkTo(60)]
    out = panes(
        events,
        window_fn=FixedWindows(60),
        trigger=AfterWatermark(early=AfterCount(2)),
        accumulation_mode=mode,
    )
    assert out == [
        pane(W0, ["a", "b"], EOW0, True, False, EARLY, 0, -1),
        pane(W0, values, EOW0, False, True, ON_TIME, 1, 0),
    ]


def test_after_watermark_without_late_firings_finishes_and_drops_late_data():
    engine = PaneEngine(FixedWindows(60), AfterWatermark(), allowed_lateness_us=30 * S)
    events = [Element("a", 1), WatermarkTo(60), Element("late", 5), EndOfInput()]
    assert panes(events, engine) == [pane(W0, ["a"], EOW0, True, True, ON_TIME, 0, 0)]
    assert engine.dropped_closed == 1 and engine.dropped_late == 0


@pytest.mark.parametrize("mode", [DISC, ACC], ids=["disc", "acc"])
def test_after_watermark_late_firings_and_final_pane_at_expiry(mode):
    events = [
        Element("a", 1),
        WatermarkTo(60),
        *els(("b", 2), ("c", 3), ("d", 4)),  # late: fires at every second element
        WatermarkTo(200),  # expires W0 with "d" never emitted: a final pane
    ]
    out = panes(
        events,
        window_fn=FixedWindows(60),
        trigger=AfterWatermark(late=AfterCount(2)),
        accumulation_mode=mode,
        allowed_lateness_us=100 * S,
    )
    acc = mode is ACC
    assert out == [
        pane(W0, ["a"], EOW0, True, False, ON_TIME, 0, 0),
        pane(W0, ["a", "b", "c"] if acc else ["b", "c"], EOW0, False, False, LATE, 1, 1),
        pane(W0, ["a", "b", "c", "d"] if acc else ["d"], EOW0, False, True, LATE, 2, 2),
    ]


@pytest.mark.parametrize("mode", [DISC, ACC], ids=["disc", "acc"])
def test_after_watermark_early_processing_time_and_late_count(mode):
    engine = PaneEngine(
        FixedWindows(60),
        AfterWatermark(early=AfterProcessingTime(10), late=AfterCount(1)),
        accumulation_mode=mode,
        allowed_lateness_us=100 * S,
    )
    events = [
        Element("a", 1),  # processing time 0: an early firing is due at 10
        ProcessingTimeTo(5),
        Element("b", 2),
        ProcessingTimeTo(10),
        Element("c", 3),  # the next early firing would be due at 20
        WatermarkTo(60),
        ProcessingTimeTo(20),  # after the ON_TIME pane: no early firing any more
        Element("late", 4),
        EndOfInput(),
    ]
    acc = mode is ACC
    assert panes(events, engine) == [
        pane(W0, ["a", "b"], EOW0, True, False, EARLY, 0, -1),
        pane(W0, ["a", "b", "c"] if acc else ["c"], EOW0, False, False, ON_TIME, 1, 0),
        pane(W0, ["a", "b", "c", "late"] if acc else ["late"], EOW0, False, False, LATE, 2, 1),
    ]
    assert engine.next_deadline() is None


def test_after_processing_time_fires_once_then_drops():
    engine = PaneEngine(trigger=AfterProcessingTime(10))
    events = [Element("a", 1), ProcessingTimeTo(4), Element("b", 2)]
    assert panes(events, engine) == []
    assert engine.next_deadline() == 10 * S  # 10 s after the first element of the pane
    events = [ProcessingTimeTo(9.999999), ProcessingTimeTo(10), Element("c", 3), EndOfInput()]
    assert panes(events, engine) == [
        pane(GLOBAL_WINDOW, ["a", "b"], GEND, True, True, EARLY, 0, -1)
    ]
    assert engine.dropped_closed == 1 and engine.next_deadline() is None


def test_repeatedly_after_processing_time_restarts_with_the_next_element():
    engine = PaneEngine(trigger=Repeatedly(AfterProcessingTime(10)), fire_at_expiry=True)
    events = [
        Element("a", 1),
        ProcessingTimeTo(4),
        Element("b", 2),
        ProcessingTimeTo(12),
        Element("c", 3),  # next deadline: 22
        ProcessingTimeTo(21),
        Element("d", 4),
        ProcessingTimeTo(22),
        Element("e", 5),
        EndOfInput(),  # "e" was never emitted: the final pane carries it
    ]
    assert panes(events, engine) == [
        pane(GLOBAL_WINDOW, ["a", "b"], GEND, True, False, EARLY, 0, -1),
        pane(GLOBAL_WINDOW, ["c", "d"], GEND, False, False, EARLY, 1, -1),
        pane(GLOBAL_WINDOW, ["e"], GEND, False, True, ON_TIME, 2, 0),
    ]
    assert engine.next_deadline() is None


def test_after_count_fires_once_then_drops():
    engine = PaneEngine(trigger=AfterCount(3))
    events = [*els(("a", 1), ("b", 2), ("c", 3), ("d", 4)), EndOfInput()]
    assert panes(events, engine) == [
        pane(GLOBAL_WINDOW, ["a", "b", "c"], GEND, True, True, EARLY, 0, -1)
    ]
    assert engine.dropped_closed == 1


def test_by_default_data_the_trigger_never_emitted_is_not_emitted_at_expiry():
    """Beam Python's trigger driver emits a pane only when the trigger fires
    (``apache_beam/transforms/trigger.py``, ``GeneralTriggerDriver.process_timer``); Beam's
    ``leader_board_test.test_leader_board_users`` expects no output from
    ``Repeatedly(AfterCount(10))`` over fewer elements. headrace emitted a final pane."""
    events = [*els(("a", 1), ("b", 2), ("x", 70)), WatermarkTo(60), EndOfInput()]
    assert simulate(events, window_fn=FixedWindows(60), trigger=AfterCount(3)) == []
    events = [*els(("a", 1), ("b", 2), ("c", 3)), EndOfInput()]
    out = simulate(events, trigger=Repeatedly(AfterCount(2)))
    assert [wv.value[1] for wv in out] == [["a", "b"]]


def test_after_count_never_reached_emits_the_data_when_the_window_expires():
    events = [*els(("a", 1), ("b", 2), ("x", 70)), WatermarkTo(60), EndOfInput()]
    out = panes(events, window_fn=FixedWindows(60), trigger=AfterCount(3))
    assert out == [
        pane(W0, ["a", "b"], EOW0, True, True, ON_TIME, 0, 0),
        pane(W1, ["x"], EOW1, True, True, ON_TIME, 0, 0),
    ]


@pytest.mark.parametrize("mode", [DISC, ACC], ids=["disc", "acc"])
def test_repeatedly_after_count(mode):
    events = [*els(("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)), EndOfInput()]
    out = panes(events, trigger=Repeatedly(AfterCount(2)), accumulation_mode=mode)
    acc = mode is ACC
    assert out == [
        pane(GLOBAL_WINDOW, ["a", "b"], GEND, True, False, EARLY, 0, -1),
        pane(
            GLOBAL_WINDOW,
            ["a", "b", "c", "d"] if acc else ["c", "d"],
            GEND,
            False,
            False,
            EARLY,
            1,
            -1,
        ),
        pane(
            GLOBAL_WINDOW,
            ["a", "b", "c", "d", "e"] if acc else ["e"],
            GEND,
            False,
            True,
            ON_TIME,
            2,
            0,
        ),
    ]


def test_after_any_fires_with_the_first_subtrigger_then_finishes():
    trigger = AfterAny(AfterCount(3), AfterProcessingTime(5))
    engine = PaneEngine(trigger=trigger)
    events = [Element("a", 1), Element("b", 2), ProcessingTimeTo(5), Element("c", 3)]
    assert panes(events, engine) == [
        pane(GLOBAL_WINDOW, ["a", "b"], GEND, True, True, EARLY, 0, -1)
    ]
    assert engine.dropped_closed == 1
    events = [*els(("a", 1), ("b", 2), ("c", 3)), ProcessingTimeTo(5), EndOfInput()]
    assert panes(events, trigger=trigger) == [
        pane(GLOBAL_WINDOW, ["a", "b", "c"], GEND, True, True, EARLY, 0, -1)
    ]


def test_after_all_waits_for_every_subtrigger():
    trigger = AfterAll(AfterCount(2), AfterProcessingTime(5))
    events = [Element("a", 1), ProcessingTimeTo(5), Element("b", 2), Element("c", 3), EndOfInput()]
    assert panes(events, trigger=trigger) == [
        pane(GLOBAL_WINDOW, ["a", "b"], GEND, True, True, EARLY, 0, -1)
    ]
    events = [*els(("a", 1), ("b", 2), ("c", 3)), ProcessingTimeTo(4), ProcessingTimeTo(5)]
    assert panes(events, trigger=trigger) == [
        pane(GLOBAL_WINDOW, ["a", "b", "c"], GEND, True, True, EARLY, 0, -1)
    ]


def test_after_each_runs_its_subtriggers_in_sequence():
    engine = PaneEngine(trigger=AfterEach(AfterCount(1), AfterCount(2)))
    events = els(("a", 1), ("b", 2), ("c", 3), ("d", 4))
    assert panes(events, engine) == [
        pane(GLOBAL_WINDOW, ["a"], GEND, True, False, EARLY, 0, -1),
        pane(GLOBAL_WINDOW, ["b", "c"], GEND, False, True, EARLY, 1, -1),
    ]
    assert engine.dropped_closed == 1


def test_repeatedly_after_each_starts_the_sequence_again():
    events = [*els(("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5)), EndOfInput()]
    out = panes(events, trigger=Repeatedly(AfterEach(AfterCount(1), AfterCount(2))))
    assert out == [
        pane(GLOBAL_WINDOW, ["a"], GEND, True, False, EARLY, 0, -1),
        pane(GLOBAL_WINDOW, ["b", "c"], GEND, False, False, EARLY, 1, -1),
        pane(GLOBAL_WINDOW, ["d"], GEND, False, False, EARLY, 2, -1),
        pane(GLOBAL_WINDOW, ["e"], GEND, False, True, ON_TIME, 3, 0),
    ]


def test_or_finally_fires_with_main_until_the_finally_trigger_fires():
    engine = PaneEngine(trigger=OrFinally(Repeatedly(AfterCount(2)), AfterCount(5)))
    events = [*els(("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5), ("f", 6)), EndOfInput()]
    assert panes(events, engine) == [
        pane(GLOBAL_WINDOW, ["a", "b"], GEND, True, False, EARLY, 0, -1),
        pane(GLOBAL_WINDOW, ["c", "d"], GEND, False, False, EARLY, 1, -1),
        pane(GLOBAL_WINDOW, ["e"], GEND, False, True, EARLY, 2, -1),
    ]
    assert engine.dropped_closed == 1


def test_or_finally_with_the_watermark_closes_at_the_end_of_the_window():
    trigger = OrFinally(Repeatedly(AfterCount(1)), AfterWatermark())
    engine = PaneEngine(FixedWindows(60), trigger, allowed_lateness_us=30 * S)
    events = [*els(("a", 1), ("b", 2)), WatermarkTo(60), Element("c", 3), EndOfInput()]
    assert panes(events, engine) == [
        pane(W0, ["a"], EOW0, True, False, EARLY, 0, -1),
        pane(W0, ["b"], EOW0, False, False, EARLY, 1, -1),
        pane(W0, [], EOW0, False, True, ON_TIME, 2, 0),
    ]
    assert engine.dropped_closed == 1


def test_always_fires_for_every_element():
    engine = PaneEngine(FixedWindows(60), Always(), allowed_lateness_us=10 * S)
    events = [*els(("a", 1), ("b", 2)), WatermarkTo(60), Element("c", 3), EndOfInput()]
    assert panes(events, engine) == [
        pane(W0, ["a"], EOW0, True, False, EARLY, 0, -1),
        pane(W0, ["b"], EOW0, False, False, EARLY, 1, -1),
        # Always has no ON_TIME pane and nothing held the window back: the first
        # non-speculative pane is LATE.
        pane(W0, ["c"], EOW0, False, False, LATE, 2, 0),
    ]
