"""Views of stages, jobs, datums, commits and traces as plain JSON-ready data.

The ``headrace`` commands print these with ``--json`` (and a service will return them): plain
dicts and lists, snake_case keys, times as ISO 8601 in UTC, ``None`` for unknown. Nothing here
prints, and nothing here changes the store or the catalogue.

:func:`trace_of` and :func:`jobs_of_commits` are the look-ups behind ``commit list --trace``
and ``commit provenance``: they return the records; the view functions turn them into data.
:func:`preview_datums` is ``datum list --spec``: the datums a spec would make now, each new,
changed or unchanged compared with the last successful job of its stage.

This module imports only the standard library when loaded (a store command that shows a commit
imports it without loading the stage layer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.stages.catalog import Catalog, DatumRecord, JobInfo, StageInfo
    from headrace.stages.datums import Datum
    from headrace.stages.spec import StageSpec
    from headrace.store.records import CommitInfo

__all__ = [
    "PREVIEW_STATUSES",
    "DatumPreview",
    "Trace",
    "commit_view",
    "commits_with_jobs",
    "datum_view",
    "input_repo_map",
    "iso_utc",
    "job_summary",
    "job_view",
    "jobs_of_commits",
    "preview_datums",
    "preview_view",
    "stage_view",
    "trace_of",
    "trace_view",
]


def iso_utc(ts: float | None) -> str | None:
    """A timestamp as ISO 8601 in UTC (None when unknown).

    >>> iso_utc(0.0)
    '1970-01-01T00:00:00+00:00'
    """
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def input_repo_map(spec: StageSpec) -> dict[str, str]:
    """``input name -> repo`` of every input of ``spec`` (cron inputs: their tick repo)."""
    from headrace.stages.planning import input_repos

    return {name: repo for name, repo, _ in input_repos(spec)}


def commit_view(c: CommitInfo) -> dict[str, Any]:
    """A commit of the store."""
    return {
        "id": c.id,
        "repo": c.repo,
        "branch": c.branch,
        "parent": c.parent,
        "state": c.state,
        "origin": c.origin,
        "message": c.message,
        "started_at": iso_utc(c.started_at),
        "finished_at": iso_utc(c.finished_at),
        "file_count": c.file_count,
        "size_bytes": c.size_bytes,
    }


def job_view(job: JobInfo) -> dict[str, Any]:
    """A job: state, input commits, output commit, datum counts, times, reason."""
    repos = input_repo_map(job.spec)
    return {
        "id": job.id,
        "stage": job.stage,
        "state": str(job.state),
        "version": job.version,
        "trace": job.trace,
        "inputs": [
            {"name": name, "repo": repos.get(name), "commit": commit}
            for name, commit in sorted(job.inputs.items())
        ],
        "output_commit": job.output_commit,
        "total": job.total,
        "processed": job.processed,
        "skipped": job.skipped,
        "failed": job.failed,
        "recovered": job.recovered,
        "created_at": iso_utc(job.created_at),
        "started_at": iso_utc(job.started_at),
        "finished_at": iso_utc(job.finished_at),
        "seconds": job.seconds,
        "reason": job.reason,
        "owner": job.owner,
        "heartbeat": iso_utc(job.heartbeat),
        "stop_requested": job.stop_requested,
    }


def job_summary(job: JobInfo) -> dict[str, Any]:
    """What a commit's view tells of the job that made it."""
    return {"id": job.id, "stage": job.stage, "version": job.version, "trace": job.trace}


def stage_view(stage: StageInfo, last: JobInfo | None) -> dict[str, Any]:
    """A stage, with the id and state of its last job (``last``) if it has one."""
    from headrace.stages.planning import input_repos

    return {
        "name": stage.name,
        "state": "stopped" if stage.stopped else "running",
        "version": stage.version,
        "output_repo": stage.output_repo,
        "output_branch": stage.spec.output_branch,
        "input_repos": [{"name": n, "repo": r, "branch": b} for n, r, b in input_repos(stage.spec)],
        "spec_file": stage.spec_file,
        "created_at": iso_utc(stage.created_at),
        "updated_at": iso_utc(stage.updated_at),
        "last_job": None if last is None else {"id": last.id, "state": str(last.state)},
    }


def datum_view(record: DatumRecord, with_log: bool = False) -> dict[str, Any]:
    """A datum of a job: state, hash, inputs, outputs, attempts, time, error (and its log)."""
    out: dict[str, Any] = {
        "datum_id": record.datum_id,
        "state": record.state,
        "hash": record.hash,
        "inputs": [{"name": n, "path": p} for n, p in record.input_paths()],
        "outputs": [{"path": p, "hash": h, "size_bytes": s} for p, h, s in record.output_files()],
        "attempts": record.attempts,
        "seconds": record.seconds,
        "error": record.error,
    }
    if with_log:
        out["log"] = record.log
    return out


@dataclass(frozen=True)
class Trace:
    """Every commit and job of one trace: ``commits`` oldest first, ``jobs`` newest first."""

    trace: str
    commits: list[CommitInfo]
    jobs: list[JobInfo]


def trace_of(catalog: Catalog, trace: str) -> Trace:
    """The commits (the user's commit that is the trace, and those jobs made) and the jobs of
    ``trace`` (Pachyderm's global ID)."""
    from headrace.store.errors import StoreError

    store = catalog.store
    found = []
    repos = [r.name for r in store.list_repos()]
    for commit_id in [trace, *catalog.commits_of_trace(trace)]:
        for repo in repos:
            try:
                found.append(store.inspect_commit(f"{repo}@{commit_id}"))
                break
            except StoreError:
                continue
    found.sort(key=lambda c: c.started_at)
    return Trace(trace, found, catalog.list_jobs(trace=trace))


def trace_view(t: Trace) -> dict[str, Any]:
    """A trace's commits and jobs."""
    return {
        "trace": t.trace,
        "commits": [commit_view(c) for c in t.commits],
        "jobs": [job_view(j) for j in t.jobs],
    }


def jobs_of_commits(catalog: Catalog | None, commit_ids: Iterable[str]) -> dict[str, JobInfo]:
    """The job that made each of ``commit_ids``, for those a stage job made (none without a
    catalogue)."""
    ids = list(commit_ids)
    if catalog is None or not ids:
        return {}
    wanted = set(ids)
    out: dict[str, JobInfo] = {}
    for trace in set(catalog.traces(ids).values()):
        for job in catalog.list_jobs(trace=trace):
            if job.output_commit in wanted:
                out[job.output_commit] = job
    return out


def commits_with_jobs(
    commits: Iterable[CommitInfo], jobs: Mapping[str, JobInfo]
) -> list[dict[str, Any]]:
    """Commits, each with a summary of the job that made it (``None`` for a user's commit)."""
    return [
        {**commit_view(c), "job": job_summary(jobs[c.id]) if c.id in jobs else None}
        for c in commits
    ]


PREVIEW_STATUSES = ("new", "changed", "unchanged")


@dataclass(frozen=True)
class DatumPreview:
    """The datums a spec makes of its inputs now, compared with its stage's last successful job.

    ``rows`` pairs each datum with its status (one of :data:`PREVIEW_STATUSES`); ``removed``
    lists the ids of datums of that job that no longer exist. ``stage`` is the stage of the
    spec's name (None if there is none yet); ``compared_with`` the id of the job compared with
    (None when every datum is new because there is none).
    """

    spec: StageSpec
    inputs: dict[str, str]
    rows: list[tuple[Datum, str]]
    removed: list[str]
    stage: StageInfo | None
    compared_with: str | None

    @property
    def counts(self) -> dict[str, int]:
        """How many datums have each status."""
        return {s: sum(1 for _, st in self.rows if st == s) for s in PREVIEW_STATUSES}


def preview_datums(
    catalog: Catalog, spec: StageSpec, commits: Mapping[str, str] | None = None
) -> DatumPreview:
    """Compute the datums of ``spec`` over its inputs' heads (or ``commits``: input name ->
    commit or branch) and compare them with the last successful job of the stage of that name,
    without running or recording anything."""
    from headrace.stages.catalog import SUCCESS
    from headrace.stages.planning import plan_datums, resolve_inputs

    inputs = resolve_inputs(catalog.store, spec, commits)
    datums, base = plan_datums(catalog, spec, inputs)
    stage = next((s for s in catalog.list_stages() if s.name == spec.name), None)
    last = catalog.last_job(spec.name, states=(SUCCESS,)) if stage is not None else None
    rows = []
    for d in datums:
        old = base.get(d.id)
        rows.append((d, "new" if old is None else "unchanged" if old == d.hash else "changed"))
    ids = {d.id for d in datums}
    removed = sorted(i for i in base if i not in ids)
    compared = last.id if last is not None and base else None
    return DatumPreview(spec, dict(inputs), rows, removed, stage, compared)


def preview_view(p: DatumPreview, status: str | None = None) -> dict[str, Any]:
    """A datum preview; ``status`` keeps only the datums with that status (counts stay whole)."""
    rows = [(d, st) for d, st in p.rows if status is None or st == status]
    return {
        "stage": p.spec.name,
        "stage_exists": p.stage is not None,
        "compared_with_job": p.compared_with,
        "version": p.spec.version,
        "inputs": dict(sorted(p.inputs.items())),
        "counts": {**p.counts, "removed": len(p.removed)},
        "datums": [
            {
                "datum_id": d.id,
                "status": st,
                "hash": d.hash,
                "inputs": [
                    {
                        "name": i.name,
                        "path": i.path,
                        "files": [
                            {"path": f.path, "size_bytes": f.size, "hash": f.hash} for f in i.files
                        ],
                    }
                    for i in d.inputs
                ],
            }
            for d, st in rows
        ],
        "removed": p.removed,
    }
