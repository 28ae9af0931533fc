"""Time the store's object layer against plain file writes and copies.

Run: ``python benchmarks/bench_store_objects.py`` (``--quick`` for small sizes).

Two benchmarks, each case run ``--repeat`` times interleaved with its baseline (best and median
seconds, ratios of best to best and median to median):

small files   ``--files`` distinct 1 KB byte strings through ``ContentWriter.add_bytes`` and one
              ``flush`` into a fresh local ObjectStore. Baselines: writing each as its own file
              (a naive one-file-per-blob store) and writing all of them into one file (the I/O
              floor). Also timed: reading every one back with ``read_content``, and
              ``ObjectStore.put`` of each as its own object (atomic writes, no packing).
large file    one ``--large-mb`` MB random file through ``ContentWriter.add_file`` into a fresh
              store, again into the same store (unchanged: nothing new is written), and back out
              with ``write_content_to``. Baselines: ``cp`` of the file (which may copy inside the
              kernel, ``copy_file_range``) and a Python copy in 1 MiB ``read``/``write`` blocks.

Every run's result is checked (keys, sizes, hashes, restored bytes). Buffers are flushed to
disk (``os.sync``) before each timed run, so one run's write-back does not slow the next.
Peak memory of ``add_file`` is measured in a child process (``VmHWM``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from headrace.store.content import (  # noqa: E402
    Content,
    ContentWriter,
    read_content,
    write_content_to,
)
from headrace.store.objects import ObjectStore, hash_bytes  # noqa: E402

MiB = 1024 * 1024


def timed(fn: Callable[..., object], *args: object) -> tuple[float, object]:
    os.sync()
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def report(title: str, times: dict[str, list[float]], baseline: str) -> None:
    print(f"\n{title}")
    print(f"  {'case':<44} {'best s':>8} {'median s':>9} {'x best':>7} {'x median':>9}")
    base_best = min(times[baseline])
    base_median = statistics.median(times[baseline])
    for name, runs in times.items():
        best, median = min(runs), statistics.median(runs)
        print(
            f"  {name:<44} {best:8.3f} {median:9.3f} "
            f"{best / base_best:7.2f} {median / base_median:9.2f}"
        )


def bench_small(tmp: Path, files: int, repeat: int) -> None:
    rnd = random.Random(2024)
    blobs = [rnd.randbytes(1024) for _ in range(files)]
    times: dict[str, list[float]] = {}
    contents: list[Content] = []

    def naive(folder: Path) -> None:
        folder.mkdir()
        for i, blob in enumerate(blobs):
            with open(folder / str(i), "wb") as f:
                f.write(blob)

    def one_file(path: Path) -> None:
        with open(path, "wb") as f:
            for blob in blobs:
                f.write(blob)

    def add(root: Path) -> list[Content]:
        writer = ContentWriter(ObjectStore(str(root)))
        for blob in blobs:
            writer.add_bytes(blob)
        return writer.flush()

    def put_each(root: Path) -> list[str]:
        objects = ObjectStore(str(root))
        return [objects.put(blob) for blob in blobs]

    def read_all(root: Path) -> int:
        objects = ObjectStore(str(root))
        return sum(len(read_content(objects, c)) for c in contents)

    for run in range(repeat):
        cases: list[tuple[str, Callable[[Path], object], Path]] = [
            (f"baseline: {files} files, one per blob", naive, tmp / f"naive{run}"),
            ("baseline: all blobs into one file", one_file, tmp / f"one{run}"),
            (f"add_bytes x {files} + flush", add, tmp / f"store{run}"),
            (f"read_content x {files}", read_all, tmp / f"store{run}"),
            (f"ObjectStore.put x {files} (no packing)", put_each, tmp / f"objects{run}"),
        ]
        for name, fn, target in cases:
            seconds, result = timed(fn, target)
            times.setdefault(name, []).append(seconds)
            if name.startswith("add_bytes"):
                contents = result  # type: ignore[assignment]
                assert [c.hash for c in contents] == [hash_bytes(b) for b in blobs[: len(contents)]]
                assert len(contents) == len(set(blobs))
                objects = list(ObjectStore(str(tmp / f"store{run}")).keys())
                print(f"  (run {run}: {len(contents)} contents in {len(objects)} objects)")
            if name.startswith("read_content"):
                assert result == files * 1024
        for folder in ("naive", "store", "objects"):
            shutil.rmtree(tmp / f"{folder}{run}")
        os.unlink(tmp / f"one{run}")
    report(f"small files: {files} x 1 KB", times, f"baseline: {files} files, one per blob")


def child_add_file(root: str, path: str) -> None:
    """Run in a child process: add one file, print seconds and peak resident memory."""
    start = time.perf_counter()
    content = ContentWriter(ObjectStore(root)).add_file(path)
    seconds = time.perf_counter() - start
    peak_kib = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                peak_kib = int(line.split()[1])
    print(json.dumps({"seconds": seconds, "peak_mib": peak_kib / 1024, "size": content.size}))


def cp(source: Path, target: Path) -> None:
    subprocess.run(["cp", str(source), str(target)], check=True)


def python_copy(source: Path, target: Path) -> None:
    with open(source, "rb", buffering=0) as src, open(target, "wb", buffering=0) as dst:
        while block := src.read(MiB):
            dst.write(block)


def add_file(store: Path, source: Path) -> Content:
    return ContentWriter(ObjectStore(str(store))).add_file(source)


def restore(store: Path, content: Content, target: Path) -> int:
    with open(target, "wb") as out:
        return write_content_to(ObjectStore(str(store)), content, out)


def bench_large(tmp: Path, size_mb: int, repeat: int) -> None:
    source = tmp / "large.bin"
    rnd = random.Random(7)
    with open(source, "wb") as f:
        for _ in range(size_mb):
            f.write(rnd.randbytes(MiB))
    times: dict[str, list[float]] = {}
    for run in range(repeat):
        store = tmp / f"large-store{run}"
        copy = tmp / f"large-copy{run}"
        restored = tmp / f"large-restored{run}"
        python_copied = tmp / f"large-python-copy{run}"

        seconds, _ = timed(cp, source, copy)
        times.setdefault("baseline: cp", []).append(seconds)
        seconds, _ = timed(python_copy, source, python_copied)
        times.setdefault("baseline: Python read/write copy", []).append(seconds)
        seconds, first = timed(add_file, store, source)
        times.setdefault("add_file (new store)", []).append(seconds)
        seconds, again = timed(add_file, store, source)
        times.setdefault("add_file again (unchanged, nothing written)", []).append(seconds)
        assert isinstance(first, Content) and first == again
        seconds, written = timed(restore, store, first, restored)
        times.setdefault("write_content_to (restore)", []).append(seconds)
        assert written == size_mb * MiB
        if run == 0:
            chunks = len(first.layout)
            print(f"  ({size_mb} MB in {chunks} chunks; checking the restored copy)")
            subprocess.run(["cmp", "-s", str(source), str(restored)], check=True)
        shutil.rmtree(store)
        os.unlink(copy)
        os.unlink(python_copied)
        os.unlink(restored)
    report(f"large file: {size_mb} MB random bytes", times, "baseline: cp")
    out = subprocess.run(
        [sys.executable, __file__, "--child-add-file", str(tmp / "child-store"), str(source)],
        check=True,
        capture_output=True,
        text=True,
    )
    child = json.loads(out.stdout)
    print(
        f"  add_file in a fresh process: {child['seconds']:.3f} s, "
        f"peak resident memory {child['peak_mib']:.0f} MiB for a {size_mb} MB file"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--large-mb", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="10k files and a 128 MB file")
    parser.add_argument("--dir", help="folder for temporary data (default: the system's)")
    parser.add_argument("--child-add-file", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_add_file:
        child_add_file(*args.child_add_file)
        return
    if args.quick:
        args.files, args.large_mb = 10_000, 128
    with tempfile.TemporaryDirectory(prefix="headrace-bench-store-", dir=args.dir) as tmp:
        bench_small(Path(tmp), args.files, args.repeat)
        bench_large(Path(tmp), args.large_mb, args.repeat)


if __name__ == "__main__":
    main()
