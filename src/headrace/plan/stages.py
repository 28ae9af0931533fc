"""Fusion: cutting the graph into stages that run without any serialisation inside.

Vocabulary
----------
*leaf*        a primitive the runner executes. A ``CombinePerKey`` composite is a leaf when it can
              be lifted (non-merging windows, default trigger); otherwise its parts are leaves.
*grouping*    a ``GroupByKey`` or lifted ``CombinePerKey`` leaf: a shuffle boundary. Its input side
              is written by the stages that produce its input; its output side starts a stage.
*collection*  a PCollection materialised whole: side inputs, the input of a ``Finalize``, and
              the main input of a ParDo that had to be cut off from its producer (see below).
*stage*       a tree of fused operators (ParDo, WindowInto, Flatten) rooted at one input: a source
              (``Read``/``Impulse``), a grouping's output or a collection. A Flatten is transparent:
              the operators after it are copied into the stage of each of its inputs.

A ParDo with a side input must run after the side input is complete. When that would make a stage
wait for itself (``data | Map(f, AsSingleton(data | CombineGlobally(sum)))``), the ParDo is cut:
its main input is materialised and it starts a new stage of its own (two cut ParDos reading one
collection get two stages, as in an iteration ``v = m | Map(f, AsDict(v)) | CombinePerKey(sum)``
repeated over one ``m``). Cuts are added until the stage dependency graph is acyclic.

*windowed*    the PCollections whose elements must carry timestamps and windows
              (``WindowedValue``); all others move as plain values, the fast case. A Read whose
              params say no element is timestamped (a Create of plain values) stays plain when
              only ParDos read it: they make the same windowed output from plain input.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from headrace.graph.kinds import COMBINE_PER_KEY, RESHUFFLE, executable_leaves
from headrace.graph.nodes import PipelineGraph, TransformNode
from headrace.plan.udf import pairs_with_constant

__all__ = ["ExecutionPlan", "Grouping", "Stage", "StageRoot", "build_plan"]

OPERATOR_KINDS = frozenset({"ParDo", "WindowInto", "Flatten"})
GROUPING_KINDS = frozenset({"GroupByKey", "CombinePerKey"})
_TIME_PARAMS = frozenset({"timestamp", "window", "pane"})


@dataclass(frozen=True)
class StageRoot:
    """Where a stage's elements come from: ``source``, ``impulse``, ``grouping``,
    ``collection`` or ``empty``. ``node`` is a transform id (or a PCollection id for a
    collection); ``pcoll`` is the PCollection the root emits."""

    kind: str
    node: str
    pcoll: str | None
    cut: str | None = None
    """For the stage of a cut ParDo: that ParDo's transform id (each cut ParDo has its own stage,
    so that two cut readers of one collection never wait for each other)."""


@dataclass(frozen=True)
class Stage:
    """Fused operators rooted at one input, with where each PCollection goes.

    ``edges`` maps a PCollection id to its destinations inside or at the end of the stage:
    ``("op", transform_id)``, ``("group", grouping_id)`` or ``("collect", pcollection_id)``.
    ``operators`` lists the fused transform ids in topological order.
    """

    id: int
    root: StageRoot
    operators: tuple[str, ...]
    edges: dict[str, tuple[tuple[str, str], ...]]
    side_inputs: tuple[str, ...]
    depends_on: tuple[int, ...]
    name: str

    def groupings_written(self) -> set[str]:
        return {d for dests in self.edges.values() for kind, d in dests if kind == "group"}

    def collections_written(self) -> set[str]:
        return {d for dests in self.edges.values() for kind, d in dests if kind == "collect"}


@dataclass(frozen=True)
class Grouping:
    """A shuffle: ``kind`` is ``gbk`` or ``combine`` (lifted; ``node.payload`` is the CombineFn).

    ``elements_as_keys``: the input elements themselves are the keys (e.g. ``Count.PerElement``),
    so no ``(element, None)`` pairs are built before counting.
    """

    node: TransformNode
    kind: str
    input: str
    output: str
    elements_as_keys: bool = False


@dataclass(frozen=True)
class ExecutionPlan:
    """What a runner executes: stages in a valid order plus the facts operators need."""

    graph: PipelineGraph
    stages: tuple[Stage, ...]
    leaves: dict[str, TransformNode]
    groupings: dict[str, Grouping]
    collections: frozenset[str]
    finalizers: tuple[tuple[str, str], ...]  # (finalize transform id, input pcollection id)
    windowed: frozenset[str]
    cuts: frozenset[str] = field(default_factory=frozenset)
    rewrites: tuple[str, ...] = ()

    def describe(self) -> str:
        """A readable listing of the stages, as ``headrace plan`` prints it."""
        lines = []
        for stage in self.stages:
            deps = (
                f"  (after {', '.join(f'S{d}' for d in stage.depends_on)})"
                if stage.depends_on
                else ""
            )
            lines.append(f"S{stage.id}: {stage.name}{deps}")
            lines.append(f"    input:  {self._root_text(stage.root)}")
            for tid in stage.operators:
                node = self.leaves[tid]
                extra = ""
                if node.side_inputs:
                    extra = "  side inputs: " + ", ".join(
                        self._pcoll_label(s.pcollection) for s in node.side_inputs
                    )
                lines.append(f"    fused:  {node.label} [{node.kind}]{extra}")
            for kind, dest in sorted({d for ds in stage.edges.values() for d in ds}):
                if kind == "group":
                    g = self.groupings[dest]
                    how = "lifted combine" if g.kind == "combine" else "group by key"
                    lines.append(f"    output: shuffle into {g.node.label} ({how})")
                elif kind == "collect":
                    lines.append(f"    output: materialise {self._pcoll_label(dest)}")
        for tid, pid in self.finalizers:
            lines.append(f"on success: {self.leaves[tid].label} commits {self._pcoll_label(pid)}")
        lines.extend(f"rewrite: {text}" for text in self.rewrites)
        return "\n".join(lines)

    def _root_text(self, root: StageRoot) -> str:
        if root.kind in ("source", "impulse"):
            return f"{self.leaves[root.node].label} [{root.kind}]"
        if root.kind == "grouping":
            g = self.groupings[root.node]
            return f"{g.node.label} [{'combined' if g.kind == 'combine' else 'grouped'} output]"
        if root.kind == "collection" and root.pcoll and root.pcoll != root.node:
            label = next(
                n.label
                for n in self.leaves.values()
                if n.kind == "Reshuffle" and n.outputs[0][1] == root.pcoll
            )
            return f"{label} [redistributed {self._pcoll_label(root.node)}]"
        if root.kind == "collection":
            return f"materialised {self._pcoll_label(root.node)}"
        return "nothing (empty Flatten)"

    def _pcoll_label(self, pid: str) -> str:
        pc = self.graph.pcollections[pid]
        label = self.graph.transforms[pc.producer].label
        return label if pc.tag in (None, "main") else f"{label}.{pc.tag}"


def _liftable(graph: PipelineGraph, node: TransformNode) -> bool:
    strategy = graph.pcollections[node.inputs[0]].windowing
    return not strategy.merging and strategy.trigger is None


def leaves_of(graph: PipelineGraph) -> Iterator[TransformNode]:
    """Executable leaves in application (topological) order."""

    def whole(node: TransformNode) -> bool:
        return (node.kind == COMBINE_PER_KEY and _liftable(graph, node)) or node.kind == RESHUFFLE

    return executable_leaves(graph, whole)


class _Builder:
    def __init__(self, graph: PipelineGraph) -> None:
        self.graph = graph
        self.leaves = {n.id: n for n in leaves_of(graph)}
        self.order = {tid: i for i, tid in enumerate(self.leaves)}
        self.consumers: dict[str, list[str]] = {pid: [] for pid in graph.pcollections}
        self.side_consumers: dict[str, list[str]] = {pid: [] for pid in graph.pcollections}
        for node in self.leaves.values():
            for pid in node.inputs:
                self.consumers[pid].append(node.id)
            for side in node.side_inputs:
                self.side_consumers[side.pcollection].append(node.id)
        self.groupings = {
            tid: Grouping(
                node=n,
                kind="combine" if n.kind == "CombinePerKey" else "gbk",
                input=n.inputs[0],
                output=n.outputs[0][1],
                elements_as_keys=bool(n.params.get("elements_as_keys")),
            )
            for tid, n in self.leaves.items()
            if n.kind in GROUPING_KINDS
        }
        self.finalize_inputs = {n.inputs[0] for n in self.leaves.values() if n.kind == "Finalize"}
        self.rewrites: list[str] = []
        for gid in list(self.groupings):
            self._count_pairs_directly(gid)

    def _count_pairs_directly(self, gid: str) -> None:
        """``Map(lambda x: (x, 1)) | CombinePerKey(sum)`` counts elements: skip the pairs."""
        g = self.groupings[gid]
        if g.kind != "combine" or g.elements_as_keys or g.node.payload is None:
            return
        fast = getattr(g.node.payload.load()[0], "fast_path", None)
        mapper = self.leaves.get(self.graph.pcollections[g.input].producer)
        if fast not in ("sum", "count") or mapper is None or mapper.payload is None:
            return
        if (
            mapper.kind != "ParDo"
            or mapper.params.get("fn_kind") != "map"
            or mapper.side_inputs
            or mapper.params.get("dofn_params")
            or len(mapper.outputs) != 1
            or self.consumers[g.input] != [gid]
            or self.side_consumers[g.input]
            or g.input in self.finalize_inputs
        ):
            return
        dofn, args, kwargs = mapper.payload.load()
        matched, const = pairs_with_constant(getattr(dofn, "fn", None))
        if args or kwargs or not matched:
            return
        if fast == "sum" and (type(const) is not int or const != 1):
            return
        source = mapper.inputs[0]
        self.consumers[source] = [gid if t == mapper.id else t for t in self.consumers[source]]
        self.groupings[gid] = replace(g, input=source, elements_as_keys=True)
        del self.leaves[mapper.id]
        self.rewrites.append(
            f"{mapper.label}: pairs every element with {const!r}; {g.node.label} counts the "
            "elements directly instead"
        )

    def outputs(self, node: TransformNode) -> list[str]:
        return [pid for _, pid in node.outputs]

    def build(self, cuts: set[str]) -> list[Stage]:
        collections = set(self.finalize_inputs)
        for pid, users in self.side_consumers.items():
            if users:
                collections.add(pid)
        for tid in cuts:
            collections.add(self.leaves[tid].inputs[0])
        for node in self.leaves.values():
            if node.kind == "Reshuffle":
                collections.add(node.inputs[0])
        roots: list[StageRoot] = []
        for node in self.leaves.values():
            if node.kind == "Read":
                roots.append(StageRoot("source", node.id, node.outputs[0][1]))
            elif node.kind == "Impulse":
                roots.append(StageRoot("impulse", node.id, node.outputs[0][1]))
            elif node.kind in GROUPING_KINDS:
                roots.append(StageRoot("grouping", node.id, node.outputs[0][1]))
            elif node.kind == "Reshuffle":
                roots.append(StageRoot("collection", node.inputs[0], node.outputs[0][1]))
            elif node.kind == "Flatten" and not node.inputs:
                roots.append(StageRoot("empty", node.id, node.outputs[0][1]))
            elif node.id in cuts:
                roots.append(StageRoot("collection", node.inputs[0], node.inputs[0], node.id))
        stages: list[Stage] = []
        for root in roots:
            stages.append(self._grow(len(stages), root, cuts, collections))
        return stages

    def _grow(self, sid: int, root: StageRoot, cuts: set[str], collections: set[str]) -> Stage:
        edges: dict[str, list[tuple[str, str]]] = {}
        ops: set[str] = set()
        sides: set[str] = set()
        start: list[str]
        if root.kind == "collection" and root.pcoll != root.node:  # a Reshuffle's output
            start = [root.pcoll] if root.pcoll else []
        elif root.kind == "collection":
            # the cut ParDo itself is this stage's first operator
            cut_ops = [root.cut] if root.cut else []
            edges[root.node] = [("op", t) for t in cut_ops]
            ops.update(cut_ops)
            start = [pid for t in cut_ops for pid in self.outputs(self.leaves[t])]
            for t in cut_ops:
                sides.update(s.pcollection for s in self.leaves[t].side_inputs)
        else:
            start = [root.pcoll] if root.pcoll else []
        todo = list(start)
        seen_pcolls: set[str] = set()
        while todo:
            pid = todo.pop()
            if pid in seen_pcolls:
                continue
            seen_pcolls.add(pid)
            dests: list[tuple[str, str]] = []
            if pid in collections:
                dests.append(("collect", pid))
            for tid in self.consumers[pid]:
                node = self.leaves[tid]
                if node.kind in GROUPING_KINDS:
                    dests.append(("group", tid))
                elif node.kind in ("Finalize", "Reshuffle"):
                    continue  # reads the materialised collection
                elif tid in cuts:
                    continue  # reads the materialised collection in its own stage
                elif node.kind in OPERATOR_KINDS:
                    dests.append(("op", tid))
                    if tid not in ops:
                        ops.add(tid)
                        sides.update(s.pcollection for s in node.side_inputs)
                        todo.extend(self.outputs(node))
            edges[pid] = dests
        operators = tuple(sorted(ops, key=self.order.__getitem__))
        name = self._stage_name(root, operators)
        return Stage(
            id=sid,
            root=root,
            operators=operators,
            edges={k: tuple(v) for k, v in edges.items()},
            side_inputs=tuple(sorted(sides)),
            depends_on=(),
            name=name,
        )

    def _reshuffle_label(self, pcoll: str | None) -> str:
        return next(
            n.label
            for n in self.leaves.values()
            if n.kind == "Reshuffle" and n.outputs[0][1] == pcoll
        )

    def _stage_name(self, root: StageRoot, operators: tuple[str, ...]) -> str:
        if root.kind == "collection" and root.pcoll != root.node:
            first = self._reshuffle_label(root.pcoll)
        elif root.kind == "collection":
            first = self.leaves[operators[0]].label if operators else root.node
        elif root.kind == "empty":
            first = self.leaves[root.node].label
        else:
            first = self.leaves[root.node].label
        last = self.leaves[operators[-1]].label if operators else None
        return first if not last or last == first else f"{first} ... {last}"


def _dependencies(stages: list[Stage], groupings: dict[str, Grouping]) -> dict[int, set[int]]:
    writers_of_group: dict[str, set[int]] = {}
    writers_of_coll: dict[str, set[int]] = {}
    for s in stages:
        for g in s.groupings_written():
            writers_of_group.setdefault(g, set()).add(s.id)
        for c in s.collections_written():
            writers_of_coll.setdefault(c, set()).add(s.id)
    deps: dict[int, set[int]] = {}
    for s in stages:
        d: set[int] = set()
        if s.root.kind == "grouping":
            d |= writers_of_group.get(s.root.node, set())
        if s.root.kind == "collection":
            d |= writers_of_coll.get(s.root.node, set())
        for side in s.side_inputs:
            d |= writers_of_coll.get(side, set())
        deps[s.id] = d
    return deps


def _find_cycle(deps: dict[int, set[int]]) -> list[int] | None:
    state: dict[int, int] = {}
    stack: list[int] = []

    def visit(n: int) -> list[int] | None:
        state[n] = 1
        stack.append(n)
        for m in deps[n]:
            if state.get(m) == 1:
                return stack[stack.index(m) :]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in deps:
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def _toposort(deps: dict[int, set[int]]) -> list[int]:
    order: list[int] = []
    done: set[int] = set()

    def visit(n: int) -> None:
        if n in done:
            return
        done.add(n)
        for m in sorted(deps[n]):
            visit(m)
        order.append(n)

    for n in sorted(deps):
        visit(n)
    return order


def _windowed_pcollections(b: _Builder) -> frozenset[str]:
    graph = b.graph
    windowed = {pid for pid, pc in graph.pcollections.items() if not pc.windowing.is_global}
    for node in b.leaves.values():
        if node.kind == "ParDo":
            params = set(node.params.get("dofn_params", {}).values())
            needs_time = bool(params & _TIME_PARAMS) or node.params.get("stateful")
            side_windowed = any(
                not graph.pcollections[s.pcollection].windowing.is_global for s in node.side_inputs
            )
            if needs_time or side_windowed:
                windowed.update(node.inputs)
        elif node.kind == "WindowInto" and node.outputs:
            if not graph.pcollections[node.outputs[0][1]].windowing.is_global:
                windowed.update(node.inputs)
    # A ParDo that reads no time makes the same windowed output from a plain input when every
    # input element is at the minimum timestamp in the global window: a Read that says none of
    # its elements is timestamped (a Create of plain values) need not wrap each element.
    untimed = {
        n.outputs[0][1]
        for n in b.leaves.values()
        if n.kind == "Read" and n.params.get("timestamped") is False and n.outputs
    }
    changed = True
    while changed:
        changed = False
        for node in reversed(list(b.leaves.values())):
            passes_time = node.kind in OPERATOR_KINDS or node.kind == "Reshuffle"
            if passes_time and any(pid in windowed for _, pid in node.outputs):
                for pid in node.inputs:
                    if pid in untimed and node.kind == "ParDo":
                        continue
                    if pid not in windowed:
                        windowed.add(pid)
                        changed = True
    return frozenset(windowed)


def _check_supported(b: _Builder) -> None:
    """Custom triggers and user state run in the direct runner's streaming mode (one push
    network driven by watermarks); they have no fused batch plan."""
    for node in b.leaves.values():
        for _, pid in node.outputs:
            strategy = b.graph.pcollections[pid].windowing
            if strategy.trigger is not None and node.kind in GROUPING_KINDS:
                raise NotImplementedError(
                    f"{node.label!r} groups with a custom trigger; such pipelines run in streaming "
                    "mode (one push network driven by watermarks), which has no batch stage plan"
                )
        if node.kind == "ParDo" and node.params.get("stateful"):
            raise NotImplementedError(
                f"{node.label!r} uses state or timers; such pipelines run in streaming mode (one "
                "push network driven by watermarks), which has no batch stage plan"
            )


def build_plan(graph: PipelineGraph) -> ExecutionPlan:
    """Fuse ``graph`` into stages in an order that satisfies every dependency."""
    b = _Builder(graph)
    _check_supported(b)
    cuts: set[str] = set()
    while True:
        stages = b.build(cuts)
        deps = _dependencies(stages, b.groupings)
        cycle = _find_cycle(deps)
        if cycle is None:
            break
        candidates = [
            tid
            for sid in cycle
            for tid in stages[sid].operators
            if b.leaves[tid].side_inputs and tid not in cuts
        ]
        if not candidates:  # pragma: no cover - every cycle passes through a side input
            raise RuntimeError("could not order the stages of this pipeline")
        cuts.add(min(candidates, key=b.order.__getitem__))
    order = _toposort(deps)
    renumber = {old: new for new, old in enumerate(order)}
    final = []
    for old in order:
        s = stages[old]
        final.append(
            Stage(
                id=renumber[old],
                root=s.root,
                operators=s.operators,
                edges=s.edges,
                side_inputs=s.side_inputs,
                depends_on=tuple(sorted(renumber[d] for d in deps[old])),
                name=s.name,
            )
        )
    collections = set(b.finalize_inputs)
    for pid, users in b.side_consumers.items():
        if users:
            collections.add(pid)
    for tid in cuts:
        collections.add(b.leaves[tid].inputs[0])
    finalizers = tuple((n.id, n.inputs[0]) for n in b.leaves.values() if n.kind == "Finalize")
    return ExecutionPlan(
        graph=graph,
        stages=tuple(final),
        leaves=b.leaves,
        groupings=b.groupings,
        collections=frozenset(collections),
        finalizers=finalizers,
        windowed=_windowed_pcollections(b),
        cuts=frozenset(cuts),
        rewrites=tuple(b.rewrites),
    )
