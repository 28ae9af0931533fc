"""Plain records the store returns (repos, branches, commits, files, diffs) and the in-memory
tree-node overlay used to view open commits without writing anything."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headrace.store import trees
from headrace.store.metadata import FINISHED, CommitRecord

__all__ = [
    "BranchInfo",
    "CommitInfo",
    "DiffEntry",
    "FileInfo",
    "OverlayNodes",
    "RepoInfo",
    "file_info",
]


@dataclass(frozen=True)
class RepoInfo:
    name: str
    description: str
    created_at: float
    branches: tuple[str, ...]


@dataclass(frozen=True)
class BranchInfo:
    repo: str
    name: str
    head: str | None


@dataclass(frozen=True)
class CommitInfo:
    id: str
    repo: str
    branch: str | None
    parent: str | None
    origin: str
    state: str
    started_at: float
    finished_at: float | None
    message: str
    size_bytes: int | None
    file_count: int | None

    @classmethod
    def of(cls, r: CommitRecord) -> CommitInfo:
        return cls(
            r.id, r.repo, r.branch, r.parent, r.origin, r.state, r.started_at, r.finished_at,
            r.message, r.size_bytes, r.file_count,
        )  # fmt: skip

    @property
    def finished(self) -> bool:
        return self.state == FINISHED


@dataclass(frozen=True)
class FileInfo:
    """A file (``type='file'``, with its content hash) or a directory (``type='dir'``)."""

    path: str
    type: str
    size: int
    hash: str | None = None


@dataclass(frozen=True)
class DiffEntry:
    """``kind`` is ``added``, ``deleted`` or ``modified``."""

    path: str
    kind: str
    old: FileInfo | None
    new: FileInfo | None


def _file(entry: trees.Entry) -> FileInfo:
    return FileInfo(entry.path, "file", entry.size, entry.hash)


def file_info(entry: trees.Entry) -> FileInfo:
    return FileInfo(entry.path, "file", entry.size, entry.hash)


class OverlayNodes:
    """Tree nodes read from the database, with new nodes kept in memory (never written)."""

    def __init__(self, base: Any, local: dict[str, bytes] | None = None) -> None:
        self.base = base
        self.local: dict[str, bytes] = local if local is not None else {}

    def get_node(self, key: str) -> bytes:
        found = self.local.get(key)
        return found if found is not None else self.base.get_node(key)

    def put_nodes(self, nodes: dict[str, bytes]) -> None:
        self.local.update(nodes)
