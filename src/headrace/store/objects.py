"""Content-addressed object storage: :class:`ObjectStore`.

An object is an immutable byte string stored under its key, the blake3 hex digest of its
*uncompressed* bytes, at ``<root>/<key[:2]>/<key[2:]>`` in any fsspec location (a local folder,
``file://``, ``memory://``, ``s3://``, ...). Because the key names the bytes, a put of bytes that
are already stored is a no-op and two writers of the same bytes cannot conflict.

Stored format: one header byte, then the body. ``0x00``: the body is the object's bytes;
``0x01``: the body is one zstd frame of them. Objects of both kinds can live side by side, so a
store can switch compression on or off at any time; a store reads both whatever its own setting.
Compression is applied only where it saves space.

Writes are atomic: a local object is written to a temporary file in its final folder and moved
into place with :func:`os.replace`; on object stores (S3, GCS, Azure, memory) an upload is atomic
by itself; on other filesystems the bytes are written under a temporary name and then moved.
A reader therefore sees a whole object or none. Every :meth:`ObjectStore.get` checks the bytes
against the key and raises :class:`~headrace.store.errors.CorruptObject` on a mismatch.

Local folders take a fast path of plain ``open``/``os`` calls (no fsspec per object). An
:class:`ObjectStore` is safe to share between threads and pickles by its URL and settings.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, Final

import blake3
import zstandard
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from headrace.store.errors import CorruptObject, ObjectNotFound

__all__ = ["ObjectStore", "hash_bytes"]

Buffer = bytes | bytearray | memoryview

PLAIN: Final = 0
ZSTD: Final = 1
_PLAIN_HEADER = b"\x00"
_ZSTD_HEADER = b"\x01"

_KEY = re.compile(r"^[0-9a-f]{64}$")
_HEX = frozenset("0123456789abcdef")
# Protocols whose single-object writes are atomic (an upload appears whole or not at all).
_ATOMIC_PROTOCOLS = frozenset(
    {"memory", "s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2"}
)
# Below this size compression is not attempted; above _PROBE_ABOVE a sample decides first.
_MIN_COMPRESS = 64
_PROBE_ABOVE = 256 * 1024
_PROBE_SIZE = 64 * 1024
_WORTH = 0.97  # compress only when the result is at most this fraction of the input


def hash_bytes(data: Buffer) -> str:
    """The blake3 hex digest of ``data``: the key of an object, the hash of a file's content.

    >>> hash_bytes(b"")[:16]
    'af1349b9f5f9a1a6'
    """
    return blake3.blake3(data).hexdigest()


def _parse_compression(compression: str | None) -> int | None:
    """``None``/``"none"`` → None; ``"zstd"`` → level 3; ``"zstd:N"`` → level N."""
    if compression is None or compression == "none":
        return None
    name, _, level = compression.partition(":")
    if name == "zstd":
        if not level:
            return 3
        if level.lstrip("-").isdigit() and -7 <= int(level) <= 22:
            return int(level)
    raise ValueError(
        f"unknown compression {compression!r} for ObjectStore: use None, 'zstd' or "
        "'zstd:<level>' with a level from -7 to 22"
    )


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(
            f"invalid object key {key!r}: an object key is 64 lowercase hex digits "
            "(the blake3 hash of the object's bytes)"
        )


def _is_object_name(prefix: str, name: str) -> bool:
    return len(prefix) == 2 and len(name) == 62 and _HEX.issuperset(prefix + name)


def _write_all(fd: int, parts: list[Buffer]) -> None:
    """Write every byte of ``parts`` to ``fd`` (``os.writev`` may write less than asked)."""
    views = [memoryview(p).cast("B") for p in parts if len(p)]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


def _fsync_folder(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _LRU:
    """A small thread-safe cache of decoded objects, bounded by total bytes."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        if len(data) > self.capacity:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = data
            self._size += len(data)
            while self._size > self.capacity:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)

    def discard(self, key: str) -> None:
        with self._lock:
            data = self._items.pop(key, None)
            if data is not None:
                self._size -= len(data)


class ObjectStore:
    """Content-addressed blobs under ``url``, keyed by the blake3 hash of their bytes.

    ``compression``: ``None`` (store plain) or ``"zstd"`` / ``"zstd:<level>"``; objects are read
    whatever it is. ``fsync`` (default on): flush each new local object to disk before it is
    moved into place, and its folder at :meth:`sync`, so a power loss cannot leave a committed
    reference to bytes that never reached the disk (or a torn object under its final name);
    off, only process crashes are survived. ``cache_bytes``: memory for
    decoded objects that :meth:`get_range` reads whole (compressed or non-local objects).

    >>> store = ObjectStore("memory://doctest-objects")
    >>> key = store.put(b"hello")
    >>> store.get(key), store.exists(key), store.put(b"hello") == key
    (b'hello', True, True)
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        compression: str | None = None,
        fsync: bool = True,
        cache_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.url = os.fspath(url)
        self.compression = compression
        self.fsync = fsync
        self.cache_bytes = cache_bytes
        self._level = _parse_compression(compression)
        fs, root = url_to_fs(os.path.expanduser(self.url) if "://" not in self.url else self.url)
        self._fs: Any = fs
        self._local = isinstance(fs, LocalFileSystem)
        if self._local:
            self._root = os.path.abspath(root)
        else:
            self._root = root.rstrip("/")
        protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
        self._atomic = any(p in _ATOMIC_PROTOCOLS for p in protocols)
        self._threads = threading.local()
        self._cache = _LRU(cache_bytes)
        self._unsynced: set[str] = set()  # folders whose new entries are not yet on disk
        self._unsynced_lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        return (ObjectStore, (self.url, self.compression, self.fsync, self.cache_bytes))

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r}, compression={self.compression!r})"

    # -- locations --------------------------------------------------------------------------

    def _path(self, key: str) -> str:
        _check_key(key)
        if self._local:
            return os.path.join(self._root, key[:2], key[2:])
        return f"{self._root}/{key[:2]}/{key[2:]}"

    def location(self, key: str) -> str:
        """Where the object ``key`` is (or would be) stored: a local path or an fsspec URL."""
        path = self._path(key)
        return path if self._local else str(self._fs.unstrip_protocol(path))

    # -- encoding ---------------------------------------------------------------------------

    def _compressor(self) -> zstandard.ZstdCompressor:
        cctx: zstandard.ZstdCompressor | None = getattr(self._threads, "cctx", None)
        if cctx is None:
            cctx = zstandard.ZstdCompressor(level=self._level or 3, write_content_size=True)
            self._threads.cctx = cctx
        return cctx

    def _decompressor(self) -> zstandard.ZstdDecompressor:
        dctx: zstandard.ZstdDecompressor | None = getattr(self._threads, "dctx", None)
        if dctx is None:
            dctx = zstandard.ZstdDecompressor()
            self._threads.dctx = dctx
        return dctx

    def _encode(self, data: Buffer) -> list[Buffer]:
        """The stored form of ``data`` as parts to write: header, body."""
        size = len(data)
        if self._level is None or size < _MIN_COMPRESS:
            return [_PLAIN_HEADER, data]
        cctx = self._compressor()
        if size > _PROBE_ABOVE:
            middle = size // 2
            sample = memoryview(data)[middle : middle + _PROBE_SIZE]
            if len(cctx.compress(sample)) > _WORTH * len(sample):
                return [_PLAIN_HEADER, data]
        packed = cctx.compress(data)
        if len(packed) > _WORTH * size:
            return [_PLAIN_HEADER, data]
        return [_ZSTD_HEADER, packed]

    def _decode(self, key: str, stored: bytes) -> bytes:
        if not stored:
            raise self._corrupt(key, "the stored file is empty (no format header)")
        header = stored[0]
        if header == PLAIN:
            return stored[1:]
        if header == ZSTD:
            try:
                return self._decompressor().decompress(memoryview(stored)[1:])
            except (zstandard.ZstdError, MemoryError, ValueError) as e:
                raise self._corrupt(key, f"its zstd data does not decompress ({e})") from None
        raise self._corrupt(key, f"unknown format header byte {header:#04x}")

    def _corrupt(self, key: str, why: str) -> CorruptObject:
        return CorruptObject(
            f"object {key} at {self.location(key)} is corrupt: {why}. Restore it from a backup "
            "or re-add the files that use it; the store's fsck lists them"
        )

    def _missing(self, key: str) -> ObjectNotFound:
        return ObjectNotFound(
            f"object {key} not found in {self.url} (expected at {self.location(key)}); "
            "it was deleted or never written: run the store's fsck to find what refers to it"
        )

    # -- writing ----------------------------------------------------------------------------

    def put(self, data: Buffer, key: str | None = None) -> str:
        """Store ``data`` and return its key; a no-op when the object is already stored.

        ``key`` may be passed when the caller has already hashed ``data`` with
        :func:`hash_bytes`; it is trusted, not recomputed (a wrong key is caught on read).
        """
        if key is None:
            key = hash_bytes(data)
        path = self._path(key)
        if self._local:
            if not os.path.exists(path):
                self._put_local(path, self._encode(data))
        elif not self._fs.exists(path):
            self._put_remote(path, self._encode(data))
        return key

    def put_many(self, items: Iterable[Buffer]) -> list[str]:
        """Store several byte strings; return their keys in order.

        On object stores the uploads of missing objects go out as one batch.
        """
        if self._local or not self._atomic:
            return [self.put(data) for data in items]
        keys: list[str] = []
        batch: dict[str, bytes] = {}
        for data in items:
            key = hash_bytes(data)
            keys.append(key)
            path = self._path(key)
            if path not in batch and not self._fs.exists(path):
                batch[path] = b"".join(self._encode(data))
        if batch:
            self._fs.pipe(batch)
        return keys

    def _put_local(self, path: str, parts: list[Buffer]) -> None:
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
        folder = os.path.dirname(path)
        new_folder = False
        for attempt in range(3):
            try:
                fd = os.open(tmp, flags, 0o666)
            except FileNotFoundError:
                os.makedirs(folder, exist_ok=True)
                new_folder = True
                fd = os.open(tmp, flags, 0o666)
            try:
                try:
                    _write_all(fd, parts)
                    if self.fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, path)
                break
            except FileNotFoundError:
                # A gc with a grace period shorter than this write took the temporary file
                # for a dead writer's: write it again.
                if attempt == 2 or os.path.exists(tmp):
                    raise
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        if self.fsync:
            with self._unsynced_lock:
                self._unsynced.add(folder)
                if new_folder:
                    self._unsynced.add(self._root)

    def sync(self) -> None:
        """Make the objects this store wrote durable: each object's bytes were flushed to disk
        before it was moved into place, and here the folders that gained one are flushed, once
        each (so a batch of puts costs one folder flush per folder touched). Call it before a
        metadata transaction that refers to new objects (``ContentWriter.flush`` does). A no-op
        without ``fsync`` and on object stores (their uploads are durable when they return)."""
        with self._unsynced_lock:
            folders, self._unsynced = self._unsynced, set()
        root = self._root if self._root in folders else None
        try:
            for folder in sorted(folders - {self._root}):
                _fsync_folder(folder)
            if root is not None:
                _fsync_folder(root)
        except BaseException:
            with self._unsynced_lock:
                self._unsynced |= folders
            raise

    def _put_remote(self, path: str, parts: list[Buffer]) -> None:
        payload = b"".join(parts)
        if self._atomic:
            self._fs.pipe_file(path, payload)
            return
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        self._fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self._fs.pipe_file(tmp, payload)
        try:
            self._fs.mv(tmp, path)
        except BaseException:
            try:
                self._fs.rm_file(tmp)
            except OSError:
                pass
            raise

    # -- reading ----------------------------------------------------------------------------

    def _read_stored(self, key: str) -> bytes:
        path = self._path(key)
        try:
            if self._local:
                with open(path, "rb", buffering=0) as f:
                    return f.readall()
            return bytes(self._fs.cat_file(path))
        except FileNotFoundError:
            raise self._missing(key) from None

    def get(self, key: str) -> bytes:
        """The object's bytes, checked against ``key``.

        Raises ObjectNotFound when it is missing and CorruptObject when its bytes do not hash
        to ``key``.
        """
        data = self._decode(key, self._read_stored(key))
        actual = hash_bytes(data)
        if actual != key:
            raise self._corrupt(key, f"its bytes hash to {actual}")
        return data

    def get_range(self, key: str, offset: int, length: int) -> bytes:
        """``length`` bytes of the object from ``offset`` (of its uncompressed bytes).

        Not checked against the key (a range cannot be): the caller checks the bytes against
        the hash it expects, so damage elsewhere in the object does not hide this range. A
        plain local object is read in place; other objects are read whole and, when their hash
        checks out, kept in a small cache for the next range.
        """
        if offset < 0 or length < 0:
            raise ValueError(f"invalid range offset={offset} length={length} of object {key}")
        data = self._cache.get(key)
        if data is None:
            if self._local:
                path = self._path(key)
                try:
                    with open(path, "rb", buffering=0) as f:
                        if f.read(1) == _PLAIN_HEADER:
                            f.seek(1 + offset)
                            data = f.read(length)
                            if len(data) != length:
                                raise self._corrupt(
                                    key, f"it ends before byte {offset + length} of a range"
                                )
                            return bytes(data)
                except FileNotFoundError:
                    raise self._missing(key) from None
            data = self._decode(key, self._read_stored(key))
            if hash_bytes(data) == key:
                self._cache.put(key, data)
        if offset + length > len(data):
            raise self._corrupt(key, f"it ends before byte {offset + length} of a range")
        return data[offset : offset + length]

    def verify(self, key: str) -> bool:
        """True when the object is present and its bytes hash to ``key`` (for fsck)."""
        try:
            self.get(key)
        except (CorruptObject, ObjectNotFound):
            return False
        return True

    def exists(self, key: str) -> bool:
        """True when an object is stored under ``key`` (its bytes are not checked)."""
        path = self._path(key)
        if self._local:
            return os.path.exists(path)
        return bool(self._fs.exists(path))

    def size(self, key: str) -> int:
        """Bytes the object takes in storage (header and, if compressed, compressed body)."""
        path = self._path(key)
        try:
            if self._local:
                return os.stat(path).st_size
            return int(self._fs.size(path))
        except FileNotFoundError:
            raise self._missing(key) from None

    def delete(self, key: str) -> bool:
        """Remove the object; return whether it was there."""
        path = self._path(key)
        self._cache.discard(key)
        try:
            if self._local:
                os.unlink(path)
            else:
                self._fs.rm_file(path)
        except FileNotFoundError:
            return False
        return True

    def keys(self) -> Iterator[str]:
        """Every stored key, in sorted order (temporary files of unfinished writes skipped)."""
        if self._local:
            try:
                prefixes = sorted(os.listdir(self._root))
            except FileNotFoundError:
                return
            for prefix in prefixes:
                folder = os.path.join(self._root, prefix)
                if len(prefix) != 2 or not _HEX.issuperset(prefix) or not os.path.isdir(folder):
                    continue
                for name in sorted(os.listdir(folder)):
                    if _is_object_name(prefix, name):
                        yield prefix + name
            return
        if not self._fs.exists(self._root):
            return
        found = []
        start = len(self._root) + 1
        for path in self._fs.find(self._root):
            parts = str(path)[start:].split("/")
            if len(parts) == 2 and _is_object_name(parts[0], parts[1]):
                found.append(parts[0] + parts[1])
        yield from sorted(found)
