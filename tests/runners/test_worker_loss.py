"""A worker process that dies mid-task (issue 13, item 3): retried once, or a clear failure.

Ray's task fault tolerance (docs.ray.io, "Task Fault Tolerance": a task whose worker process
dies is a *system* failure and is resubmitted, up to ``max_retries``) is the model: an
application error (an exception in user code) is never retried, a lost worker is. headrace
retries a lost task once on a fresh worker; the second loss fails the run naming the stage and
the signal, as a killed stage worker is reported (``stages/worker.py``). Before the fix the
coordinator waited forever in its ``ready()`` loop, so each test here runs under a
``pytest-timeout`` guard.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from headrace.exec.spill import LocalSpillSpace
from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import Create, GroupByKey, Map
from headrace.plan import build_plan
from headrace.runners.coordinator import RunOutputs
from headrace.runners.direct.workers import LocalProcessExecutor
from headrace.runners.executors import WorkerLost
from headrace.runners.tasks import TaskContext
from headrace.testing.util import assert_that, equal_to

TWO_PROCESSES = {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}


def _kill_once(marker: str, at: int):
    """A function that SIGKILLs its own process the first time it sees ``at`` (marker file)."""

    def fn(x: int) -> tuple[int, int]:
        if x == at:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return (x % 3, x)

    return fn


def _kill_always(at: int):
    def fn(x: int) -> int:
        if x == at:
            os.kill(os.getpid(), signal.SIGKILL)
        return x

    return fn


@pytest.mark.timeout(120)
def test_a_worker_killed_mid_task_is_replaced_and_its_task_retried_once(tmp_path: Path) -> None:
    marker = str(tmp_path / "killed-once")
    with Pipeline(options=PipelineOptions(**TWO_PROCESSES)) as p:
        groups = (
            p
            | Create(list(range(40)))
            | "MayDie" >> Map(_kill_once(marker, at=17))
            | GroupByKey()
            | Map(lambda kv: (kv[0], sorted(kv[1])))
        )
        expected = [(k, [x for x in range(40) if x % 3 == k]) for k in range(3)]
        assert_that(groups, equal_to(expected))
    assert os.path.exists(marker), "the DoFn never killed its worker: the test proves nothing"


@pytest.mark.timeout(120)
def test_a_task_whose_worker_always_dies_fails_the_run_naming_stage_and_signal() -> None:
    p = Pipeline(options=PipelineOptions(**TWO_PROCESSES))
    _ = p | Create(list(range(40))) | "AlwaysDies" >> Map(_kill_always(at=17)) | GroupByKey()
    result = p.run()
    with pytest.raises(WorkerLost) as info:
        result.wait_until_finish()
    message = str(info.value)
    assert "AlwaysDies" in message
    assert "killed by signal 9 (SIGKILL)" in message
    assert "retried once" in message
    assert result.state.name == "FAILED"


@pytest.mark.timeout(120)
def test_an_exception_in_user_code_is_not_retried(tmp_path: Path) -> None:
    """Only lost workers are retried: a DoFn that raises fails on its first attempt."""
    calls = tmp_path / "calls"
    calls.mkdir()

    def fail(x: int) -> int:
        if x == 5:
            (calls / str(os.getpid())).write_text("")
            raise ValueError("bad element")
        return x

    p = Pipeline(options=PipelineOptions(**TWO_PROCESSES))
    _ = p | Create(list(range(10))) | "Fails" >> Map(fail)
    with pytest.raises(ValueError, match="bad element"):
        p.run().wait_until_finish()
    assert len(list(calls.iterdir())) == 1


@pytest.mark.timeout(120)
def test_workers_that_died_while_idle_are_replaced_before_they_get_a_task(tmp_path: Path) -> None:
    """A worker killed between tasks costs nothing: no attempt of any task is spent on it."""
    p = Pipeline()
    _ = p | Create(list(range(10))) | Map(lambda x: x + 1)
    plan = build_plan(p.to_graph())
    executor = LocalProcessExecutor(2)
    executor.start(plan)
    try:
        for pid in executor.pids:
            os.kill(pid, signal.SIGKILL)
            _wait_until_dead(pid)
        ctx = TaskContext(2, LocalSpillSpace(str(tmp_path)), 1 << 20, 64, False, {})
        stage = plan.stages[0]
        futures = [executor.submit(stage, t, ctx) for t in RunOutputs().tasks(plan, stage, 2)]
        results = []
        for future in futures:
            assert future.wait(60)
            results.append(future.result())
        assert sum(r.elements_in for r in results) == 10
        assert [f.attempts for f in futures] == [1] * len(futures)  # type: ignore[attr-defined]
    finally:
        executor.close()


def _wait_until_dead(pid: int) -> None:
    """Until the killed child is a zombie (dead, not yet reaped by its parent: this process)."""
    stat = Path(f"/proc/{pid}/stat")
    for _ in range(6000):
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not die within 60 s of SIGKILL")
