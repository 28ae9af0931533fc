"""The word count of bench_wordcount on Apache Beam, run by Beam's own interpreter.

It imports nothing of headrace, so it runs in benchmarks/.beam-venv (see setup_beam.sh). It runs
the pipeline ``--repeat`` times on Beam's FnApiRunner (in this process or, with ``--workers 2``,
with SDK worker processes), each run writing to
``OUTPUT_DIR/runN/counts-*``, and prints one JSON line: the seconds of each run (pipeline
construction and run; not the interpreter start or the import of Beam) and the runner used.

The FnApiRunner is named explicitly: ``runner='DirectRunner'`` is what Beam's batch DirectRunner
used to pick, but recent releases (2.6x on) first try the Prism runner, a Go binary downloaded from
the internet at run time, and fall back to the FnApiRunner only when that fails; timing that
attempt would measure the network, not Beam.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

WORD = re.compile(r"[A-Za-z']+")


def wordcount(path: str, out_prefix: str, variant: str, workers: int) -> None:
    args = []
    if workers > 1:
        args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
    with beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions(args)) as p:
        words = p | "Read" >> beam.io.ReadFromText(path) | "Split" >> beam.FlatMap(WORD.findall)
        if variant == "canonical":
            counts = words | "Pair" >> beam.Map(lambda w: (w, 1)) | "Sum" >> beam.CombinePerKey(sum)
        else:
            counts = words | "Count" >> beam.combiners.Count.PerElement()
        (
            counts
            | "Format" >> beam.MapTuple(lambda w, n: f"{w}: {n}")
            | "Write" >> beam.io.WriteToText(out_prefix)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--variant", choices=["canonical", "count"], required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    seconds = []
    for r in range(args.repeat):
        out_dir = os.path.join(args.output_dir, f"run{r}")
        os.makedirs(out_dir, exist_ok=True)
        t0 = time.perf_counter()
        wordcount(args.input, os.path.join(out_dir, "counts"), args.variant, args.workers)
        seconds.append(time.perf_counter() - t0)
    runner = "FnApiRunner" + (
        f", {args.workers} SDK worker processes" if args.workers > 1 else ", in process"
    )
    print(json.dumps({"seconds": seconds, "runner": runner, "version": beam.__version__}))


if __name__ == "__main__":
    main()
