"""Long-form store fault runs: SIGKILLs of writers and of gc, then a check that nothing committed
was lost. ``python scripts/store_faults.py [--rounds N] [--crash-iterations N] [--backend ...]``

Two campaigns, on SQLite and (when reachable) PostgreSQL:

writer+gc  A writer process re-adds data that keeps becoming garbage (written to a repo that is
           then deleted, then written again to a kept repo: the data-loss case of issue 13) while
           a gc process runs ``gc(grace_seconds=0)`` in a loop. Each round one of them, or both,
           is killed with SIGKILL at a random instant (the other is then stopped). After every
           round the store is reopened: every file the writer reported committed must read back
           its bytes and ``fsck`` must be clean. A write refused loudly (ObjectsCollected) is not a
           loss: it reported no commit.
writer     ``tests/store/test_crash.py``'s crash loop (a writer of mixed commits killed again and
           again, each kill followed by checks and a gc) with many more iterations.

Prints, per campaign and backend: kills, commits that survived (checked), commits lost. Exits 1
if anything was lost. ``--seed`` replays a run.
"""

from __future__ import annotations

import argparse
import os
import random
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE.parent / "tests" / "store"))

from headrace.store.store import Store  # noqa: E402

POSTGRES = os.environ.get(
    "HEADRACE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

WRITER = """
import sys
from headrace.store.errors import ObjectsCollected, RepoNotFound
from headrace.store.store import Store

home, db, first = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = Store.open(home, db=db)
try:
    store.delete_repo("tmp")  # left by a writer killed mid-round
except RepoNotFound:
    pass
i = first
while True:
    data = b"payload %d\\n" % i * (1 + i % 7) * 40
    store.create_repo("tmp")
    try:
        store.put_file("tmp@master:/a", data)
    except ObjectsCollected:
        pass
    store.delete_repo("tmp")
    try:
        c = store.put_file("keep@master:/f%d" % i, data)
        print("ok", i, c.id, flush=True)
    except ObjectsCollected:
        print("collected", i, flush=True)
    i += 1
"""

GC = """
import os, sys
from headrace.store.store import Store

home, db, stop = sys.argv[1], sys.argv[2], sys.argv[3]
store = Store.open(home, db=db)
while not os.path.exists(stop):
    store.gc(grace_seconds=0)
"""


def payload(i: int) -> bytes:
    return b"payload %d\n" % i * (1 + i % 7) * 40


_SCHEMAS: list[str] = []  # made by this run; dropped at its end, also after Ctrl-C or an error


def fresh_postgres() -> str | None:
    """A new schema in the test database, or None when PostgreSQL is not reachable."""
    try:
        import sqlalchemy as sa

        name = f"faults_{os.getpid()}_{random.randrange(10**6)}"
        engine = sa.create_engine(POSTGRES)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        engine.dispose()
        _SCHEMAS.append(name)
        url = sa.make_url(POSTGRES).update_query_dict({"options": f"-csearch_path={name}"})
    except Exception as e:
        print(f"PostgreSQL not available ({type(e).__name__}); skipped")
        return None
    return url.render_as_string(hide_password=False)


def drop_schemas() -> None:
    """Drop the schemas this run made (best effort: a kill -9 of this script still leaves them)."""
    if not _SCHEMAS:
        return
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("SET LOCAL lock_timeout = '20s'")
            for name in _SCHEMAS:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {name} CASCADE")
        _SCHEMAS.clear()
    finally:
        engine.dispose()


def writer_and_gc(db: str, rounds: int, rng: random.Random) -> tuple[int, int, int, int]:
    """Returns (kills, commits checked, loud refusals, commits lost)."""
    work = Path(tempfile.mkdtemp(prefix="headrace-faults-"))
    home = work / "home"
    with Store.open(home, db=db) as store:
        store.create_repo("keep")
    committed: dict[int, str] = {}
    kills = refused = lost = 0
    next_i = 0
    for r in range(rounds):
        stop = work / f"stop{r}"
        writer = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), str(home), db, str(next_i)],
            stdout=subprocess.PIPE,
            stderr=open(work / f"writer{r}.log", "w"),  # noqa: SIM115 - the child owns it
            text=True,
        )
        gc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(GC), str(home), db, str(stop)],
            stderr=open(work / f"gc{r}.log", "w"),  # noqa: SIM115 - the child owns it
        )
        assert writer.stdout is not None
        ready, _, _ = select.select([writer.stdout], [], [], 300)
        first = writer.stdout.readline() if ready else ""  # its first write is done
        time.sleep(rng.uniform(0.1, 3.0))
        victim = rng.choice(["writer", "gc", "both"])
        if victim in ("gc", "both"):
            gc.send_signal(signal.SIGKILL)
            kills += 1
        if victim == "both":
            time.sleep(rng.uniform(0.0, 0.3))
        writer.send_signal(signal.SIGKILL)  # the writer always ends killed
        kills += victim != "gc"
        out, _ = writer.communicate(timeout=60)
        out = first + out
        stop.touch()
        gc.wait(timeout=120)
        for line in out.splitlines():
            parts = line.split()
            if parts and parts[0] == "ok" and len(parts) == 3:
                committed[int(parts[1])] = parts[2]
                next_i = max(next_i, int(parts[1]) + 1)
            elif parts and parts[0] == "collected":
                refused += 1
                next_i = max(next_i, int(parts[1]) + 1)
        next_i += 1  # the round in flight at the kill may have committed without reporting
        with Store.open(home, db=db) as store:
            for i, commit_id in committed.items():
                try:
                    ok = store.get_file(f"keep@{commit_id}:/f{i}") == payload(i)
                except Exception:
                    ok = False
                lost += not ok
            report = store.fsck()
            if not report.ok:
                print(f"  round {r}: fsck: {report.problems[:3]}")
                lost += len(report.problems)
        if lost:
            print(f"  round {r}: {lost} lost so far")
    return kills, len(committed), refused, lost


def writer_crash_loop(db: str, iterations: int) -> tuple[int, int]:
    """``test_crash.crash_loop``: raises AssertionError on any inconsistency or loss."""
    import test_crash

    work = Path(tempfile.mkdtemp(prefix="headrace-crash-"))
    test_crash.crash_loop(work, db, iterations)
    return iterations, 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=60, help="writer+gc rounds per backend")
    parser.add_argument("--crash-iterations", type=int, default=80, help="writer kills")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    print(f"seed {seed}")
    failed = False
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        for campaign in ("writer+gc", "writer"):
            if backend == "sqlite":
                db = f"sqlite:///{tempfile.mkdtemp(prefix='headrace-db-')}/metadata.db"
            else:
                found = fresh_postgres()
                if found is None:
                    continue
                db = found
            start = time.monotonic()
            if campaign == "writer+gc":
                kills, survived, refused, lost = writer_and_gc(db, args.rounds, rng)
                extra = f", {refused} writes refused loudly"
            else:
                try:
                    kills, _ = writer_crash_loop(db, args.crash_iterations)
                    survived, lost, extra = -1, 0, " (survivors counted above)"
                except AssertionError as e:
                    kills, survived, extra = args.crash_iterations, -1, f": {e}"
                    # "only N commits in M runs": the kills came too early to test much
                    lost = 0 if "commits in" in str(e) or "steps were made" in str(e) else 1
            took = time.monotonic() - start
            shown = "see above" if survived < 0 else str(survived)
            print(
                f"{campaign:10} {backend:10} kills {kills}, survived {shown}, lost {lost}"
                f"{extra} ({took:.0f} s)",
                flush=True,
            )
            failed = failed or lost > 0
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        status = main()
    finally:
        drop_schemas()
    sys.exit(status)
