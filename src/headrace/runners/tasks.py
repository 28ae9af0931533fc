"""Running one task of one fused stage: build the operators, feed the root, close the outputs.

A *task* is one worker's share of a stage: some source splits, one partition of a grouping, or
some runs of a materialised collection. It is also one *bundle* in Beam's sense: every DoFn sees
``start_bundle`` once before the task's first element and ``finish_bundle`` once after its last.

Lifecycle of a task: operators are built from the plan (receivers first), ``setup`` and
``start_bundle`` run in topological order, the root pushes chunks, ``finish_bundle`` runs in
topological order (so its outputs reach downstream operators before they finish), grouping tables
and collectors are closed, and ``teardown`` runs on every operator whatever happened.

This module is shared by every runner: a runner decides *where* tasks run (inline, in worker
processes, as Ray tasks); what a task does is defined once, here, from ``headrace.exec``.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from headrace.exec.collect import CollectionRun, Collector, read_collection
from headrace.exec.errors import annotate
from headrace.exec.gcpolicy import leave_for_exit, relaxed_gc
from headrace.exec.grouping import GroupTable, Merger, Run, plain_values, read_partition
from headrace.exec.operators import (
    FlattenOperator,
    Operator,
    ParDoOperator,
    Receiver,
    WindowIntoOperator,
    _strip,
)
from headrace.exec.sideinputs import NO_DEFAULT, SideInput
from headrace.exec.spill import SpillSpace
from headrace.exec.windowing import (
    group_merged_windows,
    timestamp_tracking,
    transformed_output_time,
)
from headrace.graph.nodes import Payload
from headrace.model.metrics import (
    MetricsContainer,
    MetricUpdates,
    scoped_container,
    set_current_container,
)
from headrace.model.timestamp import MIN_US
from headrace.model.window import (
    GLOBAL_WINDOW,
    GLOBAL_WINDOWS_TUPLE,
    PANE_ON_TIME_NOT_LAST,
    PANE_ONLY_FIRING,
    TimestampedValue,
    WindowedValue,
)
from headrace.plan.stages import ExecutionPlan, Grouping, Stage
from headrace.runners.dofncache import PROCESS_DOFNS
from headrace.runners.events import capture_logs

__all__ = ["Cancelled", "TaskContext", "TaskInput", "TaskResult", "run_stage_task"]


class Cancelled(Exception):
    """Raised inside a task when its run was cancelled."""


@dataclass
class TaskInput:
    """What one task reads: source splits, grouping runs of one partition, or collection runs."""

    sources: list[Any] = field(default_factory=list)
    runs: list[Run] = field(default_factory=list)
    collection: list[CollectionRun] = field(default_factory=list)
    part: tuple[int, int] = (0, 1)  # (i, n): read every n-th chunk of the collection from the i-th
    # Index ranges [lo, hi) of the stage's source, when that source is a shared payload holding
    # its elements as a list (a Create): the list travels with the plan, not with each task.
    ranges: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class TaskContext:
    """Settings shared by the tasks of a run."""

    num_partitions: int
    spill: SpillSpace  # where this run's shuffle runs and collections live
    budget_bytes: int
    bundle_size: int
    in_memory_handoff: bool
    side_data: dict[str, list[CollectionRun]]
    cancelled: Callable[[], bool] | None = None  # set only in the coordinating process
    on_chunk: Callable[[int], None] | None = None
    # Keep set-up DoFn instances in the worker process between tasks of the run ``run_id``
    # (runners.dofncache): setup once per process, not per task.
    reuse_dofns: bool = False
    run_id: str = ""


@dataclass
class TaskResult:
    """What a task wrote, small enough to send back to the coordinator."""

    stage: int
    groupings: dict[str, list[list[Run]]]
    collections: dict[str, list[CollectionRun]]
    metrics: MetricUpdates
    elements_in: int
    elements_out: int
    seconds: float
    spills: int = 0
    logs: list[tuple[str | None, int, str, str]] = field(default_factory=list)  # see events
    operators: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    """Elements in and out of each fused operator and its own seconds, by transform id (the
    graph's true edges); the stage's root transform (a source, a shuffle) gets the rest of the
    task's time (reading, setup, finishing) with no counts."""


def _load_windowfn(payload: Payload | None) -> Any:
    return payload.load() if payload is not None else None


class _TaskBuilder:
    def __init__(self, plan: ExecutionPlan, stage: Stage, ctx: TaskContext) -> None:
        self.plan = plan
        self.stage = stage
        self.ctx = ctx
        self.ops: dict[str, Operator] = {}
        self.tables: dict[str, GroupTable] = {}
        self.collectors: dict[str, Collector] = {}
        self.containers: list[MetricsContainer] = []
        # each operator's own time: its process() calls less the operators they pushed to
        self.own_seconds: dict[str, float] = {}
        self._nested: list[float] = []
        # ParDo operators whose DoFn came from PROCESS_DOFNS: (cache key, instance, fresh).
        self.leases: dict[Operator, tuple[tuple[str, str], Any, bool]] = {}
        # Metrics a CombineFn updates belong to its combine step, not to the step feeding it.
        self.grouping_containers: dict[str, MetricsContainer] = {}

    def windowed(self, pid: str) -> bool:
        return pid in self.plan.windowed

    def receivers(self, pid: str) -> list[Receiver]:
        out: list[Receiver] = []
        for kind, dest in self.stage.edges.get(pid, ()):
            if kind == "op":
                op = self.ops[dest]
                node = self.plan.leaves[dest]
                if (
                    node.kind == "Flatten"
                    and self.windowed(pid)
                    and not self.windowed(node.outputs[0][1])
                ):
                    out.append(self._timed(dest, _stripping(op.process)))
                else:
                    out.append(self._timed(dest, op.process))
            elif kind == "group":
                table = self.table(dest)
                container = self.grouping_containers.get(dest)
                out.append(table.add if container is None else _in_scope(table.add, container))
            else:
                out.append(self.collector(dest).add)
        return out

    def _timed(self, tid: str, process: Receiver) -> Receiver:
        """``process`` adding its own time to ``own_seconds[tid]`` (two clock reads a chunk):
        the time of the operators it pushes to is taken off, so each transform of a fused
        stage gets the time its code took, as Dataflow's per-step times do."""
        own, nested, clock = self.own_seconds, self._nested, time.perf_counter
        own.setdefault(tid, 0.0)

        def timed(chunk: list[Any]) -> None:
            nested.append(0.0)
            start = clock()
            try:
                process(chunk)
            finally:
                spent = clock() - start
                inner = nested.pop()
                own[tid] += spent - inner
                if nested:
                    nested[-1] += spent

        return timed

    def table(self, gid: str) -> GroupTable:
        t = self.tables.get(gid)
        if t is None:
            g = self.plan.groupings[gid]
            t = GroupTable(
                label=g.node.label,
                mode=_mode(self.plan, g),
                merger=_merger(g),
                num_partitions=self.ctx.num_partitions,
                spill=self.ctx.spill,
                budget_bytes=self.ctx.budget_bytes,
                windowed=self.windowed(g.input),
                track_ts=_track_ts(self.plan, g),
                in_memory_handoff=self.ctx.in_memory_handoff,
                elements_as_keys=g.elements_as_keys,
            )
            if g.kind == "combine":
                container = MetricsContainer(g.node.label)
                self.containers.append(container)
                self.grouping_containers[gid] = container
            with scoped_container(self.grouping_containers.get(gid)):
                t.merger.setup()
            self.tables[gid] = t
        return t

    def collector(self, pid: str) -> Collector:
        c = self.collectors.get(pid)
        if c is None:
            c = Collector(
                self.ctx.spill,
                self.ctx.budget_bytes,
                self.ctx.in_memory_handoff,
                self.ctx.bundle_size,
            )
            self.collectors[pid] = c
        return c

    def build(self) -> list[Operator]:
        for tid in reversed(self.stage.operators):
            node = self.plan.leaves[tid]
            out_pids = [pid for _, pid in node.outputs]
            if node.kind == "Flatten":
                self.ops[tid] = FlattenOperator(
                    node.label, self.receivers(out_pids[0]), strip=False
                )
            elif node.kind == "WindowInto":
                self.ops[tid] = WindowIntoOperator(
                    node.label,
                    node.payload.load() if node.payload else None,
                    self.receivers(out_pids[0]),
                    in_windowed=self.windowed(node.inputs[0]),
                    out_windowed=self.windowed(out_pids[0]),
                )
            else:
                self.ops[tid] = op = self._pardo(node)
                self._fuse(node, op)
        return [self.ops[tid] for tid in self.stage.operators]

    def _fuse(self, node: Any, op: ParDoOperator) -> None:
        """Fuse ``Map | WindowInto | <grouping>`` into one loop when nothing else reads the
        Map's or the WindowInto's output (see ``ParDoOperator.fuse_window_into``)."""
        if len(node.outputs) != 1:
            return
        dests = self.stage.edges.get(node.outputs[0][1], ())
        if len(dests) != 1 or dests[0][0] != "op":
            return
        window_node = self.plan.leaves[dests[0][1]]
        window_op = self.ops[window_node.id]
        if window_node.kind != "WindowInto" or not isinstance(window_op, WindowIntoOperator):
            return
        after = self.stage.edges.get(window_node.outputs[0][1], ())
        if len(after) != 1 or after[0][0] != "group":
            return
        table = self.table(after[0][1])
        if table.takes_assigned:
            op.fuse_window_into(window_op, table.add_assigned)

    def _pardo(self, node: Any) -> ParDoOperator:
        lease = None
        if self.ctx.reuse_dofns:
            key = (self.ctx.run_id, node.id)
            instance, fresh = PROCESS_DOFNS.lease(key, node.payload.load)
            lease = (key, instance, fresh)
        else:
            instance = node.payload.load()
        dofn, args, kwargs = instance
        container = MetricsContainer(node.label)
        self.containers.append(container)
        sides = []
        for i, s in enumerate(node.side_inputs):
            sides.append((s.slot, self._side_input(node.label, s, i)))
        op = ParDoOperator(
            label=node.label,
            fn_kind=node.params.get("fn_kind", "dofn"),
            dofn=dofn,
            args=tuple(args),
            kwargs=dict(kwargs),
            dofn_params=dict(node.params.get("dofn_params", {})),
            main_tag=node.params.get("main_tag", "main"),
            outputs={tag: self.receivers(pid) for tag, pid in node.outputs},
            out_windowed={tag: self.windowed(pid) for tag, pid in node.outputs},
            in_windowed=self.windowed(node.inputs[0]),
            side_inputs=sides,
            metrics=container,
            drop_unknown_tags=bool(node.params.get("allow_unknown_tags")),
        )
        if lease is not None:
            self.leases[op] = lease
        return op

    def _side_input(self, label: str, s: Any, i: int) -> SideInput:
        pc = self.plan.graph.pcollections[s.pcollection]
        producer = self.plan.graph.transforms[pc.producer].label
        runs = self.ctx.side_data.get(s.pcollection, [])
        elements = [e for chunk in read_collection(runs, self.ctx.spill) for e in chunk]
        return SideInput(
            kind=s.view,
            elements=elements,
            default=s.default.load() if s.default is not None else NO_DEFAULT,
            label=label,
            side=producer,
            window_fn=_load_windowfn(pc.windowing.window_fn),
            windowed_elements=self.windowed(s.pcollection),
        )


def _in_scope(receiver: Receiver, container: MetricsContainer) -> Receiver:
    """``receiver`` with ``container`` current while it runs (then the caller's again)."""

    def scoped(chunk: list[Any]) -> None:
        previous = set_current_container(container)
        try:
            receiver(chunk)
        finally:
            set_current_container(previous)

    return scoped


def _stripping(receiver: Receiver) -> Receiver:
    def strip_then(chunk: list[Any]) -> None:
        receiver(_strip(chunk))

    return strip_then


def _mode(plan: ExecutionPlan, g: Grouping) -> str:
    if g.kind == "combine":
        return "combine"
    return "merging" if plan.graph.pcollections[g.input].windowing.merging else "gbk"


def _merger(g: Grouping) -> Merger:
    if g.kind == "combine":
        assert g.node.payload is not None
        fn, args, kwargs = g.node.payload.load()
        return Merger("combine", (fn, tuple(args), dict(kwargs)))
    return Merger("gbk", None)


def _track_ts(plan: ExecutionPlan, g: Grouping) -> str | None:
    return timestamp_tracking(plan.graph.pcollections[g.input].windowing.timestamp_combiner)


def _chunks(items: Iterator[Any] | list[Any], n: int) -> Iterator[list[Any]]:
    if isinstance(items, list):
        for i in range(0, len(items), n):
            yield items[i : i + n]
        return
    while True:
        chunk = list(itertools.islice(items, n))
        if not chunk:
            return
        yield chunk


def _source_chunks(source: Any, n: int, windowed: bool) -> Iterator[list[Any]]:
    as_list = source.as_list()
    return _element_chunks(
        _chunks(as_list if as_list is not None else iter(source.read()), n), windowed
    )


def _range_chunks(elements: list[Any], lo: int, hi: int, n: int) -> Iterator[list[Any]]:
    for i in range(lo, hi, n):
        yield elements[i : min(i + n, hi)]


def _element_chunks(chunks: Iterator[list[Any]], windowed: bool) -> Iterator[list[Any]]:
    for chunk in chunks:
        if windowed:
            yield [
                WindowedValue(x.value, x.timestamp_us, GLOBAL_WINDOWS_TUPLE)
                if type(x) is TimestampedValue
                else WindowedValue(x, MIN_US, GLOBAL_WINDOWS_TUPLE)
                for x in chunk
            ]
        elif chunk and type(chunk[0]) is TimestampedValue:
            yield [x.value if type(x) is TimestampedValue else x for x in chunk]
        else:
            yield chunk


def _grouping_chunks(
    plan: ExecutionPlan, g: Grouping, runs: list[Run], ctx: TaskContext
) -> Iterator[list[Any]]:
    mode = _mode(plan, g)
    merger = _merger(g)
    in_windowed = g.input in plan.windowed
    out_windowed = g.output in plan.windowed
    strategy = plan.graph.pcollections[g.input].windowing
    track = _track_ts(plan, g)
    window_fn = _load_windowfn(strategy.window_fn)
    transformed = strategy.timestamp_combiner == "OUTPUT_AT_EARLIEST_TRANSFORMED"
    n = ctx.bundle_size
    merger.setup()
    nbytes = sum(r.nbytes for r in runs)
    try:
        for table, ts in read_partition(
            runs, merger, in_windowed, track, ctx.budget_bytes, ctx.spill, mode
        ):
            leave_for_exit(table, nbytes, ctx.budget_bytes)  # see exec/gcpolicy.py
            if mode != "combine":
                table = plain_values(table)  # a writer's typed value columns, back to lists
            if mode == "merging":
                yield from _chunks(
                    group_merged_windows(table, window_fn, track, out_windowed, transformed), n
                )
                continue
            if not in_windowed:
                items: list[Any]
                if mode == "gbk" or merger.fast is not None:
                    items = list(table.items())
                else:
                    out = merger.output
                    items = [(k, out(a)) for k, a in table.items()]
                if out_windowed:
                    items = [
                        WindowedValue(kv, _global_end(), GLOBAL_WINDOWS_TUPLE, PANE_ONLY_FIRING)
                        for kv in items
                    ]
                yield from _chunks(items, n)
                continue
            extract = merger.output if mode == "combine" and merger.fast is None else None
            result: list[Any] = []
            last: Any = None
            end, wins = 0, GLOBAL_WINDOWS_TUPLE  # set at the first windowed group
            pane = PANE_ONLY_FIRING
            for (k, w), v in table.items():
                value = (k, extract(v) if extract is not None else v)
                if not out_windowed:
                    result.append(value)
                    continue
                if w is not last:  # groups of one window mostly follow each other
                    last, end, wins = w, w.max_timestamp_us(), (w,)
                    pane = PANE_ONLY_FIRING if w == GLOBAL_WINDOW else PANE_ON_TIME_NOT_LAST
                t = ts[(k, w)] if ts is not None else end
                if transformed and window_fn is not None:
                    t = transformed_output_time(window_fn, w, t)
                result.append(WindowedValue(value, t, wins, pane))
            yield from _chunks(result, n)
    finally:
        merger.teardown()


def _global_end() -> int:
    from headrace.model.window import GLOBAL_WINDOW_MAX_US

    return GLOBAL_WINDOW_MAX_US


def _resumed_in_scope(
    chunks: Iterator[list[Any]], container: MetricsContainer
) -> Iterator[list[Any]]:
    """``chunks``, with ``container`` current whenever the producing generator runs (the
    operators that receive a chunk make their own containers current in between)."""
    while True:
        set_current_container(container)
        try:
            chunk = next(chunks)
        except StopIteration:
            return
        yield chunk


def root_chunks(
    plan: ExecutionPlan,
    stage: Stage,
    task: TaskInput,
    ctx: TaskContext,
    container: MetricsContainer | None = None,
) -> Iterator[list[Any]]:
    """The chunks a stage's root emits for one task; ``container`` (if given) is current while
    a grouping root merges and extracts (a CombineFn's metrics belong to its combine step)."""
    root = stage.root
    if root.kind == "source":
        node = plan.leaves[root.node]
        windowed = root.pcoll in plan.windowed
        if task.ranges:
            assert node.payload is not None
            elements = node.payload.load().as_list()
            for lo, hi in task.ranges:
                yield from _element_chunks(
                    _range_chunks(elements, lo, hi, ctx.bundle_size), windowed
                )
        for source in task.sources:
            try:
                yield from _source_chunks(source, ctx.bundle_size, windowed)
            except Exception as e:
                raise annotate(e, node.label, what="read()") from None
    elif root.kind == "impulse":
        if task.sources:
            windowed = root.pcoll in plan.windowed
            yield [WindowedValue(b"", MIN_US, GLOBAL_WINDOWS_TUPLE)] if windowed else [b""]
    elif root.kind == "grouping":
        g = plan.groupings[root.node]
        chunks = _grouping_chunks(plan, g, task.runs, ctx)
        if container is not None:
            chunks = _resumed_in_scope(chunks, container)
        yield from chunks
    elif root.kind == "collection":
        strip = root.node in plan.windowed and root.pcoll not in plan.windowed
        for chunk in read_collection(task.collection, ctx.spill, task.part):
            yield _strip(chunk) if strip else chunk


def run_stage_task(
    plan: ExecutionPlan, stage: Stage, task: TaskInput, ctx: TaskContext
) -> TaskResult:
    """Run one task of ``stage``; see the module docstring for the order of events."""
    with relaxed_gc(), capture_logs() as logs:
        try:
            result = _run_stage_task(plan, stage, task, ctx)
        except BaseException as e:
            # what the user's code logged before it failed travels with the error
            try:
                e._headrace_logs = list(logs)  # type: ignore[attr-defined]
            except AttributeError:
                pass
            raise
    result.logs = logs
    return result


def _run_stage_task(
    plan: ExecutionPlan, stage: Stage, task: TaskInput, ctx: TaskContext
) -> TaskResult:
    started = time.perf_counter()
    b = _TaskBuilder(plan, stage, ctx)
    ops: list[Operator] = []
    failed = False
    elements_in = 0
    try:
        ops = b.build()
        root_pcoll = stage.root.pcoll
        emit = b.receivers(root_pcoll) if root_pcoll is not None else []
        for op in ops:
            lease = b.leases.get(op)
            if lease is None or lease[2]:  # a reused instance is set up already
                op.setup()
        for op in ops:
            op.start()
        cancelled, on_chunk = ctx.cancelled, ctx.on_chunk
        root_container = None
        if stage.root.kind == "grouping" and plan.groupings[stage.root.node].kind == "combine":
            root_container = MetricsContainer(plan.groupings[stage.root.node].node.label)
            b.containers.append(root_container)
        for chunk in root_chunks(plan, stage, task, ctx, root_container):
            if cancelled is not None and cancelled():
                raise Cancelled()
            elements_in += len(chunk)
            if on_chunk is not None:
                on_chunk(len(chunk))
            for r in emit:
                r(chunk)
        for op in ops:
            op.finish()
        groupings = {}
        for gid, t in b.tables.items():
            with scoped_container(b.grouping_containers.get(gid)):
                groupings[gid] = t.close()
        collections = {pid: c.close() for pid, c in b.collectors.items()}
    except BaseException:
        failed = True
        raise
    finally:
        try:
            for op in ops:
                lease = b.leases.get(op)
                if lease is not None and not failed:
                    PROCESS_DOFNS.give_back(lease[0], lease[1])  # kept set up, no teardown
                    continue
                try:
                    op.teardown()
                except Exception:
                    if not failed:
                        raise
            for gid, t in b.tables.items():
                with scoped_container(b.grouping_containers.get(gid)):
                    t.merger.teardown()
        finally:
            set_current_container(None)
    metrics = MetricUpdates.merged(c.to_updates() for c in b.containers)
    return TaskResult(
        stage=stage.id,
        groupings=groupings,
        collections=collections,
        metrics=metrics,
        elements_in=elements_in,
        elements_out=sum(len(ops) and op.elements_out for op in ops[-1:]),
        seconds=time.perf_counter() - started,
        spills=sum(t.spills for t in b.tables.values()),
        operators=_operator_counts(stage, b, time.perf_counter() - started),
    )


def _operator_counts(
    stage: Stage, b: _TaskBuilder, seconds: float
) -> dict[str, tuple[int, int, float]]:
    out = {
        tid: (op.elements_in, op.elements_out, b.own_seconds.get(tid, 0.0))
        for tid, op in b.ops.items()
    }
    if stage.root.kind in ("source", "impulse", "grouping"):
        rest = max(0.0, seconds - sum(b.own_seconds.values()))
        out[stage.root.node] = (0, 0, rest)
    return out
