"""The Ray runner against the direct runner with two worker processes, measured in one run.

Cases (each run ``--repeat`` times, best time kept, outputs compared between runners):

- start-up: from ``run()`` to the first task's first element, on a local Ray that the run starts
  itself (no Ray running before), and on a Ray already connected; the whole run's time beside it;
- word count: ReadFromText, split, CombinePerKey(sum), WriteToText over ``--mb`` MB of text;
- GroupByKey: the same lines keyed by their first word, grouped, the group sizes written;
- Ray Data: the same word count and grouping written with Ray Data's own ``groupby`` (on the
  same local Ray), as a second reference for the Ray runner;
- datums: ``--datums`` trivial datums of bench_stages' copy stage (parallelism 2), as Ray tasks
  (``HEADRACE_RAY_ADDRESS``, several datums per Ray task) vs the local worker pool with
  ``datum_batching``; for Ray also when the last datum was handed to a Ray task (dispatch).

The Ray cases use a local Ray of ``--cpus`` CPUs (default 2, as many worker processes as the
direct runner gets), started once before the timed runs. Usage::

    .venv/bin/python benchmarks/bench_ray.py --mb 20 --repeat 2
    .venv/bin/python benchmarks/bench_ray.py --quick    # 5 MB, 1000 datums, once
"""

from __future__ import annotations

import argparse
import glob
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import headrace.beam as beam
from headrace.beam.options.pipeline_options import PipelineOptions

WORDS = [f"w{i}" for i in range(20000)]
DIRECT2 = {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}


def make_text(path: str, mb: int) -> None:
    rng = random.Random(7)
    target = mb * 1024 * 1024
    with open(path, "w", encoding="utf-8") as f:
        size = 0
        while size < target:
            line = " ".join(rng.choices(WORDS, k=12)) + "\n"
            f.write(line)
            size += len(line)


def wordcount(options: dict[str, Any], src: str, out: str) -> None:
    with beam.Pipeline(options=PipelineOptions([], **options)) as p:
        (
            p
            | beam.io.ReadFromText(src)
            | beam.FlatMap(str.split)
            | beam.Map(lambda w: (w, 1))
            | beam.CombinePerKey(sum)
            | beam.MapTuple(lambda w, n: f"{w}: {n}")
            | beam.io.WriteToText(out)
        )


def group_by_key(options: dict[str, Any], src: str, out: str) -> None:
    with beam.Pipeline(options=PipelineOptions([], **options)) as p:
        (
            p
            | beam.io.ReadFromText(src)
            | beam.Map(lambda line: (line.split(" ", 1)[0], line))
            | beam.GroupByKey()
            | beam.MapTuple(lambda k, vs: f"{k}: {len(list(vs))}")
            | beam.io.WriteToText(out)
        )


def raydata_wordcount(src: str, partitions: int) -> int:
    """Ray Data's own word count: words per batch, then ``groupby("word").count()`` (with as
    many partitions as the Ray runner uses; Ray Data's default, 200, suits large clusters)."""
    import ray.data

    def words(batch: dict[str, Any]) -> dict[str, Any]:
        return {"word": [w for line in batch["text"] for w in line.split()]}

    ds = ray.data.read_text(src).map_batches(words, batch_format="numpy")
    return ds.groupby("word", num_partitions=partitions).count().count()


def raydata_group(src: str, partitions: int) -> int:
    """Ray Data's own grouping: lines keyed by their first word, ``map_groups`` sizing them."""
    import ray.data

    def keyed(batch: dict[str, Any]) -> dict[str, Any]:
        return {"key": [line.split(" ", 1)[0] for line in batch["text"]], "line": batch["text"]}

    def size(group: dict[str, Any]) -> dict[str, Any]:
        return {"key": group["key"][:1], "n": [len(group["line"])]}

    ds = ray.data.read_text(src).map_batches(keyed, batch_format="numpy")
    grouped = ds.groupby("key", num_partitions=partitions)
    return grouped.map_groups(size, batch_format="numpy").count()


def lines_of(prefix: str) -> list[str]:
    found: list[str] = []
    for name in glob.glob(prefix + "*"):
        with open(name, encoding="utf-8") as f:
            found.extend(f.read().splitlines())
    return sorted(found)


def best(fn: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


class _Stamp(beam.DoFn):
    def __init__(self, path: str) -> None:
        self.path = path

    def process(self, x: int) -> Any:
        if not os.path.exists(self.path):
            with open(self.path, "w") as f:
                f.write(repr(time.time()))
        yield x


def startup(options: dict[str, Any], work: str) -> tuple[float, float]:
    """Seconds from run() to the first element of the first task, and of the whole run."""
    stamp = os.path.join(work, f"stamp-{time.time_ns()}")
    p = beam.Pipeline(options=PipelineOptions([], **options))
    _ = p | beam.Create([1, 2, 3]) | beam.ParDo(_Stamp(stamp))
    t0 = time.time()
    p.run().wait_until_finish()
    t1 = time.time()
    with open(stamp) as f:
        first = float(f.read())
    return first - t0, t1 - t0


def datums(n: int, work: str) -> None:
    """Seconds of one job of ``n`` trivial datums: local worker pool, then Ray tasks."""
    from pathlib import Path

    from bench_stages import _setup

    from headrace.stages.catalog import SUCCESS
    from headrace.stages.jobs import run_job
    from headrace.stages.raypool import RAY_ADDRESS_ENV, RayDatumPool

    dispatched: list[float] = []
    handed = [0]
    original = RayDatumPool._dispatch

    def spy(self: RayDatumPool) -> None:  # when the last datum went into a Ray task
        before = len(self._queue)
        original(self)
        handed[0] += before - len(self._queue)
        if handed[0] == n and not dispatched:
            dispatched.append(time.perf_counter())

    queued: list[float] = []  # when the job had queued its last datum
    original_submit = RayDatumPool.submit

    def spy_submit(self: RayDatumPool, task: Any) -> None:
        original_submit(self, task)
        if handed[0] + len(self._queue) == n and not queued:
            queued.append(time.perf_counter())

    RayDatumPool._dispatch = spy  # type: ignore[method-assign]
    RayDatumPool.submit = spy_submit  # type: ignore[method-assign]
    seconds = {}
    started = 0.0
    try:
        for where in ("local pool", "ray"):
            root = Path(tempfile.mkdtemp(dir=work))
            name = "copy" + where.replace(" ", "")
            catalog = _setup(root, n, batching=True, name=name)
            if where == "ray":
                os.environ[RAY_ADDRESS_ENV] = "auto"  # this process is connected: reused
            try:
                started = time.perf_counter()
                job = run_job(catalog, name)
                seconds[where] = time.perf_counter() - started
            finally:
                os.environ.pop(RAY_ADDRESS_ENV, None)
            if job.state != SUCCESS or job.processed != n:
                raise SystemExit(f"datums on {where}: {job.state} {job.reason}")
            catalog.store.close()
    finally:
        RayDatumPool._dispatch = original  # type: ignore[method-assign]
        RayDatumPool.submit = original_submit  # type: ignore[method-assign]
    local, on_ray = seconds["local pool"], seconds["ray"]
    dispatch = dispatched[0] - started if dispatched else float("nan")
    after_queued = dispatched[0] - queued[0] if dispatched and queued else float("nan")
    print(
        f"    datums: {n} trivial datums, parallelism 2: local pool {local:.2f} s "
        f"({n / local:.0f}/s), ray {on_ray:.2f} s ({n / on_ray:.0f}/s); "
        f"ray / local = {on_ray / local:.2f}x; on Ray all {n} handed to Ray tasks "
        f"{dispatch:.2f} s after the job started, {after_queued:.2f} s after the job had queued "
        "them all"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=20, help="MB of text for the data cases")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--datums", type=int, default=10000, help="0 skips the datums case")
    parser.add_argument("--quick", action="store_true", help="5 MB, 1000 datums, repeat 1")
    parser.add_argument("--no-raydata", action="store_true", help="skip the Ray Data cases")
    args = parser.parse_args()
    if args.quick:
        args.mb, args.datums, args.repeat = 5, 1000, 1
    import ray

    work = tempfile.mkdtemp(prefix="bench-ray-")
    try:
        ray_opts: dict[str, Any] = {"runner": "RayRunner", "ray_num_cpus": args.cpus}
        cold_first, cold_total = startup(ray_opts, work)  # starts and stops its own Ray
        print(
            f"start-up, local Ray started by the run: first task after {cold_first:.2f} s "
            f"(whole run {cold_total:.2f} s)"
        )
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        warm_first, warm_total = startup(ray_opts, work)
        print(
            f"start-up, Ray already connected:      first task after {warm_first:.2f} s "
            f"(whole run {warm_total:.2f} s)"
        )
        d_first, d_total = startup(DIRECT2, work)
        print(
            f"start-up, direct runner 2 processes:  first task after {d_first:.2f} s "
            f"(whole run {d_total:.2f} s)"
        )

        src = os.path.join(work, "text.txt")
        make_text(src, args.mb)
        print(f"data: {os.path.getsize(src) / 1e6:.1f} MB of text, best of {args.repeat}")
        outputs: dict[str, int] = {}
        ray_seconds: dict[str, float] = {}
        for name, case in (("word count", wordcount), ("GroupByKey", group_by_key)):
            outs = {}
            seconds = {}
            for runner, opts in (("direct x2", DIRECT2), ("ray", ray_opts)):
                prefix = os.path.join(work, f"{case.__name__}-{runner.replace(' ', '')}")

                def run(
                    opts: dict[str, Any] = opts, prefix: str = prefix, case: Any = case
                ) -> None:
                    for old in glob.glob(prefix + "*"):
                        os.unlink(old)
                    case(opts, src, prefix)

                seconds[runner] = best(run, args.repeat)
                outs[runner] = lines_of(prefix)
            if outs["direct x2"] != outs["ray"]:
                raise SystemExit(f"{name}: the Ray runner's output differs from the direct's")
            mb_s = os.path.getsize(src) / 1e6 / seconds["ray"]
            line = (
                f"{name:>10}: direct x2 {seconds['direct x2']:.2f} s, ray {seconds['ray']:.2f} s "
                f"({mb_s:.1f} MB/s); ray / direct = {seconds['ray'] / seconds['direct x2']:.2f}x"
            )
            outputs[name] = len(outs["ray"])
            ray_seconds[name] = seconds["ray"]
            print(line)
        if args.datums:
            datums(args.datums, work)
        if not args.no_raydata:  # last: Ray Data leaves its executor's workers busy a while
            import logging

            import ray.data

            ray.data.DataContext.get_current().enable_progress_bars = False
            logging.getLogger("ray.data").setLevel(logging.WARNING)
            for name, reference in (
                ("word count", raydata_wordcount),
                ("GroupByKey", raydata_group),
            ):
                rows = [0]

                def by_ray_data(reference: Any = reference, rows: list[int] = rows) -> None:
                    rows[0] = reference(src, args.cpus)

                took = best(by_ray_data, args.repeat)
                if rows[0] != outputs[name]:
                    raise SystemExit(
                        f"{name}: Ray Data found {rows[0]} keys, headrace {outputs[name]}"
                    )
                print(
                    f"{name:>10}: Ray Data's own groupby {took:.2f} s; ray runner / Ray Data = "
                    f"{ray_seconds[name] / took:.2f}x"
                )
    finally:
        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
