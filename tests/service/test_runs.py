"""Pipeline runs in the job service: run events folded into the store's database (history that
survives a restart), streamed from ``headrace run --service``, listed with stage jobs, and
cancelled from the service.

States are Beam's (``PipelineState``: apache_beam/runners/runner.py; JobState in
beam_job_api.proto: STOPPED, RUNNING, DONE, FAILED, CANCELLED, CANCELLING), as Dataflow's job
list shows them.
"""

from __future__ import annotations

import logging
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
from tests.service.conftest import TOKEN, headrace_command, start_service, stop_service, wait_for

from headrace import beam
from headrace.runners.events import listening
from headrace.service.runs import RunHistory, RunRecorder
from headrace.store.store import Store


class _Logs(beam.DoFn):
    def process(self, x):
        if x == 3:
            logging.getLogger("user.code").warning("saw three")
        beam.metrics.Metrics.counter("test", "seen").inc()
        yield x


def test_a_run_is_recorded_with_steps_counts_and_logs_and_survives_a_reopen(tmp_path, metadata_url):
    store = Store.open(tmp_path, db=metadata_url)
    history = RunHistory(store.meta)
    with listening(RunRecorder(history, "here")):
        with beam.Pipeline() as p:
            _ = p | beam.Create([1, 2, 3, 4]) | "Logs" >> beam.ParDo(_Logs()) | beam.Map(str)
    store.close()

    store = Store.open(tmp_path, db=metadata_url)
    reopened = RunHistory(store.meta)
    runs, total = reopened.list_runs()
    assert total == 1
    run = reopened.get(runs[0].id)
    assert run.state == "DONE" and run.source == "here"
    assert run.started_at is not None and run.finished_at is not None
    assert run.steps and all(s.state == "done" for s in run.steps)
    assert max(s.elements_in for s in run.steps) == 4
    assert sum(s.counters.get("test/seen", 0) for s in run.steps) == 4
    logs = reopened.events(run.id, kind="log")
    assert [(e["message"], e["level"]) for e in logs] == [("saw three", logging.WARNING)]
    assert logs[0]["step"] is not None and "Logs" in logs[0]["step"]
    states = [e["message"] for e in reopened.events(run.id, kind="state")]
    assert states == ["submitted", "running", "done"]
    store.close()


def test_a_failed_run_keeps_its_error(tmp_path, metadata_url):
    store = Store.open(tmp_path, db=metadata_url)
    history = RunHistory(store.meta)

    def boom(x):
        raise ValueError(f"bad element {x}")

    with listening(RunRecorder(history)), pytest.raises(Exception, match="bad element"):
        with beam.Pipeline() as p:
            _ = p | beam.Create([7]) | "Boom" >> beam.Map(boom)
    (run,) = history.list_runs()[0]
    assert run.state == "FAILED" and "bad element 7" in run.error
    assert [s.state for s in history.get(run.id).steps].count("failed") == 1
    # the transform that raised, the element and the traceback down to the user's function
    assert run.failed_step == "Boom" and run.failed_element == "7"
    assert run.traceback is not None and "in boom" in run.traceback
    assert "ValueError: bad element 7" in run.traceback
    store.close()


def test_a_database_of_an_older_service_gains_the_new_run_columns(tmp_path, metadata_url):
    import sqlalchemy as sa

    store = Store.open(tmp_path, db=metadata_url)
    old_tables = sa.MetaData()
    sa.Table(  # the run table as the first service made it
        "service_runs", old_tables,
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("streaming", sa.Boolean, nullable=False),
        sa.Column("source", sa.String(200), nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("started_at", sa.Double),
        sa.Column("finished_at", sa.Double),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    )  # fmt: skip
    with store.meta.transaction() as conn:
        old_tables.create_all(conn)
        conn.execute(
            old_tables.tables["service_runs"]
            .insert()
            .values(id="old", state="DONE", streaming=False, created_at=1.0, updated_at=2.0)
        )
    history = RunHistory(store.meta)
    old = history.get("old")
    assert old.state == "DONE" and old.traceback is None and old.failed_step is None
    history.record([{"type": "RunFinished", "run_id": "old", "at": 3.0, "state": "FAILED",
                     "error": "E: x", "step": "S", "element": "1", "traceback": "T"}])  # fmt: skip
    again = history.get("old")
    assert (again.failed_step, again.failed_element, again.traceback) == ("S", "1", "T")
    assert history.drains_requested(["old"]) == []
    store.close()


SCRIPT = """
import logging, sys, time
from headrace import beam
from headrace.beam.options.pipeline_options import PipelineOptions

def slow(x):
    if x == 0:
        logging.getLogger("wc").warning("first element")
    time.sleep(float(sys.argv[1]))
    return x

with beam.Pipeline(options=PipelineOptions(direct_bundle_size=10)) as p:
    (p | "Numbers" >> beam.Create(list(range(int(sys.argv[2]))))
       | "Slow" >> beam.Map(slow)
       | "Pair" >> beam.Map(lambda x: (x % 3, x))
       | "Group" >> beam.GroupByKey()
       | "Sizes" >> beam.MapTuple(lambda k, v: (k, len(list(v)))))
"""


def _run_script(service, script: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env["HEADRACE_TOKEN"] = TOKEN
    return subprocess.Popen(
        [*headrace_command(), "run", "--service", service.url, "--no-progress", str(script),
         *args],
        env=env, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.fixture
def fresh_service(tmp_path):
    s = start_service(tmp_path / "home", TOKEN, "--no-daemon")
    yield s
    stop_service(s)


@pytest.mark.slow
def test_headrace_run_streams_its_run_and_history_survives_a_restart(fresh_service, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SCRIPT))
    proc = _run_script(fresh_service, script, "0", "30")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()

    runs = fresh_service.get("/api/v1/runs")["runs"]
    assert len(runs) == 1 and runs[0]["state"] == "DONE"
    run = fresh_service.get(f"/api/v1/runs/{runs[0]['id']}")
    assert all(s["state"] == "done" for s in run["steps"])
    assert max(s["elements_in"] for s in run["steps"]) >= 30
    logs = fresh_service.get(f"/api/v1/runs/{run['id']}/events?kind=log")
    assert [e["message"] for e in logs] == ["first element"] and "Slow" in logs[0]["step"]
    both = fresh_service.get("/api/v1/jobs")["jobs"]
    assert [(j["kind"], j["id"]) for j in both] == [("pipeline_run", run["id"])]
    assert both[0]["elements"] == run["elements"] > 0

    stop_service(fresh_service)
    again = start_service(fresh_service.home, TOKEN, "--no-daemon")
    try:
        assert again.get(f"/api/v1/runs/{run['id']}")["steps"] == run["steps"]
    finally:
        stop_service(again)


@pytest.mark.slow
def test_a_run_is_cancelled_from_the_service(fresh_service, tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(textwrap.dedent(SCRIPT))
    proc = _run_script(fresh_service, script, "0.05", "2000")  # ~100 s unless cancelled
    try:
        run_id = wait_for(
            lambda: next(
                (r["id"] for r in fresh_service.get("/api/v1/runs?state=RUNNING")["runs"]), None
            ),
            what="the run to show as RUNNING",
        )
        cancelling = fresh_service.post(f"/api/v1/runs/{run_id}/cancel")
        assert cancelling["state"] == "CANCELLING" and cancelling["cancel_requested"]
        wait_for(
            lambda: fresh_service.get(f"/api/v1/runs/{run_id}")["state"] == "CANCELLED",
            timeout=90,
            what="the run to be cancelled",
        )
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert f"Run {run_id} cancelled from the job service".encode() in err
    assert proc.returncode == 1, err  # a cancelled run is not a success
    # a cancel of an ended run changes nothing
    assert fresh_service.post(f"/api/v1/runs/{run_id}/cancel")["state"] == "CANCELLED"
    assert fresh_service.request("POST", "/api/v1/runs/nosuch/cancel")[0] == 404


def test_a_streaming_run_records_its_steps_watermarks(tmp_path):
    """Streaming runs report each step's output watermark (Dataflow shows a data watermark
    per step); the recorded steps keep the latest."""
    from headrace.beam.options.pipeline_options import PipelineOptions
    from headrace.beam.testing.test_stream import TestStream
    from headrace.model.window import FixedWindows

    history = RunHistory(Store.open(tmp_path).meta)
    stream = (
        TestStream()
        .add_elements([beam.window.TimestampedValue(("k", 1), 5)])
        .advance_watermark_to(20)
        .add_elements([beam.window.TimestampedValue(("k", 2), 25)])
        .advance_watermark_to_infinity()
    )
    with listening(RunRecorder(history)):
        with beam.Pipeline(options=PipelineOptions(streaming=True)) as p:
            _ = (
                p
                | "Events" >> stream
                | "Window" >> beam.WindowInto(FixedWindows(10))
                | "Group" >> beam.GroupByKey()
            )
    (run,) = history.list_runs()[0]
    assert run.streaming and run.state == "DONE"
    marks = {s.name: s.watermark_us for s in history.get(run.id).steps}
    assert any(m is not None for m in marks.values()), marks
    # the graph: each step is a transform (its own stage), reading the one before
    record = history.get(run.id)
    steps = {s.position: s.name for s in record.steps}
    leaves = [t for t in record.transforms if not t.composite]
    assert [steps[t.stage] for t in leaves if t.stage is not None] == [t.label for t in leaves]
    by_label = {t.label: t for t in record.transforms}
    assert by_label["Group"].reads == [by_label["Window"].id]


def test_steps_carry_the_plan_edges(tmp_path):
    """A run's steps say which steps they read (the plan's stage dependencies), so the UI can
    draw the graph of a branching pipeline, not just a chain."""
    history = RunHistory(Store.open(tmp_path).meta)
    with listening(RunRecorder(history)):
        with beam.Pipeline() as p:
            left = p | "Left" >> beam.Create([("a", 1)])
            right = p | "Right" >> beam.Create([("a", 2)])
            _ = (left, right) | "Join" >> beam.CoGroupByKey() | "Show" >> beam.Map(str)
    (run,) = history.list_runs()[0]
    steps = history.get(run.id).steps
    assert steps[0].depends_on == []
    readers = [s for s in steps if s.depends_on]
    assert readers, [(s.name, s.depends_on) for s in steps]
    assert all(d < s.position for s in readers for d in s.depends_on)


@pytest.mark.slow
def test_a_run_streams_as_server_sent_events(fresh_service, tmp_path):
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SCRIPT))
    proc = _run_script(fresh_service, script, "0.01", "100")
    try:
        run_id = wait_for(
            lambda: next((r["id"] for r in fresh_service.get("/api/v1/runs")["runs"]), None),
            what="the run to be reported",
        )
        import urllib.request

        req = urllib.request.Request(f"{fresh_service.url}/api/v1/runs/{run_id}/stream")
        req.add_header("Authorization", f"Bearer {TOKEN}")
        with urllib.request.urlopen(req, timeout=120) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            text = response.read().decode()  # the stream ends when the run has ended
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    kinds = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("event: ")]
    assert kinds[-1] == "end" and kinds.count("end") == 1
    assert "log" in kinds and kinds.count("state") >= 3
    assert '"message": "first element"' in text
    assert text.rstrip().endswith('data: {"state": "DONE"}')


def _slowly(word):
    import time

    time.sleep(0.05)
    return len(word) > 1


class _Tokens(beam.PTransform):
    def expand(self, pcoll):
        return pcoll | "Split" >> beam.FlatMap(str.split) | "Long" >> beam.Filter(_slowly)


def test_transforms_carry_composite_nesting_and_edge_counts(tmp_path):
    """The run keeps its graph's transforms with their composite parents and each transform's
    element counts, so the UI can fold a composite and label the true edges."""
    history = RunHistory(Store.open(tmp_path).meta)
    with listening(RunRecorder(history)):
        with beam.Pipeline() as p:
            _ = (
                p
                | "Lines" >> beam.Create(["a bb ccc", "dd e", "fff"])
                | "Tokens" >> _Tokens()
                | "Count" >> beam.combiners.Count.PerElement()
                | "Show" >> beam.Map(str)
            )
    (run,) = history.list_runs()[0]
    by_label = {t.label: t for t in history.get(run.id).transforms}
    tokens = by_label["Tokens"]
    assert tokens.composite and tokens.stage is None
    split, long_ = by_label["Tokens/Split"], by_label["Tokens/Long"]
    assert split.parent == long_.parent == tokens.id and not split.composite
    assert (split.elements_in, split.elements_out) == (3, 6)
    assert (long_.elements_in, long_.elements_out) == (6, 4)
    assert long_.reads == [split.id] and split.reads == [by_label["Lines"].id]
    assert by_label["Lines"].elements_out == 3  # a source's count is its step's input
    combine = next(t for t in by_label.values() if t.kind == "CombinePerKey")
    # the pairing the planner folded into the count is skipped: the combine reads Long
    assert combine.reads == [long_.id] and combine.parent == by_label["Count"].id
    show = by_label["Show"]
    assert show.reads == [combine.id] and show.elements_in == 4
    steps = history.get(run.id).steps
    assert {t.stage for t in by_label.values() if not t.composite} == {s.position for s in steps}
    # each transform's own time: Long slept 50 ms on each of its 6 words (the time of the
    # transforms it pushed to is not counted in it), and the times add up to the steps'
    leaves = [t for t in by_label.values() if not t.composite]
    assert long_.seconds >= 0.3 and long_.seconds == max(t.seconds for t in leaves)
    assert all(t.seconds >= 0 for t in leaves)
    assert sum(t.seconds for t in leaves) <= sum(s.seconds for s in steps) + 1e-6


def _read_events(url: str, until: str, timeout: float = 60.0) -> list[tuple[str, str]]:
    """(event, data) pairs of a server-sent event stream, up to the first ``until`` event."""
    import urllib.request

    req = urllib.request.Request(url)
    req.add_header("Authorization", f"Bearer {TOKEN}")
    out: list[tuple[str, str]] = []
    with urllib.request.urlopen(req, timeout=timeout) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        event = ""
        for raw in response:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                out.append((event, line[6:]))
                if event == until:
                    return out
    return out


@pytest.mark.slow
def test_streams_carry_run_snapshots_and_the_job_list(fresh_service, tmp_path):
    import json

    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SCRIPT))
    jobs = _read_events(f"{fresh_service.url}/api/v1/jobs/stream?limit=5", "jobs")
    assert jobs[0][0] == "jobs" and json.loads(jobs[0][1])["jobs"] == []
    proc = _run_script(fresh_service, script, "0.01", "100")
    try:
        run_id = wait_for(
            lambda: next((r["id"] for r in fresh_service.get("/api/v1/runs")["runs"]), None),
            what="the run to be reported",
        )
        url = f"{fresh_service.url}/api/v1/runs/{run_id}/stream?snapshots=true"
        text = _read_events(url, "end", timeout=120)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    snapshots = [json.loads(data) for event, data in text if event == "run"]
    assert snapshots and all(s["id"] == run_id for s in snapshots)
    # the last snapshot is the finished run as GET answers it
    assert snapshots[-1]["state"] == "DONE"
    assert snapshots[-1]["steps"] == fresh_service.get(f"/api/v1/runs/{run_id}")["steps"]
    assert text[-1] == ("end", '{"state": "DONE"}')
    # the job list stream's first page now has the run
    (first,) = _read_events(f"{fresh_service.url}/api/v1/jobs/stream?limit=5", "jobs")
    assert [j["id"] for j in json.loads(first[1])["jobs"]] == [run_id]


@pytest.mark.slow
def test_a_plain_python_script_reports_with_the_env_or_the_service_option(fresh_service, tmp_path):
    """``HEADRACE_SERVICE=URL python script.py`` and ``python script.py --service URL`` record
    the run as ``headrace run --service`` does; all three together still record it once."""
    import sys

    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env["HEADRACE_TOKEN"] = TOKEN

    def runs() -> list[dict]:
        return fresh_service.get("/api/v1/runs?limit=100")["runs"]

    plain = subprocess.run(
        [sys.executable, str(script), "0", "20"],
        env={**env, "HEADRACE_SERVICE": fresh_service.url},
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr.decode()
    (first,) = runs()
    assert first["state"] == "DONE"
    steps = fresh_service.get(f"/api/v1/runs/{first['id']}")["steps"]
    assert max(s["elements_in"] for s in steps) == 20

    option = subprocess.run(
        [sys.executable, str(script), "0", "21", "--service", fresh_service.url], env=env,
        capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert option.returncode == 0, option.stderr.decode()
    assert len(runs()) == 2
    second = next(r for r in runs() if r["id"] != first["id"])
    steps = fresh_service.get(f"/api/v1/runs/{second['id']}")["steps"]
    assert second["state"] == "DONE" and max(s["elements_in"] for s in steps) == 21

    both = subprocess.run(
        [*headrace_command(), "run", "--service", fresh_service.url, "--no-progress",
         str(script), "0", "22"],
        env={**env, "HEADRACE_SERVICE": fresh_service.url}, capture_output=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert both.returncode == 0, both.stderr.decode()
    assert len(runs()) == 3
    third = next(r for r in runs() if r["id"] not in (first["id"], second["id"]))
    detail = fresh_service.get(f"/api/v1/runs/{third['id']}")
    # events reported twice would add up twice: task counts and per-transform counts
    assert all(s["tasks_done"] == s["tasks"] for s in detail["steps"]), detail["steps"]
    slow = next(t for t in detail["transforms"] if t["label"] == "Slow")
    assert slow["elements_in"] == 22
    states = fresh_service.get(f"/api/v1/runs/{third['id']}/events?kind=state")
    assert [e["message"] for e in states] == ["submitted", "running", "done"]


def test_one_reporter_per_service_url_whoever_asks(monkeypatch):
    """``headrace run --service`` and ``Pipeline.run`` (with $HEADRACE_SERVICE) share the
    process's reporter for a URL, so each event is posted once."""
    from headrace.cli.main import reporting_to
    from headrace.model.options import PipelineOptions
    from headrace.model.pipeline import _report_to_service
    from headrace.runners import events
    from headrace.service.client import ServiceReporter

    url = "http://127.0.0.1:9"  # nothing listens: nothing is posted while no run is active

    def reporters() -> list[ServiceReporter]:
        return [x for x in events._listeners if isinstance(x, ServiceReporter)]

    monkeypatch.setenv("HEADRACE_SERVICE", url + "/")
    with reporting_to(url):
        (cli,) = reporters()
        _report_to_service(PipelineOptions([]))
        _report_to_service(PipelineOptions(["--service", url]))
        assert reporters() == [cli]
    assert reporters() == []  # the command released it
    monkeypatch.delenv("HEADRACE_SERVICE")
    _report_to_service(PipelineOptions([]))
    assert reporters() == []  # neither the option nor the variable: no reporting


ENDLESS = """
import time
from headrace import beam
from headrace.io.streaming.periodic import PeriodicImpulse
from headrace.model.options import PipelineOptions
from headrace.model.window import FixedWindows

with beam.Pipeline(options=PipelineOptions(["--streaming"])) as p:
    (p | "Ticks" >> PeriodicImpulse(start_timestamp=time.time(), fire_interval=0.01)
       | "Ones" >> beam.Map(lambda t: 1)
       | "Hour" >> beam.WindowInto(FixedWindows(3600))
       | "Sum" >> beam.CombineGlobally(sum).without_defaults()
       | "Print" >> beam.Map(lambda n: print("sum", n, flush=True)))
"""


@pytest.mark.slow
def test_a_streaming_run_is_drained_from_the_service(fresh_service, tmp_path):
    """Drain (Beam's, as on Dataflow): the process stops reading, the open window fires with
    what was read and the run ends DRAINED; a batch run cannot be drained (409 naming cancel)."""
    script = tmp_path / "endless.py"
    script.write_text(textwrap.dedent(ENDLESS))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    env["HEADRACE_TOKEN"] = TOKEN
    proc = subprocess.Popen(
        [*headrace_command(), "run", "--service", fresh_service.url, "--no-progress",
         str(script)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:

        def ticking() -> str | None:
            for r in fresh_service.get("/api/v1/runs?state=RUNNING")["runs"]:
                steps = fresh_service.get(f"/api/v1/runs/{r['id']}")["steps"]
                if any(s["name"] == "Ones" and s["elements_in"] >= 5 for s in steps):
                    return str(r["id"])
            return None

        run_id = wait_for(ticking, timeout=120, what="a streaming run counting ticks")
        draining = fresh_service.post(f"/api/v1/runs/{run_id}/drain")
        assert draining["state"] == "DRAINING"
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()  # closes the pipes on every path
    assert proc.returncode == 0, err.decode()
    sums = [int(line.split()[1]) for line in out.decode().splitlines() if line.startswith("sum ")]
    assert sums and sum(sums) >= 5  # the hour window fired at the drain
    run = wait_for(
        lambda: (r := fresh_service.get(f"/api/v1/runs/{run_id}"))["state"] == "DRAINED" and r,
        what="the run to end",
    )
    ones = next(s for s in run["steps"] if s["name"] == "Ones")
    assert ones["elements_in"] == sum(sums)
    states = [e["message"] for e in fresh_service.get(f"/api/v1/runs/{run_id}/events?kind=state")]
    assert states == ["submitted", "running", "drain requested", "drained"]

    batch = tmp_path / "batch.py"
    batch.write_text(textwrap.dedent(SCRIPT))
    done = _run_script(fresh_service, batch, "0", "3")
    done.communicate(timeout=120)
    assert done.returncode == 0
    batch_id = next(
        r["id"] for r in fresh_service.get("/api/v1/runs")["runs"] if not r["streaming"]
    )
    code, _, body = fresh_service.request("POST", f"/api/v1/runs/{batch_id}/drain", {})
    assert code == 409 and b"batch run" in body and b"cancel" in body
    assert fresh_service.request("POST", "/api/v1/runs/nosuch/drain", {})[0] == 404


@pytest.mark.slow
def test_the_service_stops_promptly_with_event_streams_open(tmp_path):
    """A browser tab following the job list keeps a stream open for ever; stopping the
    service must not wait for it."""
    import http.client
    import threading
    import urllib.request

    service = start_service(tmp_path / "home", TOKEN, "--no-daemon")
    opened = threading.Event()

    def follow() -> None:
        req = urllib.request.Request(f"{service.url}/api/v1/jobs/stream")
        req.add_header("Authorization", f"Bearer {TOKEN}")
        try:
            with urllib.request.urlopen(req, timeout=120) as response:
                response.readline()
                opened.set()
                response.read()
        except (OSError, http.client.HTTPException):  # the stream cut when the server stopped
            pass

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert opened.wait(60)
    service.process.terminate()
    service.process.wait(60)  # it used to wait for the stream for ever
    reader.join(30)
    assert not reader.is_alive()
