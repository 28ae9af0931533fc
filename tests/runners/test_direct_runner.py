"""The direct runner's job API, failure handling, memory budget and worker processes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap
import threading
import time

import cloudpickle
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import headrace.beam as beam
from headrace.beam.options.pipeline_options import PipelineOptions
from headrace.beam.testing.util import assert_that, equal_to
from headrace.model.result import PipelineState
from headrace.plan import build_plan

MULTI = {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}


@pytest.fixture(params=["in_process", "two_processes"])
def options(request):
    return PipelineOptions(**({} if request.param == "in_process" else MULTI))


# -- job API -------------------------------------------------------------------------------------


def test_run_returns_result_with_done_state_and_metrics(options):
    class Counting(beam.DoFn):
        def __init__(self):
            self.seen = beam.metrics.Metrics.counter("test", "seen")
            self.sizes = beam.metrics.Metrics.distribution("test", "sizes")
            self.last = beam.metrics.Metrics.gauge("test", "last")

        def process(self, x):
            self.seen.inc()
            self.sizes.update(x)
            self.last.set(x)
            yield x

    p = beam.Pipeline(options=options)
    _ = p | beam.Create(list(range(1, 11))) | "Counting" >> beam.ParDo(Counting())
    result = p.run()
    assert result.wait_until_finish() == PipelineState.DONE
    assert result.state == PipelineState.DONE
    metrics = result.metrics().query(beam.metrics.MetricsFilter().with_namespace("test"))
    (seen,) = metrics["counters"]
    assert (seen.key.step, seen.key.metric.name, seen.committed, seen.attempted) == (
        "Counting",
        "seen",
        10,
        10,
    )
    (sizes,) = metrics["distributions"]
    assert (sizes.committed.count, sizes.committed.sum, sizes.committed.min) == (10, 55, 1)
    assert sizes.committed.max == 10
    (last,) = metrics["gauges"]
    assert last.committed.value in range(1, 11)


def test_wait_until_finish_with_duration_returns_running_then_done(tmp_path):
    gate = tmp_path / "gate"

    def slow(x):
        deadline = time.monotonic() + 10
        while not gate.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return x

    p = beam.Pipeline()
    _ = p | beam.Create([1]) | beam.Map(slow)
    result = p.run()
    assert result.wait_until_finish(duration=50) == PipelineState.RUNNING
    assert result.state == PipelineState.RUNNING
    gate.touch()
    assert result.wait_until_finish() == PipelineState.DONE


def test_unpicklable_capture_fails_at_construction_naming_the_label():
    lock = threading.Lock()
    p = beam.Pipeline()
    with pytest.raises(TypeError, match=r"'Locked' holds something that cannot be pickled"):
        _ = p | beam.Create([1]) | "Locked" >> beam.Map(lambda x: (lock, x))


def test_cancel_stops_a_running_pipeline(tmp_path):
    def slow(x):
        time.sleep(0.01)
        return str(x)

    p = beam.Pipeline(options=PipelineOptions(direct_bundle_size=1))
    _ = (
        p
        | beam.Create(list(range(100_000)))
        | beam.Map(slow)
        | beam.io.WriteToText(str(tmp_path / "out"))
    )
    result = p.run()
    time.sleep(0.2)
    assert result.cancel() == PipelineState.CANCELLED
    assert result.state == PipelineState.CANCELLED
    assert os.listdir(tmp_path) == []  # no output, no temp dir


# -- failures ------------------------------------------------------------------------------------


class Teardowns:
    path = ""


class Invert(beam.DoFn):
    def __init__(self, marker):
        self.marker = marker

    def process(self, x):
        yield 1 / x

    def teardown(self):
        with open(self.marker, "a") as f:
            f.write("teardown\n")


def _fail_in_user_code(options, tmp_path):
    marker = tmp_path / "teardown.log"
    out = tmp_path / "out"
    out.mkdir()
    p = beam.Pipeline(options=options)
    _ = (
        p
        | beam.Create([3, 2, 1, 0, 5])
        | "Invert" >> beam.ParDo(Invert(str(marker)))
        | beam.Map(str)
        | beam.io.WriteToText(str(out / "part"))
    )
    with pytest.raises(ZeroDivisionError) as info:
        p.run().wait_until_finish()
    return info.value, marker, out


def test_user_error_names_label_and_element_and_keeps_frames(tmp_path):
    error, marker, out = _fail_in_user_code(PipelineOptions(), tmp_path)
    notes = "\n".join(getattr(error, "__notes__", []))
    assert "transform 'Invert' failed on element 0" in notes
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    assert frames[-1] == "process"  # the user's own frame is kept
    assert marker.read_text().count("teardown") == 1
    assert os.listdir(out) == []  # nothing visible: no shard, no temp dir


def test_user_error_in_worker_process(tmp_path):
    error, marker, out = _fail_in_user_code(PipelineOptions(**MULTI), tmp_path)
    notes = "\n".join(getattr(error, "__notes__", []))
    assert "transform 'Invert' failed on element 0" in notes
    assert "Traceback in the worker process" in notes
    assert "1 / x" in notes
    assert marker.read_text().count("teardown") >= 1
    assert os.listdir(out) == []


def test_failure_in_map_fast_path_reports_element():
    p = beam.Pipeline()
    _ = p | beam.Create(["1", "2", "x", "4"]) | "ToInt" >> beam.Map(int)
    with pytest.raises(ValueError) as info:
        p.run().wait_until_finish()
    assert "transform 'ToInt' failed on element 'x'" in "\n".join(info.value.__notes__)


def test_result_state_is_failed_after_error():
    p = beam.Pipeline()
    _ = p | beam.Create([0]) | beam.Map(lambda x: 1 / x)
    result = p.run()
    with pytest.raises(ZeroDivisionError):
        result.wait_until_finish()
    assert result.state == PipelineState.FAILED


def test_group_by_key_on_non_pairs_at_run_time_names_label():
    p = beam.Pipeline()
    # int(x) + 0: a function whose output type is not inferred, so only the run finds the non-pairs
    # (Map(lambda x: x) would be inferred as int and refused when the pipeline is built).
    _ = p | beam.Create([1, 2]) | beam.Map(lambda x: int(x) + 0) | "Group" >> beam.GroupByKey()
    with pytest.raises(ValueError, match=r"'Group' needs \(key, value\) pairs, got 1"):
        p.run().wait_until_finish()


def test_unhashable_key_error_names_label():
    p = beam.Pipeline()
    _ = p | beam.Create([([1], 2)]) | beam.Map(lambda x: x) | "Sum" >> beam.CombinePerKey(sum)
    with pytest.raises(TypeError, match=r"'Sum/GroupByKey'|'Sum'.*unhashable key"):
        p.run().wait_until_finish()


# -- memory budget -------------------------------------------------------------------------------

SPILL_SCRIPT = textwrap.dedent(
    """
    import sys
    import headrace.beam as beam
    from headrace.beam.options.pipeline_options import PipelineOptions
    from headrace.model.sources import BoundedSource

    N, KEYS = int(sys.argv[1]), 5000

    class Pairs(BoundedSource):
        def __init__(self, lo=0, hi=N):
            self.lo, self.hi = lo, hi
        def split(self, n):
            step = -(-(self.hi - self.lo) // n)
            return [Pairs(a, min(a + step, self.hi)) for a in range(self.lo, self.hi, step)]
        def read(self):
            pad = "x" * 40
            for i in range(self.lo, self.hi):
                yield (i % KEYS, (i, pad + str(i)))

    def check(kv):
        k, vs = kv
        ids = sorted(v[0] for v in vs)
        assert ids == list(range(k, N, KEYS)), (k, len(ids))
        return 1

    opts = PipelineOptions(direct_memory_budget_mb=int(sys.argv[2]))
    with beam.Pipeline(options=opts) as p:
        (p | beam.io.Read(Pairs()) | beam.GroupByKey() | beam.Map(check)
           | beam.CombineGlobally(sum) | beam.Map(lambda n: print("groups", n)))
    print("spills", sum(s.spills for s in p.result.progress))
    # VmHWM, not ru_maxrss: ru_maxrss survives fork+exec, so a child of a big pytest process
    # would report the parent's peak.
    with open("/proc/self/status") as f:
        hwm = next(line for line in f if line.startswith("VmHWM:"))
    print("maxrss_mb", int(hwm.split()[1]) / 1024)
    """
)


def _run_spill(tmp_path, n, budget_mb):
    script = tmp_path / "spill.py"
    script.write_text(SPILL_SCRIPT)
    out = subprocess.run(
        [sys.executable, str(script), str(n), str(budget_mb)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values = dict(line.split() for line in out.splitlines())
    return int(values["groups"]), int(values["spills"]), float(values["maxrss_mb"])


@pytest.mark.slow
def test_group_by_key_over_three_times_the_budget_spills_and_stays_bounded(tmp_path):
    # ~1.2M pairs of ~170 bytes each: ~200 MB of Python objects against a 64 MB budget.
    groups, spills, rss_small = _run_spill(tmp_path, 1_200_000, 64)
    assert groups == 5000
    assert spills >= 2
    groups_unlimited, spills_unlimited, rss_unlimited = _run_spill(tmp_path, 1_200_000, 100_000)
    assert groups_unlimited == 5000 and spills_unlimited == 0
    # Holding everything needs far more memory than the budgeted run.
    assert rss_small < rss_unlimited - 100, (rss_small, rss_unlimited)


# -- equivalence across bundle sizes and worker counts -------------------------------------------


def _word_pipeline(words, opts):
    results = []
    with beam.Pipeline(options=PipelineOptions(**opts)) as p:
        counts = p | beam.Create(words) | beam.Map(lambda w: (w, 1)) | beam.CombinePerKey(sum)
        grouped = (
            p | "W2" >> beam.Create(words) | beam.Map(lambda w: (w, len(w))) | beam.GroupByKey()
        )
        lengths = grouped | beam.MapTuple(lambda k, vs: (k, sorted(vs)))
        results.append((counts, lengths))
        expected_counts = {}
        for w in words:
            expected_counts[w] = expected_counts.get(w, 0) + 1
        assert_that(counts, equal_to(list(expected_counts.items())), label="counts")
        assert_that(
            lengths,
            equal_to([(w, [len(w)] * n) for w, n in expected_counts.items()]),
            label="lengths",
        )


@settings(max_examples=25, deadline=None)
@given(
    words=st.lists(st.sampled_from(["a", "bb", "ccc", "dd", "e"]), max_size=60),
    bundle=st.integers(min_value=1, max_value=7),
)
def test_results_do_not_depend_on_bundle_size(words, bundle):
    _word_pipeline(words, {"direct_bundle_size": bundle})


@settings(max_examples=5, deadline=None)
@given(words=st.lists(st.sampled_from(["a", "bb", "ccc", "dd", "e"]), max_size=40))
def test_results_do_not_depend_on_worker_count(words):
    _word_pipeline(words, {**MULTI, "direct_bundle_size": 3})


# -- what travels to workers pickles -------------------------------------------------------------


def test_plans_and_user_objects_pickle():
    p = beam.Pipeline()
    data = p | beam.Create([("a", 1)])
    _ = (
        data
        | beam.WindowInto(beam.window.FixedWindows(60))
        | beam.CombinePerKey(beam.combiners.MeanCombineFn())
        | beam.Map(lambda kv, m: kv, beam.pvalue.AsList(data))
    )
    plan = build_plan(p.to_graph())
    again = pickle.loads(pickle.dumps(plan))
    assert again.describe() == plan.describe()
    for node in plan.leaves.values():
        if node.payload is not None:
            obj = node.payload.load()
            cloudpickle.loads(cloudpickle.dumps(obj))
    for obj in [
        beam.window.FixedWindows(10),
        beam.window.SlidingWindows(10, 5),
        beam.window.Sessions(3),
        beam.window.IntervalWindow(0, 10),
        beam.window.GlobalWindow(),
        beam.window.TimestampedValue("x", 3),
        beam.combiners.TopCombineFn(3),
        PipelineOptions(**MULTI),
    ]:
        copy = pickle.loads(pickle.dumps(obj))
        assert type(copy) is type(obj)


def test_reshuffle_spreads_one_worker_output_over_all_workers():
    p = beam.Pipeline(options=PipelineOptions(**MULTI, direct_bundle_size=10))
    pids = (
        p
        | beam.Create([1000])
        | beam.FlatMap(range)
        | beam.Reshuffle()
        | beam.Map(lambda _: os.getpid())
        | beam.Distinct()
        | beam.combiners.Count.Globally()
    )
    assert_that(pids, equal_to([2]))
    p.run().wait_until_finish()
    plan = build_plan(p.to_graph())
    assert "Reshuffle [redistributed" in plan.describe()


def test_failure_in_a_windowed_map_reports_element():
    """The Map feeding a WindowInto runs on its own path; its failures still name the element."""
    p = beam.Pipeline()
    _ = (
        p
        | beam.Create([1, 0, 2])
        | "Stamp" >> beam.Map(lambda x: beam.window.TimestampedValue(x, 1 / x))
        | beam.WindowInto(beam.window.FixedWindows(60))
    )
    with pytest.raises(ZeroDivisionError) as info:
        p.run().wait_until_finish()
    assert "transform 'Stamp' failed on element 0" in "\n".join(info.value.__notes__)
