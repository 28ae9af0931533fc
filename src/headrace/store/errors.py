"""Errors of the versioned store. Every message names the repo, branch, commit, path or object
involved and, where there is one, what to do."""

from __future__ import annotations

__all__ = [
    "BranchExists",
    "BranchNotFound",
    "CommitFinished",
    "CommitNotFound",
    "Conflict",
    "CorruptObject",
    "FileNotFound",
    "InvalidName",
    "InvalidPath",
    "InvalidReference",
    "MergeConflict",
    "NotFound",
    "ObjectNotFound",
    "ObjectsCollected",
    "RepoExists",
    "RepoNotFound",
    "StoreError",
]


class StoreError(Exception):
    """Base of every store error."""


class InvalidName(StoreError, ValueError):
    """A repo or branch name that is not allowed."""


class InvalidReference(StoreError, ValueError):
    """A reference such as ``repo@branch^2:/path`` that does not parse."""


class InvalidPath(StoreError, ValueError):
    """A file path that is not allowed (``..``, NUL, empty segment, ...)."""


class NotFound(StoreError, KeyError):
    """Something named does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class RepoNotFound(NotFound):
    pass


class BranchNotFound(NotFound):
    pass


class CommitNotFound(NotFound):
    pass


class FileNotFound(NotFound):
    pass


class ObjectNotFound(NotFound):
    pass


class RepoExists(StoreError):
    pass


class BranchExists(StoreError):
    """Creating a branch that is already there."""


class CommitFinished(StoreError):
    """A write to a finished (immutable) commit."""


class Conflict(StoreError):
    """A concurrent update lost the race (e.g. two writers moved the same branch)."""


class MergeConflict(Conflict):
    """A three-way merge found paths changed differently on both sides."""

    def __init__(self, message: str, paths: list[str]) -> None:
        super().__init__(message)
        self.paths = paths


class ObjectsCollected(Conflict):
    """A gc running during a write deleted objects the write was about to refer to; nothing
    was recorded (writing the same files again stores them again)."""


class CorruptObject(StoreError):
    """Stored bytes do not match their content hash."""
