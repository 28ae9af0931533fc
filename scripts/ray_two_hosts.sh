#!/usr/bin/env bash
# Two "hosts" on one machine, as root: two network namespaces joined by a veth pair, Ray's head in
# one and a Ray worker node in the other, PostgreSQL metadata reached from both and an object
# folder both see (namespaces share the file system). Runs a pipeline (RayRunner) and a stage
# (datums as Ray tasks) across both, prints on which node each piece ran, and cleans up whatever
# happens (trap EXIT): Ray's processes (only those inside the two namespaces), the namespaces, the
# PostgreSQL schema, the temporary folder.
#
#   sudo scripts/ray_two_hosts.sh            # with the venv at .venv (pip install -e '.[ray]')
#   VENV=/path/to/venv sudo -E scripts/ray_two_hosts.sh
#
# PostgreSQL: it listens on 127.0.0.1 of the root namespace, which a namespace cannot reach; its
# Unix socket (/var/run/postgresql) is a file, and files are shared, so both namespaces use it
# (PGHOST_DIR overrides the folder). Exit status 0 only if both the pipeline and the stage ran on
# both nodes.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python
RAY=$VENV/bin/ray
PGHOST_DIR=${PGHOST_DIR:-/var/run/postgresql}
PGDB=${PGDB:-test}
PGUSER=${PGUSER:-postgres}

if [[ $(id -u) != 0 ]]; then
    echo "ray_two_hosts.sh: run as root (ip netns needs it)" >&2
    exit 2
fi
[[ -x $RAY ]] || { echo "ray_two_hosts.sh: no Ray in $VENV (pip install -e '.[ray]')" >&2; exit 2; }

TAG=hr$$                        # interface names must stay under 16 characters
NS_A=$TAG-head NS_B=$TAG-work
SUBNET=10.$((200 + $$ % 50)).$(($$ % 250)) # one per run, so two runs cannot collide
IP_A=$SUBNET.1 IP_B=$SUBNET.2
PORT=6390
SCHEMA=twohosts_$$
WORK=$(mktemp -d /tmp/hr2h.XXXXXX)
SHARED=$WORK/shared
mkdir -p "$SHARED"
chmod 755 "$WORK"

cleanup() {
    local status=$?
    set +e
    for ns in "$NS_A" "$NS_B"; do
        if ip netns list | grep -qw "$ns"; then
            pids=$(ip netns pids "$ns")
            [[ -n $pids ]] && kill $pids 2>/dev/null
        fi
    done
    sleep 2
    for ns in "$NS_A" "$NS_B"; do
        if ip netns list | grep -qw "$ns"; then
            pids=$(ip netns pids "$ns")
            [[ -n $pids ]] && kill -9 $pids 2>/dev/null
            ip netns del "$ns"
        fi
    done
    ip link del "${TAG}a" 2>/dev/null
    psql -q -h "$PGHOST_DIR" -U "$PGUSER" "$PGDB" -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" \
        >/dev/null 2>&1
    rm -rf "$WORK"
    echo "cleaned up: namespaces $NS_A $NS_B, schema $SCHEMA, $WORK (exit status $status)"
}
trap cleanup EXIT

echo "== network: $NS_A ($IP_A) <-veth-> $NS_B ($IP_B)"
ip netns add "$NS_A"
ip netns add "$NS_B"
ip link add "${TAG}a" type veth peer name "${TAG}b"
ip link set "${TAG}a" netns "$NS_A"
ip link set "${TAG}b" netns "$NS_B"
ip -n "$NS_A" addr add "$IP_A/24" dev "${TAG}a"
ip -n "$NS_B" addr add "$IP_B/24" dev "${TAG}b"
for ns in "$NS_A" "$NS_B"; do
    ip -n "$ns" link set lo up
done
ip -n "$NS_A" link set "${TAG}a" up
ip -n "$NS_B" link set "${TAG}b" up

echo "== PostgreSQL schema $SCHEMA, reached through the socket in $PGHOST_DIR"
psql -q -h "$PGHOST_DIR" -U "$PGUSER" "$PGDB" -c "CREATE SCHEMA $SCHEMA"
DB_URL="postgresql+psycopg://$PGUSER@/$PGDB?host=$PGHOST_DIR&options=-csearch_path%3D$SCHEMA"
ip netns exec "$NS_B" psql -h "$PGHOST_DIR" -U "$PGUSER" "$PGDB" -tAc "select 'from $NS_B: ok'"

# Ray: the head in A, a worker node in B; each node keeps its files under its own folder.
export RAY_USAGE_STATS_ENABLED=0
echo "== Ray head in $NS_A"
ip netns exec "$NS_A" "$RAY" start --head --node-ip-address="$IP_A" --port="$PORT" \
    --num-cpus=1 --include-dashboard=false --temp-dir="$WORK/ray-a" --disable-usage-stats \
    >"$WORK/head.log" 2>&1 || { cat "$WORK/head.log"; exit 1; }
ip netns exec "$NS_B" "$PY" -c "import socket; socket.create_connection(('$IP_A', $PORT), 5)"
echo "   $NS_B reaches the head at $IP_A:$PORT over the veth pair"
echo "== Ray worker node in $NS_B"
ip netns exec "$NS_B" "$RAY" start --address="$IP_A:$PORT" --node-ip-address="$IP_B" \
    --num-cpus=1 --temp-dir="$WORK/ray-b" --disable-usage-stats \
    >"$WORK/worker.log" 2>&1 || { cat "$WORK/worker.log"; exit 1; }

cat >"$WORK/demo.py" <<'PY'
"""Runs in namespace A as the Ray driver: a pipeline and a stage, across both nodes."""
import os
import sys
import time
from pathlib import Path

import ray

import headrace.beam as beam
from headrace.beam.options.pipeline_options import PipelineOptions
from headrace.stages.catalog import Catalog, SUCCESS
from headrace.stages.jobs import run_job
from headrace.stages.raypool import RAY_ADDRESS_ENV
from headrace.stages.spec import load_spec
from headrace.store.store import Store

shared, address, db = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
ray.init(address=address, log_to_driver=False)
deadline = time.monotonic() + 60
while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.monotonic() < deadline:
    time.sleep(0.5)
nodes = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]}
print(f"cluster: {len(nodes)} nodes: {sorted(nodes.values())}")


class WhereAmI(beam.DoFn):
    """Each task notes its node, then waits (up to 60 s) until a task runs on another node."""

    def __init__(self, folder):
        self.folder = folder

    def start_bundle(self):
        node = ray.get_runtime_context().get_node_id()
        Path(self.folder, f"{node}-{os.getpid()}").touch()
        end = time.monotonic() + 60
        while len({p.name.split("-")[0] for p in Path(self.folder).iterdir()}) < 2:
            if time.monotonic() > end:
                break
            time.sleep(0.1)

    def process(self, line):
        for word in line.split():
            yield word


(shared / "in").mkdir()
(shared / "in" / "text.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 2000)
marks = shared / "marks"
marks.mkdir()
options = PipelineOptions(runner="RayRunner", ray_address=address, ray_partitions=2)
with beam.Pipeline(options=options) as p:
    (
        p
        | beam.io.ReadFromText(str(shared / "in" / "text.txt"))
        | beam.ParDo(WhereAmI(str(marks)))
        | beam.combiners.Count.PerElement()
        | beam.MapTuple(lambda w, n: f"{w} {n}")
        | beam.io.WriteToText(str(shared / "out" / "counts"))
    )
counts = sorted(
    line for f in (shared / "out").iterdir() for line in f.read_text().splitlines()
)
pipeline_nodes = {nodes.get(m.name.split("-")[0], "?") for m in marks.iterdir()}
print(f"pipeline: word counts {counts[:3]}...; tasks of its first stage ran on {sorted(pipeline_nodes)}")
assert "the 4000" in counts, counts

store = Store.open(shared / "objects", db=db)
store.create_repo("data")
store.put_files("data@master", [(f"/f{i}.txt", f"datum {i}".encode()) for i in range(8)])
code = shared / "code"
code.mkdir()
(code / "where.py").write_text(
    "import ray, socket, time\n"
    "def run(inputs, output):\n"
    "    time.sleep(1)\n"
    "    for f in inputs['data'].rglob('*.txt'):\n"
    "        node = ray.get_runtime_context().get_node_id()\n"
    "        (output / f.name).write_text(node)\n"
)
catalog = Catalog(store)
spec = load_spec({
    "name": "where",
    "input": {"pfs": {"repo": "data", "glob": "/*"}},
    "transform": {"python": "where:run"},
    "parallelism": 2,
    "resource_requests": {"cpu": 1},
})
catalog.put_stage(spec, str(code / "spec.yaml"))
os.environ[RAY_ADDRESS_ENV] = address
job = run_job(catalog, "where")
assert job.state == SUCCESS, job.reason
outputs = {f.path: store.get_file(f"where@master:{f.path}").decode()
           for f in store.walk_files("where@master")}
stage_nodes = {nodes.get(v, "?") for v in outputs.values()}
print(f"stage: {len(outputs)} datums committed (metadata in PostgreSQL); they ran on "
      f"{sorted(stage_nodes)}")
store.close()
ray.shutdown()
if len(pipeline_nodes) == 2 and len(stage_nodes) == 2:
    print("OK: the pipeline and the stage both ran on both nodes")
else:
    print("NOT OK: something ran on one node only")
    sys.exit(1)
PY

echo "== the pipeline and the stage, driven from $NS_A"
ip netns exec "$NS_A" env HEADRACE_SHARED_FOLDERS="$SHARED" PYTHONPATH="$ROOT/src" \
    "$PY" "$WORK/demo.py" "$SHARED" "$IP_A:$PORT" "$DB_URL"
