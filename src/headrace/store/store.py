"""The Python API of the versioned store: :class:`Store`.

A store is a metadata database (:mod:`~headrace.store.metadata`) plus an object location
(:mod:`~headrace.store.objects`). Everything a user names goes through a reference
(``repo@branch^2:/path``, see :mod:`~headrace.store.refs`).

Commits move ``OPEN -> FINISHED``. A branch holds at most one open commit: starting a second one
on the same branch is a :class:`~headrace.store.errors.Conflict`, so two writers never lose an
update. An open commit is the branch head while it is open; reads of it see its parent's files
plus its staged changes. Finishing builds its tree in the same transaction that marks it
finished. One-shot operations (``put_file`` on a branch with no open commit, ``with
store.commit(...)``, ``record_files``) start and finish in one transaction, building the new
commit's tree straight from their changes (nothing is staged). Object bytes are always written
before the transaction that refers to them, so a crash leaves only unreferenced objects (removed
by :meth:`Store.gc`).

Reading: every call resolves its reference in its own read transaction. Tree nodes come through
the metadata's node cache, shared by all calls (see :mod:`~headrace.store.nodecache`), and the
leaves a listing needs are fetched together. :meth:`Store.walk_files` streams a large listing,
resolving the reference once; :meth:`Store.list_files` returns one page.

:class:`Store` is the one facade; the work is done by plain functions over its metadata and
objects: :mod:`~headrace.store.commits` resolves references and moves commits between states,
:mod:`~headrace.store.writing` records files (and holds :class:`OpenCommit`),
:mod:`~headrace.store.reading` reads files, listings and diffs, and
:mod:`~headrace.store.maintenance` merges, checks and collects garbage.

>>> import tempfile
>>> store = Store.open(tempfile.mkdtemp())
>>> _ = store.create_repo("sales")
>>> with store.commit("sales@master", message="january") as c:
...     c.put_file("/2024/jan.csv", b"id,amount\\n1,10\\n")
>>> store.get_file("sales@master:/2024/jan.csv")
b'id,amount\\n1,10\\n'
>>> [f.path for f in store.list_files("sales@master:/2024")]
['/2024/jan.csv']
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

import fsspec

from headrace.store import commits, reading, writing
from headrace.store.content import Content, ContentWriter, iter_content, read_content
from headrace.store.errors import FileNotFound, InvalidReference, ObjectsCollected, StoreError
from headrace.store.maintenance import FsckReport, GcReport, MergeResult, fsck, gc, merge
from headrace.store.metadata import OPEN, Metadata, sqlite_url
from headrace.store.objects import ObjectStore
from headrace.store.records import BranchInfo, CommitInfo, DiffEntry, FileInfo, RepoInfo
from headrace.store.refs import Ref, file_path, normalize_path, parse_ref, validate_name
from headrace.store.writing import CommitContext, OpenCommit, add_data

__all__ = [
    "BranchInfo",
    "CommitInfo",
    "DiffEntry",
    "FileInfo",
    "OpenCommit",
    "RepoInfo",
    "Store",
    "default_home",
]


def default_home() -> Path:
    """``$HEADRACE_HOME`` or ``~/.headrace``."""
    return Path(os.environ.get("HEADRACE_HOME") or Path.home() / ".headrace")


class Store:
    """A versioned store: open one with :meth:`Store.open`."""

    def __init__(self, meta: Metadata, objects: ObjectStore) -> None:
        self.meta = meta
        self.objects = objects

    @classmethod
    def open(
        cls,
        home: str | os.PathLike[str] | None = None,
        db: str | None = None,
        objects: str | None = None,
        compression: str | None = None,
    ) -> Store:
        """Open (creating if needed) the store in ``home`` (default: ``$HEADRACE_HOME``).

        ``db`` (``$HEADRACE_DB``) is a SQLAlchemy URL, default SQLite in ``home``; ``objects``
        (``$HEADRACE_OBJECTS``) an fsspec URL, default ``home/objects``.
        """
        home_path = Path(home) if home is not None else default_home()
        db = db or os.environ.get("HEADRACE_DB")
        objects = objects or os.environ.get("HEADRACE_OBJECTS")
        if db is None or objects is None:
            home_path.mkdir(parents=True, exist_ok=True)
        db_url = db or sqlite_url(home_path / "metadata.db")
        store = ObjectStore(objects or str(home_path / "objects"), compression)

        def refuse_over_objects() -> None:  # the database is new: are the objects of another?
            if next(iter(store.keys()), None) is not None:
                raise StoreError(
                    f"the metadata database {Metadata.shown_url(db_url)} holds no store (it is "
                    f"new, empty or was truncated) but the objects folder {store.url} holds the "
                    "objects of one: the store's database was lost. Restore it from a backup "
                    "(or point --db / HEADRACE_DB at it); a new store needs an empty objects "
                    "folder"
                )

        return cls(Metadata(db_url, before_create=refuse_over_objects), store)

    def close(self) -> None:
        self.meta.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- repos ----------------------------------------------------------------------------------

    def create_repo(self, name: str, description: str = "") -> RepoInfo:
        validate_name(name)
        with self.meta.transaction() as conn:
            self.meta.create_repo(conn, name, description)
        return self.inspect_repo(name)

    def inspect_repo(self, name: str) -> RepoInfo:
        with self.meta.read() as conn:
            r = self.meta.get_repo(conn, name)
            branches = tuple(b.name for b in self.meta.list_branches(conn, name))
        return RepoInfo(r.name, r.description, r.created_at, branches)

    def list_repos(self) -> list[RepoInfo]:
        with self.meta.read() as conn:
            out = []
            for r in self.meta.list_repos(conn):
                branches = tuple(b.name for b in self.meta.list_branches(conn, r.name))
                out.append(RepoInfo(r.name, r.description, r.created_at, branches))
        return out

    def delete_repo(self, name: str) -> None:
        with self.meta.transaction() as conn:
            self.meta.delete_repo(conn, name)

    # -- branches -------------------------------------------------------------------------------

    def create_branch(self, ref: str, head: str | None = None) -> BranchInfo:
        """Create ``repo@branch``, empty or at ``head`` (a reference such as ``repo@master``)."""
        r = parse_ref(ref)
        if r.is_commit:
            raise InvalidReference(f"{ref!r} names a commit; name the new branch instead")
        with self.meta.transaction() as conn:
            head_id = None
            if head is not None:
                head_ref = parse_ref(head if "@" in head else f"{r.repo}@{head}")
                head_id = commits.resolve(self.meta, conn, head_ref).id
            self.meta.create_branch(conn, r.repo, r.ref, head_commit=head_id)
        return BranchInfo(r.repo, r.ref, head_id)

    def list_branches(self, repo: str) -> list[BranchInfo]:
        with self.meta.read() as conn:
            self.meta.get_repo(conn, repo)
            return [
                BranchInfo(b.repo, b.name, b.head_commit)
                for b in self.meta.list_branches(conn, repo)
            ]

    def delete_branch(self, ref: str) -> None:
        r = parse_ref(ref)
        with self.meta.transaction() as conn:
            self.meta.delete_branch(conn, r.repo, r.ref)

    # -- history --------------------------------------------------------------------------------

    def inspect_commit(self, ref: str) -> CommitInfo:
        with self.meta.read() as conn:
            return CommitInfo.of(commits.resolve(self.meta, conn, parse_ref(ref)))

    def list_commits(
        self, repo: str, branch: str | None = None, limit: int | None = None
    ) -> list[CommitInfo]:
        with self.meta.read() as conn:
            self.meta.get_repo(conn, repo)
            return [
                CommitInfo.of(c)
                for c in self.meta.list_commits(conn, repo, branch=branch, limit=limit)
            ]

    # -- commits --------------------------------------------------------------------------------

    def start_commit(
        self,
        ref: str,
        message: str = "",
        parent: str | None = None,
        origin: str = "USER",
        provenance: Iterable[str] = (),
        also: Callable[[Any, CommitInfo], None] | None = None,
    ) -> CommitInfo:
        """Open a commit on ``repo@branch`` (creating the branch if needed).

        ``provenance``: references of the commits it is made from. ``also(conn, commit)`` runs
        in the same transaction (for layers above the store that keep their own tables in the
        same database and must change them atomically with the commit).
        """
        meta = self.meta
        with meta.transaction() as conn:
            started = commits.start(meta, conn, parse_ref(ref), message, origin, parent)
            info = CommitInfo.of(started)
            commits.add_provenance(meta, conn, info.id, provenance)
            if also is not None:
                also(conn, info)
            return info

    def finish_commit(
        self,
        ref: str,
        message: str | None = None,
        also: Callable[[Any, CommitInfo], None] | None = None,
    ) -> CommitInfo:
        """Finish an open commit; ``also(conn, commit)`` runs in the same transaction."""
        with self.meta.transaction() as conn:
            commit = commits.resolve(self.meta, conn, parse_ref(ref))
            info = CommitInfo.of(commits.finish(self.meta, conn, commit, message))
            if also is not None:
                also(conn, info)
            return info

    def delete_commit(
        self, ref: str, also: Callable[[Any, CommitInfo], None] | None = None
    ) -> None:
        """Delete a commit that has no children (Pachyderm refuses to delete one with
        children: squash it into them, or delete them first).

        ``also(conn, commit)`` runs in the same transaction."""
        with self.meta.transaction() as conn:
            commit = commits.resolve(self.meta, conn, parse_ref(ref))
            children = [
                c.id for c in self.meta.list_commits(conn, commit.repo) if c.parent == commit.id
            ]
            if children:
                raise StoreError(
                    f"commit {commit.id} of {commit.repo} has {len(children)} child commit(s) "
                    f"({', '.join(children)}); deleting it would rewrite their history, which "
                    "Pachyderm refuses too: squash it into them (commit squash) or delete them "
                    "first"
                )
            self.meta.delete_commit(conn, commit.id)
            if also is not None:
                also(conn, CommitInfo.of(commit))

    def stage_files(
        self,
        commit: str,
        files: Iterable[tuple[str, Content | None]],
        also: Callable[[Any], None] | None = None,
    ) -> None:
        """Stage changes on the open commit ``repo@<id>``: ``(path, Content)`` writes a file whose
        objects are already stored (a :meth:`writer`'s flushed Contents), ``(path, None)``
        deletes one; the last change to a path wins. ``also(conn)`` runs in the same
        transaction. Nothing is visible until the commit finishes."""
        writing.stage_files(self.meta, self.objects, commit, files, also)

    def contents(self, hashes: Collection[str]) -> dict[str, Content]:
        """The stored :class:`Content` (layout) of each known content hash among ``hashes``."""
        return self._lookup_contents(hashes)

    def write_contents(
        self,
        items: Iterable[tuple[str, str | os.PathLike[str]]],
        known: Mapping[str, Content] | None = None,
    ) -> int:
        """Write files by content hash: ``(hash, local path)`` pairs, parents created, each
        written to a temporary name then renamed; returns bytes. Layouts in ``known`` (hash ->
        Content, e.g. looked up once for many calls) are used as given; the others are looked
        up in one metadata read (none at all when ``known`` covers every hash)."""
        return reading.write_contents(self.meta, self.objects, items, known)

    def lookup_files(self, ref: str, paths: Iterable[str]) -> dict[str, FileInfo]:
        """The files among ``paths`` that exist in the commit ``ref`` names, in one read."""
        return reading.lookup_files(self.meta, ref, paths)

    def squash_commit(self, ref: str) -> None:
        """Fold a finished commit into its children: its changes stay visible in them, the commit
        itself disappears from history (children keep their own trees)."""
        with self.meta.transaction() as conn:
            commit = commits.resolve(self.meta, conn, parse_ref(ref))
            if commit.state == OPEN:
                raise StoreError(f"commit {commit.id} is open; finish or delete it instead")
            children = [
                c for c in self.meta.list_commits(conn, commit.repo) if c.parent == commit.id
            ]
            if not children:
                raise StoreError(
                    f"commit {commit.id} has no children to squash into; delete it instead"
                )
            open_children = [c.id for c in children if c.state == OPEN]
            if open_children:
                raise StoreError(
                    f"commit {commit.id} has an open child ({', '.join(open_children)}); "
                    "squashing into an open commit is refused (as in Pachyderm): finish it first"
                )
            self.meta.delete_commit(conn, commit.id)

    def wait_commit(self, ref: str, timeout: float | None = None, poll: float = 0.05) -> CommitInfo:
        """Wait until the commit ``ref`` names is finished; return it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            info = self.inspect_commit(ref)
            if info.finished:
                return info
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"commit {info.id} ({ref}) is still open after {timeout} s")
            time.sleep(poll)

    def commit(
        self, ref: str, message: str = "", origin: str = "USER", provenance: Iterable[str] = ()
    ) -> AbstractContextManager[OpenCommit]:
        """A context manager: an open commit that finishes on success and is deleted on error.

        Writes are buffered and recorded in one transaction at the end, so nothing of a failed
        block is ever visible.
        """
        return CommitContext(self, ref, message, origin, tuple(provenance))

    # -- provenance -----------------------------------------------------------------------------

    def add_provenance(self, ref: str, sources: Iterable[str]) -> None:
        with self.meta.transaction() as conn:
            commit = commits.resolve(self.meta, conn, parse_ref(ref))
            commits.add_provenance(self.meta, conn, commit.id, sources)

    def provenance(self, ref: str, transitive: bool = True) -> list[CommitInfo]:
        with self.meta.read() as conn:
            commit = commits.resolve(self.meta, conn, parse_ref(ref))
            return [
                CommitInfo.of(c)
                for c in self.meta.provenance(conn, commit.id, transitive=transitive)
            ]

    def subvenance(self, ref: str, transitive: bool = True) -> list[CommitInfo]:
        with self.meta.read() as conn:
            commit = commits.resolve(self.meta, conn, parse_ref(ref))
            return [
                CommitInfo.of(c)
                for c in self.meta.subvenance(conn, commit.id, transitive=transitive)
            ]

    # -- writing files --------------------------------------------------------------------------

    def writer(self) -> ContentWriter:
        """A :class:`ContentWriter` into this store's objects that stores no known content
        again (small files are looked up in the metadata a pack at a time)."""
        return ContentWriter(
            self.objects, lookup=self._lookup_content, lookup_many=self._lookup_contents
        )

    def _lookup_content(self, digest: str) -> Content | None:
        return self._lookup_contents((digest,)).get(digest)

    def _lookup_contents(self, digests: Collection[str]) -> dict[str, Content]:
        """The known Contents among ``digests``: one read, one query per batch of keys."""
        return reading.lookup_contents(self.meta, digests)

    def put_file(
        self, ref: str, data: bytes | str | os.PathLike[str] | IO[bytes], message: str = ""
    ) -> CommitInfo:
        """Write one file at ``repo@branch:/path`` (or into an open commit ``repo@<id>:/path``).

        ``data`` is bytes, a local file path, or a binary file object. Without an open commit on
        the branch this makes a one-shot commit.
        """
        r = parse_ref(ref)
        return self._write(ref, [(file_path(r, ref), data)], message, None)

    def put_files(
        self,
        ref: str,
        files: Iterable[tuple[str, bytes | str | os.PathLike[str] | IO[bytes]]],
        message: str = "",
        progress: Callable[[int], None] | None = None,
    ) -> CommitInfo:
        """Write many files (``(path, data)`` pairs; paths relative to ``ref``'s path) at once."""
        r = parse_ref(ref)
        base = r.path or "/"
        items = (
            (normalize_path(base.rstrip("/") + "/" + str(rel).lstrip("/"), allow_root=False), data)
            for rel, data in files
        )
        return self._write(str(Ref(r.repo, r.ref, r.ancestry)), items, message, progress)

    def _write(
        self,
        target: str,
        items: Iterable[tuple[str, bytes | str | os.PathLike[str] | IO[bytes]]],
        message: str,
        progress: Callable[[int], None] | None,
    ) -> CommitInfo:
        """Store ``(path, data)`` items (read once, lazily) and record them on ``target``. When
        a concurrent gc deleted objects the write found (:class:`ObjectsCollected`), the write
        is made once more if its data can be read again (bytes and paths, not streams)."""
        rereadable = (bytes, bytearray, memoryview, str, os.PathLike)
        again = True
        kept: list[tuple[str, Any]] = []
        source: Iterable[tuple[str, Any]] = items
        while True:
            writer = self.writer()
            staged: list[tuple[str, Content]] = []
            for path, data in source:
                staged.append((path, add_data(writer, data)))
                if source is items:
                    again = again and isinstance(data, rereadable)
                    if again:
                        kept.append((path, data))
                if progress is not None:
                    progress(1)
            created = writer.flush()
            finals = [writer.resolve(c) for _, c in staged]
            changes = [(p, c.hash, c.size) for (p, _), c in zip(staged, finals)]
            contents = [*created, *finals]
            try:
                return writing.record(self.meta, self.objects, target, changes, contents, message)
            except ObjectsCollected:
                if not again or source is kept:
                    raise
                source, progress = kept, None

    def record_files(
        self,
        ref: str,
        files: Iterable[tuple[str, Content]],
        message: str = "",
        provenance: Iterable[str] = (),
    ) -> CommitInfo:
        """Make one finished commit on branch ``ref`` holding ``files``, already-stored contents.

        ``files`` are ``(path, Content)`` pairs (paths relative to ``ref``'s path) whose objects
        are already written, e.g. the Contents a :meth:`writer` returned after its ``flush``.
        The contents, the commit (parent: the branch head, so files not named are kept), its
        files and its ``provenance`` (references of the commits it was made from) are recorded
        in one transaction: the commit appears whole or not at all. A path given twice is an
        error; so is an open commit on the branch (:class:`Conflict`).
        """
        return writing.record_files(self.meta, self.objects, ref, files, message, provenance)

    def put_dir(
        self,
        ref: str,
        local_dir: str | os.PathLike[str],
        message: str = "",
        progress: Callable[[int], None] | None = None,
        *,
        follow_links: bool = False,
    ) -> CommitInfo:
        """Write every file under ``local_dir`` (recursively) below ``ref``'s path.

        A symbolic link in the folder is refused unless ``follow_links``, which follows links
        that stay inside ``local_dir`` (see :func:`~headrace.store.writing.local_files`)."""
        root = Path(local_dir)
        if not root.is_dir():
            raise FileNotFound(f"{root} is not a local directory")
        files = writing.local_files(os.fspath(root), follow_links=follow_links)
        return self.put_files(ref, files, message, progress)

    def put_url(self, ref: str, url: str, message: str = "") -> CommitInfo:
        """Write the file at an fsspec ``url`` (``s3://...``, ``https://...``, ``memory://...``)."""
        with fsspec.open(url, "rb") as f:
            return self.put_file(ref, f, message)

    def delete_file(self, ref: str, message: str = "") -> CommitInfo:
        """Delete a file, or every file under a directory."""
        return writing.delete_files(self.meta, self.objects, ref, message)

    def copy_file(self, src: str, dst: str, message: str = "") -> CommitInfo:
        """Copy a file or directory between commits or repos without copying bytes."""
        return writing.copy_files(self.meta, self.objects, src, dst, message)

    # -- reading files --------------------------------------------------------------------------

    def get_file(self, ref: str) -> bytes:
        """The bytes of ``repo@ref:/path`` (verified against their hash)."""
        return read_content(self.objects, reading.file_content(self.meta, ref))

    def open_file(self, ref: str) -> Iterator[bytes]:
        """The bytes of a file as a stream of blocks (for large files)."""
        return iter_content(self.objects, reading.file_content(self.meta, ref))

    def get_file_to(self, ref: str, destination: str | os.PathLike[str]) -> list[str]:
        """Write a file, or every file under a directory, to a local path; return local paths."""
        return reading.get_file_to(self.meta, self.objects, ref, destination)

    def inspect_file(self, ref: str) -> FileInfo:
        return reading.inspect_file(self.meta, ref)

    def list_files(
        self,
        ref: str,
        recursive: bool = False,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> list[FileInfo]:
        """Files (and, unless recursive, subdirectories) under ``repo@ref:/dir``, in path order."""
        return reading.list_files(self.meta, ref, recursive, start_after, limit)

    def walk_files(self, ref: str, prefix: str = "/", batch: int = 10_000) -> Iterator[FileInfo]:
        """Every file under ``repo@ref:/dir`` (or under ``prefix`` when ``ref`` names no path),
        in path order, as a stream: the cheapest way to read a large listing.

        The reference is resolved once, when called: the walk shows that commit even if the
        branch moves meanwhile. Files are read ``batch`` at a time, each batch in a short read
        transaction of its own, so a long or abandoned walk holds nothing open. (Should gc
        remove the commit's tree meanwhile, because the commit was deleted, the walk fails with
        ObjectNotFound.) A missing directory is :class:`FileNotFound`; a file path yields that
        file.

        >>> import tempfile
        >>> store = Store.open(tempfile.mkdtemp())
        >>> _ = store.create_repo("logs")
        >>> _ = store.put_files("logs@master", [("/a/1.txt", b"1"), ("/a/2.txt", b"22")])
        >>> [(f.path, f.size) for f in store.walk_files("logs@master:/a")]
        [('/a/1.txt', 1), ('/a/2.txt', 2)]
        """
        return reading.walk_files(self.meta, ref, prefix, batch)

    def glob_files(self, ref: str, pattern: str | None = None) -> list[FileInfo]:
        """Files and directories matching a glob such as ``repo@master:/**/*.csv``."""
        return reading.glob_files(self.meta, ref, pattern)

    def diff(self, new: str, old: str | None = None, prefix: str = "/") -> list[DiffEntry]:
        """What changed from ``old`` (default: ``new``'s parent) to ``new``."""
        return reading.diff(self.meta, new, old, prefix)

    # -- maintenance ----------------------------------------------------------------------------

    def merge(self, source: str, target: str, message: str = "") -> MergeResult:
        """Merge branch ``source`` into ``target``: fast-forward or a three-way file merge."""
        return merge(self, source, target, message)

    def fsck(self, verify_objects: bool = True) -> FsckReport:
        """Check every commit, tree, content and object; report problems (changes nothing)."""
        return fsck(self, verify_objects)

    def gc(self, dry_run: bool = False, grace_seconds: float = 3600.0) -> GcReport:
        """Remove unreferenced tree nodes, contents and objects (never an open commit's, never
        one a concurrent writer commits: see :mod:`~headrace.store.maintenance`)."""
        return gc(self, dry_run, grace_seconds)
