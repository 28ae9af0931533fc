"""Reading and writing the versioned store's repositories: :class:`ReadFromRepo`,
:class:`WriteToRepo`.

Reading. ``ReadFromRepo("repo@branch")`` resolves its reference to one commit id when it is
applied to the pipeline (at construction), so every split on every worker reads that commit even
if the branch moves while the pipeline runs; :attr:`ReadFromRepo.commit_ref` names it. The file
list is made when the runner splits the source (in the coordinating process): each matching file
with its stored layout, so workers read objects only and never query the metadata database.
Splits share out whole files, and with ``as_lines=True`` large files are also cut into byte
ranges that each read the lines *starting* inside them.

Writing. ``WriteToRepo("repo@branch")`` publishes one commit, and only when the whole run
succeeded. Its states: workers store file contents as objects (a
:class:`~headrace.store.content.ContentWriter` per bundle, flushed at the end of the bundle;
contents the store already holds are found with one query per batch of files and not stored
again) and send a small record per file, ``(path, Content JSON)``, or ``(shard, Content JSON)``
in text mode, to :class:`~headrace.model.sinks.FinalizeOnSuccess`. After every stage succeeded,
:meth:`_RepoFinalizer.commit` runs once in the coordinating process and records all contents and
files as one commit with :meth:`~headrace.store.store.Store.record_files` (one transaction). On
failure :meth:`_RepoFinalizer.abort` does nothing: the objects already written stay
unreferenced, invisible, until the store's ``gc``.

The store is named by strings (``store_home``, ``db``, ``objects``, as
:meth:`~headrace.store.store.Store.open` takes them), resolved when the transform is applied;
sources, DoFns and the finalizer carry those strings and open the store lazily where they run.
``headrace.store.store`` (and SQLAlchemy under it) is imported only when a store is opened, and
``headrace.store.content`` and ``headrace.store.objects`` (blake3, zstandard, fsspec, FastCDC)
only when contents are read or written, so importing ``headrace.io`` stays fast.
"""

from __future__ import annotations

import bisect
import contextlib
import io
import itertools
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast

from headrace.io.filebasedsink import AssignShardsDoFn, ShardWriter, describe_record
from headrace.io.filesystem import CompressionTypes
from headrace.io.lines import TextSink, _lines_from_chunks, iter_chunks
from headrace.model.sinks import FinalizeOnSuccess, Finalizer
from headrace.model.sources import BoundedSource
from headrace.model.transforms.core import DoFn, GroupByKey, ParDo, Read, WindowInto
from headrace.model.transforms.ptransform import PTransform
from headrace.model.window import GlobalWindows
from headrace.store.errors import CorruptObject, StoreError
from headrace.store.refs import Ref, normalize_path, parse_ref

if TYPE_CHECKING:
    from headrace.store.content import Content, ContentWriter
    from headrace.store.objects import ObjectStore
    from headrace.store.store import Store

__all__ = ["ReadFromRepo", "WriteToRepo"]

_ALL = "/**"


# -- where the store is -------------------------------------------------------------------------


@dataclass(frozen=True)
class _StoreLocation:
    """A store named by strings (picklable); :meth:`open` opens it wherever it runs."""

    home: str
    db: str
    objects: str

    @classmethod
    def open_new(
        cls, home: str | os.PathLike[str] | None, db: str | None, objects: str | None
    ) -> tuple[Store, _StoreLocation]:
        """Open the store as :meth:`Store.open` would; return it and its resolved location."""
        from headrace.store.store import Store, default_home  # SQLAlchemy: load on first use

        home_path = os.path.abspath(os.fspath(home) if home is not None else default_home())
        store = Store.open(home_path, db, objects)
        return store, cls(home_path, store.meta.url, store.objects.url)

    def open(self) -> Store:
        from headrace.store.store import Store

        return Store.open(self.home, self.db, self.objects)

    def object_store(self) -> ObjectStore:
        from headrace.store.objects import ObjectStore

        return ObjectStore(self.objects)


def _in_context(e: StoreError, what: str) -> StoreError:
    """The same kind of error with ``what`` in front of its message."""
    try:
        return type(e)(f"{what}: {e}")
    except TypeError:
        return e


# -- reading --------------------------------------------------------------------------------------


class _Piece(NamedTuple):
    """One file, or the byte range ``[start, stop)`` of it (``stop=None``: to its end)."""

    path: str
    content: Content
    start: int
    stop: int | None

    @property
    def weight(self) -> int:
        stop = self.content.size if self.stop is None else self.stop
        return max(1, stop - self.start)


class _StoredFile(io.RawIOBase):
    """A seekable, read-only view of a stored file, fetching one segment at a time.

    Every byte is checked: chunk and whole-file objects by the object store, the slice of a
    pack (a small file's only segment) against the file's hash here.
    """

    def __init__(self, objects: ObjectStore, content: Content) -> None:
        super().__init__()
        self._objects = objects
        self._content = content
        self._starts: list[int] = []
        position = 0
        for seg in content.layout:
            self._starts.append(position)
            position += _segment_length(content, seg)
        if position != content.size:
            raise CorruptObject(
                f"content {content.hash}: its layout covers {position} bytes, not {content.size}; "
                "run the store's fsck"
            )
        self._pos = 0
        self._cached: tuple[int, bytes] = (-1, b"")

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._content.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _segment(self, index: int) -> bytes:
        if self._cached[0] == index:
            return self._cached[1]
        content = self._content
        seg = content.layout[index]
        if seg[0] == "p":
            from headrace.store.objects import hash_bytes

            data = self._objects.get_range(seg[1], seg[2], seg[3])  # type: ignore[misc]
            if len(content.layout) == 1 and hash_bytes(data) != content.hash:
                raise CorruptObject(
                    f"content {content.hash}: its slice of pack {seg[1]} does not hash to it; "
                    "run the store's fsck"
                )
        else:
            data = self._objects.get(seg[1])
        end = self._starts[index + 1] if index + 1 < len(self._starts) else content.size
        if len(data) != end - self._starts[index]:
            raise CorruptObject(
                f"content {content.hash}: object {seg[1]} has {len(data)} bytes, not "
                f"{end - self._starts[index]} as its layout says; run the store's fsck"
            )
        self._cached = (index, data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` bytes from the current position, never crossing a segment's end (so
        no buffer is allocated ahead); ``b""`` at the end."""
        if size is None or size < 0:
            return self.readall()
        pos = self._pos
        if pos >= self._content.size or size == 0:
            return b""
        index = bisect.bisect_right(self._starts, pos) - 1
        data = self._segment(index)
        offset = pos - self._starts[index]
        n = min(size, len(data) - offset)
        self._pos = pos + n
        return data[offset : offset + n]

    def readall(self) -> bytes:
        parts = []
        while part := self.read(self._content.size):
            parts.append(part)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _segment_length(content: Content, seg: tuple[Any, ...]) -> int:
    kind = seg[0]
    if kind == "o":
        return content.size
    if kind == "c":
        return int(seg[2])
    if kind == "p":
        return int(seg[3])
    raise CorruptObject(f"content {content.hash}: unknown segment kind {kind!r}")


def _list_files(store: Store, repo: str, commit: str, pattern: str) -> list[tuple[str, Content]]:
    """The files of ``repo@commit`` matching ``pattern`` (a matched directory contributes every
    file under it), in path order, with their stored contents."""
    ref = f"{repo}@{commit}"
    found: dict[str, str] = {}  # path -> content hash
    expanded: set[str] = set()
    everything_below = pattern.endswith("/**") or pattern == "**"  # matches their files too
    for match in store.glob_files(ref, pattern):
        if match.type == "file":
            assert match.hash is not None
            found[match.path] = match.hash
            continue
        if everything_below or _inside(match.path, expanded):
            continue
        expanded.add(match.path)
        for info in store.list_files(f"{ref}:{match.path}", recursive=True):
            if info.type == "file":
                assert info.hash is not None
                found[info.path] = info.hash
    from headrace.store.content import Content

    with store.meta.read() as conn:
        records = store.meta.get_contents(conn, set(found.values()))
    out = []
    for path in sorted(found):
        record = records.get(found[path])
        if record is None:
            raise CorruptObject(
                f"{ref}:{path}: its content {found[path]} is not recorded in the store's "
                "metadata; run the store's fsck"
            )
        out.append((path, Content.from_json(record.layout)))
    return out


def _inside(path: str, folders: set[str]) -> bool:
    """Whether ``path`` is one of ``folders`` or below one of them."""
    if "/" in folders:
        return True
    probe = path
    while probe:
        if probe in folders:
            return True
        probe = probe.rsplit("/", 1)[0]
    return False


class _RepoSource(BoundedSource):
    """The files of one commit: whole files as ``(path, bytes)`` or their lines.

    Holds only strings and, once split, the pieces it reads (paths with their stored layouts).
    """

    def __init__(
        self,
        location: _StoreLocation,
        repo: str,
        commit: str,
        pattern: str,
        as_lines: bool,
        with_filename: bool,
        pieces: tuple[_Piece, ...] | None = None,
    ) -> None:
        self.location = location
        self.repo = repo
        self.commit = commit
        self.pattern = pattern
        self.as_lines = as_lines
        self.with_filename = with_filename
        self.pieces = pieces

    def _part(self, pieces: list[_Piece]) -> _RepoSource:
        return _RepoSource(
            self.location, self.repo, self.commit, self.pattern, self.as_lines,
            self.with_filename, tuple(pieces),
        )  # fmt: skip

    def _pieces(self) -> list[_Piece]:
        if self.pieces is not None:
            return list(self.pieces)
        store = self.location.open()
        try:
            files = _list_files(store, self.repo, self.commit, self.pattern)
        finally:
            store.close()
        return [_Piece(path, content, 0, None) for path, content in files]

    def split(self, desired_num_splits: int) -> list[BoundedSource]:
        pieces = self._pieces()
        if not pieces:
            return []
        desired = max(1, desired_num_splits)
        if self.as_lines:
            bundle = max(1, math.ceil(sum(p.weight for p in pieces) / desired))
            pieces = [cut for p in pieces for cut in _cut(p, bundle)]
        groups: list[list[_Piece]] = [[] for _ in range(min(desired, len(pieces)))]
        total = sum(p.weight for p in pieces)
        position = 0
        for piece in pieces:  # contiguous shares, by where each piece's middle falls
            index = int((position + piece.weight / 2) * len(groups) / total)
            groups[min(index, len(groups) - 1)].append(piece)
            position += piece.weight
        return [self._part(group) for group in groups if group]

    def read(self) -> Iterator[Any]:
        pieces = self._pieces()
        if not pieces:
            return
        from headrace.store.content import read_content

        objects = self.location.object_store()
        for piece in pieces:
            if not self.as_lines:
                yield (piece.path, read_content(objects, piece.content))
                continue
            f = _StoredFile(objects, piece.content)
            chunks = iter_chunks(
                cast(IO[bytes], f), piece.start, piece.stop, b"\n", piece.start == 0
            )
            for lines in _lines_from_chunks(
                chunks, True, f"{self.repo}@{self.commit}:{piece.path}"
            ):
                if self.with_filename:
                    path = piece.path
                    yield from [(path, line) for line in lines]
                else:
                    yield from lines

    def estimate_size(self) -> int | None:
        return sum((p.content.size if p.stop is None else p.stop) - p.start for p in self._pieces())

    def display_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {"commit": f"{self.repo}@{self.commit}", "glob": self.pattern}
        if self.pieces is not None:
            data["pieces"] = len(self.pieces)
        return data

    def default_label(self) -> str:
        return "RepoSource"


def _cut(piece: _Piece, bundle: int) -> list[_Piece]:
    """``piece`` (a whole file) as byte ranges of about ``bundle`` bytes."""
    size = piece.content.size
    if piece.start or piece.stop is not None or size <= bundle:
        return [piece]
    count = math.ceil(size / bundle)
    bounds = [size * i // count for i in range(count + 1)]
    return [
        _Piece(piece.path, piece.content, lo, hi if hi < size else None)
        for lo, hi in itertools.pairwise(bounds)
        if hi > lo
    ]


class ReadFromRepo(PTransform):
    """Read the files of a commit of the versioned store.

    ``ref`` is ``repo@branch``, ``repo@<commit id>`` or ``repo@branch^2``, with an optional
    ``:/path`` to read only that file or directory. ``glob`` (relative to that path) selects
    files as stages do: ``*`` within a path segment, ``**`` across them; a matched directory
    contributes every file under it. A pattern that matches nothing reads nothing.

    Elements are ``(path, bytes)``, one per file (paths are absolute in the commit), or with
    ``as_lines=True`` the UTF-8 lines of the files (newline removed), or ``(path, line)`` with
    ``with_filename=True``. The store is ``store_home`` (default ``$HEADRACE_HOME``), ``db``
    and ``objects`` as for :meth:`Store.open <headrace.store.store.Store.open>`.

    The reference is resolved to a commit id when the transform is applied, so the whole run
    reads that one commit even if the branch moves meanwhile; :attr:`commit_ref` names it
    (``repo@<id>``), for example as the provenance of a :class:`WriteToRepo`. The commit must be
    finished.

    >>> import tempfile
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.store.store import Store
    >>> from headrace.testing.util import assert_that, equal_to
    >>> home = tempfile.TemporaryDirectory()
    >>> with Store.open(home.name) as store:
    ...     _ = store.create_repo("docs")
    ...     _ = store.put_files("docs@master", [("a.txt", b"one\\ntwo\\n"), ("b.csv", b"x\\n")])
    >>> with Pipeline() as p:
    ...     files = p | ReadFromRepo("docs@master", glob="/*.txt", store_home=home.name)
    ...     lines = p | "Lines" >> ReadFromRepo("docs@master", as_lines=True,
    ...                                         store_home=home.name)
    ...     assert_that(files, equal_to([("/a.txt", b"one\\ntwo\\n")]))
    ...     assert_that(lines, equal_to(["one", "two", "x"]), label="CheckLines")
    >>> home.cleanup()
    """

    def __init__(
        self,
        ref: str,
        glob: str = _ALL,
        as_lines: bool = False,
        store_home: str | os.PathLike[str] | None = None,
        db: str | None = None,
        objects: str | None = None,
        *,
        with_filename: bool = False,
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        self.ref = ref
        self._parsed = parse_ref(ref)
        if not isinstance(glob, str) or not glob:
            raise ValueError(
                f"ReadFromRepo({ref!r}): glob must be a non-empty string, got {glob!r}"
            )
        if with_filename and not as_lines:
            raise ValueError(
                f"ReadFromRepo({ref!r}): with_filename=True needs as_lines=True (whole files are "
                "already read as (path, bytes) pairs)"
            )
        base = self._parsed.path
        if base is None or base == "/":
            self.pattern = glob
        elif glob == _ALL:
            self.pattern = base  # the file, or the directory with everything under it
        else:
            self.pattern = base.rstrip("/") + "/" + glob.lstrip("/")
        self.as_lines = as_lines
        self.with_filename = with_filename
        self._store = (store_home, db, objects)
        #: ``repo@<commit id>`` of the commit this transform reads, once applied.
        self.commit_ref: str | None = None

    def expand(self, pbegin: Any) -> Any:
        r = self._parsed
        store, location = _StoreLocation.open_new(*self._store)
        try:
            info = store.inspect_commit(str(Ref(r.repo, r.ref, r.ancestry)))
        except StoreError as e:
            raise _in_context(e, f"{self.label}: cannot read {self.ref!r}") from None
        finally:
            store.close()
        if not info.finished:
            raise StoreError(
                f"{self.label}: {self.ref!r} is commit {info.id}, which is still open; finish it "
                "first (or read its parent, e.g. repo@branch^1)"
            )
        self.commit_ref = f"{r.repo}@{info.id}"
        source = _RepoSource(
            location, r.repo, info.id, self.pattern, self.as_lines, self.with_filename
        )
        return pbegin | "Read" >> Read(source)


# -- writing --------------------------------------------------------------------------------------


class _LazyStore:
    """A store opened on first use in the process where it is used; pickles as its location."""

    def __init__(self, location: _StoreLocation) -> None:
        self.location = location
        self._store: Store | None = None

    def get(self) -> Store:
        if self._store is None:
            self._store = self.location.open()
        return self._store

    def close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location, "_store": None}


def _store_local_file(store: Store, path: str) -> Content:
    """Store the local file ``path``; return its final Content."""
    writer = store.writer()
    content = writer.add_file(path)
    writer.flush()
    return writer.resolve(content)


class _LocalShard:
    """A text shard written to a local temporary file, then stored as one file's content."""

    def __init__(self, sink: TextSink) -> None:
        fd, self.path = tempfile.mkstemp(prefix="headrace-repo-shard-")
        os.close(fd)
        self.writer: ShardWriter | None = sink.open_writer(self.path)

    def write(self, value: Any) -> None:
        assert self.writer is not None
        self.writer.write(value)

    def store(self, store: Store) -> Content:
        try:
            writer, self.writer = self.writer, None
            if writer is not None:
                writer.close()
            return _store_local_file(store, self.path)
        finally:
            self.discard()

    def discard(self) -> None:
        writer, self.writer = self.writer, None
        with contextlib.suppress(Exception):  # best effort: the original error matters
            if writer is not None:
                writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)


class _WriteFilesDoFn(DoFn):
    """Stores ``(path, data)`` elements; emits ``(path, Content JSON)`` at the end of a bundle.

    Elements are stored in batches: the contents the store already knows are looked up with one
    query per batch (not one per file), and known content is not stored again.
    """

    BATCH_FILES = 1024
    BATCH_BYTES = 32 << 20

    def __init__(self, location: _StoreLocation, prefix: str, target: str) -> None:
        self.store = _LazyStore(location)
        self.prefix = prefix.rstrip("/")
        self.target = target
        self._reset()

    def _reset(self) -> None:
        self._writer: ContentWriter | None = None
        self._known: dict[str, Content] = {}
        self._batch: list[tuple[str, bytes]] = []
        self._batch_bytes = 0
        self._files: list[tuple[str, Content]] = []

    def start_bundle(self) -> None:
        self._reset()

    def _bad(self, element: Any, problem: str) -> ValueError:
        return ValueError(
            f"WriteToRepo to {self.target}: cannot write element {describe_record(element)}: "
            f"{problem}"
        )

    def process(self, element: Any) -> None:
        try:
            path, data = element
        except (TypeError, ValueError):
            raise self._bad(
                element, "give (path, bytes or str) pairs, or use as_text=True to write lines"
            ) from None
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, (bytes, bytearray, memoryview)):
            raise self._bad(element, f"the data is {type(data).__name__}; give bytes or str")
        if not isinstance(path, str):
            raise self._bad(element, f"the path is {type(path).__name__}; give a str")
        try:
            full = normalize_path(self.prefix + "/" + path.lstrip("/"), allow_root=False)
        except StoreError as e:
            raise self._bad(element, str(e)) from None
        self._batch.append((full, data))
        self._batch_bytes += len(data)
        if len(self._batch) >= self.BATCH_FILES or self._batch_bytes >= self.BATCH_BYTES:
            self._store_batch()

    def _store_batch(self) -> None:
        batch = self._batch
        self._batch, self._batch_bytes = [], 0
        if not batch:
            return
        from headrace.store.content import Content, ContentWriter
        from headrace.store.objects import hash_bytes

        store = self.store.get()
        writer = self._writer
        if writer is None:
            writer = self._writer = ContentWriter(store.objects, lookup=self._known.get)
        digests = {hash_bytes(data) for _, data in batch}
        with store.meta.read() as conn:
            records = store.meta.get_contents(conn, digests)
        self._known.clear()
        self._known.update((h, Content.from_json(r.layout)) for h, r in records.items())
        files = self._files
        for path, data in batch:
            files.append((path, writer.add_bytes(data)))

    def finish_bundle(self) -> Iterator[tuple[str, str]]:
        self._store_batch()
        writer, files = self._writer, self._files
        self._reset()
        if writer is None:
            return
        writer.flush()
        for path, content in files:
            yield (path, writer.resolve(content).to_json())

    def teardown(self) -> None:
        self._reset()
        self.store.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self.store, "prefix": self.prefix, "target": self.target}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()


class _WriteTextBundlesDoFn(DoFn):
    """One text shard per bundle; emits ``(None, Content JSON)`` at the end of the bundle."""

    def __init__(self, location: _StoreLocation, sink: TextSink) -> None:
        self.store = _LazyStore(location)
        self.sink = sink
        self._shard: _LocalShard | None = None

    def process(self, element: Any) -> None:
        shard = self._shard
        if shard is None:
            shard = self._shard = _LocalShard(self.sink)
        shard.write(element)

    def finish_bundle(self) -> Iterator[tuple[None, str]]:
        shard, self._shard = self._shard, None
        if shard is not None:
            yield (None, shard.store(self.store.get()).to_json())

    def teardown(self) -> None:
        shard, self._shard = self._shard, None
        if shard is not None:
            shard.discard()
        self.store.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self.store, "sink": self.sink, "_shard": None}


class _WriteTextShardsDoFn(DoFn):
    """Writes each ``(shard index, lines)`` group as one file; emits ``(index, Content JSON)``."""

    def __init__(self, location: _StoreLocation, sink: TextSink) -> None:
        self.store = _LazyStore(location)
        self.sink = sink

    def process(self, element: tuple[int, Iterable[Any]]) -> Iterator[tuple[int, str]]:
        index, values = element
        shard = _LocalShard(self.sink)
        try:
            for value in values:
                shard.write(value)
        except BaseException:
            shard.discard()
            raise
        yield (index, shard.store(self.store.get()).to_json())

    def teardown(self) -> None:
        self.store.close()


class _RepoTextSink(TextSink):
    transform_name = "WriteToRepo"


class _RepoFinalizer(Finalizer):
    """Records every written file as one commit on success; leaves nothing visible on failure."""

    def __init__(
        self,
        location: _StoreLocation,
        branch: str,
        message: str,
        provenance: tuple[str, ...],
        text_sink: TextSink | None,
    ) -> None:
        self.location = location
        self.branch = branch
        self.message = message
        self.provenance = provenance
        self.text_sink = text_sink

    def _text_files(self, store: Store, results: list[Any]) -> list[tuple[str, Content]]:
        from headrace.store.content import Content

        sink = self.text_sink
        assert sink is not None
        shards: list[str | None]
        if sink.num_shards > 0:
            by_index: dict[int, str] = {}
            for index, text in results:
                if not isinstance(index, int) or not 0 <= index < sink.num_shards:
                    raise ValueError(f"WriteToRepo to {self.branch}: bad shard record {index!r}")
                if index in by_index:
                    raise ValueError(
                        f"WriteToRepo to {self.branch}: shard {index} was written twice; a "
                        "sharded write needs its input in the global window"
                    )
                by_index[index] = text
            shards = [by_index.get(i) for i in range(sink.num_shards)]
        else:
            shards = sorted(text for _, text in results) or [None]
        empty: Content | None = None
        files = []
        for index, text in enumerate(shards):
            if text is not None:
                content = Content.from_json(text)
            else:
                if empty is None:
                    empty = _LocalShard(sink).store(store)  # header and footer only
                content = empty
            files.append((sink.final_path(index, len(shards)), content))
        return files

    def commit(self, results: list[Any]) -> None:
        from headrace.store.content import Content

        store = self.location.open()
        try:
            if self.text_sink is not None:
                files = self._text_files(store, results)
            else:
                files = [(path, Content.from_json(text)) for path, text in results]
            store.record_files(self.branch, files, message=self.message, provenance=self.provenance)
        finally:
            store.close()

    def abort(self, results: list[Any]) -> None:
        """Nothing to undo: written objects stay unreferenced (invisible) until ``gc``."""


class WriteToRepo(PTransform):
    """Write a PCollection as one new commit on ``repo@branch``, made only if the run succeeds.

    Files mode (default): elements are ``(path, data)`` pairs, ``data`` ``bytes`` or ``str``
    (UTF-8). Paths are placed under the ``:/dir`` of ``ref`` if it has one; a path written twice
    fails the run. Text mode (``as_text=True``): elements are lines, written like
    :class:`~headrace.io.WriteToText` to files named ``:/path/prefix`` + ``-SSSSS-of-NNNNN``
    + ``file_name_suffix`` (``num_shards``, ``shard_name_template``, ``coder``, ``header``,
    ``footer``, ``compression_type`` as there).

    The commit's parent is the branch head when the run ends: files not written keep their
    content. ``message`` is its message; ``provenance`` lists the commits it was made from:
    references (resolved to commit ids when the transform is applied) or applied
    :class:`ReadFromRepo` transforms (their resolved commit). The store is given as for
    :class:`ReadFromRepo`; the repo must exist. A failed run makes no commit.

    >>> import tempfile
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create, Map
    >>> from headrace.store.store import Store
    >>> home = tempfile.TemporaryDirectory()
    >>> with Store.open(home.name) as store:
    ...     _ = store.create_repo("raw")
    ...     _ = store.create_repo("clean")
    ...     _ = store.put_file("raw@master:/a.txt", b"hello")
    >>> with Pipeline() as p:
    ...     read = ReadFromRepo("raw@master", store_home=home.name)
    ...     _ = (p | read | Map(lambda f: (f[0], f[1].upper()))
    ...          | WriteToRepo("clean@master:/out", message="upper", provenance=[read],
    ...                        store_home=home.name))
    >>> with Store.open(home.name) as store:
    ...     store.get_file("clean@master:/out/a.txt"), store.inspect_commit("clean@master").message
    (b'HELLO', 'upper')
    >>> home.cleanup()
    """

    def __init__(
        self,
        ref: str,
        *,
        message: str = "",
        provenance: str | ReadFromRepo | Iterable[str | ReadFromRepo] = (),
        as_text: bool = False,
        num_shards: int = 0,
        shard_name_template: str | None = None,
        file_name_suffix: str = "",
        coder: Any = None,
        header: Any = None,
        footer: Any = None,
        compression_type: str = CompressionTypes.AUTO,
        store_home: str | os.PathLike[str] | None = None,
        db: str | None = None,
        objects: str | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        r = parse_ref(ref)
        if r.is_commit or r.ancestry:
            raise ValueError(
                f"WriteToRepo({ref!r}): write to a branch, as repo@branch or repo@branch:/path"
            )
        self.ref = ref
        self.branch = f"{r.repo}@{r.ref}"
        if not isinstance(message, str):
            raise TypeError(f"WriteToRepo({ref!r}): message must be a str, got {message!r}")
        self.message = message
        if isinstance(provenance, (str, ReadFromRepo)):
            provenance = [provenance]
        self.provenance: list[str | ReadFromRepo] = list(provenance)
        for p in self.provenance:
            if not isinstance(p, (str, ReadFromRepo)):
                raise TypeError(
                    f"WriteToRepo({ref!r}): provenance holds {p!r}; give references "
                    "('repo@branch', 'repo@<commit id>') or ReadFromRepo transforms"
                )
        self.prefix = r.path or "/"
        self.text_sink: TextSink | None = None
        if as_text:
            if r.path is None or r.path == "/":
                raise ValueError(
                    f"WriteToRepo({ref!r}, as_text=True): name the files' prefix in the "
                    "reference, e.g. 'repo@branch:/counts/part'"
                )
            self.text_sink = _RepoTextSink(
                r.path,
                file_name_suffix=file_name_suffix,
                num_shards=num_shards,
                shard_name_template=shard_name_template,
                coder=coder,
                compression_type=compression_type,
                header=header,
                footer=footer,
            )
        else:
            given = {
                "num_shards": num_shards != 0,
                "shard_name_template": shard_name_template is not None,
                "file_name_suffix": file_name_suffix != "",
                "coder": coder is not None,
                "header": header is not None,
                "footer": footer is not None,
                "compression_type": compression_type != CompressionTypes.AUTO,
            }
            for name, set_ in given.items():
                if set_:
                    raise ValueError(
                        f"WriteToRepo({ref!r}): {name} applies to text mode only; pass "
                        "as_text=True to write lines, or leave it out to write (path, data) pairs"
                    )
        self._store = (store_home, db, objects)

    def _resolve_provenance(self, store: Store) -> tuple[str, ...]:
        out = []
        for p in self.provenance:
            if isinstance(p, ReadFromRepo):
                if p.commit_ref is None:
                    raise ValueError(
                        f"{self.label}: provenance {p.label!r} has not been applied to a pipeline "
                        "yet; apply the ReadFromRepo before the WriteToRepo that names it"
                    )
                out.append(p.commit_ref)
                continue
            try:
                info = store.inspect_commit(p)
            except StoreError as e:
                raise _in_context(e, f"{self.label}: provenance {p!r}") from None
            out.append(f"{info.repo}@{info.id}")
        return tuple(out)

    def expand(self, pcoll: Any) -> Any:
        store, location = _StoreLocation.open_new(*self._store)
        try:
            try:
                store.inspect_repo(self.branch.partition("@")[0])
            except StoreError as e:
                raise _in_context(e, f"{self.label}: cannot write to {self.ref!r}") from None
            provenance = self._resolve_provenance(store)
        finally:
            store.close()
        sink = self.text_sink
        if sink is None:
            records = pcoll | "WriteFiles" >> ParDo(
                _WriteFilesDoFn(location, self.prefix, self.ref)
            )
        elif sink.num_shards == 0:
            records = pcoll | "WriteText" >> ParDo(_WriteTextBundlesDoFn(location, sink))
        else:
            windowing = pcoll.windowing
            if windowing.window_fn is not None or windowing.trigger is not None:
                pcoll = pcoll | "GlobalWindow" >> WindowInto(GlobalWindows())  # one numbering
            records = (
                pcoll
                | "AssignShards" >> ParDo(AssignShardsDoFn(sink.num_shards))
                | "GroupShards" >> GroupByKey()
                | "WriteShards" >> ParDo(_WriteTextShardsDoFn(location, sink))
            )
        finalizer = _RepoFinalizer(location, self.branch, self.message, provenance, sink)
        return records | "Commit" >> FinalizeOnSuccess(finalizer)
