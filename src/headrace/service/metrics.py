"""``GET /metrics``: the service's numbers in the Prometheus text exposition format (0.0.4).

``headrace_pipeline_runs{state}``, ``headrace_pipeline_elements_total`` (elements read by the
steps of every recorded run), ``headrace_stage_jobs{state}`` and
``headrace_datums_total{state}`` (processed, skipped, failed, recovered over every stage job).
"""

from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from headrace.service.runs import RUN_STATES, RunHistory
from headrace.stages.catalog import JOB_STATES, Catalog

__all__ = ["render_metrics", "router"]

router = APIRouter(tags=["metrics"])


def _family(name: str, kind: str, doc: str, samples: list[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {doc}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels} {value:g}" for labels, value in samples]
    return lines


def render_metrics(runs: RunHistory, catalog: Catalog) -> str:
    """The exposition text."""
    run_counts = runs.counts()
    with catalog.meta.read() as conn:
        job_counts: dict[str, int] = dict(
            conn.execute(sa.text("SELECT state, count(*) FROM jobs GROUP BY state")).all()
        )
        sums = conn.execute(
            sa.text(
                "SELECT coalesce(sum(processed), 0), coalesce(sum(skipped), 0), "
                "coalesce(sum(failed), 0), coalesce(sum(recovered), 0) FROM jobs"
            )
        ).one()
    lines = _family(
        "headrace_pipeline_runs", "gauge", "Pipeline runs recorded, by state.",
        [(f'{{state="{s}"}}', run_counts.get(s, 0)) for s in RUN_STATES],
    )  # fmt: skip
    lines += _family(
        "headrace_pipeline_elements_total", "counter",
        "Elements read by the steps of every recorded pipeline run.",
        [("", runs.elements_total())],
    )  # fmt: skip
    lines += _family(
        "headrace_stage_jobs", "gauge", "Stage jobs, by state.",
        [(f'{{state="{s.lower()}"}}', job_counts.get(s, 0)) for s in JOB_STATES],
    )  # fmt: skip
    lines += _family(
        "headrace_datums_total", "counter", "Datums of every stage job, by outcome.",
        [(f'{{state="{s}"}}', v) for s, v in zip(("processed", "skipped", "failed", "recovered"),
                                               sums)],
    )  # fmt: skip
    return "\n".join(lines) + "\n"


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses={200: {"content": {"text/plain": {}}}},
)
def metrics(request: Request) -> PlainTextResponse:
    text = render_metrics(request.app.state.runs, request.app.state.catalog)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")
