"""Panes: buffering, triggering, lateness and garbage collection of a grouping, per key and window.

:class:`PaneEngine` is the one implementation of *when* a grouping emits, driven the same way by
batch (the watermark jumps to +infinity at the end of input: :meth:`PaneEngine.finish`) and by
streaming (the watermark and the processing time advance step by step).

State
-----
``_panes``      ``(key, window) -> _Pane``: the live panes. A pane holds

                ``values``      the buffered values (a list, or an accumulator with a CombineFn)
                ``pending``     how many elements arrived since the last emitted pane
                ``trig``        the trigger state (see ``headrace.exec.triggers``)
                ``hold``        the output timestamp of the next pane, or None (see below)
                ``index``       panes emitted so far; ``nonspec``: of those, the not-EARLY ones
                ``closed``      the trigger finished: the pane stays, empty, until garbage
                                collection, so that later elements are dropped and counted
``_active``     ``key -> set of windows`` with live panes, for merging window functions only.
``_event_heap`` ``(time, seq, key, window)``: when the watermark passes ``time`` the pane is
                evaluated; one entry at the window's max timestamp (the end-of-window moment)
                and one at its garbage-collection time (max timestamp + allowed lateness).
``_pt_heap``    ``(deadline, seq, key, window)``: processing-time wake-ups asked for by triggers.
``_hold_heap``  ``(hold, seq, key, window)``: candidates for :meth:`PaneEngine.hold` (lazy).
Entries of the heaps that no longer match a pane are skipped when they surface.

Who moves it
------------
- :meth:`PaneEngine.add` drops an element whose window is past garbage collection (counted in
  ``dropped_late``) or whose trigger has finished (``dropped_closed``); otherwise buffers it,
  merges windows (merging window functions), updates the hold and the trigger, and fires the pane
  if the trigger says so.
- :meth:`PaneEngine.advance_watermark` evaluates the panes whose end of window or garbage-collection
  time it passes. A window that expires with elements its trigger never emitted drops them, as
  Beam's trigger driver does (``GeneralTriggerDriver.process_timer`` emits only when the trigger
  fires); with ``fire_at_expiry`` it emits them as a last pane (``is_last``) instead. A pane
  waiting for a processing-time wake-up it asked for before it expired stays until the wake-up
  (Beam keeps the window's state until the trigger fires); its window takes no new elements.
- :meth:`PaneEngine.advance_processing_time` evaluates the panes whose deadlines it reaches.

Emitted panes are ``WindowedValue((key, values), timestamp_us, (window,), PaneInfo)``; values are
a list (a copy in ACCUMULATING mode), or ``combine_fn.extract_output`` of the accumulator.

Output timestamps and holds
---------------------------
Each element gets an output time from the timestamp combiner: its timestamp (OUTPUT_AT_EARLIEST,
OUTPUT_AT_LATEST), the window function's transformed timestamp (OUTPUT_AT_EARLIEST_TRANSFORMED)
or the window's max timestamp (OUTPUT_AT_EOW). As in Beam's reference runner, an output time
behind the input watermark cannot hold the output back: the element is held at the end of its
window instead if that is still ahead, and not held at all otherwise (late data). The pane's hold
combines (min, or max for OUTPUT_AT_LATEST) the holds of the elements since the last pane; the
pane is emitted at its hold, or at the window's max timestamp when there is none. After an EARLY
pane of a trigger that has an ON_TIME pane, the pane is held at the end of the window, so the
ON_TIME pane cannot be late. :meth:`PaneEngine.hold` is the earliest hold of all panes: the
output watermark of the grouping is ``min(input watermark, hold())``.

Panes are emitted when the trigger fires and there is something new in them, except the ON_TIME
pane, which is emitted even when empty (Beam's default ``OnTimeBehavior.FIRE_ALWAYS``). A pane is
EARLY while the watermark is at or before the window's max timestamp; after that the first pane
is ON_TIME if the window still held the watermark back (see ``triggers.pane_info``), else LATE.
Every trigger, the default one included, is evaluated once per key and window after each bundle
given to :meth:`PaneEngine.process` (all its elements added first), as Beam's trigger drivers do
(Java ``ReduceFnRunner.processElements``, Python ``GeneralTriggerDriver.process_elements``): the
late elements of one bundle in one window make one LATE pane. So panes depend on bundling as in
Beam: a TestStream's ``add_elements`` is one bundle; the direct
runner feeds a bounded source in bundles of up to 1024 elements (Beam's batch: one per key).
:meth:`PaneEngine.add` is a bundle of one element.

Merging windows
---------------
A new element's window is merged with the key's live windows by the window function. The merged
pane concatenates the values (or merges accumulators), adds the pending counts, combines the
holds and merges the trigger states. A merge result that is a new window starts a new pane
sequence (index 0, as in Beam); one that is an existing window keeps that window's sequence. A
closed window absorbs what merges into it: the result is closed, and any data still buffered in
the other merged windows is first emitted as a last pane of its own window.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from headrace.exec.triggers import TriggerContext, TriggerMachine, pane_info
from headrace.graph.nodes import WindowingStrategy
from headrace.model.timestamp import MAX_US, MIN_US, Timestamp, to_micros
from headrace.model.trigger import AccumulationMode, TriggerFn
from headrace.model.window import (
    GLOBAL_WINDOW_MAX_US,
    BoundedWindow,
    GlobalWindows,
    PaneInfoTiming,
    TimestampCombiner,
    WindowedValue,
    WindowFn,
)

__all__ = [
    "Element",
    "EndOfInput",
    "PaneEngine",
    "ProcessingTimeTo",
    "WatermarkTo",
    "simulate",
]

_EARLY = PaneInfoTiming.EARLY
_ON_TIME = PaneInfoTiming.ON_TIME


class _Pane:
    __slots__ = (
        "closed",
        "deadline",
        "gc",
        "hold",
        "hold_pushed",
        "index",
        "max_ts",
        "nonspec",
        "pending",
        "trig",
        "values",
    )

    def __init__(self, values: Any, trig: list[Any], max_ts: int, gc: int) -> None:
        self.values = values
        self.pending = 0
        self.trig = trig
        self.hold: int | None = None
        self.hold_pushed: int | None = None
        self.deadline: int | None = None
        self.index = 0
        self.nonspec = 0
        self.closed = False
        self.max_ts = max_ts
        self.gc = gc


class PaneEngine:
    """Groups ``(key, value)`` elements per key and window and emits panes as the trigger says.

    ``window_fn`` (default: the global window), ``trigger`` (default: ``DefaultTrigger``),
    ``accumulation_mode``, ``allowed_lateness_us`` and ``timestamp_combiner`` are the windowing
    strategy of the grouped PCollection. ``combine_fn`` (optional) combines values as they arrive
    instead of buffering them. ``label`` is the grouping's, for error messages. ``fire_at_expiry``
    emits what the trigger never emitted when a window expires (see the module docstring).
    Times are int microseconds.

    >>> from headrace.model.window import FixedWindows, IntervalWindow
    >>> engine = PaneEngine(FixedWindows(60))
    >>> engine.add("k", 1, 5_000_000, (IntervalWindow(0, 60),))
    >>> engine.add("k", 2, 7_000_000, (IntervalWindow(0, 60),))
    >>> [(wv.value, wv.windows, wv.pane.timing.name) for wv in engine.finish()]
    [(('k', [1, 2]), ([0.0, 60.0),), 'ON_TIME')]
    """

    def __init__(
        self,
        window_fn: WindowFn | None = None,
        trigger: TriggerFn | None = None,
        accumulation_mode: AccumulationMode | str = AccumulationMode.DISCARDING,
        allowed_lateness_us: int = 0,
        timestamp_combiner: TimestampCombiner | str = TimestampCombiner.OUTPUT_AT_EOW,
        combine_fn: Any = None,
        watermark_us: int = MIN_US,
        processing_time_us: int = 0,
        label: str = "GroupByKey",
        fire_at_expiry: bool = False,
    ) -> None:
        self.label = label
        self.fire_at_expiry = fire_at_expiry
        self.window_fn = window_fn if window_fn is not None else GlobalWindows()
        self.merging = self.window_fn.is_merging()
        self.machine = TriggerMachine.for_trigger(trigger)
        # the default trigger over non-merging windows: panes never close (see _evaluate_default)
        self._plain_default = self.machine.is_default and not self.merging
        mode = getattr(accumulation_mode, "name", accumulation_mode)
        if mode not in ("DISCARDING", "ACCUMULATING"):
            raise ValueError(
                f"unknown accumulation mode {accumulation_mode!r}: use "
                "AccumulationMode.DISCARDING or AccumulationMode.ACCUMULATING"
            )
        self.accumulating = mode == "ACCUMULATING"
        if allowed_lateness_us < 0:
            raise ValueError(f"allowed lateness must not be negative, got {allowed_lateness_us}")
        self.lateness = allowed_lateness_us
        combiner = getattr(timestamp_combiner, "value", timestamp_combiner)
        try:
            self.timestamp_combiner = TimestampCombiner(combiner)
        except ValueError:
            raise ValueError(
                f"unknown timestamp combiner {timestamp_combiner!r}: use a TimestampCombiner"
            ) from None
        tc = self.timestamp_combiner
        self._eow = tc is TimestampCombiner.OUTPUT_AT_EOW
        self._latest = tc is TimestampCombiner.OUTPUT_AT_LATEST
        self._transformed = tc is TimestampCombiner.OUTPUT_AT_EARLIEST_TRANSFORMED
        self.combine_fn = combine_fn
        self._wm = watermark_us
        self._now = processing_time_us
        self._ctx = TriggerContext(None, 0, watermark_us, processing_time_us)
        self._panes: dict[tuple[Any, BoundedWindow], _Pane] = {}
        self._active: dict[Any, set[BoundedWindow]] = {}
        self._event_heap: list[tuple[int, int, Any, BoundedWindow]] = []
        self._pt_heap: list[tuple[int, int, Any, BoundedWindow]] = []
        self._hold_heap: list[tuple[int, int, Any, BoundedWindow]] = []
        self._seq = 0
        self._out: list[WindowedValue] = []
        self._deferred: dict[tuple[Any, BoundedWindow], None] | None = None
        self.dropped_late = 0
        self.dropped_closed = 0

    @classmethod
    def from_strategy(
        cls, strategy: WindowingStrategy, combine_fn: Any = None, label: str = "GroupByKey"
    ) -> PaneEngine:
        """An engine for a PCollection's windowing strategy (as recorded in the graph)."""
        return cls(
            label=label,
            window_fn=strategy.window_fn.load() if strategy.window_fn is not None else None,
            trigger=strategy.trigger.load() if strategy.trigger is not None else None,
            accumulation_mode=strategy.accumulation_mode,
            allowed_lateness_us=strategy.allowed_lateness_us,
            timestamp_combiner=strategy.timestamp_combiner,
            combine_fn=combine_fn,
            fire_at_expiry=strategy.fire_at_expiry,
        )

    # -- the clock ---------------------------------------------------------------------------------

    @property
    def watermark(self) -> int:
        """The input watermark (int microseconds)."""
        return self._wm

    @property
    def processing_time(self) -> int:
        """The processing time (int microseconds)."""
        return self._now

    def advance_watermark(self, watermark_us: int) -> list[WindowedValue]:
        """Move the input watermark forward (never back) and return the panes that fire."""
        if watermark_us > self._wm:
            self._wm = self._ctx.watermark = watermark_us
            heap, panes = self._event_heap, self._panes
            evaluate = self._evaluate_default if self._plain_default else self._evaluate
            while heap and heap[0][0] < watermark_us:
                _, _, key, window = heapq.heappop(heap)
                pane = panes.get((key, window))
                if pane is not None:
                    evaluate(key, window, pane)
        return self.drain()

    def advance_processing_time(self, now_us: int) -> list[WindowedValue]:
        """Move the processing time forward (never back) and return the panes that fire."""
        if now_us > self._now:
            self._now = self._ctx.now = now_us
            heap, panes = self._pt_heap, self._panes
            while heap and heap[0][0] <= now_us:
                deadline, _, key, window = heapq.heappop(heap)
                pane = panes.get((key, window))
                if pane is None or pane.deadline != deadline:
                    continue
                pane.deadline = None
                self._evaluate(key, window, pane)
        return self.drain()

    def finish(self) -> list[WindowedValue]:
        """End of input: the watermark goes to +infinity; every remaining pane is emitted."""
        return self.advance_watermark(MAX_US)

    def next_deadline(self) -> int | None:
        """The next processing time at which a trigger may fire (schedule a wake-up), or None."""
        heap, panes = self._pt_heap, self._panes
        while heap:
            deadline, _, key, window = heap[0]
            pane = panes.get((key, window))
            if pane is not None and pane.deadline == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def hold(self) -> int:
        """The earliest output timestamp a pending pane holds (``MAX_US`` when none).

        The grouping's output watermark is ``min(input watermark, hold())``.
        """
        heap, panes = self._hold_heap, self._panes
        while heap:
            value, _, key, window = heap[0]
            pane = panes.get((key, window))
            if pane is not None and pane.hold == value:
                return value
            heapq.heappop(heap)
            if pane is not None and pane.hold_pushed == value:
                pane.hold_pushed = None
                if pane.hold is not None:
                    self._push_hold(key, window, pane)
        return MAX_US

    def holding_windows(self) -> set[BoundedWindow]:
        """The windows of panes holding input that no pane has emitted yet, or (accumulating)
        keeping it for the panes to come: what would be lost if the engine were lost."""
        accumulating = self.accumulating
        return {window for (_, window), pane in self._panes.items() if pane.pending or accumulating}

    def drain(self) -> list[WindowedValue]:
        """The panes emitted since the last call (``add`` may emit: count or late firings)."""
        out = self._out
        self._out = []
        return out

    @property
    def pane_count(self) -> int:
        """How many panes (key and window) are live."""
        return len(self._panes)

    # -- adding ------------------------------------------------------------------------------------

    def add(
        self, key: Any, value: Any, timestamp_us: int, windows: Iterable[BoundedWindow]
    ) -> None:
        """Add one element in ``windows``; panes it makes fire wait in :meth:`drain`."""
        add_one = self._add_merging if self.merging else self._add_one
        for window in windows:
            add_one(key, value, timestamp_us, window)

    def process(self, chunk: Sequence[WindowedValue]) -> list[WindowedValue]:
        """Add a bundle of ``WindowedValue((key, value), ...)`` and return the panes that fire.

        As in Beam's trigger driver (``GeneralTriggerDriver.process_elements``), a custom trigger
        is evaluated once per key and window after all of the bundle's elements are added, not
        after each element: ``Repeatedly(AfterCount(2))`` over a bundle of 5 fires one pane of 5.
        The default trigger too: late elements of one bundle in one window make one LATE pane.
        A malformed element raises an error that names the engine's ``label``.
        """
        if not self.merging and self._eow and self.machine.is_default:
            self._add_default(chunk)
            return self.drain()
        add_one = self._add_merging if self.merging else self._add_one
        touched: dict[tuple[Any, BoundedWindow], None] = {}
        self._deferred = touched
        try:
            for wv in chunk:
                key, value = wv.value
                t = wv.timestamp_us
                for window in wv.windows:
                    add_one(key, value, t, window)
        except (TypeError, ValueError) as e:
            error = _bad_element(self.label, wv.value, e)
            if error is e:
                raise
            raise error from e
        finally:
            self._deferred = None
        if touched:
            self._evaluate_deferred(touched)
        return self.drain()

    def _add_default(self, chunk: Sequence[WindowedValue]) -> None:
        """:meth:`_add_one` and :meth:`_put` in one loop for the common case: non-merging
        windows, the default trigger and output at the end of the window (the same steps in the
        same order, without two method calls per element)."""
        panes, fn, ctx = self._panes, self.combine_fn, self._ctx
        # CombinePerKey(sum): add numbers into the accumulator's one partial sum instead of
        # calling add_input (the accumulator stays the CombineFn's list; extract_output(acc) is
        # sum(acc) = 0 + partial, the same left-to-right additions as sum over the values).
        summing = fn is not None and getattr(fn, "fast_path", None) == "sum"
        lateness, new_state = self.lateness, self.machine.new_state
        late: dict[tuple[Any, BoundedWindow], _Pane] = {}
        try:
            for wv in chunk:
                key, value = wv.value
                for window in wv.windows:
                    pane = panes.get((key, window))
                    if pane is None:  # a live pane is never past garbage collection
                        max_ts = window.max_timestamp_us()
                        gc = min(max_ts + lateness, max(max_ts, GLOBAL_WINDOW_MAX_US))
                        if self._wm > gc:
                            self.dropped_late += 1
                            continue
                        pane = panes[(key, window)] = _Pane(
                            None if fn is not None else [], new_state(), max_ts, gc
                        )
                        self._schedule(key, window, pane)
                    elif pane.closed:
                        self.dropped_closed += 1
                        continue
                    if fn is None:
                        pane.values.append(value)
                    elif (
                        summing
                        and (type(value) is int or type(value) is float)
                        and pane.values is not None
                        and len(pane.values) == 1
                    ):
                        pane.values[0] += value
                    else:
                        acc = pane.values if pane.values is not None else fn.create_accumulator()
                        pane.values = fn.add_input(acc, value)
                    pane.pending += 1
                    max_ts = pane.max_ts
                    if pane.hold != max_ts and max_ts >= self._wm:
                        self._add_hold(key, window, pane, max_ts)
                    pane.trig[1] = True
                    if self._wm > max_ts:  # late: fires once the whole bundle is in
                        late[(key, window)] = pane
        except (TypeError, ValueError) as e:
            error = _bad_element(self.label, wv.value, e)
            if error is e:
                raise
            raise error from e
        finally:
            for (key, window), pane in late.items():
                ctx.window = window
                ctx.max_timestamp = pane.max_ts
                self._fire(key, window, pane)

    def _gc_time(self, max_ts: int) -> int:
        return min(max_ts + self.lateness, max(max_ts, GLOBAL_WINDOW_MAX_US))

    def _new_pane(self, window: BoundedWindow, max_ts: int, gc: int) -> _Pane:
        values: list[Any] | None = None if self.combine_fn is not None else []
        return _Pane(values, self.machine.new_state(), max_ts, gc)

    def _schedule(self, key: Any, window: BoundedWindow, pane: _Pane) -> None:
        heap = self._event_heap
        seq = self._seq = self._seq + 2
        heapq.heappush(heap, (pane.max_ts, seq - 1, key, window))
        if pane.gc != pane.max_ts:
            heapq.heappush(heap, (pane.gc, seq, key, window))

    def _add_one(self, key: Any, value: Any, ts: int, window: BoundedWindow) -> None:
        pane = self._panes.get((key, window))
        if pane is None:
            max_ts = window.max_timestamp_us()
            gc = self._gc_time(max_ts)
            if self._wm > gc:
                self.dropped_late += 1
                return
            pane = self._panes[(key, window)] = self._new_pane(window, max_ts, gc)
            self._schedule(key, window, pane)
        elif pane.closed:
            self.dropped_closed += 1
            return
        elif self._wm > pane.gc:  # expired, kept only for a processing-time firing
            self.dropped_late += 1
            return
        self._put(key, window, pane, value, ts)

    def _add_merging(self, key: Any, value: Any, ts: int, window: BoundedWindow) -> None:
        max_ts = window.max_timestamp_us()
        gc = self._gc_time(max_ts)
        if self._wm > gc:
            self.dropped_late += 1
            return
        active = self._active.get(key)
        if active is None:
            active = self._active[key] = set()
        if window not in active:
            self._panes[(key, window)] = self._new_pane(window, max_ts, gc)
            active.add(window)
            window = self._merge_windows(key, active, window)
        pane = self._panes[(key, window)]
        if pane.closed:
            self.dropped_closed += 1
            return
        self._put(key, window, pane, value, ts)

    def _output_time(self, window: BoundedWindow, max_ts: int, ts: int) -> int | None:
        if self._eow:
            t = max_ts
        elif self._transformed:
            t = to_micros(self.window_fn.get_transformed_output_time(window, Timestamp(micros=ts)))
        else:
            t = ts
        wm = self._wm
        if t >= wm:
            return t
        return max_ts if max_ts >= wm else None

    def _put(self, key: Any, window: BoundedWindow, pane: _Pane, value: Any, ts: int) -> None:
        fn = self.combine_fn
        if fn is None:
            pane.values.append(value)
        else:
            acc = pane.values if pane.values is not None else fn.create_accumulator()
            pane.values = fn.add_input(acc, value)
        pane.pending += 1
        if self._eow:
            if pane.hold != pane.max_ts and pane.max_ts >= self._wm:
                self._add_hold(key, window, pane, pane.max_ts)
        else:
            t = self._output_time(window, pane.max_ts, ts)
            if t is not None:
                self._add_hold(key, window, pane, t)
        ctx = self._ctx
        ctx.window = window
        ctx.max_timestamp = pane.max_ts
        m = self.machine
        if m.is_default:  # the common case, without the machine's calls
            pane.trig[1] = True
            if self._wm > pane.max_ts:
                if self._deferred is not None:
                    self._deferred[(key, window)] = None  # fires once the bundle is in
                else:
                    self._fire(key, window, pane)
            return
        m.on_element(pane.trig, ctx)
        if self._deferred is not None:
            self._deferred[(key, window)] = None  # evaluated once the whole bundle is in
            return
        if m.should_fire(pane.trig, ctx):
            self._fire(key, window, pane)
        elif m.uses_processing_time:
            self._schedule_deadline(key, window, pane)

    def _evaluate_deferred(self, touched: dict[tuple[Any, BoundedWindow], None]) -> None:
        """Evaluate once each trigger a bundle's elements reached (Beam's trigger driver)."""
        m = self.machine
        ctx = self._ctx
        for key, window in touched:
            pane = self._panes.get((key, window))
            if pane is None or pane.closed:
                continue  # merged away, or closed by a firing
            ctx.window = window
            ctx.max_timestamp = pane.max_ts
            if m.is_default:
                if self._wm > pane.max_ts:  # only late panes were deferred
                    self._fire(key, window, pane)
            elif m.should_fire(pane.trig, ctx):
                self._fire(key, window, pane)
            elif m.uses_processing_time:
                self._schedule_deadline(key, window, pane)

    # -- holds and deadlines -----------------------------------------------------------------------

    def _add_hold(self, key: Any, window: BoundedWindow, pane: _Pane, t: int) -> None:
        h = pane.hold
        if h is not None:
            t = max(h, t) if self._latest else min(h, t)
        pane.hold = t
        if pane.hold_pushed is None or t < pane.hold_pushed:
            self._push_hold(key, window, pane)

    def _push_hold(self, key: Any, window: BoundedWindow, pane: _Pane) -> None:
        assert pane.hold is not None
        pane.hold_pushed = pane.hold
        self._seq += 1
        heapq.heappush(self._hold_heap, (pane.hold, self._seq, key, window))

    def _schedule_deadline(self, key: Any, window: BoundedWindow, pane: _Pane) -> None:
        d = self.machine.next_deadline(pane.trig, self._ctx)
        if d is not None and (pane.deadline is None or d < pane.deadline):
            pane.deadline = d
            self._seq += 1
            heapq.heappush(self._pt_heap, (d, self._seq, key, window))

    # -- firing ------------------------------------------------------------------------------------

    def _evaluate(self, key: Any, window: BoundedWindow, pane: _Pane) -> None:
        """Fire the pane if its trigger says so; expire it once past garbage collection."""
        ctx = self._ctx
        ctx.window = window
        ctx.max_timestamp = pane.max_ts
        expiring = self._wm > pane.gc
        if pane.closed:
            if expiring:
                self._remove(key, window)
            return
        if self.machine.should_fire(pane.trig, ctx):
            self._fire(key, window, pane)
            return
        if expiring:
            if pane.pending and self.fire_at_expiry:
                self._emit(key, window, pane, is_last=True)
            elif (
                pane.pending
                and pane.deadline is not None
                and not self.merging
                and self._wm < MAX_US
            ):
                # Beam's trigger driver keeps a window's state until its trigger fires: a
                # processing-time wake-up asked for before the window expired still fires its
                # elements (GeneralTriggerDriver.process_timer; Beam's snippets_test
                # model_setting_trigger). New elements of the window are late from now on.
                return
            self._remove(key, window)
        elif self.machine.uses_processing_time:
            self._schedule_deadline(key, window, pane)

    def _evaluate_default(self, key: Any, window: BoundedWindow, pane: _Pane) -> None:
        """:meth:`_evaluate` then :meth:`_fire` for the default trigger and non-merging windows
        (whose panes never close), without the trigger machine's calls: called when the
        watermark passed the pane's end of window or garbage-collection time, so the trigger
        fires if an element arrived since the last pane."""
        expiring = self._wm > pane.gc
        trig = pane.trig
        if trig[1]:
            trig[1] = False
            self._emit(key, window, pane, is_last=False)  # the default trigger never finishes
        elif expiring and pane.pending and self.fire_at_expiry:
            self._emit(key, window, pane, is_last=True)
        if expiring:
            del self._panes[(key, window)]

    def _fire(self, key: Any, window: BoundedWindow, pane: _Pane) -> None:
        m = self.machine
        m.on_fire(pane.trig, self._ctx)
        finished = m.is_finished(pane.trig)
        expiring = self._wm > pane.gc
        # Beam Python marks a pane last only when its trigger finished (trigger.py
        # GeneralTriggerDriver._output), not when its window expires with it.
        self._emit(key, window, pane, is_last=finished)
        if expiring:
            self._remove(key, window)
            return
        if finished:
            pane.closed = True
            pane.values = None if self.combine_fn is not None else []
            pane.hold = None
            pane.pending = 0
        elif m.uses_processing_time:
            self._schedule_deadline(key, window, pane)

    def _emit(self, key: Any, window: BoundedWindow, pane: _Pane, is_last: bool) -> None:
        held = pane.hold is not None
        info = pane_info(pane.index, pane.nonspec, held, self._wm, pane.max_ts, is_last)
        if not pane.pending and info.timing is not _ON_TIME:
            return  # nothing new: an empty pane is emitted only as the ON_TIME pane
        timestamp = pane.hold if pane.hold is not None else pane.max_ts
        fn = self.combine_fn
        if fn is None:
            values = pane.values
            if self.accumulating:
                values = list(values)
            else:
                pane.values = []
        else:
            acc = pane.values if pane.values is not None else fn.create_accumulator()
            values = fn.extract_output(acc)
            pane.values = acc if self.accumulating else None
        self._out.append(WindowedValue((key, values), timestamp, (window,), info))
        pane.index += 1
        pane.pending = 0
        if info.timing is _EARLY:
            if self.machine.has_ontime_pane and not is_last:
                pane.hold = None
                self._add_hold(key, window, pane, pane.max_ts)
            else:
                pane.hold = None
        else:
            pane.nonspec += 1
            pane.hold = None

    def _remove(self, key: Any, window: BoundedWindow) -> None:
        del self._panes[(key, window)]
        if self.merging:
            active = self._active[key]
            active.discard(window)
            if not active:
                del self._active[key]

    # -- merging windows ---------------------------------------------------------------------------

    def _merge_windows(self, key: Any, active: set[BoundedWindow], new: BoundedWindow) -> Any:
        """Merge ``key``'s windows after ``new`` joined; return the window ``new`` ended up in."""
        mc = WindowFn.MergeContext(active)
        self.window_fn.merge(mc)
        where = None
        for to_merge, result in mc.merges:
            olds = [w for w in to_merge if w in active]
            if not olds or (len(olds) == 1 and olds[0] == result):
                continue
            merged = self._merge_panes(key, olds, result)
            for w in olds:
                del self._panes[(key, w)]
                active.discard(w)
            self._panes[(key, result)] = merged
            active.add(result)
            if new in olds:
                where = result
            if result not in olds or result == new:  # no end-of-window entries yet
                self._schedule(key, result, merged)
        if where is None:
            self._schedule(key, new, self._panes[(key, new)])
            return new
        return where

    def _merge_panes(self, key: Any, olds: list[BoundedWindow], result: BoundedWindow) -> _Pane:
        panes = [self._panes[(key, w)] for w in olds]
        max_ts = result.max_timestamp_us()
        merged = self._new_pane(result, max_ts, self._gc_time(max_ts))
        if any(p.closed for p in panes):
            # A window whose trigger finished absorbs what merges into it (as in Beam): the
            # merged window is closed. Data still buffered in the other windows is emitted in
            # a last pane of its own window rather than lost.
            for w, p in zip(olds, panes):
                if not p.closed and p.pending:
                    self._emit(key, w, p, is_last=True)
            merged.closed = True
            merged.trig[0] = True
            return merged
        same = self._panes.get((key, result)) if result in olds else None
        if same is not None:
            merged.index, merged.nonspec = same.index, same.nonspec
        fn = self.combine_fn
        if fn is None:
            merged.values = [v for p in panes for v in p.values]
        else:
            accs = [p.values for p in panes if p.values is not None]
            merged.values = fn.merge_accumulators(accs) if accs else None
        merged.pending = sum(p.pending for p in panes)
        holds = [p.hold for p in panes if p.hold is not None]
        if holds:
            if self._eow:
                hold = max_ts
            else:
                hold = max(holds) if self._latest else min(holds)
            self._add_hold(key, result, merged, hold)
        ctx = self._ctx
        ctx.window = result
        ctx.max_timestamp = max_ts
        merged.trig = self.machine.merge([p.trig for p in panes], ctx)
        merged.closed = self.machine.is_finished(merged.trig)
        if self.machine.uses_processing_time and not merged.closed:
            self._schedule_deadline(key, result, merged)
        return merged


def _bad_element(label: str, element: Any, cause: Exception) -> Exception:
    text = repr(element)
    if len(text) > 80:
        text = text[:77] + "..."
    if not (isinstance(element, (tuple, list)) and len(element) == 2):
        return ValueError(
            f"{label!r} needs (key, value) pairs, got {text}; key the elements first, "
            "e.g. beam.Map(lambda x: (key_of(x), x))"
        )
    try:
        hash(element[0])
    except TypeError:
        return TypeError(
            f"{label!r} got the unhashable key {element[0]!r:.80} of type "
            f"{type(element[0]).__name__}; keys must be hashable (use a tuple, not a list)"
        )
    return cause


# -- a scripted run: the transcript simulator ------------------------------------------------------


@dataclass(frozen=True)
class Element:
    """An element arrives: ``value`` at event time ``timestamp`` (seconds)."""

    value: Any
    timestamp: Any


@dataclass(frozen=True)
class WatermarkTo:
    """The input watermark advances to ``time`` (seconds)."""

    time: Any


@dataclass(frozen=True)
class ProcessingTimeTo:
    """The processing-time clock advances to ``time`` (seconds)."""

    time: Any


@dataclass(frozen=True)
class EndOfInput:
    """The input ends: the watermark jumps to +infinity."""


def simulate(
    events: Iterable[Element | WatermarkTo | ProcessingTimeTo | EndOfInput],
    key: Any = "k",
    engine: PaneEngine | None = None,
    **engine_args: Any,
) -> list[WindowedValue]:
    """Run ``events`` for one key through a :class:`PaneEngine` and return every emitted pane.

    ``engine_args`` are :class:`PaneEngine`'s arguments (or pass an ``engine`` to inspect it
    afterwards). Elements are assigned to windows with the engine's window function.

    >>> from headrace.model.trigger import AfterCount, Repeatedly
    >>> out = simulate([Element("a", 1), Element("b", 2), Element("c", 3), EndOfInput()],
    ...                trigger=Repeatedly(AfterCount(2)))
    >>> [(wv.value[1], wv.pane.timing.name, wv.pane.is_last) for wv in out]
    [(['a', 'b'], 'EARLY', False)]
    >>> out = simulate([Element("a", 1), Element("b", 2), Element("c", 3), EndOfInput()],
    ...                trigger=Repeatedly(AfterCount(2)), fire_at_expiry=True)
    >>> [(wv.value[1], wv.pane.timing.name, wv.pane.is_last) for wv in out]
    [(['a', 'b'], 'EARLY', False), (['c'], 'ON_TIME', True)]
    """
    if engine is None:
        engine = PaneEngine(**engine_args)
    elif engine_args:
        raise TypeError("simulate() takes either an engine or PaneEngine arguments, not both")
    window_fn = engine.window_fn
    out: list[WindowedValue] = []
    for event in events:
        if isinstance(event, Element):
            ts = to_micros(event.timestamp)
            assign_us = getattr(window_fn, "assign_us", None)
            if assign_us is not None:
                windows = assign_us(ts)
            else:
                ctx = WindowFn.AssignContext(Timestamp(micros=ts), event.value)
                windows = tuple(window_fn.assign(ctx))
            engine.add(key, event.value, ts, windows)
            out.extend(engine.drain())
        elif isinstance(event, WatermarkTo):
            out.extend(engine.advance_watermark(to_micros(event.time)))
        elif isinstance(event, ProcessingTimeTo):
            out.extend(engine.advance_processing_time(to_micros(event.time)))
        elif isinstance(event, EndOfInput):
            out.extend(engine.finish())
        else:
            raise TypeError(
                f"simulate() got the event {event!r}; use Element, WatermarkTo, "
                "ProcessingTimeTo or EndOfInput"
            )
    return out
