"""Nexmark on headrace and on Apache Beam: ``python benchmarks/nexmark/run.py [--quick]``.

Generates the events once (deterministic, see generator.py), runs every query (0-12) in batch
(``Create``) and streaming (``TestStream``) on headrace's direct runner in this process, then
the same queries on the same events on Apache Beam in its own interpreter (``beam_side.py``,
benchmarks/.beam-venv from setup_beam.sh), and prints one table: events/s of each, events per
CPU second ("per core"), the ratio, and whether the outputs are equal (sorted multisets of
canonical JSON lines, whole; see :func:`comparable` for why q10 and q12 can be compared whole).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHMARKS = HERE.parent
REPO = BENCHMARKS.parent
FULL_EVENTS = 20_000
QUICK_EVENTS = 2_000
ALL_QUERIES = tuple(range(13))


@dataclass
class Result:
    """One query in one mode: headrace's and Beam's runs and the output check."""

    query: int
    mode: str
    events: int
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    beam_seconds: list[float] = field(default_factory=list)
    beam_cpu: list[float] = field(default_factory=list)
    error: str = ""
    beam_error: str = ""
    beam_runner: str = ""
    check: str = ""  # "ok", "DIFF: ...", or why it was not checked
    outputs: int = 0

    def rate(self) -> float | None:
        return self.events / min(self.seconds) if self.seconds else None

    def rate_cpu(self) -> float | None:
        return self.events / min(self.cpu) if self.cpu and min(self.cpu) > 0 else None

    def beam_rate(self) -> float | None:
        return self.events / min(self.beam_seconds) if self.beam_seconds else None

    def beam_rate_cpu(self) -> float | None:
        ok = self.beam_cpu and min(self.beam_cpu) > 0
        return self.events / min(self.beam_cpu) if ok else None


def comparable(query: int, lines: list[str]) -> list[str]:
    """What of a query's output must match between runners, as a sorted list of lines.

    All of it, for every query: q12 fires on processing time, but in a TestStream processing
    time is the stream's own (advanced after each step), and in batch it never fires; q10's
    output (events and shards per window) leaves out which pane each log file belongs to.
    """
    return sorted(lines)


def explain_diff(mine: list[str], theirs: list[str]) -> str:
    """A short account of how two outputs differ."""
    a, b = Counter(mine), Counter(theirs)
    text = (
        f"DIFF ({len(mine)} vs beam {len(theirs)}: "
        f"{sum((a - b).values())} only headrace, {sum((b - a).values())} only beam)"
    )

    def without_is_last(lines: list[str]) -> list[str]:
        rows = [json.loads(line) for line in lines]
        return sorted(json.dumps({k: v for k, v in r.items() if k != "is_last"}) for r in rows)

    try:
        if without_is_last(mine) == without_is_last(theirs):
            text = "DIFF in pane is_last only"
    except (ValueError, AttributeError):
        pass
    return text


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def run_headrace(
    events: list[Any],
    result: Result,
    out_dir: Path,
    repeat: int,
    log: Any,
    params: dict[str, int] | None = None,
) -> list[str]:
    """Time ``repeat`` runs of one query on headrace; return the sorted output lines."""
    import headrace.beam as beam
    from nexmark.pipelines import build, read_results

    lines: list[str] = []
    for r in range(repeat):
        prefix = str(out_dir / f"q{result.query}-{result.mode}" / f"run{r}" / "result")
        t0, c0 = time.perf_counter(), cpu_seconds()
        try:
            with beam.Pipeline() as p:
                build(p, events, result.query, result.mode, prefix, params)
        except Exception as e:
            result.error = f"{type(e).__name__}: {e}".splitlines()[0][:200]
            log(f"  headrace q{result.query} {result.mode}: FAILED {result.error}")
            return []
        result.seconds.append(time.perf_counter() - t0)
        result.cpu.append(cpu_seconds() - c0)
        lines = read_results(prefix)
        log(f"  headrace q{result.query} {result.mode}: {result.seconds[-1]:.2f} s")
    return lines


def run_beam(
    beam_python: str, n: int, seed: int, queries: list[int], modes: list[str], repeat: int,
    out_dir: Path, log: Any, overrides: dict[str, int] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run beam_side.py in Beam's interpreter; its JSON report."""
    cmd = [
        beam_python, str(HERE / "beam_side.py"), "--events", str(n), "--seed", str(seed),
        "--queries", ",".join(map(str, queries)), "--modes", ",".join(modes),
        "--repeat", str(repeat), "--output-dir", str(out_dir),
        "--params", json.dumps(overrides or {}),
    ]  # fmt: skip
    log(f"  beam: {' '.join(cmd[1:])}")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"beam_side.py exited {proc.returncode}: {' | '.join(tail)}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def _rate(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x / 1e3:.1f}k"


def format_results(results: list[Result]) -> str:
    header = ["query", "mode", "events", "headrace ev/s", "per core", "beam ev/s",
              "beam per core", "ratio", "beam runner", "output"]  # fmt: skip
    lines = [header]
    for r in results:
        rate, beam_rate = r.rate(), r.beam_rate()
        ratio = f"{rate / beam_rate:.2f}x" if rate and beam_rate else "-"
        lines.append([
            f"q{r.query}", r.mode, f"{r.events:,}",
            _rate(rate) if not r.error else "FAILED", _rate(r.rate_cpu()),
            _rate(beam_rate) if beam_rate or not r.beam_error else "FAILED",
            _rate(r.beam_rate_cpu()),
            ratio, r.beam_runner, r.check,
        ])  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        cells = [c.rjust(widths[i]) if 2 <= i <= 7 else c.ljust(widths[i])
                 for i, c in enumerate(line)]  # fmt: skip
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def run_nexmark(
    n: int,
    repeat: int,
    beam_python: str | None,
    log: Any,
    queries: list[int] | None = None,
    modes: list[str] | None = None,
    seed: int = 16,
    overrides: dict[str, int] | None = None,
) -> tuple[list[Result], dict[str, Any]]:
    """Run the suite; the results (one per query and mode) and facts about the run.

    ``overrides`` replaces some of the queries' parameters (``queries.DEFAULT_PARAMS``) on
    both runners, e.g. ``{"num_events_in_pane": 1}`` to let q3's join fire.
    """
    from nexmark.generator import GeneratorConfig, generate
    from nexmark.pipelines import MODES, read_results
    from nexmark.queries import DEFAULT_PARAMS

    queries = list(queries if queries is not None else ALL_QUERIES)
    modes = list(modes or MODES)
    t0 = time.perf_counter()
    events = generate(n, GeneratorConfig(seed=seed))
    facts: dict[str, Any] = {
        "events": n,
        "seed": seed,
        "generate_s": round(time.perf_counter() - t0, 2),
        "event_time_s": (events[-1].date_time - events[0].date_time) / 1000 if events else 0,
    }
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="headrace-nexmark-") as tmp_name:
        tmp = Path(tmp_name)
        expected: dict[tuple[int, str], list[str]] = {}
        for q in queries:
            for mode in modes:
                result = Result(q, mode, n)
                params = {**DEFAULT_PARAMS, **(overrides or {})}
                lines = run_headrace(events, result, tmp / "headrace", repeat, log, params)
                result.outputs = len(lines)
                expected[(q, mode)] = lines
                results.append(result)
        if beam_python is None:
            facts["beam"] = "not run (no --beam-python; run benchmarks/setup_beam.sh)"
            for result in results:
                result.check = "no beam"
            return results, facts
        try:
            report = run_beam(
                beam_python, n, seed, queries, modes, repeat, tmp / "beam", log, overrides
            )
        except (RuntimeError, ValueError) as e:
            facts["beam"] = f"failed: {e}"
            for result in results:
                result.check = "no beam"
            return results, facts
        facts["beam"] = (
            f"apache-beam {report['version']} (FnApiRunner; BundleBasedDirectRunner for "
            "streaming and where the FnApiRunner fails)"
        )
        for result in results:
            name = f"q{result.query}-{result.mode}"
            run = report["runs"].get(name, {"error": "not run"})
            result.beam_runner = {"FnApiRunner": "fnapi", "BundleBasedDirectRunner": "direct"}.get(
                run.get("runner", ""), "?"
            )
            result.beam_seconds, result.beam_cpu = run.get("seconds", []), run.get("cpu", [])
            if "error" in run:
                result.beam_error = run["error"]
                facts[f"beam {name}"] = run["error"]
            if result.error:
                result.check = "headrace failed"
                continue
            if result.beam_error and not run.get("timed_out"):
                result.check = "beam failed"
                continue
            last = len(result.beam_seconds) if result.beam_error else repeat - 1
            beam_lines = read_results(str(tmp / "beam" / name / f"run{last}" / "result"))
            mine = comparable(result.query, expected[(result.query, result.mode)])
            theirs = comparable(result.query, beam_lines)
            if mine == theirs:
                result.check = f"ok ({len(theirs)})"
                if result.beam_error:
                    result.check += ", beam timed out after writing"
            else:
                result.check = explain_diff(mine, theirs)
    return results, facts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events")
    parser.add_argument("--events", type=int, help=f"number of events (default {FULL_EVENTS:,})")
    parser.add_argument("--queries", help="comma-separated query numbers (default all, 0-12)")
    parser.add_argument("--modes", help="batch,streaming (default both)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case; best is shown")
    default_beam = BENCHMARKS / ".beam-venv" / "bin" / "python"
    parser.add_argument(
        "--beam-python",
        default=str(default_beam) if default_beam.exists() else None,
        help="interpreter that can import apache_beam (default: benchmarks/.beam-venv)",
    )
    parser.add_argument("--no-beam", action="store_true")
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=INT",
        help="override a query parameter on both runners (queries.DEFAULT_PARAMS)",
    )
    args = parser.parse_args(argv)
    n = args.events or (QUICK_EVENTS if args.quick else FULL_EVENTS)
    queries = [int(q) for q in args.queries.split(",")] if args.queries else None
    modes = args.modes.split(",") if args.modes else None
    beam_python = None if args.no_beam else args.beam_python

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    load = [round(x, 2) for x in os.getloadavg()]
    log(f"nexmark: {n:,} events, {os.cpu_count()} CPUs, load {load}")
    overrides = {k: int(v) for k, v in (p.split("=", 1) for p in args.param)}
    results, facts = run_nexmark(
        n, args.repeat, beam_python, log, queries, modes, overrides=overrides
    )
    if overrides:
        facts["params"] = overrides
    print(format_results(results))
    print(", ".join(f"{k}={v}" for k, v in facts.items()))
    print(
        "per core = events / CPU seconds of the run; ratio = headrace ev/s / beam ev/s; "
        f"load average {load} at start, {[round(x, 2) for x in os.getloadavg()]} at end"
    )
    bad = [r for r in results if r.error or r.check.startswith("DIFF")]
    return 1 if bad else 0


def _ensure_headrace() -> None:
    """Re-run under the project's .venv when this interpreter cannot import headrace."""
    try:
        import headrace  # noqa: F401
    except ImportError:
        venv = REPO / ".venv" / "bin" / "python"
        if venv.exists() and Path(sys.prefix).resolve() != venv.parent.parent.resolve():
            os.execv(str(venv), [str(venv), __file__, *sys.argv[1:]])
        sys.exit("nexmark/run.py: cannot import headrace; run it with the project's .venv")


if __name__ == "__main__":
    _ensure_headrace()
    sys.path.insert(0, str(BENCHMARKS))
    sys.exit(main())
