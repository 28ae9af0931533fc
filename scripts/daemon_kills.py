"""Long form of the daemon kill test: SIGKILL the stage daemon (and its workers) mid-job, again
and again, and check that every job still ends with exactly the right output.

    python scripts/daemon_kills.py [--rounds 5] [--files 40] [--db URL] [--seed N]

Each round commits a new version of every input file (so every datum runs), then starts a
daemon in a process group of its own and kills the whole group at a random moment once some
datums finished, restarting it until the job is SUCCESS. It checks that the output commit holds
exactly the expected bytes for every file, that the stage has one output commit per round, and
counts datum runs beyond the first ("reran": a datum in flight at a kill, or finished by a
worker but not yet recorded by the job, runs again; its output is written once). It prints one
JSON line per round and a total: kills, datums, survived (right output), lost, reran. The test
suite runs the same scenario once (tests/stages/test_daemon.py,
test_a_killed_daemon_resumes_the_job_without_loss_or_duplication).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from headrace.stages.catalog import Catalog
from headrace.stages.spec import load_spec
from headrace.store.store import Store

TRANSFORM = """
import os, time
def run(inputs, output):
    f = next(inputs["raw"].rglob("*.txt"))
    with open(os.environ["RUN_LOG"], "a") as log:
        log.write(f.name + "\\n")
    time.sleep(0.05)
    (output / f.name).write_text(f.read_text().upper())
"""

DAEMON = """
import sys
from headrace.store.store import Store
from headrace.stages.catalog import Catalog
from headrace.stages.daemon import Daemon
store = Store.open(sys.argv[1], db=sys.argv[2] or None)
Daemon(Catalog(store), log=lambda _: None).run_until_idle()
"""


def one_round(
    home: Path, db: str, files: int, version: int, rng: random.Random, run_log: Path
) -> dict[str, int]:
    with Store.open(home, db=db or None) as store:
        store.put_files(
            "raw@master", [(f"/{i:03}.txt", f"v{version}-{i}".encode()) for i in range(files)]
        )
    run_log.write_text("")
    env = {**os.environ, "RUN_LOG": str(run_log)}
    kills = 0
    while True:
        proc = subprocess.Popen(
            [sys.executable, "-c", DAEMON, str(home), db], env=env, start_new_session=True
        )
        wait_for = rng.randint(1, max(1, files // 3))
        killed = False
        while proc.poll() is None:
            time.sleep(rng.uniform(0.01, 0.1))
            if len(run_log.read_text().split()) >= wait_for * (kills + 1) and rng.random() < 0.5:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills += 1
                killed = True
                break
        if not killed:
            if proc.returncode != 0:
                raise SystemExit(f"the daemon failed with status {proc.returncode}")
            break
    with Store.open(home, db=db or None) as store:
        job = Catalog(store).list_jobs("s")[0]
        got = {f.path: store.get_file(f"s@master:{f.path}") for f in store.list_files("s@master")}
        commits = len(store.list_commits("s"))
    expected = {f"/{i:03}.txt": f"V{version}-{i}".encode() for i in range(files)}
    survived = sum(1 for p, b in expected.items() if got.get(p) == b)
    runs = Counter(run_log.read_text().split())
    return {
        "round": version,
        "state": job.state,
        "kills": kills,
        "datums": files,
        "survived": survived,
        "lost": files - survived,
        "unexpected": len(set(got) - set(expected)),
        "reran": sum(n - 1 for n in runs.values() if n > 1),
        "output_commits": commits,
    }


@contextmanager
def _fresh_schema(url: str, seed: int) -> Iterator[str]:
    """``url`` with a new PostgreSQL schema as its search path (dropped after), or ``url``."""
    if not url.startswith("postgresql"):
        yield url
        return
    import sqlalchemy as sa

    schema = f"daemon_kills_{seed}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        scoped = sa.make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument(
        "--db",
        default="",
        help="PostgreSQL URL (a fresh schema is made in it and dropped after; default: SQLite)",
    )
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp, _fresh_schema(args.db, seed) as db:
        args.db = db
        home = Path(tmp) / "store"
        module = Path(tmp) / "kill_transform.py"
        module.write_text(textwrap.dedent(TRANSFORM))
        sys.path.insert(0, tmp)
        os.environ["PYTHONPATH"] = tmp + os.pathsep + os.environ.get("PYTHONPATH", "")
        with Store.open(home, db=args.db or None) as store:
            store.create_repo("raw")
            spec = {
                "name": "s",
                "input": {"pfs": {"repo": "raw", "glob": "/*"}},
                "transform": {"python": "kill_transform:run"},
            }
            Catalog(store).put_stage(load_spec(spec), str(module))
        totals: Counter[str] = Counter()
        for version in range(1, args.rounds + 1):
            result = one_round(home, args.db, args.files, version, rng, Path(tmp) / "runs.log")
            print(json.dumps({"seed": seed, **result}), flush=True)
            for key in ("kills", "datums", "survived", "lost", "unexpected", "reran"):
                totals[key] += result[key]
            ok = result["state"] == "SUCCESS" and result["output_commits"] == version
            if not ok or result["lost"] or result["unexpected"]:
                print(f"FAILED in round {version} (seed {seed})", file=sys.stderr)
                return 1
    print(json.dumps({"seed": seed, "total": dict(totals)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
