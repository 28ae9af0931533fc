"""Running datums: the worker processes, the per-datum sandbox and the three kinds of transform.

A worker process serves datums one at a time (:func:`execute`):

1. the datum's files are written from the store under ``<sandbox>/in/<input name>/<path>``
   (``$HEADRACE_INPUT``), ``<sandbox>/out`` is made empty (``$HEADRACE_OUTPUT``);
2. the transform runs, its stdout and stderr (file descriptors 1 and 2, so output of C code and
   child processes too) going to the datum's log:

   - ``python: module:function``: ``function(inputs, output)`` with ``inputs`` mapping each
     input name to its folder (a :class:`pathlib.Path`) and ``output`` the output folder;
   - ``pipeline: module:function``: the same call returns a headrace Pipeline, which is run to
     completion on the direct runner;
   - ``cmd``: a subprocess with ``stdin`` lines fed to it and ``env`` added to its environment;
     a non-zero exit fails the datum;
   - with ``environment`` (a Python interpreter, or a virtualenv folder), a python transform
     runs in a subprocess of that interpreter through a stdlib-only bootstrap, so the stage's
     own dependencies never meet headrace's;

3. every file under the output folder is stored (content-addressed objects; nothing is visible
   in any commit yet) and the datum's result, with its output files' contents, goes back to
   the job.

:class:`WorkerPool` keeps up to ``parallelism`` such processes, forked from the job's process
when it runs no other thread (a few milliseconds each, nothing imported again), else started
by multiprocessing's fork server (which, like spawn, imports the ``__main__`` module again: a
script that runs jobs from a multi-threaded program needs the ``if __name__ == "__main__":``
guard). With ``datum_batching`` a
process serves datum after datum (the user's module is imported once); without, every datum gets
a fresh process. The pool enforces ``datum_timeout`` by killing the worker's process group
(the transform and anything it started) and replaces dead workers, reporting the datum failed.
"""

from __future__ import annotations

import gc
import importlib
import inspect
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headrace.stages.processes import CallerState, process_context
from headrace.stages.sandbox import datum_environment, run_cmd
from headrace.stages.spec import Transform
from headrace.store.content import Content, ContentWriter
from headrace.store.store import Store
from headrace.store.writing import local_files

__all__ = [
    "DatumResult",
    "DatumTask",
    "WorkerConfig",
    "WorkerPool",
    "execute",
]

LOG_LIMIT = 256 * 1024  # bytes of a datum's log kept (the tail)
PARENT_CHECK_SECONDS = 1.0  # how often an idle worker checks that its job still lives


@dataclass(frozen=True)
class DatumTask:
    """One attempt at one datum. ``parts``: ``(input name, matched path, files)`` with files
    as ``(path, content hash, size)``; ``layouts``: the stored layout (Content JSON) of each
    content hash, looked up by the job for many datums at once so that a worker reads objects
    without asking the metadata database; ``commits``: the commit each part's input read
    (inputs of a union may share a name while reading different repos)."""

    job_id: str
    datum_id: str
    attempt: int
    parts: tuple[tuple[str, str, tuple[tuple[str, str, int], ...]], ...]
    layouts: Mapping[str, str] | None = None
    commits: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatumResult:
    """What an attempt produced: ``outputs`` are ``(path, Content JSON)`` of files the worker
    stored, ``inline`` the ``(path, bytes)`` of small ones it hands to the job instead (the job
    packs the small outputs of many datums into one object rather than one object each)."""

    datum_id: str
    attempt: int
    ok: bool
    outputs: tuple[tuple[str, str], ...] = ()
    error: str = ""
    log: str = ""
    seconds: float = 0.0
    inline: tuple[tuple[str, bytes], ...] = ()  # small outputs, stored by the job in one pack


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker of a job needs: the store, the transform and where to work."""

    store: Store
    transform: Transform
    stage: str
    scratch: str
    sys_path: tuple[str, ...] = ()
    empty_inputs: frozenset[str] = frozenset()  # inputs laid out as empty files (empty_files)
    input_commits: tuple[tuple[str, str], ...] = ()  # (input name, commit id) the job reads
    output_commit: str = ""
    keys: tuple[
        tuple[str, str, str, str], ...
    ] = ()  # (input name, JOIN_ON/GROUP_BY, glob, template)


# ---------------------------------------------------------------------------------------------
# Inside a worker


def execute(config: WorkerConfig, task: DatumTask) -> DatumResult:
    """Run one datum in this process (see the module docstring) and return its result."""
    start = time.perf_counter()
    sandbox = Path(config.scratch) / f"{task.datum_id}-{task.attempt}"  # unique per attempt
    in_dir, out_dir = sandbox / "in", sandbox / "out"
    out_dir.mkdir(parents=True)
    log_path = sandbox / "log"
    inputs: dict[str, Path] = {}
    try:
        pairs: list[tuple[str, Path]] = []
        for name, _path, files in task.parts:
            root = in_dir / name
            root.mkdir(parents=True, exist_ok=True)
            inputs[name] = root
            if name in config.empty_inputs:
                for p, _, _ in files:
                    local = root / p.lstrip("/")
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.touch()
            else:
                pairs.extend((h, root / p.lstrip("/")) for p, h, _ in files)
        _write_inputs(config.store, pairs, task.layouts)
        env = {
            **datum_environment(
                task.job_id,
                task.datum_id,
                config.output_commit,
                task.parts,
                in_dir,
                tuple(zip([p[0] for p in task.parts], task.commits, strict=True))
                if task.commits
                else config.input_commits,
                config.keys,
            ),
            "HEADRACE_INPUT": str(in_dir),  # after the per-input names: these always win
            "HEADRACE_OUTPUT": str(out_dir),
            "HEADRACE_DATUM_ID": task.datum_id,
            "HEADRACE_JOB_ID": task.job_id,
            "HEADRACE_STAGE": config.stage,
        }
        ok, error = _run_transform(config, inputs, out_dir, env, log_path)
        outputs: tuple[tuple[str, str], ...] = ()
        inline: tuple[tuple[str, bytes], ...] = ()
        if ok:
            outputs, inline = _store_outputs(config.store, out_dir)
    except Exception as e:  # the sandbox or the store failed: the datum fails, the worker lives
        ok, error, outputs, inline = False, _format_exception(e), (), ()
    log = _read_tail(log_path)
    shutil.rmtree(sandbox, ignore_errors=True)
    seconds = time.perf_counter() - start
    return DatumResult(task.datum_id, task.attempt, ok, outputs, error, log, seconds, inline)


def _write_inputs(
    store: Store, pairs: list[tuple[str, Path]], layouts: Mapping[str, str] | None
) -> None:
    known = {h: Content.from_json(layouts[h]) for h, _ in pairs if h in layouts} if layouts else {}
    store.write_contents(pairs, known)


def _run_transform(
    config: WorkerConfig,
    inputs: dict[str, Path],
    out_dir: Path,
    env: dict[str, str],
    log_path: Path,
) -> tuple[bool, str]:
    transform = config.transform
    with open(log_path, "wb") as log:
        if transform.kind == "cmd":
            return run_cmd(transform, env, log, out_dir.parent, inputs, out_dir)
        if transform.environment is not None:
            return _run_elsewhere(config, inputs, out_dir, env, log)
        with _redirected(log), _environ(env):
            try:
                function = _entry_point(transform, config.sys_path)
                result = function(inputs, out_dir)
                if transform.kind == "pipeline":
                    _run_pipeline(result, transform)
                elif result is not None:
                    print(
                        f"note: {transform.python} returned {type(result).__name__}; a python "
                        "transform writes files under its output folder, the value is ignored"
                    )
            except Exception as e:
                return False, _format_exception(e)
    return True, ""


def _run_pipeline(result: Any, transform: Transform) -> None:
    from headrace.model.pipeline import Pipeline

    if not isinstance(result, Pipeline):
        raise TypeError(
            f"pipeline transform {transform.pipeline} must return a headrace Pipeline, got "
            f"{type(result).__name__}; build one with headrace.beam.Pipeline() and return it "
            "without running it"
        )
    outcome = result.run()
    state = outcome.wait_until_finish()
    if str(state) not in ("DONE", "PipelineState.DONE"):
        raise RuntimeError(f"pipeline of {transform.pipeline} ended in state {state}")


_ENTRY_POINTS: dict[str, Callable[..., Any]] = {}


def _entry_point(transform: Transform, sys_path: tuple[str, ...]) -> Callable[..., Any]:
    target = transform.python if transform.python is not None else transform.pipeline
    assert target is not None
    cached = _ENTRY_POINTS.get(target)
    if cached is not None:
        return cached
    for entry in reversed(sys_path):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    module_name, function_name = transform.entry_point or ("", "")
    field = "transform.python" if transform.python is not None else "transform.pipeline"
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ImportError(
            f"{field}: cannot import module {module_name!r} ({e}); it must be importable from "
            f"the folder of the spec file or the working directory (searched: {list(sys_path)})"
        ) from e
    function = module
    for attr in function_name.split("."):
        try:
            function = getattr(function, attr)
        except AttributeError:
            raise AttributeError(
                f"{field}: module {module_name!r} has no {function_name!r}"
            ) from None
    if not callable(function):
        raise TypeError(f"{field}: {target} is not callable")
    _check_signature(function, target, field)
    _ENTRY_POINTS[target] = function
    return function


def _check_signature(function: Any, target: str, field: str) -> None:
    try:
        sig = inspect.signature(function)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(None, None)
    except TypeError:
        raise TypeError(
            f"{field}: {target}{sig} must take two arguments, (inputs, output): a dict of input "
            "name -> folder and the output folder"
        ) from None


_BOOTSTRAP = r"""
import importlib, inspect, json, os, sys, traceback
from pathlib import Path
request = json.loads(sys.argv[1])
sys.path[:0] = request["sys_path"]
module, _, name = request["target"].partition(":")
try:
    fn = importlib.import_module(module)
    for part in name.split("."):
        fn = getattr(fn, part)
    inputs = {k: Path(v) for k, v in request["inputs"].items()}
    fn(inputs, Path(request["output"]))
except Exception:
    traceback.print_exc()
    sys.exit(3)
"""


def _interpreter(environment: str) -> str:
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


def _run_elsewhere(
    config: WorkerConfig,
    inputs: dict[str, Path],
    out_dir: Path,
    env: dict[str, str],
    log: Any,
) -> tuple[bool, str]:
    transform = config.transform
    if transform.kind == "pipeline":
        return False, (
            "transform.environment: a pipeline transform runs on headrace's own interpreter; "
            "use a python transform (or a cmd) in a separate environment"
        )
    try:
        python = _interpreter(transform.environment or "")
    except FileNotFoundError as e:
        return False, str(e)
    request = {
        "target": transform.python,
        "sys_path": list(config.sys_path),
        "inputs": {k: str(v) for k, v in inputs.items()},
        "output": str(out_dir),
    }
    proc = subprocess.run(
        [python, "-c", _BOOTSTRAP, json.dumps(request)],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **transform.env_dict, **env},
        check=False,
    )
    if proc.returncode != 0:
        return False, (
            f"{transform.python} failed in environment {transform.environment} (exit status "
            f"{proc.returncode}); the traceback is in the log"
        )
    return True, ""


# the characters Pachyderm's file API refuses in a path (its IsGlob test)
_GLOB_CHARS = ("*", "?", "[", "]", "{", "}", "!", "(", ")", "@", "+", "^")


class OutputNameError(ValueError):
    """An output file's name cannot be stored (it has a glob character)."""


INLINE_FILE = 256 * 1024  # outputs up to this size go back to the job as bytes...
INLINE_TOTAL = 4 * 1024 * 1024  # ...while a datum's inline outputs stay under this


def _store_outputs(
    store: Store, out_dir: Path
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, bytes], ...]]:
    """Every file under ``out_dir``: small ones as bytes, the others stored here (no look-up
    of known contents: a metadata read per datum would cost more than a few extra bytes).

    A symbolic link in the output is stored as the file it names when that file is in the
    datum's sandbox (an output linked to an input, as Pachyderm's docs suggest to save a copy;
    ``/pfs/<input>`` and ``/pfs/out`` links too); a link leading anywhere else is refused."""
    sandbox = out_dir.parent
    link_roots = {"/pfs/out": str(out_dir), "/pfs": str(sandbox / "in")}
    writer = ContentWriter(store.objects)
    staged = []
    inline: list[tuple[str, bytes]] = []
    inline_bytes = 0
    outputs = local_files(
        str(out_dir), follow_links=True, within=str(sandbox), link_roots=link_roots
    )
    for rel, local in outputs:
        if any(c in rel for c in _GLOB_CHARS):
            raise OutputNameError(
                f"output file /{rel} has a glob character ({' '.join(_GLOB_CHARS)}) in its "
                "name, which Pachyderm refuses: a glob could never select it alone; rename it"
            )
        size = os.path.getsize(local)
        if size <= INLINE_FILE and inline_bytes + size <= INLINE_TOTAL:
            with open(local, "rb") as f:
                inline.append(("/" + rel, f.read()))
            inline_bytes += size
        else:
            staged.append(("/" + rel, writer.add_file(local)))
    if staged:
        writer.flush()
    stored = tuple((path, writer.resolve(c).to_json()) for path, c in staged)
    return stored, tuple(inline)


def _format_exception(e: BaseException) -> str:
    """The traceback from the user's code down (this module's own frames left out)."""
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(e), e, tb or e.__traceback__)).rstrip()


def _read_tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - LOG_LIMIT))
            data = f.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > LOG_LIMIT:
        text = f"[... {size - LOG_LIMIT} earlier bytes of the log cut ...]\n" + text
    return text


@contextmanager
def _redirected(log: Any) -> Iterator[None]:
    """Send file descriptors 1 and 2 (and sys.stdout/stderr) to ``log`` for the block."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    old_streams = sys.stdout, sys.stderr
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    # sys.stdout may not be file descriptor 1 (a test runner's capture): replace it too
    stream = open(os.dup(log.fileno()), "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115
    sys.stdout = sys.stderr = stream
    try:
        yield
    finally:
        try:
            stream.flush()
            stream.close()
        finally:
            sys.stdout, sys.stderr = old_streams
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


@contextmanager
def _environ(env: Mapping[str, str]) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _serve(config: WorkerConfig, conn: Any, once: bool, caller: CallerState) -> None:
    """A worker process's loop: receive tasks, send results, until told to stop."""
    caller.apply()  # a fork server's child would otherwise see the server's stale environment
    os.setpgid(0, 0)  # its own process group: a timeout kills the transform's children too
    # Objects inherited from the job's process stay put: without this, every collection of the
    # oldest generation walks (and so copies, page by page) the whole inherited heap.
    gc.freeze()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the job decides what Ctrl-C means
    parent = os.getppid()
    while True:
        try:
            # Sibling workers forked later hold copies of this pipe's other end, so the job's
            # death need not show as end-of-file here: look at who the parent is, too.
            while not conn.poll(PARENT_CHECK_SECONDS):
                if os.getppid() != parent:
                    return
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        conn.send(execute(config, task))
        if once:
            return


# ---------------------------------------------------------------------------------------------
# The pool, on the job's side


@dataclass
class _Worker:
    process: Any
    conn: Any
    task: DatumTask | None = None
    started: float = 0.0


class WorkerPool:
    """Up to ``size`` worker processes serving :class:`DatumTask` s.

    ``batching``: a process serves many datums (else one process per datum). ``timeout``:
    seconds a datum may run before its worker is killed and the datum fails.
    """

    def __init__(
        self,
        config: WorkerConfig,
        size: int,
        batching: bool,
        timeout: float | None = None,
    ) -> None:
        self.config = config
        self.size = max(1, size)
        self.batching = batching
        self.timeout = timeout
        # Fork (a few ms per process, nothing re-imported) from a single-threaded job process;
        # with other threads about, a lock one of them holds could be copied held into the
        # child, so fork from a clean server process instead.
        self._ctx: Any = process_context(preload=("headrace.stages.worker",))
        self._idle: list[_Worker] = []
        self._busy: list[_Worker] = []
        self._queue: deque[DatumTask] = deque()

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Tasks submitted and not yet reported."""
        return len(self._queue) + len(self._busy)

    def submit(self, task: DatumTask) -> None:
        self._queue.append(task)
        self._dispatch()

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_serve,
            args=(self.config, child, not self.batching, CallerState.here()),
            name=f"headrace-datum-{self.config.stage}",
            daemon=True,
        )
        process.start()
        child.close()
        return _Worker(process, parent)

    def _dispatch(self) -> None:
        while self._queue and len(self._busy) < self.size:
            worker = self._idle.pop() if self._idle else self._spawn()
            task = self._queue.popleft()
            try:
                worker.conn.send(task)
            except (BrokenPipeError, OSError):
                self._kill(worker)
                self._queue.appendleft(task)
                continue
            worker.task = task
            worker.started = time.monotonic()
            self._busy.append(worker)

    def results(self, wait: float) -> list[DatumResult]:
        """Results that arrive within ``wait`` seconds (fewer, or none, if none are ready)."""
        if not self._busy:
            return []
        wait_for = wait
        if self.timeout is not None:
            now = time.monotonic()
            soonest = min(w.started + self.timeout for w in self._busy)
            wait_for = max(0.0, min(wait, soonest - now))
        handles: list[Any] = []
        for w in self._busy:
            handles.extend((w.conn, w.process.sentinel))
        ready = set(multiprocessing.connection.wait(handles, timeout=wait_for))
        out: list[DatumResult] = []
        now = time.monotonic()
        for worker in list(self._busy):
            task = worker.task
            assert task is not None
            result: DatumResult | None = None
            if worker.conn in ready:
                try:
                    result = worker.conn.recv()
                except (EOFError, OSError):
                    result = None
            if result is not None:
                self._busy.remove(worker)
                worker.task = None
                if self.batching:
                    self._idle.append(worker)
                else:
                    worker.process.join(5)
                    worker.conn.close()
                out.append(result)
                continue
            died = worker.process.sentinel in ready or worker.conn in ready
            late = self.timeout is not None and now - worker.started >= self.timeout
            if died or late:
                self._busy.remove(worker)
                self._kill(worker)
                seconds = now - worker.started
                if late and not died:
                    error = (
                        f"datum_timeout: the datum ran longer than {self.timeout:g} s and was "
                        "killed (with everything its transform started)"
                    )
                else:
                    code = worker.process.exitcode
                    how = (
                        f"was killed by signal {-code}"
                        if code is not None and code < 0
                        else f"exited with status {code}"
                    )
                    error = f"the worker process running the datum {how}"
                out.append(DatumResult(task.datum_id, task.attempt, False, (), error, "", seconds))
        self._dispatch()
        return out

    def _kill(self, worker: _Worker) -> None:
        pid = worker.process.pid
        if pid is not None:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        worker.process.join(5)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join(5)
        worker.conn.close()

    def close(self) -> None:
        """Stop every worker (running datums are killed)."""
        for worker in self._idle:
            try:
                worker.conn.send(None)
            except OSError:
                pass
        for worker in self._idle:
            worker.process.join(2)
            if worker.process.is_alive():
                self._kill(worker)
            else:
                worker.conn.close()
        for worker in self._busy:
            self._kill(worker)
        self._idle.clear()
        self._busy.clear()
        self._queue.clear()


SHM = "/dev/shm"
SHM_DATUM_LIMIT = 64 * 1024 * 1024  # largest datum input put in memory-backed scratch


def make_scratch(stage: str, largest_datum: int = 0, parallelism: int = 1) -> str:
    """A fresh folder for a job's datum sandboxes.

    ``$HEADRACE_SCRATCH`` if set; else, when every datum's input is small (at most 64 MiB) and
    the memory-backed ``/dev/shm`` has room for many times what the workers hold at once, a
    folder there (creating and removing a sandbox per datum costs several times less than on
    a disk); else the system's temporary folder.
    """
    base = os.environ.get("HEADRACE_SCRATCH")
    if base is None and largest_datum <= SHM_DATUM_LIMIT and os.path.isdir(SHM):
        try:
            usage = shutil.disk_usage(SHM)
        except OSError:
            usage = None
        needed = 16 * max(largest_datum, 1024 * 1024) * max(parallelism, 1)
        if usage is not None and usage.free >= max(needed, 512 * 1024 * 1024):
            base = SHM
    if base is not None:
        os.makedirs(base, exist_ok=True)
    return tempfile.mkdtemp(prefix=f"headrace-{stage}-", dir=base)
