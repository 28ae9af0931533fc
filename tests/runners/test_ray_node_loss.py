"""A node of the Ray cluster lost mid-run (issue 14): the run's output is still exact.

Ray's own semantics (doc/source/ray-core/fault_tolerance/tasks.rst and objects.rst): a task whose
node dies is re-run (``max_retries``), and an object lost with its node is rebuilt by re-running
the task that made it (lineage), as long as its owner, here the driver, lives. The scenario runs
in a subprocess with a cluster of its own (a head with no CPUs, two worker nodes of one CPU
each), so that removing a node cannot touch the session's cluster.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = """
import os, sys, time
import ray
from ray.cluster_utils import Cluster

import headrace.beam as beam
from headrace.beam.options.pipeline_options import PipelineOptions
from headrace.beam.testing.util import assert_that, equal_to

marker = sys.argv[1]


def stall_once(x):
    # element 17 notes the node it runs on, then waits for that node to be removed
    if x == 17:
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, ray.get_runtime_context().get_node_id().encode())
            os.close(fd)
            time.sleep(120)
    return (x % 5, x)


cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
cluster.wait_for_nodes()
ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
try:
    p = beam.Pipeline(options=PipelineOptions(runner="RayRunner", ray_partitions=4))
    sums = (
        p
        | beam.Create(list(range(200)))
        | beam.Map(lambda x: (x % 7, x))
        | "Spread" >> beam.GroupByKey()
        | beam.FlatMap(lambda kv: kv[1])
        | "Stall" >> beam.Map(stall_once)
        | beam.CombinePerKey(sum)
    )
    assert_that(sums, equal_to([(k, sum(x for x in range(200) if x % 5 == k)) for k in range(5)]))
    result = p.run()
    deadline = time.monotonic() + 120
    while not os.path.exists(marker) or not open(marker).read():
        if time.monotonic() > deadline:  # a bound on the wait, so a broken run cannot hang
            sys.exit("element 17 did not start within two minutes")
        time.sleep(0.05)
    doomed = open(marker).read()
    (node,) = [n for n in nodes if n.node_id == doomed]
    cluster.remove_node(node)
    print("removed", doomed, flush=True)
    result.wait_until_finish()
    print("state", result.state, flush=True)
finally:
    ray.shutdown()
    cluster.shutdown()
"""


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_node_lost_mid_run_gives_the_same_output(tmp_path: Path) -> None:
    script = tmp_path / "node_loss.py"
    script.write_text(textwrap.dedent(SCRIPT))
    marker = tmp_path / "stalled"
    root = str(Path(__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, str(script), str(marker)],
        check=False, capture_output=True, text=True, timeout=280, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "removed" in done.stdout, "the node running element 17 was never removed"
    assert "state DONE" in done.stdout, done.stdout
