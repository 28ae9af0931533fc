"""Crash safety: a writer process is killed with SIGKILL at random moments, again and again.

The writer (a script written by this test, run with ``sys.executable``) loops over numbered
steps on the repo ``crash``, one commit per step, and prints ``<step> <commit id>`` right after
each commit returns. Step ``n`` does, by ``n % 6``:

0. a one-shot ``put_file`` of ``/one/<n>.txt``;
1. a ``with store.commit()`` block: four small files (one through ``c.write()``, one empty, one
   the same in every block) and a ~2 MB file cut into chunks (``/big/<n>.bin``, mostly the same
   bytes in every step, so chunks are shared), deleting ``/big/<n-12>.bin``;
2. ``put_dir`` of a local folder of three files (two nested) to ``/dir/<n>/``;
3. ``delete_file`` of ``/one/<n-3>.txt``, or (every other time) of the directory ``/dir/<n-7>``;
4. a one-shot ``put_file`` of ``/side/<n>.txt`` on the branch ``side`` (created from master);
5. ``merge`` of ``side`` into ``master`` (first a fast-forward, then three-way merges).

Every file's bytes are a function of its path (:func:`content_of`), and each commit's message
is ``step <n>``, so the test rebuilds the expected file set of every commit. After each kill the
test reopens the store and checks: ``fsck`` is clean; every commit is FINISHED and nothing is
staged (a killed ``with store.commit()`` block left no open commit); the repo holds exactly the
commits of the steps that finished, each once (the one step in flight when the writer died is
either wholly there or wholly absent; the next writer redoes it if absent); every such commit
lists exactly the expected files with the expected sizes and blake3 hashes; the files a new
commit wrote read back equal; ``gc(grace_seconds=0)`` then removes what the killed writer left
unreferenced and keeps all of the above intact. At the end every distinct content is read back.

``HEADRACE_CRASH_SEED`` replays a run (the seed is in every failure message).
"""

from __future__ import annotations

import functools
import inspect
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import blake3
import pytest
import sqlalchemy as sa

from headrace.store.store import Store

REPO = "crash"
DIR_FILES = ("a.csv", "sub/b.csv", "sub/deeper/c.csv")


# ---- shared with the writer (their source is copied into the writer script)


@functools.cache
def _big_base() -> bytes:
    return random.Random(2024).randbytes(2 * 1024 * 1024 + 4321)


def content_of(path: str) -> bytes:
    """The bytes the writer puts at ``path``: a function of the path alone."""
    if path.startswith("/big/"):
        n = int(path[len("/big/") : -len(".bin")])
        base = _big_base()
        at = n * 104729 % (len(base) - 4096)
        return base[:at] + random.Random(n).randbytes(4096) + base[at + 4096 :]
    if path.endswith("/same.txt"):
        return b"the same bytes in every block\n"
    if path.endswith("/empty.txt"):
        return b""
    return (path + "\n").encode() * (1 + len(path) % 5)


def block_files(n: int) -> list[str]:
    """The files the commit block of step ``n`` writes."""
    return [
        f"/block/{n}/a.txt",
        f"/block/{n}/b.txt",
        f"/block/{n}/same.txt",
        f"/block/{n}/empty.txt",
        f"/big/{n}.bin",
    ]


WRITER_MAIN = """
def exists(store, ref):
    try:
        store.inspect_file(ref)
    except FileNotFound:
        return False
    return True


def step(store, n, local):
    master = REPO + "@master"
    msg = f"step {n}"
    kind = n % 6
    if kind == 0:
        path = f"/one/{n}.txt"
        return store.put_file(f"{master}:{path}", content_of(path), message=msg).id
    if kind == 1:
        a, b, same, empty, big = block_files(n)
        old = f"/big/{n - 12}.bin"
        with store.commit(master, message=msg) as c:
            c.put_file(a, content_of(a))
            with c.write(b) as f:
                f.write(content_of(b))
            c.put_file(same, content_of(same))
            c.put_file(empty, content_of(empty))
            c.put_file(big, io.BytesIO(content_of(big)))
            if n >= 12 and exists(store, f"{master}:{old}"):
                c.delete_file(old)
        return c.info.id
    if kind == 2:
        folder = local / str(n)
        for rel in DIR_FILES:
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content_of(f"/dir/{n}/{rel}"))
        return store.put_dir(f"{master}:/dir/{n}", folder, message=msg).id
    if kind == 3:
        target = f"/one/{n - 3}.txt" if n % 12 == 3 else f"/dir/{n - 7}"
        return store.delete_file(f"{master}:{target}", message=msg).id
    if kind == 4:
        if "side" not in {b.name for b in store.list_branches(REPO)}:
            store.create_branch(REPO + "@side", head=master)
        path = f"/side/{n}.txt"
        return store.put_file(f"{REPO}@side:{path}", content_of(path), message=msg).id
    return store.merge(REPO + "@side", master, message=msg).commit.id


def main():
    home, db, objects, local, start = sys.argv[1:6]
    store = Store.open(home, db=db, objects=objects)
    print("ready", flush=True)
    n = int(start)
    while True:
        commit_id = step(store, n, Path(local))
        print(n, commit_id, flush=True)
        n += 1


main()
"""


def writer_script() -> str:
    helpers = "\n\n".join(inspect.getsource(f) for f in (_big_base, content_of, block_files))
    return "\n".join(
        [
            "import functools, io, random, sys",
            "from pathlib import Path",
            "from headrace.store.errors import FileNotFound",
            "from headrace.store.store import Store",
            f"REPO = {REPO!r}",
            f"DIR_FILES = {DIR_FILES!r}",
            helpers,
            WRITER_MAIN,
        ]
    )


# ---- the test's model of what the store must hold


@functools.cache
def expected_meta(path: str) -> tuple[int, str]:
    data = content_of(path)
    return len(data), blake3.blake3(data).hexdigest()


class Model:
    """The file sets of both branches after the steps applied so far, and of every commit."""

    def __init__(self) -> None:
        self.files: dict[str, set[str]] = {"master": set()}
        self.heads: dict[str, str | None] = {"master": None}
        self.snapshots: dict[str, frozenset[str]] = {}  # commit id -> its files
        self.messages: dict[str, str] = {}  # commit id -> message (each commit once)
        self.new_files: list[tuple[str, str]] = []  # (commit id, path) to read back
        self.next_step = 0

    def apply(self, n: int) -> str:
        """Apply step ``n``; return the branch it moves."""
        master = self.files["master"]
        kind = n % 6
        if kind == 0:
            master.add(f"/one/{n}.txt")
        elif kind == 1:
            master.update(block_files(n))
            master.discard(f"/big/{n - 12}.bin")
        elif kind == 2:
            master.update(f"/dir/{n}/{rel}" for rel in DIR_FILES)
        elif kind == 3 and n % 12 == 3:
            master.remove(f"/one/{n - 3}.txt")
        elif kind == 3:
            gone = {p for p in master if p.startswith(f"/dir/{n - 7}/")}
            assert len(gone) == len(DIR_FILES)
            master -= gone
        elif kind == 4:
            side = self.files.setdefault("side", set(master))
            side.add(f"/side/{n}.txt")
            return "side"
        else:
            master.update(p for p in self.files["side"] if p.startswith("/side/"))
        return "master"

    def record(self, n: int, commit_id: str, where: str) -> None:
        """Step ``n`` finished as commit ``commit_id``."""
        assert n == self.next_step, f"{where}: step {n} reported, expected {self.next_step}"
        branch = self.apply(n)
        snapshot = frozenset(self.files[branch])
        previous = self.heads.get(branch)
        before = self.snapshots[previous] if previous is not None else frozenset()
        known = self.snapshots.setdefault(commit_id, snapshot)
        assert known == snapshot, (
            f"{where}: step {n} returned commit {commit_id}, which is an earlier commit with "
            f"other files (a fast-forward merge that should not have been one?)"
        )
        if commit_id not in self.messages:
            self.messages[commit_id] = f"step {n}"
        self.new_files.extend((commit_id, p) for p in sorted(snapshot - before))
        self.heads[branch] = commit_id
        self.next_step = n + 1


# ---- one run: start, kill, check; many times


def run_writer(
    script: Path, home: Path, db: str, start: int, delay: float, log: Path, after: int = 0
) -> tuple[list[tuple[int, str]], str]:
    """Run the writer from step ``start``; once it is ready and has reported ``after`` finished
    steps, SIGKILL it ``delay`` s later. Return the finished steps it reported and its stderr.

    Waiting for reports (not for time) makes every kill land in a working writer however
    loaded the machine is."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEADRACE_")}
    args = [str(home), db, str(home / "objects"), str(home.parent / "local"), str(start)]
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            cwd=home.parent,
        )
        assert proc.stdout is not None
        try:
            ready = proc.stdout.readline()
            seen = b""
            if ready == b"ready\n":
                for _ in range(after):
                    line = proc.stdout.readline()
                    seen += line
                    if not line.endswith(b"\n"):
                        break
                time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            out = ready + seen + proc.stdout.read()
        finally:
            proc.kill()
            proc.wait()
            proc.stdout.close()
    stderr = log.read_text(errors="replace")
    assert ready == b"ready\n", f"the writer did not start:\n{stderr}"
    assert proc.returncode == -signal.SIGKILL, (
        f"the writer stopped on its own (status {proc.returncode}) before it was killed:\n{stderr}"
    )
    done = []
    for line in out.decode().split("\n")[1:-1]:  # a last line without "\n" was cut by the kill
        n, commit_id = line.split()
        done.append((int(n), commit_id))
    return done, stderr


def reconcile(store: Store, model: Model, where: str) -> bool:
    """Record the step in flight when the writer died if its commit made it; return whether."""
    n = model.next_step
    by_message = {c.message: c for c in store.list_commits(REPO)}
    commit_id = None
    if f"step {n}" in by_message:
        commit_id = by_message[f"step {n}"].id
    elif n % 6 == 5 and "side" in model.heads:
        heads = {b.name: b.head for b in store.list_branches(REPO)}
        if heads["master"] == model.heads["side"] != model.heads["master"]:
            commit_id = heads["master"]  # the merge fast-forwarded
    if commit_id is None:
        return False
    model.record(n, commit_id, where)
    return True


def check_store(store: Store, model: Model, where: str) -> None:
    """Everything the store shows matches the model, and nothing is open or half-made."""
    report = store.fsck()
    assert report.ok, f"{where}: fsck found problems:\n" + "\n".join(report.problems)
    commits = store.list_commits(REPO)
    opened = [c.id for c in commits if not c.finished]
    assert not opened, f"{where}: commits left open by a killed writer: {opened}"
    with store.meta.read() as conn:
        staged = store.meta.staged_content_hashes(conn)
    assert not staged, f"{where}: staged changes left by a killed writer: {sorted(staged)[:5]}"
    actual = {c.id: c.message for c in commits}
    missing = {k: v for k, v in model.messages.items() if k not in actual}
    extra = {k: v for k, v in actual.items() if k not in model.messages}
    assert actual == model.messages, (
        f"{where}: the repo's commits differ from the finished steps: "
        f"missing {missing}, unexpected {extra}, other messages "
        f"{ {k: (v, actual[k]) for k, v in model.messages.items() if actual.get(k, v) != v} }"
    )
    heads = {b.name: b.head for b in store.list_branches(REPO)}
    for branch, head in model.heads.items():
        # A writer killed before its first commit leaves no branch: the model's head is None.
        assert heads.get(branch) == head, (
            f"{where}: {branch} is at {heads.get(branch, '(no branch)')}, expected {head}"
        )
    if "side" not in model.heads and "side" in heads:  # created, then killed before its commit
        assert heads["side"] == model.heads["master"], f"{where}: side is at {heads['side']}"
    for commit_id, files in model.snapshots.items():
        listed = {
            f.path: (f.size, f.hash)
            for f in store.list_files(f"{REPO}@{commit_id}", recursive=True)
        }
        expected = {p: expected_meta(p) for p in files}
        if listed != expected:
            wrong = sorted(p for p in listed.keys() & expected.keys() if listed[p] != expected[p])
            raise AssertionError(
                f"{where}: commit {commit_id} ({model.messages.get(commit_id)}) is not intact: "
                f"missing {sorted(expected.keys() - listed.keys())}, unexpected "
                f"{sorted(listed.keys() - expected.keys())}, other content {wrong}"
            )


def read_back(store: Store, pairs: list[tuple[str, str]], where: str) -> None:
    for commit_id, path in pairs:
        data = store.get_file(f"{REPO}@{commit_id}:{path}")
        assert data == content_of(path), f"{where}: {path} of commit {commit_id} reads wrong"


def settle(db: str, writer_db: str) -> None:
    """Wait until the killed writer's database sessions are gone. A PostgreSQL server finishes a
    COMMIT it received even when its client dies meanwhile: checking before the session ends
    could miss a commit that then appears (SQLite commits inside the writer's process)."""
    if writer_db == db:
        return
    name = sa.make_url(writer_db).query["application_name"]
    engine = sa.create_engine(db)
    try:
        deadline = time.monotonic() + 120
        while True:
            with engine.connect() as conn:
                left = conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :n"),
                    {"n": name},
                ).scalar_one()
            if not left:
                return
            assert time.monotonic() < deadline, "the killed writer's sessions are still open"
            time.sleep(0.05)
    finally:
        engine.dispose()


def crash_loop(tmp_path: Path, db: str, iterations: int) -> None:
    seed = int(os.environ.get("HEADRACE_CRASH_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    home = tmp_path / "store"
    script = tmp_path / "writer.py"
    script.write_text(writer_script())
    with Store.open(home, db=db, objects=str(home / "objects")) as store:
        store.create_repo(REPO)
    model = Model()
    reported = reconciled = orphans_removed = awaited = 0
    writer_db = db
    if db.startswith("postgresql"):  # tag the writer's sessions, to wait for them to end
        name = f"crash-writer-{seed}"
        writer_db = (
            sa.make_url(db)
            .update_query_dict({"application_name": name})
            .render_as_string(hide_password=False)
        )
    for i in range(iterations):
        where = f"seed {seed}, iteration {i}"
        delay = rng.uniform(0.0, 0.5)
        after = rng.choice((0, 1, 1, 2))
        awaited += after
        log = tmp_path / f"w{i}.log"
        done, _ = run_writer(script, home, writer_db, model.next_step, delay, log, after)
        settle(db, writer_db)
        first_new = len(model.new_files)
        for n, commit_id in done:
            model.record(n, commit_id, where)
        reported += len(done)
        with Store.open(home, db=db, objects=str(home / "objects")) as store:
            reconciled += reconcile(store, model, where)
            check_store(store, model, where)
            read_back(store, model.new_files[first_new:], where)
            gc = store.gc(grace_seconds=0)
            orphans_removed += gc.objects_deleted
            check_store(store, model, f"{where}, after gc")
            live = store.fsck(verify_objects=False).objects
            stored = sum(1 for _ in store.objects.keys())
            assert stored == live, f"{where}: gc left {stored - live} unreferenced objects"
    with Store.open(home, db=db, objects=str(home / "objects")) as store:
        store.gc(grace_seconds=0)
        check_store(store, model, f"seed {seed}, at the end")
        by_content: dict[str, tuple[str, str]] = {}
        for commit_id, files in model.snapshots.items():
            for path in files:
                by_content.setdefault(expected_meta(path)[1], (commit_id, path))
        read_back(store, sorted(by_content.values()), f"seed {seed}, at the end")
    print(
        f"seed {seed}: {iterations} kills, {model.next_step} steps finished ({reported} reported, "
        f"{reconciled} found after the kill), {len(model.snapshots)} commits checked, "
        f"{orphans_removed} orphaned objects removed by gc"
    )
    # The kills hit a working writer: it had reported at least the steps each kill waited for.
    assert reported >= awaited, f"seed {seed}: only {reported} commits, {awaited} awaited"
    assert model.next_step >= awaited >= 1, f"seed {seed}: only {model.next_step} steps were made"


@pytest.mark.slow
def test_sigkilled_writer_leaves_a_consistent_store_sqlite(
    tmp_path: Path, sqlite_metadata_url: str
) -> None:
    crash_loop(tmp_path, sqlite_metadata_url, iterations=25)


@pytest.mark.slow
def test_sigkilled_writer_leaves_a_consistent_store_postgresql(
    tmp_path: Path, postgresql_metadata_url: str
) -> None:
    crash_loop(tmp_path, postgresql_metadata_url, iterations=8)
