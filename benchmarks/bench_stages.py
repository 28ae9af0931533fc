"""Stages: datum skipping, job start and datum throughput. ``python benchmarks/bench_stages.py``.

skip      A repo of ``--files`` (default 100,000) small files, a stage with glob ``/*/*`` (one
          datum per file) whose first job has run. One file changes; the next job is timed whole,
          from ``run_job`` to its finished output commit: it finds the datums to run, skips
          99,999, runs one and commits. Twice: with the incremental planner (only the glob
          matches holding files changed since the last job's input commit are computed) and with
          the full one (every datum computed and its hash compared: what cross, join, group,
          union and ``**`` inputs use). Reported: the job's
          time, its start latency (call to RUNNING: datums computed and compared, skipped
          datums recorded, output commit open), and the per-datum skip cost ((job time - the
          one datum's own run) / skipped datums). Goals: start < 1 s, skip cost <= 20 us.
          Baseline (plain Python doing the same decision): walk a local folder of the same
          files with ``os.scandir``, stat each, and compare (size, mtime) with a dict from the
          previous walk (no content hashing, so a weaker check than the stage's).
throughput  ``--datums`` (default 2,000) datums of a trivial python transform (copy one small
          file upper-cased), with ``datum_batching`` (a worker serves many datums) and without
          (a fresh process per datum), parallelism 2. Baseline: plain Python calling the same
          function per file on local folders, in one process.

Every result is checked (output file count and sampled bytes); a wrong one stops the run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from headrace.stages import planning  # noqa: E402
from headrace.stages.catalog import SUCCESS, Catalog  # noqa: E402
from headrace.stages.jobs import run_job  # noqa: E402
from headrace.stages.spec import load_spec  # noqa: E402
from headrace.store.store import Store  # noqa: E402

TRANSFORM = """
def run(inputs, output):
    for f in inputs["data"].rglob("*"):
        if f.is_file():
            (output / f.name).write_bytes(f.read_bytes().upper())
"""


class BenchmarkError(RuntimeError):
    pass


def _check(cond: bool, what: str) -> None:
    if not cond:
        raise BenchmarkError(f"BENCHMARK FAILED: {what}")


def _files(n: int) -> list[tuple[str, bytes]]:
    return [
        (f"/d{i // 1000:03}/f{i:06}.csv", f"{i},{i * 7 % 1013},row {i}\n".encode())
        for i in range(n)
    ]


def _setup(root: Path, n: int, batching: bool | None = None, name: str = "copy") -> Catalog:
    store = Store.open(root / "store")
    code = root / "code"
    code.mkdir(exist_ok=True)
    (code / "bench_transform.py").write_text(textwrap.dedent(TRANSFORM))
    try:
        store.inspect_repo("data")
    except Exception:
        store.create_repo("data")
        store.put_files("data@master", _files(n))
    catalog = Catalog(store)
    spec = {
        "name": name,
        "input": {"pfs": {"repo": "data", "glob": "/*/*"}},
        "transform": {"python": "bench_transform:run"},
        "parallelism": 2,
    }
    if batching is not None:
        spec["datum_batching"] = batching
    catalog.put_stage(load_spec(spec), str(code / "spec.yaml"))
    return catalog


def bench_skip(n: int, workdir: Path) -> None:
    root = Path(tempfile.mkdtemp(dir=workdir))
    try:
        t = time.perf_counter()
        catalog = _setup(root, n)
        print(f"skip: {n} files stored in {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        first = run_job(catalog, "copy")
        _check(first.state == SUCCESS and first.processed == n, f"first job {first}")
        print(
            f"skip: first job ({n} datums processed, batching, 2 workers) "
            f"{time.perf_counter() - t:.1f} s = {n / (time.perf_counter() - t):.0f} datums/s",
            flush=True,
        )
        store = catalog.store
        figures = {}
        change = 0
        for planner, limit in (("incremental", planning.INCREMENTAL_MAX), ("full", -1)):
            planning.INCREMENTAL_MAX = limit  # -1: every job computes all of its datums
            results = []
            for _attempt in range(3):
                change += 1  # change one file so that each job has exactly one datum to run
                store.put_files("data@master", [(f"/d000/f{change:06}.csv", b"changed\n")])
                marks: dict[str, float] = {}

                def progress(job, marks=marks):
                    marks.setdefault(job.state, time.perf_counter())

                t0 = time.perf_counter()
                job = run_job(catalog, "copy", progress=progress)
                total = time.perf_counter() - t0
                _check(job.state == SUCCESS, f"job failed: {job.reason}")
                _check((job.processed, job.skipped) == (1, n - 1), f"counts {job}")
                row = list(catalog.datums(job.id, states=("success",)))
                _check(len(row) == 1, "one datum ran")
                results.append((total, marks["RUNNING"] - t0, row[0].seconds))
            total, start, one = min(results)
            figures[planner] = (total, start, one, (total - one) / (n - 1) * 1e6)
        planning.INCREMENTAL_MAX = 900
        _check(store.get_file("copy@master:/f000001.csv") == b"CHANGED\n", "changed output")

        # baseline: a plain Python incremental check over a local folder of the same files
        local = root / "local"
        for path, data in _files(n):
            p = local / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)

        def walk() -> dict[str, tuple[int, int]]:
            out = {}
            for d in os.scandir(local):
                for e in os.scandir(d.path):
                    st = e.stat()
                    out[e.path] = (st.st_size, st.st_mtime_ns)
            return out

        before = walk()
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            now = walk()
            changed = [k for k, v in now.items() if before.get(k) != v]
            best = min(best, time.perf_counter() - t0)
            _check(changed == [], "baseline sees no change")
        for planner, (total, start, one, per_skip) in figures.items():
            print(
                f"skip ({planner} planner): job with 1 of {n} datums changed: {total:.3f} s "
                f"(best of 3); start latency {start:.3f} s (goal < 1 s); the one datum "
                f"{one * 1000:.1f} ms; skip cost {per_skip:.1f} us/datum (goal <= 20 us); "
                f"{total / best:.2f}x the baseline"
            )
        print(
            f"skip: baseline plain-Python scandir+stat+compare of {n} local files: {best:.3f} s "
            f"({best / n * 1e6:.1f} us/file)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_throughput(n: int, workdir: Path) -> None:
    root = Path(tempfile.mkdtemp(dir=workdir))
    try:
        rows = []
        for batching in (True, False):
            name = f"copy{int(batching)}"
            catalog = _setup(root, n, batching=batching, name=name)
            t0 = time.perf_counter()
            job = run_job(catalog, name)
            seconds = time.perf_counter() - t0
            _check(job.state == SUCCESS and job.processed == n, f"{job.state} {job.reason}")
            _check(
                catalog.store.get_file(f"{name}@master:/f000003.csv") == b"3,21,ROW 3\n",
                "output bytes",
            )
            rows.append((batching, seconds))
            catalog.store.close()
        # baseline: the same function over local folders, one process
        sys.path.insert(0, str(root / "code"))
        import bench_transform  # type: ignore[import-not-found]

        # The baseline's folders go where the job's datum sandboxes go (memory-backed
        # /dev/shm when there is one): the same file system for the same file work.
        shm = Path("/dev/shm")
        base_root = Path(tempfile.mkdtemp(dir=shm if shm.is_dir() else root))
        local = base_root / "local-in"
        for path, data in _files(n):
            p = local / "data" / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        plain = float("inf")
        for attempt in range(3):  # best of 3: the baseline is all file-system work
            out = base_root / f"local-out-{attempt}"
            t0 = time.perf_counter()
            for d in sorted((local / "data").iterdir()):
                for f in sorted(d.iterdir()):
                    target = out / f.stem
                    target.mkdir(parents=True)
                    single = base_root / f"one-{attempt}" / f.stem / "data"
                    single.mkdir(parents=True)
                    shutil.copyfile(f, single / f.name)
                    bench_transform.run({"data": single}, target)
            plain = min(plain, time.perf_counter() - t0)
        for batching, seconds in rows:
            label = "datum_batching" if batching else "process per datum"
            print(
                f"throughput: {n} datums, {label}, 2 workers: {seconds:.2f} s = "
                f"{n / seconds:.0f} datums/s; {seconds / plain:.2f}x plain Python "
                f"({plain:.2f} s, {n / plain:.0f}/s, 1 process, local copies)"
            )
        shutil.rmtree(base_root, ignore_errors=True)
        speedup = rows[1][1] / rows[0][1]
        print(f"throughput: batching is {speedup:.1f}x faster than a process per datum")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--datums", type=int, default=2_000)
    parser.add_argument("--only", choices=("skip", "throughput"))
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    if args.only in (None, "throughput"):
        bench_throughput(args.datums, args.dir)
    if args.only in (None, "skip"):
        bench_skip(args.files, args.dir)


if __name__ == "__main__":
    main()
