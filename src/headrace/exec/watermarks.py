"""Watermarks of a streaming run: each step's input and output watermark, and when they move.

A runner describes its push network once, as :class:`TrackedStep` s in topological order, and
drives a :class:`WatermarkTracker`: it reports the watermark of every source output
(:meth:`WatermarkTracker.set_source`), notes which steps received a bundle
(:meth:`WatermarkTracker.received`), and after each bundle, watermark move or clock move calls
:meth:`WatermarkTracker.advance`. The tracker applies Beam's rules, the same for every runner:

- A source's watermark is what its reader (or TestStream) reports. No watermark moves back: a
  PCollection's watermark is the maximum of its old value and the new one.
- A step's **input watermark** is the minimum of the watermarks of the PCollections it reads as
  main inputs (side inputs do not enter it; elements waiting for a side input hold the output
  instead, see below). A step without inputs has an input watermark of +infinity.
- A step's **output watermark**, the watermark of each PCollection it writes, is
  ``min(input watermark, hold)``. The hold is the earliest timestamp the step may still emit, as
  its ``advance`` callback returns it after firing what the new input watermark and processing
  time make due: a grouping's earliest pane hold (``exec.panes.PaneEngine.hold``), a stateful
  DoFn's earliest timer or state hold (``exec.stateful.StatefulParDo.advance``), the earliest
  element a side-input gate still buffers. A step without a callback holds nothing: its output
  watermark is its input watermark (Beam: a stateless ``ParDo``, ``Flatten``, ``WindowInto``).
- Updates happen per bundle, never per element: the runner pushes a whole bundle, then advances
  the tracker once. Steps are visited in topological order, so each sees the watermarks its
  upstream steps reached in the same round (what their callbacks fired has already been pushed
  downstream synchronously).
- A step is skipped (its callback not called) when nothing it would see has changed since it was
  last advanced: the same input watermark, the same watermarks of the PCollections it watches
  (side inputs), the same processing time, and no bundle received. Its callback would fire
  nothing and return the same hold, so the result cannot differ.

The tracker knows nothing of panes, timers or sources; those stay in ``exec.panes``,
``exec.stateful`` and the runner.

>>> holds = {"Group": 30}
>>> tracker = WatermarkTracker(
...     ["src", "windowed", "sums"],
...     [
...         TrackedStep("Window", ("src",), ("windowed",)),
...         TrackedStep("Group", ("windowed",), ("sums",), advance=lambda wm, now: holds["Group"]),
...     ],
... )
>>> tracker.set_source("src", 50)
>>> tracker.advance(now_us=0)
>>> tracker.watermarks["windowed"], tracker.watermarks["sums"]
(50, 30)
>>> holds["Group"] = MAX_US  # the pane fired: nothing held any more
>>> tracker.received("Group")
>>> tracker.advance(now_us=0)
>>> tracker.watermarks["sums"]
50
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from headrace.model.timestamp import MAX_US, MIN_US

__all__ = ["Advance", "TrackedStep", "WatermarkTracker"]

# (input watermark, processing time), both int microseconds -> the step's hold.
Advance = Callable[[int, int], int]


@dataclass(frozen=True)
class TrackedStep:
    """One step of the push network: the PCollections it reads (``inputs``, main inputs only),
    writes (``outputs``) and otherwise looks at the watermark of (``watches``: side inputs), and
    its ``advance`` callback (None for a step that holds nothing)."""

    id: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    advance: Advance | None = None
    watches: tuple[str, ...] = ()


class _State:
    __slots__ = (
        "advance",
        "dirty",
        "input_seen",
        "input_wm",
        "inputs",
        "now",
        "outputs",
        "seen",
        "step",
        "watches",
    )

    def __init__(self, step: TrackedStep) -> None:
        self.step = step
        self.inputs, self.outputs, self.watches = step.inputs, step.outputs, step.watches
        self.advance = step.advance
        self.input_wm = MIN_US
        self.input_seen: int | None = None  # the input watermark at the last advance
        self.seen: tuple[int, ...] | None = None  # the watched watermarks at the last advance
        self.now: int | None = None
        self.dirty = True


class WatermarkTracker:
    """The watermarks (int microseconds) of a streaming run's PCollections; see the module doc.

    ``pcollections`` are every PCollection id of the run (all start at the minimum timestamp);
    ``steps`` are the steps that have outputs, in topological order. Source outputs are not
    written by any step: the runner sets them with :meth:`set_source`.
    """

    def __init__(self, pcollections: Iterable[str], steps: Iterable[TrackedStep]) -> None:
        self.watermarks: dict[str, int] = dict.fromkeys(pcollections, MIN_US)
        self._states = [_State(step) for step in steps]
        self._by_id = {s.step.id: s for s in self._states}
        self.skipped = 0  # advances skipped because nothing had changed (for tests and profiles)

    def set_source(self, pcollection: str, watermark_us: int) -> None:
        """A source reports its output's watermark (it never moves the watermark back)."""
        wm = self.watermarks
        wm[pcollection] = max(wm[pcollection], watermark_us)

    def received(self, step_id: str) -> None:
        """``step_id`` received a bundle: its hold may have changed; advance it next round."""
        self._by_id[step_id].dirty = True

    def receiver_hook(self, step_id: str) -> Callable[[], None]:
        """A function that does :meth:`received` for ``step_id`` (for a runner's receivers)."""
        state = self._by_id[step_id]

        def mark() -> None:
            state.dirty = True

        return mark

    def input_watermark(self, step_id: str) -> int:
        """The input watermark ``step_id`` had when it was last advanced."""
        return self._by_id[step_id].input_wm

    def output_watermark(self, step_id: str) -> int:
        """The watermark of ``step_id``'s (first) output; +infinity for a step without one."""
        outputs = self._by_id[step_id].step.outputs
        return self.watermarks[outputs[0]] if outputs else MAX_US

    def advance(self, now_us: int) -> None:
        """One round: recompute every step's input and output watermark, in topological order,
        calling the ``advance`` callbacks of the steps whose view changed."""
        wm = self.watermarks
        for state in self._states:
            inputs = state.inputs
            if len(inputs) == 1:
                in_wm = wm[inputs[0]]
            else:
                in_wm = min([wm[p] for p in inputs], default=MAX_US)
            state.input_wm = in_wm
            advance = state.advance
            if advance is None:
                out_wm = in_wm
            else:
                seen = (*(wm[p] for p in state.watches),) if state.watches else None
                if (
                    not state.dirty
                    and in_wm == state.input_seen
                    and seen == state.seen
                    and now_us == state.now
                ):
                    self.skipped += 1
                    continue  # nothing it sees changed: the same hold, nothing to fire
                state.dirty = False
                state.input_seen, state.seen, state.now = in_wm, seen, now_us
                out_wm = min(in_wm, advance(in_wm, now_us))
            for pid in state.outputs:
                wm[pid] = max(wm[pid], out_wm)
