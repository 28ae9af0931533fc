"""``/api/v1/stages`` and ``/api/v1/stage-jobs``: stages, their jobs, datums (failed first,
then slowest) and each datum's log; stopping a running job.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from headrace.service.errors import BadRequest
from headrace.service.views import datum_view, stage_job_view, stage_view
from headrace.stages.catalog import JOB_STATES, Catalog
from headrace.store.errors import NotFound

__all__ = ["parse_job_states", "router"]

router = APIRouter(prefix="/api/v1", tags=["stages"])

DATUM_STATES = ("success", "skipped", "failed", "recovered")


def _catalog(request: Request) -> Catalog:
    catalog: Catalog = request.app.state.catalog
    return catalog


def parse_job_states(state: str | None) -> tuple[str, ...] | None:
    """``state=running,failure`` as catalogue states; an unknown one is a :class:`BadRequest`."""
    if state is None:
        return None
    wanted = tuple(s.strip().upper() for s in state.split(",") if s.strip())
    unknown = [s for s in wanted if s not in JOB_STATES]
    if unknown:
        raise BadRequest(
            f"state {', '.join(unknown).lower()!r} is not a stage job state; use "
            f"{', '.join(s.lower() for s in JOB_STATES)}"
        )
    return wanted


@router.get("/stages", summary="List stages with their last job")
def list_stages(request: Request) -> list[dict[str, Any]]:
    catalog = _catalog(request)
    return [stage_view(s, catalog.last_job(s.name)) for s in catalog.list_stages()]


@router.get("/stages/{name}", summary="Inspect a stage")
def inspect_stage(request: Request, name: str) -> dict[str, Any]:
    catalog = _catalog(request)
    return stage_view(catalog.get_stage(name), catalog.last_job(name))


@router.get("/stage-jobs", summary="List stage jobs, newest first")
def list_stage_jobs(
    request: Request,
    stage: str | None = None,
    state: Annotated[str | None, Query(description="Comma-separated states.")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    before: Annotated[
        str | None, Query(description="A job id: only jobs created before it (the next page).")
    ] = None,
) -> dict[str, Any]:
    catalog = _catalog(request)
    if stage is not None:
        catalog.get_stage(stage)
    before_seq = catalog.get_job(before).seq if before else None
    jobs = catalog.list_jobs(stage, parse_job_states(state), None, limit + 1, before_seq)
    return {
        "jobs": [stage_job_view(j) for j in jobs[:limit]],
        "next_before": jobs[limit - 1].id if len(jobs) > limit else None,
    }


@router.get("/stage-jobs/{job_id}", summary="Inspect a stage job")
def inspect_stage_job(request: Request, job_id: str) -> dict[str, Any]:
    return stage_job_view(_catalog(request).get_job(job_id))


@router.post("/stage-jobs/{job_id}/stop", summary="Ask a running stage job to stop")
def stop_stage_job(request: Request, job_id: str) -> dict[str, Any]:
    """The process running the job stops it at its next check (``headrace job stop``)."""
    catalog = _catalog(request)
    job = catalog.get_job(job_id)
    if not job.done:
        catalog.set_job(job.id, stop_requested=True)
        job = catalog.get_job(job.id)
    return stage_job_view(job)


@router.get("/stage-jobs/{job_id}/datums", summary="A page of a job's datums, failed first")
def list_datums(
    request: Request,
    job_id: str,
    state: Annotated[str | None, Query(description="success, skipped, failed or recovered")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    catalog = _catalog(request)
    job = catalog.get_job(job_id)
    states = None
    if state is not None:
        if state.lower() not in DATUM_STATES:
            raise BadRequest(f"datum state {state!r}: use one of {', '.join(DATUM_STATES)}")
        states = (state.lower(),)
    records, total = catalog.datum_page(job.id, states, offset, limit)
    return {
        "job": stage_job_view(job),
        "total": total,
        "offset": offset,
        "datums": [datum_view(r) for r in records],
    }


@router.get("/stage-jobs/{job_id}/datums/{datum_id}", summary="One datum with its log")
def inspect_datum(request: Request, job_id: str, datum_id: str) -> dict[str, Any]:
    catalog = _catalog(request)
    job = catalog.get_job(job_id)
    try:
        record = catalog.get_datum(job.id, datum_id)
    except LookupError as e:
        raise NotFound(str(e)) from None
    return {"job_id": job.id, "stage": job.stage, **datum_view(record, with_log=True)}
