"""Run the Nexmark queries on Apache Beam, with Beam's own interpreter (benchmarks/.beam-venv).

It imports nothing of headrace: before importing :mod:`nexmark.queries` and
:mod:`nexmark.pipelines` (written against ``headrace.beam``), it points the module names
``headrace.beam...`` they import at the ``apache_beam`` modules of the same path, so Beam runs
the very same query code. The events come from the same deterministic generator and seed.

Batch runs use Beam's FnApiRunner, named explicitly (``DirectRunner`` first tries to download
the Prism runner); streaming runs (TestStream) use the BundleBasedDirectRunner with
``--streaming``, because the FnApiRunner does not implement TestStream
(``NotImplementedError: beam:transform:teststream:v1``). Every run passes
``--allow_unsafe_triggers``: Beam refuses q11's ``AfterWatermark(early=AfterCount(n))`` as a
trigger that "may finish" and lose data unless told to allow it. For each query and
mode it writes the results under ``OUTPUT_DIR/qN-MODE/`` and prints one JSON line: per
``qN-MODE`` the seconds and CPU seconds of each run, or the error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import time
import types
from pathlib import Path

import apache_beam

HERE = Path(__file__).resolve().parent


def alias_headrace_beam() -> None:
    """Make ``import headrace.beam...`` give the ``apache_beam`` module of the same path."""
    import apache_beam.testing.test_stream
    import apache_beam.transforms.trigger
    import apache_beam.transforms.userstate
    import apache_beam.transforms.window
    import apache_beam.utils.timestamp

    root = types.ModuleType("headrace")
    root.__path__ = []  # type: ignore[attr-defined]
    root.beam = apache_beam  # type: ignore[attr-defined]
    sys.modules["headrace"] = root
    for name in (
        "",
        ".testing",
        ".testing.test_stream",
        ".transforms",
        ".transforms.trigger",
        ".transforms.userstate",
        ".transforms.window",
        ".utils",
        ".utils.timestamp",
    ):
        sys.modules["headrace.beam" + name] = sys.modules["apache_beam" + name]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--queries", default=",".join(str(q) for q in range(13)))
    parser.add_argument("--modes", default="batch,streaming")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--streaming-runner", choices=["fnapi", "direct"], default="direct")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    alias_headrace_beam()
    sys.path.insert(0, str(HERE.parent))
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner
    from nexmark.generator import GeneratorConfig, generate
    from nexmark.pipelines import build

    events = generate(args.events, GeneratorConfig(seed=args.seed))
    report: dict[str, object] = {"version": apache_beam.__version__, "runs": {}}
    for q in (int(x) for x in args.queries.split(",")):
        for mode in args.modes.split(","):
            name = f"q{q}-{mode}"
            seconds, cpu = [], []
            try:
                for r in range(args.repeat):
                    out = os.path.join(args.output_dir, name, f"run{r}", "result")
                    streaming = mode == "streaming"
                    runner = (
                        BundleBasedDirectRunner()
                        if streaming and args.streaming_runner == "direct"
                        else FnApiRunner()
                    )
                    flags = ["--allow_unsafe_triggers"]  # q11's trigger, see the docstring
                    options = PipelineOptions([*flags, "--streaming"] if streaming else flags)
                    t0, c0 = time.perf_counter(), cpu_seconds()
                    with apache_beam.Pipeline(runner=runner, options=options) as p:
                        build(p, events, q, mode, out)
                    seconds.append(time.perf_counter() - t0)
                    cpu.append(cpu_seconds() - c0)
                report["runs"][name] = {"seconds": seconds, "cpu": cpu}  # type: ignore[index]
            except Exception as e:  # noqa: BLE001 - reported to run.py, which shows it
                message = f"{type(e).__name__}: {e}".splitlines()[0][:300]
                report["runs"][name] = {"error": message}  # type: ignore[index]
            print(f"beam {name}: {report['runs'][name]}", file=sys.stderr, flush=True)  # type: ignore[index]
    print(json.dumps(report))


if __name__ == "__main__":
    main()
