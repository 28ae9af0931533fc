"""Where a run's intermediate data lives: the spill space that grouping runs and collections use.

A task writes what the next stage reads (shuffle runs of a grouping, chunks of a materialised
collection, and spills past the memory budget) into a :class:`SpillSpace`. The space hands out a
*key* for each new blob; the key travels inside the small descriptors a task returns
(:class:`~headrace.exec.grouping.FileRun`, :class:`~headrace.exec.collect.FileCollection`), and a
task of a later stage, wherever it runs, opens the blob again by that key through the same space.

Nothing in ``exec`` calls ``open()`` on a spill path directly, so a runner chooses where the
bytes go by choosing the space: :class:`LocalSpillSpace` keeps them in a folder of this machine
(every direct-runner configuration); a space on an fsspec URL or an object store would let tasks
on other machines read each other's outputs. A space must pickle (it is part of every task's
context) and its blobs are written once, then only read (random access by offset) or deleted.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from typing import IO, Protocol, runtime_checkable

__all__ = ["LocalSpillSpace", "SpillSpace"]


@runtime_checkable
class SpillSpace(Protocol):
    """Storage for the blobs of one run; see the module docstring."""

    def create(self, kind: str) -> tuple[str, IO[bytes]]:
        """A new blob: its key, and a binary file open for writing that the caller closes."""
        ...

    def open(self, key: str) -> IO[bytes]:
        """The blob ``key``, open for reading (seekable); the caller closes it."""
        ...

    def delete(self, key: str) -> None:
        """Forget the blob ``key`` (a blob no later reader needs)."""
        ...

    def cleanup(self) -> None:
        """Remove every blob of the run (called once by the coordinator, at the end)."""
        ...


@dataclass(frozen=True)
class LocalSpillSpace:
    """Blobs as files in one folder of the local file system; the key is the file's path.

    >>> space = LocalSpillSpace.make_temporary()
    >>> key, f = space.create("run")
    >>> with f:
    ...     _ = f.write(b"abc")
    >>> with space.open(key) as g:
    ...     g.read()
    b'abc'
    >>> space.cleanup()
    >>> os.path.exists(space.root)
    False
    """

    root: str

    @classmethod
    def make_temporary(cls, prefix: str = "headrace-run-") -> LocalSpillSpace:
        """A space in a new temporary folder, removed by :meth:`cleanup`."""
        return cls(tempfile.mkdtemp(prefix=prefix))

    def create(self, kind: str) -> tuple[str, IO[bytes]]:
        path = os.path.join(self.root, f"{kind}-{uuid.uuid4().hex}.bin")
        return path, open(path, "wb")

    def open(self, key: str) -> IO[bytes]:
        return open(key, "rb")

    def delete(self, key: str) -> None:
        os.unlink(key)

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
