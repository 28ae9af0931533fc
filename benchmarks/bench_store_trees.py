"""Time the commit file tree (headrace.store.trees) on large trees and print the figures.

``python benchmarks/bench_store_trees.py [--entries N] [--repeat R]``

Input (not timed): ``N`` entries (default 1,000,000) named like a partitioned data set,
``/data/DDDD/part-NNNNNNN.parquet`` with 1,000 files per directory, each with a 64-hex content
hash, built into an in-memory node store. Timed, best and median of ``R`` runs:

- build of the N entries (sorted input, streamed);
- list: the first page (1,000 entries), and a full walk in pages of 1,000 (``start_after``);
- iter_entries over everything; count_and_size of one directory; 1,000 random ``get``;
- apply of 10 changes, and of N/10 changes (a merge-rebuild), to the N-entry tree;
- diff of two 100k-entry trees differing in 10 paths, and the nodes it reads;
- glob ``/data/*`` (one directory entry per 1,000 files).

The figures are absolute seconds; for scale, the time of a plain ``sorted()`` of the input in
tree order is printed under the build.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

try:
    from headrace.store import trees
except ImportError:  # run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from headrace.store import trees

from blake3 import blake3

from headrace.store.trees import Entry, MemoryNodeStore


class CountingStore(MemoryNodeStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def get_node(self, key: str) -> bytes:
        self.reads += 1
        return super().get_node(key)


def make_entries(n: int) -> list[Entry]:
    return [
        Entry(
            f"/data/{i // 1000:04d}/part-{i:07d}.parquet",
            blake3(i.to_bytes(8, "little")).hexdigest(),
            1000 + i % 5000,
        )
        for i in range(n)
    ]


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    runs, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        runs.append(time.perf_counter() - start)
    return min(runs), statistics.median(runs), result


def paged_walk(store: MemoryNodeStore, root: str, page: int) -> int:
    total, after = 0, None
    while True:
        got = trees.list(store, root, start_after=after, limit=page)
        if not got:
            return total
        total += len(got)
        after = got[-1].path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    n, repeat = args.entries, args.repeat

    start = time.perf_counter()
    entries = make_entries(n)
    print(f"generated {n:,} entries in {time.perf_counter() - start:.2f} s (not timed below)")
    rows: list[tuple[str, float, float, str]] = []

    def case(name: str, fn: Callable[[], object], note: str = "", times: int = repeat) -> object:
        best, median, result = timed(fn, times)
        rows.append((name, best, median, note))
        return result

    store = MemoryNodeStore()
    root = case(f"build {n:,} entries", lambda: trees.build(store, entries))
    assert isinstance(root, str)
    leaves = sum(1 for data in store.nodes.values() if data[1] == 0)
    node_bytes = sum(map(len, store.nodes.values()))
    baseline, _, _ = timed(lambda: sorted(entries, key=lambda e: trees.sort_key(e.path)), 1)
    rows.append((f"  (plain sorted() of the {n:,} entries)", baseline, baseline, ""))

    case("list first page (1,000)", lambda: trees.list(store, root, limit=1000), times=20)
    walked = case("full paginated walk (pages of 1,000)", lambda: paged_walk(store, root, 1000))
    assert walked == n
    case("iter_entries over everything", lambda: sum(1 for _ in trees.iter_entries(store, root)))
    case(
        "count_and_size of one directory",
        lambda: trees.count_and_size(store, root, "/data/0123"),
        times=20,
    )
    rng = random.Random(7)
    probes = [e.path for e in rng.sample(entries, 1000)]
    case("1,000 random get", lambda: [trees.get(store, root, p) for p in probes])

    few = {p: Entry(p, "0" * 64, 1) for p in rng.sample([e.path for e in entries], 10)}
    case(f"apply 10 changes to {n:,}", lambda: trees.apply(store, root, few), times=20)
    many = {e.path: Entry(e.path, "1" * 64, 2) for e in entries[::10]}
    case(f"apply {len(many):,} changes to {n:,}", lambda: trees.apply(store, root, many))
    case("glob /data/*", lambda: sum(1 for _ in trees.glob(store, root, "/data/*")))

    small = entries[: min(n, 100_000)]
    counting = CountingStore()
    root_a = trees.build(counting, small)
    changed = {
        e.path: Entry(e.path, "2" * 64, e.size + 1) for e in random.Random(3).sample(small, 10)
    }
    root_b = trees.apply(counting, root_a, changed)
    counting.reads = 0
    diffs = case(
        f"diff of two {len(small):,}-entry trees (10 paths)",
        lambda: list(trees.diff(counting, root_a, root_b)),
        times=20,
    )
    assert isinstance(diffs, list) and len(diffs) == 10
    reads = counting.reads // 20

    print(f"\ntree of {n:,} entries: {len(store.nodes):,} nodes after all cases, "
          f"{leaves:,} leaves in the first build ({n / leaves:.0f} entries per leaf), "
          f"{node_bytes / n:.0f} bytes of nodes per entry")  # fmt: skip
    print(f"diff read {reads} nodes per run (two trees of "
          f"{len(counting.nodes):,} nodes in all)\n")  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'best s':>9}  {'median s':>9}")
    for name, best, median, note in rows:
        print(f"{name:<{width}}  {best:9.4f}  {median:9.4f}  {note}")


if __name__ == "__main__":
    main()
