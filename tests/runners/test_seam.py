"""The runner seam's unit tests: golden plans, exec grouping over a spill space, remote tasks.

A second runner (Ray) must get the same stages from ``plan`` and run them with the same ``exec``
code from nothing but a pickled :class:`TaskInput`, reading every input through the run's
:class:`SpillSpace`. These tests pin those three things without a runner around them. The golden
plans follow the fusion rules of Beam's portable runners (``fn_api_runner/translations.py``:
a stage boundary at every GroupByKey and at every materialised side input; ``lift_combiners``
pre-combines before the shuffle).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import cloudpickle

import headrace.beam as beam
from headrace.exec.grouping import FileRun, GroupTable, Merger, read_partition
from headrace.exec.keys import stable_hash
from headrace.exec.spill import LocalSpillSpace
from headrace.io.textio import WriteToText
from headrace.model.pipeline import Pipeline
from headrace.model.pvalue import AsList
from headrace.model.transforms.core import (
    CombinePerKey,
    Create,
    FlatMap,
    Flatten,
    GroupByKey,
    Map,
)
from headrace.model.transforms.dofn import CallableWrapperCombineFn
from headrace.plan import build_plan
from headrace.runners.coordinator import RunOutputs
from headrace.runners.tasks import TaskContext, TaskResult

# -- golden plans --------------------------------------------------------------------------------


def _plan_text(p: Pipeline) -> str:
    return build_plan(p.to_graph()).describe()


def test_golden_plan_word_count_lifts_the_combine_and_counts_directly() -> None:
    p = Pipeline()
    words = p | "Lines" >> Create(["a b", "b c"]) | "Split" >> FlatMap(str.split)
    _ = words | "Pair" >> Map(lambda w: (w, 1)) | "Sum" >> CombinePerKey(sum)
    assert _plan_text(p) == textwrap.dedent(
        """\
        S0: Lines ... Split
            input:  Lines [source]
            fused:  Split [ParDo]
            output: shuffle into Sum (lifted combine)
        S1: Sum  (after S0)
            input:  Sum [combined output]
        rewrite: Pair: pairs every element with 1; Sum counts the elements directly instead"""
    )


def test_golden_plan_flatten_group_side_input_and_sink() -> None:
    p = Pipeline()
    a = p | "A" >> Create([("k", 1)])
    b = p | "B" >> Create([("k", 2)])
    grouped = (a, b) | "Both" >> Flatten() | "Group" >> GroupByKey()
    side = p | "Side" >> Create([10])
    used = grouped | "Use" >> Map(lambda kv, s: (kv, s), AsList(side))
    _ = used | "Write" >> WriteToText("/nonexistent/never-run")
    assert _plan_text(p) == textwrap.dedent(
        """\
        S0: A ... Both
            input:  A [source]
            fused:  Both [Flatten]
            output: shuffle into Group (group by key)
        S1: B ... Both
            input:  B [source]
            fused:  Both [Flatten]
            output: shuffle into Group (group by key)
        S2: Side
            input:  Side [source]
            output: materialise Side
        S3: Group ... Write/WriteFiles/WriteBundles  (after S0, S1, S2)
            input:  Group [grouped output]
            fused:  Use [ParDo]  side inputs: Side
            fused:  Write/WriteFiles/WriteBundles [ParDo]
            output: materialise Write/WriteFiles/WriteBundles
        on success: Write/WriteFiles/Finalize commits Write/WriteFiles/WriteBundles"""
    )


def test_golden_plan_reshuffle_and_co_group_by_key() -> None:
    p = Pipeline()
    _ = p | "Nums" >> Create([1, 2, 3]) | "Spread" >> beam.Reshuffle() | "Sq" >> Map(abs)
    left = p | "L" >> Create([("a", 1)])
    right = p | "R" >> Create([("a", "x")])
    _ = {"l": left, "r": right} | "Join" >> beam.CoGroupByKey()
    assert _plan_text(p) == textwrap.dedent(
        """\
        S0: Nums
            input:  Nums [source]
            output: materialise Nums
        S1: Spread ... Sq  (after S0)
            input:  Spread [redistributed Nums]
            fused:  Sq [ParDo]
        S2: L ... Join/Flatten
            input:  L [source]
            fused:  Join/pair_with_l [ParDo]
            fused:  Join/Flatten [Flatten]
            output: shuffle into Join/GroupByKey (group by key)
        S3: R ... Join/Flatten
            input:  R [source]
            fused:  Join/pair_with_r [ParDo]
            fused:  Join/Flatten [Flatten]
            output: shuffle into Join/GroupByKey (group by key)
        S4: Join/GroupByKey ... Join/SplitByTag  (after S2, S3)
            input:  Join/GroupByKey [grouped output]
            fused:  Join/SplitByTag [ParDo]"""
    )


# -- exec grouping over a spill space ------------------------------------------------------------


def _table(space: LocalSpillSpace, partitions: int, budget: int, mode: str = "gbk") -> GroupTable:
    merger = (
        Merger("combine", (CallableWrapperCombineFn(sum), (), {}))
        if mode == "combine"
        else Merger("gbk", None)
    )
    return GroupTable(
        label="G",
        mode=mode,
        merger=merger,
        num_partitions=partitions,
        spill=space,
        budget_bytes=budget,
        windowed=False,
        in_memory_handoff=False,
    )


def test_grouping_spills_into_the_space_and_reads_every_group_back(tmp_path: Path) -> None:
    space = LocalSpillSpace(str(tmp_path))
    table = _table(space, partitions=1, budget=4096)
    for i in range(0, 20_000, 1000):
        table.add([(j % 97, j) for j in range(i, i + 1000)])
    (runs,) = table.close()
    assert table.spills > 1 and all(isinstance(r, FileRun) for r in runs)
    assert {Path(r.key).parent for r in runs} == {tmp_path}
    merged: dict[int, list[int]] = {}
    for piece, _ in read_partition(runs, Merger("gbk", None), False, None, 4096, space, "gbk"):
        for k, vs in piece.items():
            assert k not in merged, "a key came back in two pieces"
            merged[k] = sorted(vs)
    assert merged == {k: list(range(k, 20_000, 97)) for k in range(97)}


def test_grouping_partitions_by_a_stable_hash_of_the_key(tmp_path: Path) -> None:
    space = LocalSpillSpace(str(tmp_path))
    table = _table(space, partitions=2, budget=1 << 20, mode="combine")
    table.add([(f"k{i % 10}", i) for i in range(100)])
    parts = table.close()
    for p, runs in enumerate(parts):
        merger = Merger("combine", (CallableWrapperCombineFn(sum), (), {}))
        for piece, _ in read_partition(runs, merger, False, None, 1 << 20, space, "combine"):
            for k, total in piece.items():
                assert stable_hash(k, 0) % 2 == p
                assert total == sum(range(int(k[1:]), 100, 10))


# -- a task as a remote worker gets it -----------------------------------------------------------

CHILD = """
import pickle, sys
from headrace.runners.tasks import run_stage_task
plan, stage_id, task, ctx = pickle.load(sys.stdin.buffer)
sys.stdout.buffer.write(pickle.dumps(run_stage_task(plan, plan.stages[stage_id], task, ctx)))
"""


def _run_in_fresh_interpreter(payload: bytes) -> TaskResult:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], input=payload, capture_output=True, check=True
    )
    result = cloudpickle.loads(done.stdout)
    assert isinstance(result, TaskResult)
    return result


def test_task_inputs_pickled_and_run_in_fresh_interpreters_give_the_grouped_result(
    tmp_path: Path,
) -> None:
    p = Pipeline()
    _ = (
        p
        | "Nums" >> Create(list(range(30)))
        | "Key" >> Map(lambda x: (x % 3, x))
        | "Group" >> GroupByKey()
    )
    plan = build_plan(p.to_graph())
    space = LocalSpillSpace(str(tmp_path))
    ctx = TaskContext(
        num_partitions=2,
        spill=space,
        budget_bytes=1 << 20,
        bundle_size=8,
        in_memory_handoff=False,
        side_data={},
    )
    outputs = RunOutputs()
    first, second = plan.stages
    for task in outputs.tasks(plan, first, 2):
        outputs.add(_run_in_fresh_interpreter(cloudpickle.dumps((plan, first.id, task, ctx))))
    # The last stage's tasks: what each reads back (by key, through the space) is one partition
    # of the groups, and a fresh interpreter running it sees exactly those groups.
    groups: dict[int, list[int]] = {}
    for task in outputs.tasks(plan, second, 2):
        again = cloudpickle.loads(cloudpickle.dumps(task))
        read = Merger("gbk", None)
        keys = 0
        for piece, _ in read_partition(again.runs, read, False, None, 1 << 20, space, "gbk"):
            keys += len(piece)
            groups.update((k, sorted(vs)) for k, vs in piece.items())
        result = _run_in_fresh_interpreter(cloudpickle.dumps((plan, second.id, again, ctx)))
        assert result.elements_in == keys
    assert groups == {k: list(range(k, 30, 3)) for k in range(3)}


def test_run_outputs_keep_stage_order_whichever_stage_finishes_first() -> None:
    """Stages running at once (the Ray executor) finish in any order; what a later stage reads
    of a grouping or collection two stages wrote is in stage order, then task order."""
    from headrace.model.metrics import MetricUpdates

    def result(stage: int, tag: str) -> TaskResult:
        return TaskResult(
            stage=stage,
            groupings={"g": [[f"{tag}-p0"], [f"{tag}-p1"]]},  # type: ignore[list-item]
            collections={"c": [f"{tag}-c"]},  # type: ignore[list-item]
            metrics=MetricUpdates(),
            elements_in=0,
            elements_out=0,
            seconds=0.0,
        )

    late_first = RunOutputs()
    for stage, tag in ((2, "s2a"), (0, "s0a"), (2, "s2b"), (1, "s1a"), (0, "s0b")):
        late_first.add(result(stage, tag))
    in_order = RunOutputs()
    for stage, tag in ((0, "s0a"), (0, "s0b"), (1, "s1a"), (2, "s2a"), (2, "s2b")):
        in_order.add(result(stage, tag))
    assert late_first.groupings == in_order.groupings
    assert late_first.collections == in_order.collections
    assert in_order.collections["c"] == ["s0a-c", "s0b-c", "s1a-c", "s2a-c", "s2b-c"]
