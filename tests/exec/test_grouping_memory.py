"""The grouping memory budget holds within one input chunk (issue 13, item 6).

A FlatMap that fans out 300 inputs into 5,000-10,000 pairs each, into GroupByKey, with
``--direct_memory_budget_mb=32``, peaked at 876 MB: the fast FlatMap path built its whole output
before pushing it on, so the budget was checked only between input chunks, and the reading side
compared the pickled size of spilled runs (a few bytes per int) with its memory budget, so it
merged several times the budget at once. The job runs in a fresh interpreter that reports its own
peak resident memory (``VmHWM``; ``benchmarks/spill_child.py`` says why not ``ru_maxrss``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headrace.exec.grouping import FileRun, GroupTable, Merger, read_partition
from headrace.exec.spill import LocalSpillSpace

CHILD = textwrap.dedent(
    """
    import json, sys

    def peak_mb():
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    import headrace.beam as beam
    from headrace.model.options import PipelineOptions

    options = ["--direct_memory_budget_mb=" + sys.argv[1]]
    out = sys.argv[2]

    def fan(i):
        n = 5000 + (i * 7919) % 5001
        return [("k%d" % ((i * 31 + j) % 50000), j) for j in range(n)]

    def summary(kv):
        return (len(kv[1]), sum(kv[1]))

    with beam.Pipeline(options=PipelineOptions(options)) as p:  # warm-up: imports, first run
        _ = p | beam.Create([1, 2]) | beam.FlatMap(lambda i: [(i, i)]) | beam.GroupByKey()
    before = peak_mb()
    with beam.Pipeline(options=PipelineOptions(options)) as p:
        _ = (
            p
            | beam.Create(range(300))
            | beam.FlatMap(fan)
            | beam.GroupByKey()
            | beam.Map(summary)
            | beam.CombineGlobally(lambda xs: [sum(c) for c in zip(*xs)] if xs else [0, 0])
            | beam.Map(lambda totals: json.dump(totals, open(out, "w")))
        )
    print(json.dumps({"before_mb": before, "peak_mb": peak_mb()}))
    """
)


@pytest.mark.slow
def test_a_fan_out_inside_one_chunk_stays_within_the_grouping_budget(tmp_path: Path) -> None:
    """Peak memory of the issue's job stays within 2x the 32 MB budget above the interpreter's
    (measured: ~40 MB above it; 380 MB before the fix). Memory, not time: the figure does not
    depend on the machine's load. The result is checked too (groups and values all there).
    Beam's bundle processing has no such budget; this is headrace's own promise (DESIGN.md,
    "Bounded memory")."""
    out = tmp_path / "totals.json"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "32", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    expected_values = sum(5000 + (i * 7919) % 5001 for i in range(300))
    expected_sum = sum(n * (n - 1) // 2 for n in (5000 + (i * 7919) % 5001 for i in range(300)))
    assert json.loads(out.read_text()) == [expected_values, expected_sum]
    grown = figures["peak_mb"] - figures["before_mb"]
    assert grown < 2 * 32, figures


def test_spilled_runs_are_sized_by_their_memory_not_their_pickled_bytes(tmp_path: Path) -> None:
    """A spilled run records how much memory its pickled bytes stand for, and the reader splits
    by that: a partition whose pickled runs fit the budget but whose groups do not is read one
    sub-bucket at a time (before, it was merged whole)."""
    space = LocalSpillSpace(str(tmp_path))
    table = GroupTable(
        "G", "gbk", Merger("gbk", None), 1, space, budget_bytes=200_000, windowed=False
    )
    for start in range(0, 40_000, 1000):
        table.add([(f"k{i % 2000}", i) for i in range(start, start + 1000)])
    runs = table.close()[0]
    file_runs = [r for r in runs if isinstance(r, FileRun)]
    assert file_runs and table.spills >= 2
    pickled = sum(sum(n for _, n in r.index.values()) for r in file_runs)
    assert all(r.mem_ratio > 2 for r in file_runs)  # ints pickle to a few bytes
    budget = 2 * pickled  # the pickled bytes fit; the groups in memory do not
    merger = Merger("gbk", None)
    pieces = list(read_partition(runs, merger, False, None, budget, space, "gbk"))
    assert len(pieces) > 1
    merged = {k: sorted(v) for piece, _ in pieces for k, v in piece.items()}
    assert len(merged) == 2000
    assert merged["k7"] == list(range(7, 40_000, 2000))
