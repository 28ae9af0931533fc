"""The Ray runner: batch pipelines as Ray tasks on a cluster (``pip install 'headrace[ray]'``).

- :mod:`headrace.runners.ray.runner`: ``RayRunner`` (submission checks, connecting to Ray).
- :mod:`headrace.runners.ray.executor`: ``RayExecutor`` (one Ray task per task of a stage,
  shuffle bundles in Ray's object store) and the driver's ``ObjectStoreSpill``.
- :mod:`headrace.runners.ray.runend`: DoFn ``teardown`` in every worker process at a run's end.

Importing this package does not import Ray; running a pipeline does.
"""

from __future__ import annotations

from headrace.runners.ray.executor import ObjectStoreSpill, RayExecutor
from headrace.runners.ray.runner import RayPipelineResult, RayRunner, UnsupportedOnRay

__all__ = ["ObjectStoreSpill", "RayExecutor", "RayPipelineResult", "RayRunner", "UnsupportedOnRay"]
