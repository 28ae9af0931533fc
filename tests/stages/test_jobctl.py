"""Job control and views as plain functions (headrace.stages.jobctl, headrace.stages.views):
what ``job stop``, ``datum restart``, ``job rerun``, ``stage run`` and the ``--json`` views
do, called without the CLI, returning data.

``rerun_job`` follows ``pachctl rerun job`` (Pachyderm's ``RerunPipeline``: a new job over the
same input commits, reusing unchanged datums unless reprocessing).
"""

from __future__ import annotations

import json
import socket

import pytest

from headrace.stages.jobctl import (
    JobControlError,
    rerun_job,
    restart_job,
    run_stage_now,
    stop_job,
)
from headrace.stages.jobs import create_job
from headrace.stages.jobstate import JobState
from headrace.stages.views import (
    datum_view,
    job_view,
    jobs_of_commits,
    preview_datums,
    preview_view,
    stage_view,
    trace_of,
    trace_view,
)

FLAKY = """
import os
def run(inputs, output):
    for f in sorted(inputs["data"].rglob("*.txt")):
        text = f.read_text()
        if text == "bad" and not os.path.exists({marker!r}):
            raise ValueError("cannot handle " + text)
        (output / (f.stem + ".out")).write_text(text.upper())
"""


def _setup(kit, tmp_path, files=None):
    marker = tmp_path / "fixed"
    mod = kit.module(FLAKY.format(marker=str(marker)))
    kit.store.create_repo("data")
    kit.store.put_files("data@master", list((files or {"/a.txt": b"a", "/b.txt": b"b"}).items()))
    stage = kit.stage({
        "name": "up",
        "input": {"pfs": {"repo": "data", "glob": "/*"}},
        "transform": {"python": f"{mod}:run"},
    })  # fmt: skip
    return stage, marker


def test_stop_asks_a_live_job_and_kills_an_orphaned_one(kit, tmp_path):
    stage, _ = _setup(kit, tmp_path)
    live = create_job(kit.catalog, stage)  # owned by this (living) process
    result = stop_job(kit.catalog, live[:8])
    assert result.how == "asked"
    assert result.job.stop_requested and result.job.state == JobState.CREATED
    orphan = create_job(kit.catalog, stage)
    kit.catalog.set_job(orphan, owner=f"{socket.gethostname()}:999999999")
    result = stop_job(kit.catalog, orphan)
    assert (result.how, result.job.state) == ("killed", JobState.KILLED)
    assert "while no process ran it" in result.job.reason
    with pytest.raises(JobControlError, match="already ended KILLED; nothing to stop"):
        stop_job(kit.catalog, orphan)


def test_restart_reruns_only_the_failed_datums(kit, tmp_path):
    stage, marker = _setup(kit, tmp_path, {"/a.txt": b"a", "/b.txt": b"bad"})
    first = run_stage_now(kit.catalog, "up")
    assert first.state == JobState.FAILURE
    with pytest.raises(JobControlError, match="is CREATED; only an ended job that read its inputs"):
        rerun_job(kit.catalog, create_job(kit.catalog, stage))  # a CREATED job
    marker.write_text("")
    warnings: list[str] = []
    new = restart_job(kit.catalog, first.id, warn=warnings.append)
    assert new.state == JobState.SUCCESS
    assert (new.inputs, new.trace) == (first.inputs, first.trace)
    assert (new.processed, new.skipped + new.recovered) == (1, 1)  # a.txt reused, not rerun
    assert warnings == []  # same spec version
    with pytest.raises(JobControlError, match="ended SUCCESS; only a job that ended FAILURE"):
        restart_job(kit.catalog, new.id)


def test_rerun_reuses_datums_unless_reprocess(kit, tmp_path):
    _setup(kit, tmp_path)
    first = run_stage_now(kit.catalog, "up")
    again = rerun_job(kit.catalog, first.id)
    assert (again.state, again.processed, again.skipped) == (JobState.SUCCESS, 0, 2)
    assert again.trace == first.trace
    every = rerun_job(kit.catalog, first.id, reprocess=True)
    assert (every.state, every.processed, every.skipped) == (JobState.SUCCESS, 2, 0)
    forced = run_stage_now(kit.catalog, "up", reprocess=True)
    assert forced.processed == 2


def test_views_are_plain_json_data(kit, tmp_path):
    stage, _ = _setup(kit, tmp_path)
    job = run_stage_now(kit.catalog, "up")
    view = job_view(job)
    assert json.loads(json.dumps(view)) == view
    assert view["state"] == "SUCCESS" and type(view["state"]) is str
    assert view["inputs"] == [{"name": "data", "repo": "data", "commit": job.inputs["data"]}]
    assert view["finished_at"].endswith("+00:00")
    assert stage_view(kit.catalog.get_stage("up"), job)["last_job"] == {
        "id": job.id,
        "state": "SUCCESS",
    }
    (record, _) = kit.catalog.datums(job.id, with_logs=True)
    assert set(datum_view(record, with_log=True)) >= {"datum_id", "state", "outputs", "log"}
    trace = trace_of(kit.catalog, job.trace)
    assert [c.id for c in trace.commits] == [job.inputs["data"], job.output_commit]
    assert [j["id"] for j in trace_view(trace)["jobs"]] == [job.id]
    assert set(jobs_of_commits(kit.catalog, [job.output_commit, job.inputs["data"]])) == {
        job.output_commit
    }
    assert jobs_of_commits(None, [job.output_commit]) == {}


def test_preview_compares_with_the_last_successful_job(kit, tmp_path):
    stage, _ = _setup(kit, tmp_path)
    run_stage_now(kit.catalog, "up")
    kit.store.put_files("data@master", [("/a.txt", b"changed"), ("/c.txt", b"c")])
    preview = preview_datums(kit.catalog, stage.spec)
    assert preview.counts == {"new": 1, "changed": 1, "unchanged": 1}
    view = preview_view(preview, "new")
    assert [d["inputs"][0]["path"] for d in view["datums"]] == ["/c.txt"]
    assert view["counts"]["removed"] == 0 and view["stage_exists"] is True
