"""Materialised PCollections: side inputs, sink records and inputs of cut ParDos.

A :class:`Collector` keeps the chunks it receives; past its memory budget (or always, when its
output goes to another process) it appends them to a blob of the run's
:class:`~headrace.exec.spill.SpillSpace`. ``close()`` returns runs that :func:`read_collection`
reads back chunk by chunk, through the same space.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from headrace.exec.blocks import dump_block, read_block
from headrace.exec.spill import SpillSpace

__all__ = ["Collector", "FileCollection", "MemoryCollection", "read_collection"]


@dataclass
class MemoryCollection:
    chunks: list[list[Any]]
    count: int


@dataclass
class FileCollection:
    key: str
    count: int
    offsets: list[int]


CollectionRun = MemoryCollection | FileCollection


class Collector:
    """Writer side of a materialised PCollection for one task."""

    def __init__(
        self,
        spill: SpillSpace,
        budget_bytes: int,
        in_memory_handoff: bool,
        chunk_size: int = 1024,
    ) -> None:
        self.chunk_size = chunk_size
        self.spill = spill
        self.budget = budget_bytes
        self.in_memory = in_memory_handoff
        self.chunks: list[list[Any]] = []
        self.count = 0
        self.pending = 0
        self.runs: list[CollectionRun] = []
        self._file: IO[bytes] | None = None
        self._key = ""
        self._file_count = 0
        self._offsets: list[int] = []

    def add(self, chunk: list[Any]) -> None:
        if not chunk:
            return
        n = self.chunk_size
        if len(chunk) > n:  # keep chunks small so readers can share them out evenly
            for i in range(0, len(chunk), n):
                self.add(chunk[i : i + n])
            return
        self.chunks.append(chunk)
        self.count += len(chunk)
        self.pending += len(chunk)
        if self.pending * 64 > self.budget or not self.in_memory:
            if self.pending >= 4096 or not self.in_memory:
                self._flush()

    def _flush(self) -> None:
        if not self.chunks:
            return
        if self._file is None:
            self._key, self._file = self.spill.create("coll")  # closed in close()
        for chunk in self.chunks:
            self._offsets.append(self._file.tell())
            self._file.write(dump_block(chunk))
            self._file_count += len(chunk)
        self.chunks = []
        self.pending = 0

    def close(self) -> list[CollectionRun]:
        if self._file is not None or not self.in_memory:
            self._flush()
            if self._file is not None:
                self._file.close()
                self.runs.append(FileCollection(self._key, self._file_count, self._offsets))
        if self.chunks:
            self.runs.append(MemoryCollection(self.chunks, sum(len(c) for c in self.chunks)))
            self.chunks = []
        return self.runs


def read_collection(
    runs: list[CollectionRun], spill: SpillSpace, part: tuple[int, int] = (0, 1)
) -> Iterator[list[Any]]:
    """The chunks of ``runs``; with ``part=(i, n)`` only every n-th chunk, starting at the i-th."""
    i, n = part
    for run in runs:
        if isinstance(run, MemoryCollection):
            yield from run.chunks[i::n]
            continue
        with spill.open(run.key) as f:
            for offset in run.offsets[i::n]:
                f.seek(offset)
                yield read_block(f)
