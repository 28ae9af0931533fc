"""Running a user's pipeline script in this process, as Python would run it as ``__main__``.

``headrace run`` and ``headrace plan`` both execute the user's code unchanged: a file through
:func:`runpy.run_path` or a module through :func:`runpy.run_module`, with ``sys.argv`` set to
``[TARGET, *ARGS]`` (so ``PipelineOptions(sys.argv)`` style scripts see their own options) and the
script's folder (or the current folder, for ``-m``) first on ``sys.path``. Both are restored
afterwards. This module also turns a failure into a short, readable report.
"""

from __future__ import annotations

import importlib.util
import linecache
import os
import re
import runpy
import sys
import sysconfig
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

__all__ = [
    "WORKER_TRACEBACK_NOTE",
    "Target",
    "TargetError",
    "describe_failure",
    "format_traceback",
    "run_target",
    "user_location",
    "worker_location",
]

_CLI_PACKAGE = "headrace.cli."
_HEADRACE_DIR = str(Path(__file__).resolve().parents[1]) + os.sep
_FRAME_LINE = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>.+)$')
# The note the direct runner adds to an error raised in a worker process (its traceback there);
# --traceback prints it, the short report only takes the failing line of user code from it.
WORKER_TRACEBACK_NOTE = "Traceback in the worker process:"
_NOTE_PREFIX = "headrace: "


class TargetError(Exception):
    """The script or module to run does not exist or cannot be run."""


@dataclass(frozen=True)
class Target:
    """What to execute: a script path (``module=False``) or a dotted module name."""

    name: str
    module: bool = False

    def check(self) -> None:
        """Raise :class:`TargetError` with a clear message unless the target can be run."""
        if self.module:
            _check_module(self.name)
            return
        path = Path(self.name)
        if not path.exists():
            raise TargetError(f"no such file: '{self.name}'")
        if path.is_dir() and not (path / "__main__.py").is_file():
            raise TargetError(
                f"'{self.name}' is a folder without a __main__.py; give the pipeline script's path"
            )
        if not path.is_dir() and not os.access(path, os.R_OK):
            raise TargetError(f"cannot read '{self.name}': permission denied")

    @property
    def display(self) -> str:
        return f"module '{self.name}'" if self.module else f"'{self.name}'"


def _check_module(name: str) -> None:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as e:
        raise TargetError(f"no module named '{name}' ({e})") from None
    if spec is None:
        raise TargetError(f"no module named '{name}' (searched the current folder and sys.path)")
    if spec.submodule_search_locations is not None:
        try:
            main_spec = importlib.util.find_spec(f"{name}.__main__")
        except (ImportError, ValueError):
            main_spec = None
        if main_spec is None:
            raise TargetError(
                f"'{name}' is a package without a __main__ module; name the module to run"
            )


@contextmanager
def _script_environment(target: Target, args: Sequence[str]) -> Iterator[None]:
    saved_argv = sys.argv
    saved_path = list(sys.path)
    if target.module:
        first = os.getcwd()
    else:
        path = Path(target.name).resolve()
        first = str(path if path.is_dir() else path.parent)
    sys.path.insert(0, first)
    sys.argv = [target.name, *args]
    try:
        yield
    finally:
        sys.argv = saved_argv
        sys.path[:] = saved_path


def run_target(target: Target, args: Sequence[str] = ()) -> None:
    """Run ``target`` as ``__main__`` with ``args``; its exceptions (and SystemExit) propagate."""
    with _script_environment(target, args):
        target.check()
        if target.module:
            runpy.run_module(target.name, run_name="__main__", alter_sys=True)
        else:
            runpy.run_path(target.name, run_name="__main__")


# -- reporting failures --------------------------------------------------------------------------


def _is_internal(module: str, filename: str) -> bool:
    return (
        module in ("headrace", "runpy")
        or module.startswith("headrace.")
        or filename in (runpy.__file__, "<frozen runpy>")
    )


def _library_dirs() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    return tuple({paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]})


def user_location(exc: BaseException) -> tuple[str, int, str, str] | None:
    """``(file, line, function, source line)`` of the deepest frame in the user's own code.

    Frames of headrace, the standard library and installed packages are skipped; when only
    installed packages are left, the deepest non-headrace frame is used.
    """
    libraries = _library_dirs()
    found: tuple[FrameType, int] | None = None
    fallback: tuple[FrameType, int] | None = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if _is_internal(str(frame.f_globals.get("__name__", "")), filename):
            continue
        fallback = (frame, lineno)
        if not filename.startswith(libraries):
            found = (frame, lineno)
    chosen = found or fallback
    if chosen is None:
        return None
    frame, lineno = chosen
    filename = frame.f_code.co_filename
    source = linecache.getline(filename, lineno, frame.f_globals).strip()
    return filename, lineno, frame.f_code.co_name, source


def worker_location(note: str) -> tuple[str, int, str, str] | None:
    """Like :func:`user_location`, read from a worker process's traceback text.

    >>> note = (
    ...     "Traceback in the worker process:\\n"
    ...     '  File "/work/job.py", line 6, in inverse\\n'
    ...     "    return 1 / x\\n"
    ...     "ZeroDivisionError: division by zero"
    ... )
    >>> worker_location(note)
    ('/work/job.py', 6, 'inverse', 'return 1 / x')
    """
    libraries = _library_dirs()
    lines = note.splitlines()
    found = fallback = None
    for i, line in enumerate(lines):
        match = _FRAME_LINE.match(line)
        if match is None:
            continue
        file = match["file"]
        if file.startswith((_HEADRACE_DIR, "<")):
            continue
        following = lines[i + 1] if i + 1 < len(lines) else ""
        indented = _indent(following) > _indent(line) and following.strip()
        entry = (file, int(match["line"]), match["func"], following.strip() if indented else "")
        fallback = entry
        if not file.startswith(libraries):
            found = entry
    return found or fallback


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def describe_failure(exc: BaseException, target: Target) -> list[str]:
    """A few plain lines that say what failed, where, and on which element.

    >>> e = ZeroDivisionError("division by zero")
    >>> e.add_note("headrace: transform 'Invert' failed on element 0")
    >>> describe_failure(e, Target("job.py"))[:2]
    ["transform 'Invert' failed on element 0", 'ZeroDivisionError: division by zero']
    """
    notes = [str(n) for n in getattr(exc, "__notes__", ())]
    headrace_notes = [n[len(_NOTE_PREFIX) :] for n in notes if n.startswith(_NOTE_PREFIX)]
    other_notes = [n for n in notes if not n.startswith(_NOTE_PREFIX)]
    message = str(exc)
    error_line = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    failed = next((n for n in headrace_notes if n.startswith("transform ")), None)
    if failed is not None:
        lines = [failed, error_line]
        extra = [n for n in headrace_notes if n is not failed]
    else:
        lines = [f"{target.display} raised {error_line}"]
        extra = headrace_notes
    worker_notes = [n for n in other_notes if n.startswith(WORKER_TRACEBACK_NOTE)]
    other_notes = [n for n in other_notes if not n.startswith(WORKER_TRACEBACK_NOTE)]
    location = None
    for note in worker_notes:
        location = worker_location(note) or location
    location = location or user_location(exc)
    if location is not None:
        file, line, func, source = location
        where = f"at {file}, line {line}, in {func}"
        lines.append(f"{where}: {source}" if source else where)
    for note in [*extra, *other_notes]:
        lines.extend(note.splitlines())
    return lines


def _without_cli_frames(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without the frames of ``headrace run`` itself and of runpy."""
    kept = [
        t
        for t in _walk(tb)
        if not (
            t.tb_frame.f_globals.get("__name__", "").startswith(_CLI_PACKAGE)
            or t.tb_frame.f_globals.get("__name__") == "runpy"
        )
    ]
    rebuilt: TracebackType | None = None
    for t in reversed(kept):
        rebuilt = TracebackType(rebuilt, t.tb_frame, t.tb_lasti, t.tb_lineno)
    return rebuilt


def _walk(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def format_traceback(exc: BaseException) -> str:
    """The full traceback of ``exc``, without the frames of ``headrace run`` itself."""
    tb = _without_cli_frames(exc.__traceback__)
    return "".join(traceback.format_exception(type(exc), exc, tb))
