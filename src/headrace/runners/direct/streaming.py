"""Streaming execution in the direct runner: one event loop drives every operator.

The batch path runs fused stages one after another; a streaming run cannot wait for a stage to
finish, so every primitive becomes one operator in a single push network (the same ParDo,
WindowInto and Flatten operators of :mod:`headrace.exec`), and groupings become pane engines that
fire according to their triggers.

State of a run, and who moves it:

``tracker``      the watermark (int microseconds) of every PCollection, an
                 :class:`~headrace.exec.watermarks.WatermarkTracker` (the rules are documented
                 there): sources set theirs; every other step's output watermark is the minimum
                 of its inputs', held back by what a grouping, a stateful step or a side-input
                 gate may still emit. ``StreamingRun._propagate`` advances it after every source
                 step (one bundle, one watermark move or one clock move).
``clock``        processing time: the real clock, or the TestStream's clock when the pipeline has a
                 TestStream (then only ``advance_processing_time`` events move it).
``sources``      one driver per Read/Impulse: a TestStream replays its events one at a time
                 (the pipeline is quiescent between events because pushes are synchronous); an
                 unbounded reader is polled; a bounded source is read whole, then its watermark
                 jumps to the end.
``lineage``      which poll of an unbounded reader the data held in a grouping came from, per
                 window, so that a reader's messages are acknowledged only once everything made
                 from them has been emitted (see ``StreamingRun._commit_done``).

The run ends when every source is done: their watermarks jump to +infinity, every grouping fires
what it holds, ``finish_bundle`` runs, and sinks commit. Batch is the same machinery with the
watermark jumping once.

``draining`` (set from any thread) ends a run early the same way, as Beam's drain does on
Dataflow: the sources are read no more (each is marked done with its watermark at +infinity at
the next step), what was read goes all the way through, every window fires, and the run ends
normally; an unbounded reader's messages read so far are acknowledged. ``cancelled`` instead
stops at once and fires nothing more.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

from headrace.exec.errors import annotate
from headrace.exec.gcpolicy import relaxed_gc
from headrace.exec.operators import FlattenOperator, Operator, ParDoOperator, WindowIntoOperator
from headrace.exec.panes import PaneEngine
from headrace.exec.sideinputs import NO_DEFAULT, SideInput
from headrace.exec.stateful import StatefulParDo
from headrace.exec.watermarks import Advance, TrackedStep, WatermarkTracker
from headrace.graph.kinds import COMBINE_PER_KEY, executable_leaves
from headrace.graph.nodes import PipelineGraph, TransformNode
from headrace.model.metrics import Metrics, MetricsContainer, MetricUpdates, set_current_container
from headrace.model.timestamp import MAX_US, MIN_US, to_micros
from headrace.model.window import GLOBAL_WINDOWS_TUPLE, TimestampedValue, WindowedValue

__all__ = ["StreamingRun", "streaming_leaves"]

Receiver = Callable[[list[Any]], None]
# Elements later than their window's allowed lateness (or reaching a finished trigger) are dropped
# and counted here, under the grouping's step.
DROPPED = Metrics.counter("headrace", "droppedDueToLateness")
# Lineage keys (see StreamingRun._commit_done): ``batch << 64 | (timestamp + 2**63)`` orders data
# by the poll it came from, then by its source timestamp; timestamp part 0 stands for "any element
# of that poll". _NO_BATCH marks data pushed outside any unbounded poll (bounded sources,
# TestStream, impulse): nothing to acknowledge, so it holds nothing back.
_TS_BITS = 64
_TS_OFFSET = 1 << 63
_TS_MASK = (1 << _TS_BITS) - 1
_NO_BATCH = 1 << 200


def streaming_leaves(graph: PipelineGraph) -> Iterator[TransformNode]:
    """Primitives in topological order. A CombinePerKey without extra arguments is one step (its
    pane engine combines values as they arrive); other composites run as their parts."""

    def whole(node: TransformNode) -> bool:
        if node.kind == COMBINE_PER_KEY and node.payload is not None:
            _, args, kwargs = node.payload.load()
            return not args and not kwargs
        return False

    return executable_leaves(graph, whole)


class Clock:
    """Processing time in microseconds: real, or moved only by a TestStream."""

    def __init__(self, controlled: bool) -> None:
        self.controlled = controlled
        self._now = 0 if controlled else time.time_ns() // 1000

    def now_us(self) -> int:
        return self._now if self.controlled else time.time_ns() // 1000

    def advance_us(self, delta: int) -> None:
        self._now += delta


def _wrap(x: Any) -> WindowedValue:
    if type(x) is WindowedValue:
        return x
    if type(x) is TimestampedValue:
        return WindowedValue(x.value, x.timestamp_us, GLOBAL_WINDOWS_TUPLE)
    return WindowedValue(x, MIN_US, GLOBAL_WINDOWS_TUPLE)


@dataclass
class _Source:
    node: TransformNode
    kind: str  # "test_stream", "unbounded", "bounded", "impulse"
    obj: Any
    watermark: int = MIN_US
    done: bool = False
    events: Any = None
    reader: Any = None
    # A TestStream's watermark per output (graph tag): each tagged output moves on its own, as
    # in Beam's TestStream; ``watermark`` is then their minimum.
    tag_watermarks: dict[str, int] | None = None


@dataclass
class _Poll:
    """One non-empty poll of an unbounded reader, not yet committed."""

    batch: int
    src: _Source
    checkpoint: Any  # covers the whole poll
    stamps: list[int]  # element timestamps, in order (what is left of them)
    positions: list[Any] | None  # the reader's position per element, for a partial commit


@dataclass
class _Grouping:
    node: TransformNode
    engine: PaneEngine
    emit: Receiver
    metrics: MetricsContainer
    dropped_reported: int = 0
    combine_fn: Any = None
    # window -> the lineage key of the oldest source data the engine may hold in that window
    lineage: dict[Any, int] = field(default_factory=dict)


@dataclass
class StreamingRun:
    """One streaming run of ``graph``; :meth:`run` blocks until the end or cancellation."""

    graph: PipelineGraph
    cancelled: threading.Event
    draining: threading.Event = field(default_factory=threading.Event)
    poll_interval_s: float = 0.05
    max_poll: int = 1024
    ops: dict[str, Operator] = field(default_factory=dict)
    order: list[TransformNode] = field(default_factory=list)
    sources: list[_Source] = field(default_factory=list)
    groupings: dict[str, _Grouping] = field(default_factory=dict)
    finalize_records: dict[str, list[Any]] = field(default_factory=dict)
    containers: list[MetricsContainer] = field(default_factory=list)
    receivers: dict[str, list[Receiver]] = field(default_factory=dict)
    # PCollection id -> elements emitted into it so far (progress; read by a sampler thread)
    element_counts: dict[str, int] = field(default_factory=dict)
    gates: dict[str, _SideInputGate] = field(default_factory=dict)
    stateful: dict[str, StatefulParDo] = field(default_factory=dict)
    side_data: dict[str, list[WindowedValue]] = field(default_factory=dict)
    commit_interval_s: float = 0.25

    def __post_init__(self) -> None:
        self.order = list(streaming_leaves(self.graph))
        with relaxed_gc():  # loading a large TestStream makes many objects at once
            self._build()
        self.tracker = self._tracker()
        self.clock = Clock(controlled=any(s.kind == "test_stream" for s in self.sources))
        # Lineage of unbounded reads (see _commit_done): each non-empty poll is a batch; _batch is
        # the batch whose data is being pushed (or whose panes are being emitted).
        # (Finalize-based sinks publish at the end of the run: sources commit only then.)
        self._tracking = not self.finalize_records and any(
            s.reader is not None for s in self.sources
        )
        self._batches = 0
        self._batch = _NO_BATCH  # the lineage key of what is being pushed now
        self._batch_ts: frozenset[int] | None = None  # a poll's timestamps, while it is pushed
        self._uncommitted: list[_Poll] = []
        self._next_commit = 0.0

    # -- building ------------------------------------------------------------------------------

    def _receiver_list(self, pid: str) -> list[Receiver]:
        return self.receivers.setdefault(pid, [])

    def _emitter(self, pid: str) -> Receiver:
        targets = self._receiver_list(pid)
        counts = self.element_counts
        counts.setdefault(pid, 0)

        def emit(chunk: list[Any]) -> None:
            counts[pid] += len(chunk)
            for r in targets:
                r(chunk)

        return emit

    def _build(self) -> None:
        for node in self.order:
            outs = [pid for _, pid in node.outputs]
            if node.kind in ("Read", "Impulse"):
                self.sources.append(self._source(node))
            elif node.kind == "ParDo" and node.side_inputs:
                self.gates[node.id] = _SideInputGate(node, self)
                for side in node.side_inputs:
                    collected = self.side_data.setdefault(side.pcollection, [])
                    self._receiver_list(side.pcollection).append(collected.extend)
            elif node.kind == "ParDo" and node.params.get("stateful"):
                strategy = self.graph.pcollections[node.inputs[0]].windowing
                container = MetricsContainer(node.label)
                self.containers.append(container)
                self.stateful[node.id] = StatefulParDo(
                    node,
                    strategy,
                    {tag: self._emitter(pid) for tag, pid in node.outputs},
                    container,
                )
            elif node.kind == "ParDo":
                self.ops[node.id] = self.pardo(node, [])
            elif node.kind == "WindowInto":
                self.ops[node.id] = WindowIntoOperator(
                    node.label,
                    node.payload.load() if node.payload else None,
                    [self._emitter(outs[0])],
                    in_windowed=True,
                    out_windowed=True,
                )
            elif node.kind == "Flatten":
                self.ops[node.id] = FlattenOperator(node.label, [self._emitter(outs[0])], False)
            elif node.kind in ("GroupByKey", "CombinePerKey"):
                strategy = self.graph.pcollections[node.inputs[0]].windowing
                container = MetricsContainer(node.label)
                self.containers.append(container)
                combine_fn = None
                if node.kind == "CombinePerKey" and node.payload is not None:
                    combine_fn = node.payload.load()[0]
                engine = PaneEngine.from_strategy(strategy, combine_fn, node.label)
                self.groupings[node.id] = _Grouping(
                    node, engine, self._emitter(outs[0]), container, combine_fn=combine_fn
                )
            elif node.kind == "Finalize":
                self.finalize_records[node.id] = []
            else:
                raise NotImplementedError(f"{node.label!r}: {node.kind} in a streaming run")
            for pid in node.inputs:
                self._receiver_list(pid).append(self._input_of(node))

    def pardo(self, node: TransformNode, side_inputs: list[tuple[str, SideInput]]) -> ParDoOperator:
        dofn, args, kwargs = node.payload.load() if node.payload else (None, (), {})
        container = MetricsContainer(node.label)
        self.containers.append(container)
        return ParDoOperator(
            label=node.label,
            fn_kind=node.params.get("fn_kind", "dofn"),
            dofn=dofn,
            args=tuple(args),
            kwargs=dict(kwargs),
            dofn_params=dict(node.params.get("dofn_params", {})),
            main_tag=node.params.get("main_tag", "main"),
            outputs={tag: [self._emitter(pid)] for tag, pid in node.outputs},
            out_windowed=dict.fromkeys((tag for tag, _ in node.outputs), True),
            in_windowed=True,
            side_inputs=side_inputs,
            metrics=container,
        )

    def _input_of(self, node: TransformNode) -> Receiver:
        if node.id in self.stateful:
            return self.stateful[node.id].process
        if node.id in self.gates:
            return self.gates[node.id].buffer.extend
        if node.id in self.ops:
            return self.ops[node.id].process
        if node.id in self.groupings:
            g = self.groupings[node.id]
            return lambda chunk: self._group_add(g, chunk)
        if node.id in self.finalize_records:
            records = self.finalize_records[node.id]
            return lambda chunk: records.extend(x.value for x in chunk)
        raise AssertionError(node.kind)

    def _source(self, node: TransformNode) -> _Source:
        if node.kind == "Impulse":
            return _Source(node, "impulse", None)
        assert node.payload is not None, f"{node.label!r} has no source"
        source = node.payload.load()
        if _is_test_stream(source):
            return _Source(node, "test_stream", source, events=iter(source.events()))
        if hasattr(source, "create_reader"):
            return _Source(node, "unbounded", source, reader=source.create_reader(None))
        return _Source(node, "bounded", source)

    def _tracker(self) -> WatermarkTracker:
        """The watermark tracker of the network: one tracked step per non-source node with
        outputs; groupings, stateful steps and side-input gates hold their outputs back."""
        steps = []
        for node in self.order:
            if node.kind in ("Read", "Impulse") or not node.outputs:
                continue
            advance: Advance | None = None
            watches: tuple[str, ...] = ()
            if node.id in self.stateful:
                advance = self._stateful_advance(self.stateful[node.id])
            elif node.id in self.gates:
                advance = self._gate_advance(self.gates[node.id])
                watches = tuple(s.pcollection for s in node.side_inputs)
            elif node.id in self.groupings:
                advance = self._grouping_advance(self.groupings[node.id])
            steps.append(
                TrackedStep(
                    node.id,
                    tuple(node.inputs),
                    tuple(pid for _, pid in node.outputs),
                    advance,
                    watches,
                )
            )
        tracker = WatermarkTracker(self.graph.pcollections, steps)
        for step in steps:
            if step.advance is not None:
                mark = _marker(tracker.receiver_hook(step.id))
                for pid in step.inputs:
                    self._receiver_list(pid).append(mark)
        return tracker

    @property
    def watermarks(self) -> dict[str, int]:
        """The watermark (int microseconds) of every PCollection."""
        return self.tracker.watermarks

    def _stateful_advance(self, sp: StatefulParDo) -> Advance:
        def advance(in_wm: int, now: int) -> int:
            # What timers release now may come from any batch not yet committed.
            self._batch = self._first_uncommitted()
            try:
                return sp.advance(in_wm, now)
            finally:
                self._batch = _NO_BATCH

        return advance

    def _gate_advance(self, gate: _SideInputGate) -> Advance:
        def advance(in_wm: int, now: int) -> int:
            # What a gate releases now may come from any batch not yet committed.
            self._batch = self._first_uncommitted()
            try:
                return gate.release(self.tracker.watermarks)
            finally:
                self._batch = _NO_BATCH

        return advance

    def _grouping_advance(self, g: _Grouping) -> Advance:
        def advance(in_wm: int, now: int) -> int:
            set_current_container(g.metrics)
            self._emit_panes(g, g.engine.advance_watermark(in_wm))
            self._emit_panes(g, g.engine.advance_processing_time(now))
            self._report_dropped(g)
            return g.engine.hold()

        return advance

    def _first_uncommitted(self) -> int:
        return self._uncommitted[0].batch << _TS_BITS if self._uncommitted else _NO_BATCH

    # -- running -------------------------------------------------------------------------------

    def _group_add(self, g: _Grouping, chunk: list[Any]) -> None:
        if self._tracking and self._batch != _NO_BATCH:
            self._record_lineage(g, chunk)
        set_current_container(g.metrics)
        try:
            outputs = g.engine.process(chunk)
        except (TypeError, ValueError) as e:
            raise annotate(e, g.node.label) from None
        self._emit_panes(g, outputs)

    def _record_lineage(self, g: _Grouping, chunk: list[Any]) -> None:
        """Note in ``g.lineage`` the oldest source data each window of ``chunk`` now holds.

        While a poll is pushed, an element whose timestamp is one of the poll's carries its own
        timestamp in the key (so a commit can stop inside the poll, before the first element
        still held); any other element (a DoFn gave it a new timestamp) stands for the whole
        poll. Panes emitted by a grouping carry the key of the window they came from.
        """
        base, stamps, lineage = self._batch, self._batch_ts, g.lineage
        seen = lineage.get
        for wv in chunk:
            key = base
            if stamps is not None and wv.timestamp_us in stamps:
                key = base | (wv.timestamp_us + _TS_OFFSET)
            for window in wv.windows:
                old = seen(window)
                if old is None or old > key:
                    lineage[window] = key

    def _emit_panes(self, g: _Grouping, outputs: list[Any]) -> None:
        if not outputs:
            return
        if not self._tracking or not g.lineage:
            g.emit(outputs)
            return
        # The panes carry data of the batches their windows hold: so does what they reach.
        seen, outer, outer_ts = g.lineage.get, self._batch, self._batch_ts
        self._batch = min(
            (b for wv in outputs for w in wv.windows if (b := seen(w)) is not None), default=outer
        )
        self._batch_ts = None
        try:
            g.emit(outputs)
        finally:
            self._batch, self._batch_ts = outer, outer_ts

    def _push_source(self, src: _Source, elements: list[Any], tag: str | None = None) -> None:
        if elements:
            self._push_chunk(src, [_wrap(x) for x in elements], tag)

    def _push_chunk(self, src: _Source, chunk: list[WindowedValue], tag: str | None) -> None:
        if not chunk:
            return
        out_pid = dict(src.node.outputs)[tag] if tag is not None else src.node.outputs[0][1]
        self.element_counts[out_pid] = self.element_counts.get(out_pid, 0) + len(chunk)
        for r in self._receiver_list(out_pid):
            r(chunk)

    def _step_sources(self) -> bool:
        """Advance every source once; return whether anything happened."""
        if self.draining.is_set():
            for src in self.sources:  # read no more: each source is at its end
                if not src.done:
                    src.done, src.watermark = True, MAX_US
            return True
        busy = False
        for src in self.sources:
            if src.done:
                continue
            if src.kind == "impulse":
                self._push_source(src, [b""])
                src.done, src.watermark, busy = True, MAX_US, True
            elif src.kind == "bounded":
                as_list = src.obj.as_list()
                items = as_list if as_list is not None else src.obj.read()
                batch: list[Any] = []
                for x in items:
                    batch.append(x)
                    if len(batch) >= self.max_poll:
                        self._push_source(src, batch)
                        batch = []
                self._push_source(src, batch)
                src.done, src.watermark, busy = True, MAX_US, True
            elif src.kind == "test_stream":
                # one event per step: watermarks settle before the next one
                busy = self._test_stream_event(src) or busy
            else:
                elements = src.reader.poll(self.max_poll, 0.0)
                if elements and self._tracking:
                    self._push_polled(src, elements)
                else:
                    self._push_source(src, elements)
                src.watermark = max(src.watermark, src.reader.watermark_us())
                if src.reader.is_done():
                    src.done, src.watermark = True, MAX_US
                busy = busy or bool(elements)
        return busy

    def _push_polled(self, src: _Source, elements: list[Any]) -> None:
        """Push one poll of an unbounded reader, noting its lineage for :meth:`_commit_done`."""
        self._batches += 1
        chunk = [_wrap(x) for x in elements]
        stamps = [wv.timestamp_us for wv in chunk]
        positions_of = getattr(src.reader, "poll_positions", None)
        positions = positions_of() if positions_of is not None else None
        if positions is not None and len(positions) != len(chunk):
            positions = None
        self._batch, self._batch_ts = self._batches << _TS_BITS, frozenset(stamps)
        out_pid = src.node.outputs[0][1]
        self.element_counts[out_pid] = self.element_counts.get(out_pid, 0) + len(chunk)
        try:
            for r in self._receiver_list(out_pid):
                r(chunk)
        finally:
            self._batch, self._batch_ts = _NO_BATCH, None
        poll = _Poll(self._batches, src, src.reader.checkpoint(), stamps, positions)
        self._uncommitted.append(poll)

    def _test_stream_event(self, src: _Source) -> bool:
        event = next(src.events, None)
        if event is None:
            src.done, src.watermark = True, MAX_US
            return True
        kind = type(event).__name__
        if kind == "ElementEvent":
            tag = _tag_of(src, event.tag)
            if event.is_columnar():
                # values and int timestamps: straight to windowed values, no object in between
                values, stamps = event.columns()
                chunk = list(map(WindowedValue, values, stamps, repeat(GLOBAL_WINDOWS_TUPLE)))
                self._push_chunk(src, chunk, tag)
            else:
                self._push_source(src, list(event.timestamped_values), tag)
        elif kind == "WatermarkEvent":
            tag = _tag_of(src, event.tag)
            if src.tag_watermarks is None:
                src.tag_watermarks = {t: MIN_US for t, _ in src.node.outputs}
            if tag in src.tag_watermarks:
                moved = max(src.tag_watermarks[tag], _us(event.new_watermark))
                src.tag_watermarks[tag] = moved
            src.watermark = max(src.watermark, min(src.tag_watermarks.values()))
        elif kind == "ProcessingTimeEvent":
            self.clock.advance_us(_us(event.advance_by))
        return True

    def _propagate(self) -> None:
        """Advance the watermark tracker once (see :mod:`headrace.exec.watermarks`)."""
        tracker = self.tracker
        for src in self.sources:
            per_tag = src.tag_watermarks if not src.done else None
            for tag, pid in src.node.outputs:
                tracker.set_source(
                    pid, per_tag.get(tag, src.watermark) if per_tag else src.watermark
                )
        tracker.advance(self.clock.now_us())

    def _report_dropped(self, g: _Grouping) -> None:
        dropped = g.engine.dropped_late + g.engine.dropped_closed
        if dropped > g.dropped_reported:
            DROPPED.inc(dropped - g.dropped_reported)
            g.dropped_reported = dropped

    def _commit_done(self, force: bool = False) -> None:
        """Acknowledge the polls of unbounded readers whose data nothing holds any more.

        Pushes are synchronous, so once a poll's elements are pushed, what is left of them sits
        only in groupings (or side-input gates, stateful steps' timers). Each grouping records,
        per window, the oldest poll ("batch") whose data went into it, and the panes it emits
        carry that batch on to where they go. A window stops counting once the engine holds
        nothing of it (no element not yet emitted; accumulating panes keep theirs until the
        window is garbage-collected). Every batch older than the oldest still held has reached
        every sink, so each reader's checkpoint after its last such batch is committed: a restart
        reads again exactly the input of the panes not yet published. With merging windows a
        grouping counts as a whole (it releases its batches only when it holds nothing); a gate
        holding elements or a stateful step with timers set holds every batch. Finalize-based
        sinks publish at the end of the run, so with them sources commit only when the run ends.

        Checked at most every ``commit_interval_s`` (it walks the live panes; less often when
        that walk takes long) unless ``force``.
        """
        if not self._uncommitted or self.finalize_records:
            return
        now = time.monotonic()
        if not force and now < self._next_commit:
            return
        try:
            self._commit_frontier()
        finally:
            # walking the panes stays a small share of the time with many keys and windows
            spent = time.monotonic() - now
            self._next_commit = now + max(self.commit_interval_s, 20 * spent)

    def _commit_frontier(self) -> None:
        """The walk of :meth:`_commit_done`: prune lineage, find the oldest held, commit."""
        if any(sp.timers for sp in self.stateful.values()):
            return
        if any(gate.buffer for gate in self.gates.values()):
            return
        frontier = _NO_BATCH
        for g in self.groupings.values():
            lineage = g.lineage
            if not lineage:
                continue
            held = g.engine.holding_windows()
            if g.engine.merging:
                if not held:
                    lineage.clear()
            else:
                for window in [w for w in lineage if w not in held]:
                    del lineage[window]
            if lineage:
                frontier = min(frontier, *lineage.values())
        frontier_batch = frontier >> _TS_BITS
        latest: dict[int, tuple[_Source, Any]] = {}
        keep = []
        for poll in self._uncommitted:
            if poll.batch < frontier_batch:
                latest[id(poll.src)] = (poll.src, poll.checkpoint)
                continue
            keep.append(poll)
            if poll.batch == frontier_batch and poll.positions is not None:
                # Inside the poll holding the oldest data still held: its elements before the
                # first one at or after that data's timestamp are done.
                until = (frontier & _TS_MASK) - _TS_OFFSET
                done = 0
                for t in poll.stamps:
                    if t >= until:
                        break
                    done += 1
                if done:
                    at = poll.src.reader.checkpoint_at(poll.positions[done - 1])
                    latest[id(poll.src)] = (poll.src, at)
                    del poll.stamps[:done], poll.positions[:done]
        self._uncommitted = keep
        for src, checkpoint in latest.values():
            src.reader.commit(checkpoint)

    def commit_sources(self) -> None:
        """Acknowledge everything every unbounded source delivered (after a successful run)."""
        for src in self.sources:
            if src.reader is not None:
                src.reader.commit(src.reader.checkpoint())

    def _next_wakeup_s(self) -> float:
        deadlines = [
            d for g in self.groupings.values() if (d := g.engine.next_deadline()) is not None
        ]
        if not deadlines or self.clock.controlled:
            return self.poll_interval_s
        wait = (min(deadlines) - self.clock.now_us()) / 1_000_000
        return max(0.0, min(self.poll_interval_s, wait))

    def run(self) -> None:
        """Run until every source is done (or the run is cancelled)."""
        with relaxed_gc():
            self._run_all()

    def _run_all(self) -> None:
        for sp in self.stateful.values():
            sp.setup()
        combine_fns = [g.combine_fn for g in self.groupings.values() if g.combine_fn is not None]
        for fn in combine_fns:
            fn.setup()
        try:
            self._run()
        finally:
            for gate in self.gates.values():
                if gate.op is not None:
                    gate.op.teardown()
            for sp in self.stateful.values():
                sp.teardown()
            for fn in combine_fns:
                fn.teardown()

    def _run(self) -> None:
        ops = [self.ops[n.id] for n in self.order if n.id in self.ops]
        for op in ops:
            op.setup()
        try:
            for op in ops:
                op.start()
            while not self.cancelled.is_set():
                busy = self._step_sources()
                self._propagate()
                self._commit_done()
                if all(s.done for s in self.sources):
                    break
                if not busy:
                    time.sleep(self._next_wakeup_s())
            if self.cancelled.is_set():
                # Pushes are synchronous: whatever was read has gone as far as it can. Keep
                # the acknowledgement of what went all the way through.
                self._commit_done(force=True)
                return
            self._propagate()
            for node in self.order:
                if node.id in self.ops:
                    self.ops[node.id].finish()
                elif node.id in self.stateful:
                    self.stateful[node.id].finish()
                elif node.id in self.gates and self.gates[node.id].op is not None:
                    self.gates[node.id].op.finish()  # type: ignore[union-attr]
        finally:
            try:
                for op in ops:
                    op.teardown()
            finally:
                set_current_container(None)

    def close(self) -> None:
        """Close the source readers (after the sinks and sources have committed)."""
        for src in self.sources:
            if src.reader is not None:
                src.reader.close()

    def metric_updates(self) -> MetricUpdates:
        return MetricUpdates.merged(c.to_updates() for c in self.containers)


class _SideInputGate:
    """A ParDo with side inputs: main-input elements wait here until the side inputs are ready
    for their window (the side input's watermark passed the window's end; for the global window,
    the side input is complete). The ParDo itself is built at the first release, over the side
    input data collected so far."""

    def __init__(self, node: TransformNode, run: StreamingRun) -> None:
        self.node = node
        self.run = run
        self.buffer: list[WindowedValue] = []
        self.op: ParDoOperator | None = None

    def _ready(self, wv: WindowedValue, side_wm: int) -> bool:
        return side_wm == MAX_US or all(w.max_timestamp_us() < side_wm for w in wv.windows)

    def release(self, watermarks: dict[str, int]) -> int:
        """Process the elements whose side inputs are ready; return the hold on the output."""
        side_wm = min(watermarks[s.pcollection] for s in self.node.side_inputs)
        if not self.buffer:
            return MAX_US
        ready = [wv for wv in self.buffer if self._ready(wv, side_wm)]
        if ready:
            # in place: the upstream receiver holds a reference to this list
            self.buffer[:] = [wv for wv in self.buffer if not self._ready(wv, side_wm)]
            if self.op is None:
                self.op = self._build(side_wm)
            else:
                self._refresh_windowed_sides(self.op)
            self.op.process(ready)
        return min((wv.timestamp_us for wv in self.buffer), default=MAX_US)

    def _refresh_windowed_sides(self, op: ParDoOperator) -> None:
        """Windowed side inputs grow as their windows complete: rebuild their views."""
        if op.window_sides:
            fresh = dict(self._views())
            op.window_sides = [(slot, fresh[slot]) for slot, _ in op.window_sides]

    def _build(self, side_wm: int) -> ParDoOperator:
        op = self.run.pardo(self.node, self._views())
        op.setup()
        op.start()
        return op

    def _views(self) -> list[tuple[str, SideInput]]:
        graph = self.run.graph
        sides = []
        for s in self.node.side_inputs:
            pc = graph.pcollections[s.pcollection]
            view = SideInput(
                kind=s.view,
                elements=self.run.side_data.get(s.pcollection, []),
                default=s.default.load() if s.default is not None else NO_DEFAULT,
                label=self.node.label,
                side=graph.transforms[pc.producer].label,
                window_fn=pc.windowing.window_fn.load() if pc.windowing.window_fn else None,
                windowed_elements=True,
            )
            sides.append((s.slot, view))
        return sides


def _marker(mark: Callable[[], None]) -> Receiver:
    """A receiver that only notes that a bundle arrived."""

    def receive(chunk: list[Any]) -> None:
        mark()

    return receive


def _us(value: Any) -> int:
    return to_micros(value)


def _tag_of(src: _Source, tag: Any) -> str | None:
    tags = getattr(src.obj, "output_tags", None)
    return tags.get(tag) if tags else None


def _is_test_stream(obj: Any) -> bool:
    # A TestStream's source replays recorded events (elements, watermark and clock moves).
    return obj is not None and hasattr(obj, "events") and hasattr(obj, "output_tags")
