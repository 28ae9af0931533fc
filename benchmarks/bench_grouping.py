"""GroupByKey and CombinePerKey(sum) throughput against plain-Python dict loops.

Input: ``pairs`` (key, int) pairs over ``keys`` keys from :class:`datagen.PairSource`. Baselines
iterate the same generated pairs: ``defaultdict(list)`` + ``append`` for grouping, ``dict.get`` +
add for summing, and write one ``key: size`` (or ``key: sum``) line per key, as the headrace
pipelines do with ``WriteToText``. Outputs are compared with the baselines' after every run.
The source's bare generation time is reported too, as it is part of every case.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from pathlib import Path

from datagen import PairSource
from harness import (
    BenchmarkError,
    Case,
    Row,
    make_row,
    measure,
    read_kv_lines,
    remove_files,
    same_counts,
    timed,
)

import headrace.beam as beam
from headrace.beam.options.pipeline_options import PipelineOptions

__all__ = ["run_grouping"]


def baseline_group(source: PairSource, out_path: str) -> None:
    groups: collections.defaultdict[int, list[int]] = collections.defaultdict(list)
    for k, v in source.read():
        groups[k].append(v)
    with open(out_path, "w", encoding="utf-8") as out:
        out.writelines(f"{k}: {len(vs)}\n" for k, vs in groups.items())


def baseline_sum(source: PairSource, out_path: str) -> None:
    totals: dict[int, int] = {}
    get = totals.get
    for k, v in source.read():
        totals[k] = get(k, 0) + v
    with open(out_path, "w", encoding="utf-8") as out:
        out.writelines(f"{k}: {s}\n" for k, s in totals.items())


def headrace_group(source: PairSource, out_prefix: str, op: str, workers: int) -> None:
    """``op`` is ``gbk`` (GroupByKey, then the size of each group) or ``sum``."""
    if workers > 1:
        options = PipelineOptions(
            [], direct_num_workers=workers, direct_running_mode="multi_processing"
        )
    else:
        options = PipelineOptions([])  # not sys.argv: those are the benchmark's own flags
    with beam.Pipeline(options=options) as p:
        pairs = p | "Pairs" >> beam.io.Read(source)
        if op == "gbk":
            out = (
                pairs
                | "Group" >> beam.GroupByKey()
                | "Sizes" >> beam.MapTuple(lambda k, vs: f"{k}: {len(vs)}")
            )
        else:
            out = (
                pairs
                | "Sum" >> beam.CombinePerKey(sum)
                | "Format" >> beam.MapTuple(lambda k, s: f"{k}: {s}")
            )
        out | "Write" >> beam.io.WriteToText(out_prefix, file_name_suffix=".txt")


BASELINES = {
    "gbk": (baseline_group, "plain Python defaultdict(list).append", "GroupByKey | MapTuple(len)"),
    "sum": (baseline_sum, "plain Python dict get + add", "CombinePerKey(sum)"),
}


def grouping_cases(tmp: Path, source: PairSource, op: str) -> list[Case]:
    """The baseline and the headrace cases (1 process, 2 workers) of one operation."""
    baseline, base_name, label = BASELINES[op]
    base_out = tmp / f"grouping-{op}-baseline.txt"
    expected: dict[str, str] = {}

    def run_base(_: int) -> float:
        return timed(lambda: baseline(source, str(base_out)))

    def check_base(_: int) -> None:
        expected.clear()
        expected.update(read_kv_lines(str(base_out)))
        if len(expected) != source.keys:
            raise BenchmarkError(f"{base_name}: {len(expected)} keys, expected {source.keys}")

    def headrace_case(workers: int) -> Case:
        prefix = tmp / f"grouping-{op}-{workers}"
        name = f"headrace {op}, " + ("1 process" if workers == 1 else f"{workers} workers")

        def run(_: int) -> float:
            return timed(lambda: headrace_group(source, str(prefix), op, workers))

        def check(_: int) -> None:
            pattern = f"{prefix}-*.txt"
            same_counts(name, read_kv_lines(pattern), expected)
            remove_files(pattern)

        return Case(name, run, check, elements=source.n, note=label)

    base = Case(base_name, run_base, check_base, elements=source.n, note="baseline")
    return [base, headrace_case(1), headrace_case(2)]


def run_grouping(
    tmp: Path, pairs: int, keys: int, repeat: int, log: Callable[[str], None]
) -> list[Row]:
    """Time GroupByKey and CombinePerKey(sum) over ``pairs`` pairs; return the rows."""
    source = PairSource(pairs, keys)
    warm = PairSource(1000, 10)
    for op in BASELINES:
        for workers in (1, 2):
            headrace_group(warm, str(tmp / "warm-up-out"), op, workers)
    remove_files(str(tmp / "warm-up-out*"))

    rows: list[Row] = []
    for op in BASELINES:
        rows.extend(measure(f"grouping {op}", grouping_cases(tmp, source, op), repeat, log))
    generate = [timed(lambda: collections.deque(source.read(), maxlen=0)) for _ in range(repeat)]
    gen = make_row("grouping", "generating the pairs only", generate, None, None, pairs)
    gen.ratio_best = gen.ratio_median = None
    gen.note = "part of every grouping case above"
    rows.append(gen)
    return rows
