"""The daemon: runs stages when their inputs change or their cron inputs tick.

Each pass (:meth:`Daemon.step`):

1. **resumes orphaned jobs**: a job left CREATED or RUNNING by a process that is gone (its pid no
   longer lives on this host, or its heartbeat is older than :data:`STALE_SECONDS`) is finished
   by :func:`~headrace.stages.jobs.resume_job`: datums it completed are kept, the rest run, its
   output commit finishes once. Nothing is lost or written twice;
2. **ticks cron inputs**: a due tick of a cron input is committed to the repo
   ``<stage>_<input>`` as a file named by its time (``/2026-11-21T07:00:00Z``); with
   ``overwrite`` the previous tick's file is removed in the same commit;
3. **runs stages** in dependency order (a stage reading another's output repo comes after it), so
   one upstream commit travels through the whole DAG in one pass: a stage runs when the head
   commits of its input branches, or its spec version, differ from its last job's. A failed job
   makes the jobs downstream of it UNRUNNABLE (recorded, with the same trace).

:func:`wait_for_arrival` waits until an upstream commit has reached a repo (``headrace commit
wait``).
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from headrace.stages.catalog import (
    CREATED,
    FAILURE,
    KILLED,
    RUNNING,
    UNRUNNABLE,
    Catalog,
    JobInfo,
    StageInfo,
    owner_id,
)
from headrace.stages.jobs import create_job, mark_unrunnable, resume_job
from headrace.stages.planning import EMPTY_INPUT, JobError, cron_repo, input_repos
from headrace.stages.processes import CallerState, process_context
from headrace.stages.spec import CronInput, iter_inputs
from headrace.store.errors import BranchNotFound, CommitNotFound, RepoNotFound, StoreError

__all__ = [
    "STALE_SECONDS",
    "Daemon",
    "DaemonBusy",
    "downstream",
    "orphaned",
    "stage_order",
    "wait_for_arrival",
]

STALE_SECONDS = 30.0


def stage_order(stages: list[StageInfo]) -> list[StageInfo]:
    """Stages with every stage after the stages whose output repos it reads.

    >>> from headrace.stages.spec import load_spec
    >>> def stage(name, repo):
    ...     spec = load_spec({"name": name, "input": {"pfs": {"repo": repo, "glob": "/"}},
    ...                       "transform": {"python": "m:f"}})
    ...     return StageInfo(name, spec, spec.version, None, 0.0, 0.0, False)
    >>> [s.name for s in stage_order([stage("b", "a"), stage("a", "raw")])]
    ['a', 'b']
    """
    by_name = {s.name: s for s in stages}
    out: list[StageInfo] = []
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(s: StageInfo) -> None:
        if state.get(s.name) == 2:
            return
        if state.get(s.name) == 1:
            raise ValueError(f"stages form a cycle through {s.name!r}")
        state[s.name] = 1
        for _, repo, _ in input_repos(s.spec):
            upstream = by_name.get(repo)
            if upstream is not None:
                visit(upstream)
        state[s.name] = 2
        out.append(s)

    for s in sorted(stages, key=lambda s: s.name):
        visit(s)
    return out


def downstream(stages: list[StageInfo], name: str) -> list[StageInfo]:
    """Stages that read ``name``'s output, directly or through others."""
    found: list[StageInfo] = []
    frontier = {name}
    while frontier:
        nxt = set()
        for s in stages:
            if s in found:
                continue
            if any(repo in frontier for _, repo, _ in input_repos(s.spec)):
                found.append(s)
                nxt.add(s.name)
        frontier = nxt
    return found


def _alive(owner: str | None) -> bool | None:
    """Whether the process ``host:pid`` lives; None when it runs on another host."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


def orphaned(job: JobInfo, now: float | None = None) -> bool:
    """True when the process running ``job`` is gone."""
    return _gone(job.owner, job.heartbeat or 0.0, now)


def _gone(owner: str | None, heartbeat: float, now: float | None = None) -> bool:
    """True when the process ``owner`` (``host:pid``) is gone: not alive on this host, or
    silent for :data:`STALE_SECONDS` on another."""
    alive = _alive(owner)
    if alive is False:
        return True
    now = time.time() if now is None else now
    return alive is None and heartbeat < now - STALE_SECONDS


class DaemonBusy(RuntimeError):
    """Another daemon already runs the stages of this store."""


@dataclass
class Daemon:
    """Runs stages as their inputs change; ``log`` gets one line per event.

    ``max_jobs``: with 1 (the default) each job runs in this process, one after another, so one
    pass carries a new commit through the whole DAG. With more, each job runs in a forked
    process of its own and up to ``max_jobs`` jobs of different stages run at once (a stage
    downstream still waits for its input's job to finish: its input changes only then).
    """

    catalog: Catalog
    poll: float = 0.5
    log: Callable[[str], None] = print
    max_jobs: int = 1
    clock: Callable[[], float] = time.time  # when cron inputs are due
    _children: dict[str, Any] = field(default_factory=dict)  # job id -> its process
    _started: int = 0  # jobs started by the current pass

    def step(self, tick: bool = True) -> list[JobInfo]:
        """One pass (see the module docstring); returns the jobs that ended in it. With
        ``tick`` false, cron inputs do not tick in this pass.

        Raises :class:`DaemonBusy` if another live daemon holds the store's daemon lock: two
        daemons would race to start the same jobs."""
        holder = self.catalog.claim_lock("daemon", _me(), _gone)
        if holder is not None:
            raise DaemonBusy(
                f"another headrace daemon ({holder}) runs the stages of this store; stop it "
                "first (one daemon per store)"
            )
        self._started = 0
        stages = [s for s in self.catalog.list_stages() if not s.stopped]
        ended = [self._ended(job, stages) for job in self._reap()]
        ended.extend(self._ended(job, stages) for job in self._resume_orphans())
        if tick:
            self._tick()
        for stage in stage_order(stages):
            if self.max_jobs > 1 and len(self._children) >= self.max_jobs:
                break
            job = self._maybe_run(stage)
            if job is not None:
                ended.append(self._ended(job, stages))
        return ended

    def run_until_idle(self) -> list[JobInfo]:
        """Pass after pass until a pass starts no job and no job runs; return the ended jobs.
        Cron inputs tick in the first pass only: a short ``@every`` would otherwise find a new
        tick due after every job and never let the DAG become idle."""
        ended: list[JobInfo] = []
        first = True
        while True:
            ended.extend(self.step(tick=first))
            first = False
            if not self._started and not self._children:
                return ended
            if self._children:
                time.sleep(self.poll)

    def _ended(self, job: JobInfo, stages: list[StageInfo]) -> JobInfo:
        """Report an ended job; a failed one makes the jobs downstream of it UNRUNNABLE."""
        self._report(job)
        if job.state in (FAILURE, KILLED):
            reason = f"upstream job {job.id} of stage {job.stage} ended {job.state}"
            for down in downstream(stages, job.stage):
                mark_unrunnable(self.catalog, down, job.trace, reason)
                self.log(f"stage {down.name}: job UNRUNNABLE ({reason})")
        return job

    def _reap(self) -> list[JobInfo]:
        """Jobs whose processes have ended (a process that died mid-job leaves its job to be
        resumed as an orphan)."""
        out = []
        for job_id, process in list(self._children.items()):
            if process.is_alive():
                continue
            process.join()
            del self._children[job_id]
            job = self.catalog.get_job(job_id)
            if job.done:
                out.append(job)
            else:
                self.log(
                    f"stage {job.stage}: the process of job {job.id} died (exit status "
                    f"{process.exitcode}); the job will be resumed"
                )
        return out

    def stop_jobs(self) -> None:
        """Interrupt the jobs running in child processes (they are resumed later)."""
        for process in self._children.values():
            if process.is_alive():
                process.terminate()
        for process in self._children.values():
            process.join(10)
        self._children.clear()

    @property
    def running(self) -> int:
        """How many jobs run in child processes now."""
        return sum(1 for p in self._children.values() if p.is_alive())

    def drain(self) -> list[JobInfo]:
        """Wait for the jobs running in child processes; report and return them."""
        for process in self._children.values():
            process.join()
        stages = [s for s in self.catalog.list_stages() if not s.stopped]
        return [self._ended(job, stages) for job in self._reap()]

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Step every ``poll`` seconds until ``until()`` is true (or forever)."""
        try:
            while until is None or not until():
                started = time.monotonic()
                self.step()
                time.sleep(max(0.0, self.poll - (time.monotonic() - started)))
        finally:
            self.close()

    def close(self) -> None:
        """Wait for jobs running in child processes, then give up the daemon lock."""
        self.drain()
        self.catalog.release_lock("daemon", _me())

    # -- the parts of a pass

    def _resume_orphans(self) -> list[JobInfo]:
        ended = []
        for job in sorted(self.catalog.list_jobs(states=(CREATED, RUNNING)), key=lambda j: j.seq):
            if job.id in self._children or not orphaned(job):
                continue
            self.log(f"stage {job.stage}: resuming interrupted job {job.id}")
            self.catalog.set_job(job.id, owner=_me(), heartbeat=time.time())
            done = self._launch(job.id)
            if done is not None:
                ended.append(done)
        return ended

    def _launch(self, job_id: str) -> JobInfo | None:
        """Run the job here (returning it), or in a child process (returning None)."""
        self._started += 1
        if self.max_jobs <= 1:
            return resume_job(self.catalog, job_id)
        process = process_context().Process(
            target=_run_in_child,
            args=(self.catalog, job_id, CallerState.here()),
            name=f"headrace-job-{job_id}",
        )
        process.start()
        self._children[job_id] = process
        return None

    def _tick(self) -> None:
        from headrace.stages.cron import next_tick, tick_name

        store = self.catalog.store
        now = self.clock()
        for stage in self.catalog.list_stages():
            if stage.stopped:
                continue
            for _, node in iter_inputs(stage.spec.input):
                if not isinstance(node, CronInput):
                    continue
                last = self.catalog.last_tick(stage.name, node.name)
                due = next_tick(node.spec, stage.created_at if last is None else last)
                if due > now:
                    continue
                while True:  # catch up to the latest due tick only
                    after = next_tick(node.spec, due)
                    if after > now:
                        break
                    due = after
                repo = cron_repo(stage.name, node.name)
                try:
                    store.inspect_repo(repo)
                except RepoNotFound:
                    store.create_repo(repo, f"ticks of cron input {node.name} of {stage.name}")
                name = "/" + tick_name(due)
                with store.commit(f"{repo}@master", message=f"tick {name[1:]}") as c:
                    if node.overwrite:
                        try:
                            old = store.list_files(f"{repo}@master")
                        except (CommitNotFound, BranchNotFound):
                            old = []
                        for f in old:
                            if f.path != name:
                                c.delete_file(f.path)
                    c.put_file(name, name[1:].encode())
                with self.catalog.transaction() as conn:
                    self.catalog.set_tick(conn, stage.name, node.name, due)
                self.log(f"stage {stage.name}: cron input {node.name} ticked at {name[1:]}")

    def _maybe_run(self, stage: StageInfo) -> JobInfo | None:
        store = self.catalog.store
        heads: dict[str, str] = {}
        for name, repo, branch in input_repos(stage.spec):
            try:
                info = store.inspect_commit(f"{repo}@{branch}")
            except RepoNotFound:
                return None  # made later (by the stage upstream, or a user)
            except (BranchNotFound, CommitNotFound):
                heads[name] = EMPTY_INPUT  # no commit yet: as in Pachyderm, the stage's first
                continue  # job still runs, with no datums from this input
            if not info.finished:
                return None  # wait for the open commit
            heads[name] = info.id
        last = next(
            (j for j in self.catalog.list_jobs(stage.name, limit=10) if j.state != UNRUNNABLE),
            None,
        )
        if last is not None and last.inputs == heads and last.version == stage.version:
            return None
        if last is not None and not last.done:
            return None  # another process runs it
        if last is None:
            heads = _first_inputs(store, stage, heads)
        elif last.version == stage.version:
            heads = _next_inputs(self.catalog, stage, last.inputs, heads)
        self.log(f"stage {stage.name}: new input commits, starting a job")
        try:
            job_id = create_job(self.catalog, stage, commits=heads)
        except JobError as e:
            self.log(f"stage {stage.name}: cannot start a job: {e}")
            return None
        return self._launch(job_id)

    def _report(self, job: JobInfo) -> None:
        counts = (
            f"{job.processed} processed, {job.skipped} skipped, {job.failed} failed, "
            f"{job.recovered} recovered of {job.total}"
        )
        tail = f" ({job.reason})" if job.reason else ""
        self.log(f"stage {job.stage}: job {job.id} {job.state}: {counts}{tail}")


def _me() -> str:
    return owner_id()


def _run_in_child(catalog: Catalog, job_id: str, caller: CallerState) -> None:
    """A job's own process: it owns the job (a restarted daemon resumes it if this dies)."""
    caller.apply()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the daemon to decide
    catalog.set_job(job_id, owner=_me(), heartbeat=time.time())
    resume_job(catalog, job_id)


def wait_for_arrival(
    catalog: Catalog,
    ref: str,
    timeout: float | None = None,
    trace: str | None = None,
    poll: float = 0.1,
) -> str:
    """Wait until the newest upstream commit (or ``trace``) has reached ``repo@branch``; return
    the commit id there that carries it.

    For a repo a stage writes, "upstream" means the newest commit among the input branches of
    every stage it depends on (the roots of its DAG); the wait ends when a finished commit with
    that commit's trace is on ``ref``'s repo. A job on the way that fails raises
    :class:`RuntimeError` naming it. For any other repo it waits for the branch head to finish.
    """
    store = catalog.store
    repo, _, branch = ref.partition("@")
    branch = branch or "master"
    deadline = None if timeout is None else time.monotonic() + timeout
    stages = {s.name: s for s in catalog.list_stages()}
    if repo not in stages:
        return store.wait_commit(f"{repo}@{branch}", timeout=timeout).id
    if trace is None:
        trace = _newest_root_trace(catalog, stages, repo)
    chain = {repo} | _upstream_names(stages, repo)
    while True:
        for commit_id in catalog.commits_of_trace(trace):
            try:
                info = store.inspect_commit(f"{repo}@{commit_id}")
            except (CommitNotFound, StoreError):
                continue
            if info.finished and info.branch == branch:
                return info.id
        for job in catalog.list_jobs(trace=trace):
            if job.stage in chain and job.state in (FAILURE, KILLED, UNRUNNABLE):
                raise RuntimeError(
                    f"job {job.id} of stage {job.stage} ended {job.state} ({job.reason}); "
                    f"trace {trace} will not reach {repo}@{branch}"
                )
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(
                f"trace {trace} has not reached {repo}@{branch} after {timeout} s; is the "
                "daemon running (headrace daemon)?"
            )
        time.sleep(poll)


_MAX_BACKLOG = 10_000  # commits walked back per input; beyond that a job takes the head


def _backlog(store: Any, repo: str, head: str, stop: Callable[[Any], bool]) -> list[Any]:
    """The commits from ``head`` back along parents, newest first, up to (not including) the
    first one ``stop`` accepts; the last item is that one, or None past the first commit."""
    chain: list[Any] = []
    commit = store.inspect_commit(f"{repo}@{head}")
    while not stop(commit) and len(chain) < _MAX_BACKLOG:
        chain.append(commit)
        if commit.parent is None:
            return [*chain, None]
        commit = store.inspect_commit(f"{repo}@{commit.parent}")
    return [*chain, commit]


def _is_commit(commit_id: str, commit: Any) -> bool:
    return bool(commit.id == commit_id)


def _first_inputs(store: Any, stage: StageInfo, heads: dict[str, str]) -> dict[str, str]:
    """The input commits of a stage's first job: the commits its inputs were at when it was
    created (Pachyderm runs a job at pipeline creation), or, for an input that had none then,
    its first commit since; the commits after them get jobs of their own."""
    out = {}
    for name, repo, _ in input_repos(stage.spec):
        if heads[name] == EMPTY_INPUT:
            out[name] = EMPTY_INPUT
            continue
        chain = _backlog(store, repo, heads[name], lambda c: c.started_at <= stage.created_at)
        base = chain[-1]
        out[name] = base.id if base is not None else chain[-2].id
    return out


def _next_inputs(
    catalog: Catalog, stage: StageInfo, done: dict[str, str], heads: dict[str, str]
) -> dict[str, str]:
    """The input commits of the next job: as in Pachyderm, every commit to an input branch
    gets its own job, oldest first, the other inputs staying at the commits the last job read,
    except those with a new commit of the same trace (Pachyderm's global ID: the commits one
    upstream commit caused, as in a diamond of stages), which advance with it. An input whose
    last commit is not an ancestor of its head (the branch moved elsewhere) goes to its head."""
    store = catalog.store
    oldest: tuple[float, str, str] | None = None  # (started_at, input name, commit id)
    chains: dict[str, list[Any]] = {}
    for name, repo, _ in input_repos(stage.spec):
        head, seen = heads[name], done.get(name)
        if seen is None or head in (seen, EMPTY_INPUT):
            continue
        chain = _backlog(store, repo, head, functools.partial(_is_commit, seen))
        if seen == EMPTY_INPUT and chain[-1] is None:
            pass  # the input's first commits since a job that had none
        elif chain[-1] is None or chain[-1].id != seen:  # not an ancestor, or too far back
            return heads
        chains[name] = chain[:-1]
        first = chain[-2]
        if oldest is None or (first.started_at, name) < oldest[:2]:
            oldest = (first.started_at, name, first.id)
    if oldest is None:
        return heads
    out = {**{n: done.get(n, c) for n, c in heads.items()}, oldest[1]: oldest[2]}
    new_ids = [c.id for chain in chains.values() for c in chain]
    traces = catalog.traces(new_ids)
    trace = traces.get(oldest[2], oldest[2])
    for name, chain in chains.items():
        same = [c for c in chain if traces.get(c.id, c.id) == trace]
        if name != oldest[1] and same:
            out[name] = same[0].id  # the newest commit of that trace (chains are newest first)
    return out


def _upstream_names(stages: dict[str, StageInfo], name: str) -> set[str]:
    out: set[str] = set()
    frontier = [name]
    while frontier:
        current = stages[frontier.pop()]
        for _, repo, _ in input_repos(current.spec):
            if repo in stages and repo not in out:
                out.add(repo)
                frontier.append(repo)
    return out


def _newest_root_trace(catalog: Catalog, stages: dict[str, StageInfo], name: str) -> str:
    store = catalog.store
    roots: list[tuple[str, str]] = []
    for stage_name in {name} | _upstream_names(stages, name):
        for _, repo, branch in input_repos(stages[stage_name].spec):
            if repo not in stages:
                roots.append((repo, branch))
    newest = None
    for repo, branch in roots:
        try:
            info = store.inspect_commit(f"{repo}@{branch}")
        except (RepoNotFound, BranchNotFound, CommitNotFound):
            continue
        key = (info.finished_at or info.started_at, info.id)
        if newest is None or key > newest[0]:
            newest = (key, info.id)
    if newest is None:
        raise LookupError(f"no input of stage {name} or its upstream stages has a commit yet")
    return catalog.traces([newest[1]]).get(newest[1], newest[1])
