"""The REST API of ``headrace serve`` against a real server process.

Endpoints follow Pachyderm's API concepts (repos, branches, commits, files, diff, provenance,
jobs and datums: docs.pachyderm.com "Concepts", pfs.proto / pps.proto ListDatum with failed
datums first as in the console's datum view) and Beam's job states.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from headrace.cli.main import app

pytestmark = pytest.mark.slow


def test_repos_branches_commits(service):
    repos = service.get("/api/v1/repos")
    assert [r["name"] for r in repos] == ["data", "up"]
    assert service.get("/api/v1/repos/data/branches") == [
        {"repo": "data", "name": "master", "head": service.ids["head"]}
    ]
    commits = service.get("/api/v1/repos/data/commits?branch=master")
    assert commits[0]["id"] == service.ids["head"]
    assert service.ids["first"] in [c["id"] for c in commits]
    one = service.get(f"/api/v1/repos/data/commits/{service.ids['head']}")
    assert one["file_count"] == 4 and one["state"] == "FINISHED"
    assert service.get("/api/v1/repos/data/commits/master^1")["parent"] is not None


def test_files_list_paging_and_download(service):
    page = service.get("/api/v1/repos/data/commits/master/files?path=/")
    assert [(f["path"], f["type"]) for f in page["files"]] == [
        ("/a.txt", "file"), ("/b.txt", "file"), ("/c.txt", "file"), ("/docs", "dir"),
    ]  # fmt: skip
    first = service.get("/api/v1/repos/data/commits/master/files?path=/&recursive=true&limit=2")
    assert [f["path"] for f in first["files"]] == ["/a.txt", "/b.txt"]
    rest = service.get(
        "/api/v1/repos/data/commits/master/files?path=/&recursive=true&start_after="
        + first["next_start_after"]
    )
    assert [f["path"] for f in rest["files"]] == ["/c.txt", "/docs/readme.md"]
    code, headers, body = service.request(
        "GET", "/api/v1/repos/data/commits/master/file?path=/docs/readme.md"
    )
    assert code == 200 and body == b"# read me\n"
    assert headers["content-disposition"] == "attachment; filename*=UTF-8''readme.md"
    assert headers["x-content-type-options"] == "nosniff"
    code, _, body = service.request(
        "GET", "/api/v1/repos/data/commits/master/file?path=/a.txt&max_bytes=3"
    )
    assert (code, body) == (200, b"alp")


def test_diff_between_commits(service):
    diff = service.get(f"/api/v1/repos/data/commits/master/diff?old={service.ids['first']}")
    assert sorted((d["path"], d["kind"]) for d in diff) == [
        ("/c.txt", "added"), ("/docs/readme.md", "added"),
    ]  # fmt: skip


def test_provenance_of_a_stage_output(service):
    prov = service.get(f"/api/v1/repos/up/commits/{service.ids['up_head']}/provenance")
    assert prov["commit"]["id"] == service.ids["up_head"]
    assert [c["repo"] for c in prov["provenance"]] == ["data"]
    assert any(j["stage"] == "up" for j in prov["jobs"])
    back = service.get(f"/api/v1/repos/data/commits/{service.ids['first']}/provenance")
    assert service.ids["up_head"] in [c["id"] for c in back["subvenance"]]
    # the drawing: one edge from the data commit to the output, made by the stage's job
    (source,) = prov["provenance"]
    assert prov["edges"] == [{"from": source["id"], "to": service.ids["up_head"]}]
    job = prov["made_by"][service.ids["up_head"]]
    assert job["stage"] == "up" and job["state"] == "SUCCESS"
    assert source["id"] not in prov["made_by"]  # a user's commit: an origin


def test_parquet_preview_as_rows(service, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tests.service.conftest import headrace_cli

    when = [None, *range(1, 30)]
    pq.write_table(
        pa.table({"n": list(range(30)), "raw": [b"x"] * 30, "maybe": when}), tmp_path / "t.parquet"
    )
    headrace_cli(service.home, "repo", "create", "pqapi")
    headrace_cli(
        service.home, "file", "put", "pqapi@master:/t.parquet", str(tmp_path / "t.parquet")
    )
    t = service.get("/api/v1/repos/pqapi/commits/master/table?path=/t.parquet&limit=5")
    assert t["columns"] == [
        {"name": "n", "type": "int64"}, {"name": "raw", "type": "binary"},
        {"name": "maybe", "type": "int64"},
    ]  # fmt: skip
    assert t["total_rows"] == 30 and len(t["rows"]) == 5
    assert t["rows"][0] == [0, "b'x'", None] and t["rows"][4] == [4, "b'x'", 4]
    code, _, body = service.request("GET", "/api/v1/repos/data/commits/master/table?path=/a.txt")
    assert code == 400 and b"/a.txt is not a Parquet file" in body
    code, _, body = service.request("GET", "/api/v1/repos/data/commits/master/table?path=/docs")
    assert code == 400 and b"folder" in body


def test_stages_jobs_datums_failed_first_and_logs(service):
    stages = service.get("/api/v1/stages")
    assert [s["name"] for s in stages] == ["up"]
    assert stages[0]["inputs"] == [{"name": "data", "repo": "data"}]
    assert stages[0]["last_job"]["state"] == "FAILURE"
    jobs = service.get("/api/v1/stage-jobs?stage=up")["jobs"]
    assert [j["state"] for j in jobs] == ["FAILURE", "SUCCESS"]
    only = service.get("/api/v1/stage-jobs?state=success")["jobs"]
    assert [j["state"] for j in only] == ["SUCCESS"]
    page = service.get("/api/v1/stage-jobs?limit=1")
    assert len(page["jobs"]) == 1 and page["next_before"] == jobs[0]["id"]
    older = service.get(f"/api/v1/stage-jobs?limit=1&before={page['next_before']}")["jobs"]
    assert [j["id"] for j in older] == [jobs[1]["id"]]

    job_id = service.ids["failed_job"]
    assert service.get(f"/api/v1/stage-jobs/{job_id[:8]}")["id"] == job_id
    datums = service.get(f"/api/v1/stage-jobs/{job_id}/datums")
    assert datums["total"] == 4
    assert datums["datums"][0]["state"] == "failed"
    assert datums["datums"][0]["inputs"] == [{"name": "data", "path": "/c.txt"}]
    second = service.get(f"/api/v1/stage-jobs/{job_id}/datums?offset=1&limit=2")["datums"]
    assert len(second) == 2 and all(d["state"] != "failed" for d in second)
    failed = datums["datums"][0]
    one = service.get(f"/api/v1/stage-jobs/{job_id}/datums/{failed['datum_id']}")
    assert "ValueError: cannot process c.txt" in one["error"]
    assert "Traceback (most recent call last)" in one["error"] and "log" in one
    assert one["attempts"] == 3


def test_combined_job_list_has_stage_jobs(service):
    listing = service.get("/api/v1/jobs?kind=stage_job")
    assert {j["kind"] for j in listing["jobs"]} == {"stage_job"}
    assert len(listing["jobs"]) == 2


def test_metrics_in_prometheus_text(service):
    code, headers, body = service.request("GET", "/metrics")
    assert code == 200 and headers["content-type"].startswith("text/plain")
    text = body.decode()
    assert "# TYPE headrace_stage_jobs gauge" in text
    assert 'headrace_stage_jobs{state="failure"} 1' in text
    assert 'headrace_stage_jobs{state="success"} 1' in text
    assert 'headrace_datums_total{state="failed"} 1' in text


# -- security --------------------------------------------------------------------------------


def test_requests_without_the_token_are_refused(service):
    for path in ("/api/v1/repos", "/metrics", "/ui/", "/api/v1/openapi.json"):
        code, headers, body = service.request("GET", path, token=False)
        assert code == 401, path
        assert headers["www-authenticate"] == "Bearer"
        assert "Authorization: Bearer" in json.loads(body)["detail"]
    code, _, _ = service.request("GET", "/api/v1/repos", token="wrong")
    assert code == 401
    code, _, _ = service.request("POST", "/api/v1/runs/events", {"events": []}, token=False)
    assert code == 401


def test_browser_token_in_query_sets_a_cookie(service):
    code, headers, _ = service.request("GET", f"/ui/?token={service.token}", token=False)
    assert code == 200
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert "headrace_token=" in headers["set-cookie"] and "HttpOnly" in headers["set-cookie"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/repos/data/commits/master/file?path=/../../etc/passwd",
        "/api/v1/repos/data/commits/master/file?path=/docs/./readme.md",
        "/api/v1/repos/data/commits/master/files?path=/docs/..",
        "/api/v1/repos/data/commits/master/file?path=..%2Fmetadata.db",
        "/api/v1/repos/data/commits/master/file?path=/a%5C..%5Cb",
        "/api/v1/repos/data/commits/master/diff?path=/x/../..",
    ],
)
def test_path_traversal_is_refused(service, path):
    code, _, body = service.request("GET", path)
    assert code == 400, body
    detail = json.loads(body)["detail"]
    assert "path" in detail


def test_static_files_do_not_escape_their_folder(service):
    code, _, _ = service.request("GET", "/ui/static/..%2F..%2Fservice%2Fapp.py")
    assert code == 404


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/api/v1/stage-jobs?state=bogus", 400, ["'bogus'", "success"]),
        ("/api/v1/stage-jobs?limit=0", 422, ["limit"]),
        ("/api/v1/runs?state=nope", 400, ["'NOPE'", "RUNNING"]),
        ("/api/v1/repos/Not%20A%20Name/branches", 400, ["Not A Name"]),
        ("/api/v1/repos/nosuch/commits", 404, ["nosuch"]),
        ("/api/v1/repos/data/commits/nosuchbranch", 404, ["nosuchbranch"]),
        ("/api/v1/repos/data/commits/master/file?path=/missing.txt", 404, ["missing.txt"]),
        ("/api/v1/repos/data/commits/master/file?path=/docs", 400, ["folder"]),
        ("/api/v1/stage-jobs/ffffffffffff", 404, ["ffffffffffff"]),
        ("/api/v1/stages/nosuch", 404, ["nosuch"]),
        ("/api/v1/jobs?kind=other", 400, ["pipeline_run"]),
    ],
)
def test_bad_requests_answer_4xx_naming_the_problem(service, path, status, words):
    code, _, body = service.request("GET", path)
    assert code == status, body
    text = body.decode()
    for word in words:
        assert word in text, text


def test_a_bad_event_batch_is_refused_whole(service):
    bad = {"events": [
        {"type": "RunSubmitted", "run_id": "r-bad", "at": 1.0, "streaming": False, "stages": []},
        {"type": "Exploded", "run_id": "r-bad", "at": 2.0},
    ]}  # fmt: skip
    code, _, body = service.request("POST", "/api/v1/runs/events", bad)
    assert code == 400 and "Exploded" in json.loads(body)["detail"]
    assert service.request("GET", "/api/v1/runs/r-bad")[0] == 404
    code, _, body = service.request("POST", "/api/v1/runs/events", {"nope": 1})
    assert code == 422 and "events" in body.decode()


def test_serve_refuses_a_public_address_without_a_token(tmp_path: Path):
    result = CliRunner().invoke(
        app, ["serve", "--host", "0.0.0.0", "--home", str(tmp_path)], env={"HEADRACE_TOKEN": ""}
    )
    assert result.exit_code == 2
    assert "not loopback" in result.stderr and "--token" in result.stderr


def test_serve_runs_the_stage_daemon_by_default(tmp_path):
    """``headrace serve`` runs the whole platform: a commit to a stage's input starts a job
    (the daemon, as ``headrace daemon`` would), visible through the API."""
    from tests.service.conftest import (
        headrace_cli,
        seed_store,
        start_service,
        stop_service,
        wait_for,
    )

    home = tmp_path / "home"
    seed_store(home, tmp_path / "project")
    service = start_service(home)
    try:
        before = {j["id"] for j in service.get("/api/v1/stage-jobs?stage=up")["jobs"]}
        (tmp_path / "d.txt").write_text("delta")
        headrace_cli(home, "file", "put", "data@master:/d.txt", str(tmp_path / "d.txt"))

        def new_job_done():
            jobs = service.get("/api/v1/stage-jobs?stage=up")["jobs"]
            fresh = [j for j in jobs if j["id"] not in before and not j["running"]]
            return fresh[0] if fresh else None

        job = wait_for(new_job_done, timeout=120, what="the daemon to run a job")
        assert job["state"] == "FAILURE"  # c.txt still fails; the job ran all the same
        assert any(i["repo"] == "data" for i in job["inputs"])
    finally:
        stop_service(service)
    # SIGTERM stopped the server gracefully, and it stopped its daemon, which let go of its lock
    assert service.process.returncode in (0, -15)
    import sqlite3

    with sqlite3.connect(home / "metadata.db") as db:
        assert db.execute("SELECT count(*) FROM stage_locks").fetchone() == (0,)


def test_posted_events_make_a_run_listed_first_while_it_runs(service):
    """Events posted as ``headrace run --service`` posts them: the run is RUNNING, comes first
    in the combined list (running first, as Dataflow's job list), and filters by running."""
    events = [
        {"type": "RunSubmitted", "run_id": "r-live", "at": 1.0, "streaming": False,
         "stages": ["Read", "Write"], "depends_on": [[], [0]]},
        {"type": "RunStarted", "run_id": "r-live", "at": 1.5},
        {"type": "StageStarted", "run_id": "r-live", "at": 2.0, "stage": 0, "name": "Read",
         "tasks": 2},
        {"type": "StageUpdated", "run_id": "r-live", "at": 2.5, "stage": 0, "name": "Read",
         "elements_in": 7, "elements_out": 7},
        {"type": "TaskFinished", "run_id": "r-live", "at": 3.0, "stage": 0, "name": "Read",
         "elements_in": 7, "elements_out": 7, "seconds": 0.5,
         "metrics": [["Read", "io", "lines", 7]]},
    ]  # fmt: skip
    reply = service.post("/api/v1/runs/events", {"source": "test", "events": events})
    assert reply == {"recorded": 5, "cancel": [], "drain": []}
    run = service.get("/api/v1/runs/r-live")
    assert run["state"] == "RUNNING" and run["elements"] == 7
    read, write = run["steps"]
    assert (read["state"], read["tasks_done"], read["tasks"]) == ("running", 1, 2)
    assert read["counters"] == {"io/lines": 7} and write["depends_on"] == [0]
    jobs = service.get("/api/v1/jobs")["jobs"]
    assert jobs[0]["id"] == "r-live"  # running first, although it is the oldest
    assert [j["id"] for j in service.get("/api/v1/jobs?running=true")["jobs"]] == ["r-live"]
    assert "r-live" not in [j["id"] for j in service.get("/api/v1/jobs?running=false")["jobs"]]

    service.post("/api/v1/runs/r-live/cancel")
    assert service.post("/api/v1/runs/events", {"events": []}) == {
        "recorded": 0,
        "cancel": [],
        "drain": [],
    }
    more = [{"type": "LogRecord", "run_id": "r-live", "at": 4.0, "step": "Read", "level": 20,
             "logger": "u", "message": "hello"}]  # fmt: skip
    assert service.post("/api/v1/runs/events", {"events": more})["cancel"] == ["r-live"]
    end = [{"type": "RunFinished", "run_id": "r-live", "at": 5.0, "state": "CANCELLED",
            "error": None}]  # fmt: skip
    assert service.post("/api/v1/runs/events", {"events": end})["cancel"] == []
    assert service.get("/api/v1/runs/r-live")["state"] == "CANCELLED"
    assert [e["message"] for e in service.get("/api/v1/runs/r-live/events?kind=log")] == ["hello"]


def test_serve_on_a_port_in_use_says_so(tmp_path: Path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            app, ["serve", "--no-daemon", "--port", str(port), "--home", str(tmp_path)]
        )
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr


def test_stopping_an_ended_stage_job_changes_nothing(service):
    job_id = service.ids["failed_job"]
    stopped = service.post(f"/api/v1/stage-jobs/{job_id}/stop")
    assert stopped["state"] == "FAILURE" and stopped["stop_requested"] is False
    assert service.request("POST", "/api/v1/stage-jobs/0000000000/stop")[0] == 404
