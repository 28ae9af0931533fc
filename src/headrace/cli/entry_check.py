"""Checking a stage's ``python`` / ``pipeline`` entry point when the stage is created or updated.

A spec names its transform as ``module:function``; the daemon imports it only when a job runs,
so a typo would otherwise surface later as failed datums. :func:`entry_point_problem` imports
the module in a *separate* Python process (the user's module-level code never runs inside the
``headrace`` command, and a stage with ``transform.environment`` is checked by that
environment's own interpreter, since its packages are not importable here), finds the function
and checks that it takes ``(inputs, output)``, as the stage worker will. The module search path
is the one a job gets: the spec file's folder, then the current folder, then the interpreter's
own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from headrace.stages.spec import Transform

__all__ = ["CHECK_TIMEOUT", "EntryPointUnchecked", "entry_point_problem", "interpreter_for"]

CHECK_TIMEOUT = 120.0  # seconds for the checking process (a module may import big libraries)

# Runs in the checking interpreter (any Python 3): prints one JSON line {"problem": ...}.
_CHECK = r"""
import importlib, inspect, json, sys
request = json.loads(sys.argv[1])
sys.path[:0] = request["sys_path"]
module_name, _, name = request["target"].partition(":")
def answer(problem):
    sys.stdout.write("\n" + json.dumps({"problem": problem}) + "\n")
    sys.stdout.flush()
    raise SystemExit(0)
try:
    found = importlib.import_module(module_name)
except BaseException as e:
    if isinstance(e, KeyboardInterrupt):
        raise
    answer("cannot import module %r (%s: %s)" % (module_name, type(e).__name__, e))
for part in name.split("."):
    try:
        found = getattr(found, part)
    except AttributeError:
        answer("module %r has no %r" % (module_name, name))
if not callable(found):
    answer("%s is not callable" % request["target"])
try:
    signature = inspect.signature(found)
except (TypeError, ValueError):
    signature = None
if signature is not None:
    try:
        signature.bind(None, None)
    except TypeError:
        answer(
            "%s%s must take two arguments, (inputs, output): a dict of input name -> folder "
            "and the output folder" % (request["target"], signature)
        )
answer(None)
"""


class EntryPointUnchecked(Exception):
    """The entry point could not be checked (the checking process did not answer in time)."""


def interpreter_for(environment: str) -> str:
    """The Python interpreter of ``transform.environment`` (a virtualenv folder or a Python).

    Raises :class:`FileNotFoundError` naming the field when there is none, as a job would.
    """
    path = Path(environment)
    if path.is_dir():
        for candidate in (path / "bin" / "python", path / "Scripts" / "python.exe"):
            if candidate.exists():
                return str(candidate)
        raise FileNotFoundError(
            f"transform.environment: {environment} is a folder without bin/python; give a "
            "virtualenv folder or the path of a Python interpreter"
        )
    if path.exists() or shutil.which(environment):
        return environment
    raise FileNotFoundError(
        f"transform.environment: no interpreter or virtualenv at {environment!r}"
    )


def entry_point_problem(transform: Transform, spec_file: Path) -> str | None:
    """What is wrong with ``transform``'s entry point, as ``"<field>: <problem>"``; None if it
    imports and takes ``(inputs, output)`` (or the transform is a ``cmd``)."""
    target = transform.python if transform.python is not None else transform.pipeline
    if target is None:
        return None
    field = "transform.python" if transform.python is not None else "transform.pipeline"
    if transform.environment is not None and transform.pipeline is not None:
        return (
            "transform.environment: a pipeline transform runs on headrace's own interpreter; "
            "use a python transform (or a cmd) in a separate environment"
        )
    try:
        python = (
            sys.executable
            if transform.environment is None
            else interpreter_for(transform.environment)
        )
    except FileNotFoundError as e:
        return str(e)
    folders = list(dict.fromkeys([str(spec_file.resolve().parent), os.getcwd()]))
    request = {"target": target, "sys_path": folders}
    try:
        proc = subprocess.run(
            [python, "-c", _CHECK, json.dumps(request)],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**os.environ, **transform.env_dict},
            cwd=os.getcwd(),
            timeout=CHECK_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EntryPointUnchecked(
            f"{field}: importing {target} took longer than {CHECK_TIMEOUT:g} s"
        ) from None
    except OSError as e:
        return f"transform.environment: cannot start {python}: {e}"
    problem = _answer(proc.stdout)
    if problem is _NO_ANSWER:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        where = f" in environment {transform.environment}" if transform.environment else ""
        return f"{field}: checking {target}{where} failed (exit status {proc.returncode}): {tail}"
    if problem is None:
        return None
    if not problem.startswith("cannot import"):
        return f"{field}: {problem}"
    if transform.environment:
        return f"{field}: {problem} in environment {transform.environment}"
    return (
        f"{field}: {problem}; the module must be importable from the spec file's folder, the "
        f"current folder or the installed packages (searched first: {', '.join(folders)})"
    )


_NO_ANSWER = "<no answer>"


def _answer(stdout: str) -> str | None:
    for line in reversed(stdout.splitlines()):
        if line.startswith('{"problem": '):
            try:
                problem = json.loads(line)["problem"]
            except (ValueError, KeyError):
                continue
            return None if problem is None else str(problem)
    return _NO_ANSWER
