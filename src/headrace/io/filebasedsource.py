"""Shared machinery for sources that read files matched by a pattern.

A :class:`FileBasedSource` starts as a file pattern. ``split`` expands the pattern, cuts each file
into *ranges* (byte ranges for line-oriented formats, row-group ranges for Parquet, whole files
otherwise) and packs consecutive ranges into roughly ``desired_num_splits`` sources of about equal
weight, so one split is one worker's share. ``read`` reads the ranges in order by calling the
subclass hook :meth:`FileBasedSource.read_range`.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from headrace.io.filesystem import (
    CompressionTypes,
    FileMetadata,
    check_compression_type,
    match_files,
)
from headrace.model.sources import BoundedSource

__all__ = ["FileBasedSource", "FileRange", "ReadEachPattern"]


class FileRange(NamedTuple):
    """A part of one file: ``start``/``stop`` in the source's unit; ``stop=None`` means to the end.

    ``weight`` is the approximate number of bytes the range covers (used to balance splits).
    """

    path: str
    start: int
    stop: int | None
    weight: int


class FileBasedSource(BoundedSource):
    """A bounded source over the files matching ``file_pattern``.

    Subclasses implement :meth:`read_range` and may override :meth:`split_file`. ``splittable``
    says whether an uncompressed file may be cut into byte ranges (the subclass must then read
    exactly the records that *start* inside ``[start, stop)``).
    """

    def __init__(
        self,
        file_pattern: str,
        *,
        min_bundle_size: int = 0,
        compression_type: str = CompressionTypes.AUTO,
        splittable: bool = True,
        validate: bool = True,
    ) -> None:
        if not isinstance(file_pattern, str) or not file_pattern:
            raise ValueError(f"file_pattern must be a non-empty string, got {file_pattern!r}")
        check_compression_type(compression_type)
        if not isinstance(min_bundle_size, int) or min_bundle_size < 0:
            raise ValueError(f"min_bundle_size must be an int >= 0, got {min_bundle_size!r}")
        self.file_pattern = file_pattern
        self.min_bundle_size = min_bundle_size
        self.compression_type = compression_type
        self.splittable = splittable
        self._ranges: tuple[FileRange, ...] | None = None
        if validate:
            match_files(file_pattern)

    # -- hooks -------------------------------------------------------------------------------

    def read_range(self, file_range: FileRange) -> Iterator[Any]:
        """Yield the records of ``file_range``."""
        raise NotImplementedError(f"{type(self).__name__} must implement read_range()")

    def split_file(self, file: FileMetadata, bundle_size: int) -> list[FileRange]:
        """Cut one file into ranges of about ``bundle_size`` bytes (default: byte ranges)."""
        size = file.size_in_bytes
        if (
            not self.splittable
            or size <= bundle_size
            or CompressionTypes.resolve(self.compression_type, file.path)
            != CompressionTypes.UNCOMPRESSED
        ):
            return [FileRange(file.path, 0, None, size)]
        pieces = math.ceil(size / bundle_size)
        bounds = [size * i // pieces for i in range(pieces + 1)]
        return [
            FileRange(file.path, lo, hi, hi - lo)
            for lo, hi in itertools.pairwise(bounds)
            if hi > lo
        ]

    # -- BoundedSource -----------------------------------------------------------------------

    def _file_ranges(self) -> list[FileRange]:
        if self._ranges is not None:
            return list(self._ranges)
        return [FileRange(f.path, 0, None, f.size_in_bytes) for f in match_files(self.file_pattern)]

    def _with_ranges(self, ranges: list[FileRange]) -> FileBasedSource:
        part = copy.copy(self)
        part._ranges = tuple(ranges)
        return part

    def split(self, desired_num_splits: int) -> list[BoundedSource]:
        ranges = self._file_ranges()
        if not ranges:
            return []
        total = sum(r.weight for r in ranges)
        desired = max(1, desired_num_splits)
        bundle_size = max(math.ceil(total / desired), self.min_bundle_size, 1)
        pieces: list[FileRange] = []
        for r in ranges:
            if r.start == 0 and r.stop is None:
                pieces.extend(self.split_file(FileMetadata(r.path, r.weight), bundle_size))
            else:
                pieces.append(r)
        # Pack consecutive pieces into at most ``desired`` groups by where each piece's middle
        # falls in the cumulative weight, so every worker gets one contiguous share.
        groups: list[list[FileRange]] = [[] for _ in range(min(desired, len(pieces)))]
        total = sum(p.weight for p in pieces)
        position = 0
        for piece in pieces:
            middle = position + piece.weight / 2
            index = int(middle * len(groups) / total) if total else 0
            groups[min(index, len(groups) - 1)].append(piece)
            position += piece.weight
        return [self._with_ranges(group) for group in groups if group]

    def read(self) -> Iterator[Any]:
        for file_range in self._file_ranges():
            yield from self.read_range(file_range)

    def estimate_size(self) -> int | None:
        return sum(r.weight for r in self._file_ranges())

    def display_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"file_pattern": self.file_pattern}
        if self.compression_type != CompressionTypes.AUTO:
            data["compression_type"] = self.compression_type
        if self._ranges is not None:
            data["ranges"] = len(self._ranges)
        return data


class ReadEachPattern:
    """``pattern -> records``: what the ``ReadAllFrom*`` transforms FlatMap over their input.

    ``make_source(pattern)`` builds the (unvalidated) source for one pattern. A pattern that
    matches no file reads as nothing, as Beam's ``ReadAllFiles`` does (``FileSystems.match``
    gives an empty list). ``with_filename`` yields ``(path, record)`` pairs.
    """

    def __init__(self, make_source: Callable[[str], FileBasedSource], with_filename: bool) -> None:
        self.make_source = make_source
        self.with_filename = with_filename

    def __call__(self, pattern: str) -> Iterator[Any]:
        try:
            match_files(pattern)
        except FileNotFoundError:
            return
        source = self.make_source(pattern)
        for file_range in source._file_ranges():
            if self.with_filename:
                path = file_range.path
                for record in source.read_range(file_range):
                    yield (path, record)
            else:
                yield from source.read_range(file_range)
