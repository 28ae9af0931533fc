"""Stage datums as Ray tasks (issue 14, "Stages on Ray"): the same jobs as test_jobs.py, with
``HEADRACE_RAY_ADDRESS`` set so each datum attempt is a Ray task on the session's two-node
cluster (``ray_cluster``). Pachyderm semantics kept: ``datum_tries`` counts attempts (Pachyderm's
``datumTries``, docs "Pipeline Specification"), ``datum_timeout`` fails a late attempt.
"""

from __future__ import annotations

from typing import Any

import pytest

from headrace.stages.catalog import FAILURE, SUCCESS
from headrace.stages.jobs import run_job
from headrace.stages.raypool import RAY_ADDRESS_ENV

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def on_ray(ray_cluster: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RAY_ADDRESS_ENV, ray_cluster.address)


UPPER = """
import os
import ray
def run(inputs, output):
    for f in sorted(inputs["data"].rglob("*")):
        if f.is_file():
            (output / f.name).write_text(f.read_text().upper())
            print("pid", os.getpid(), "ray task", ray.get_runtime_context().get_task_id())
"""


def _data(kit: Any, files: dict[str, bytes]) -> None:
    kit.store.create_repo("data")
    kit.store.put_files("data@master", list(files.items()))


def test_every_datum_runs_as_a_ray_task_and_commits(kit):
    _data(kit, {f"/f{i}.txt": f"hello {i}".encode() for i in range(6)})
    mod = kit.module(UPPER)
    kit.stage(
        {
            "name": "up",
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"python": f"{mod}:run"},
            "parallelism": 2,
        }
    )
    job = run_job(kit.catalog, "up")
    assert job.state == SUCCESS, job.reason
    assert kit.files("up@master") == {f"/f{i}.txt": f"HELLO {i}".encode() for i in range(6)}
    rows = kit.catalog.datums(job.id, with_logs=True)
    assert all("pid" in r.log for r in rows)  # per-datum logs kept
    assert not [r.log for r in rows if "ray task None" in r.log or "ray task" not in r.log]


def test_a_datum_failing_twice_then_succeeding(kit, tmp_path):
    marker = tmp_path / "attempts"
    mod = kit.module(
        f"""
        from pathlib import Path
        def run(inputs, output):
            m = Path({str(marker)!r})
            n = int(m.read_text()) if m.exists() else 0
            m.write_text(str(n + 1))
            if n < 2:
                raise RuntimeError("flaky twice")
            (output / "ok.txt").write_text("ok")
        """
    )
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/"}},
            "transform": {"python": f"{mod}:run"},
            "datum_tries": 3,
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == SUCCESS, job.reason
    (row,) = kit.catalog.datums(job.id)
    assert row.attempts == 3
    assert kit.files("s@master") == {"/ok.txt": b"ok"}


def test_datum_timeout_stops_the_ray_task(kit):
    mod = kit.module(
        """
        import time
        def run(inputs, output):
            time.sleep(60)
        """
    )
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "data", "glob": "/"}},
            "transform": {"python": f"{mod}:run"},
            "datum_timeout": "1s",
            "datum_tries": 2,
        }
    )
    job = run_job(kit.catalog, "s")
    assert job.state == FAILURE
    (row,) = kit.catalog.datums(job.id)
    assert row.attempts == 2
    assert "datum_timeout" in row.error


WHERE = """
import ray
def run(inputs, output):
    for f in inputs["data"].rglob("*"):
        if f.is_file():
            (output / f.name).write_text(ray.get_runtime_context().get_node_id())
"""


def test_resource_requests_place_datums_on_a_node_that_holds_them(kit, ray_cluster):
    """A third node with more (logical) memory than the others: datums asking for more than the
    others have land on it only; asking for more than any node has fails at job start."""
    import ray

    def biggest() -> float:
        return max(n["Resources"].get("memory", 0) for n in ray.nodes() if n["Alive"])

    others = biggest()
    big = ray_cluster.add_node(num_cpus=1, memory=int(others + 4 * 2**30))
    ray_cluster.wait_for_nodes()
    try:
        (big_id,) = [
            n["NodeID"]
            for n in ray.nodes()
            if n["Alive"] and n["Resources"].get("memory", 0) > others
        ]
        _data(kit, {f"/f{i}.txt": b"x" for i in range(4)})
        mod = kit.module(WHERE)
        base = {
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"python": f"{mod}:run"},
            "parallelism": 2,
        }
        kit.stage({**base, "name": "big", "resource_requests": {"memory": int(others + 2**30)}})
        job = run_job(kit.catalog, "big")
        assert job.state == SUCCESS, job.reason
        assert set(kit.files("big@master").values()) == {big_id.encode()}

        kit.stage({**base, "name": "huge", "resource_limits": {"cpu": 1, "memory": "4096Gi"}})
        job = run_job(kit.catalog, "huge")
        assert job.state == FAILURE
        assert "resource_limits.memory asks for 4398.05 GB" in job.reason
        assert "no node of the Ray cluster has that much" in job.reason
    finally:
        ray_cluster.remove_node(big)


@pytest.mark.timeout(600)
def test_requirements_become_the_attempts_ray_runtime_env(kit, tmp_path):
    """Ray builds the pip runtime_env (a virtualenv over the cluster's environment) and runs the
    attempts in it: the wheel's module is importable there, not in this process."""
    import importlib.util
    import sys

    from tests.stages.wheels import make_wheel

    wheels = tmp_path / "wheels"
    make_wheel(wheels, "hr_ray_dep", "1.0", "VALUE = 'from the wheel on ray'\n")
    assert importlib.util.find_spec("hr_ray_dep") is None
    mod = kit.module(
        """
        import sys
        def run(inputs, output):
            import hr_ray_dep
            (output / "value.txt").write_text(hr_ray_dep.VALUE + "|" + sys.prefix)
        """
    )
    _data(kit, {"/a.txt": b"a"})
    kit.stage(
        {
            "name": "deps",
            "input": {"pfs": {"repo": "data", "glob": "/"}},
            "transform": {
                "python": f"{mod}:run",
                "requirements": ["--no-index", f"--find-links {wheels}", "hr_ray_dep==1.0"],
            },
        }
    )
    job = run_job(kit.catalog, "deps")
    assert job.state == SUCCESS, job.reason
    value, prefix = kit.files("deps@master")["/value.txt"].decode().split("|", 1)
    assert value == "from the wheel on ray"
    assert prefix != sys.prefix  # a worker of the runtime_env's virtualenv


def test_many_datums_in_batched_ray_tasks_one_failing(kit):
    """Sixty datums go to Ray several per task: each keeps its own result, log and attempts;
    the one that fails fails alone."""
    mod = kit.module(
        """
        def run(inputs, output):
            for f in inputs["data"].rglob("*.txt"):
                print("datum", f.name)
                if f.name == "f13.txt":
                    raise ValueError("f13 is bad")
                (output / f.name).write_text(f.read_text() + "!")
        """
    )
    _data(kit, {f"/f{i}.txt": f"{i}".encode() for i in range(60)})
    kit.stage(
        {
            "name": "many",
            "input": {"pfs": {"repo": "data", "glob": "/*"}},
            "transform": {"python": f"{mod}:run"},
            "parallelism": 2,
            "datum_tries": 2,
        }
    )
    job = run_job(kit.catalog, "many")
    assert job.state == FAILURE
    assert (job.processed, job.failed) == (59, 1)
    rows = {r.datum_id: r for r in kit.catalog.datums(job.id, with_logs=True)}
    bad = [r for r in rows.values() if r.error]
    assert len(bad) == 1 and "f13 is bad" in bad[0].error and bad[0].attempts == 2
    assert all(r.log.count("datum f") == 1 for r in rows.values() if not r.error)
