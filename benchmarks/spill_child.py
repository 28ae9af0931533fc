"""One grouping job in a fresh process, for bench_spill to measure its peak memory.

``--mode headrace`` groups the pairs of :class:`datagen.PairSource` with GroupByKey under
``--budget-mb``; ``--mode python`` does the same with a ``defaultdict(list)``. Both write one line
``key: size,checksum`` per key (the checksum is the sum of the values read back as ints). It
prints one JSON line: seconds of the job; the peak RSS (KiB) before the job (the interpreter with
its imports, after a tiny warm-up run for headrace) and after it; the number of spills.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import resource
import time
from typing import Any

from datagen import PairSource


def _maxrss_kib() -> int:
    """Peak resident memory of this process so far, in KiB.

    Linux's ``ru_maxrss`` survives ``execve``: a child forked from a parent holding 1 GB starts
    with ru_maxrss = 1 GB whatever it does afterwards. ``VmHWM`` (in /proc/self/status) is the
    peak of this program's own address space, so it is used where it exists.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def group_headrace(source: PairSource, out_prefix: str, budget_mb: int) -> int:
    import headrace.beam as beam
    from headrace.beam.options.pipeline_options import PipelineOptions

    p = beam.Pipeline(options=PipelineOptions(direct_memory_budget_mb=budget_mb))
    (
        p
        | "Pairs" >> beam.io.Read(source)
        | "Group" >> beam.GroupByKey()
        | "Check" >> beam.MapTuple(lambda k, vs: f"{k}: {len(vs)},{sum(map(int, vs))}")
        | "Write" >> beam.io.WriteToText(out_prefix, file_name_suffix=".txt")
    )
    result: Any = p.run()
    result.wait_until_finish()
    return sum(stage.spills for stage in getattr(result, "progress", []))


def group_python(source: PairSource, out_prefix: str) -> int:
    groups: collections.defaultdict[int, list[str]] = collections.defaultdict(list)
    for k, v in source.read():
        groups[k].append(v)
    with open(f"{out_prefix}.txt", "w", encoding="utf-8") as out:
        out.writelines(f"{k}: {len(vs)},{sum(map(int, vs))}\n" for k, vs in groups.items())
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["headrace", "python"], required=True)
    parser.add_argument("--pairs", type=int, required=True)
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--digits", type=int, required=True)
    parser.add_argument("--budget-mb", type=int, default=0)
    parser.add_argument("--out", required=True, help="output prefix")
    args = parser.parse_args()
    source = PairSource(args.pairs, args.keys, value_digits=args.digits)
    if args.mode == "headrace":
        # A tiny run first: the imports it triggers count as the interpreter's baseline.
        group_headrace(PairSource(100, 10, value_digits=args.digits), args.out + "-warm", 1)
        for path in glob.glob(args.out + "-warm*"):
            os.remove(path)
    base = _maxrss_kib()
    t0 = time.perf_counter()
    if args.mode == "headrace":
        spills = group_headrace(source, args.out, args.budget_mb)
    else:
        spills = group_python(source, args.out)
    seconds = time.perf_counter() - t0
    report = {
        "seconds": seconds,
        "base_kib": base,
        "peak_kib": _maxrss_kib(),
        "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "spills": spills,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
