"""Word count over generated text: plain Python against headrace (and Apache Beam, if present).

The baseline reads the file line by line, splits each line with ``re.findall``, counts with
``collections.Counter`` and writes ``word: count`` lines. Each headrace variant does the same
from ``ReadFromText`` to ``WriteToText``; its output is parsed and compared with the baseline's
after every run. Beam runs in its own interpreter (see :mod:`beam_wordcount`), because Beam's
dependency pins must not touch headrace's environment.
"""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
from headrace.examples.textgen import generate_text

__all__ = ["run_wordcount"]

WORD = re.compile(r"[A-Za-z']+")
SEED = 2024
HERE = Path(__file__).resolve().parent

ONE_PROCESS_GOAL = ("<=", 1.3)
TWO_WORKER_GOAL = ("<", 1.0)


def baseline_wordcount(path: str, out_path: str) -> None:
    """The plain-Python script: what every other case is compared with."""
    findall = WORD.findall
    counts: collections.Counter[str] = collections.Counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            counts.update(findall(line))
    with open(out_path, "w", encoding="utf-8") as out:
        out.writelines(f"{word}: {n}\n" for word, n in counts.items())


def headrace_wordcount(path: str, out_prefix: str, variant: str, workers: int) -> None:
    """Word count on headrace: ``canonical`` (Map to pairs + CombinePerKey(sum)) or ``count``."""
    if workers > 1:
        options = PipelineOptions(
            [], direct_num_workers=workers, direct_running_mode="multi_processing"
        )
    else:
        options = PipelineOptions([])  # not sys.argv: those are the benchmark's own flags
    with beam.Pipeline(options=options) as p:
        words = p | "Read" >> beam.io.ReadFromText(path) | "Split" >> beam.FlatMap(WORD.findall)
        if variant == "canonical":
            counts = words | "Pair" >> beam.Map(lambda w: (w, 1)) | "Sum" >> beam.CombinePerKey(sum)
        else:
            counts = words | "Count" >> beam.combiners.Count.PerElement()
        (
            counts
            | "Format" >> beam.MapTuple(lambda w, n: f"{w}: {n}")
            | "Write" >> beam.io.WriteToText(out_prefix, file_name_suffix=".txt")
        )


VARIANTS = {
    "canonical": "FlatMap | Map((w, 1)) | CombinePerKey(sum)",
    "count": "FlatMap | Count.PerElement()",
}


def run_wordcount(
    tmp: Path,
    size_mb: float,
    repeat: int,
    beam_python: str | None,
    log: Callable[[str], None],
) -> tuple[list[Row], dict[str, Any]]:
    """Generate the text, run every case, and return the rows plus facts for the report."""
    text = tmp / "wordcount-input.txt"
    generate_text(text, int(size_mb * 1_000_000), seed=SEED)
    facts: dict[str, Any] = {"input_bytes": text.stat().st_size, "seed": SEED}
    base_out = tmp / "wordcount-baseline.txt"
    expected: dict[str, str] = {}

    def run_base(_: int) -> float:
        return timed(lambda: baseline_wordcount(str(text), str(base_out)))

    def check_base(_: int) -> None:
        expected.clear()
        expected.update(read_kv_lines(str(base_out)))

    cases = [Case("plain Python (re + Counter)", run_base, check_base, note="baseline")]

    def make_case(variant: str, workers: int) -> Case:
        prefix = tmp / f"wc-{variant}-{workers}"
        name = f"headrace {variant}, " + ("1 process" if workers == 1 else f"{workers} workers")

        def run(_: int) -> float:
            return timed(lambda: headrace_wordcount(str(text), str(prefix), variant, workers))

        def check(_: int) -> None:
            pattern = f"{prefix}-*.txt"
            same_counts(name, read_kv_lines(pattern), expected)
            remove_files(pattern)

        goal = ONE_PROCESS_GOAL if workers == 1 else TWO_WORKER_GOAL
        return Case(name, run, check, goal=goal, note=VARIANTS[variant])

    for workers in (1, 2):
        for variant in VARIANTS:
            cases.append(make_case(variant, workers))
    warm_up(tmp)
    rows = measure("wordcount", cases, repeat, log)
    facts["words"] = sum(int(v) for v in expected.values())
    facts["distinct_words"] = len(expected)
    for row in rows:
        row.throughput_best = facts["words"] / row.best
    if beam_python:
        rows.extend(run_beam(beam_python, text, tmp, repeat, rows[0], expected, facts, log))
    return rows, facts


def warm_up(tmp: Path) -> None:
    """One tiny run of each headrace variant, so lazy imports are not timed."""
    small = tmp / "warm-up.txt"
    small.write_text("a b a\nb c\n", encoding="utf-8")
    for workers in (1, 2):
        for variant in VARIANTS:
            headrace_wordcount(str(small), str(tmp / "warm-up-out"), variant, workers)
    remove_files(str(tmp / "warm-up-out*"))


def beam_available(python: str) -> str | None:
    """Beam's version if ``python`` can import apache_beam, else None."""
    try:
        done = subprocess.run(
            [python, "-c", "import apache_beam; print(apache_beam.__version__)"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip().splitlines()[-1]


def run_beam(
    python: str,
    text: Path,
    tmp: Path,
    repeat: int,
    baseline: Row,
    expected: dict[str, str],
    facts: dict[str, Any],
    log: Callable[[str], None],
) -> list[Row]:
    """Run the Beam script once per case (it repeats and times itself); check every output."""
    version = beam_available(python)
    if version is None:
        log(f"  Beam: {python} cannot import apache_beam; Beam cases skipped")
        facts["beam"] = f"not run: {python} cannot import apache_beam"
        return []
    facts["beam"] = f"apache-beam {version} ({python})"
    rows = []
    for workers in (1, 2):
        for variant, label in VARIANTS.items():
            out_dir = tmp / f"beam-{variant}-{workers}"
            cmd = [
                python,
                str(HERE / "beam_wordcount.py"),
                "--input", str(text),
                "--output-dir", str(out_dir),
                "--variant", variant,
                "--workers", str(workers),
                "--repeat", str(repeat),
            ]  # fmt: skip
            name = f"Beam {variant}, " + ("1 process" if workers == 1 else f"{workers} workers")
            log(f"  wordcount / {name}: {repeat} runs in {python}")
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=1800, check=False, env=_beam_env()
            )
            if done.returncode != 0:
                raise BenchmarkError(
                    f"{name}: the Beam script failed (exit {done.returncode}):\n"
                    + done.stderr[-3000:]
                )
            report = json.loads(done.stdout.strip().splitlines()[-1])
            for r in range(repeat):
                pattern = str(out_dir / f"run{r}" / "counts-*")
                same_counts(name, read_kv_lines(pattern), expected)
                remove_files(pattern)
            note = f"{label}; {report['runner']}"
            row = make_row("wordcount", name, report["seconds"], baseline, None, None, note)
            row.throughput_best = facts["words"] / row.best
            rows.append(row)
    return rows


def _beam_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # nothing of headrace's environment leaks into Beam's
    env["PYTHONWARNINGS"] = "ignore"
    return env


if __name__ == "__main__":
    sys.exit("run benchmarks/run.py --only wordcount")
