"""The stage commands of ``headrace`` (stage, job, datum, daemon) and the stage-aware
``commit wait`` / ``commit provenance``, through typer's CliRunner on a store in ``tmp_path``.

Transforms are small modules written next to the spec files (the spec file's folder is put on
``sys.path`` by the engine); jobs fork their workers from the test process. Commands that must
run while another one waits (a running job to stop, a daemon to signal) run as subprocesses.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from headrace.cli import stage_common as stage_commands
from headrace.cli.main import app
from headrace.stages.catalog import Catalog
from headrace.store.errors import CommitNotFound
from headrace.store.store import Store

runner = CliRunner()

UPPER = """
from pathlib import Path


def run(inputs, output):
    for name, folder in inputs.items():
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                text = f.read_text()
                if "boom" in text:
                    raise ValueError(f"cannot process {f.name}")
                print("did", f.name)
                (output / f.name).write_text(text.upper())
"""

SLOW = """
import time


def run(inputs, output):
    time.sleep(float((inputs["data"] / "a.txt").read_text() or 60))
    (output / "done.txt").write_text("done")
"""

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d ", re.MULTILINE)


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch):
    for name in ("HEADRACE_HOME", "HEADRACE_DB", "HEADRACE_OBJECTS"):
        monkeypatch.delenv(name, raising=False)


class Cli:
    """Runs ``headrace`` with the store options of one test."""

    def __init__(self, *options: str) -> None:
        self.options = list(options)

    def __call__(self, *args: str, code: int | None = 0):
        result = runner.invoke(app, [*args, *self.options])
        if code is not None:
            assert result.exit_code == code, (
                f"exit {result.exit_code} for {args}\nstdout: {result.stdout}\n"
                f"stderr: {result.stderr}\n{result.exception!r}"
            )
        assert "Traceback" not in result.stderr, result.stderr  # no Python traceback, ever
        return result

    def json(self, *args: str, code: int = 0):
        return json.loads(self(*args, "--json", code=code).stdout)


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def cli(home) -> Cli:
    return Cli("--home", str(home))


def write_spec(folder: Path, name: str, repo: str, module: str = "upper", **extra) -> Path:
    spec = {
        "name": name,
        "input": {"pfs": {"repo": repo, "glob": "/*"}},
        "transform": {"python": f"{module}:run"},
        **extra,
    }
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    return path


def write_module(folder: Path, name: str, code: str) -> None:
    shutil.rmtree(folder / "__pycache__", ignore_errors=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(code))


def put(cli: Cli, tmp_path: Path, target: str, text: str) -> str:
    """Write one file to the store; return the commit id."""
    local = tmp_path / "upload" / target.rsplit("/", 1)[-1]
    local.parent.mkdir(exist_ok=True)
    local.write_text(text)
    return cli.json("file", "put", target, str(local))["commit"]["id"]


@pytest.fixture
def project(cli, tmp_path) -> Path:
    """A repo ``data`` with /a.txt and /b.txt, the module ``upper`` and spec ``up.yaml``."""
    folder = tmp_path / "project"
    folder.mkdir()
    write_module(folder, "upper", UPPER)
    cli("repo", "create", "data")
    put(cli, tmp_path, "data@master:/a.txt", "a")
    put(cli, tmp_path, "data@master:/b.txt", "b")
    write_spec(folder, "up", "data")
    return folder


def head(cli: Cli, ref: str) -> str:
    return cli.json("commit", "inspect", ref)["id"]


# -- stage ---------------------------------------------------------------------------------------


def test_stage_create_list_inspect_run_update_delete(cli, project, tmp_path):
    created = cli("stage", "create", "-f", str(project / "up.yaml")).stdout
    assert created.startswith("Created stage up (version ")
    assert "headrace stage run up" in created
    assert [r["name"] for r in cli.json("repo", "list")] == ["data", "up"]

    listed = cli.json("stage", "list")
    assert len(listed) == 1
    stage = listed[0]
    assert stage["name"] == "up" and stage["state"] == "running"
    assert stage["spec_file"] == str((project / "up.yaml").resolve())
    assert stage["input_repos"] == [{"name": "data", "repo": "data", "branch": "master"}]
    assert stage["last_job"] is None and len(stage["version"]) == 32
    assert re.search(r"up\s+running\s+" + stage["version"][:8], cli("stage", "list").stdout)

    shown = cli("stage", "inspect", "up").stdout
    assert "python: upper:run" in shown and "glob: /*" in shown
    assert stage["version"] in shown and "up@master" in shown

    ran = cli("stage", "run", "up")
    assert re.match(r"Job [0-9a-f]{32} of stage up: SUCCESS in ", ran.stdout)
    assert "2 datum(s): 2 processed, 0 skipped, 0 failed, 0 recovered" in ran.stdout
    assert f"output commit up@{head(cli, 'up@master')}" in ran.stdout
    assert cli("file", "get", "up@master:/a.txt").stdout == "A"
    assert cli("file", "get", "up@master:/b.txt").stdout == "B"

    again = cli.json("stage", "run", "up")
    assert (again["state"], again["processed"], again["skipped"]) == ("SUCCESS", 0, 2)
    inspected = cli.json("stage", "inspect", "up")
    assert [j["id"] for j in inspected["jobs"]][0] == again["id"]
    assert inspected["last_job"] == {"id": again["id"], "state": "SUCCESS"}
    assert inspected["spec"]["transform"] == {"python": "upper:run"}

    # an update that keeps the version skips everything; a new salt reruns every datum
    write_spec(project, "up", "data", parallelism=2)
    same = cli("stage", "update", "-f", str(project / "up.yaml")).stdout
    assert f"version {stage['version'][:8]} unchanged" in same
    assert cli.json("stage", "run", "up")["skipped"] == 2
    write_spec(project, "up", "data", salt="2")
    changed = cli("stage", "update", "-f", str(project / "up.yaml")).stdout
    assert f"version {stage['version'][:8]} -> " in changed and "every datum again" in changed
    assert cli.json("stage", "run", "up")["processed"] == 2

    # stop / start
    assert "no longer runs it" in cli("stage", "stop", "up").stdout
    assert cli.json("stage", "list")[0]["state"] == "stopped"
    cli("stage", "start", "up")
    assert cli.json("stage", "list")[0]["state"] == "running"

    # delete with --keep-repo, recreate, delete with the repo
    assert "its repo up is kept" in cli("stage", "delete", "up", "--keep-repo").stdout
    assert cli.json("stage", "list") == [] and cli.json("job", "list") == []
    assert cli("file", "get", "up@master:/a.txt").stdout == "A"
    assert "(it existed already)" in cli("stage", "create", "-f", str(project / "up.yaml")).stdout
    assert "and repo(s) up" in cli("stage", "delete", "up").stdout
    assert [r["name"] for r in cli.json("repo", "list")] == ["data"]


def test_stage_run_with_input_commit_and_progress_line(cli, project, tmp_path, monkeypatch):
    cli("stage", "create", "-f", str(project / "up.yaml"))
    first = head(cli, "data@master")
    put(cli, tmp_path, "data@master:/c.txt", "c")
    old = cli.json("stage", "run", "up", "--input", f"data={first}")
    assert old["inputs"] == [{"name": "data", "repo": "data", "commit": first}]
    assert old["total"] == 2

    # on a terminal the progress line is redrawn from the job's callback, with no thread
    screen = Console(file=io.StringIO(), force_terminal=True, width=150)
    monkeypatch.setattr(stage_commands, "_error_console", lambda: screen)
    threads = []
    draw = stage_commands._progress_line

    def spy(job):
        threads.append(threading.active_count())
        return draw(job)

    monkeypatch.setattr(stage_commands, "_progress_line", spy)
    new = cli.json("stage", "run", "up")
    assert new["total"] == 3 and new["skipped"] == 2 and new["processed"] == 1
    assert threads and set(threads) == {threading.active_count()}
    assert "3/3 datums" in screen.file.getvalue()
    threads.clear()
    cli("stage", "run", "up", "--no-progress")
    assert threads == []


# -- job -----------------------------------------------------------------------------------------


def test_job_list_inspect_logs_wait(cli, project, tmp_path):
    cli("stage", "create", "-f", str(project / "up.yaml"))
    job = cli.json("stage", "run", "up")
    jobs = cli.json("job", "list")
    assert [j["id"] for j in jobs] == [job["id"]]
    assert cli.json("job", "list", "--stage", "up", "--state", "success") == jobs
    assert cli.json("job", "list", "--state", "FAILURE") == []
    row = cli("job", "list").stdout
    assert re.search(job["id"][:12] + r"\s+up\s+SUCCESS\s+2\s+0\s+0\s+0\s+2\s", row)
    assert job["trace"][:12] in row

    short = job["id"][:6]
    inspected = cli.json("job", "inspect", short)
    assert inspected == {**job, "heartbeat": inspected["heartbeat"]}
    assert inspected["inputs"][0]["commit"] == head(cli, "data@master")
    assert inspected["output_commit"] == head(cli, "up@master")
    text = cli("job", "inspect", short).stdout
    assert f"data: data@{head(cli, 'data@master')}" in text
    assert f"up@{job['output_commit']}" in text and "2 processed" in text

    logs = cli("job", "logs", short).stdout
    assert "(data:/a.txt): success, 1 attempt(s)" in logs and "did a.txt" in logs
    assert "did b.txt" in logs
    datum = cli.json("datum", "list", short)[0]["datum_id"]
    one = cli.json("job", "logs", short, "--datum", datum[:8])
    assert len(one) == 1 and one[0]["log"].startswith("did a.txt")
    assert "no failed datum" in cli("job", "logs", short, "--failed").stdout

    waited = cli("job", "wait", short, "--timeout", "5").stdout
    assert waited.startswith(f"Job {job['id']} of stage up: SUCCESS")
    assert cli.json("job", "wait", short)["state"] == "SUCCESS"


def _headrace(home: Path, *args: str, **kwargs) -> subprocess.Popen:
    code = "from headrace.cli.main import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args, "--home", str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _wait_for(predicate, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_job_stop_kills_a_running_job(cli, home, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    write_module(folder, "slow", SLOW)
    cli("repo", "create", "data")
    put(cli, tmp_path, "data@master:/a.txt", "60")
    cli("stage", "create", "-f", str(write_spec(folder, "slow", "data", module="slow")))
    process = _headrace(home, "stage", "run", "slow")
    try:

        def running():
            jobs = cli.json("job", "list")
            return jobs and jobs[0]["state"] == "RUNNING" and jobs[0]

        job = _wait_for(running)
        timeout = cli("job", "wait", job["id"], "--timeout", "0.2", code=1)
        assert f"job {job['id']} of stage slow is still RUNNING after 0.2 s" in timeout.stderr
        stopped = cli("job", "stop", job["id"][:8]).stdout
        assert stopped.startswith(f"Asked job {job['id']} of stage slow to stop")
        out, err = process.communicate(timeout=60)  # it ends; a hang fails here
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1, (out, err)
    assert "KILLED" in out
    assert "ended KILLED: stopped by request" in err and "Traceback" not in err
    ended = cli.json("job", "inspect", job["id"])
    assert ended["state"] == "KILLED" and ended["stop_requested"] is True
    assert cli.json("commit", "list", "slow") == []  # nothing of a killed job is committed
    assert "ended KILLED" in cli("job", "wait", job["id"], code=1).stderr
    assert "already ended KILLED" in cli("job", "stop", job["id"], code=1).stderr


def test_job_stop_marks_a_job_without_process_killed(cli, home, project):
    cli("stage", "create", "-f", str(project / "up.yaml"))
    with Store.open(home) as store:
        catalog = Catalog(store)
        stage = catalog.get_stage("up")
        with catalog.transaction() as conn:
            job_id = catalog.create_job(conn, stage, {"data": head(cli, "data@master")}, "t" * 32)
        commit = store.start_commit("up@master", "left open by a dead job")
        gone = f"{socket.gethostname()}:999999999"  # no such process
        catalog.set_job(job_id, owner=gone, output_commit=commit.id)
    assert cli.json("job", "inspect", job_id)["state"] == "CREATED"
    said = cli("job", "stop", job_id).stdout
    assert said == f"Job {job_id} of stage up had no process running it: marked KILLED\n"
    assert cli.json("job", "inspect", job_id)["state"] == "KILLED"
    with Store.open(home) as store, pytest.raises(CommitNotFound):
        store.inspect_commit(f"up@{commit.id}")  # its open output commit went with it


# -- datum ---------------------------------------------------------------------------------------


def test_datum_list_and_preview(cli, project, tmp_path):
    spec = str(project / "up.yaml")
    # a preview of a stage not created: every datum new, and nothing is created
    preview = cli.json("datum", "list", "--spec", spec)
    assert preview["stage_exists"] is False and preview["compared_with_job"] is None
    assert [d["status"] for d in preview["datums"]] == ["new", "new"]
    assert [d["inputs"][0]["files"][0]["path"] for d in preview["datums"]] == ["/a.txt", "/b.txt"]
    assert preview["counts"] == {"new": 2, "changed": 0, "unchanged": 0, "removed": 0}
    assert "No stage up yet" in cli("datum", "list", "--spec", spec).stdout
    assert cli.json("stage", "list") == [] and cli.json("job", "list") == []
    assert [r["name"] for r in cli.json("repo", "list")] == ["data"]

    cli("stage", "create", "-f", spec)
    job = cli.json("stage", "run", "up")
    datums = cli.json("datum", "list", job["id"])
    assert [(d["state"], d["inputs"], d["attempts"]) for d in datums] == sorted(
        [
            ("success", [{"name": "data", "path": "/a.txt"}], 1),
            ("success", [{"name": "data", "path": "/b.txt"}], 1),
        ],
        key=lambda t: next(d["datum_id"] for d in datums if d["inputs"] == t[1]),
    )
    assert datums[0]["outputs"][0]["path"] in ("/a.txt", "/b.txt")
    table = cli("datum", "list", job["id"][:8]).stdout
    assert re.search(r"success\s+data:/a\.txt\s+1\s", table)
    assert cli.json("datum", "list", job["id"], "--state", "failed") == []
    limited = cli("datum", "list", job["id"], "--limit", "1").stdout
    assert limited.count("data:/") == 1 and "... and 1 more datum(s), not shown" in limited
    assert len(cli.json("datum", "list", job["id"], "-n", "1")) == 1

    # change a.txt, add c.txt, delete b.txt
    put(cli, tmp_path, "data@master:/a.txt", "a2")
    put(cli, tmp_path, "data@master:/c.txt", "c")
    preview = cli.json("datum", "list", "--spec", spec)
    status = {d["inputs"][0]["path"]: d["status"] for d in preview["datums"]}
    assert status == {"/a.txt": "changed", "/b.txt": "unchanged", "/c.txt": "new"}
    assert preview["compared_with_job"] == job["id"]
    text = cli("datum", "list", "--spec", spec).stdout
    assert f"Compared with job {job['id'][:12]}" in text
    assert "3 datum(s): 1 new, 1 changed, 1 unchanged" in text
    assert re.search(r"changed\s+data:/a\.txt\s+/a\.txt", text)
    only_new = cli.json("datum", "list", "--spec", spec, "--state", "new")["datums"]
    assert [d["inputs"][0]["path"] for d in only_new] == ["/c.txt"]
    cli("file", "delete", "data@master:/b.txt")
    gone = cli.json("datum", "list", "--spec", spec)
    assert gone["counts"]["removed"] == 1 and len(gone["removed"]) == 1
    old = cli.json("datum", "list", "--spec", spec, "--input", f"data={job['inputs'][0]['commit']}")
    assert [d["status"] for d in old["datums"]] == ["unchanged", "unchanged"]
    assert len(cli.json("job", "list")) == 1  # previews ran nothing


def test_failed_job_logs_and_datum_restart(cli, project, tmp_path):
    cli("stage", "create", "-f", str(project / "up.yaml"))
    cli("stage", "run", "up")
    put(cli, tmp_path, "data@master:/c.txt", "boom")
    put(cli, tmp_path, "data@master:/a.txt", "a2")
    failed = cli("stage", "run", "up", code=1)
    assert re.search(r"Job ([0-9a-f]{32}) of stage up: FAILURE in ", failed.stdout)
    assert "3 datum(s): 1 processed, 1 skipped, 1 failed" in failed.stdout
    assert "ended FAILURE: 1 of 3 datums failed after 3 tries" in failed.stderr
    assert "ValueError: cannot process c.txt" in failed.stderr
    job_id = re.search(r"Job ([0-9a-f]{32})", failed.stdout).group(1)

    rows = cli.json("datum", "list", job_id, "--state", "failed")
    assert len(rows) == 1 and rows[0]["attempts"] == 3
    assert rows[0]["inputs"] == [{"name": "data", "path": "/c.txt"}]
    table = cli("datum", "list", job_id).stdout
    assert re.search(r"failed\s+data:/c\.txt\s+3\s+\S+\s+ValueError: cannot process c\.txt", table)
    logs = cli("job", "logs", job_id, "--failed").stdout
    assert "(data:/c.txt): failed, 3 attempt(s)" in logs
    assert "Traceback (most recent call last)" in logs and 'raise ValueError(f"cannot' in logs
    assert "did a.txt" not in logs

    # the transform is fixed: only the failed datum runs; a.txt's new output is reused
    write_module(project, "upper", UPPER.replace("raise ValueError", "return print"))
    restarted = cli("datum", "restart", job_id[:8])
    assert restarted.stdout.startswith(f"Restarted job {job_id} as job ")
    assert ": SUCCESS in " in restarted.stdout
    assert "3 datum(s): 1 processed, 2 skipped, 0 failed" in restarted.stdout
    new = cli.json("job", "list")[0]
    assert new["trace"] == cli.json("job", "inspect", job_id)["trace"]
    assert cli("file", "get", "up@master:/a.txt").stdout == "A2"
    assert "c.txt" not in [f["path"] for f in cli.json("file", "list", "up@master")]
    refused = cli("datum", "restart", new["id"], code=1)
    assert "ended SUCCESS; only a job that ended FAILURE or KILLED" in refused.stderr


# -- daemon, commit wait, commit provenance ------------------------------------------------------


def test_daemon_once_runs_a_dag_and_commit_wait_sees_the_arrival(cli, project, tmp_path):
    cli("stage", "create", "-f", str(project / "up.yaml"))
    cli("stage", "create", "-f", str(write_spec(project, "again", "up")))
    assert cli("commit", "wait", "again@master", "--timeout", "0.2", code=1).stderr.startswith(
        "Error: trace "
    )
    log = cli("daemon", "--once").stdout
    assert len(STAMP.findall(log)) == len(log.splitlines()) >= 4
    assert re.search(r"stage up: job [0-9a-f]{32} SUCCESS: 2 processed", log)
    assert re.search(r"stage again: job [0-9a-f]{32} SUCCESS: 2 processed", log)
    assert log.index("stage up: job") < log.index("stage again: job")
    assert cli("file", "get", "again@master:/a.txt").stdout == "A"
    data_head = head(cli, "data@master")
    arrived = cli("commit", "wait", "again@master", "--timeout", "5").stdout
    assert arrived == (
        f"Commit {head(cli, 'again@master')} of again@master is finished (trace {data_head})\n"
    )
    assert cli("daemon", "--once").stdout == ""  # nothing new

    # a new upstream commit: not there until the daemon passes again
    new = put(cli, tmp_path, "data@master:/d.txt", "d")
    late = cli("commit", "wait", "again@master", "--timeout", "0.3", code=1)
    assert f"trace {new} has not reached again@master" in late.stderr
    assert "headrace daemon" in late.stderr
    assert len(STAMP.findall(cli("daemon", "--once").stdout)) >= 4
    waited = cli.json("commit", "wait", "again@master", "--trace", new, "--timeout", "5")
    assert waited["id"] == head(cli, "again@master") and waited["state"] == "FINISHED"
    assert cli("file", "get", "again@master:/d.txt").stdout == "D"
    not_stage = cli("commit", "wait", "data@master", "--trace", new, code=2)
    assert "--trace: data@master is not the output branch of a stage" in not_stage.stderr

    # provenance names the jobs that made the commits
    up_job, again_job = (
        cli.json("job", "list", "--stage", s, "-n", "1")[0] for s in ("up", "again")
    )
    shown = cli("commit", "provenance", "again@master").stdout
    assert shown.startswith(
        f"Commit {again_job['output_commit']} of again@master was made by job {again_job['id']} "
        f"of stage again (spec version {again_job['version']}, trace {new})"
    )
    assert re.search(rf"{up_job['output_commit']}\s+up\s+{up_job['id']}\s+up\s+", shown)
    provenance = {c["repo"]: c for c in cli.json("commit", "provenance", "again@master")}
    assert provenance["up"]["job"] == {
        "id": up_job["id"], "stage": "up", "version": up_job["version"], "trace": new,
    }  # fmt: skip
    assert provenance["data"]["job"] is None and provenance["data"]["id"] == new

    # up cannot lose its repo while 'again' reads it
    refused = cli("stage", "delete", "up", code=1)
    assert "stage again reads repo up" in refused.stderr and "--keep-repo" in refused.stderr


def test_daemon_once_with_jobs_runs_the_dag_in_job_processes(cli, project):
    cli("stage", "create", "-f", str(project / "up.yaml"))
    cli("stage", "create", "-f", str(write_spec(project, "again", "up")))
    log = cli("daemon", "--once", "--jobs", "2").stdout
    assert log.index("stage up: job") < log.index("stage again: job")
    assert re.search(r"stage again: job [0-9a-f]{32} SUCCESS: 2 processed", log)
    assert cli("file", "get", "again@master:/a.txt").stdout == "A"
    assert cli("daemon", "--once", "-j", "2").stdout == ""


def test_daemon_once_fails_when_a_job_fails(cli, project, tmp_path):
    cli("stage", "create", "-f", str(project / "up.yaml"))
    cli("stage", "create", "-f", str(write_spec(project, "again", "up")))
    put(cli, tmp_path, "data@master:/c.txt", "boom")
    result = cli("daemon", "--once", code=1)
    assert "stage again: job UNRUNNABLE" in result.stdout
    assert re.search(
        r"Error: 1 job\(s\) did not end SUCCESS: [0-9a-f]{32} of stage up", result.stderr
    )
    refused = cli("commit", "wait", "again@master", "--timeout", "5", code=1)
    assert "of stage up ended FAILURE" in refused.stderr


@pytest.mark.slow
def test_daemon_stops_on_sigterm(cli, home, tmp_path):
    folder = tmp_path / "project"
    folder.mkdir()
    write_module(folder, "slow", SLOW)
    cli("repo", "create", "data")
    cli("stage", "create", "-f", str(write_spec(folder, "slow", "data", module="slow")))

    # idle: stops at once
    process = _headrace(home, "daemon", "--poll", "0.1")
    try:
        assert "daemon started" in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert out.rstrip().endswith("daemon stopped") and err == ""

    # while a job runs: the first signal lets it finish, then the daemon stops
    put(cli, tmp_path, "data@master:/a.txt", "1.5")
    process = _headrace(home, "daemon", "--poll", "0.1")
    try:
        assert "daemon started" in process.stdout.readline()
        assert "starting a job" in process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "SIGTERM: stopping after the running job" in out
    assert re.search(r"stage slow: job [0-9a-f]{32} SUCCESS", out)
    assert out.rstrip().endswith("daemon stopped")

    # a second signal interrupts the running job
    put(cli, tmp_path, "data@master:/a.txt", "60")
    process = _headrace(home, "daemon", "--poll", "0.1")
    try:
        assert "daemon started" in process.stdout.readline()
        assert "starting a job" in process.stdout.readline()
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        time.sleep(0.3)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)  # it ends; a hang fails here
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert "interrupted in the middle of a pass" in out
    assert cli.json("job", "list", "-n", "1")[0]["state"] in ("FAILURE", "KILLED")


# -- errors --------------------------------------------------------------------------------------


def test_errors_name_the_file_field_stage_or_job(cli, project, tmp_path):
    bad = project / "bad.yaml"
    bad.write_text('name: bad\ninput: {pfs: {repo: data, glob: "/["}}\ntransform: {python: m:f}\n')
    result = cli("stage", "create", "-f", str(bad), code=1)
    assert result.stderr.startswith(f"Error: {bad}: input.pfs.glob: invalid glob '/[': ")
    assert isinstance(result.exception, SystemExit)

    missing = write_spec(project, "orphan", "nope")
    result = cli("stage", "create", "-f", str(missing), code=1)
    assert f"{missing}: input.pfs.repo: repo 'nope' does not exist" in result.stderr
    assert "headrace repo create nope" in result.stderr
    own = write_spec(project, "data", "data")
    assert "so it cannot also read it" in cli("stage", "create", "-f", str(own), code=1).stderr
    assert cli("stage", "create", "-f", str(tmp_path / "none.yaml"), code=2).exit_code == 2
    assert cli.json("stage", "list") == []
    assert [r["name"] for r in cli.json("repo", "list")] == ["data"]  # nothing was created

    cli("stage", "create", "-f", str(project / "up.yaml"))
    twice = cli("stage", "create", "-f", str(project / "up.yaml"), code=1)
    assert "stage 'up' already exists" in twice.stderr and "stage update" in twice.stderr
    loop = write_spec(project, "data2", "up")
    cli("repo", "create", "data2")
    cli("stage", "create", "-f", str(loop))
    write_spec(project, "up", "data2")
    cycle = cli("stage", "update", "-f", str(project / "up.yaml"), code=1)
    assert "would make the stages read each other: stages form a cycle" in cycle.stderr

    for args in (("inspect", "nope"), ("run", "nope"), ("delete", "nope"), ("stop", "nope")):
        result = cli("stage", *args, code=1)
        assert result.stderr.startswith("Error: no stage named 'nope' (stages: data2, up)")
    assert "no stage named 'nope'" in cli("job", "list", "--stage", "nope", code=1).stderr
    write_spec(project, "ghost", "data")
    ghost = cli("stage", "update", "-f", str(project / "ghost.yaml"), code=1)
    assert "no stage named 'ghost'" in ghost.stderr
    commands = ["job inspect", "job logs", "job wait", "job stop", "datum list", "datum restart"]
    for args in (c.split() for c in commands):
        result = cli(*args, "0000dead", code=1)
        assert result.stderr.startswith("Error: no job '0000dead'"), args

    assert "no input named 'x'" in cli("stage", "run", "up", "--input", "x=1", code=2).stderr
    assert "NAME=COMMIT" in cli("stage", "run", "up", "--input", "data", code=2).stderr
    assert "--state 'done'" in cli("job", "list", "--state", "done", code=2).stderr
    assert "either a JOB or --spec" in cli("datum", "list", code=2).stderr
    job = cli.json("stage", "run", "up")
    assert "has no datum 'ffff'" in cli("job", "logs", job["id"], "--datum", "ffff", code=1).stderr
    gone = cli("stage", "run", "up", "--input", "data=0123456789abcdef0123456789abcdef", code=1)
    assert "stage up: cannot read its inputs" in gone.stderr


def test_helpers_for_the_store_commands(home, project, cli):
    with Store.open(home) as store:
        assert stage_commands.open_catalog(store, create=False) is None  # no stage tables yet
        assert stage_commands.stage_output_branch(store, "data@master") is None
        assert stage_commands.jobs_of_commits(store, [head(cli, "data@master")]) == {}
    cli("stage", "create", "-f", str(project / "up.yaml"))
    with Store.open(home) as store:
        found = stage_commands.stage_output_branch(store, "up")
        assert found is not None and found[1] == "up@master"
        assert stage_commands.stage_output_branch(store, "up@dev") is None
        assert stage_commands.stage_output_branch(store, "up@master^1") is None


# -- the entry point is checked when a stage is created or updated --------------------------------
# Pachyderm validates a pipeline spec when it is created (pps create-pipeline) but cannot see
# inside the user's image; headrace can: the module is imported in a separate process, as the
# worker will import it (headrace/stages/worker.py, _entry_point and _BOOTSTRAP).


def test_create_refuses_a_module_that_does_not_import(cli, project):
    spec = write_spec(project, "typo", "data", module="uper")
    result = cli("stage", "create", "-f", str(spec), code=1)
    message = " ".join(result.stderr.split())
    assert message.startswith(f"Error: {spec}: transform.python: cannot import module 'uper'")
    assert "ModuleNotFoundError" in message
    assert str(project) in message  # where it looked
    assert cli.json("stage", "list") == []
    assert [r["name"] for r in cli.json("repo", "list")] == ["data"]  # no output repo made


def test_create_refuses_a_module_that_raises_on_import(cli, project):
    write_module(project, "broken", "import json\nraise RuntimeError('no config file')\n")
    spec = write_spec(project, "broken", "data", module="broken")
    result = cli("stage", "create", "-f", str(spec), code=1)
    message = " ".join(result.stderr.split())
    assert "transform.python: cannot import module 'broken' (RuntimeError: no config file)" in (
        message
    )


def test_create_refuses_a_missing_function_or_a_wrong_signature(cli, project):
    write_module(project, "helpers", "def one(x):\n    pass\nVALUE = 3\n")
    for target, expected in [
        ("helpers:run", "transform.python: module 'helpers' has no 'run'"),
        ("helpers:VALUE", "transform.python: helpers:VALUE is not callable"),
        ("helpers:one", "transform.python: helpers:one(x) must take two arguments"),
    ]:
        spec = project / "h.yaml"
        spec.write_text(
            json.dumps(
                {
                    "name": "h",
                    "input": {"pfs": {"repo": "data", "glob": "/*"}},
                    "transform": {"python": target},
                }
            )
        )
        result = cli("stage", "create", "-f", str(spec), code=1)
        assert expected in " ".join(result.stderr.split()), target


def test_update_checks_the_entry_point_too(cli, project):
    cli("stage", "create", "-f", str(project / "up.yaml"))
    write_spec(project, "up", "data", module="gone")
    result = cli("stage", "update", "-f", str(project / "up.yaml"), code=1)
    assert "transform.python: cannot import module 'gone'" in result.stderr
    assert cli.json("stage", "inspect", "up")["spec"]["transform"] == {"python": "upper:run"}


def test_an_environment_stage_is_checked_with_its_own_interpreter(cli, project, tmp_path):
    """A module importable only in the stage's environment: checked there, not here."""
    env = tmp_path / "env"
    (env / "bin").mkdir(parents=True)
    only_there = tmp_path / "only_there"
    only_there.mkdir()
    (only_there / "elsewhere.py").write_text("def run(inputs, output):\n    pass\n")
    python = env / "bin" / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{only_there}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    spec = write_spec(project, "far", "data", module="elsewhere")
    data = json.loads(spec.read_text())
    data["transform"]["environment"] = str(env)
    spec.write_text(json.dumps(data))
    cli("stage", "create", "-f", str(spec))  # importable there though not here

    data["transform"]["python"] = "elsewhere:nothing"
    data["name"] = "far2"
    spec2 = project / "far2.yaml"
    spec2.write_text(json.dumps(data))
    result = cli("stage", "create", "-f", str(spec2), code=1)
    assert "transform.python: module 'elsewhere' has no 'nothing'" in result.stderr

    data["transform"]["environment"] = str(tmp_path / "no-such-env")
    data["name"] = "far3"
    spec3 = project / "far3.yaml"
    spec3.write_text(json.dumps(data))
    result = cli("stage", "create", "-f", str(spec3), code=1)
    assert "transform.environment: no interpreter or virtualenv at" in result.stderr


def test_commit_inspect_shows_provenance(cli, project, tmp_path):
    """pachctl inspect commit shows the commits a commit was made from (its provenance)."""
    cli("repo", "create", "raw")
    put(cli, tmp_path, "raw@master:/a.txt", "a")
    raw = cli.json("commit", "inspect", "raw@master")
    assert raw["provenance"] == []
    spec = tmp_path / "copy.json"
    spec.write_text(
        '{"pipeline": {"name": "copy"}, "input": {"pfs": {"repo": "raw", "glob": "/*"}},'
        ' "transform": {"cmd": ["sh", "-c", "cp -r /pfs/raw/. /pfs/out/"]},'
        ' "resource_requests": {"memory": "1G"}}'
    )
    created = cli("stage", "create", "-f", str(spec))
    assert "resource_requests: places datums on Ray" in created.stderr
    cli("stage", "run", "copy")
    out = cli.json("commit", "inspect", "copy@master")
    assert out["provenance"] == [f"raw@{raw['id']}"]
    assert f"raw@{raw['id']}" in cli("commit", "inspect", "copy@master").stdout


def test_job_rerun_and_stage_update_reprocess(cli, project):
    """pachctl rerun job (datums that succeeded are reused, unless --reprocess) and pachctl
    update pipeline --reprocess (every datum runs again with the same spec version)."""
    spec = project / "up.yaml"
    cli("stage", "create", "-f", str(spec))
    first = cli.json("stage", "run", "up")
    assert (first["processed"], first["skipped"]) == (2, 0)
    again = cli.json("job", "rerun", first["id"])
    assert (again["processed"], again["skipped"]) == (0, 2) and again["id"] != first["id"]
    every = cli.json("job", "rerun", "--reprocess", first["id"])
    assert (every["processed"], every["skipped"]) == (2, 0)
    updated = cli.json("stage", "update", "-f", str(spec), "--reprocess")
    assert (updated["processed"], updated["skipped"]) == (2, 0)


def test_commit_list_trace_lists_every_commit_and_job_of_a_trace(cli, project, tmp_path):
    """pachctl list commit <global ID>: the user's commit and what it caused downstream."""
    cli("stage", "create", "-f", str(project / "up.yaml"))
    cli("daemon", "--once")
    commit = put(cli, tmp_path, "data@master:/c.txt", "c")
    cli("daemon", "--once")
    listed = cli.json("commit", "list", "--trace", commit)
    assert [c["repo"] for c in listed["commits"]] == ["data", "up"]
    assert listed["commits"][0]["id"] == commit
    assert [(j["stage"], j["state"]) for j in listed["jobs"]] == [("up", "SUCCESS")]
    assert "up" in cli("commit", "list", "--trace", commit).stdout
    assert cli("commit", "list", code=2).stderr.startswith("Error: name a repo")


def test_datum_inspect_shows_one_datum(cli, project):
    """pachctl inspect datum: one datum's state, inputs and outputs."""
    cli("stage", "create", "-f", str(project / "up.yaml"))
    job = cli.json("stage", "run", "up")
    (first, _) = cli.json("datum", "list", job["id"])
    shown = cli.json("datum", "inspect", job["id"], first["datum_id"][:8])
    assert shown["datum_id"] == first["datum_id"] and shown["state"] == first["state"]
    assert shown["inputs"] == first["inputs"] and shown["job_id"] == job["id"]
    text = cli("datum", "inspect", job["id"], first["datum_id"]).stdout
    assert first["datum_id"] in text and "data:/a.txt" in text


def test_job_logs_follow_prints_each_datum_log_until_the_job_ends(cli, project):
    """pachctl logs --job --follow: the datums' logs, then how the job ended (a job already
    ended prints everything and returns)."""
    cli("stage", "create", "-f", str(project / "up.yaml"))
    job = cli.json("stage", "run", "up")
    out = cli("job", "logs", job["id"], "--follow").stdout
    assert out.count("== datum ") == 2 and "data:/a.txt" in out and "data:/b.txt" in out
    assert f"Job {job['id']} of stage up ended SUCCESS (2 datum(s): 2 processed" in out
    (one,) = [d for d in cli.json("datum", "list", job["id"]) if d["inputs"][0]["path"] == "/b.txt"]
    only = cli("job", "logs", job["id"], "-f", "--datum", one["datum_id"][:10]).stdout
    assert only.count("== datum ") == 1 and "data:/b.txt" in only
    assert cli("job", "logs", job["id"], "-f", "--json", code=2).stderr.startswith(
        "Error: --follow"
    )
