"""Which paths every node of a cluster reaches: fsspec URLs, and folders declared shared.

A folder mounted at the same path on every machine (NFS, a ``ReadWriteMany`` volume, or one
file system seen from several network namespaces) is as good as an object store for a cluster,
but nothing tells it apart from a machine's own disk. ``HEADRACE_SHARED_FOLDERS`` (folders
separated by ``os.pathsep``) declares such folders: paths under them pass the multi-machine
checks of the Ray runner and of stages on Ray.

>>> import os
>>> os.environ[SHARED_FOLDERS_ENV] = "/mnt/shared"
>>> reaches_every_node("/mnt/shared/in/*.txt"), reaches_every_node("/mnt/sharedx/a")
(True, False)
>>> reaches_every_node("s3://bucket/a"), reaches_every_node("file:///mnt/shared/a")
(True, True)
>>> del os.environ[SHARED_FOLDERS_ENV]
"""

from __future__ import annotations

import os

__all__ = ["SHARED_FOLDERS_ENV", "reaches_every_node", "shared_folders"]

SHARED_FOLDERS_ENV = "HEADRACE_SHARED_FOLDERS"


def shared_folders() -> list[str]:
    """The folders ``HEADRACE_SHARED_FOLDERS`` declares shared by every node (absolute)."""
    raw = os.environ.get(SHARED_FOLDERS_ENV, "")
    return [os.path.abspath(p) for p in raw.split(os.pathsep) if p.strip()]


def reaches_every_node(path: str) -> bool:
    """True for a URL of a remote file system, or a path under a declared shared folder."""
    if path.startswith("file://"):
        path = path[len("file://") :]
    elif "://" in path:
        return True
    full = os.path.abspath(path)
    return any(full == f or full.startswith(f.rstrip(os.sep) + os.sep) for f in shared_folders())
