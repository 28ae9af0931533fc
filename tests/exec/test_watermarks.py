"""The watermark tracker: Beam's propagation rules, and skipping only what cannot change."""

from __future__ import annotations

import pytest

from headrace.exec.watermarks import TrackedStep, WatermarkTracker
from headrace.model.timestamp import MAX_US, MIN_US


class Holder:
    """An ``advance`` callback with a settable hold that records its calls."""

    def __init__(self, hold: int = MAX_US) -> None:
        self.hold = hold
        self.calls: list[tuple[int, int]] = []

    def __call__(self, in_wm: int, now: int) -> int:
        self.calls.append((in_wm, now))
        return self.hold


def diamond(group: Holder, gate: Holder) -> WatermarkTracker:
    """a, b (sources) -> Flatten -> f -> Group -> g; Gate reads g, watches side s."""
    return WatermarkTracker(
        ["a", "b", "s", "f", "g", "out"],
        [
            TrackedStep("Flatten", ("a", "b"), ("f",)),
            TrackedStep("Group", ("f",), ("g",), advance=group),
            TrackedStep("Gate", ("g",), ("out",), advance=gate, watches=("s",)),
        ],
    )


def test_input_watermark_is_the_minimum_of_the_inputs_and_outputs_are_held():
    group, gate = Holder(hold=40), Holder()
    t = diamond(group, gate)
    assert set(t.watermarks.values()) == {MIN_US}
    t.set_source("a", 100)
    t.advance(0)
    assert t.watermarks["f"] == MIN_US  # b has not moved
    t.set_source("b", 70)
    t.advance(0)
    assert t.input_watermark("Flatten") == 70 and t.watermarks["f"] == 70
    assert t.input_watermark("Group") == 70 and t.output_watermark("Group") == 40  # the hold
    assert t.input_watermark("Gate") == 40 and t.watermarks["out"] == 40
    # the downstream step saw the upstream output of the same round
    assert gate.calls[-1] == (40, 0)


def test_watermarks_never_move_back():
    group, gate = Holder(hold=MAX_US), Holder()
    t = diamond(group, gate)
    t.set_source("a", 100)
    t.set_source("b", 100)
    t.advance(0)
    assert t.watermarks["g"] == 100
    group.hold = 10  # a hold behind the output watermark cannot pull it back
    t.received("Group")
    t.advance(0)
    assert t.watermarks["g"] == 100
    t.set_source("a", 50)  # nor can a source
    assert t.watermarks["a"] == 100


def test_a_step_is_advanced_again_only_when_something_it_sees_changed():
    group, gate = Holder(hold=MAX_US), Holder()
    t = diamond(group, gate)
    t.set_source("a", 10)
    t.set_source("b", 10)
    t.advance(0)
    assert len(group.calls) == 1 and len(gate.calls) == 1
    t.advance(0)  # nothing changed: both skipped
    assert len(group.calls) == 1 and len(gate.calls) == 1 and t.skipped == 2
    t.received("Group")  # a bundle arrived: its hold may differ
    t.advance(0)
    assert len(group.calls) == 2 and len(gate.calls) == 1
    t.set_source("s", 5)  # the gate watches its side input
    t.advance(0)
    assert len(group.calls) == 2 and len(gate.calls) == 2
    t.advance(1)  # processing time moved: every step with a callback runs
    assert len(group.calls) == 3 and len(gate.calls) == 3
    t.set_source("a", 20)
    t.advance(1)
    assert len(group.calls) == 3  # b still holds the Flatten at 10
    t.set_source("b", 20)
    t.advance(1)
    assert group.calls[-1] == (20, 1) and gate.calls[-1] == (20, 1)


def test_a_skipped_step_keeps_its_output_and_a_received_hook_marks_it():
    group, gate = Holder(hold=30), Holder()
    t = diamond(group, gate)
    t.set_source("a", 50)
    t.set_source("b", 50)
    t.advance(0)
    assert t.watermarks["g"] == 30
    group.hold = MAX_US  # the pane fired while a bundle was pushed ...
    t.advance(0)
    assert t.watermarks["g"] == 30  # ... but the tracker was not told: nothing moves
    t.receiver_hook("Group")()
    t.advance(0)
    assert t.watermarks["g"] == 50 and t.watermarks["out"] == 50


def test_unknown_steps_and_pcollections_are_errors():
    t = diamond(Holder(), Holder())
    with pytest.raises(KeyError):
        t.received("Nope")
    with pytest.raises(KeyError):
        t.set_source("nope", 1)
