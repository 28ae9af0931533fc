"""``FileSystems``: Beam's file-system facade (``apache_beam.io.filesystems.FileSystems``).

Static methods over local paths and fsspec URLs: ``match``, ``open``, ``create``, ``exists``,
``delete``, ``rename``, ``copy``, ``join``, ``split``, ``mkdirs``. Reading and writing go through
:mod:`headrace.io.filesystem`, so compression follows the same rules as the file IOs.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Sequence
from typing import IO, Any, NamedTuple

from headrace.io.filesystem import (
    CompressionTypes,
    FileMetadata,
    delete_files,
    delete_recursive,
    makedirs,
    match_files,
    open_for_read,
    open_for_write,
    rename,
)

__all__ = ["BeamIOError", "FileSystems", "MatchResult"]


class BeamIOError(IOError):
    """A file-system operation failed for some paths; ``exception_details`` maps each path (or
    pair of paths) to its exception."""

    def __init__(self, msg: str, exception_details: dict[Any, BaseException] | None = None):
        super().__init__(msg)
        self.exception_details = exception_details or {}


class MatchResult(NamedTuple):
    """The files one pattern matched."""

    pattern: str
    metadata_list: list[FileMetadata]


def _split_url(path: str) -> tuple[str, str]:
    protocol, sep, rest = path.partition("://")
    return (protocol + sep, rest) if sep else ("", path)


class FileSystems:
    """Beam's static file-system API.

    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> with FileSystems.create(FileSystems.join(d, "a.txt")) as f:
    ...     _ = f.write(b"hello")
    >>> [result] = FileSystems.match([FileSystems.join(d, "*.txt")])
    >>> [m.size_in_bytes for m in result.metadata_list]
    [5]
    >>> FileSystems.open(FileSystems.join(d, "a.txt")).read()
    b'hello'
    """

    @staticmethod
    def join(basepath: str, *paths: str) -> str:
        """Join path components; URLs keep their scheme."""
        prefix, rest = _split_url(basepath)
        if not prefix:
            return os.path.join(basepath, *paths)
        return prefix + posixpath.join(rest, *(p.lstrip("/") for p in paths))

    @staticmethod
    def split(path: str) -> tuple[str, str]:
        """``(directory, last component)``."""
        prefix, rest = _split_url(path)
        if not prefix:
            return os.path.split(path)
        head, tail = posixpath.split(rest.rstrip("/"))
        return prefix + head, tail

    @staticmethod
    def mkdirs(path: str) -> None:
        makedirs(path)

    @staticmethod
    def match(patterns: Sequence[str], limits: Sequence[int] | None = None) -> list[MatchResult]:
        """One :class:`MatchResult` per pattern (an empty list when nothing matches)."""
        if isinstance(patterns, str):
            raise TypeError("FileSystems.match needs a list of patterns, not a str")
        results = []
        for i, pattern in enumerate(patterns):
            try:
                found = match_files(pattern)
            except FileNotFoundError:
                found = []
            if limits is not None and limits[i] is not None:
                found = found[: limits[i]]
            results.append(MatchResult(pattern, found))
        return results

    @staticmethod
    def open(
        path: str,
        mime_type: str = "application/octet-stream",
        compression_type: str = CompressionTypes.AUTO,
    ) -> IO[bytes]:
        """A binary file object for reading ``path`` (decompressed per ``compression_type``)."""
        return open_for_read(path, compression_type)

    @staticmethod
    def create(
        path: str,
        mime_type: str = "application/octet-stream",
        compression_type: str = CompressionTypes.AUTO,
    ) -> IO[bytes]:
        """A binary file object writing ``path`` (compressed per ``compression_type``)."""
        return open_for_write(path, compression_type)

    @staticmethod
    def exists(path: str) -> bool:
        from fsspec.core import url_to_fs

        fs, fpath = url_to_fs(path)
        return bool(fs.exists(fpath))

    @staticmethod
    def delete(paths: Sequence[str]) -> None:
        """Delete files and directories; a missing path is an error, as in Beam."""
        errors: dict[Any, BaseException] = {}
        for path in paths:
            if not FileSystems.exists(path):
                errors[path] = FileNotFoundError(path)
                continue
            try:
                delete_recursive(path)
            except OSError as e:
                errors[path] = e
        if errors:
            raise BeamIOError(f"delete failed for {sorted(errors)}", errors)

    @staticmethod
    def rename(source_file_names: Sequence[str], destination_file_names: Sequence[str]) -> None:
        FileSystems._pairwise(rename, source_file_names, destination_file_names, "rename")

    @staticmethod
    def copy(source_file_names: Sequence[str], destination_file_names: Sequence[str]) -> None:
        def copy_one(src: str, dst: str) -> None:
            with (
                open_for_read(src, CompressionTypes.UNCOMPRESSED) as fin,
                open_for_write(dst, CompressionTypes.UNCOMPRESSED) as fout,
            ):
                shutil.copyfileobj(fin, fout)

        FileSystems._pairwise(copy_one, source_file_names, destination_file_names, "copy")

    @staticmethod
    def _pairwise(fn: Any, sources: Sequence[str], destinations: Sequence[str], what: str) -> None:
        if len(sources) != len(destinations):
            raise BeamIOError(f"{what}: the source and destination lists differ in length")
        errors: dict[Any, BaseException] = {}
        for src, dst in zip(sources, destinations, strict=True):
            try:
                fn(src, dst)
            except OSError as e:
                errors[(src, dst)] = e
        if errors:
            raise BeamIOError(f"{what} failed for {sorted(errors)}", errors)

    @staticmethod
    def delete_files(paths: Sequence[str]) -> None:
        delete_files(paths)
