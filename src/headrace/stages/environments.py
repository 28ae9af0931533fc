"""A python stage's own packages: ``transform.requirements`` built into an environment.

A python transform runs in one of three environments, each isolated differently:

- **none given**: inside the worker process, on headrace's own interpreter; the transform sees
  every package headrace has (and can clash with them).
- ``environment: /path/to/venv`` (or an interpreter): each attempt is a subprocess of that
  interpreter, through a stdlib-only bootstrap; the transform sees only that environment's
  packages. On Ray the attempt's Ray task starts the same subprocess on whichever node runs it,
  so the path must exist on every node (it is not shipped).
- ``requirements: [pip lines]``: on local workers, :func:`requirements_environment` builds a
  virtual environment once per machine and requirement list (under ``HEADRACE_ENV_CACHE``,
  default ``~/.cache/headrace/envs``; without the system's packages), then runs as with
  ``environment``. On Ray the list becomes the attempts' Ray ``runtime_env`` (``pip``): Ray
  builds a virtualenv per node, layered over the cluster's Python environment (headrace's and
  Ray's packages stay importable; the listed ones are installed on top and win), and runs the
  attempts in worker processes started in it, which serve no other environment. Ray needs the
  ``virtualenv`` package for this (``pip install 'headrace[ray]'`` brings it).

Lines are pip requirement-file lines, so options work too (``--index-url ...``,
``--find-links /wheels``, ``--no-index``).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["ENV_CACHE_ENV", "EnvironmentBuildError", "ray_runtime_env", "requirements_environment"]

ENV_CACHE_ENV = "HEADRACE_ENV_CACHE"


class EnvironmentBuildError(RuntimeError):
    """pip could not build a stage's ``transform.requirements``."""


def _cache_root() -> Path:
    configured = os.environ.get(ENV_CACHE_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "headrace" / "envs"


def env_key(requirements: tuple[str, ...]) -> str:
    """The cache key of an environment: the lines (in order) and this Python's version.

    >>> env_key(("requests==2.31",)) == env_key(("requests==2.31",))
    True
    >>> env_key(("a",)) != env_key(("b",))
    True
    """
    text = json.dumps([list(requirements), sys.version_info[:2]])
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def requirements_environment(requirements: tuple[str, ...], stage: str) -> Path:
    """The folder of a virtual environment with ``requirements`` installed, built on first use.

    Concurrent jobs wait for one build (a file lock); a failed build leaves nothing behind and
    raises :class:`EnvironmentBuildError` with the end of pip's output.
    """
    root = _cache_root()
    root.mkdir(parents=True, exist_ok=True)
    key = env_key(requirements)
    target = root / key
    ready = target / "headrace-ready"
    if ready.exists():
        return target
    with open(root / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return target
        shutil.rmtree(target, ignore_errors=True)
        try:
            _run([sys.executable, "-m", "venv", str(target)], stage, "python -m venv")
            (target / "requirements.txt").write_text("\n".join(requirements) + "\n")
            python = target / "bin" / "python"
            _run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "-r",
                    str(target / "requirements.txt"),
                ],
                stage,
                "pip install",
            )
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
        ready.write_text(json.dumps(list(requirements)))
    return target


def _run(argv: list[str], stage: str, what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise EnvironmentBuildError(
            f"stage {stage!r}: transform.requirements: {what} failed (exit status "
            f"{done.returncode}); fix the requirement lines:\n{tail}"
        )


def ray_runtime_env(requirements: tuple[str, ...]) -> dict[str, object]:
    """The Ray ``runtime_env`` of a stage's requirements (empty: none).

    >>> ray_runtime_env(("--no-index", "pkg==1.0"))
    {'pip': {'packages': ['--no-index', 'pkg==1.0'], 'pip_check': False}}
    >>> ray_runtime_env(())
    {}
    """
    if not requirements:
        return {}
    return {"pip": {"packages": list(requirements), "pip_check": False}}
