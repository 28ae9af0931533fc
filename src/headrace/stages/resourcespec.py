"""The ``resource_requests`` and ``resource_limits`` fields of a stage spec, as Pachyderm has them.

Pachyderm's ``ResourceSpec``: ``cpu`` (a number of CPUs, fractions allowed), ``memory`` and
``disk`` (bytes, with SI or binary suffixes: ``500M``, ``2Gi``), ``gpu`` (``{type, number}``,
``type`` being the Kubernetes resource name such as ``nvidia.com/gpu``). Kubernetes reads
*requests* for placement and *limits* as a ceiling; a resource with a limit and no request is
requested at its limit, and a request above its limit is an error.

What each runs on:

- **Ray** (``headrace daemon --ray``): :func:`ray_task_resources` turns the effective requests
  into Ray task options (``num_cpus``, ``memory``, ``num_gpus``); Ray places an attempt only on a
  node with that much free, and a job whose request no node of the cluster can hold fails at its
  start with an error naming the spec field (:func:`check_fits`). Ray resources are logical: a
  limit is used for placement (as a request when no request is given) but not enforced on the
  running datum. ``disk`` has no Ray resource and is refused on Ray.
- **Local worker processes**: one machine; nothing is reserved (a job runs ``parallelism``
  workers), as before.

>>> spec = parse_resources({"cpu": 0.5, "memory": "2Gi", "gpu": {"type": "nvidia.com/gpu",
...                         "number": 1}}, "resource_requests")
>>> spec.cpu, spec.memory, spec.gpu
(0.5, 2147483648, 1)
>>> resources_to_dict(spec)
{'cpu': 0.5, 'memory': 2147483648, 'gpu': {'type': 'nvidia.com/gpu', 'number': 1}}
>>> ray_task_resources(spec, parse_resources({"memory": "4G"}, "resource_limits"))
{'num_cpus': 0.5, 'memory': 2147483648, 'num_gpus': 1}
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from headrace.stages.specfields import SpecError, check_fields, check_string, describe, field_path

__all__ = [
    "Resources",
    "check_fits",
    "check_requests_within_limits",
    "cluster_slots",
    "parse_quantity",
    "parse_resources",
    "ray_task_resources",
    "resources_to_dict",
]

_FIELDS = ("cpu", "memory", "gpu", "disk")
_GPU_FIELDS = ("type", "number")
_SUFFIXES = {
    "": 1,
    "k": 10**3,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}
_QUANTITY = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*")


@dataclass(frozen=True)
class Resources:
    """One ``ResourceSpec``: CPUs, bytes of memory and disk, GPUs (None: not given)."""

    cpu: float | None = None
    memory: int | None = None
    gpu: int | None = None
    gpu_type: str | None = None
    disk: int | None = None


def parse_quantity(value: object, path: str) -> int:
    """Bytes from a Kubernetes quantity (``"500M"``, ``"2Gi"``, or a plain number).

    >>> parse_quantity("1.5Gi", "memory"), parse_quantity(1000, "memory")
    (1610612736, 1000)
    >>> parse_quantity("2GB", "resource_requests.memory")
    Traceback (most recent call last):
    ...
    headrace.stages.spec.SpecError: resource_requests.memory: unknown unit 'GB' in '2GB'; use one of k, M, G, T, P (powers of 1000) or Ki, Mi, Gi, Ti, Pi (powers of 1024)
    """  # noqa: E501
    if isinstance(value, bool):
        raise SpecError(path, f"must be an amount of bytes such as '512Mi', got {describe(value)}")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    else:
        text = check_string(value, path)
        match = _QUANTITY.fullmatch(text)
        if match is None:
            raise SpecError(path, f"must be an amount of bytes such as '512Mi', got {text!r}")
        number, unit = float(match.group(1)), match.group(2)
        if unit not in _SUFFIXES:
            raise SpecError(
                path,
                f"unknown unit {unit!r} in {text!r}; use one of k, M, G, T, P (powers of 1000) "
                "or Ki, Mi, Gi, Ti, Pi (powers of 1024)",
            )
    if number < 0:
        raise SpecError(path, f"must not be negative, got {value!r}")
    return int(number * _SUFFIXES[unit])


def parse_resources(data: object, path: str) -> Resources:
    """A validated ``ResourceSpec`` mapping; every problem names its field."""
    fields = check_fields(data, path, _FIELDS, "a resource spec")
    cpu = None
    if "cpu" in fields:
        raw = fields["cpu"]
        if isinstance(raw, str) and raw.endswith("m") and raw[:-1].isdigit():
            raw = int(raw[:-1]) / 1000  # Kubernetes millicores: "500m"
        if isinstance(raw, bool) or not isinstance(raw, int | float) or raw < 0:
            raise SpecError(
                field_path(path, "cpu"),
                f"must be a number of CPUs (0.5, 2, or '500m'), got {describe(fields['cpu'])}",
            )
        cpu = float(raw)
    memory = (
        parse_quantity(fields["memory"], field_path(path, "memory")) if "memory" in fields else None
    )
    disk = parse_quantity(fields["disk"], field_path(path, "disk")) if "disk" in fields else None
    gpu = gpu_type = None
    if "gpu" in fields:
        gpath = field_path(path, "gpu")
        g = check_fields(fields["gpu"], gpath, _GPU_FIELDS, "a GPU spec")
        number = g.get("number", 0)
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise SpecError(
                field_path(gpath, "number"),
                f"must be a whole number of GPUs, got {describe(number)}",
            )
        gpu = number
        if "type" in g:
            gpu_type = check_string(g["type"], field_path(gpath, "type"))
    return Resources(cpu, memory, gpu, gpu_type, disk)


def resources_to_dict(spec: Resources) -> dict[str, Any]:
    """The plain data of ``spec``; :func:`parse_resources` of it gives back an equal spec."""
    out: dict[str, Any] = {}
    if spec.cpu is not None:
        out["cpu"] = int(spec.cpu) if spec.cpu == int(spec.cpu) else spec.cpu
    if spec.memory is not None:
        out["memory"] = spec.memory
    if spec.gpu is not None:
        gpu: dict[str, Any] = {}
        if spec.gpu_type is not None:
            gpu["type"] = spec.gpu_type
        gpu["number"] = spec.gpu
        out["gpu"] = gpu
    if spec.disk is not None:
        out["disk"] = spec.disk
    return out


def check_requests_within_limits(requests: Resources | None, limits: Resources | None) -> None:
    """A request above its limit is an error, as in Kubernetes.

    >>> check_requests_within_limits(Resources(cpu=2), Resources(cpu=1))
    Traceback (most recent call last):
    ...
    headrace.stages.spec.SpecError: resource_requests.cpu: 2 is above resource_limits.cpu (1)
    """
    if requests is None or limits is None:
        return
    for name in ("cpu", "memory", "gpu", "disk"):
        asked, ceiling = getattr(requests, name), getattr(limits, name)
        if asked is not None and ceiling is not None and asked > ceiling:
            raise SpecError(
                f"resource_requests.{name}",
                f"{asked:g} is above resource_limits.{name} ({ceiling:g})",
            )


def _effective(requests: Resources | None, limits: Resources | None, name: str) -> tuple[Any, str]:
    """The amount placed by (the request, else the limit) and the field it came from."""
    if requests is not None and getattr(requests, name) is not None:
        return getattr(requests, name), f"resource_requests.{name}"
    if limits is not None and getattr(limits, name) is not None:
        return getattr(limits, name), f"resource_limits.{name}"
    return None, ""


def ray_task_resources(requests: Resources | None, limits: Resources | None) -> dict[str, Any]:
    """Ray task options for one datum attempt (``num_cpus`` is 1 when no CPU is given).

    >>> ray_task_resources(None, None)
    {'num_cpus': 1}
    >>> ray_task_resources(None, Resources(disk=10))
    Traceback (most recent call last):
    ...
    ValueError: resource_limits.disk: Ray has no disk resource, so it cannot place datums by disk; remove the field to run this stage on Ray
    """  # noqa: E501
    disk, field = _effective(requests, limits, "disk")
    if disk is not None:
        raise ValueError(
            f"{field}: Ray has no disk resource, so it cannot place datums by disk; remove the "
            "field to run this stage on Ray"
        )
    cpu, _ = _effective(requests, limits, "cpu")
    out: dict[str, Any] = {"num_cpus": 1 if cpu is None else cpu}
    memory, _ = _effective(requests, limits, "memory")
    if memory:
        out["memory"] = memory
    gpu, _ = _effective(requests, limits, "gpu")
    if gpu:
        out["num_gpus"] = gpu
    return out


_RAY_NAMES = {
    "num_cpus": ("CPU", "cpu"),
    "memory": ("memory", "memory"),
    "num_gpus": ("GPU", "gpu"),
}


def check_fits(
    stage: str,
    requests: Resources | None,
    limits: Resources | None,
    nodes: list[dict[str, Any]],
) -> None:
    """Refuse resources no single live node of the cluster (``ray.nodes()``) can hold.

    >>> nodes = [{"Alive": True, "NodeManagerAddress": "a", "Resources": {"CPU": 2.0,
    ...           "memory": 4e9}}]
    >>> check_fits("s", Resources(cpu=2, memory=10**9), None, nodes)
    >>> check_fits("s", Resources(memory=8 * 10**9), None, nodes)
    Traceback (most recent call last):
    ...
    ValueError: stage 's': resource_requests.memory asks for 8 GB, but no node of the Ray cluster has that much (largest: 4 GB on a); lower the request or add a bigger node
    """  # noqa: E501
    asked = ray_task_resources(requests, limits)
    alive = [n for n in nodes if n.get("Alive")]

    def fits(node: dict[str, Any]) -> bool:
        have = node.get("Resources", {})
        return all(have.get(_RAY_NAMES[k][0], 0) >= v for k, v in asked.items() if v)

    if any(fits(n) for n in alive):
        return
    # Name the first field no node offers enough of (alone), else the combination.
    for key, amount in asked.items():
        if not amount:
            continue
        ray_name, spec_name = _RAY_NAMES[key]
        _, field = _effective(requests, limits, spec_name)
        field = field or "resource_requests.cpu (1 by default)"
        best = max(alive, key=lambda n: n.get("Resources", {}).get(ray_name, 0), default=None)
        most = best.get("Resources", {}).get(ray_name, 0) if best else 0
        if all(n.get("Resources", {}).get(ray_name, 0) < amount for n in alive):
            where = f" on {best.get('NodeManagerAddress')}" if best else ""
            break
    else:
        raise ValueError(
            f"stage {stage!r}: resource_requests/resource_limits ask for {asked}, and some node "
            "has each of these, but no node has all of them at once; lower the requests"
        )
    raise ValueError(
        f"stage {stage!r}: {field} asks for {_amount(spec_name, amount)}, but no node of the Ray "
        f"cluster has that much (largest: {_amount(spec_name, most)}{where}); lower the "
        "request or add a bigger node"
    )


def cluster_slots(asked: dict[str, Any], nodes: list[dict[str, Any]]) -> int:
    """How many tasks asking ``asked`` (:func:`ray_task_resources`) the live nodes can run at
    once, counting each node's total resources.

    >>> nodes = [{"Alive": True, "Resources": {"CPU": 2.0, "memory": 8e9}},
    ...          {"Alive": True, "Resources": {"CPU": 1.0, "memory": 8e9}}]
    >>> cluster_slots({"num_cpus": 1}, nodes), cluster_slots({"num_cpus": 1, "memory": 5e9}, nodes)
    (3, 2)
    """
    total = 0
    for node in nodes:
        if not node.get("Alive"):
            continue
        have = node.get("Resources", {})
        fits = [int(have.get(_RAY_NAMES[k][0], 0) // v) for k, v in asked.items() if v]
        total += min(fits) if fits else 0
    return total


def _amount(name: str, value: float) -> str:
    if name == "memory":
        return f"{value / 1e9:g} GB"
    unit = "CPUs" if name == "cpu" else "GPUs"
    return f"{value:g} {unit}"
