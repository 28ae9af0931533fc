"""DoFn instances reused between tasks of one worker process (runners/dofncache.py).

Beam's lifecycle: ``setup`` once per instance, ``start_bundle``/``finish_bundle`` per bundle,
``teardown`` when the runner drops the instance; an instance that raised is dropped (Beam's
"DoFn lifecycle" in the programming guide). Here each task is one bundle.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from headrace.beam import Create, DoFn, Pipeline
from headrace.beam import ParDo as BeamParDo
from headrace.exec.spill import LocalSpillSpace
from headrace.plan.stages import build_plan
from headrace.runners.coordinator import RunOutputs
from headrace.runners.dofncache import PROCESS_DOFNS
from headrace.runners.tasks import TaskContext, run_stage_task


class Lifecycle(DoFn):
    """Appends one line per lifecycle call to ``log`` (a file: instances are unpickled copies)."""

    def __init__(self, log: str, fail_on: int | None = None) -> None:
        self.log = log
        self.fail_on = fail_on

    def _note(self, what: str) -> None:
        with open(self.log, "a") as f:
            f.write(f"{what} {id(self)}\n")

    def setup(self) -> None:
        self._note("setup")

    def start_bundle(self) -> None:
        self._note("start")

    def process(self, x):
        if x == self.fail_on:
            raise ValueError("fails on purpose")
        yield x

    def teardown(self) -> None:
        self._note("teardown")


def _calls(log: Path) -> list[str]:
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def _run_tasks(log: Path, tmp: Path, run_id: str, tasks: int, fail_on: int | None = None) -> None:
    p = Pipeline()
    _ = p | Create(list(range(tasks))) | "Life" >> BeamParDo(Lifecycle(str(log), fail_on))
    plan = build_plan(p.to_graph())
    ctx = TaskContext(
        2, LocalSpillSpace(str(tmp)), 1 << 20, 64, False, {}, reuse_dofns=True, run_id=run_id
    )
    stage = plan.stages[0]
    for task in RunOutputs().tasks(plan, stage, tasks):
        try:
            run_stage_task(plan, stage, task, ctx)
        except ValueError:
            pass


@pytest.fixture(autouse=True)
def _empty_cache():
    PROCESS_DOFNS.close()
    yield
    PROCESS_DOFNS.close()


def test_setup_once_for_many_tasks_of_a_run_teardown_when_dropped(tmp_path: Path) -> None:
    log = tmp_path / "log"
    _run_tasks(log, tmp_path, "run-a", tasks=6)
    calls = _calls(log)
    assert calls.count("start") == 6, calls  # six bundles...
    assert calls.count("setup") == 1  # ...on one set-up instance
    assert calls.count("teardown") == 0
    PROCESS_DOFNS.close()
    assert _calls(log).count("teardown") == 1


def test_another_run_gets_its_own_instance(tmp_path: Path) -> None:
    log = tmp_path / "log"
    _run_tasks(log, tmp_path, "run-a", tasks=2)
    _run_tasks(log, tmp_path, "run-b", tasks=2)
    assert _calls(log).count("setup") == 2


def test_an_instance_that_raised_is_torn_down_and_replaced(tmp_path: Path) -> None:
    log = tmp_path / "log"
    _run_tasks(log, tmp_path, "run-a", tasks=4, fail_on=1)
    lines = log.read_text().splitlines()
    calls = [line.split()[0] for line in lines]
    assert calls.count("teardown") == 1  # the instance of the failing task only
    assert calls.count("setup") == 2  # the next task set up a new one
    torn = lines[calls.index("teardown")].split()[1]
    later = {line.split()[1] for line in lines[calls.index("teardown") + 1 :]}
    assert torn not in later


def test_idle_instances_are_torn_down_when_the_process_exits(tmp_path: Path) -> None:
    log = tmp_path / "log"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_dofncache import _run_tasks
        _run_tasks(Path({str(log)!r}), Path({str(tmp_path)!r}), "run-x", tasks=3)
        print(open({str(log)!r}).read().count("teardown"))
        """
    )
    env = dict(os.environ)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == "0"  # none while the process lives
    calls = _calls(log)
    assert calls.count("setup") == 1 and calls.count("start") == 3
    assert calls.count("teardown") == 1  # at exit
