"""The daemon: DAGs carried through by one trace, unrunnable jobs, cron ticks, crash recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

import pytest

from headrace.stages.catalog import FAILURE, SUCCESS, UNRUNNABLE
from headrace.stages.daemon import Daemon, stage_order, wait_for_arrival

COPY = """
def run(inputs, output):
    (name,) = inputs
    for f in inputs[name].rglob("*"):
        if f.is_file():
            rel = f.relative_to(inputs[name])
            (output / rel).parent.mkdir(parents=True, exist_ok=True)
            (output / rel).write_bytes(f.read_bytes() + b"+")
"""


def _dag(kit):
    mod = kit.module(COPY)
    kit.store.create_repo("raw")
    kit.stage(
        {
            "name": "a",
            "input": {"pfs": {"repo": "raw", "glob": "/*"}},
            "transform": {"python": f"{mod}:run"},
        }
    )
    kit.stage(
        {
            "name": "b",
            "input": {"pfs": {"repo": "a", "glob": "/*"}},
            "transform": {"python": f"{mod}:run"},
        }
    )


def test_one_commit_travels_the_dag_with_one_trace(kit):
    _dag(kit)
    quiet = Daemon(kit.catalog, log=lambda _: None)
    assert [j.total for j in quiet.run_until_idle()] == [0, 0]  # no input commits: no datums
    first = kit.store.put_files("raw@master", [("/x.txt", b"x")])
    jobs = quiet.step()
    assert [(j.stage, j.state) for j in jobs] == [("a", SUCCESS), ("b", SUCCESS)]
    assert {j.trace for j in jobs} == {first.id}
    assert kit.files("b@master") == {"/x.txt": b"x++"}
    arrived = wait_for_arrival(kit.catalog, "b@master", timeout=1)
    assert arrived == kit.store.inspect_commit("b@master").id
    # provenance walks back to the raw commit through a's output commit
    chain = [c.repo for c in kit.store.provenance("b@master")]
    assert chain[:1] == ["a"] and "raw" in chain
    assert quiet.step() == []  # nothing changed: no new jobs

    second = kit.store.put_files("raw@master", [("/y.txt", b"y")])
    jobs = quiet.step()
    assert {j.trace for j in jobs} == {second.id}
    assert [(j.processed, j.skipped) for j in jobs] == [(1, 1), (1, 1)]
    assert kit.catalog.list_jobs(trace=second.id)[0].stage == "b"


def test_every_input_commit_gets_its_own_job_and_output_commit(kit):
    """Pachyderm: each commit to an input branch is one job with its own output commit
    (global IDs, docs 'Global Identifier'); two commits made before the daemon looks must
    not be folded into one job, or the first commit's output and lineage are lost."""
    _dag(kit)
    quiet = Daemon(kit.catalog, log=lambda _: None)
    first = kit.store.put_files("raw@master", [("/x.txt", b"x")])
    second = kit.store.put_files("raw@master", [("/y.txt", b"y")])
    jobs = quiet.run_until_idle()
    a_jobs = [j for j in jobs if j.stage == "a"]
    assert [j.inputs["raw"] for j in a_jobs] == [first.id, second.id]
    assert all(j.state == SUCCESS for j in jobs) and len(jobs) == 4
    out_first, out_second = (j.output_commit for j in a_jobs)
    assert out_first is not None and out_second is not None and out_first != out_second
    assert kit.files(f"a@{out_first}") == {"/x.txt": b"x+"}
    assert kit.files(f"a@{out_second}") == {"/x.txt": b"x+", "/y.txt": b"y+"}
    assert [c.id for c in kit.store.provenance(f"a@{out_first}")] == [first.id]
    assert quiet.run_until_idle() == []


def test_a_diamond_runs_one_downstream_job_per_upstream_commit(kit):
    """Pachyderm's global IDs: the commits one upstream commit causes share its ID, and a
    stage reading both the raw repo and a stage over it runs once per raw commit, over both
    new commits, never over the new raw commit with the old stage output."""
    _dag(kit)
    mod = kit.module(COPY.replace("(name,) = inputs", "name = 'raw'"))
    kit.stage(
        {
            "name": "both",
            "input": {
                "cross": [
                    {"pfs": {"repo": "raw", "glob": "/"}},
                    {"pfs": {"repo": "a", "glob": "/"}},
                ]
            },
            "transform": {"python": f"{mod}:run"},
        }
    )
    quiet = Daemon(kit.catalog, log=lambda _: None)
    for name in ("x", "y"):
        commit = kit.store.put_files("raw@master", [(f"/{name}.txt", b"1")])
        jobs = [j for j in quiet.run_until_idle() if j.stage == "both"]
        assert len(jobs) == 1 and jobs[0].trace == commit.id
        a_head = kit.store.inspect_commit("a@master").id
        assert jobs[0].inputs == {"raw": commit.id, "a": a_head}


def test_a_stage_over_an_empty_repo_runs_a_zero_datum_job(kit):
    """Pachyderm runs a job when a pipeline is created, even over an input repo with no
    commits: zero datums, an empty output commit; the first input commit then gets its own
    job (TestPipelineWithNoInputs-like behaviour, docs 'Pipeline lifecycle')."""
    _dag(kit)
    quiet = Daemon(kit.catalog, log=lambda _: None)
    jobs = quiet.run_until_idle()
    assert [(j.stage, j.state, j.total) for j in jobs] == [("a", SUCCESS, 0), ("b", SUCCESS, 0)]
    assert kit.files("a@master") == {} and kit.files("b@master") == {}
    assert quiet.run_until_idle() == []
    first = kit.store.put_files("raw@master", [("/x.txt", b"x")])
    jobs = quiet.run_until_idle()
    assert [(j.stage, j.inputs) for j in jobs][0] == ("a", {"raw": first.id})
    assert kit.files("b@master") == {"/x.txt": b"x++"}


def test_wait_for_arrival_times_out_without_a_daemon(kit):
    _dag(kit)
    kit.store.put_files("raw@master", [("/x.txt", b"x")])
    with pytest.raises(TimeoutError, match="is the daemon running"):
        wait_for_arrival(kit.catalog, "b@master", timeout=0.3)


def test_a_failed_job_makes_downstream_jobs_unrunnable(kit):
    bad = kit.module("def run(inputs, output):\n    raise RuntimeError('broken')\n")
    good = kit.module(COPY)
    kit.store.create_repo("raw")
    kit.stage(
        {
            "name": "a",
            "input": {"pfs": {"repo": "raw", "glob": "/"}},
            "transform": {"python": f"{bad}:run"},
            "datum_tries": 1,
        }
    )
    kit.stage(
        {
            "name": "b",
            "input": {"pfs": {"repo": "a", "glob": "/"}},
            "transform": {"python": f"{good}:run"},
        }
    )
    commit = kit.store.put_files("raw@master", [("/x.txt", b"x")])
    jobs = Daemon(kit.catalog, log=lambda _: None).step()
    # b's first job reads a with no commits (zero datums), as in Pachyderm
    assert [(j.stage, j.state, j.total) for j in jobs] == [("a", FAILURE, 1), ("b", SUCCESS, 0)]
    (unrunnable,) = [j for j in kit.catalog.list_jobs("b") if j.state == UNRUNNABLE]
    assert unrunnable.state == UNRUNNABLE and unrunnable.trace == commit.id
    assert jobs[0].id in unrunnable.reason
    with pytest.raises(RuntimeError, match="ended FAILURE"):
        wait_for_arrival(kit.catalog, "b@master", timeout=1)
    assert Daemon(kit.catalog, log=lambda _: None).step() == []  # not retried in a loop


def test_stage_order_refuses_cycles(kit):
    kit.store.create_repo("raw")
    kit.stage(
        {"name": "a", "input": {"pfs": {"repo": "b", "glob": "/"}}, "transform": {"python": "m:f"}}
    )
    kit.stage(
        {"name": "b", "input": {"pfs": {"repo": "a", "glob": "/"}}, "transform": {"python": "m:f"}}
    )
    with pytest.raises(ValueError, match="cycle"):
        stage_order(kit.catalog.list_stages())


def test_run_until_idle_ticks_cron_inputs_once(kit):
    """'daemon --once' brings every stage up to date once and stops: with '@every 1s' cron
    inputs whose jobs take longer than a second, each later pass would otherwise find a new
    tick due and never become idle (seen: 169 s and 110 ticks for two such stages)."""
    mod = kit.module("def run(inputs, output):\n    (output / 'ran').write_text('x')\n")
    for name in ("c1", "c2"):
        kit.stage(
            {
                "name": name,
                "input": {"cron": {"name": "tick", "spec": "@every 1s"}},
                "transform": {"python": f"{mod}:run"},
            }
        )
    clock = [time.time() + 5]  # every tick is due now, and a new one each time it is read

    def fake_time() -> float:
        clock[0] += 2
        return clock[0]

    jobs = Daemon(kit.catalog, log=lambda _: None, clock=fake_time).run_until_idle()
    assert sorted(j.stage for j in jobs) == ["c1", "c2"]
    assert all(len(kit.store.list_commits(f"{n}_tick")) == 1 for n in ("c1", "c2"))


def test_cron_input_ticks_and_runs_the_stage(kit):
    mod = kit.module(
        """
        def run(inputs, output):
            ticks = sorted(p.name for p in inputs["tick"].iterdir())
            (output / "ticks.txt").write_text(",".join(ticks))
        """
    )
    kit.stage(
        {
            "name": "c",
            "input": {"cron": {"name": "tick", "spec": "@every 1s", "overwrite": True}},
            "transform": {"python": f"{mod}:run"},
        }
    )
    daemon = Daemon(kit.catalog, log=lambda _: None)
    daemon.step()
    time.sleep(1.1)
    jobs = daemon.step()
    assert [j.state for j in jobs] == [SUCCESS]
    ticks = kit.store.list_files("c_tick@master")
    assert len(ticks) == 1 and ticks[0].path.endswith("Z")
    assert kit.store.get_file("c@master:/ticks.txt").decode() == ticks[0].path[1:]
    time.sleep(1.1)
    assert [j.state for j in daemon.step()] == [SUCCESS]
    assert len(kit.store.list_files("c_tick@master")) == 1  # overwrite keeps the latest only


SLOW_COPY = """
import os, time
def run(inputs, output):
    f = next(inputs["raw"].rglob("*.txt"))
    with open(os.environ["RUN_LOG"], "a") as log:
        log.write(f.name + "\\n")
    time.sleep(0.15)
    (output / f.name).write_text(f.read_text().upper())
"""


def test_a_killed_daemon_resumes_the_job_without_loss_or_duplication(kit, tmp_path, monkeypatch):
    run_log = tmp_path / "runs.log"
    monkeypatch.setenv("RUN_LOG", str(run_log))  # inherited by the forked workers
    mod = kit.module(SLOW_COPY)
    kit.store.create_repo("raw")
    kit.store.put_files("raw@master", [(f"/{i:02}.txt", f"v{i}".encode()) for i in range(16)])
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "raw", "glob": "/*"}},
            "transform": {"python": f"{mod}:run"},
        }
    )
    script = textwrap.dedent(
        f"""
        from headrace.store.store import Store
        from headrace.stages.catalog import Catalog
        from headrace.stages.daemon import Daemon
        store = Store.open({str(kit.root / "store")!r}, db={kit.db!r})
        Daemon(Catalog(store), log=lambda _: None).step()
        """
    )
    env = {**os.environ, "RUN_LOG": str(run_log)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = kit.catalog.list_jobs("s")
            if jobs and len(kit.catalog.datums(jobs[0].id, states=("success",))) >= 4:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the daemon did not get going")
        os.killpg(proc.pid, signal.SIGKILL)  # the daemon and its workers, mid-job
        proc.wait(10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    (interrupted,) = kit.catalog.list_jobs("s")
    assert interrupted.state == "RUNNING"
    done_before = {r.datum_id for r in kit.catalog.datums(interrupted.id, states=("success",))}
    runs_before = Counter(run_log.read_text().split())

    jobs = Daemon(kit.catalog, log=lambda _: None).step()
    assert [(j.id, j.state) for j in jobs] == [(interrupted.id, SUCCESS)]
    job = jobs[0]
    assert job.recovered == len(done_before) >= 4
    assert job.processed + job.recovered == 16
    assert kit.files("s@master") == {f"/{i:02}.txt": f"V{i}".encode() for i in range(16)}
    assert len(kit.store.list_commits("s")) == 1  # one output commit, finished once
    runs = Counter(run_log.read_text().split())
    recovered_names = {
        path.split("/")[-1]
        for r in kit.catalog.datums(job.id, states=("success",))
        if r.datum_id in done_before
        for _, path in r.input_paths()
    }
    assert recovered_names and all(runs[n] == runs_before[n] == 1 for n in recovered_names)
    assert Daemon(kit.catalog, log=lambda _: None).step() == []


def test_a_second_daemon_is_refused_while_the_first_lives(kit, monkeypatch):
    import headrace.stages.daemon as daemon_module
    from headrace.stages.daemon import DaemonBusy

    first = Daemon(kit.catalog, log=lambda _: None)
    first.step()
    monkeypatch.setattr(daemon_module, "_me", lambda: "otherhost:1")  # another machine
    second = Daemon(kit.catalog, log=lambda _: None)
    with pytest.raises(DaemonBusy, match="one daemon per store"):
        second.step()
    monkeypatch.undo()
    first.close()
    monkeypatch.setattr(daemon_module, "_me", lambda: "otherhost:1")
    second.step()  # the lock was released: the other daemon may run
    second.close()


STAMPED = """
import os, time
from pathlib import Path
def run(inputs, output):
    stage = os.environ["HEADRACE_STAGE"]
    stamps = Path(os.environ["STAMPS"])
    (stamps / f"{stage}.started").write_text("")
    partner = {"p": "q", "q": "p"}.get(stage)
    if partner is not None:  # p and q wait for each other: they finish only if they overlap
        deadline = time.monotonic() + 120
        while not (stamps / f"{partner}.started").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{partner} never started while {stage} ran")
            time.sleep(0.01)
    else:  # r reads p's output: p must have finished
        assert (stamps / "p.finished").exists(), "r ran before p finished"
    (output / "done").write_text("x")
    (stamps / f"{stage}.finished").write_text("")
"""


@pytest.mark.slow
def test_max_jobs_runs_independent_stages_at_once_and_dags_in_order(kit, tmp_path, monkeypatch):
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    monkeypatch.setenv("STAMPS", str(stamps))
    mod = kit.module(STAMPED)
    for repo in ("raw1", "raw2"):
        kit.store.create_repo(repo)
        kit.store.put_files(f"{repo}@master", [("/x.txt", b"x")])
    spec = {"transform": {"python": f"{mod}:run"}}
    kit.stage({"name": "p", "input": {"pfs": {"repo": "raw1", "glob": "/"}}, **spec})
    kit.stage({"name": "q", "input": {"pfs": {"repo": "raw2", "glob": "/"}}, **spec})
    kit.stage({"name": "r", "input": {"pfs": {"repo": "p", "glob": "/"}}, **spec})
    daemon = Daemon(kit.catalog, poll=0.05, log=lambda _: None, max_jobs=2)
    jobs = daemon.run_until_idle()
    daemon.close()
    # p and q only succeed if they ran at the same time; r only if it ran after p finished.
    assert sorted((j.stage, j.state) for j in jobs) == [
        ("p", SUCCESS),
        ("q", SUCCESS),
        ("r", SUCCESS),
    ]
    assert {j.trace for j in jobs if j.stage in "pr"} == {
        kit.store.inspect_commit("raw1@master").id
    }
    assert daemon.run_until_idle() == []


def test_a_job_process_that_dies_is_resumed(kit, tmp_path, monkeypatch):
    mod = kit.module(
        """
        import os, signal
        from pathlib import Path
        def run(inputs, output):
            marker = Path(os.environ["MARKER"])
            if not marker.exists():
                marker.write_text("")
                os.kill(os.getppid(), signal.SIGKILL)  # the job's own process dies
            (output / "ok").write_text("ok")
        """
    )
    monkeypatch.setenv("MARKER", str(tmp_path / "marker"))
    kit.store.create_repo("raw")
    kit.store.put_files("raw@master", [("/x.txt", b"x")])
    kit.stage(
        {
            "name": "s",
            "input": {"pfs": {"repo": "raw", "glob": "/"}},
            "transform": {"python": f"{mod}:run"},
        }
    )
    daemon = Daemon(kit.catalog, poll=0.05, log=lambda _: None, max_jobs=2)
    jobs = daemon.run_until_idle()
    daemon.close()
    assert [(j.stage, j.state) for j in jobs] == [("s", SUCCESS)]
    assert kit.files("s@master") == {"/ok": b"ok"}
    assert len(kit.catalog.list_jobs("s")) == 1  # the same job, resumed


def _noop() -> None:
    pass


def test_children_of_a_fork_server_see_the_callers_current_environment(kit, monkeypatch):
    """With threads about, job processes and datum workers come from a fork server, which
    keeps the environment it started with; a variable set since must still reach the
    transform (found when a test session's Ray threads made every later job fail)."""
    import multiprocessing
    import threading

    server = multiprocessing.get_context("forkserver")
    early = server.Process(target=_noop)
    early.start()  # the fork server now runs, with the environment of this moment
    early.join()
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()  # a thread about: children come from the fork server
    try:
        monkeypatch.setenv("HEADRACE_TEST_SETTING", "set after the server started")
        mod = kit.module(
            """
            import os
            def run(inputs, output):
                (output / "setting").write_text(os.environ["HEADRACE_TEST_SETTING"])
            """
        )
        kit.store.create_repo("raw")
        kit.store.put_files("raw@master", [("/x.txt", b"x")])
        kit.stage(
            {
                "name": "s",
                "input": {"pfs": {"repo": "raw", "glob": "/"}},
                "transform": {"python": f"{mod}:run"},
            }
        )
        daemon = Daemon(kit.catalog, poll=0.05, log=lambda _: None, max_jobs=2)
        jobs = daemon.run_until_idle()
        daemon.close()
    finally:
        stop.set()
        other.join()
    assert [(j.stage, j.state) for j in jobs] == [("s", SUCCESS)], [j.reason for j in jobs]
    assert kit.store.get_file("s@master:/setting") == b"set after the server started"
