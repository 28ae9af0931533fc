"""Start-up of the ``headrace`` command: a store or stage command does not import the SDK, the
runner, the executor, the planner or the IO pipelines (only ``run`` and ``plan`` need them).

The test checks the *modules* a fresh interpreter holds after the command, not a time: the time
is measured by ``benchmarks/bench_cli_startup.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# What a store or stage command must not import (headrace.stages may use parts of them only
# while a job runs, which these commands do not do).
HEAVY = (
    "headrace.model",
    "headrace.runners",
    "headrace.exec",
    "headrace.plan",
    "headrace.io",
    "headrace.graph",
    "headrace.beam",
)

# Runs several commands in one fresh interpreter, in order, and reports the modules loaded after
# each: a module a command imports stays loaded, so each entry holds what that command and the
# ones before it imported.
PROBE = """
import json, sys
from headrace.cli.main import main
report = []
for args in json.loads(sys.argv[1]):
    sys.argv = ["headrace", *args]
    try:
        main()
    except SystemExit as e:
        code = e.code
    else:
        code = 0
    report.append({"args": args, "code": code, "modules": sorted(sys.modules)})
sys.stdout.flush()
print("\\nMODULES " + json.dumps(report))
"""


def modules_after(commands: list[list[str]], home: Path) -> list[tuple[int, set[str]]]:
    """``(exit status, modules loaded)`` after each of ``commands`` in one new interpreter."""
    env = {**os.environ, "HEADRACE_HOME": str(home)}
    for name in ("HEADRACE_DB", "HEADRACE_OBJECTS"):
        env.pop(name, None)
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(commands)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    parts = proc.stdout.rsplit("MODULES ", 1)
    assert len(parts) == 2, proc.stdout + proc.stderr
    return [(entry["code"], set(entry["modules"])) for entry in json.loads(parts[1])]


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))


STORE_AND_STAGE_COMMANDS = [
    ["repo", "list"],
    ["repo", "create", "sales"],
    ["branch", "list", "sales"],
    ["commit", "list", "sales"],
    ["file", "list", "sales@master:/"],
    ["stage", "list"],
    ["job", "list"],
    ["datum", "list", "nope"],
    ["fsck"],
]


def test_store_and_stage_commands_do_not_import_the_sdk_or_the_runner(tmp_path):
    results = modules_after(STORE_AND_STAGE_COMMANDS, tmp_path / "home")
    assert len(results) == len(STORE_AND_STAGE_COMMANDS)
    first_code, first_modules = results[0]
    assert first_code in (0, None)
    assert "headrace.store.store" in first_modules  # repo list really opened the store
    for args, (code, modules) in zip(STORE_AND_STAGE_COMMANDS, results):
        assert code in (0, 1, None), args  # 1: "datum list nope" finds no job
        assert heavy(modules) == [], args


def test_help_and_version_import_neither_the_store_nor_the_sdk(tmp_path):
    commands = [["--version"], ["--help"], ["repo", "--help"], ["version"]]
    for args, (code, modules) in zip(commands, modules_after(commands, tmp_path / "home")):
        assert code in (0, None), args
        assert heavy(modules) == [], args
        assert "headrace.store.store" not in modules, args
        assert "sqlalchemy" not in modules, args


def test_run_still_imports_the_runner(tmp_path):
    """The other side: the lazy imports are really made where they are needed."""
    script = tmp_path / "job.py"
    script.write_text(
        "from headrace.model.pipeline import Pipeline\n"
        "from headrace.model.transforms.core import Create\n"
        "with Pipeline() as p:\n"
        "    p | Create([1])\n",
        encoding="utf-8",
    )
    ((code, modules),) = modules_after([["run", "-q", str(script)]], tmp_path / "home")
    assert code in (0, None)
    assert "headrace.runners.direct.runner" in modules
    assert "headrace.cli.progress" in modules
