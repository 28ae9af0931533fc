"""The versioned store against git on the same data: ``python benchmarks/bench_store_git.py``.

Four benchmarks, each case run ``--repeat`` times interleaved with its baseline (best and median
seconds; ratios of best to best and median to median, measured in the same run). Options:
``--quick`` (small sizes), ``--repeat N`` (default 2), ``--dir`` (where the temporary folder
goes), ``--json`` (default ``benchmarks/results/store.json``). See benchmarks/README.md, section
"store".

put_dir   ``Store.put_dir`` of a generated folder of 100k files of 1 KB (CSV text, 100
          subfolders) into a fresh store, one commit; against ``git add -A && git commit -q`` on
          a copy of the folder (a fresh ``git init`` each run). Goal: at most git's time.
big file  ``Store.put_file`` of a 1 GB local file (random bytes) into a fresh store, against
          ``cp``; then the same file put again, which must store no new object and no new byte.
list      a 1M-file commit (built with ``Store.put_files`` from 1,000 distinct small contents,
          so its 1M content look-ups mostly hit the writer's session; build time is shown):
          the first page of 1,000; a full walk with ``Store.walk_files`` (the streaming API, which
          resolves the reference once and reads 10,000 files per batch); and a full walk in
          pages of 1,000 and 10,000 (``list_files(recursive=True, start_after=..., limit=...)``,
          each page a separate call that resolves the reference again), with the repo at 1
          commit and again after 120 more commits. Goal: under 1 s each. Reference: ``git
          ls-tree -r --name-only`` of the same 1M paths in a git repo built with ``git
          update-index --index-info``. The store keeps recently read tree nodes in a 64 MiB
          cache; the 1M-file tree's leaves (about 105 MB) do not fit, so every full walk reads
          them from the database again.
diff      ``Store.diff`` of two 100k-file commits differing in 10 files (the put_dir commit and
          one changing 10 of its files), then after 120 more commits: the same pair and a new
          pair at the head. Goal: under 0.5 s each. Reference: ``git diff --name-status`` of the
          same change in the put_dir benchmark's git repo.

Every result is checked (file counts, sampled bytes, hashes, listed paths, diff entries); a wrong
one stops the run with ``BENCHMARK FAILED``. Buffers are written to disk (``os.sync``) before each
timed run. git runs with its defaults except ``gc.auto=0`` (no background repack while the next
case is timed) and no user or system configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

import blake3  # noqa: E402
from harness import BenchmarkError, Case, Row, format_table, measure  # noqa: E402

from headrace.store.content import ContentWriter  # noqa: E402
from headrace.store.objects import ObjectStore  # noqa: E402
from headrace.store.store import Store  # noqa: E402

MiB = 1024 * 1024
HISTORY = 120  # commits added to show that listing and diffing do not depend on history
CHANGED = 10  # files that differ between the two commits of the diff benchmark


@dataclass(frozen=True)
class Sizes:
    put_files: int  # files of put_dir (and of the diff commits)
    big_mb: int
    list_files: int
    page: int


FULL = Sizes(put_files=100_000, big_mb=1024, list_files=1_000_000, page=1_000)
QUICK = Sizes(put_files=10_000, big_mb=64, list_files=100_000, page=1_000)

GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def git(*args: str, cwd: Path, stdin: bytes | None = None) -> bytes:
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, input=stdin, capture_output=True, check=False
    )
    if done.returncode:
        raise BenchmarkError(f"git {' '.join(args)} failed: {done.stderr.decode().strip()}")
    return done.stdout


def git_init(path: Path) -> None:
    git("init", "-q", str(path), cwd=path.parent)
    git("config", "gc.auto", "0", cwd=path)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds of ``fn()`` (after writing dirty buffers to disk) and its result."""
    os.sync()
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def open_store(home: Path, fsync: bool = True) -> Store:
    """A store in ``home`` (SQLite + local folder), whatever $HEADRACE_DB/_OBJECTS say;
    ``fsync=False`` turns off flushing objects to disk (the default before issue 13)."""
    home.mkdir(parents=True, exist_ok=True)
    store = Store.open(
        home, db=f"sqlite:///{home.absolute()}/metadata.db", objects=str(home / "objects")
    )
    store.objects.fsync = fsync
    return store


def object_stats(store: Store) -> tuple[int, int]:
    """Number of objects and their bytes on disk."""
    keys = list(store.objects.keys())
    return len(keys), sum(store.objects.size(k) for k in keys)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchmarkError(message)


def absolute_goal(row: Row, limit: float) -> Row:
    row.goal = f"< {limit:g} s"
    row.goal_met = row.best < limit
    return row


# ---- 1. put_dir of 100k files of 1 KB against git add + commit


def csv_bytes(i: int, size: int = 1024) -> bytes:
    rows = "".join(f"{i},{j},{(i * 31 + j * 7) % 1000},{(i ^ j) & 0xFFFF:05d}\n" for j in range(60))
    return rows.encode()[:size]


def rel_path(i: int) -> str:
    return f"d{i // 1000:03d}/part-{i:06d}.csv"


def bench_put_dir(
    tmp: Path, n: int, repeat: int, facts: dict[str, Any]
) -> tuple[list[Row], dict[str, Any]]:
    data = tmp / "put-data"
    for d in range(-(-n // 1000)):
        (data / f"d{d:03d}").mkdir(parents=True)
    for i in range(n):
        (data / rel_path(i)).write_bytes(csv_bytes(i))
    work = tmp / "put-git"
    shutil.copytree(data, work)
    state: dict[str, Any] = {}

    def run_git(_: int) -> float:
        shutil.rmtree(work / ".git", ignore_errors=True)
        git_init(work)
        seconds, _ = timed(
            lambda: subprocess.run(
                "git add -A && git commit -q -m all", shell=True, cwd=work, env=GIT_ENV, check=True
            )
        )
        return seconds

    def check_git(_: int) -> None:
        listed = git("ls-tree", "-r", "--name-only", "HEAD", cwd=work).count(b"\n")
        check(listed == n, f"put_dir: git committed {listed} files, expected {n}")

    def run_store(_: int) -> float:
        if "store" in state:
            state["store"].close()
        home = tmp / "put-store"
        shutil.rmtree(home, ignore_errors=True)
        store = open_store(home)
        store.create_repo("files")
        seconds, info = timed(lambda: store.put_dir("files@master", data, message="all"))
        state["store"], state["commit"] = store, info
        return seconds

    def run_store_no_fsync(_: int) -> float:
        home = tmp / "put-store-no-fsync"
        shutil.rmtree(home, ignore_errors=True)
        with open_store(home, fsync=False) as store:
            store.create_repo("files")
            seconds, _ = timed(lambda: store.put_dir("files@master", data, message="all"))
        return seconds

    def check_store(_: int) -> None:
        store, info = state["store"], state["commit"]
        check(info.file_count == n, f"put_dir: commit has {info.file_count} files, expected {n}")
        for i in random.Random(7).sample(range(n), min(n, 20)):
            got = store.get_file(f"files@{info.id}:/{rel_path(i)}")
            check(got == csv_bytes(i), f"put_dir: /{rel_path(i)} reads back wrong")
        state["objects"] = object_stats(store)[0]

    def run_writer_only(_: int) -> float:
        # Diagnostic: the same files through a ContentWriter that asks no metadata whether a
        # content is known (read, hash, pack, write objects; no commit).
        root = tmp / "put-writer-only"
        shutil.rmtree(root, ignore_errors=True)
        writer = ContentWriter(ObjectStore(str(root)), lookup=None)
        files = sorted(p for p in data.rglob("*") if p.is_file())
        seconds, _ = timed(lambda: ([writer.add_file(p) for p in files], writer.flush()))
        return seconds

    rows = measure(
        "put_dir",
        [
            Case(f"git add -A && git commit ({n:,} files of 1 KB)", run_git, check_git,
                 elements=n),
            Case("Store.put_dir, one commit", run_store, check_store, goal=("<=", 1.0),
                 elements=n),
            Case("Store.put_dir, objects not fsynced", run_store_no_fsync, elements=n,
                 note="the cost of durability: the default before issue 13"),
            Case("diagnostic: ContentWriter only, no look-ups", run_writer_only, elements=n,
                 note="reads, hashes, packs the files; no metadata"),
        ],
        repeat,
        log,
    )  # fmt: skip
    rows[1].note = f"{state['objects']} objects (packs)"
    facts["put_dir"] = {"files": n, "file_bytes": 1024, "store_objects": state["objects"]}
    return rows, state


# ---- 4. diff of two 100k-file commits differing in 10 files


def bench_diff(tmp: Path, put: dict[str, Any], n: int, repeat: int) -> list[Row]:
    store: Store = put["store"]
    base = put["commit"]
    changed = [rel_path(i) for i in range(0, n, n // CHANGED)][:CHANGED]

    def change(tag: str) -> Any:
        return store.put_files(
            "files@master", [(p, f"{tag} {p}\n".encode()) for p in changed], message=tag
        )

    first = change("first change")
    work = tmp / "put-git"
    for p in changed:
        (work / p).write_bytes(f"first change {p}\n".encode())
    git("add", "-A", cwd=work)
    git("commit", "-q", "-m", "change", cwd=work)
    expected = sorted("/" + p for p in changed)

    def check_diff(entries: Any, what: str) -> None:
        got = sorted(e.path for e in entries)
        kinds = {e.kind for e in entries}
        check(got == expected and kinds == {"modified"}, f"diff {what}: got {got} {kinds}")

    def run_git(_: int) -> float:
        seconds, out = timed(lambda: git("diff", "--name-status", "HEAD~1", "HEAD", cwd=work))
        check(out.count(b"\n") == CHANGED, f"git diff listed {out!r}")
        return seconds

    def diff_case(new: str, old: str, what: str) -> Callable[[int], float]:
        def run(_: int) -> float:
            seconds, entries = timed(lambda: store.diff(new, old))
            check_diff(entries, what)
            return seconds

        return run

    pair = (f"files@{first.id}", f"files@{base.id}")
    commits = len(store.list_commits("files"))
    rows = measure(
        "diff",
        [
            Case("git diff --name-status (same change)", run_git),
            Case(f"Store.diff, repo of {commits} commits", diff_case(*pair, "short history")),
        ],
        repeat,
        log,
    )
    log(f"diff: adding {HISTORY} commits")
    for i in range(HISTORY):
        store.put_file(f"files@master:/history/{i}.txt", f"commit {i}\n".encode())
    head = store.inspect_commit("files@master")
    second = change("second change")
    commits = len(store.list_commits("files"))
    later = measure(
        "diff",
        [
            Case("git diff --name-status (same change)", run_git),
            Case(
                f"Store.diff, same pair, repo of {commits} commits",
                diff_case(*pair, "same pair"),
            ),
            Case(
                f"Store.diff, new pair at the head, {commits} commits",
                diff_case(f"files@{second.id}", f"files@{head.id}", "new pair"),
            ),
        ],
        repeat,
        log,
    )
    rows += later[1:]
    return [rows[0], *(absolute_goal(r, 0.5) for r in rows[1:])]


# ---- 2. a 1 GB file against cp, and putting it again


def bench_big(tmp: Path, size_mb: int, repeat: int, facts: dict[str, Any]) -> list[Row]:
    source = tmp / "big.bin"
    rnd = random.Random(2024)
    hasher = blake3.blake3()
    with open(source, "wb") as f:
        for _ in range(size_mb):
            block = rnd.randbytes(MiB)
            hasher.update(block)
            f.write(block)
    digest = hasher.hexdigest()
    size = size_mb * MiB
    state: dict[str, Any] = {}

    def run_cp(_: int) -> float:
        target = tmp / "big-copy.bin"
        target.unlink(missing_ok=True)
        seconds, _ = timed(lambda: subprocess.run(["cp", str(source), str(target)], check=True))
        check(target.stat().st_size == size, "cp: the copy has the wrong size")
        return seconds

    def run_put(_: int) -> float:
        if "store" in state:
            state["store"].close()
        home = tmp / "big-store"
        shutil.rmtree(home, ignore_errors=True)
        store = state["store"] = open_store(home)
        store.create_repo("big")
        seconds, _ = timed(lambda: store.put_file("big@master:/big.bin", source))
        info = store.inspect_file("big@master:/big.bin")
        check(info.size == size and info.hash == digest, f"put_file stored {info}")
        state["after_put"] = object_stats(store)
        return seconds

    def run_put_no_fsync(_: int) -> float:
        home = tmp / "big-store-no-fsync"
        shutil.rmtree(home, ignore_errors=True)
        with open_store(home, fsync=False) as store:
            store.create_repo("big")
            seconds, _ = timed(lambda: store.put_file("big@master:/big.bin", source))
        return seconds

    def run_reput(_: int) -> float:
        store = state["store"]
        seconds, commit = timed(lambda: store.put_file("big@master:/big.bin", source))
        after = object_stats(store)
        check(
            after == state["after_put"],
            f"putting the same file again stored something: objects and bytes "
            f"{state['after_put']} before, {after} after",
        )
        check(commit.file_count == 1, "the re-put commit should hold the one file")
        return seconds

    rows = measure(
        "big file",
        [
            Case(f"cp of a {size_mb} MB file", run_cp),
            Case("Store.put_file (chunked, fresh store)", run_put),
            Case(
                "Store.put_file, objects not fsynced",
                run_put_no_fsync,
                note="the default before issue 13",
            ),
            Case("Store.put_file again, unchanged", run_reput),
        ],
        repeat,
        log,
    )
    objects, stored = state["after_put"]
    for row in rows:
        row.note = f"{size / row.best / 1e6:.0f} MB/s"
    rows[1].note += f"; {objects} chunks, {stored / 1e6:.0f} MB stored"
    rows[3].note += "; 0 new objects, 0 new bytes"
    facts["big_file"] = {"bytes": size, "chunks": objects, "stored_bytes": stored}
    state["store"].close()
    return rows


# ---- 3. listing a 1M-file commit


def list_path(i: int) -> str:
    return f"data/{i // 1000:04d}/part-{i:07d}.parquet"


def bench_list(tmp: Path, n: int, page: int, repeat: int, facts: dict[str, Any]) -> list[Row]:
    values = [f"partition value {v}\n".encode() for v in range(1000)]
    home = tmp / "list-store"
    store = open_store(home)
    store.create_repo("wide")
    log(f"list: building a commit of {n:,} files")
    build_seconds, first = timed(
        lambda: store.put_files(
            "wide@master", ((list_path(i), values[i % 1000]) for i in range(n)), message="wide"
        )
    )
    check(first.file_count == n, f"list: built {first.file_count} files, expected {n}")
    log(f"list: built in {build_seconds:.1f} s; building the same tree in git")
    git_seconds, git_commit = build_git_tree(tmp, n, values)
    facts["list"] = {
        "files": n,
        "store_build_seconds": round(build_seconds, 2),
        "git_build_seconds": round(git_seconds, 2),
    }
    expected_last = "/" + list_path(n - 1)

    def run_git(_: int) -> float:
        seconds, out = timed(
            lambda: git("ls-tree", "-r", "--name-only", git_commit, cwd=tmp / "list-git")
        )
        check(out.count(b"\n") == n, "git ls-tree listed the wrong number of paths")
        return seconds

    def first_page(ref: str) -> Callable[[int], float]:
        def run(_: int) -> float:
            seconds, got = timed(lambda: store.list_files(ref, recursive=True, limit=page))
            check(
                len(got) == page and got[0].path == "/" + list_path(0),
                f"list: first page of {ref} is wrong",
            )
            return seconds

        return run

    def walk(ref: str, size: int, total: int) -> Callable[[int], float]:
        def all_pages() -> tuple[int, str | None]:
            count, last = 0, None
            while True:
                got = store.list_files(ref, recursive=True, start_after=last, limit=size)
                if not got:
                    return count, last
                count += len(got)
                last = got[-1].path

        def run(_: int) -> float:
            seconds, (count, last) = timed(all_pages)
            check(count == total, f"list: walked {count} files of {ref}, expected {total}")
            check(last is not None and last >= expected_last, f"list: last path {last}")
            return seconds

        return run

    def stream(ref: str, total: int) -> Callable[[int], float]:
        def all_files() -> tuple[int, str | None]:
            count, last = 0, None
            for info in store.walk_files(ref):
                count += 1
                last = info.path
            return count, last

        def run(_: int) -> float:
            seconds, (count, last) = timed(all_files)
            check(count == total, f"list: walk_files gave {count} files of {ref}, not {total}")
            check(last is not None and last >= expected_last, f"list: last path {last}")
            return seconds

        return run

    def cases(ref: str, total: int, label: str) -> list[Case]:
        return [
            Case(f"git ls-tree -r --name-only ({n:,} paths)", run_git),
            Case(f"first page of {page:,}, {label}", first_page(ref)),
            Case(f"walk_files (streamed), {label}", stream(ref, total)),
            Case(f"walk in pages of {page:,}, {label}", walk(ref, page, total)),
            Case(f"walk in pages of {page * 10:,}, {label}", walk(ref, page * 10, total)),
        ]

    rows = measure("list", cases("wide@master", n, "repo of 1 commit"), repeat, log)
    log(f"list: adding {HISTORY} commits")
    for i in range(HISTORY):
        store.put_file(f"wide@master:/history/{i}.txt", f"commit {i}\n".encode())
    label = f"repo of {HISTORY + 1} commits"
    later = measure("list", cases("wide@master", n + HISTORY, label), repeat, log)
    by_id = measure(
        "list",
        [
            Case("git ls-tree", run_git),
            Case(f"walk_files of the first commit by id, {label}", stream(f"wide@{first.id}", n)),
            Case(f"walk of the first commit by id, {label}", walk(f"wide@{first.id}", page, n)),
        ],
        repeat,
        log,
    )
    store.close()
    rows += later[1:] + by_id[1:]
    rows[0].note = f"git tree built in {git_seconds:.1f} s (update-index, write-tree)"
    out = [rows[0]]
    for row in rows[1:]:
        if "walk" in row.case:
            row.note = f"{n / row.best / 1e6:.2f} M files/s"
        out.append(absolute_goal(row, 1.0))
    out[1].note = f"commit built with put_files in {build_seconds:.1f} s"
    return out


def build_git_tree(tmp: Path, n: int, values: list[bytes]) -> tuple[float, str]:
    """A git commit of the same ``n`` paths and contents, built without a working copy."""
    repo = tmp / "list-git"
    git_init(repo)
    blobs = tmp / "list-blobs"
    blobs.mkdir()
    names = []
    for v, data in enumerate(values):
        (blobs / f"v{v}").write_bytes(data)
        names.append(str(blobs / f"v{v}"))
    start = time.perf_counter()
    shas = git("hash-object", "-w", "--stdin-paths", cwd=repo, stdin="\n".join(names).encode())
    sha = shas.decode().split()
    index = "".join(f"100644 {sha[i % 1000]}\t{list_path(i)}\n" for i in range(n))
    git("update-index", "--add", "--index-info", cwd=repo, stdin=index.encode())
    tree = git("write-tree", cwd=repo).decode().strip()
    commit = git("commit-tree", tree, "-m", "wide", cwd=repo).decode().strip()
    return time.perf_counter() - start, commit


# ---- the command


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git": git("--version", cwd=HERE).decode().strip(),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k files, 64 MB, 100k listed")
    parser.add_argument("--repeat", type=int, default=2, help="runs per case (default 2)")
    parser.add_argument("--dir", help="folder for the temporary data (default: the system's)")
    parser.add_argument("--json", default=str(HERE / "results" / "store.json"))
    parser.add_argument(
        "--writes-only", action="store_true", help="only put_dir and big file (no diff, list)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    sizes = QUICK if args.quick else FULL
    info = machine()
    log(
        f"store vs git ({'quick' if args.quick else 'full'} sizes, repeat {args.repeat}) on "
        f"{info['cpus']} CPUs, Python {info['python']}, {info['git']}"
    )
    facts: dict[str, Any] = {}
    rows: list[Row] = []
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="headrace-bench-git-", dir=args.dir) as name:
            tmp = Path(name)
            log(f"put_dir: generating {sizes.put_files:,} files of 1 KB")
            put_rows, put = bench_put_dir(tmp, sizes.put_files, args.repeat, facts)
            rows += put_rows
            if not args.writes_only:
                rows += bench_diff(tmp, put, sizes.put_files, args.repeat)
            put["store"].close()
            log(f"big file: generating {sizes.big_mb} MB")
            rows += bench_big(tmp, sizes.big_mb, args.repeat, facts)
            if not args.writes_only:
                rows += bench_list(tmp, sizes.list_files, sizes.page, args.repeat, facts)
    except BenchmarkError as e:
        print(f"BENCHMARK FAILED: {e}", file=sys.stderr)
        return 1
    total = time.perf_counter() - started
    print(format_table(rows))
    missed = [f"{r.benchmark} / {r.case}" for r in rows if r.goal_met is False]
    print(f"\n{total:.0f} s in all; goals missed: {', '.join(missed) if missed else 'none'}")
    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": info,
        "mode": "quick" if args.quick else "full",
        "repeat": args.repeat,
        "seconds_total": round(total, 1),
        "facts": facts,
        "rows": [r.to_json() for r in rows],
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    log(f"results written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
