"""A toy third executor: every task runs in a fresh Python interpreter from its pickled input.

This is the proof that a remote runner fits the seam (issue 10): the child process shares no
memory with the coordinator and inherits nothing from a fork. It receives exactly what a remote
worker would, ``cloudpickle.dumps((plan, stage_id, task, ctx))``, reads every input through the
:class:`~headrace.exec.spill.SpillSpace` inside ``ctx`` and answers with a pickled
:class:`~headrace.runners.tasks.TaskResult` (or the task's exception). Tests select it as the
``subprocess_tasks`` entry of ``RUNNER_CONFIGS`` (``tests/conftest.py``).

It is slow by design (one interpreter start per task), so that entry is marked ``slow``.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import cloudpickle

from headrace.plan.stages import ExecutionPlan, Stage
from headrace.runners.direct.runner import DirectRunner, DirectSettings
from headrace.runners.executors import TaskFuture
from headrace.runners.tasks import TaskContext, TaskInput, TaskResult

__all__ = ["SubprocessExecutor", "subprocess_runner"]

# Test modules are imported as ``tests.<dir>.<module>`` (pytest's importlib mode); user functions
# defined in them are pickled by reference, so the child starts in the repository root.
ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import pickle, sys, traceback
import cloudpickle
from headrace.runners.tasks import run_stage_task
with open(sys.argv[1], "rb") as f:
    plan, stage_id, task, ctx = pickle.load(f)
try:
    out = ("ok", run_stage_task(plan, plan.stages[stage_id], task, ctx))
except BaseException as e:
    try:
        cloudpickle.dumps(e)
        out = ("error", e)
    except Exception:
        out = ("error", RuntimeError(traceback.format_exc()))
with open(sys.argv[2], "wb") as f:
    cloudpickle.dump(out, f)
"""


class _Future:
    def __init__(self, proc: subprocess.Popen[bytes], out: str, folder: str) -> None:
        self.proc, self.out, self.folder = proc, out, folder

    def wait(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def result(self) -> TaskResult:
        try:
            with open(self.out, "rb") as f:
                kind, value = pickle.load(f)
        except FileNotFoundError:
            with open(os.path.join(self.folder, "stderr.txt"), encoding="utf-8") as f:
                stderr = f.read()
            raise RuntimeError(
                f"the task's interpreter exited with {self.proc.returncode} and no result; "
                f"its stderr:\n{stderr}"
            ) from None
        finally:
            for name in os.listdir(self.folder):
                os.unlink(os.path.join(self.folder, name))
            os.rmdir(self.folder)
        if kind == "error":
            raise value
        assert isinstance(value, TaskResult)
        return value


class SubprocessExecutor:
    """Runs each task in ``python -c`` from its cloudpickled input (see the module docstring)."""

    name = "subprocess_tasks"
    shares_memory = False

    def __init__(self, parallelism: int = 2) -> None:
        self.parallelism = parallelism
        self._plan: ExecutionPlan | None = None
        self._running: list[subprocess.Popen[bytes]] = []

    def start(self, plan: ExecutionPlan) -> None:
        self._plan = plan

    def submit(self, stage: Stage, task: TaskInput, ctx: TaskContext) -> TaskFuture:
        folder = tempfile.mkdtemp(prefix="headrace-task-")
        inp, out = os.path.join(folder, "in.pkl"), os.path.join(folder, "out.pkl")
        with open(inp, "wb") as f:
            cloudpickle.dump((self._plan, stage.id, task, ctx), f)
        with open(os.path.join(folder, "stderr.txt"), "wb") as err:
            proc = subprocess.Popen([sys.executable, "-c", CHILD, inp, out], cwd=ROOT, stderr=err)
        self._running.append(proc)
        return _Future(proc, out, folder)

    def close(self, cancel: bool = False) -> None:
        for proc in self._running:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self._running = []


def subprocess_runner() -> Any:
    """A direct runner whose batch runs use :class:`SubprocessExecutor`."""

    def make(settings: DirectSettings) -> SubprocessExecutor:
        return SubprocessExecutor(2)

    return DirectRunner(executor=make)
