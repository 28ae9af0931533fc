"""Materialised PCollections: side inputs, sink records and inputs of cut ParDos.

A :class:`Collector` keeps the chunks it receives; past its memory budget it appends them to a
file. ``close()`` returns runs that :func:`read_collection` reads back chunk by chunk.
"""

from __future__ import annotations

import os
import pickle
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Collector", "FileCollection", "MemoryCollection", "read_collection"]

_PROTO = pickle.HIGHEST_PROTOCOL


@dataclass
class MemoryCollection:
    chunks: list[list[Any]]
    count: int


@dataclass
class FileCollection:
    path: str
    count: int


CollectionRun = MemoryCollection | FileCollection


class Collector:
    """Writer side of a materialised PCollection for one task."""

    def __init__(self, spill_dir: str, budget_bytes: int, in_memory_handoff: bool) -> None:
        self.spill_dir = spill_dir
        self.budget = budget_bytes
        self.in_memory = in_memory_handoff
        self.chunks: list[list[Any]] = []
        self.count = 0
        self.pending = 0
        self.runs: list[CollectionRun] = []
        self._file: Any = None
        self._path = ""
        self._file_count = 0

    def add(self, chunk: list[Any]) -> None:
        if not chunk:
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
            self._path = os.path.join(self.spill_dir, f"coll-{uuid.uuid4().hex}.bin")
            self._file = open(self._path, "wb")  # noqa: SIM115 - closed in close()
        for chunk in self.chunks:
            pickle.dump(chunk, self._file, protocol=_PROTO)
            self._file_count += len(chunk)
        self.chunks = []
        self.pending = 0

    def close(self) -> list[CollectionRun]:
        if self._file is not None or not self.in_memory:
            self._flush()
            if self._file is not None:
                self._file.close()
                self.runs.append(FileCollection(self._path, self._file_count))
        if self.chunks:
            self.runs.append(MemoryCollection(self.chunks, sum(len(c) for c in self.chunks)))
            self.chunks = []
        return self.runs


def read_collection(runs: list[CollectionRun]) -> Iterator[list[Any]]:
    for run in runs:
        if isinstance(run, MemoryCollection):
            yield from run.chunks
            continue
        with open(run.path, "rb") as f:
            while True:
                try:
                    yield pickle.load(f)
                except EOFError:
                    break
