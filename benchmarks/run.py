"""Run headrace's benchmark suite and print one table: ``python benchmarks/run.py``.

Every figure is a ratio to a plain-Python baseline doing the same work, measured in the same run,
next to the absolute seconds (best and median of ``--repeat`` runs, interleaved across cases).
The results also go to benchmarks/results/latest.json. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NAMES = ("wordcount", "grouping", "spill", "streaming", "eventtime", "startup", "nexmark")


@dataclass(frozen=True)
class Sizes:
    """Input sizes of one mode (full or ``--quick``)."""

    wordcount_mb: float
    grouping_pairs: int
    grouping_keys: int
    spill_pairs: int
    spill_keys: int
    spill_digits: int  # characters of each string value: 50 makes 99-byte str objects
    spill_budget_mb: int
    streaming_events: int = 1_000_000
    streaming_keys: int = 1_000
    eventtime_events: int = 300_000
    nexmark_events: int = 20_000


FULL = Sizes(10.0, 5_000_000, 100_000, 2_000_000, 50_000, 50, 64)
QUICK = Sizes(
    2.0,
    1_000_000,
    20_000,
    500_000,
    20_000,
    50,
    16,
    streaming_events=200_000,
    eventtime_events=100_000,
    nexmark_events=2_000,
)


def _ensure_headrace() -> None:
    """Re-run under the project's .venv when this interpreter cannot import headrace."""
    try:
        import headrace  # noqa: F401
    except ImportError:
        venv = REPO / ".venv" / "bin" / "python"
        if venv.exists() and Path(sys.prefix).resolve() != venv.parent.parent.resolve():
            os.execv(str(venv), [str(venv), __file__, *sys.argv[1:]])
        sys.exit(
            "run.py: cannot import headrace; run it with the project's interpreter "
            "(.venv/bin/python benchmarks/run.py) or install headrace with pip install -e ."
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (under a minute)")
    parser.add_argument(
        "--only",
        action="append",
        choices=NAMES,
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per case; best and median reported"
    )
    default_beam = HERE / ".beam-venv" / "bin" / "python"
    parser.add_argument(
        "--beam-python",
        default=str(default_beam) if default_beam.exists() else None,
        help="interpreter that can import apache_beam, for the Beam word count "
        "(default: benchmarks/.beam-venv/bin/python if it exists; see setup_beam.sh)",
    )
    parser.add_argument("--no-beam", action="store_true", help="skip the Beam word count")
    parser.add_argument(
        "--json",
        default=str(HERE / "results" / "latest.json"),
        help="where to write the results as JSON",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def machine() -> dict[str, Any]:
    import headrace

    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "headrace": getattr(headrace, "__version__", "?"),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    _ensure_headrace()
    sys.path.insert(0, str(HERE))
    from bench_cli_startup import run_cli_startup
    from bench_eventtime import run_eventtime
    from bench_grouping import run_grouping
    from bench_spill import run_spill
    from bench_streaming import run_streaming
    from bench_wordcount import run_wordcount
    from harness import BenchmarkError, Row, format_table

    sizes = QUICK if args.quick else FULL
    selected = args.only or list(NAMES)
    beam_python = None if args.no_beam else args.beam_python
    info = machine()
    log(
        f"headrace benchmarks ({'quick' if args.quick else 'full'} sizes, repeat {args.repeat}) "
        f"on {info['cpus']} CPUs, Python {info['python']}, load {info['load_average_start']}"
    )
    rows: list[Row] = []
    facts: dict[str, Any] = {}
    nexmark: list[Any] = []
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="headrace-bench-") as tmp_name:
            tmp = Path(tmp_name)
            if "wordcount" in selected:
                log(f"wordcount: {sizes.wordcount_mb:g} MB of generated text")
                wc_dir = tmp / "wordcount"
                wc_dir.mkdir()
                wc_rows, facts["wordcount"] = run_wordcount(
                    wc_dir, sizes.wordcount_mb, args.repeat, beam_python, log
                )
                if beam_python is None:
                    facts["wordcount"]["beam"] = (
                        "not run: no --beam-python (run benchmarks/setup_beam.sh)"
                        if not args.no_beam
                        else "not run: --no-beam"
                    )
                rows.extend(wc_rows)
            if "grouping" in selected:
                pairs, keys = sizes.grouping_pairs, sizes.grouping_keys
                log(f"grouping: {pairs:,} pairs over {keys:,} keys")
                g_dir = tmp / "grouping"
                g_dir.mkdir()
                rows.extend(run_grouping(g_dir, pairs, keys, args.repeat, log))
                facts["grouping"] = {"pairs": pairs, "keys": keys}
            if "spill" in selected:
                log(f"spill: {sizes.spill_pairs:,} pairs, budget {sizes.spill_budget_mb} MB")
                s_dir = tmp / "spill"
                s_dir.mkdir()
                s_rows, facts["spill"] = run_spill(
                    s_dir,
                    sizes.spill_pairs,
                    sizes.spill_keys,
                    sizes.spill_digits,
                    sizes.spill_budget_mb,
                    args.repeat,
                    log,
                )
                rows.extend(s_rows)
            if "streaming" in selected:
                events, keys = sizes.streaming_events, sizes.streaming_keys
                log(f"streaming: {events:,} timestamped events over {keys:,} keys")
                t_dir = tmp / "streaming"
                t_dir.mkdir()
                t_rows, facts["streaming"] = run_streaming(t_dir, events, keys, args.repeat, log)
                rows.extend(t_rows)
            if "eventtime" in selected:
                n = sizes.eventtime_events
                log(f"eventtime: {n:,} events as users write them (Create + Map, TestStream)")
                rows_e, facts["eventtime"] = run_eventtime(tmp, n, args.repeat, log)
                rows.extend(rows_e)
            if "startup" in selected:
                log("startup: CPU seconds of headrace commands against git status")
                c_dir = tmp / "startup"
                c_dir.mkdir()
                rows.extend(run_cli_startup(c_dir, args.repeat, log))
                facts["startup"] = {"unit": "CPU seconds of the started process"}
            if "nexmark" in selected:
                from nexmark.run import run_nexmark

                n = sizes.nexmark_events
                log(f"nexmark: {n:,} events, queries 0-12, batch and streaming, headrace and Beam")
                nexmark, facts["nexmark"] = run_nexmark(n, 1, beam_python, log)
    except BenchmarkError as e:
        log(f"\nBENCHMARK FAILED: {e}")
        return 1
    elapsed = time.perf_counter() - started
    info["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    info["seconds_total"] = round(elapsed, 1)

    print()
    print(format_table(rows))
    print()
    print(
        "x best = case best / baseline best; x median = case median / baseline median "
        f"(lower is faster). {args.repeat} runs per case, interleaved."
    )
    for name, fact in facts.items():
        print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in fact.items()))
    print("goals are judged on x best (the least disturbed run of each case)")
    if nexmark:
        from nexmark.run import format_results

        print()
        print("Nexmark (events/s; per core = events per CPU second; ratio = headrace / Beam):")
        print(format_results(nexmark))
        differ = [
            f"q{r.query} {r.mode}: {r.check}" for r in nexmark if not r.check.startswith("ok")
        ]
        if differ:
            print("nexmark outputs not equal to Beam's: " + "; ".join(differ))
    missed = [r for r in rows if r.goal_met is False]
    if missed:
        print("goals missed: " + "; ".join(f"{r.benchmark} / {r.case} {r.goal}" for r in missed))
        if args.quick:
            print(
                "(the goals are set for the full sizes: with --quick, fixed costs such as "
                "starting worker processes weigh more)"
            )
    print(
        f"total {elapsed:.0f} s; load average {info['load_average_start']} at start, "
        f"{info['load_average_end']} at end"
    )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "machine": info,
        "arguments": {"quick": args.quick, "only": selected, "repeat": args.repeat},
        "sizes": asdict(sizes),
        "facts": facts,
        "rows": [r.to_json() for r in rows],
        "nexmark": [asdict(r) for r in nexmark],
    }
    out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
