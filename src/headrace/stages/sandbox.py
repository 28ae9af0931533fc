"""Running a ``cmd`` datum where Pachyderm code expects it: ``/pfs/<input>`` and ``/pfs/out``.

This module owns how a ``cmd`` transform runs (:func:`run_cmd`), the variables Pachyderm gives
user code (:func:`datum_environment`), the command lines that give a ``cmd`` Pachyderm's
layout, and the checks that say, at stage creation, whether this machine can run them:

- ``pfs: true`` (every Pachyderm spec): the command runs in a private mount namespace of its
  own (``unshare`` from util-linux, as an unprivileged user namespace) whose root is a copy of
  this machine's root with ``/pfs/<input>`` bound to the datum's input folders and ``/pfs/out``
  to its output folder. Nothing outside the process sees these mounts.
- ``image``: the command runs in that container image under the engine named by
  ``$HEADRACE_CONTAINER_ENGINE`` (``docker``, ``podman`` or a path to either), the same
  folders mounted at ``/pfs``. Without an engine the stage is refused: running the command on
  this machine instead would silently use other programs than the image's. Setting the
  variable to ``host`` is the explicit choice to do that (the ``/pfs`` namespace is used).

When neither can run, :func:`check_transform` says why, so a stage is refused at creation
rather than producing empty outputs.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from headrace.stages.datums import capture_key
from headrace.stages.spec import Transform

__all__ = [
    "ENGINE_VARIABLE",
    "check_transform",
    "container_command",
    "container_engine",
    "datum_environment",
    "pfs_command",
    "pfs_namespaces_work",
    "run_cmd",
]

ENGINE_VARIABLE = "HEADRACE_CONTAINER_ENGINE"

# Run by sh inside the new user and mount namespace: a tmpfs root holding binds of every
# top-level entry of the real root, plus /pfs; then the command, chrooted there.
_PFS_SCRIPT = r"""
set -e
root=$1; out=$2; cwd=$3; n=$4; shift 4
mount -t tmpfs headrace-pfs "$root"
for entry in /* /.[!.]*; do
  [ -e "$entry" ] || [ -L "$entry" ] || continue
  name=${entry#/}
  [ "$name" = pfs ] && continue
  if [ -L "$entry" ]; then ln -s "$(readlink "$entry")" "$root/$name"
  elif [ -d "$entry" ]; then mkdir "$root/$name"; mount --rbind "$entry" "$root/$name"
  else : > "$root/$name"; mount --bind "$entry" "$root/$name"; fi
done
mkdir -p "$root/pfs/out"
mount --bind "$out" "$root/pfs/out"
while [ "$n" -gt 0 ]; do
  mkdir -p "$root/pfs/$1"; mount --bind "$2" "$root/pfs/$1"; shift 2; n=$((n - 1))
done
shift
chroot=$(command -v chroot || echo /usr/sbin/chroot)
exec "$chroot" "$root" /bin/sh -c 'cd "$0" && exec "$@"' "$cwd" "$@"
"""


def container_engine() -> str | None:
    """The configured container engine (``$HEADRACE_CONTAINER_ENGINE``), or None."""
    return os.environ.get(ENGINE_VARIABLE) or None


@functools.lru_cache(maxsize=1)
def pfs_namespaces_work() -> str | None:
    """None when ``/pfs`` mounts work on this machine, else why not (checked once)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return "the 'unshare' program (util-linux) is not installed"
    try:
        done = subprocess.run(
            [unshare, "--user", "--map-root-user", "--mount", "true"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"'unshare' could not run: {e}"
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip()
        return f"unprivileged user namespaces are not allowed here ({reason})"
    return None


def check_transform(transform: Transform) -> None:
    """Raise ValueError saying why this machine cannot run ``transform`` as its spec asks
    (a container image without an engine, ``/pfs`` paths without namespaces)."""
    if transform.image is not None:
        engine = container_engine()
        if engine is None:
            raise ValueError(
                f"transform.image: {transform.image!r} needs a container engine; set "
                f"{ENGINE_VARIABLE}=docker (or podman), or {ENGINE_VARIABLE}=host to run "
                "the command on this machine instead of in the image"
            )
        if engine != "host":
            if shutil.which(engine) is None:
                raise ValueError(
                    f"transform.image: {ENGINE_VARIABLE}={engine!r} names no program on PATH"
                )
            return
    if transform.pfs or transform.image is not None:
        why = pfs_namespaces_work()
        if why is not None:
            raise ValueError(
                "transform: the command expects its datum under /pfs (a Pachyderm spec), "
                f"which needs a private mount namespace, but {why}; use $HEADRACE_INPUT and "
                "$HEADRACE_OUTPUT in the command and drop 'pfs: true' instead"
            )


def pfs_command(
    cmd: Sequence[str], inputs: Mapping[str, Path], out_dir: Path, cwd: Path
) -> list[str]:
    """The command line running ``cmd`` with ``/pfs/<name>`` bound to ``inputs[name]`` and
    ``/pfs/out`` to ``out_dir``, in ``cwd``; ``cwd / "root"`` is made as the mount point."""
    root = cwd / "pfs-root"
    root.mkdir(exist_ok=True)
    pairs = [str(x) for name, path in inputs.items() for x in (name, path)]
    return [
        shutil.which("unshare") or "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        _PFS_SCRIPT,
        "headrace-pfs",
        str(root),
        str(out_dir),
        str(cwd),
        str(len(inputs)),
        *pairs,
        "--",
        *cmd,
    ]


def container_command(
    engine: str,
    image: str,
    cmd: Sequence[str],
    inputs: Mapping[str, Path],
    out_dir: Path,
    env: Mapping[str, str],
    interactive: bool,
) -> list[str]:
    """The ``docker run`` / ``podman run`` command line running ``cmd`` in ``image`` with
    the datum's inputs at ``/pfs/<name>`` (read-only), its output at ``/pfs/out``, ``env``
    set, as the current user (so headrace can read and remove what it writes).

    >>> container_command("docker", "pachyderm/opencv:1.0", ["python3", "/edges.py"],
    ...     {"images": Path("/s/in/images")}, Path("/s/out"), {"K": "v"}, False)
    ... # doctest: +NORMALIZE_WHITESPACE +ELLIPSIS
    ['docker', 'run', '--rm', '--user', '...', '-v', '/s/in/images:/pfs/images:ro',
     '-v', '/s/out:/pfs/out', '-e', 'K=v', 'pachyderm/opencv:1.0', 'python3', '/edges.py']
    """
    line = [engine, "run", "--rm"]
    if interactive:
        line.append("-i")
    line += ["--user", f"{os.getuid()}:{os.getgid()}"]
    for name, path in inputs.items():
        line += ["-v", f"{path}:/pfs/{name}:ro"]
    line += ["-v", f"{out_dir}:/pfs/out"]
    for key, value in env.items():
        line += ["-e", f"{key}={value}"]
    return [*line, image, *cmd]


def datum_environment(
    job_id: str,
    datum_id: str,
    output_commit: str,
    parts: Sequence[tuple[str, str, object]],
    in_dir: Path,
    input_commits: Sequence[tuple[str, str]],
    keys: Sequence[tuple[str, str, str, str]],
) -> dict[str, str]:
    """The variables Pachyderm gives user code (its worker's ``UserCodeEnv``), so code written
    for Pachyderm runs unchanged: per input name, ``<name>`` = the datum's path for that input
    and ``<name>_COMMIT`` its commit; ``PACH_DATUM_<name>_JOIN_ON`` / ``_GROUP_BY`` the key of
    a join or group input (also as ``HEADRACE_DATUM_<name>_...``); ``PACH_JOB_ID``,
    ``PACH_DATUM_ID``, ``PACH_OUTPUT_COMMIT_ID`` (and ``HEADRACE_OUTPUT_COMMIT_ID``)."""
    env = {
        "PACH_JOB_ID": job_id,
        "PACH_DATUM_ID": datum_id,
        "PACH_OUTPUT_COMMIT_ID": output_commit,
        "HEADRACE_OUTPUT_COMMIT_ID": output_commit,
    }
    paths = {name: path for name, path, _ in parts}
    for name, path in paths.items():
        env[name] = str(in_dir / name / path.lstrip("/")) if path != "/" else str(in_dir / name)
    for name, commit in input_commits:
        if name in paths:
            env[f"{name}_COMMIT"] = commit
    for name, kind, glob, template in keys:
        if name in paths:
            key = capture_key(glob, template, paths[name])
            env[f"PACH_DATUM_{name}_{kind}"] = env[f"HEADRACE_DATUM_{name}_{kind}"] = key
    return env


def run_cmd(
    transform: Transform,
    env: dict[str, str],
    log: Any,
    cwd: Path,
    inputs: Mapping[str, Path],
    out_dir: Path,
) -> tuple[bool, str]:
    """Run a ``cmd`` transform for one datum (its output to ``log``): plainly, with ``/pfs``
    mounts (``pfs``), or in its container ``image``; ``(ok, error)``."""
    assert transform.cmd is not None
    stdin = "".join(line + "\n" for line in transform.stdin).encode() if transform.stdin else None
    command = list(transform.cmd)
    if transform.pfs or transform.image is not None:
        try:
            check_transform(transform)
        except ValueError as e:
            return False, str(e)
        for name, root in inputs.items():  # the datum's paths as the command sees them
            if env.get(name, "").startswith(str(root)):
                env = {**env, name: f"/pfs/{name}" + env[name][len(str(root)) :]}
        engine = container_engine()
        if transform.image is not None and engine not in (None, "host"):
            assert engine is not None
            user_env = {**transform.env_dict, **env}
            command = container_command(
                engine, transform.image, command, inputs, out_dir, user_env, stdin is not None
            )
        else:
            command = pfs_command(command, inputs, out_dir, cwd)
    full_env = {**os.environ, **transform.env_dict, **env}
    try:
        proc = subprocess.run(
            command,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            check=False,
        )
    except OSError as e:
        return False, f"transform.cmd: cannot start {transform.cmd[0]!r}: {e}"
    if proc.returncode != 0:
        how = (
            f"was killed by signal {-proc.returncode}"
            if proc.returncode < 0
            else f"exited with status {proc.returncode}"
        )
        return False, f"command {' '.join(transform.cmd)!r} {how}; its output is in the log"
    return True, ""
