"""Pachyderm's own pipeline specs, read as headrace stage specs.

This module owns the translation of a Pachyderm pipeline spec (JSON or YAML, as users have
them: ``pipeline.name``, ``transform.cmd``...) into the plain data of a headrace stage spec,
which :mod:`headrace.stages.spec` then validates as any other. Every Pachyderm field gets one
of three treatments:

- **mapped** to the headrace field with the same meaning (``pipeline.name`` -> ``name``,
  ``parallelism_spec.constant`` -> ``parallelism``, ``reprocess_spec`` -> ``reprocess``,
  ``resource_requests``/``resource_limits`` (kept as they are: placement on Ray),
  ``transform.cmd``/``stdin``/``env``/``image``, the input tree with its pfs and cron fields);
  a ``cmd`` transform sees its datum under ``/pfs/<input>`` and writes ``/pfs/out`` as in
  Pachyderm (``pfs: true``), and a relative script path in ``cmd`` is taken from the folder
  of the spec file;
- **warned about** when it has no meaning here and cannot change what a job outputs (sidecar
  resources, autoscaling, Kubernetes settings...): the warning names the field;
- **refused** when it would change the results and headrace cannot honour it (``err_cmd``,
  ``spout``, ``service``, ``s3_out``, a pfs input's ``commit`` or ``trigger``...): a
  :class:`~headrace.stages.specfields.SpecError` naming the field.

A spec is Pachyderm's when it has a top-level ``pipeline`` mapping (headrace's has ``name``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import Any

from headrace.stages.specfields import SpecError, describe, field_path

__all__ = ["from_pachyderm", "is_pachyderm_spec"]

Warn = Callable[[str], None]

# Top-level fields with no effect on outputs here (Kubernetes, scaling, caching, metadata).
_IGNORED_TOP = {
    "metadata": "headrace keeps no labels or annotations",
    "sidecar_resource_limits": "there is no sidecar",
    "sidecar_resource_requests": "there is no sidecar",
    "scheduling_spec": "there is no Kubernetes scheduling",
    "pod_spec": "there are no pods",
    "pod_patch": "there are no pods",
    "tolerations": "there are no pods",
    "autoscaling": "workers start per job and stop after it",
    "standby": "workers start per job and stop after it",
    "datum_set_spec": "datums are batched by headrace itself",
    "chunk_spec": "datums are batched by headrace itself",
    "cache_size": "there is no datum cache to size",
    "enable_stats": "datum statistics are always kept",
    "max_queue_size": "there is no queue to size",
    "maximum_expected_uptime": "there is no uptime alerting",
    "update": "'headrace stage update' changes a stage",
    "reprocess": "use 'headrace stage update --reprocess' or 'job rerun'",
    "spec_commit": "specs are not versioned in a repo",
}

_RESOURCES_NOTE = (
    "places datums on Ray (headrace daemon --ray); local worker processes reserve nothing"
)

# Top-level fields that change results and cannot be honoured.
_REFUSED_TOP = {
    "tf_job": "Kubeflow TFJobs do not run here",
    "service": "a service pipeline serves its output over the network; headrace has no services",
    "spout": "a spout writes commits continuously; write a cron stage or put files instead",
    "s3_out": "the output is a repo, not an S3 gateway; use egress to copy it out",
    "determined": "Determined experiments do not run here",
    "egress_sql": "use egress: {sql: URL, table: NAME}",
}

_TRANSFORM_IGNORED = {
    "user": "datums run as the user running headrace",
    "debug": "logs are always kept",
    "image_pull_secrets": "images are pulled by the configured container engine",
    "memory_volume": "scratch folders live on disk or in memory as headrace chooses",
    "dockerfile": "build the image yourself",
    "build": "build the image yourself",
}
_TRANSFORM_REFUSED = {
    "err_cmd": "a command run when a datum fails changes which datums succeed",
    "err_stdin": "a command run when a datum fails changes which datums succeed",
    "accept_return_code": "exit codes other than 0 fail the datum here",
    "secrets": "Kubernetes secrets are not available; pass values with transform.env",
    "working_dir": "commands run in the folder of the spec file",
}
_PFS_MAPPED = (
    "name", "repo", "branch", "glob", "lazy", "empty_files", "join_on", "outer_join", "group_by",
)  # fmt: skip
_PFS_IGNORED = {"project": "headrace has no projects", "repo_type": "repos have no types"}
_PFS_REFUSED = {
    "commit": "a stage reads the head of its branch; pin data with a branch of its own",
    "s3": "inputs are files in the datum's folder, not an S3 gateway",
    "trigger": "branch triggers are not supported; commit to the input branch when it is due",
}


def is_pachyderm_spec(data: object) -> bool:
    """Whether ``data`` (a parsed spec) is a Pachyderm pipeline spec."""
    return isinstance(data, Mapping) and isinstance(data.get("pipeline"), Mapping)


def _duration(value: object, path: str) -> object:
    return value  # Pachyderm's "1h", "30s" and headrace's durations are written alike


def from_pachyderm(
    data: Mapping[str, Any], warn: Warn, folder: str | None = None
) -> dict[str, Any]:
    """The headrace stage spec (plain data) of a Pachyderm pipeline spec; ``warn`` gets one
    message per field that has no meaning here; ``folder`` is where the spec file lives
    (relative script paths in ``cmd`` are taken from it).

    >>> notes = []
    >>> spec = from_pachyderm({
    ...     "pipeline": {"name": "edges"},
    ...     "transform": {"cmd": ["python3", "/edges.py"]},
    ...     "input": {"pfs": {"repo": "images", "glob": "/*"}},
    ...     "resource_requests": {"memory": "1G"},
    ... }, notes.append)
    >>> spec["name"], spec["transform"]
    ('edges', {'cmd': ['python3', '/edges.py'], 'pfs': True})
    >>> notes
    ['resource_requests: places datums on Ray (headrace daemon --ray); local worker processes reserve nothing']
    """  # noqa: E501
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key == "pipeline":
            out["name"] = _pipeline_name(value, warn)
        elif key == "description":
            out["description"] = value
        elif key == "transform":
            out["transform"] = _transform(value, warn, folder)
        elif key == "input":
            out["input"] = _input(value, "input", warn)
        elif key == "parallelism_spec":
            parallelism = _parallelism(value, warn)
            if parallelism is not None:
                out["parallelism"] = parallelism
        elif key in ("datum_tries", "output_branch", "salt"):
            out[key] = value
        elif key in ("datum_timeout", "job_timeout"):
            out[key] = _duration(value, key)
        elif key == "egress":
            out["egress"] = _egress(value)
        elif key == "reprocess_spec":
            out["reprocess"] = value
        elif key in ("resource_requests", "resource_limits"):
            out[key] = value
            warn(f"{key}: {_RESOURCES_NOTE}")
        elif key in _IGNORED_TOP:
            warn(f"{key}: ignored, {_IGNORED_TOP[key]}")
        elif key in _REFUSED_TOP:
            raise SpecError(key, f"cannot be honoured: {_REFUSED_TOP[key]}")
        else:
            raise SpecError(key, "is not a field of a Pachyderm pipeline spec headrace knows")
    for needed in ("transform", "input"):
        if needed not in out:
            raise SpecError("", f"a Pachyderm pipeline spec needs '{needed}'")
    return out


def _pipeline_name(value: object, warn: Warn) -> object:
    if not isinstance(value, Mapping) or "name" not in value:
        raise SpecError("pipeline", f"must be a mapping with a name, got {describe(value)}")
    for key in value:
        if key == "project":
            warn("pipeline.project: ignored, headrace has no projects (stage names are global)")
        elif key != "name":
            raise SpecError(field_path("pipeline", str(key)), "is not a field of 'pipeline'")
    return value["name"]


def _transform(value: object, warn: Warn, folder: str | None) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError("transform", f"must be a mapping, got {describe(value)}")
    out: dict[str, Any] = {}
    for key, item in value.items():
        at = field_path("transform", str(key))
        if key == "cmd":
            out["cmd"] = _resolve_script(item, folder)
        elif key in ("stdin", "env", "image"):
            out[key] = item
        elif key == "datum_batching":
            pass  # a per-datum protocol of Pachyderm's SDK; each datum is one run here anyway
        elif key in _TRANSFORM_IGNORED:
            warn(f"{at}: ignored, {_TRANSFORM_IGNORED[key]}")
        elif key in _TRANSFORM_REFUSED:
            raise SpecError(at, f"cannot be honoured: {_TRANSFORM_REFUSED[key]}")
        else:
            raise SpecError(at, "is not a field of a Pachyderm transform headrace knows")
    if "cmd" not in out:
        raise SpecError("transform.cmd", "a Pachyderm transform needs a command")
    out["pfs"] = True
    return out


def _resolve_script(cmd: object, folder: str | None) -> object:
    """``cmd`` with a relative script path (an argument naming a file beside the spec, such
    as ``edges.py`` or ``./run.sh``) made absolute; other arguments unchanged."""
    if folder is None or not isinstance(cmd, list):
        return cmd
    out = []
    for i, arg in enumerate(cmd):
        if (
            isinstance(arg, str)
            and arg
            and not os.path.isabs(arg)
            and not arg.startswith("-")
            and (i > 0 or "/" in arg)
            and os.path.isfile(os.path.join(folder, arg))
        ):
            arg = os.path.normpath(os.path.join(folder, arg))
        out.append(arg)
    return out


def _parallelism(value: object, warn: Warn) -> int | None:
    if not isinstance(value, Mapping):
        raise SpecError("parallelism_spec", f"must be a mapping, got {describe(value)}")
    for key in value:
        if key not in ("constant", "coefficient"):
            raise SpecError(field_path("parallelism_spec", str(key)), "is not a known field")
    if "constant" in value:
        constant = value["constant"]
        if not isinstance(constant, int) or isinstance(constant, bool) or constant < 0:
            raise SpecError(
                "parallelism_spec.constant", f"must be a whole number, got {constant!r}"
            )
        return max(1, constant)
    if "coefficient" in value:
        coefficient = value["coefficient"]
        if not isinstance(coefficient, int | float) or coefficient <= 0:
            raise SpecError(
                "parallelism_spec.coefficient", f"must be a positive number, got {coefficient!r}"
            )
        workers = max(1, math.ceil(coefficient * (os.cpu_count() or 1)))
        warn(
            "parallelism_spec.coefficient: read as a share of this machine's cores "
            f"({workers} worker(s)); Pachyderm counts cluster nodes"
        )
        return workers
    return None


def _egress(value: object) -> object:
    if isinstance(value, Mapping) and set(value) == {"URL"}:
        return value["URL"]
    if isinstance(value, Mapping) and "URL" in value:
        return value["URL"]
    if isinstance(value, Mapping) and "object_storage" in value:
        url = value["object_storage"]
        return url.get("url") if isinstance(url, Mapping) else url
    raise SpecError(
        "egress",
        "give {URL: 's3://bucket/dir'} (any fsspec URL); for SQL write headrace's "
        f"{{sql: URL, table: NAME}}, got {describe(value)}",
    )


def _input(value: object, path: str, warn: Warn) -> dict[str, Any]:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise SpecError(path, f"must be a mapping with one input kind, got {describe(value)}")
    ((kind, body),) = value.items()
    at = field_path(path, str(kind))
    if kind in ("cross", "union", "join", "group"):
        if not isinstance(body, list):
            raise SpecError(at, f"must be a list of inputs, got {describe(body)}")
        return {kind: [_input(v, f"{at}[{i}]", warn) for i, v in enumerate(body)]}
    if kind == "pfs":
        if not isinstance(body, Mapping):
            raise SpecError(at, f"must be a mapping, got {describe(body)}")
        pfs: dict[str, Any] = {}
        for key, item in body.items():
            here = field_path(at, str(key))
            if key in _PFS_MAPPED:
                pfs[key] = item
            elif key in _PFS_IGNORED:
                warn(f"{here}: ignored, {_PFS_IGNORED[key]}")
            elif key in _PFS_REFUSED:
                raise SpecError(here, f"cannot be honoured: {_PFS_REFUSED[key]}")
            else:
                raise SpecError(here, "is not a field of a Pachyderm pfs input headrace knows")
        return {"pfs": pfs}
    if kind == "cron":
        if not isinstance(body, Mapping):
            raise SpecError(at, f"must be a mapping, got {describe(body)}")
        cron: dict[str, Any] = {}
        for key, item in body.items():
            here = field_path(at, str(key))
            if key in ("name", "spec", "overwrite"):
                cron[key] = item
            elif key in ("repo", "project"):
                warn(f"{here}: ignored, the ticks go to the repo <stage>_<input name>")
            elif key == "start":
                raise SpecError(here, "cannot be honoured: ticks start when the stage is created")
            else:
                raise SpecError(here, "is not a field of a Pachyderm cron input headrace knows")
        return {"cron": cron}
    raise SpecError(
        at,
        f"{kind!r} inputs are not supported (pfs, cross, union, join, group and cron are)",
    )
