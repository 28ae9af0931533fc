"""The JSON shapes of the API: records of the store, the stage catalogue and the run history as
plain dicts (stable snake_case keys, sizes in bytes, times as seconds since the epoch).
"""

from __future__ import annotations

import time
from typing import Any

from headrace.service.runs import RunRecord, StepRecord, TransformRecord
from headrace.stages.catalog import JobInfo, StageInfo
from headrace.stages.planning import input_repos
from headrace.stages.views import datum_view  # one datum JSON for the CLI and the API
from headrace.store.records import BranchInfo, CommitInfo, DiffEntry, FileInfo, RepoInfo

__all__ = [
    "branch_view",
    "commit_view",
    "datum_view",
    "diff_view",
    "file_view",
    "repo_view",
    "run_job_view",
    "run_view",
    "stage_job_view",
    "stage_view",
    "step_view",
    "transform_view",
]


def repo_view(r: RepoInfo) -> dict[str, Any]:
    return {
        "name": r.name,
        "description": r.description,
        "created_at": r.created_at,
        "branches": list(r.branches),
    }


def branch_view(b: BranchInfo) -> dict[str, Any]:
    return {"repo": b.repo, "name": b.name, "head": b.head}


def commit_view(c: CommitInfo) -> dict[str, Any]:
    return {
        "id": c.id,
        "repo": c.repo,
        "branch": c.branch,
        "parent": c.parent,
        "state": c.state,
        "origin": c.origin,
        "message": c.message,
        "started_at": c.started_at,
        "finished_at": c.finished_at,
        "file_count": c.file_count,
        "size_bytes": c.size_bytes,
    }


def file_view(f: FileInfo) -> dict[str, Any]:
    return {"path": f.path, "type": f.type, "size_bytes": f.size, "hash": f.hash}


def diff_view(d: DiffEntry) -> dict[str, Any]:
    return {
        "path": d.path,
        "kind": d.kind,
        "old": file_view(d.old) if d.old else None,
        "new": file_view(d.new) if d.new else None,
    }


def stage_view(s: StageInfo, last_job: JobInfo | None = None) -> dict[str, Any]:
    return {
        "name": s.name,
        "version": s.version,
        "spec": s.spec.to_dict(),
        "spec_file": s.spec_file,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "stopped": s.stopped,
        "output_repo": s.output_repo,
        "inputs": [{"name": n, "repo": r} for n, r, _ in input_repos(s.spec)],
        "last_job": stage_job_view(last_job) if last_job else None,
    }


def stage_job_view(job: JobInfo) -> dict[str, Any]:
    repos = {name: repo for name, repo, _ in input_repos(job.spec)}
    return {
        "kind": "stage_job",
        "id": job.id,
        "name": job.stage,
        "stage": job.stage,
        "state": job.state,
        "running": not job.done,
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
        "elements": job.total,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "seconds": job.seconds,
        "reason": job.reason,
        "owner": job.owner,
        "stop_requested": job.stop_requested,
    }


def step_view(s: StepRecord) -> dict[str, Any]:
    lag = None
    if s.watermark_us is not None:
        lag = max(0.0, time.time() - s.watermark_us / 1e6)
    return {
        "name": s.name,
        "position": s.position,
        "state": s.state,
        "elements_in": s.elements_in,
        "elements_out": s.elements_out,
        "seconds": s.seconds,
        "tasks": s.tasks,
        "tasks_done": s.tasks_done,
        "spills": s.spills,
        "counters": s.counters,
        "watermark_us": s.watermark_us,
        "lag_seconds": lag,
        "depends_on": s.depends_on,
    }


def transform_view(t: TransformRecord) -> dict[str, Any]:
    return {
        "id": t.id,
        "label": t.label,
        "kind": t.kind,
        "parent": t.parent,
        "composite": t.composite,
        "stage": t.stage,
        "root": t.is_root,
        "reads": t.reads,
        "elements_in": t.elements_in,
        "elements_out": t.elements_out,
        "seconds": t.seconds,
    }


def run_job_view(r: RunRecord) -> dict[str, Any]:
    """A pipeline run as an entry of the combined job list."""
    return {
        "kind": "pipeline_run",
        "id": r.id,
        "name": r.id,
        "state": r.state,
        "running": r.state not in ("DONE", "FAILED", "CANCELLED", "DRAINED"),
        "streaming": r.streaming,
        "source": r.source,
        "created_at": r.created_at,
        "started_at": r.started_at,
        "finished_at": r.finished_at,
        "seconds": r.seconds,
        "elements": r.elements,
        "error": r.error,
        "cancel_requested": r.cancel_requested,
    }


def run_view(r: RunRecord) -> dict[str, Any]:
    """A pipeline run with its steps (fused stages) and its graph's transforms; for a failed
    run, ``failure``: the transform that raised, the element and the traceback (None when the
    run did not fail or the runner did not say)."""
    failure = None
    if r.error and (r.failed_step or r.traceback):
        failure = {"step": r.failed_step, "element": r.failed_element, "traceback": r.traceback}
    return {
        **run_job_view(r),
        "failure": failure,
        "steps": [step_view(s) for s in r.steps],
        "transforms": [transform_view(t) for t in r.transforms],
    }
