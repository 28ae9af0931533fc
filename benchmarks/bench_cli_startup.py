"""Start-up cost of the ``headrace`` command: ``python benchmarks/bench_cli_startup.py``.

Each case starts a command as a new process and counts the CPU seconds (user + system) that
process used, read from ``getrusage(RUSAGE_CHILDREN)`` around it: CPU time moves much less than
wall time when other jobs load the machine. The baseline is ``git status`` in a small git
repository, measured in the same run; every figure is also shown as a ratio to it. Cases:

``python -c pass``       the interpreter alone (the floor every Python command pays)
``headrace --version``   typer, rich and the command modules, nothing else
``headrace repo list``   the above and opening a (SQLite) store: the goal is 0.15 s of CPU
``headrace stage list``  the same with the stage catalogue

Every run is checked (exit status 0 and the expected output); a wrong one stops the run with
``BENCHMARK FAILED``. Options: ``--repeat N`` (default 5), ``--json`` (default
``benchmarks/results/cli_startup.json``). :func:`run_cli_startup` is what ``run.py`` calls.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from harness import BenchmarkError, Case, Row, format_table, measure  # noqa: E402

GOAL_SECONDS = 0.15  # CPU seconds of `headrace repo list`


def _child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _headrace() -> list[str]:
    script = Path(sys.executable).with_name("headrace")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "headrace"]


def _command_case(
    name: str, argv: list[str], cwd: Path, env: dict[str, str], expect: str, note: str = ""
) -> Case:
    outputs: dict[int, subprocess.CompletedProcess[str]] = {}

    def run(index: int) -> float:
        before = _child_cpu()
        outputs[index] = subprocess.run(
            argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
        )
        return _child_cpu() - before

    def check(index: int) -> None:
        proc = outputs.pop(index)
        if proc.returncode != 0 or expect not in proc.stdout + proc.stderr:
            raise BenchmarkError(
                f"{name}: exit status {proc.returncode}, expected {expect!r} in its output; "
                f"stderr: {proc.stderr.strip()[:300]}"
            )

    return Case(name, run, check, note=note)


def run_cli_startup(tmp: Path, repeat: int, log: Callable[[str], None]) -> list[Row]:
    """Measure the cases in ``tmp`` (a git repo and a store are made there); return the rows."""
    repo = tmp / "git"
    repo.mkdir()
    git_env = {
        **os.environ,
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(tmp),
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@example.com",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@example.com",
    }
    for i in range(20):
        (repo / f"file{i}.txt").write_text(f"line {i}\n", encoding="utf-8")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "files"]):
        subprocess.run(["git", *args], cwd=repo, env=git_env, check=True, capture_output=True)

    env = {**os.environ, "HEADRACE_HOME": str(tmp / "home")}
    for name in ("HEADRACE_DB", "HEADRACE_OBJECTS"):
        env.pop(name, None)
    headrace = _headrace()
    subprocess.run([*headrace, "repo", "create", "sales"], env=env, check=True, capture_output=True)
    cases = [
        _command_case("git status", ["git", "status"], repo, git_env, "nothing to commit"),
        _command_case("python -c pass", [sys.executable, "-c", "pass"], tmp, env, ""),
        _command_case("headrace --version", [*headrace, "--version"], tmp, env, "headrace "),
        _command_case(
            "headrace repo list",
            [*headrace, "repo", "list"],
            tmp,
            env,
            "sales",
            note=f"goal <= {GOAL_SECONDS} s CPU",
        ),
        _command_case("headrace stage list", [*headrace, "stage", "list"], tmp, env, "No stages"),
    ]
    rows = measure("cli startup", cases, repeat, log)
    for row in rows:
        row.extra["unit"] = "CPU seconds of the process"
        if row.case == "headrace repo list":
            row.goal = f"<= {GOAL_SECONDS} s"
            row.goal_met = row.best <= GOAL_SECONDS
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per case")
    parser.add_argument("--json", default=str(HERE / "results" / "cli_startup.json"))
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log(f"cli startup: {args.repeat} runs per case, load {os.getloadavg()}")
    try:
        with tempfile.TemporaryDirectory(prefix="headrace-bench-") as name:
            rows = run_cli_startup(Path(name), args.repeat, log)
    except BenchmarkError as e:
        log(f"\nBENCHMARK FAILED: {e}")
        return 1
    print(format_table(rows))
    print(
        "seconds are CPU seconds (user + system) of the started process; x best / x median "
        "are ratios to git status in the same run"
    )
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([r.to_json() for r in rows], indent=2) + "\n", encoding="utf-8")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
