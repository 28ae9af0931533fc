"""Reading the versioned store's repositories: :class:`ReadFromRepo`.

``ReadFromRepo("repo@branch")`` resolves its reference to one commit id when it is applied to
the pipeline (at construction), so every split on every worker reads that commit even if the
branch moves while the pipeline runs; :attr:`ReadFromRepo.commit_ref` names it. The file list is
made when the runner splits the source (in the coordinating process): each matching file with
its stored layout, so workers read objects only and never query the metadata database. Splits
share out whole files, and with ``as_lines=True`` large files are also cut into byte ranges that
each read the lines *starting* inside them.

The source carries the store as a :class:`~headrace.io.repostore.StoreLocation` and opens it
where it runs; ``headrace.store.content`` and ``headrace.store.objects`` (blake3, zstandard,
fsspec, FastCDC) are imported only when contents are read.
"""

from __future__ import annotations

import bisect
import io
import itertools
import math
import os
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any, NamedTuple, cast

from headrace.io.lines import _lines_from_chunks, iter_chunks
from headrace.io.repostore import StoreLocation, error_in_context
from headrace.model.sources import BoundedSource
from headrace.model.transforms.core import Read
from headrace.model.transforms.ptransform import PTransform
from headrace.store.errors import CorruptObject, StoreError
from headrace.store.refs import Ref, parse_ref

if TYPE_CHECKING:
    from headrace.store.content import Content
    from headrace.store.objects import ObjectStore
    from headrace.store.store import Store

__all__ = ["ReadFromRepo"]

_ALL = "/**"


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
        location: StoreLocation,
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
        store, location = StoreLocation.open_new(*self._store)
        try:
            info = store.inspect_commit(str(Ref(r.repo, r.ref, r.ancestry)))
        except StoreError as e:
            raise error_in_context(e, f"{self.label}: cannot read {self.ref!r}") from None
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
