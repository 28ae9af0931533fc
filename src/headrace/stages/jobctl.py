"""Controlling jobs: run a stage now, stop a job, restart a failed job, rerun an ended one.

What ``headrace stage run``, ``job stop``, ``datum restart`` and ``job rerun`` do, as plain
functions that return data and print nothing (the CLI prints; a service will call them too).
A request that makes no sense for the job's state raises :class:`JobControlError` with a
message saying why and what to do.

:func:`run_stage_now`, :func:`restart_job` and :func:`rerun_job` run the new job in the calling
process (forking its worker processes) and return it once it has ended; ``progress`` is called
with the job as it advances. Job states change only through the state machine of
:mod:`headrace.stages.jobstate`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from headrace.stages.catalog import FAILURE, KILLED, Catalog, JobInfo, StageInfo
from headrace.stages.jobs import ProgressFn, kill_job, run_job
from headrace.stages.planning import JobError

__all__ = [
    "JobControlError",
    "StopResult",
    "rerun_job",
    "restart_job",
    "run_stage_now",
    "stop_job",
]

SHORT = 12  # characters of a job id in a hint


class JobControlError(JobError):
    """A job cannot be stopped, restarted or rerun in the state it is in."""


@dataclass(frozen=True)
class StopResult:
    """What :func:`stop_job` did.

    ``how`` is ``"asked"`` (a process runs the job: it was asked to stop and ends KILLED within
    about a second), ``"killed"`` (no process ran it: marked KILLED now) or ``"finished"`` (no
    process runs it but its output commit is finished: the daemon records it as SUCCESS).
    ``job`` is the job after the request.
    """

    job: JobInfo
    how: Literal["asked", "killed", "finished"]


def stop_job(catalog: Catalog, job_id: str) -> StopResult:
    """Stop a job (by id or unique prefix): ask its process to stop, or mark it KILLED when no
    process runs it any more. :class:`JobControlError` if it already ended."""
    from headrace.stages.daemon import orphaned

    job = catalog.get_job(job_id)
    if job.done:
        raise JobControlError(
            f"job {job.id} of stage {job.stage} already ended {job.state}; nothing to stop"
        )
    catalog.set_job(job.id, stop_requested=True)
    if not orphaned(job):
        return StopResult(catalog.get_job(job.id), "asked")
    job = kill_job(
        catalog, job.id, "stopped by request (headrace job stop) while no process ran it"
    )
    return StopResult(job, "killed" if job.state == KILLED else "finished")


def run_stage_now(
    catalog: Catalog,
    stage: str | StageInfo,
    commits: Mapping[str, str] | None = None,
    reprocess: bool = False,
    progress: ProgressFn | None = None,
) -> JobInfo:
    """Run a job of ``stage`` now, in this process, on the heads of its input branches (or
    ``commits``: input name -> commit or branch); return it once it has ended. ``reprocess``
    runs every datum, reusing none (``stage update --reprocess``)."""
    info = catalog.get_stage(stage) if isinstance(stage, str) else stage
    if reprocess:
        info = dataclasses.replace(info, spec=dataclasses.replace(info.spec, reprocess="every_job"))
    return run_job(catalog, info, commits=commits, progress=progress)


def restart_job(
    catalog: Catalog,
    job_id: str,
    progress: ProgressFn | None = None,
    warn: Callable[[str], None] | None = None,
) -> JobInfo:
    """Run the failed datums of a FAILURE or KILLED job again: a new job of its stage on the
    same input commits and trace, reusing the datums that succeeded while the spec version is
    the same. ``warn`` is told (before the job runs) when the stage's spec changed since, so
    that every datum runs. Returns the new job once it has ended."""
    job = catalog.get_job(job_id)
    if job.state not in (FAILURE, KILLED) or not job.inputs:
        how = "is still " if not job.done else "ended "
        raise JobControlError(
            f"job {job.id} of stage {job.stage} {how}{job.state}; only a job that ended "
            "FAILURE or KILLED after reading its inputs can be restarted"
        )
    stage = catalog.get_stage(job.stage)
    if stage.version != job.version and warn is not None:
        warn(
            f"stage {stage.name}'s spec changed since job {job.id[:SHORT]} "
            f"(version {job.version[:8]} -> {stage.version[:8]}): every datum runs"
        )
    return run_job(catalog, stage, commits=job.inputs, trace=job.trace, progress=progress)


def rerun_job(
    catalog: Catalog, job_id: str, reprocess: bool = False, progress: ProgressFn | None = None
) -> JobInfo:
    """Run a job of the same stage again over the same input commits and trace (pachctl rerun
    job): datums that succeeded with the same content are reused unless ``reprocess``. Returns
    the new job once it has ended."""
    job = catalog.get_job(job_id)
    if not job.done or not job.inputs:
        raise JobControlError(
            f"job {job.id} of stage {job.stage} is {job.state}; only an ended job that read "
            "its inputs can be rerun"
        )
    stage = catalog.get_stage(job.stage)
    if reprocess:
        stage = dataclasses.replace(
            stage, spec=dataclasses.replace(stage.spec, reprocess="every_job")
        )
    return run_job(catalog, stage, commits=job.inputs, trace=job.trace, progress=progress)
