"""RayRunner: batch pipelines on a Ray cluster, through the shared batch coordinator.

``run_pipeline`` checks the pipeline *at submission*: what the Ray runner does not support yet
(streaming, unbounded sources, custom triggers, stateful DoFns) is refused with one error that
lists every offending transform, and a pipeline that reads or writes local paths is refused on a
cluster of several nodes (each node would see its own disk). Then it connects to Ray: the
``--ray_address`` option, else ``RAY_ADDRESS``, else a Ray already initialised in this process,
else a local Ray started for the run with ``--ray_num_cpus`` CPUs and shut down after it.

The run itself is the direct runner's result object (same states, metrics, run events from the
driver) over a :class:`~headrace.runners.ray.executor.RayExecutor` and an
:class:`~headrace.runners.ray.executor.ObjectStoreSpill`; sinks are finalised by the driver
only when every stage succeeded.
"""

from __future__ import annotations

import os
from typing import Any

from headrace.graph.nodes import PipelineGraph
from headrace.plan.stages import build_plan
from headrace.runners.direct.runner import DirectPipelineResult, DirectSettings
from headrace.runners.ray.executor import ObjectStoreSpill, RayExecutor
from headrace.runners.ray.shared import reaches_every_node

__all__ = [
    "RayPipelineResult",
    "RayRunner",
    "UnsupportedOnRay",
    "partitions_for",
    "ray_missing_message",
]

# Attributes of sources and sinks that name files (checked for local paths on a multi-node
# cluster).
_PATH_ATTRS = ("file_pattern", "file_path_prefix")


def ray_missing_message() -> str:
    return (
        "the RayRunner needs Ray, which is not installed; install it with "
        "pip install 'headrace[ray]' (or pip install ray)"
    )


class UnsupportedOnRay(ValueError):
    """The pipeline uses features the Ray runner does not support; raised at submission."""


def unsupported_features(graph: PipelineGraph, streaming: bool) -> list[str]:
    """What in ``graph`` the Ray runner cannot run, one line per feature and transform."""
    problems: list[str] = []
    if streaming:
        problems.append("streaming mode (--streaming): the Ray runner runs batch pipelines only")
    for pc in graph.pcollections.values():
        producer = graph.transforms[pc.producer].label
        if not pc.bounded:
            problems.append(f"unbounded source: {producer!r} produces an unbounded PCollection")
        if pc.windowing.trigger is not None:
            problems.append(f"custom trigger: the output of {producer!r} has a non-default trigger")
    for t in graph.transforms.values():
        if t.params.get("stateful"):
            problems.append(f"stateful DoFn (state or timers): {t.label!r}")
    return problems


def cluster_machines(nodes: list[dict[str, Any]]) -> list[str]:
    """The distinct addresses of the live nodes of a cluster (``ray.nodes()``).

    Nodes on one address (a ``ray.cluster_utils.Cluster``, several raylets of one host) share a
    disk, so local paths work there.

    >>> cluster_machines([{"Alive": True, "NodeManagerAddress": "10.0.0.1"},
    ...                   {"Alive": True, "NodeManagerAddress": "10.0.0.1"},
    ...                   {"Alive": False, "NodeManagerAddress": "10.0.0.2"}])
    ['10.0.0.1']
    """
    return sorted({str(n.get("NodeManagerAddress")) for n in nodes if n.get("Alive")})


def _local_paths(graph: PipelineGraph) -> list[str]:
    found: list[str] = []
    for t in graph.transforms.values():
        if t.payload is None:
            continue
        try:
            obj = t.payload.load()
        except Exception:
            continue
        for candidate in (obj, *getattr(obj, "__dict__", {}).values()):
            for attr in _PATH_ATTRS:
                value = getattr(candidate, attr, None)
                if isinstance(value, str) and not reaches_every_node(value):
                    found.append(f"{t.label!r}: {value}")
    return sorted(set(found))


# Bytes of input per partition the default partition count aims at, and its ceiling per CPU.
PARTITION_BYTES = 64 << 20
MAX_PARTITIONS_PER_CPU = 4


def partitions_for(cpus: int, input_bytes: int | None) -> int:
    """The partition count (shuffle partitions and source splits) of a run.

    At least one per CPU of the cluster, so every CPU has a task; more when the input is large,
    one per :data:`PARTITION_BYTES` of it, so a task's share stays well inside its memory
    budget and a slow task holds back less; at most :data:`MAX_PARTITIONS_PER_CPU` per CPU, so
    tasks stay far above Ray's per-task overhead. ``--ray_partitions`` overrides it.

    >>> partitions_for(2, None), partitions_for(2, 100 << 20), partitions_for(2, 300 << 20)
    (2, 2, 5)
    >>> partitions_for(2, 10 << 30), partitions_for(16, 1 << 30)
    (8, 16)
    """
    cpus = max(1, cpus)
    if not input_bytes:
        return cpus
    wanted = -(-input_bytes // PARTITION_BYTES)
    return max(cpus, min(wanted, MAX_PARTITIONS_PER_CPU * cpus))


def input_bytes(graph: PipelineGraph) -> int | None:
    """The summed ``estimate_size()`` of the pipeline's bounded sources (None: none known)."""
    total = None
    for t in graph.transforms.values():
        if t.kind != "Read" or t.payload is None:
            continue
        try:
            size = t.payload.load().estimate_size()
        except Exception:
            continue
        if isinstance(size, int) and size > 0:
            total = (total or 0) + size
    return total


def choose_partitions(cpus: int, graph: PipelineGraph) -> int:
    """:func:`partitions_for` the cluster's CPUs and the pipeline's input size."""
    return partitions_for(cpus, input_bytes(graph))


class RayPipelineResult(DirectPipelineResult):
    """A run on Ray; shuts down the local Ray it started, once the run ended."""

    owns_ray = False

    def _finished(self) -> None:
        if self.owns_ray:
            import ray

            ray.shutdown()
        super()._finished()


class RayRunner:
    """Runs batch pipelines on Ray (``--runner=RayRunner``); see the module docstring.

    Options: ``--ray_address`` (or ``RAY_ADDRESS``), ``--ray_num_cpus`` for a local Ray,
    ``--ray_partitions`` (default: from the cluster's CPUs and the input size,
    :func:`partitions_for`), ``--ray_max_in_flight``; the direct
    runner's ``--direct_memory_budget_mb`` and ``--direct_bundle_size`` apply per task.
    """

    def run_pipeline(self, pipeline: Any, options: Any) -> RayPipelineResult:
        graph: PipelineGraph = pipeline.to_graph() if hasattr(pipeline, "to_graph") else pipeline
        values = options.get_all_options() if options is not None else {}
        settings = DirectSettings.from_options(options)
        problems = unsupported_features(graph, settings.streaming)
        if problems:
            raise UnsupportedOnRay(
                "the RayRunner does not support this pipeline; run it with the DirectRunner, "
                "or change:\n  - " + "\n  - ".join(problems)
            )
        try:
            import ray
        except ImportError:
            raise RuntimeError(ray_missing_message()) from None
        owns = _connect(ray, values)
        try:
            machines = cluster_machines(ray.nodes())
            if len(machines) > 1:
                local = _local_paths(graph)
                if local:
                    raise UnsupportedOnRay(
                        f"the Ray cluster spans {len(machines)} machines "
                        f"({', '.join(machines)}), but these sources/sinks use "
                        "paths local to one machine (each node would read or write its own "
                        "disk); use an fsspec URL every node reaches (s3://, gs://, ...) or "
                        "ReadFromRepo/WriteToRepo, or declare a folder mounted on every node "
                        "in HEADRACE_SHARED_FOLDERS:\n  - " + "\n  - ".join(local)
                    )
            cpus = int(ray.cluster_resources().get("CPU", 1))
            partitions = int(values.get("ray_partitions") or choose_partitions(cpus, graph))
            spill = ObjectStoreSpill()
            executor = RayExecutor(spill, partitions, values.get("ray_max_in_flight"))
            result = RayPipelineResult(build_plan(graph), settings, executor=executor, spill=spill)
        except BaseException:
            if owns:
                ray.shutdown()
            raise
        result.owns_ray = owns
        result._start()
        return result


def _connect(ray: Any, values: dict[str, Any]) -> bool:
    """Connect to Ray as the options say; ``True`` when this run started Ray (and stops it)."""
    address = values.get("ray_address") or os.environ.get("RAY_ADDRESS")
    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
        return True
    # address="local": a new Ray of our own. Without it, ray.init() joins the cluster that the
    # last `ray start` on this machine recorded (/tmp/ray/ray_current_cluster), someone else's.
    ray.init(
        address="local",
        num_cpus=values.get("ray_num_cpus"),  # None: Ray counts the machine's CPUs
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    return True
