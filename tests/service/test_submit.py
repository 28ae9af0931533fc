"""Submitting a pipeline graph to the service (Beam's Job API: beam_job_api.proto Prepare/Run,
here one POST of ``Pipeline.to_json()`` with its options), running it there, cancelling it;
a graph or options that do not validate get a 400 naming the problem, never a 500."""

from __future__ import annotations

import json
import time

import pytest
from tests.service.conftest import wait_for

from headrace import beam

pytestmark = pytest.mark.slow


def _graph(n: int, sleep: float = 0.0) -> dict:
    p = beam.Pipeline()

    def slow(x):
        time.sleep(sleep)
        return x

    _ = (
        p
        | "Numbers" >> beam.Create(list(range(n)))
        | "Slow" >> beam.Map(slow)
        | "Pair" >> beam.Map(lambda x: (x % 2, x))
        | "Sum" >> beam.CombinePerKey(sum)
    )
    return json.loads(p.to_json())


def test_a_submitted_graph_runs_in_the_service(service):
    answer = service.post("/api/v1/runs", {"pipeline": _graph(20)}, status=201)
    run_id = answer["id"]
    run = wait_for(
        lambda: (r := service.get(f"/api/v1/runs/{run_id}"))["state"] == "DONE" and r,
        what="the submitted run to finish",
    )
    assert run["source"].startswith("service:")
    assert max(s["elements_in"] for s in run["steps"]) == 20
    assert all(s["state"] == "done" for s in run["steps"])


def test_a_submitted_run_is_cancelled(service):
    graph = _graph(3000, sleep=0.02)
    run_id = service.post(
        "/api/v1/runs", {"pipeline": graph, "options": {"direct_bundle_size": 10}}, status=201
    )["id"]
    wait_for(lambda: service.get(f"/api/v1/runs/{run_id}")["state"] == "RUNNING", what="running")
    service.post(f"/api/v1/runs/{run_id}/cancel")
    wait_for(
        lambda: service.get(f"/api/v1/runs/{run_id}")["state"] == "CANCELLED",
        timeout=90,
        what="the submitted run to be cancelled",
    )


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"pipeline": "not json"}, ["pipeline", "not a pipeline graph"]),
        ({"pipeline": {"transforms": 3}}, ["pipeline"]),
        ({"pipeline": "GRAPH", "options": {"direct_num_workers": 2}}, ["direct_num_workers"]),
    ],
)
def test_a_submission_that_does_not_validate_is_a_400_naming_it(service, body, words):
    if body["pipeline"] == "GRAPH":
        body = {**body, "pipeline": _graph(3)}
    code, _, data = service.request("POST", "/api/v1/runs", body)
    assert code == 400, data
    detail = json.loads(data)["detail"]
    for word in words:
        assert word in detail, detail


def test_a_service_without_a_token_refuses_submissions(tmp_path):
    from tests.service.conftest import start_service, stop_service

    s = start_service(tmp_path / "home", None, "--no-daemon")
    try:
        code, _, data = s.request("POST", "/api/v1/runs", {"pipeline": _graph(3)})
        assert code == 403 and "--token" in json.loads(data)["detail"]
    finally:
        stop_service(s)
