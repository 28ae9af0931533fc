"""How a file's bytes become objects, and back: :class:`Content`, :class:`ContentWriter`.

A file's :class:`Content` is its blake3 hash, its size and its *layout*: the segments whose
concatenation is the file. A segment is one of

``("o", key)``                  the whole object ``key`` (a file stored as one object);
``("c", key, length)``          a content-defined chunk, itself one object of ``length`` bytes;
``("p", key, offset, length)``  a slice of a pack object that holds many small files.

Small files (up to ``small_limit``) are gathered into pack objects of about ``pack_target``
bytes, so many small files cost a handful of objects. Larger files are cut by FastCDC into
chunks of about ``chunk_avg`` bytes whose boundaries depend on the bytes around them, so an edit
changes only the chunks it touches and a re-added file stores nothing new. A file stored in one
piece (one chunk, or a pack of one file) is an ``("o", key)`` object whose key is the file's hash.

Equal content is stored once: :class:`ContentWriter` remembers what it wrote in this session and
asks the metadata table of known contents before storing anything. Large files are asked about
one by one (``lookup(hash)``); small files, given ``lookup_many(hashes)``, a pack at a time, just
before the pack is written: the files found are left out of it, so asking costs one query per
pack rather than one per file.

States of a content in a writer: a small file added with ``add_*`` is *pending* (its hash and
size are known, its layout is empty) until its pack is written, which happens when the pack
reaches ``pack_target`` or at :meth:`ContentWriter.flush`; then it becomes final, either as a
slice of the new pack or, when ``lookup_many`` knows its hash, as the known Content. ``flush``
returns every Content created since the previous flush, with its final layout: the caller
records those in metadata, in one transaction, after the objects are written. Large files are
final as soon as added.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Protocol

import blake3
from pyfastcdc import FastCDC

from headrace.store.errors import CorruptObject, StoreError
from headrace.store.objects import Buffer, ObjectStore, hash_bytes

__all__ = [
    "Content",
    "ContentWriter",
    "Segment",
    "iter_content",
    "object_keys",
    "read_content",
    "write_content_to",
]

Segment = tuple[str, str] | tuple[str, str, int] | tuple[str, str, int, int]

_SEGMENT_ARITY = {"o": 2, "c": 3, "p": 4}
_to_json = json.JSONEncoder(separators=(",", ":")).encode  # json.dumps's, built once


@dataclass(frozen=True, slots=True)
class Content:
    """A file's bytes as stored: blake3 ``hash`` of the whole file, ``size``, ``layout``.

    >>> c = Content("ab" * 32, 5, (("p", "cd" * 32, 10, 5),))
    >>> Content.from_json(c.to_json()) == c
    True
    """

    hash: str
    size: int
    layout: tuple[Segment, ...]

    @property
    def pending(self) -> bool:
        """True for a small file whose pack is not written yet (see ContentWriter.flush)."""
        return self.size > 0 and not self.layout

    def to_json(self) -> str:
        """A compact JSON text of this content, for the metadata table (not when pending)."""
        if self.pending:
            raise StoreError(
                f"content {self.hash} is pending (its pack is not written): record the Contents "
                "that ContentWriter.flush() returns, not those add_*() returned"
            )
        return _to_json({"h": self.hash, "s": self.size, "l": self.layout})

    @classmethod
    def from_json(cls, text: str | bytes) -> Content:
        """The Content that :meth:`to_json` wrote; ValueError when ``text`` is not one."""
        try:
            raw = json.loads(text)
            layout = tuple(_segment(seg) for seg in raw["l"])
            content = cls(raw["h"], raw["s"], layout)
            if not isinstance(content.hash, str) or not isinstance(content.size, int):
                raise TypeError("hash must be a str and size an int")
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"invalid content record {text!r}: {e}; it was not written by Content.to_json "
                "or the metadata row is damaged"
            ) from None
        return content


def _segment(raw: Any) -> Segment:
    if not isinstance(raw, list) or not raw or _SEGMENT_ARITY.get(raw[0]) != len(raw):
        raise ValueError(f"bad segment {raw!r}")
    if not isinstance(raw[1], str) or not all(isinstance(n, int) for n in raw[2:]):
        raise ValueError(f"bad segment {raw!r}")
    return tuple(raw)


def object_keys(content: Content) -> set[str]:
    """The keys of the objects ``content`` uses (for reference counting in gc).

    >>> c = Content("ab" * 32, 9, (("c", "01" * 32, 4), ("c", "02" * 32, 5)))
    >>> sorted(key[:6] for key in object_keys(c))
    ['010101', '020202']
    """
    return {seg[1] for seg in content.layout}


Lookup = Callable[[str], Content | None]
LookupMany = Callable[[Collection[str]], Mapping[str, Content]]


class _Readable(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...


class _Prefixed:
    """A reader that yields ``prefix`` and then the rest of ``stream``."""

    def __init__(self, prefix: bytes, stream: _Readable) -> None:
        self._prefix = memoryview(prefix)
        self._stream = stream
        self._readinto = getattr(stream, "readinto", None)

    def readinto(self, buf: memoryview) -> int:
        if self._prefix:
            n = min(len(buf), len(self._prefix))
            buf[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        if self._readinto is not None:
            got = self._readinto(buf)
            return got or 0
        data = self._stream.read(len(buf))
        buf[: len(data)] = data
        return len(data)


def _read_upto(stream: _Readable, n: int) -> bytes:
    """Up to ``n`` bytes of ``stream``, fewer only at its end."""
    parts = []
    while n > 0:
        data = stream.read(n)
        if not data:
            break
        parts.append(data)
        n -= len(data)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class ContentWriter:
    """Turns files into objects of ``objects``: packs small files, chunks large ones.

    ``lookup(hash)`` returns the already-known Content of a hash (or None); a known hash is
    never stored again. ``lookup_many(hashes)`` returns the known Contents among ``hashes`` by
    hash: given it, small files are looked up a pack at a time when the pack is written (known
    ones are left out of it) and ``lookup`` is used for large files only (``lookup_many`` with
    one hash if ``lookup`` is None). Contents of small files are pending until :meth:`flush`,
    which returns every Content created since the last flush (not the known ones). Safe to use
    from several threads.

    >>> writer = ContentWriter(ObjectStore("memory://doctest-content"), lookup=None)
    >>> a = writer.add_bytes(b"first file")
    >>> a.pending
    True
    >>> created = writer.flush()
    >>> [c.size for c in created], created[0].layout[0][0]
    ([10], 'o')
    >>> read_content(writer.objects, created[0])
    b'first file'
    """

    def __init__(
        self,
        objects: ObjectStore,
        lookup: Lookup | None = None,
        pack_target: int = 8 * 1024 * 1024,
        small_limit: int = 256 * 1024,
        chunk_avg: int = 1024 * 1024,
        *,
        lookup_many: LookupMany | None = None,
    ) -> None:
        if not 256 <= chunk_avg <= 4 * 1024 * 1024:
            raise ValueError(
                f"ContentWriter chunk_avg={chunk_avg} is out of range: use 256 bytes to 4 MiB"
            )
        if small_limit < 0 or pack_target < 1:
            raise ValueError(
                f"ContentWriter needs small_limit >= 0 and pack_target >= 1, got "
                f"small_limit={small_limit}, pack_target={pack_target}"
            )
        self.objects = objects
        self.lookup = lookup
        self.lookup_many = lookup_many
        self.pack_target = pack_target
        self.small_limit = small_limit
        self.chunk_avg = chunk_avg
        self._lock = threading.RLock()
        self._session: dict[str, Content] = {}  # every hash seen by this writer
        self._pack: list[tuple[str, bytes]] = []  # pending small files: (hash, bytes)
        self._pack_size = 0
        self._created: list[Content] = []  # final Contents not yet returned by flush

    # -- adding -----------------------------------------------------------------------------

    def _known(self, digest: str) -> Content | None:
        with self._lock:
            found = self._session.get(digest)
        if found is None:
            if self.lookup is not None:
                found = self.lookup(digest)
            elif self.lookup_many is not None:
                found = self.lookup_many((digest,)).get(digest)
            if found is not None:
                with self._lock:
                    found = self._session.setdefault(digest, found)
        return found

    def add_bytes(self, data: Buffer) -> Content:
        """The Content of ``data``, storing it unless it is already known."""
        digest = hash_bytes(data)
        size = len(data)
        if size <= self.small_limit and self.lookup_many is not None:
            return self._add_small(digest, bytes(data))  # looked up with its pack
        known = self._known(digest)
        if known is not None:
            return known
        if size > self.small_limit:
            return self._add_large(self._chunker().cut_buf(data), digest)
        return self._add_small(digest, bytes(data))

    def add_file(self, path: str | os.PathLike[str]) -> Content:
        """The Content of the local file at ``path``, read in a stream (any size)."""
        with open(path, "rb", buffering=0) as f:
            size = os.fstat(f.fileno()).st_size
            if size > self.small_limit:
                return self.add_stream(f)
            # A small file is read in one call of its size (plus one byte, to notice growth);
            # any other outcome (it grew or shrank meanwhile) continues as a stream.
            head = f.read(size + 1)
            if len(head) == size:
                return self.add_bytes(head)
            return self._add_head(head, f)

    def add_stream(self, fileobj: IO[bytes] | _Readable) -> Content:
        """The Content of everything ``fileobj`` yields (``read(n)``), read in a stream."""
        return self._add_head(b"", fileobj)

    def _add_head(self, head: bytes, fileobj: IO[bytes] | _Readable) -> Content:
        """The Content of ``head`` followed by the rest of ``fileobj``."""
        if len(head) <= self.small_limit:
            rest = _read_upto(fileobj, self.small_limit + 1 - len(head))
            head = head + rest if head else rest
        if len(head) <= self.small_limit:
            return self.add_bytes(head)
        reader = _Prefixed(head, fileobj)
        return self._add_large(self._chunker().cut_stream(reader), None)

    def _chunker(self) -> FastCDC:
        return FastCDC(self.chunk_avg)

    def _add_small(self, digest: str, data: bytes) -> Content:
        with self._lock:
            found = self._session.get(digest)
            if found is not None:
                return found
            if not data:
                content = Content(digest, 0, ())
                self._created.append(content)
            else:
                content = Content(digest, len(data), ())
                self._pack.append((digest, data))
                self._pack_size += len(data)
            self._session[digest] = content
            if self._pack_size >= self.pack_target:
                self._write_pack()
            return content

    def _add_large(self, chunks: Iterable[Any], digest: str | None) -> Content:
        whole = blake3.blake3() if digest is None else None
        layout: list[Segment] = []
        size = 0
        put = self.objects.put
        for chunk in chunks:
            view = chunk.data
            if whole is not None:
                whole.update(view)
            key = hash_bytes(view)
            put(view, key)
            layout.append(("c", key, chunk.length))
            size += chunk.length
        if whole is not None:
            digest = whole.hexdigest()
        assert digest is not None
        known = self._known(digest)
        if known is not None:
            return known
        if len(layout) == 1:
            layout = [("o", layout[0][1])]
        content = Content(digest, size, tuple(layout))
        with self._lock:
            found = self._session.setdefault(digest, content)
            if found is content:
                self._created.append(content)
            return found

    # -- packs ------------------------------------------------------------------------------

    def _write_pack(self) -> None:
        """Write the pending small files as one object (called with the lock held), leaving out
        those ``lookup_many`` knows."""
        if not self._pack:
            return
        pending = self._pack
        if self.lookup_many is not None:
            known = self.lookup_many([digest for digest, _ in pending])
            if known:
                for digest, _ in pending:
                    found = known.get(digest)
                    if found is not None:
                        self._session[digest] = found
                pending = [item for item in pending if item[0] not in known]
        finals: list[Content] = []
        if len(pending) == 1:
            digest, data = pending[0]
            self.objects.put(data, digest)
            finals.append(Content(digest, len(data), (("o", digest),)))
        elif pending:
            blob = b"".join(data for _, data in pending)
            key = self.objects.put(blob)
            offset = 0
            for digest, data in pending:
                finals.append(Content(digest, len(data), (("p", key, offset, len(data)),)))
                offset += len(data)
        for content in finals:
            self._session[content.hash] = content
        self._created.extend(finals)
        self._pack = []
        self._pack_size = 0

    def flush(self) -> list[Content]:
        """Write the pending pack; return the Contents created since the last flush.

        Every returned Content is final (its objects are stored, and on disk when the object
        store fsyncs); record them in metadata.
        """
        with self._lock:
            self._write_pack()
            created, self._created = self._created, []
        self.objects.sync()  # durable before the caller's metadata refers to them
        return created

    def resolve(self, content: Content) -> Content:
        """The latest form of ``content`` this writer knows (final once its pack is written)."""
        with self._lock:
            return self._session.get(content.hash, content)


# -- reading --------------------------------------------------------------------------------


def _check_readable(content: Content) -> None:
    if content.pending:
        raise StoreError(
            f"content {content.hash} is still pending in a ContentWriter: call flush() (or "
            "resolve() after a flush) before reading it"
        )


def _corrupt_content(content: Content, why: str) -> CorruptObject:
    keys = ", ".join(sorted(object_keys(content))) or "none"
    return CorruptObject(
        f"content {content.hash} ({content.size} bytes) is corrupt: {why} (objects: {keys}). "
        "Run the store's fsck; restore the objects or re-add the file"
    )


def _segment_bytes(objects: ObjectStore, content: Content, seg: Segment) -> bytes:
    kind, key = seg[0], seg[1]
    if kind == "o":
        return objects.get(key)
    if kind == "c":
        data = objects.get(key)
        if len(data) != seg[2]:  # type: ignore[misc]
            raise _corrupt_content(content, f"chunk {key} has {len(data)} bytes, not {seg[2]}")  # type: ignore[misc]
        return data
    if kind == "p":
        offset, length = seg[2], seg[3]  # type: ignore[misc]
        return objects.get_range(key, offset, length)
    raise _corrupt_content(content, f"unknown segment kind {kind!r}")


def read_content(objects: ObjectStore, content: Content) -> bytes:
    """The whole file's bytes, checked against ``content.hash``.

    Raises ObjectNotFound or CorruptObject when an object is missing or damaged.
    """
    _check_readable(content)
    parts = [_segment_bytes(objects, content, seg) for seg in content.layout]
    data = parts[0] if len(parts) == 1 else b"".join(parts)
    if len(data) != content.size or hash_bytes(data) != content.hash:
        raise _corrupt_content(content, "its bytes do not hash to the content's hash")
    return data


def iter_content(
    objects: ObjectStore, content: Content, block: int = 1024 * 1024
) -> Iterator[bytes]:
    """The file's bytes in pieces of at most ``block`` bytes, one object in memory at a time.

    Each chunk is checked as it is read; the whole-file hash is checked at the end, so a
    consumer sees CorruptObject before the iterator finishes if anything is wrong.
    """
    _check_readable(content)
    if block < 1:
        raise ValueError(f"iter_content block must be at least 1 byte, got {block}")
    whole = blake3.blake3()
    size = 0
    single_slice = len(content.layout) == 1 and content.layout[0][0] == "p"
    for seg in content.layout:
        data = _segment_bytes(objects, content, seg)
        if single_slice and (len(data) != content.size or hash_bytes(data) != content.hash):
            raise _corrupt_content(content, "its pack slice does not hash to the content's hash")
        whole.update(data)
        size += len(data)
        if len(data) <= block:
            yield data
        else:
            view = memoryview(data)
            for start in range(0, len(data), block):
                yield bytes(view[start : start + block])
    if size != content.size or whole.hexdigest() != content.hash:
        raise _corrupt_content(content, "its bytes do not hash to the content's hash")


def write_content_to(objects: ObjectStore, content: Content, fileobj: IO[bytes]) -> int:
    """Write the file's bytes to ``fileobj`` in a stream; return the number of bytes."""
    written = 0
    for piece in iter_content(objects, content):
        fileobj.write(piece)
        written += len(piece)
    return written
