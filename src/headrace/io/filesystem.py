"""File-system helpers for the file sources and sinks, over fsspec.

Every path is a local path or an fsspec URL (``memory://bucket/x``, ``s3://bucket/x``, ...); the
matching backend must be installed. This module owns: expanding a file pattern into a sorted list of
files (:func:`match_files`), opening a file for reading or writing with transparent compression
(:class:`CompressionTypes`, :func:`open_for_read`, :func:`open_for_write`), renaming a file into
place (:func:`rename`) and removing a directory tree (:func:`delete_recursive`).

fsspec (which pulls in asyncio) is imported on the first file-system call, not when this module
is, so ``import headrace.beam`` stays fast.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import os
import posixpath
import zlib
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast

import zstandard

if TYPE_CHECKING:
    import fsspec

__all__ = [
    "CompressionTypes",
    "CorruptFileError",
    "EmptyMatchTreatment",
    "FileMetadata",
    "check_compression_type",
    "delete_files",
    "delete_recursive",
    "dirname",
    "join",
    "makedirs",
    "match_files",
    "open_for_read",
    "open_for_write",
    "publish_new",
    "rename",
]

_GLOB_CHARS = frozenset("*?[")


class EmptyMatchTreatment:
    """What a pattern that matches no file means (Beam's ``apache_beam.io.fileio`` names).

    >>> EmptyMatchTreatment.allow_empty_match("logs/*.txt", EmptyMatchTreatment.ALLOW_IF_WILDCARD)
    True
    >>> EmptyMatchTreatment.allow_empty_match("logs/a.txt", EmptyMatchTreatment.ALLOW_IF_WILDCARD)
    False
    """

    ALLOW = "ALLOW"
    DISALLOW = "DISALLOW"
    ALLOW_IF_WILDCARD = "ALLOW_IF_WILDCARD"

    @staticmethod
    def allow_empty_match(pattern: str, setting: str) -> bool:
        """Whether ``pattern`` may match nothing under ``setting``."""
        if setting == EmptyMatchTreatment.ALLOW:
            return True
        if setting == EmptyMatchTreatment.ALLOW_IF_WILDCARD:
            return "*" in pattern
        if setting == EmptyMatchTreatment.DISALLOW:
            return False
        raise ValueError(
            f"unknown empty match treatment {setting!r}: use EmptyMatchTreatment.ALLOW, "
            "DISALLOW or ALLOW_IF_WILDCARD"
        )


class CompressionTypes:
    """How a file is compressed (Beam's ``apache_beam.io.filesystem.CompressionTypes``).

    ``AUTO`` picks the compression from the file name's ending, as Beam does: ``.gz`` gzip,
    ``.bz2`` bzip2, ``.deflate`` deflate (zlib stream), ``.zst``/``.zstd`` zstd, ``.xz``/``.lzma``
    lzma; anything else is uncompressed.

    >>> CompressionTypes.detect_compression_type("logs/day-1.txt.gz")
    'gzip'
    >>> CompressionTypes.detect_compression_type("logs/day-1.txt.deflate")
    'deflate'
    >>> CompressionTypes.detect_compression_type("logs/day-1.txt")
    'uncompressed'
    """

    AUTO = "auto"
    UNCOMPRESSED = "uncompressed"
    GZIP = "gzip"
    BZIP2 = "bzip2"
    DEFLATE = "deflate"
    ZSTD = "zstd"
    LZMA = "lzma"

    _BY_SUFFIX = {
        ".bz2": BZIP2,
        ".deflate": DEFLATE,
        ".gz": GZIP,
        ".zst": ZSTD,
        ".zstd": ZSTD,
        ".xz": LZMA,
        ".lzma": LZMA,
    }
    _MIME_TYPES = {
        BZIP2: "application/x-bz2",
        DEFLATE: "application/x-deflate",
        GZIP: "application/x-gzip",
        ZSTD: "application/zstd",
        LZMA: "application/lzma",
    }

    @classmethod
    def is_valid_compression_type(cls, compression_type: object) -> bool:
        """True when ``compression_type`` is one of the values of this class."""
        return compression_type in (
            cls.AUTO,
            cls.UNCOMPRESSED,
            cls.GZIP,
            cls.BZIP2,
            cls.DEFLATE,
            cls.ZSTD,
            cls.LZMA,
        )

    @classmethod
    def mime_type(cls, compression_type: str, default: str = "application/octet-stream") -> str:
        """The MIME type of a compression (Beam's ``CompressionTypes.mime_type``)."""
        return cls._MIME_TYPES.get(compression_type, default)

    @classmethod
    def detect_compression_type(cls, path: str) -> str:
        """The compression implied by ``path``'s ending (never ``AUTO``)."""
        lowered = path.lower()
        for suffix, compression in cls._BY_SUFFIX.items():
            if lowered.endswith(suffix):
                return compression
        return cls.UNCOMPRESSED

    @classmethod
    def resolve(cls, compression_type: str, path: str) -> str:
        """``compression_type`` with ``AUTO`` replaced by what ``path`` implies."""
        check_compression_type(compression_type)
        if compression_type == cls.AUTO:
            return cls.detect_compression_type(path)
        return compression_type


def check_compression_type(compression_type: object) -> None:
    """Raise :class:`ValueError` unless ``compression_type`` is one of :class:`CompressionTypes`."""
    if not CompressionTypes.is_valid_compression_type(compression_type):
        raise ValueError(
            f"unknown compression_type {compression_type!r}; use one of CompressionTypes.AUTO, "
            "UNCOMPRESSED, GZIP, BZIP2, DEFLATE, ZSTD or LZMA"
        )


class CorruptFileError(OSError):
    """A file could not be decoded (bad compression stream, bad Parquet or Avro data)."""


class FileMetadata(NamedTuple):
    """One matched file: its full path (URL for non-local file systems) and size in bytes."""

    path: str
    size_in_bytes: int


def _fs_and_path(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(url)
    return fs, path


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def _qualify(fs: fsspec.AbstractFileSystem, path: str) -> str:
    """Turn a protocol-less path of ``fs`` back into something :func:`_fs_and_path` accepts."""
    if _is_local(fs):
        return path
    return cast(str, fs.unstrip_protocol(path))


def match_files(pattern: str) -> list[FileMetadata]:
    """Expand ``pattern`` (globs ``*``, ``?``, ``[...]``, ``**``) to files, sorted by path.

    Raises :class:`FileNotFoundError` naming the pattern when nothing matches.
    """
    fs, path = _fs_and_path(pattern)
    infos: dict[str, dict[str, Any]] = {}
    if _GLOB_CHARS.intersection(path):
        infos = fs.glob(path, detail=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            infos = {path: fs.info(path)}
    found = [
        FileMetadata(_qualify(fs, name), int(info.get("size") or 0))
        for name, info in infos.items()
        if info.get("type", "file") != "directory"
    ]
    if not found:
        raise FileNotFoundError(
            f"No files found based on the file pattern {pattern!r}; check the path and that "
            "the files exist (for non-local paths, that the fsspec backend is installed)"
        )
    found.sort()
    return found


class _LayeredFile(io.BufferedIOBase):
    """A (de)compressing stream that also closes the raw file under it."""

    def __init__(self, outer: Any, inner: IO[bytes], path: str, compression: str) -> None:
        super().__init__()
        self._outer = outer
        self._inner = inner
        self._path = path
        self._compression = compression

    def _corrupt(self, exc: Exception) -> CorruptFileError:
        return CorruptFileError(f"corrupt {self._compression} file {self._path!r}: {exc}")

    def readable(self) -> bool:
        return cast(bool, self._outer.readable())

    def writable(self) -> bool:
        return cast(bool, self._outer.writable())

    def read(self, size: int | None = -1) -> bytes:
        try:
            return cast(bytes, self._outer.read(-1 if size is None else size))
        except (
            OSError,
            EOFError,
            zlib.error,
            ValueError,
            lzma.LZMAError,
            zstandard.ZstdError,
        ) as exc:
            raise self._corrupt(exc) from exc

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def write(self, data: Any) -> int:
        return cast(int, self._outer.write(data))

    def flush(self) -> None:
        if not self.closed and not self._outer.closed and self._outer.writable():
            self._outer.flush()

    def close(self) -> None:
        if self.closed:
            return
        try:
            self._outer.close()
        finally:
            try:
                self._inner.close()
            finally:
                super().close()


def open_for_read(path: str, compression_type: str = CompressionTypes.AUTO) -> IO[bytes]:
    """Open ``path`` for binary reading, decompressing according to ``compression_type``."""
    compression = CompressionTypes.resolve(compression_type, path)
    fs, fpath = _fs_and_path(path)
    raw = cast(IO[bytes], fs.open(fpath, "rb"))
    if compression == CompressionTypes.UNCOMPRESSED:
        return raw
    try:
        if compression == CompressionTypes.GZIP:
            outer: Any = gzip.GzipFile(fileobj=raw, mode="rb")
        elif compression == CompressionTypes.BZIP2:
            outer = bz2.BZ2File(raw, mode="rb")
        elif compression == CompressionTypes.DEFLATE:
            outer = io.BufferedReader(_DeflateReader(raw))
        elif compression == CompressionTypes.ZSTD:
            outer = io.BufferedReader(
                zstandard.ZstdDecompressor(max_window_size=2**31).stream_reader(
                    raw, read_across_frames=True, closefd=False
                )
            )
        else:
            outer = lzma.LZMAFile(raw, mode="rb")  # noqa: SIM115 - _LayeredFile closes it
    except Exception:
        raw.close()
        raise
    return cast(IO[bytes], _LayeredFile(outer, raw, path, compression))


def open_for_write(path: str, compression_type: str = CompressionTypes.AUTO) -> IO[bytes]:
    """Create (or overwrite) ``path`` for binary writing, compressing per ``compression_type``.

    Missing parent directories are created on local file systems.
    """
    compression = CompressionTypes.resolve(compression_type, path)
    fs, fpath = _fs_and_path(path)
    if _is_local(fs):
        fs.makedirs(posixpath.dirname(fpath), exist_ok=True)
    raw = cast(IO[bytes], fs.open(fpath, "wb"))
    if compression == CompressionTypes.UNCOMPRESSED:
        return raw
    if compression == CompressionTypes.GZIP:
        outer: Any = gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0)
    elif compression == CompressionTypes.BZIP2:
        outer = bz2.BZ2File(raw, mode="wb")
    elif compression == CompressionTypes.DEFLATE:
        outer = _DeflateWriter(raw)
    elif compression == CompressionTypes.ZSTD:
        outer = zstandard.ZstdCompressor().stream_writer(raw, closefd=False)
    else:
        outer = lzma.LZMAFile(raw, mode="wb")  # noqa: SIM115 - _LayeredFile closes it
    return cast(IO[bytes], _LayeredFile(outer, raw, path, compression))


class _DeflateReader(io.RawIOBase):
    """Decompresses a zlib (``.deflate``) stream, concatenated streams included, as Beam does."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self._z = zlib.decompressobj()
        self._buffer = b""
        self._done = False
        self._started = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._buffer and not self._done:
            data = self._raw.read(1 << 16)
            if not data:
                self._done = True
                self._buffer = self._z.flush()
                if self._started and not self._z.eof:
                    raise zlib.error("the deflate stream ends early (truncated file)")
                break
            self._started = True
            out = self._z.decompress(data)
            while self._z.eof and self._z.unused_data:
                rest = self._z.unused_data
                self._z = zlib.decompressobj()
                out += self._z.decompress(rest)
            self._buffer = out
        n = min(len(buffer), len(self._buffer))
        buffer[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


class _DeflateWriter(io.RawIOBase):
    """Compresses into a zlib (``.deflate``) stream as Beam does; closing leaves ``raw`` open."""

    def __init__(self, raw: IO[bytes]) -> None:
        super().__init__()
        self._raw = raw
        self._z = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._raw.write(self._z.compress(bytes(data)))
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.write(self._z.flush())
        super().close()


def rename(src: str, dst: str) -> None:
    """Move file ``src`` to ``dst`` (same file system), replacing ``dst`` if it exists.

    Atomic on local file systems; a copy and delete on object stores.
    """
    fs, src_path = _fs_and_path(src)
    _, dst_path = _fs_and_path(dst)
    if _is_local(fs):
        os.makedirs(posixpath.dirname(dst_path) or ".", exist_ok=True)
        os.replace(src_path, dst_path)
    else:
        fs.mv(src_path, dst_path)


def publish_new(src: str, dst: str) -> bool:
    """Move file ``src`` to ``dst`` only if ``dst`` does not exist; return whether it moved.

    Locally the data of ``src`` is flushed to disk first, the name is created with a hard link
    (atomic: two publishers cannot both win) and the directory is flushed after it, so a
    published file survives a crash of the machine, not only of the process. On object stores
    it is a check then a move. When ``dst`` exists, ``src`` is left where it is.
    """
    fs, src_path = _fs_and_path(src)
    _, dst_path = _fs_and_path(dst)
    if not _is_local(fs):
        if fs.exists(dst_path):
            return False
        fs.mv(src_path, dst_path)
        return True
    folder = posixpath.dirname(dst_path) or "."
    os.makedirs(folder, exist_ok=True)
    _fsync_path(src_path, os.O_RDONLY)
    try:
        os.link(src_path, dst_path)
    except FileExistsError:
        return False
    os.unlink(src_path)
    _fsync_path(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    return True


def _fsync_path(path: str, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def delete_recursive(path: str) -> None:
    """Remove ``path`` and everything below it; do nothing if it does not exist."""
    fs, fpath = _fs_and_path(path)
    if fs.exists(fpath):
        fs.rm(fpath, recursive=True)


def delete_files(paths: Iterable[str]) -> None:
    """Remove each file in ``paths`` that exists."""
    for path in paths:
        fs, fpath = _fs_and_path(path)
        if fs.exists(fpath):
            fs.rm(fpath)


def makedirs(path: str) -> None:
    """Create directory ``path`` and its parents (a no-op where directories are implicit)."""
    fs, fpath = _fs_and_path(path)
    if _is_local(fs):
        fs.makedirs(fpath, exist_ok=True)


def dirname(path: str) -> str:
    """The directory part of a path or URL (``s3://b/out/part`` -> ``s3://b/out``)."""
    protocol, sep, rest = path.partition("://")
    if sep:
        return protocol + sep + posixpath.dirname(rest.rstrip("/"))
    return os.path.dirname(os.path.abspath(path))


def join(directory: str, name: str) -> str:
    """``directory`` + ``/`` + ``name`` for paths and URLs."""
    return directory.rstrip("/") + "/" + name
