"""GroupByKey over data a few times larger than the memory budget: peak memory and time.

Each case runs :mod:`spill_child` in a fresh interpreter, which reports its own peak resident
memory (``VmHWM``; spill_child says why not ``ru_maxrss``). The cases: plain Python
(``defaultdict(list)``, holding everything), headrace with ``direct_memory_budget_mb`` well below
the data size, and headrace with an unlimited budget.
The input is ``pairs`` (int key, ``digits``-character string) pairs; with the defaults about
200 MB of string objects. Each output line (group size and checksum of every key) is compared
with values computed here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from datagen import STEP
from harness import BenchmarkError, Case, Row, measure, read_kv_lines, remove_files, same_counts

__all__ = ["run_spill"]

HERE = Path(__file__).resolve().parent
UNLIMITED_MB = 1_000_000


def expected_groups(pairs: int, keys: int) -> dict[str, str]:
    """``key -> "size,checksum"`` for the pairs of :class:`datagen.PairSource`."""
    sizes = [0] * keys
    sums = [0] * keys
    for i in range(pairs):
        k = i * STEP % keys
        sizes[k] += 1
        sums[k] += i
    return {str(k): f"{sizes[k]},{sums[k]}" for k in range(keys) if sizes[k]}


def _mib(kib: int) -> float:
    return kib / 1024


def run_spill(
    tmp: Path,
    pairs: int,
    keys: int,
    digits: int,
    budget_mb: int,
    repeat: int,
    log: Callable[[str], None],
) -> tuple[list[Row], dict[str, Any]]:
    """Run the three cases ``repeat`` times each; rows carry memory figures in ``extra``."""
    expected = expected_groups(pairs, keys)
    reports: dict[str, list[dict[str, Any]]] = {}

    def make_case(name: str, mode: str, budget: int, note: str) -> Case:
        out_dir = tmp / f"spill-{mode}-{budget}"
        out_dir.mkdir()
        prefix = out_dir / "groups"
        reports[name] = []

        def run(_: int) -> float:
            cmd = [
                sys.executable, str(HERE / "spill_child.py"),
                "--mode", mode,
                "--pairs", str(pairs),
                "--keys", str(keys),
                "--digits", str(digits),
                "--budget-mb", str(budget),
                "--out", str(prefix),
            ]  # fmt: skip
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                raise BenchmarkError(
                    f"spill / {name}: child failed (exit {done.returncode}):\n"
                    + done.stderr[-3000:]
                )
            report = json.loads(done.stdout.strip().splitlines()[-1])
            reports[name].append(report)
            return float(report["seconds"])

        def check(_: int) -> None:
            pattern = f"{prefix}*.txt"
            same_counts(f"spill / {name}", read_kv_lines(pattern), expected)
            remove_files(pattern)

        return Case(name, run, check, elements=pairs, note=note)

    cases = [
        make_case("plain Python defaultdict(list)", "python", 0, "baseline"),
        make_case(f"headrace GBK, budget {budget_mb} MB", "headrace", budget_mb, ""),
        make_case("headrace GBK, unlimited budget", "headrace", UNLIMITED_MB, ""),
    ]
    rows = measure("spill", cases, repeat, log)
    unlimited_peak = max(r["peak_kib"] for r in reports[cases[2].name])
    for row in rows:
        runs = reports[row.case]
        peak = max(r["peak_kib"] for r in runs)
        base = min(r["base_kib"] for r in runs)
        growth = max(r["peak_kib"] - r["base_kib"] for r in runs)
        spills = max(r["spills"] for r in runs)
        row.extra = {
            "peak_rss_mb": round(_mib(peak), 1),
            "interpreter_rss_mb": round(_mib(base), 1),
            "growth_rss_mb": round(_mib(growth), 1),
            "peak_vs_unlimited": round(peak / unlimited_peak, 3),
            "spills": spills,
            # ru_maxrss as Linux reports it: inherited across fork+exec from run.py, so at least
            # run.py's own size when the child started (kept for reference; VmHWM is the peak)
            "ru_maxrss_mb": round(_mib(max(r["ru_maxrss_kib"] for r in runs)), 1),
        }
        parts = [f"peak RSS {_mib(peak):.0f} MB", f"+{_mib(growth):.0f} MB over interpreter"]
        if row.case == cases[1].name:
            parts.append(f"= {_mib(growth) / budget_mb:.2f}x budget")
            row.extra["growth_vs_budget"] = round(_mib(growth) / budget_mb, 3)
        if row.case != cases[2].name and row.case != cases[0].name:
            parts.append(f"{peak / unlimited_peak:.2f}x unlimited peak")
        if spills:
            parts.append(f"{spills} spills")
        row.note = ", ".join(parts)
    facts = {
        "pairs": pairs,
        "keys": keys,
        "value_chars": digits,
        "budget_mb": budget_mb,
        "approx_value_bytes_mb": round(pairs * sys.getsizeof("x" * digits) / 2**20, 1),
    }
    return rows, facts
