"""Timing, verification and reporting shared by the benchmarks (plain Python, no headrace).

A benchmark is a list of :class:`Case` objects: one baseline (plain Python doing the same work)
and the variants compared with it. :func:`measure` runs every case ``repeat`` times, interleaved
(baseline, variant 1, variant 2, ..., then again), so that a burst of load from another process
hits all cases alike; each case is checked after every run (outside the timing) and a wrong
result stops the suite. A :class:`Row` holds what is reported: best and median seconds, and the
ratios of those to the baseline's best and median from the same run.
"""

from __future__ import annotations

import gc
import glob
import os
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "BenchmarkError",
    "Case",
    "Row",
    "format_table",
    "make_row",
    "measure",
    "read_kv_lines",
    "remove_files",
    "same_counts",
    "timed",
]


class BenchmarkError(Exception):
    """A benchmark produced a wrong result or could not run; the suite stops with this message."""


@dataclass
class Case:
    """One thing to time.

    ``run(index)`` does the work once and returns its seconds (it times what it wants to count:
    pipeline construction and run, not the check); ``check(index)`` verifies the output of that
    run and raises :class:`BenchmarkError` if it is wrong. ``goal`` is the ratio to beat, shown
    next to the figures (``(op, limit)`` with op ``"<="`` or ``"<"``).
    """

    name: str
    run: Callable[[int], float]
    check: Callable[[int], None] | None = None
    goal: tuple[str, float] | None = None
    elements: int | None = None  # for a throughput column (elements per second)
    note: str = ""


@dataclass
class Row:
    """A reported figure: one case of one benchmark."""

    benchmark: str
    case: str
    seconds: list[float]
    best: float
    median: float
    ratio_best: float | None = None
    ratio_median: float | None = None
    goal: str = ""
    goal_met: bool | None = None
    throughput_best: float | None = None  # elements per second at the best time
    extra: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def make_row(
    benchmark: str,
    case: str,
    seconds: list[float],
    baseline: Row | None,
    goal: tuple[str, float] | None = None,
    elements: int | None = None,
    note: str = "",
) -> Row:
    """Summarise ``seconds`` as a row with ratios to ``baseline`` (None: this is the baseline)."""
    best, median = min(seconds), statistics.median(seconds)
    row = Row(benchmark, case, [round(s, 4) for s in seconds], best, median, note=note)
    ref = baseline if baseline is not None else row
    row.ratio_best = best / ref.best
    row.ratio_median = median / ref.median
    if goal is not None:
        op, limit = goal
        row.goal = f"{op} {limit:g}x"
        row.goal_met = row.ratio_best <= limit if op == "<=" else row.ratio_best < limit
    if elements:
        row.throughput_best = elements / best
    return row


def measure(
    benchmark: str, cases: list[Case], repeat: int, log: Callable[[str], None]
) -> list[Row]:
    """Run ``cases`` (the first is the baseline) ``repeat`` times, interleaved; return rows."""
    times: dict[str, list[float]] = {c.name: [] for c in cases}
    for r in range(repeat):
        for c in cases:
            gc.collect()
            seconds = c.run(r)
            if c.check is not None:
                c.check(r)
            times[c.name].append(seconds)
            log(f"  {benchmark} / {c.name}: run {r + 1}/{repeat} {seconds:.3f} s")
    base = make_row(benchmark, cases[0].name, times[cases[0].name], None, None, cases[0].elements)
    base.note = cases[0].note
    rows = [base]
    for c in cases[1:]:
        rows.append(make_row(benchmark, c.name, times[c.name], base, c.goal, c.elements, c.note))
    return rows


def timed(fn: Callable[[], Any]) -> float:
    """Seconds taken by ``fn()``."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# -- checking ----------------------------------------------------------------------------------


def read_kv_lines(pattern: str) -> dict[str, str]:
    """Parse ``key: value`` lines from every file matching ``pattern`` (keys must be unique)."""
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise BenchmarkError(f"no output files match {pattern!r}")
    out: dict[str, str] = {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, sep, value = line.rstrip("\n").rpartition(": ")
                if not sep:
                    raise BenchmarkError(f"{path}: line {line!r} is not 'key: value'")
                if key in out:
                    raise BenchmarkError(f"{path}: key {key!r} appears twice in the output")
                out[key] = value
    return out


def same_counts(what: str, got: dict[str, str], expected: dict[str, str]) -> None:
    """Raise :class:`BenchmarkError` naming a few differences unless ``got == expected``."""
    if got == expected:
        return
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
    details = [
        f"{len(got)} keys, expected {len(expected)}",
        f"missing {missing[:5]}" if missing else "",
        f"unexpected {extra[:5]}" if extra else "",
        ", ".join(f"{k!r}: {got[k]} != {expected[k]}" for k in wrong[:5]),
    ]
    raise BenchmarkError(
        f"{what}: output differs from the baseline: " + "; ".join(filter(None, details))
    )


def remove_files(pattern: str) -> None:
    """Delete files matching ``pattern`` (output of a finished run)."""
    for path in glob.glob(pattern):
        os.remove(path)


# -- reporting ---------------------------------------------------------------------------------


def _fmt_rate(rate: float | None) -> str:
    if rate is None:
        return ""
    return f"{rate / 1e6:.2f} M/s" if rate >= 1e6 else f"{rate / 1e3:.0f} k/s"


def format_table(rows: Iterable[Row]) -> str:
    """A plain-text table of the rows, one line each, columns aligned."""
    header = [
        "benchmark",
        "case",
        "best s",
        "median s",
        "x best",
        "x median",
        "goal",
        "met",
        "elems/s",
        "notes",
    ]
    lines = [header]
    for r in rows:
        met = "" if r.goal_met is None else ("ok" if r.goal_met else "MISSED")
        lines.append(
            [
                r.benchmark,
                r.case,
                f"{r.best:.3f}",
                f"{r.median:.3f}",
                "" if r.ratio_best is None else f"{r.ratio_best:.2f}",
                "" if r.ratio_median is None else f"{r.ratio_median:.2f}",
                r.goal,
                met,
                _fmt_rate(r.throughput_best),
                r.note,
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {2, 3, 4, 5, 8}
    out = []
    for n, line in enumerate(lines):
        cells = [
            cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            for i, cell in enumerate(line)
        ]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
