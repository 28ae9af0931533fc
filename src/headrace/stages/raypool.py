"""Stage datums as Ray tasks: a drop-in for :class:`~headrace.stages.worker.WorkerPool`.

When ``HEADRACE_RAY_ADDRESS`` is set (``headrace daemon --ray ADDRESS`` sets it), a job hands
its datums to :class:`RayDatumPool` instead of local worker processes: each attempt is one Ray
task running the same :func:`~headrace.stages.worker.execute` as a local worker (sandbox, the
transform, outputs stored as content-addressed objects), and the job commits the results in one
transaction, as always. The worker reaches the store itself, so on a cluster of several machines
the store must be shared (PostgreSQL metadata, an object location every node reaches).

What maps to what: ``parallelism`` bounds the attempts in flight; ``datum_tries`` stays the job's
retry count (Ray's own retries are off, so an attempt is counted once); ``datum_timeout`` is
enforced from the job: a late attempt is cancelled (its worker process killed) and reported as
the local pool reports it. A worker process that dies fails the attempts of its Ray task with
Ray's reason. Batching: without ``datum_timeout``, one Ray task runs up to :data:`MAX_BATCH`
attempts one after another (:func:`batch_size`), so a long queue pays Ray's per-task cost once
per many datums; with it, each attempt is its own task, cancelled alone when late. Ray reuses
worker processes, so a module is imported once per worker either way. In flight: when the live
nodes cannot run more than ``parallelism`` of the job's tasks at once (and there is no
``datum_timeout``), the whole queue goes to Ray right away (up to :data:`MAX_QUEUED_TASKS`
tasks) and waits in Ray's queue; otherwise at most ``parallelism`` tasks are handed over, the
next ones as earlier ones finish.

Environments: ``transform.requirements`` becomes the attempts' Ray ``runtime_env`` (``pip``);
``transform.environment`` (an interpreter or venv path) runs each attempt as a subprocess of it,
as a local worker does, so the path must exist on every node. What each isolates:
:mod:`headrace.stages.environments`.

Resources: the spec's ``resource_requests`` / ``resource_limits`` become each attempt's Ray
resources (``num_cpus``, default 1; ``memory``; ``num_gpus``), so Ray places an attempt only on a
node that can hold it; a job asking for more than any live node has fails at its start, naming
the spec field (:mod:`headrace.stages.resourcespec`). Ray does not enforce them on the running
datum (they are logical resources).
"""

from __future__ import annotations

import os
import time
from collections import deque
from typing import Any

from headrace.runners.ray.shared import SHARED_FOLDERS_ENV, reaches_every_node
from headrace.stages.resourcespec import (
    Resources,
    check_fits,
    cluster_slots,
    ray_task_resources,
)
from headrace.stages.worker import DatumResult, DatumTask, WorkerConfig, execute

__all__ = ["RAY_ADDRESS_ENV", "RayDatumPool", "check_shared_store", "ray_address"]

RAY_ADDRESS_ENV = "HEADRACE_RAY_ADDRESS"


# The job's WorkerConfig per Ray worker process, by object id: its store (database engine, object
# location) is opened once per worker and job, not once per datum.
_CONFIGS: dict[str, WorkerConfig] = {}


def _execute(config_box: list[Any], tasks: list[DatumTask]) -> list[DatumResult]:
    """Attempts on a Ray worker, one after another; ``config_box`` holds the (unresolved)
    config reference."""
    import ray

    (ref,) = config_box
    config = _CONFIGS.get(ref.hex())
    if config is None:
        if len(_CONFIGS) > 8:  # a long-lived worker serves many jobs: keep the recent ones
            _CONFIGS.pop(next(iter(_CONFIGS)))
        config = _CONFIGS[ref.hex()] = ray.get(ref)
    return [execute(config, task) for task in tasks]


# Datums per Ray task at most; the pool aims at four tasks per slot of ``parallelism`` over the
# queue, so a long queue pays Ray's per-task cost once per many datums and the last tasks stay
# small (the slots finish together).
MAX_BATCH = 256
# Ray tasks of one job handed to Ray at once when no more than parallelism can run anyway.
MAX_QUEUED_TASKS = 256
# The smallest batch then (the geometric tail of batch_size would need many tiny tasks).
LEAST_QUEUED_BATCH = 16


def batch_size(queued: int, size: int, timeout: float | None, least: int = 1) -> int:
    """Datums the next Ray task runs (``size``: the job's ``parallelism``; ``least``: the
    smallest batch while datums remain, used when the whole queue goes to Ray at once).

    >>> batch_size(10000, 2, None), batch_size(40, 2, None), batch_size(3, 2, None)
    (256, 5, 1)
    >>> batch_size(40, 2, None, least=16), batch_size(3, 2, None, least=16)
    (16, 3)
    >>> batch_size(10000, 2, 30.0)  # datum_timeout: one attempt per task, cancelled alone
    1
    """
    if timeout is not None:
        return 1
    return max(min(least, queued), 1, min(MAX_BATCH, queued // (4 * max(1, size))))


def ray_address() -> str | None:
    """The Ray cluster jobs run their datums on (``HEADRACE_RAY_ADDRESS``), if any."""
    return os.environ.get(RAY_ADDRESS_ENV) or None


def check_shared_store(config: WorkerConfig, nodes: list[dict[str, Any]]) -> None:
    """Refuse a store only one machine reaches when the cluster spans several machines.

    ``nodes`` is ``ray.nodes()``; nodes on one address share a disk (one host, several raylets).

    >>> from headrace.store.store import Store
    >>> import tempfile
    >>> store = Store.open(tempfile.mkdtemp())
    >>> config = WorkerConfig(store, None, "up", "/tmp")  # type: ignore[arg-type]
    >>> check_shared_store(config, [{"Alive": True, "NodeManagerAddress": "10.0.0.1"}])
    >>> check_shared_store(config, [{"Alive": True, "NodeManagerAddress": "10.0.0.1"},
    ...                             {"Alive": True, "NodeManagerAddress": "10.0.0.2"}])
    Traceback (most recent call last):
    ...
    ValueError: stage 'up': the Ray cluster spans 2 machines, but the workers on every node ...
    >>> store.close()
    """
    machines = {str(n.get("NodeManagerAddress")) for n in nodes if n.get("Alive")}
    if len(machines) < 2:
        return
    store = config.store
    problems = []
    if store.meta.dialect == "sqlite":
        problems.append("its metadata is a SQLite file (use PostgreSQL: --db postgresql://...)")
    url = str(store.objects.url)
    if not reaches_every_node(url):
        problems.append(
            f"its objects are in the local folder {url} (use an fsspec URL, or declare a folder "
            f"mounted on every node in {SHARED_FOLDERS_ENV})"
        )
    if problems:
        raise ValueError(
            f"stage {config.stage!r}: the Ray cluster spans {len(machines)} machines, but the "
            "workers on every node must reach the store: " + "; ".join(problems)
        )


def _check_virtualenv(stage: str) -> None:
    try:
        import virtualenv  # noqa: F401  (Ray's pip runtime_env builds with it)
    except ImportError:
        raise ValueError(
            f"stage {stage!r}: transform.requirements on Ray needs the virtualenv package "
            "(Ray builds the runtime_env with it); pip install 'headrace[ray]' or virtualenv"
        ) from None


class RayDatumPool:
    """Runs :class:`DatumTask` s as Ray tasks; the interface of ``WorkerPool`` (see the module
    docstring). Connects to ``address`` unless this process is already connected to Ray."""

    def __init__(
        self,
        config: WorkerConfig,
        size: int,
        address: str,
        timeout: float | None = None,
        requests: Resources | None = None,
        limits: Resources | None = None,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError(
                f"{RAY_ADDRESS_ENV} is set, but Ray is not installed; install it with "
                "pip install 'headrace[ray]', or unset it to run datums in local processes"
            ) from None
        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            ray.init(address=address, log_to_driver=False, configure_logging=False)
            self._owns = True
        try:
            nodes = ray.nodes()
            check_shared_store(config, nodes)
            try:
                resources = ray_task_resources(requests, limits)
            except ValueError as e:
                raise ValueError(f"stage {config.stage!r}: {e}") from None
            check_fits(config.stage, requests, limits, nodes)
            if runtime_env:
                _check_virtualenv(config.stage)
        except BaseException:
            self.close_ray()
            raise
        self.size = max(1, size)
        self.timeout = timeout
        # Ray tasks handed to Ray at once. When the cluster cannot run more than ``size`` of
        # them at the same time anyway, more wait in Ray's queue without breaking
        # ``parallelism``: the whole queue is handed over at once (no idle gap between a
        # task and the next). Otherwise ``size``, so no more than ``size`` attempts run.
        self.slots = cluster_slots(resources, nodes)
        # With datum_timeout an attempt's clock starts when it goes to Ray: none may wait there.
        queue_in_ray = self.slots <= self.size and timeout is None
        self.max_tasks = MAX_QUEUED_TASKS if queue_in_ray else self.size
        self.least = LEAST_QUEUED_BATCH if queue_in_ray else 1
        # Once per job; every attempt gets the reference, inside a list so that Ray does not
        # resolve (and unpickle) it per attempt: _execute does, once per worker process.
        self._config = [ray.put(config)]
        self.resources = resources
        options: dict[str, Any] = dict(resources)
        if runtime_env:
            options["runtime_env"] = runtime_env
        self._remote = ray.remote(_execute).options(max_retries=0, **options)
        self._queue: deque[DatumTask] = deque()
        self._running: dict[Any, tuple[list[DatumTask], float]] = {}

    def __enter__(self) -> RayDatumPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """Tasks submitted and not yet reported."""
        return len(self._queue) + sum(len(tasks) for tasks, _ in self._running.values())

    def submit(self, task: DatumTask) -> None:
        """Queue ``task``; it goes to Ray at once only when nothing runs (later ones go in
        batches from :meth:`results`, which a job calls after submitting)."""
        self._queue.append(task)
        if not self._running:
            self._dispatch()

    def _dispatch(self) -> None:
        while self._queue and len(self._running) < self.max_tasks:
            n = batch_size(len(self._queue), self.size, self.timeout, self.least)
            tasks = [self._queue.popleft() for _ in range(min(n, len(self._queue)))]
            ref = self._remote.remote(self._config, tasks)
            self._running[ref] = (tasks, time.monotonic())

    def results(self, wait: float) -> list[DatumResult]:
        """Results that arrive within ``wait`` seconds (fewer, or none, if none are ready)."""
        self._dispatch()
        if not self._running:
            return []
        ray = self._ray
        wait_for = wait
        if self.timeout is not None:
            soonest = min(started + self.timeout for _, started in self._running.values())
            wait_for = max(0.0, min(wait, soonest - time.monotonic()))
        refs = list(self._running)
        ready, rest = ray.wait(refs, num_returns=1, timeout=wait_for)  # back at the first one
        if ready and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            ready += more
        out: list[DatumResult] = []
        for ref in ready:
            tasks, started = self._running.pop(ref)
            try:
                out.extend(ray.get(ref))
            except Exception as e:  # the worker died, or Ray could not run the attempts
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                error = f"the Ray task running the datum failed: {type(e).__name__}: {reason}"
                seconds = time.monotonic() - started
                for task in tasks:  # each attempt of the task counts (datum_tries)
                    out.append(
                        DatumResult(task.datum_id, task.attempt, False, (), error, "", seconds)
                    )
        if self.timeout is not None:  # one attempt per task (batch_size)
            now = time.monotonic()
            for ref, (tasks, started) in list(self._running.items()):
                if now - started >= self.timeout:
                    (task,) = tasks
                    del self._running[ref]
                    ray.cancel(ref, force=True)
                    error = (
                        f"datum_timeout: the datum ran longer than {self.timeout:g} s and was "
                        "killed (its Ray worker process was stopped)"
                    )
                    seconds = now - started
                    out.append(
                        DatumResult(task.datum_id, task.attempt, False, (), error, "", seconds)
                    )
        self._dispatch()
        return out

    def close_ray(self) -> None:
        if self._owns:
            self._ray.shutdown()
            self._owns = False

    def close(self) -> None:
        """Stop every attempt still running (their Ray worker processes are killed)."""
        for ref in self._running:
            self._ray.cancel(ref, force=True)
        self._running.clear()
        self._queue.clear()
        self.close_ray()
