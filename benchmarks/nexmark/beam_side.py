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
trigger that "may finish" and lose data unless told to allow it.

A batch query the FnApiRunner cannot run (it fails on the custom merging WindowFn of
WinningBids: q4, q6, q9) runs again on the BundleBasedDirectRunner; the report says so. A run
that does not finish within ``--timeout`` seconds is reported as an error, with
``timed_out`` set (Beam's direct runner does not return from q12's processing-time trigger,
although it has written its results). For each query and mode it writes the results under
``OUTPUT_DIR/qN-MODE/`` and prints one JSON line: per ``qN-MODE`` the runner, the seconds and
CPU seconds of each run, or the error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import threading
import time
import types
from functools import partial
from pathlib import Path
from typing import Any

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
    parser.add_argument("--timeout", type=float, default=300, help="seconds per run")
    parser.add_argument("--params", default="{}", help="JSON: query parameters to override")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    alias_headrace_beam()
    sys.path.insert(0, str(HERE.parent))
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from nexmark.generator import GeneratorConfig, generate
    from nexmark.pipelines import build
    from nexmark.queries import DEFAULT_PARAMS

    params = {**DEFAULT_PARAMS, **json.loads(args.params)}

    events = generate(args.events, GeneratorConfig(seed=args.seed))
    report: dict[str, Any] = {"version": apache_beam.__version__, "runs": {}}

    def run_once(q: int, mode: str, out: str, direct: bool) -> tuple[float, float]:
        streaming = mode == "streaming"
        runner = BundleBasedDirectRunner() if direct else FnApiRunner()
        flags = ["--allow_unsafe_triggers"]  # q11's trigger, see the docstring
        options = PipelineOptions([*flags, "--streaming"] if streaming else flags)
        t0, c0 = time.perf_counter(), cpu_seconds()
        with apache_beam.Pipeline(runner=runner, options=options) as p:
            build(p, events, q, mode, out, params)
        return time.perf_counter() - t0, cpu_seconds() - c0

    for q in (int(x) for x in args.queries.split(",")):
        for mode in args.modes.split(","):
            name = f"q{q}-{mode}"
            run: dict[str, Any] = {"seconds": [], "cpu": []}
            direct = mode == "streaming" and args.streaming_runner == "direct"
            run["runner"] = "BundleBasedDirectRunner" if direct else "FnApiRunner"
            for r in range(args.repeat):
                out = os.path.join(args.output_dir, name, f"run{r}", "result")
                outcome = with_timeout(partial(run_once, q, mode, out, direct), args.timeout)
                if isinstance(outcome, BaseException) and not direct and r == 0:
                    # The FnApiRunner cannot run some queries in batch (a custom merging
                    # WindowFn); run them on the direct runner, as Beam's DirectRunner would.
                    run["fallback"] = f"FnApiRunner failed: {describe(outcome)}"
                    run["runner"] = "BundleBasedDirectRunner"
                    direct = True
                    outcome = with_timeout(partial(run_once, q, mode, out, True), args.timeout)
                if isinstance(outcome, BaseException):
                    run["error"] = describe(outcome)
                    # A run that timed out may still have written all its results.
                    run["timed_out"] = isinstance(outcome, TimeoutError)
                    break
                run["seconds"].append(outcome[0])
                run["cpu"].append(outcome[1])
            report["runs"][name] = run
            print(f"beam {name}: {run}", file=sys.stderr, flush=True)
    print(json.dumps(report), flush=True)
    # Beam's direct runner can leave threads behind (q12's processing-time timers): do not
    # wait for them.
    os._exit(0)


def describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".splitlines()[0][:300]


def with_timeout(fn: Any, seconds: float) -> Any:
    """``fn()``'s result, the exception it raised, or TimeoutError after ``seconds``."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(fn())
        except Exception as e:  # handed back to the caller, which reports it
            box.append(e)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if not box:
        return TimeoutError(f"did not finish within {seconds:g} s")
    return box[0]


if __name__ == "__main__":
    main()
