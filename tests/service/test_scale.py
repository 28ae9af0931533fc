"""The API with 10k+ rows: a stage job's datums and the pipeline runs page in the database
(sorted and cut there), so any page answers alike."""

from __future__ import annotations

import pytest
from tests.service.conftest import MANY

pytestmark = pytest.mark.slow


def test_datums_page_through_10k_rows_failed_first(big_service):
    job = big_service.ids["failed_job"]
    first = big_service.get(f"/api/v1/stage-jobs/{job}/datums?limit=100")
    total = first["total"]
    assert total >= MANY
    # failed first: the 105 bulk failures and the seeded one, then the slowest successes
    failed = len(range(0, MANY, 100)) + 1
    states = [d["state"] for d in first["datums"]]
    assert states == ["failed"] * 100
    second = big_service.get(f"/api/v1/stage-jobs/{job}/datums?offset=100&limit=100")
    assert [d["state"] for d in second["datums"]].count("failed") == failed - 100
    after = [d for d in second["datums"] if d["state"] != "failed"]
    assert [d["seconds"] for d in after] == sorted((d["seconds"] for d in after), reverse=True)
    last = big_service.get(f"/api/v1/stage-jobs/{job}/datums?offset={total - 30}&limit=100")
    assert len(last["datums"]) == 30 and last["total"] == total
    # every datum is on exactly one page
    seen: set[str] = set()
    for offset in range(0, total, 1000):
        page = big_service.get(f"/api/v1/stage-jobs/{job}/datums?offset={offset}&limit=1000")
        seen.update(d["datum_id"] for d in page["datums"])
    assert len(seen) == total


def test_runs_and_jobs_page_through_10k_rows(big_service):
    runs = big_service.get("/api/v1/runs?limit=100")
    assert runs["total"] == MANY and len(runs["runs"]) == 100
    assert runs["runs"][0]["id"] == f"run-bulk-{MANY - 1:06d}"  # newest first
    deep = big_service.get(f"/api/v1/runs?limit=100&offset={MANY - 50}")
    assert [r["id"] for r in deep["runs"]] == [f"run-bulk-{i:06d}" for i in range(49, -1, -1)]
    jobs = big_service.get(f"/api/v1/jobs?kind=pipeline_run&limit=100&offset={MANY - 100}")
    assert len(jobs["jobs"]) == 100 and not jobs["more"]
    assert jobs["jobs"][-1]["id"] == "run-bulk-000000"
    both = big_service.get("/api/v1/jobs?limit=100&offset=200")
    assert len(both["jobs"]) == 100 and both["more"]
