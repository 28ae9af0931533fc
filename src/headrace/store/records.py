"""Plain records the store returns (repos, branches, commits, files, diffs) and the in-memory
tree-node overlay used to view open commits without writing anything."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from itertools import repeat
from typing import Any, NamedTuple

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
    "file_infos",
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


class FileInfo(NamedTuple):
    """A file (``type='file'``, with its content hash) or a directory (``type='dir'``).

    Immutable and cheap to make (a named tuple: listings make millions of them).

    >>> FileInfo("/a.csv", "file", 3, "ab12")
    FileInfo(path='/a.csv', type='file', size=3, hash='ab12')
    """

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


def file_info(entry: trees.Entry) -> FileInfo:
    """The FileInfo of a tree entry."""
    return FileInfo(entry.path, "file", entry.size, entry.hash)


_new_tuple = tuple.__new__


def file_infos(
    paths: Iterable[str], hashes: Iterable[str], sizes: Iterable[int]
) -> Iterator[FileInfo]:
    """FileInfos of files given as parallel sequences (see :func:`trees.iter_runs`), made
    without a Python call per file.

    >>> [*file_infos(["/a"], ["h"], [1])]
    [FileInfo(path='/a', type='file', size=1, hash='h')]
    """
    return map(_new_tuple, repeat(FileInfo), zip(paths, repeat("file"), sizes, hashes))


class OverlayNodes:
    """Tree nodes read from the database, with new nodes kept in memory (never written)."""

    def __init__(self, base: Any, local: dict[str, bytes] | None = None) -> None:
        self.base = base
        self.local: dict[str, bytes] = local if local is not None else {}

    def get_node(self, key: str) -> bytes:
        found = self.local.get(key)
        return found if found is not None else self.base.get_node(key)

    def get_nodes(self, keys: Collection[str]) -> dict[str, bytes]:
        """The nodes among ``keys`` that exist (see :class:`trees.NodeStore`)."""
        local = self.local
        found = {key: local[key] for key in keys if key in local}
        rest = [key for key in keys if key not in found]
        get_nodes = getattr(self.base, "get_nodes", None)
        if rest and get_nodes is not None:
            found.update(get_nodes(rest))
        return found

    def put_nodes(self, nodes: dict[str, bytes]) -> None:
        self.local.update(nodes)
