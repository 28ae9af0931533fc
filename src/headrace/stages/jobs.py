"""Jobs: one run of a stage over one set of input commits, incremental and all-or-nothing.

:func:`run_job` plans and runs a job; :func:`resume_job` finishes one a killed process left.
What a job must do is decided by :mod:`headrace.stages.planning`; this module carries it out.

A job

1. resolves its input commits (finished ones only) and computes its datums
   (:mod:`headrace.stages.datums`);
2. compares each datum's hash with the last successful job of the stage: an equal hash is
   **skipped** (its outputs are already in the output branch); a datum that vanished or must
   rerun has its old outputs deleted. Datums that succeeded in a later job that failed as a
   whole are reused too, when their outputs are still stored (``reprocess: until_success``);
   ``reprocess: every_job`` skips nothing;
3. opens the output commit on ``<stage>@<output_branch>`` (provenance: the input commits;
   message: stage, job and spec version) and runs the other datums in a
   :class:`~headrace.stages.worker.WorkerPool`, retrying each up to ``datum_tries`` times;
4. stages each finished datum's outputs into the open commit, in the same transaction as the
   datum's row (so a crash never separates the two), failing the job if two datums write one
   path (naming both);
5. finishes the commit and marks the job SUCCESS in one transaction, or deletes the commit and
   marks it FAILURE / KILLED: nothing of a failed job is ever visible;
6. egresses the output commit when the spec asks.

A job's state moves only as :mod:`headrace.stages.jobstate` allows (through
:meth:`~headrace.stages.catalog.Catalog.move_job`).

A job carries a **trace**: the id of the user commit that caused it (the trace of its newest
input commit). The output commit gets the same trace, so every job and commit downstream of
one upstream commit share one id.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from headrace.stages.catalog import (
    DATUM_FAILED,
    DATUM_SUCCESS,
    FAILURE,
    KILLED,
    RUNNING,
    SUCCESS,
    TERMINAL,
    UNRUNNABLE,
    Catalog,
    DatumRecord,
    JobInfo,
    StageInfo,
    owner_id,
)
from headrace.stages.datums import EMPTY_INPUT, Datum
from headrace.stages.environments import (
    EnvironmentBuildError,
    ray_runtime_env,
    requirements_environment,
)
from headrace.stages.planning import (
    Plan,
    empty_inputs,
    input_repos,
    job_trace,
    make_plan,
    resolve_inputs,
    row,
)
from headrace.stages.raypool import RayDatumPool, ray_address
from headrace.stages.spec import Input, PfsInput, iter_inputs
from headrace.stages.worker import DatumResult, DatumTask, WorkerConfig, WorkerPool, make_scratch
from headrace.store.content import Content, ContentWriter
from headrace.store.errors import CommitNotFound, Conflict, RepoNotFound

__all__ = [
    "create_job",
    "kill_job",
    "mark_unrunnable",
    "resume_job",
    "run_job",
]

FLUSH_SECONDS = 0.5  # results are recorded at least this often...
FLUSH_ROWS = 2000  # ...or once this many datums are waiting
STOP_POLL_SECONDS = 1.0
HEARTBEAT_SECONDS = 1.0  # well under the daemon's STALE_SECONDS


ProgressFn = Callable[[JobInfo], None]


# ---------------------------------------------------------------------------------------------
# Running


def run_job(
    catalog: Catalog,
    stage: str | StageInfo,
    commits: Mapping[str, str] | None = None,
    trace: str | None = None,
    progress: ProgressFn | None = None,
) -> JobInfo:
    """Create and run a job of ``stage`` now, in this process; return it when it has ended.

    ``commits`` maps input names to commits (or branches) to read instead of the inputs'
    branches. Raises :class:`JobError` when the job cannot start; a job that starts ends in
    SUCCESS, FAILURE or KILLED (see :attr:`JobInfo.reason`).
    """
    return resume_job(catalog, create_job(catalog, stage, commits, trace), progress)


def create_job(
    catalog: Catalog,
    stage: str | StageInfo,
    commits: Mapping[str, str] | None = None,
    trace: str | None = None,
) -> str:
    """Record a CREATED job of ``stage`` over its inputs' heads (or ``commits``); return its id.
    :func:`resume_job` runs it. Raises :class:`JobError` when the inputs cannot be read."""
    info = catalog.get_stage(stage) if isinstance(stage, str) else stage
    store = catalog.store
    inputs = resolve_inputs(store, info.spec, commits)
    trace = trace or job_trace(catalog, store, info.spec, inputs)
    with catalog.transaction() as conn:
        return catalog.create_job(conn, info, inputs, trace)


def mark_unrunnable(catalog: Catalog, stage: StageInfo, trace: str, reason: str) -> str:
    """Record a job of ``stage`` that cannot run because an upstream job failed."""
    with catalog.transaction() as conn:
        return catalog.create_job(conn, stage, {}, trace, state=UNRUNNABLE, reason=reason)


def kill_job(catalog: Catalog, job_id: str, reason: str) -> JobInfo:
    """Mark a job that no process runs any more KILLED, deleting its open output commit in the
    same transaction (what the job itself does when stopped). A job already ended, or whose
    output commit is finished (:func:`resume_job` will mark it SUCCESS), is left as it is."""
    job = catalog.get_job(job_id)
    if job.done:
        return job
    store = catalog.store

    def record(conn: Any, _commit: Any = None) -> None:
        catalog.move_job(conn, job.id, KILLED, reason=reason, finished_at=time.time())

    if job.output_commit is not None:
        ref = f"{job.stage}@{job.output_commit}"
        try:
            finished = store.inspect_commit(ref).finished
        except (CommitNotFound, RepoNotFound):
            finished = None
        if finished:
            return job
        if finished is not None:
            store.delete_commit(ref, also=record)
            return catalog.get_job(job.id)
    with catalog.transaction() as conn:
        record(conn)
    return catalog.get_job(job.id)


def resume_job(catalog: Catalog, job_id: str, progress: ProgressFn | None = None) -> JobInfo:
    """Run a CREATED job, or finish a RUNNING one whose process died; return it once ended.

    Datums the interrupted run completed are counted ``recovered`` and not run again; their
    outputs are already staged in the open output commit.
    """
    job = catalog.get_job(job_id)
    if job.state in TERMINAL:
        return job
    runner = _JobRun(catalog, job, progress)
    return runner.run()


class _JobRun:
    def __init__(self, catalog: Catalog, job: JobInfo, progress: ProgressFn | None) -> None:
        self.catalog = catalog
        self.store = catalog.store
        self.job = job
        self.spec = job.spec
        self.progress = progress
        self.repo = job.stage
        self.commit: str = ""
        self.counts = {"total": 0, "processed": 0, "skipped": 0, "failed": 0, "recovered": 0}
        self.rows: list[DatumRecord] = []
        self.files: list[tuple[str, Content | None]] = []
        self.owners: dict[str, str] = {}  # output path -> datum id, this job's new outputs
        self.ran: set[str] = set()  # datums this run of the job finished
        self.recovered_ids: set[str] = set()  # datums an interrupted run of it finished
        self.unchecked: list[str] = []  # new paths to look for in the parent tree
        self.datums: dict[str, Datum] = {}
        self.layouts: dict[str, str] = {}  # content hash -> layout JSON of input files
        self.writer = ContentWriter(self.store.objects)  # packs the datums' small outputs
        self.plan: Plan | None = None
        self.failure: str | None = None
        self.killed: str | None = None

    # -- the job's life

    def run(self) -> JobInfo:
        try:
            self._open()
            own = self.catalog.datum_states(self.job.id) if self.job.state == RUNNING else {}
            plan = self.plan = make_plan(self.catalog, self.job, own)
            self.datums = {d.id: d for d in plan.datums}
            for row in self.catalog.datums(self.job.id, states=(DATUM_SUCCESS,)) if own else ():
                self.owners.update((p, row.datum_id) for p, _, _ in row.output_files())
                self.recovered_ids.add(row.datum_id)
            self.counts["total"] = plan.total
            self.counts["skipped"] = (
                plan.skipped_before
                + len(plan.skipped)
                + (0 if self.job.skips_recorded else plan.skip_count)
            )
            self.counts["recovered"] = plan.recovered
            if self.job.state != RUNNING:
                self._start(plan)
            if plan.run:
                self._process(plan.run)
            self._record_skips()
            self._flush()
        except _Abort:
            pass
        except KeyboardInterrupt:
            self.killed = "interrupted (Ctrl-C or SIGINT) while running"
            self._end()
            raise
        except BaseException as e:
            self.failure = self.failure or f"{type(e).__name__}: {e}"
            self._end()
            raise
        return self._end()

    def _open(self) -> None:
        """Make sure the output repo exists and the job has its open output commit."""
        job, store = self.job, self.store
        try:
            store.inspect_repo(self.repo)
        except RepoNotFound:
            store.create_repo(self.repo, f"output of stage {job.stage}")
        if job.output_commit is not None:
            try:
                info = store.inspect_commit(f"{self.repo}@{job.output_commit}")
            except CommitNotFound:
                self.failure = (
                    f"its output commit {job.output_commit} was deleted while the job was "
                    "interrupted; run the stage again"
                )
                raise _Abort() from None
            self.commit = info.id
            if info.finished:  # finished by an earlier run of this job
                self.failure = None
                self._mark(SUCCESS)
                raise _Abort()
            return
        repos = {name: repo for name, repo, _ in input_repos(self.spec)}
        provenance = [
            f"{repos[name]}@{commit}"
            for name, commit in job.inputs.items()
            if commit != EMPTY_INPUT
        ]
        message = f"stage {job.stage} job {job.id} (spec version {job.version})"

        def record(conn: Any, commit: Any) -> None:
            self.catalog.update_job(
                conn, job.id, output_commit=commit.id, started_at=time.time(),
                owner=owner_id(), heartbeat=time.time(),
            )  # fmt: skip
            self.catalog.set_trace(conn, commit.id, job.trace)

        try:
            info = store.start_commit(
                f"{self.repo}@{self.spec.output_branch}",
                message,
                origin="AUTO",
                provenance=provenance,
                also=record,
            )
        except Conflict as e:
            self.failure = (
                f"output branch {self.repo}@{self.spec.output_branch} is busy: {e}; another job "
                "or a user holds an open commit there"
            )
            raise _Abort() from None
        self.commit = info.id
        self.job = self.catalog.get_job(job.id)

    def _start(self, plan: Plan) -> None:
        """Stage the deletions and skipped datums, and mark the job RUNNING, in one go."""
        changes: list[tuple[str, Content | None]] = [(p, None) for p in sorted(plan.deletions)]
        changes.extend(plan.restage)
        for path, _content in plan.restage:
            self.owners[path] = "(reused)"
            self.unchecked.append(path)  # a skipped datum may own it in the parent tree
        skipped = plan.skipped

        def record(conn: Any) -> None:
            self.catalog.add_skipped(conn, self.job.id, skipped)
            self.catalog.move_job(conn, self.job.id, RUNNING, heartbeat=time.time(), **self.counts)

        self.store.stage_files(f"{self.repo}@{self.commit}", changes, also=record)
        self.job = self.catalog.get_job(self.job.id)
        if self.progress is not None:
            self.progress(self.job)

    def _record_skips(self) -> None:
        """Give the unchanged datums their (skipped) rows: copied inside the database, after
        the datums to run were handed to the workers, so that the copy does not delay them."""
        plan = self.plan
        assert plan is not None
        if self.job.skips_recorded:
            return
        with self.catalog.transaction() as conn:
            if plan.base_job is not None and plan.skip_count:
                self.catalog.copy_skipped(
                    conn, self.job.id, plan.base_job, plan.unchanged, plan.gone
                )
            self.catalog.update_job(conn, self.job.id, skips_recorded=True)
        self.job = self.catalog.get_job(self.job.id)

    def _process(self, todo: list[Datum]) -> None:
        spec = self.spec
        largest = max(sum(f.size for p in d.inputs for f in p.files) for d in todo)
        scratch = make_scratch(self.job.stage, largest, spec.parallelism)
        config = WorkerConfig(
            store=self.store,
            transform=spec.transform,
            stage=self.job.stage,
            scratch=scratch,
            sys_path=self._sys_path(),
            empty_inputs=frozenset(empty_inputs(spec.input)),
            input_commits=tuple(sorted(self.job.inputs.items())),
            output_commit=self.commit or "",
            keys=tuple(_capture_keys(spec.input)),
        )
        batching = spec.datum_batching if spec.datum_batching is not None else True
        if spec.transform.kind == "cmd":
            batching = True  # the command is the per-datum process; the harness is reused
        deadline = None if spec.job_timeout is None else time.monotonic() + spec.job_timeout
        next_flush = time.monotonic() + FLUSH_SECONDS
        next_poll = time.monotonic() + STOP_POLL_SECONDS
        next_beat = time.monotonic() + HEARTBEAT_SECONDS
        try:
            address = ray_address()
            pool: WorkerPool | RayDatumPool
            if address:
                try:
                    pool = RayDatumPool(
                        config,
                        spec.parallelism,
                        address,
                        spec.datum_timeout,
                        spec.resource_requests,
                        spec.resource_limits,
                        ray_runtime_env(spec.transform.requirements),
                    )
                except ValueError as e:  # the cluster cannot run this stage: say why, run none
                    self.failure = str(e)
                    raise _Abort() from None
            else:
                if spec.transform.requirements:  # built once per machine and list, then reused
                    try:
                        env = requirements_environment(spec.transform.requirements, config.stage)
                    except EnvironmentBuildError as e:
                        self.failure = str(e)
                        raise _Abort() from None
                    built = dataclasses.replace(spec.transform, environment=str(env))
                    config = dataclasses.replace(config, transform=built)
                pool = WorkerPool(config, spec.parallelism, batching, spec.datum_timeout)
            with pool:
                for start in range(0, len(todo), 5000):
                    chunk = todo[start : start + 5000]
                    hashes = {f.hash for d in chunk for p in d.inputs for f in p.files if f.hash}
                    layouts = {h: c.to_json() for h, c in self.store.contents(hashes).items()}
                    self.layouts.update(layouts)
                    for d in chunk:
                        pool.submit(self._task(d, 1))
                    if start == 0:
                        self._record_skips()  # while the first datums run
                while pool.pending:
                    for result in pool.results(wait=0.1):
                        if result.ok:
                            self._succeeded(result)
                        elif result.attempt < spec.datum_tries:
                            pool.submit(
                                self._task(self.datums[result.datum_id], result.attempt + 1)
                            )
                        else:
                            self._failed(result)
                    now = time.monotonic()
                    if now >= next_flush or len(self.rows) >= FLUSH_ROWS:
                        self._flush()
                        next_flush = now + FLUSH_SECONDS
                    if now >= next_poll:
                        next_poll = now + STOP_POLL_SECONDS
                        if now >= next_beat:  # others tell a live job by its heartbeat
                            next_beat = now + HEARTBEAT_SECONDS
                            self.catalog.set_job(self.job.id, heartbeat=time.time())
                        if self.catalog.get_job(self.job.id).stop_requested:
                            self.killed = "stopped by request (headrace job stop)"
                            raise _Abort()
                    if deadline is not None and now >= deadline:
                        self.failure = (
                            f"job_timeout: the job ran longer than {spec.job_timeout:g} s; "
                            f"{pool.pending} datums were still pending and were stopped"
                        )
                        raise _Abort()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _sys_path(self) -> tuple[str, ...]:
        paths = []
        stage = None
        try:
            stage = self.catalog.get_stage(self.job.stage)
        except LookupError:
            pass
        if stage is not None and stage.spec_file:
            paths.append(str(Path(stage.spec_file).resolve().parent))
        paths.append(os.getcwd())
        paths.extend(p for p in sys.path if p and p not in paths)
        return tuple(dict.fromkeys(paths))

    def _task(self, d: Datum, attempt: int) -> DatumTask:
        parts = tuple(
            (p.name, p.path, tuple((f.path, f.hash or "", f.size) for f in p.files))
            for p in d.inputs
        )
        layouts = {f[1]: self.layouts[f[1]] for p in parts for f in p[2] if f[1] in self.layouts}
        commits = tuple(self.job.inputs.get(p.key, "") for p in d.inputs)
        return DatumTask(self.job.id, d.id, attempt, parts, layouts, commits)

    # -- results

    def _succeeded(self, result: DatumResult) -> None:
        d = self.datums[result.datum_id]
        self.ran.add(d.id)
        outputs = []
        produced = [(path, Content.from_json(layout)) for path, layout in result.outputs]
        produced.extend((path, self.writer.add_bytes(data)) for path, data in result.inline)
        for path, content in produced:
            other = self.owners.get(path)
            if other is not None:
                self._duplicate(path, result.datum_id, other)
            self.owners[path] = result.datum_id
            self.unchecked.append(path)
            self.files.append((path, content))
            outputs.append([path, content.hash, content.size])
        self.counts["processed"] += 1
        self.rows.append(
            row(
                self.job.id,
                d,
                DATUM_SUCCESS,
                json.dumps(outputs),
                attempts=result.attempt,
                seconds=result.seconds,
                log=result.log,
            )
        )

    def _failed(self, result: DatumResult) -> None:
        d = self.datums[result.datum_id]
        self.counts["failed"] += 1
        self.rows.append(
            row(
                self.job.id,
                d,
                DATUM_FAILED,
                attempts=result.attempt,
                seconds=result.seconds,
                error=result.error,
                log=result.log,
            )
        )

    def _duplicate(self, path: str, first: str, second: str) -> None:
        def describe(datum_id: str) -> str:
            d = self.datums.get(datum_id)
            if d is None:
                return f"datum {datum_id}"
            parts = ", ".join(f"{p.name}:{p.path}" for p in d.inputs)
            return f"datum {datum_id} ({parts})"

        self.failure = (
            f"two datums wrote {path}: {describe(second)} and {describe(first)}; every output "
            "path must come from one datum (put the datum's own name in its output paths)"
        )
        # Both datums are recorded failed, so that no later job reuses either's outputs.
        for this, other in ((second, first), (first, second)):
            d = self.datums.get(this)
            if d is None or (this not in self.ran and this not in self.recovered_ids):
                continue  # a skipped datum's file in the parent tree: not this job's to judge
            if this != second:  # counted when it finished
                self.counts["recovered" if this in self.recovered_ids else "processed"] -= 1
            self.counts["failed"] += 1
            self.rows = [r for r in self.rows if r.datum_id != this]
            error = f"wrote {path}, which {describe(other)} also wrote"
            self.rows.append(row(self.job.id, d, DATUM_FAILED, error=error))
        raise _Abort()

    def _check_parent_tree(self) -> None:
        """New output paths that already exist in the output branch and are not being replaced
        belong to a skipped datum: the same path from two datums."""
        plan = self.plan
        assert plan is not None
        paths = [p for p in self.unchecked if p not in plan.deletions]
        self.unchecked = []
        if not paths:
            return
        info = self.store.inspect_commit(f"{self.repo}@{self.commit}")
        if info.parent is None:
            return
        found = self.store.lookup_files(f"{self.repo}@{info.parent}", paths)
        if not found:
            return
        path = min(found)
        owner = "a file no datum of the last job wrote"
        details = self.catalog.datum_details(plan.base_job) if plan.base_job else {}
        for datum_id, (_, outputs, _) in details.items():
            if any(p == path for p, _, _ in json.loads(outputs)):
                owner = datum_id
                break
        self._duplicate(path, owner, self.owners[path])

    def _flush(self, check: bool = True) -> None:
        if not self.rows and not self.files:
            return
        if check:
            self._check_parent_tree()
        rows = self.rows
        self.writer.flush()  # the pack of this batch's small outputs
        resolve = self.writer.resolve
        files = [(p, c if c is None or not c.pending else resolve(c)) for p, c in self.files]
        self.rows, self.files = [], []

        def record(conn: Any) -> None:
            self.catalog.insert_datums(conn, rows)
            self.catalog.update_job(conn, self.job.id, heartbeat=time.time(), **self.counts)

        self.store.stage_files(f"{self.repo}@{self.commit}", files, also=record)
        if self.progress is not None:
            self.progress(self.catalog.get_job(self.job.id))

    # -- ending

    def _end(self) -> JobInfo:
        if self.killed is None and self.failure is None and self.counts["failed"]:
            failed = self.catalog.datums(self.job.id, states=(DATUM_FAILED,))
            first = failed[0] if failed else None
            detail = ""
            if first is not None:
                last_line = first.error.strip().splitlines()[-1:] or [""]
                parts = ", ".join(f"{n}:{p}" for n, p in first.input_paths())
                detail = f"; first: datum {first.datum_id[:12]} ({parts}): {last_line[0]}"
            self.failure = (
                f"{self.counts['failed']} of {self.counts['total']} datums failed after "
                f"{self.spec.datum_tries} tries{detail} (headrace job logs {self.job.id[:12]})"
            )
        if self.killed is not None:
            self._mark(KILLED, self.killed)
        elif self.failure is not None:
            self._mark(FAILURE, self.failure)
        else:
            self._mark(SUCCESS)
        job = self.catalog.get_job(self.job.id)
        if job.state == SUCCESS and self.spec.egress is not None:
            self._egress(job)
            job = self.catalog.get_job(self.job.id)
        if self.progress is not None:
            self.progress(job)
        return job

    def _mark(self, state: str, reason: str = "") -> None:
        """Finish (SUCCESS) or delete (otherwise) the output commit, with the job's state."""
        now = time.time()
        if state != SUCCESS and self.commit:
            try:  # record the datums that did finish: the next job can reuse their outputs
                self._flush(check=False)
            except Exception:  # the job's end is recorded even if its last rows cannot be
                self.rows, self.files = [], []

        def record(conn: Any, _commit: Any = None) -> None:
            self.catalog.move_job(
                conn, self.job.id, state, reason=reason, finished_at=now, **self.counts
            )

        if not self.commit:
            with self.catalog.transaction() as conn:
                record(conn)
            return
        ref = f"{self.repo}@{self.commit}"
        if state == SUCCESS:
            info = self.store.inspect_commit(ref)
            if info.finished:
                with self.catalog.transaction() as conn:
                    record(conn)
            else:
                self.store.finish_commit(ref, also=record)
        else:
            try:
                self.store.delete_commit(ref, also=record)
            except CommitNotFound:
                if self.catalog.get_job(self.job.id).done:
                    return  # ended meanwhile (job stop marked it KILLED): that end stands
                with self.catalog.transaction() as conn:
                    record(conn)

    def _egress(self, job: JobInfo) -> None:
        from headrace.stages.egress import egress_commit

        assert job.output_commit is not None and self.spec.egress is not None
        previous = None
        for earlier in self.catalog.list_jobs(job.stage, states=(SUCCESS,)):
            if earlier.seq < job.seq and earlier.output_commit and not earlier.reason:
                previous = f"{self.repo}@{earlier.output_commit}"
                break
        try:
            egress_commit(
                self.store, f"{self.repo}@{job.output_commit}", self.spec.egress, previous
            )
        except Exception as e:
            self.catalog.set_job(job.id, reason=f"egress failed: {e}")


class _Abort(Exception):
    """Leave the job's loop; the reason is on the run."""


def _capture_keys(node: Input) -> Iterator[tuple[str, str, str, str]]:
    """``(input name, "JOIN_ON" or "GROUP_BY", glob, template)`` of the keyed pfs inputs."""
    for _, pfs in iter_inputs(node):
        if isinstance(pfs, PfsInput):
            if pfs.join_on:
                yield pfs.name, "JOIN_ON", pfs.glob, pfs.join_on
            if pfs.group_by:
                yield pfs.name, "GROUP_BY", pfs.glob, pfs.group_by
