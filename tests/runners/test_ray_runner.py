"""The Ray runner (issue 14): submission checks, error reports, shuffles, retries, two nodes.

The runner suite (``RUNNER_CONFIGS["ray"]`` in ``tests/conftest.py``) runs every pipeline test
on Ray too; this file pins what is specific to Ray. Tests that need Ray use the session's
two-node cluster (``ray_cluster``: ``ray.cluster_utils.Cluster``, one CPU per node) and are slow
(starting it takes seconds). Ray's own semantics followed here: a task whose worker process dies
is re-run up to ``max_retries`` times, an application exception is not retried
(``retry_exceptions=False``), see Ray's "Task fault tolerance" page
(doc/source/ray-core/fault_tolerance/tasks.rst).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import headrace.beam as beam
from headrace.beam import window
from headrace.beam.options.pipeline_options import PipelineOptions
from headrace.beam.testing.util import assert_that, equal_to
from headrace.beam.transforms.trigger import AccumulationMode, AfterCount, Repeatedly
from headrace.model.pipeline import resolve_runner
from headrace.model.userstate import BagStateSpec
from headrace.runners.ray import RayRunner, UnsupportedOnRay
from headrace.runners.ray.executor import ObjectStoreSpill
from headrace.runners.ray.runner import _local_paths

RAY = {"runner": "RayRunner"}


def test_ray_runner_is_found_by_name() -> None:
    assert isinstance(resolve_runner("RayRunner"), RayRunner)
    assert PipelineOptions(["--runner=RayRunner", "--ray_address=10.0.0.1:6379"]).get_all_options()[
        "ray_address"
    ] == ("10.0.0.1:6379")


class _Stateful(beam.DoFn):
    BUF = BagStateSpec("buf")

    def process(self, kv, buf=beam.DoFn.StateParam(BUF)):
        buf.add(kv[1])
        yield kv


def test_unsupported_features_are_refused_at_submission_all_listed() -> None:
    """Nothing runs: streaming mode, custom triggers and stateful DoFns are named in one error."""
    p = beam.Pipeline(options=PipelineOptions(streaming=True, **RAY))
    kvs = p | beam.Create([("a", 1)])
    _ = kvs | "Keep" >> beam.ParDo(_Stateful())
    _ = kvs | "Every2" >> beam.WindowInto(
        window.GlobalWindows(),
        trigger=Repeatedly(AfterCount(2)),
        accumulation_mode=AccumulationMode.DISCARDING,
    )
    with pytest.raises(UnsupportedOnRay) as info:
        p.run()
    message = str(info.value)
    assert "streaming mode" in message
    assert "stateful DoFn (state or timers): 'Keep'" in message
    assert "custom trigger: the output of 'Every2'" in message


def test_a_missing_ray_is_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    p = beam.Pipeline(options=PipelineOptions(**RAY))
    _ = p | beam.Create([1])
    with pytest.raises(RuntimeError, match=r"pip install 'headrace\[ray\]'"):
        p.run()


def test_local_sink_and_source_paths_are_found(tmp_path: Path) -> None:
    """What a multi-machine cluster refuses at submission: paths only one machine sees."""
    (tmp_path / "in1.txt").write_text("a\n")
    p = beam.Pipeline()
    _ = (
        p
        | beam.io.ReadFromText(str(tmp_path / "in*.txt"))
        | "Out" >> beam.io.WriteToText(str(tmp_path / "out"))
    )
    _ = p | "Remote" >> beam.Create(["x"]) | "S3" >> beam.io.WriteToText("memory://bucket/out")
    found = "\n".join(_local_paths(p.to_graph()))
    assert str(tmp_path / "in*.txt") in found
    assert str(tmp_path / "out") in found
    assert "memory://" not in found


# -- on the session's two-node cluster -----------------------------------------------------------


class _Invert(beam.DoFn):
    def process(self, x):
        yield 1 / x


@pytest.mark.slow
def test_user_error_is_reported_as_on_the_direct_runner(ray_cluster: object, tmp_path: Path):
    """Label and element in the notes, the user's file and line, no sink output."""
    out = tmp_path / "out"
    out.mkdir()
    p = beam.Pipeline(options=PipelineOptions(**RAY))
    _ = (
        p
        | beam.Create([3, 2, 1, 0, 5])
        | "Invert" >> beam.ParDo(_Invert())
        | beam.Map(str)
        | beam.io.WriteToText(str(out / "part"))
    )
    with pytest.raises(ZeroDivisionError) as info:
        p.run().wait_until_finish()
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "transform 'Invert' failed on element 0" in notes
    assert "Traceback in the Ray worker process" in notes
    assert "test_ray_runner.py" in notes and "yield 1 / x" in notes
    assert os.listdir(out) == []


class _Counted(beam.DoFn):
    def __init__(self) -> None:
        self.seen = beam.metrics.Metrics.counter("ray_test", "seen")

    def process(self, x):
        self.seen.inc()
        yield x % 5, x


@pytest.mark.slow
def test_group_by_key_and_metrics_across_tasks(ray_cluster: object, monkeypatch):
    """Counters from every task are summed; shuffle blobs never open on the driver."""
    opened: list[str] = []
    original = ObjectStoreSpill.open

    def spy(self: ObjectStoreSpill, key: str):
        opened.append(key)
        return original(self, key)

    monkeypatch.setattr(ObjectStoreSpill, "open", spy)
    p = beam.Pipeline(options=PipelineOptions(**RAY))
    groups = (
        p
        | beam.Create(list(range(1000)))
        | beam.ParDo(_Counted())
        | beam.GroupByKey()
        | beam.MapTuple(lambda k, vs: (k, sum(vs)))
    )
    assert_that(groups, equal_to([(k, sum(range(k, 1000, 5))) for k in range(5)]))
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(beam.metrics.MetricsFilter().with_name("seen"))["counters"]
    assert sum(c.committed for c in counters) == 1000
    assert not [k for k in opened if k.startswith("run-")], "a shuffle run passed the driver"


def _both_nodes_at_once(folder: str):
    """A DoFn body that waits (up to a minute) until two tasks run at the same time."""

    class Meet(beam.DoFn):
        def start_bundle(self) -> None:
            import ray

            node = ray.get_runtime_context().get_node_id()
            Path(folder, f"{os.getpid()}-{node}").touch()
            deadline = time.monotonic() + 60
            while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)

        def process(self, x):
            import ray

            yield ray.get_runtime_context().get_node_id()

    return Meet()


@pytest.mark.slow
def test_tasks_run_on_both_nodes_of_the_cluster(ray_cluster: object, tmp_path: Path):
    """Two tasks of one stage run at once; with one CPU per node, that is one on each node."""
    folder = tmp_path / "meet"
    folder.mkdir()
    p = beam.Pipeline(options=PipelineOptions(**RAY))
    nodes = (
        p
        | beam.Create(list(range(20)))
        | beam.ParDo(_both_nodes_at_once(str(folder)))
        | beam.Distinct()
        | beam.combiners.Count.Globally()
    )
    assert_that(nodes, equal_to([2]))
    p.run().wait_until_finish()
    assert len({name.split("-", 1)[1] for name in os.listdir(folder)}) == 2


def _kill_once(marker: str, at: int):
    def fn(x: int) -> tuple[int, int]:
        if x == at:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return (x % 3, x)

    return fn


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_worker_killed_mid_run_is_retried_with_identical_output(
    ray_cluster: object, tmp_path: Path
) -> None:
    marker = str(tmp_path / "killed-once")
    with beam.Pipeline(options=PipelineOptions(**RAY)) as p:
        groups = (
            p
            | beam.Create(list(range(40)))
            | "MayDie" >> beam.Map(_kill_once(marker, at=17))
            | beam.GroupByKey()
            | beam.MapTuple(lambda k, vs: (k, sorted(vs)))
        )
        expected = [(k, [x for x in range(40) if x % 3 == k]) for k in range(3)]
        assert_that(groups, equal_to(expected))
    assert os.path.exists(marker), "the DoFn never killed its worker: the test proves nothing"


class _FakeRay:
    """Records how the runner connects (``ray.init`` keywords), without starting Ray."""

    def __init__(self, initialized: bool = False) -> None:
        self.initialized = initialized
        self.calls: list[dict[str, object]] = []

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **kwargs: object) -> None:
        self.calls.append(kwargs)


def test_address_from_option_then_ray_address_then_a_local_ray(monkeypatch) -> None:
    """Ray's own order: an explicit address, else RAY_ADDRESS, else a new local instance
    (ray.init docs, "address" parameter); a Ray already connected is used as it is."""
    from headrace.runners.ray.runner import _connect

    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.9:6379")
    fake = _FakeRay()
    assert _connect(fake, {"ray_address": "10.0.0.1:6379"}) is True
    assert _connect(fake, {}) is True
    monkeypatch.delenv("RAY_ADDRESS")
    assert _connect(fake, {"ray_num_cpus": 3}) is True
    # "local": a new local Ray, never the cluster a `ray start` on this machine recorded
    assert [c.get("address") for c in fake.calls] == ["10.0.0.1:6379", "10.0.0.9:6379", "local"]
    assert fake.calls[2]["num_cpus"] == 3
    assert _connect(fake, {}) is True  # no --ray_num_cpus: Ray counts the machine's CPUs
    assert fake.calls[3]["address"] == "local" and fake.calls[3]["num_cpus"] is None
    assert _connect(_FakeRay(initialized=True), {"ray_address": "x:1"}) is False


def _block(started: str):
    def fn(x: int) -> int:
        Path(started).touch()
        deadline = time.monotonic() + 120  # released only by cancellation
        while time.monotonic() < deadline:
            time.sleep(0.05)
        return x

    return fn


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_cancel_stops_the_ray_tasks_and_commits_no_sink(ray_cluster: object, tmp_path: Path):
    from headrace.model.result import PipelineState

    started = tmp_path / "started"
    out = tmp_path / "out"
    out.mkdir()
    p = beam.Pipeline(options=PipelineOptions(**RAY))
    _ = (
        p
        | beam.Create(list(range(10)))
        | "Block" >> beam.Map(_block(str(started)))
        | beam.Map(str)
        | beam.io.WriteToText(str(out / "part"))
    )
    result = p.run()
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert started.exists(), "no task started within two minutes"
    assert result.cancel() == PipelineState.CANCELLED
    assert os.listdir(out) == []


class _PerProcess(beam.DoFn):
    """Notes ``setup``/``start_bundle`` with the worker's pid in a folder of the test."""

    def __init__(self, folder: str) -> None:
        self.folder = folder

    def _note(self, what: str) -> None:
        with open(os.path.join(self.folder, f"{what}-{os.getpid()}"), "a") as f:
            f.write("x")

    def setup(self) -> None:
        self._note("setup")

    def start_bundle(self) -> None:
        self._note("start")

    def process(self, kv):
        yield kv[0], len(list(kv[1]))

    def teardown(self) -> None:
        self._note("teardown")


def _grouped_per_process(folder: Path, n: int, keys: int, partitions: int) -> tuple[Any, Any]:
    """A pipeline grouping ``n`` numbers by ``x % keys`` into ``partitions`` Ray tasks, then
    noting each DoFn call of ``_PerProcess`` in ``folder``; (pipeline, group sizes)."""
    p = beam.Pipeline(options=PipelineOptions(ray_partitions=partitions, **RAY))
    sizes = (
        p
        | beam.Create(list(range(n)))
        | beam.Map(lambda x: (x % keys, x))
        | beam.GroupByKey()
        | "PerProcess" >> beam.ParDo(_PerProcess(str(folder)))
    )
    return p, sizes


@pytest.mark.slow
def test_dofn_setup_runs_once_per_worker_process_not_per_task(ray_cluster: object, tmp_path):
    """16 tasks (one per partition) on a two-CPU cluster: at most one setup per process, and
    teardown in each of those processes by the time the run's result is back (Ray ends its
    worker processes without exit handlers, so the run's end triggers it: runners/ray/runend)."""
    folder = tmp_path / "calls"
    folder.mkdir()
    p, sizes = _grouped_per_process(folder, 400, 40, 16)
    assert_that(sizes, equal_to([(k, 10) for k in range(40)]))
    p.run().wait_until_finish()

    def counts(what: str) -> dict[str, int]:
        return {f.name.split("-", 1)[1]: len(f.read_text()) for f in folder.glob(f"{what}-*")}

    starts, setups = counts("start"), counts("setup")
    assert sum(starts.values()) == 16  # one bundle per task
    assert set(setups) == set(starts)  # every process that ran a bundle set up once...
    assert set(setups.values()) == {1}
    assert sum(setups.values()) < sum(starts.values())  # ...not once per task
    assert counts("teardown") == setups  # torn down once in each, before the run returned


@pytest.mark.slow
def test_teardown_also_follows_a_failed_run(ray_cluster: object, tmp_path):
    """A run that fails still tears down the instances its other tasks kept set up."""
    folder = tmp_path / "calls"
    folder.mkdir()

    def boom(kv):
        if kv[0] == 7:
            raise ValueError("key 7")
        return kv

    p, sizes = _grouped_per_process(folder, 80, 8, 8)
    _ = sizes | beam.Map(boom)
    with pytest.raises(ValueError, match="key 7"):
        p.run().wait_until_finish()
    setups = {f.name.split("-", 1)[1] for f in folder.glob("setup-*")}
    teardowns = {f.name.split("-", 1)[1] for f in folder.glob("teardown-*")}
    assert setups and teardowns == setups


def _meet(folder: str, me: str, other: str):
    """A Map that marks ``me`` started, then waits (up to 30 s) for ``other`` to start."""

    def fn(x: int) -> tuple[str, bool]:
        Path(folder, me).touch()
        deadline = time.monotonic() + 30
        while not Path(folder, other).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return me, Path(folder, other).exists()

    return fn


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_independent_stages_run_at_the_same_time(ray_cluster: object, tmp_path: Path) -> None:
    """Two branches with no dependency between them: each stage's task waits for the other's;
    run one after the other, the first would give up after 30 s and report False."""
    folder = str(tmp_path)
    p = beam.Pipeline(options=PipelineOptions(ray_partitions=1, **RAY))
    left = p | "Left" >> beam.Create([1]) | "MeetL" >> beam.Map(_meet(folder, "left", "right"))
    right = p | "Right" >> beam.Create([2]) | "MeetR" >> beam.Map(_meet(folder, "right", "left"))
    both = (left, right) | beam.Flatten()
    assert_that(both, equal_to([("left", True), ("right", True)]))
    p.run().wait_until_finish()


def test_partition_count_follows_cpus_and_input_size(tmp_path: Path) -> None:
    from headrace.runners.ray.runner import PARTITION_BYTES, choose_partitions

    small = tmp_path / "small.txt"
    small.write_text("a\n")
    big = tmp_path / "big.txt"
    with open(big, "wb") as f:
        f.truncate(5 * PARTITION_BYTES)  # sparse: a large size without writing it
    for path, cpus, expected in ((small, 2, 2), (small, 3, 3), (big, 2, 5), (big, 1, 4)):
        p = beam.Pipeline()
        _ = p | beam.io.ReadFromText(str(path))
        assert choose_partitions(cpus, p.to_graph()) == expected, (path.name, cpus)


def test_folders_declared_shared_are_not_local_paths(tmp_path: Path, monkeypatch) -> None:
    """HEADRACE_SHARED_FOLDERS: a folder mounted on every node passes the multi-machine check."""
    from headrace.runners.ray.shared import SHARED_FOLDERS_ENV

    shared, private = tmp_path / "shared", tmp_path / "private"
    p = beam.Pipeline()
    _ = p | "A" >> beam.Create(["x"]) | "ToShared" >> beam.io.WriteToText(str(shared / "out"))
    _ = p | "B" >> beam.Create(["y"]) | "ToPrivate" >> beam.io.WriteToText(str(private / "out"))
    monkeypatch.setenv(SHARED_FOLDERS_ENV, str(shared))
    found = "\n".join(_local_paths(p.to_graph()))
    assert str(private / "out") in found
    assert str(shared / "out") not in found
