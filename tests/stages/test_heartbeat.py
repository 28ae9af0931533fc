"""Engine bug: a job's heartbeat is not refreshed while its datums run (jobs._JobRun._process
only updates it in _flush, which returns early when no datum finished). A job whose datums take
longer than daemon.STALE_SECONDS (30 s) therefore looks orphaned to a daemon or a
'headrace job stop' on another host (where the pid cannot be checked), which would resume or kill
it while it still runs."""

import subprocess
import sys
import textwrap
import time

import pytest

from headrace.stages.catalog import Catalog
from headrace.stages.spec import load_spec
from headrace.store.store import Store


@pytest.mark.slow
def test_heartbeat_advances_while_a_long_datum_runs(tmp_path):
    (tmp_path / "slowmod.py").write_text(
        "import time\ndef run(inputs, output):\n    time.sleep(4)\n"
    )
    home = tmp_path / "home"
    with Store.open(home) as store:
        store.create_repo("data")
        store.put_files("data@master", [("/a.txt", b"a")])
        spec = load_spec(
            {
                "name": "slow",
                "input": {"pfs": {"repo": "data", "glob": "/"}},
                "transform": {"python": "slowmod:run"},
            }
        )
        Catalog(store).put_stage(spec, str(tmp_path / "spec.yaml"))
    code = textwrap.dedent(f"""
        from headrace.store.store import Store
        from headrace.stages.catalog import Catalog
        from headrace.stages.jobs import run_job
        with Store.open({str(home)!r}) as store:
            print(run_job(Catalog(store), "slow").state)
    """)
    process = subprocess.Popen([sys.executable, "-c", code])
    beats = set()
    try:
        with Store.open(home) as store:
            catalog = Catalog(store)
            while process.poll() is None:
                jobs = catalog.list_jobs("slow")
                if jobs and jobs[0].state == "RUNNING":
                    beats.add(jobs[0].heartbeat)
                time.sleep(0.2)
    finally:
        process.wait()
    assert len(beats) >= 3, f"heartbeat seen while RUNNING: {sorted(beats)}"
