"""``/api/v1/runs`` (pipeline runs: event intake, list, inspect, events and logs, cancel) and
``/api/v1/jobs``, the one list of pipeline runs and stage jobs together.

A process running pipelines posts its run events in batches to ``/api/v1/runs/events``; the
reply names the runs of the batch whose cancel was requested, which the process then cancels
(:mod:`headrace.service.client`). ``/runs/{id}/stream`` follows a run as server-sent events.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from headrace.service.errors import BadRequest, Forbidden
from headrace.service.runs import RUN_STATES, TERMINAL_STATES, RunHistory
from headrace.service.stages_api import parse_job_states
from headrace.service.submit import BadSubmission, Submitter, graph_text
from headrace.service.views import run_job_view, run_view, stage_job_view
from headrace.stages.catalog import Catalog

__all__ = ["EventBatch", "router"]

router = APIRouter(prefix="/api/v1", tags=["runs"])


class Submission(BaseModel):
    """A pipeline to run in the service: ``Pipeline.to_json()`` and its options."""

    pipeline: dict[str, Any] | str = Field(description="The graph, as Pipeline.to_json() makes it.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Pipeline options by name, e.g. {'runner': 'direct'}."
    )


class EventBatch(BaseModel):
    """Run events as :func:`headrace.service.wire.encode_event` makes them."""

    source: str = Field("", description="Who sends them, e.g. host:pid.")
    events: list[dict[str, Any]] = Field(description="Events, oldest first.")


def _runs(request: Request) -> RunHistory:
    runs: RunHistory = request.app.state.runs
    return runs


def _run_states(state: str | None) -> tuple[str, ...] | None:
    if state is None:
        return None
    wanted = tuple(s.strip().upper() for s in state.split(",") if s.strip())
    unknown = [s for s in wanted if s not in RUN_STATES]
    if unknown:
        raise BadRequest(
            f"state {', '.join(unknown)!r} is not a run state; use {', '.join(RUN_STATES)}"
        )
    return wanted


@router.post("/runs/events", summary="Record a batch of run events")
def post_events(request: Request, batch: EventBatch) -> dict[str, Any]:
    runs = _runs(request)
    cancel = runs.record(batch.events, batch.source)
    drain = runs.drains_requested(e["run_id"] for e in batch.events)
    return {"recorded": len(batch.events), "cancel": cancel, "drain": drain}


@router.post("/runs", status_code=201, summary="Submit a pipeline graph to run in the service")
def submit_run(request: Request, submission: Submission) -> dict[str, Any]:
    """Validates the graph and its options (400 naming the problem), starts it on the runner
    the options name and answers its run id. The graph's user code runs in the service's
    process, so a service started without a token refuses submissions (403)."""
    if not request.app.state.config.token:
        raise Forbidden(
            "this service has no token, so it does not run submitted code; start it with "
            "--token (or HEADRACE_TOKEN), or run the pipeline with 'headrace run --service'"
        )
    submitter: Submitter = request.app.state.submitter
    try:
        run_id = submitter.submit(graph_text(submission.pipeline), submission.options)
    except BadSubmission as e:
        raise BadRequest(str(e)) from None
    return {"id": run_id}


@router.get("/runs", summary="List pipeline runs, running first")
def list_runs(
    request: Request,
    state: Annotated[str | None, Query(description="Comma-separated run states.")] = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    runs, total = _runs(request).list_runs(_run_states(state), limit, offset)
    return {"total": total, "offset": offset, "runs": [run_job_view(r) for r in runs]}


@router.get("/runs/{run_id}", summary="A pipeline run with its steps")
def inspect_run(request: Request, run_id: str) -> dict[str, Any]:
    return run_view(_runs(request).get(run_id))


@router.get("/runs/{run_id}/events", summary="A run's state changes and log records")
def run_events(
    request: Request,
    run_id: str,
    kind: Annotated[str | None, Query(description="state or log")] = None,
    after: Annotated[int, Query(ge=0, description="Only events after this seq (follow).")] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> list[dict[str, Any]]:
    if kind is not None and kind not in ("state", "log"):
        raise BadRequest(f"kind {kind!r}: use state or log")
    return _runs(request).events(run_id, kind, after, limit)


STREAM_POLL_S = 0.5
KEEPALIVE_S = 15.0  # a comment line this often keeps proxies from closing a quiet stream


def _sse(event: str, data: Any, seq: int | None = None) -> str:
    head = f"event: {event}\n" + (f"id: {seq}\n" if seq is not None else "")
    return f"{head}data: {json.dumps(data)}\n\n"


@router.get(
    "/runs/{run_id}/stream",
    summary="Server-sent events: a run's state changes and log records as they happen",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_run(
    request: Request,
    run_id: str,
    after: Annotated[int, Query(ge=0, description="Start after this seq (resume).")] = 0,
    snapshots: Annotated[
        bool, Query(description="Also send the whole run (event: run) each time it changes.")
    ] = False,
) -> StreamingResponse:
    """Each event is ``event: state|log``, ``id: <seq>`` and its JSON as ``data``; with
    ``snapshots`` also ``event: run`` carrying the run as ``GET /runs/{id}`` answers it, first
    at once and then whenever its steps, counts or state moved (what a live page draws). When
    the run has ended and everything was sent, a last ``event: end`` carries the run's final
    state and the stream closes."""
    runs = _runs(request)
    await run_in_threadpool(runs.get, run_id)  # 404 before the stream starts

    async def events() -> AsyncIterator[str]:
        last, seen, quiet = after, None, 0.0
        while True:
            batch = await run_in_threadpool(runs.events, run_id, None, last, 500)
            for e in batch:
                last = e["seq"]
                yield _sse(e["kind"], e, last)
            if batch and len(batch) == 500:
                continue
            run = await run_in_threadpool(runs.get, run_id)
            if snapshots and run.updated_at != seen:
                seen = run.updated_at
                yield _sse("run", run_view(run))
                quiet = 0.0
            if run.state in TERMINAL_STATES:
                more = await run_in_threadpool(runs.events, run_id, None, last, 500)
                if not more:
                    yield _sse("end", {"state": run.state})
                    return
                continue
            if await request.is_disconnected():
                return
            if batch:
                quiet = 0.0
            elif quiet >= KEEPALIVE_S:
                yield ": keepalive\n\n"
                quiet = 0.0
            await asyncio.sleep(STREAM_POLL_S)
            quiet += STREAM_POLL_S

    return StreamingResponse(events(), media_type="text/event-stream")


@router.post("/runs/{run_id}/cancel", summary="Cancel a pipeline run")
def cancel_run(request: Request, run_id: str) -> dict[str, Any]:
    """The run's process cancels it when it next reports (within a second while it runs)."""
    record = _runs(request).request_cancel(run_id)
    submitter: Submitter = request.app.state.submitter
    submitter.cancel(run_id)  # a run submitted to this service: cancel it here
    return run_view(record)


@router.post("/runs/{run_id}/drain", summary="Drain a streaming pipeline run")
def drain_run(request: Request, run_id: str) -> dict[str, Any]:
    """The run stops reading its sources, every window fires with what was read, and the run
    ends DONE (Beam's drain). Its process drains it when it next reports (within a second);
    a batch run answers 409 (cancel it instead)."""
    record = _runs(request).request_drain(run_id)
    submitter: Submitter = request.app.state.submitter
    submitter.drain(run_id)  # a run submitted to this service: drain it here
    return run_view(record)


def _job_list(
    request: Request, kind: str | None, running: bool | None, offset: int, limit: int
) -> dict[str, Any]:
    if kind not in (None, "pipeline_run", "stage_job"):
        raise BadRequest(f"kind {kind!r}: use pipeline_run or stage_job")
    wanted = offset + limit
    items: list[dict[str, Any]] = []
    total = 0
    if kind in (None, "pipeline_run"):
        states = None
        if running is not None:
            states = [s for s in RUN_STATES if (s not in TERMINAL_STATES) == running]
        runs, n = _runs(request).list_runs(states, wanted, 0)
        items += [run_job_view(r) for r in runs]
        total += n
    if kind in (None, "stage_job"):
        catalog: Catalog = request.app.state.catalog
        states_ = None
        if running is not None:
            states_ = parse_job_states("created,running" if running else
                                       "success,failure,killed,unrunnable")  # fmt: skip
        jobs = catalog.list_jobs(states=states_, limit=wanted + 1)
        items += [stage_job_view(j) for j in jobs[:wanted]]
        total += len(jobs)
    items.sort(key=lambda j: (not j["running"], -j["created_at"]))
    return {"offset": offset, "jobs": items[offset:wanted], "more": total > wanted}


KindQuery = Annotated[str | None, Query(description="pipeline_run or stage_job (default: both)")]
RunningQuery = Annotated[bool | None, Query(description="Only running (or only ended) jobs.")]


@router.get("/jobs", summary="Pipeline runs and stage jobs in one list")
def list_jobs(
    request: Request,
    kind: KindQuery = None,
    running: RunningQuery = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Running jobs first, then the most recent; each entry has ``kind``, ``id``, ``name``,
    ``state``, ``running``, ``created_at``, ``seconds`` and ``elements``. ``more`` says whether
    jobs follow this page."""
    return _job_list(request, kind, running, offset, limit)


JOBS_STREAM_S = 1.0


@router.get(
    "/jobs/stream",
    summary="Server-sent events: the job list, sent again whenever it changes",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_jobs(
    request: Request,
    kind: KindQuery = None,
    running: RunningQuery = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> StreamingResponse:
    """``event: jobs`` with the page ``GET /jobs`` would answer for the same query, at once and
    then each time it differs (checked every second; a running job's duration moves, so
    while jobs run the page is sent every second). The stream stays open until the client
    leaves."""
    first = await run_in_threadpool(_job_list, request, kind, running, offset, limit)

    async def events() -> AsyncIterator[str]:
        page, sent, quiet = first, None, 0.0
        while True:
            text = json.dumps(page)
            if text != sent:
                sent = text
                yield f"event: jobs\ndata: {text}\n\n"
                quiet = 0.0
            elif quiet >= KEEPALIVE_S:
                yield ": keepalive\n\n"
                quiet = 0.0
            await asyncio.sleep(JOBS_STREAM_S)
            quiet += JOBS_STREAM_S
            if await request.is_disconnected():
                return
            page = await run_in_threadpool(_job_list, request, kind, running, offset, limit)

    return StreamingResponse(events(), media_type="text/event-stream")
