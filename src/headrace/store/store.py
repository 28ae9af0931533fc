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

import io
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

import fsspec

from headrace.store import trees
from headrace.store.content import Content, ContentWriter, iter_content, read_content
from headrace.store.errors import (
    BranchNotFound,
    CommitFinished,
    CommitNotFound,
    Conflict,
    FileNotFound,
    InvalidPath,
    InvalidReference,
    StoreError,
)
from headrace.store.maintenance import FsckReport, GcReport, MergeResult, fsck, gc, merge
from headrace.store.metadata import OPEN, CommitRecord, Metadata, sqlite_url
from headrace.store.objects import ObjectStore
from headrace.store.records import (
    BranchInfo,
    CommitInfo,
    DiffEntry,
    FileInfo,
    OverlayNodes,
    RepoInfo,
    file_info,
    file_infos,
)
from headrace.store.refs import Ref, normalize_path, parse_ref, validate_name

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
        meta = Metadata(db or sqlite_url(home_path / "metadata.db"))
        return cls(meta, ObjectStore(objects or str(home_path / "objects"), compression))

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
                head_id = self._resolve(conn, head_ref).id
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

    # -- resolving references -------------------------------------------------------------------

    def _resolve(self, conn: Any, r: Ref) -> CommitRecord:
        """The commit a reference names (after ``^N`` ancestry)."""
        if r.is_commit:
            commit = self.meta.get_commit(conn, r.ref, repo=r.repo)
        else:
            head = self.meta.branch_head(conn, r.repo, r.ref)
            if head is None:  # say why
                try:  # (RepoNotFound if the repo does not exist)
                    self.meta.get_branch(conn, r.repo, r.ref)
                except BranchNotFound:
                    raise BranchNotFound(
                        f"branch {r.repo}@{r.ref} does not exist yet; a branch is created by "
                        "its first commit (or headrace branch create)"
                    ) from None
                raise CommitNotFound(f"branch {r.repo}@{r.ref} has no commits yet")
            commit = head
        if r.ancestry:
            chain = self.meta.ancestors(conn, commit.id, r.ancestry)
            if len(chain) < r.ancestry:
                raise CommitNotFound(
                    f"{r} goes back {r.ancestry} commits but {commit.id} has only "
                    f"{len(chain)} ancestors"
                )
            commit = chain[-1]
        return commit

    def inspect_commit(self, ref: str) -> CommitInfo:
        with self.meta.read() as conn:
            return CommitInfo.of(self._resolve(conn, parse_ref(ref)))

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

    def _start(
        self, conn: Any, r: Ref, message: str, origin: str, parent: str | None
    ) -> CommitRecord:
        if r.is_commit or r.ancestry:
            raise InvalidReference(f"commits are started on a branch; {r} is not a branch")
        self.meta.get_repo(conn, r.repo)
        try:
            branch = self.meta.get_branch(conn, r.repo, r.ref, for_update=True)
        except BranchNotFound:
            validate_name(r.ref, "branch")
            branch = self.meta.create_branch(conn, r.repo, r.ref)
        head = branch.head_commit
        if head is not None:
            current = self.meta.get_commit(conn, head)
            if current.state == OPEN:
                raise Conflict(
                    f"{r.repo}@{r.ref} already has an open commit {head}; finish it "
                    "(headrace commit finish) or delete it before starting another"
                )
        parent_id = head if parent is None else self._resolve(conn, parse_ref(parent)).id
        if parent_id is None:
            root = trees.EMPTY_ROOT
        else:
            parent_commit = self.meta.get_commit(conn, parent_id)
            if parent_commit.state == OPEN:
                raise Conflict(f"parent commit {parent_id} is open; finish it first")
            root = parent_commit.root_tree or trees.EMPTY_ROOT
        commit = self.meta.insert_commit(
            conn, r.repo, branch=r.ref, parent=parent_id, origin=origin, message=message,
            root_tree=root,
        )  # fmt: skip
        self.meta.set_head(conn, r.repo, r.ref, head, commit.id)
        return commit

    def _root_of(self, conn: Any, commit: str | CommitRecord | None, nodes: OverlayNodes) -> str:
        """The tree root of a commit (an id or a record). An open commit's view is its base
        plus its staged changes, built into ``nodes``' memory overlay (nothing is written)."""
        if commit is None:
            return trees.EMPTY_ROOT
        c = self.meta.get_commit(conn, commit) if isinstance(commit, str) else commit
        base = c.root_tree or trees.EMPTY_ROOT
        if c.state != OPEN:
            return base
        staged = self.meta.staged_changes(conn, c.id)
        return trees.apply(nodes, base, _changes(staged)) if staged else base

    def _view(self, conn: Any, r: Ref) -> tuple[OverlayNodes, str]:
        """Tree nodes and root of the commit ``r`` names, open or finished."""
        nodes = OverlayNodes(self.meta.tree_nodes(conn))
        return nodes, self._root_of(conn, self._resolve(conn, r), nodes)

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
        with self.meta.transaction() as conn:
            info = CommitInfo.of(self._start(conn, parse_ref(ref), message, origin, parent))
            ids = [self._resolve(conn, parse_ref(p)).id for p in provenance]
            if ids:
                self.meta.add_provenance(conn, info.id, ids)
            if also is not None:
                also(conn, info)
            return info

    def _finish(
        self,
        conn: Any,
        commit: CommitRecord,
        message: str | None,
        changes: Mapping[str, trees.Entry | None] | None = None,
    ) -> CommitRecord:
        """Finish ``commit`` with its staged changes, or with ``changes`` when given (for a
        commit started in this transaction, which has nothing staged)."""
        if commit.state != OPEN:
            raise CommitFinished(f"commit {commit.id} of {commit.repo} is already finished")
        if changes is None:
            staged = self.meta.staged_changes(conn, commit.id)
            changes = _changes(staged) if staged else {}
        nodes = self.meta.tree_nodes(conn)
        root = commit.root_tree or trees.EMPTY_ROOT
        if changes:
            root = trees.apply(nodes, root, changes)
        count, size = trees.count_and_size(nodes, root)
        return self.meta.finish_commit(conn, commit.id, root, size, count, message=message)

    def finish_commit(
        self,
        ref: str,
        message: str | None = None,
        also: Callable[[Any, CommitInfo], None] | None = None,
    ) -> CommitInfo:
        """Finish an open commit; ``also(conn, commit)`` runs in the same transaction."""
        with self.meta.transaction() as conn:
            commit = self._resolve(conn, parse_ref(ref))
            info = CommitInfo.of(self._finish(conn, commit, message))
            if also is not None:
                also(conn, info)
            return info

    def delete_commit(
        self, ref: str, also: Callable[[Any, CommitInfo], None] | None = None
    ) -> None:
        """Delete a commit; its children move onto its parent (history stays connected).

        ``also(conn, commit)`` runs in the same transaction."""
        with self.meta.transaction() as conn:
            commit = self._resolve(conn, parse_ref(ref))
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
        r = parse_ref(commit)
        if not r.is_commit:
            raise InvalidReference(f"stage_files() needs repo@<commit id>, got {commit!r}")
        changes: list[tuple[str, str | None, int | None]] = []
        contents: list[Content] = []
        for path, content in files:
            norm = normalize_path(path, allow_root=False)
            if content is None:
                changes.append((norm, None, None))
            else:
                changes.append((norm, content.hash, content.size))
                contents.append(content)
        rows = _content_rows(contents)
        with self.meta.transaction() as conn:
            if rows:
                self.meta.put_contents(conn, rows)
            target = self.meta.get_commit(conn, r.ref, repo=r.repo)
            if changes:
                self.meta.stage_changes(conn, target.id, changes)
            if also is not None:
                also(conn)

    def contents(self, hashes: Collection[str]) -> dict[str, Content]:
        """The stored :class:`Content` (layout) of each known content hash among ``hashes``."""
        return self._lookup_contents(hashes)

    def write_contents(self, items: Iterable[tuple[str, str | os.PathLike[str]]]) -> int:
        """Write files by content hash: ``(hash, local path)`` pairs, parents created, each
        written to a temporary name then renamed. One metadata read for all; returns bytes."""
        pairs = list(items)
        known = self._lookup_contents({h for h, _ in pairs})
        total = 0
        for digest, local in pairs:
            content = known.get(digest)
            if content is None:
                raise FileNotFound(f"content {digest} is not in the store (removed by gc?)")
            target = Path(local)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".headrace-part")
            with open(tmp, "wb") as f:
                for block in iter_content(self.objects, content):
                    f.write(block)
                    total += len(block)
            os.replace(tmp, target)
        return total

    def lookup_files(self, ref: str, paths: Iterable[str]) -> dict[str, FileInfo]:
        """The files among ``paths`` that exist in the commit ``ref`` names, in one read."""
        r = parse_ref(ref)
        with self.meta.read() as conn:
            nodes, root = self._view(conn, Ref(r.repo, r.ref, r.ancestry))
            out: dict[str, FileInfo] = {}
            for path in paths:
                entry = trees.get(nodes, root, normalize_path(path, allow_root=False))
                if entry is not None:
                    out[path] = file_info(entry)
            return out

    def squash_commit(self, ref: str) -> None:
        """Fold a finished commit into its children: its changes stay visible in them, the commit
        itself disappears from history (children keep their own trees)."""
        with self.meta.transaction() as conn:
            commit = self._resolve(conn, parse_ref(ref))
            if commit.state == OPEN:
                raise StoreError(f"commit {commit.id} is open; finish or delete it instead")
            children = [
                c for c in self.meta.list_commits(conn, commit.repo) if c.parent == commit.id
            ]
            if not children:
                raise StoreError(
                    f"commit {commit.id} has no children to squash into; delete it instead"
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
        return _CommitContext(self, ref, message, origin, tuple(provenance))

    # -- provenance -----------------------------------------------------------------------------

    def add_provenance(self, ref: str, sources: Iterable[str]) -> None:
        with self.meta.transaction() as conn:
            commit = self._resolve(conn, parse_ref(ref))
            ids = [self._resolve(conn, parse_ref(s)).id for s in sources]
            self.meta.add_provenance(conn, commit.id, ids)

    def provenance(self, ref: str, transitive: bool = True) -> list[CommitInfo]:
        with self.meta.read() as conn:
            commit = self._resolve(conn, parse_ref(ref))
            return [
                CommitInfo.of(c)
                for c in self.meta.provenance(conn, commit.id, transitive=transitive)
            ]

    def subvenance(self, ref: str, transitive: bool = True) -> list[CommitInfo]:
        with self.meta.read() as conn:
            commit = self._resolve(conn, parse_ref(ref))
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
        with self.meta.read() as conn:
            found = self.meta.get_contents(conn, digests)
        return {digest: Content.from_json(r.layout) for digest, r in found.items()}

    def _record(
        self,
        ref: str,
        changes: Sequence[tuple[str, str | None, int | None]],
        contents: list[Content],
        message: str = "",
    ) -> CommitInfo:
        """Stage ``changes`` on the open commit of ``ref``'s branch, or make a one-shot commit.

        ``contents`` are recorded again even when known: a concurrent ``gc`` may have dropped the
        row of a content this writer found and reused."""
        r = parse_ref(ref)
        with self.meta.transaction() as conn:
            if contents:
                self.meta.put_contents(conn, _content_rows(contents))
            target, one_shot = self._target(conn, r, message)
            if one_shot:  # a new commit: build its tree from the changes, staging nothing
                target = self._finish(conn, target, None, _entries(changes))
            else:
                self.meta.stage_changes(conn, target.id, changes)
            return CommitInfo.of(target)

    def _target(self, conn: Any, r: Ref, message: str) -> tuple[CommitRecord, bool]:
        if r.is_commit:
            commit = self.meta.get_commit(conn, r.ref, repo=r.repo)
            if commit.state != OPEN:
                raise CommitFinished(
                    f"commit {commit.id} is finished; finished commits are immutable"
                )
            return commit, False
        try:
            branch = self.meta.get_branch(conn, r.repo, r.ref, for_update=True)
            if branch.head_commit is not None:
                head = self.meta.get_commit(conn, branch.head_commit)
                if head.state == OPEN:
                    return head, False
        except BranchNotFound:
            pass
        return self._start(conn, Ref(r.repo, r.ref), message, "USER", None), True

    def put_file(
        self, ref: str, data: bytes | str | os.PathLike[str] | IO[bytes], message: str = ""
    ) -> CommitInfo:
        """Write one file at ``repo@branch:/path`` (or into an open commit ``repo@<id>:/path``).

        ``data`` is bytes, a local file path, or a binary file object. Without an open commit on
        the branch this makes a one-shot commit.
        """
        r = parse_ref(ref)
        path = _file_path(r, ref)
        writer = self.writer()
        content = _add(writer, data)
        created = writer.flush()
        content = writer.resolve(content)
        return self._record(ref, [(path, content.hash, content.size)], [*created, content], message)

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
        writer = self.writer()
        staged: list[tuple[str, Content]] = []
        for rel, data in files:
            path = normalize_path(base.rstrip("/") + "/" + str(rel).lstrip("/"), allow_root=False)
            staged.append((path, _add(writer, data)))
            if progress is not None:
                progress(1)
        created = writer.flush()
        finals = [writer.resolve(c) for _, c in staged]
        changes = [(p, c.hash, c.size) for (p, _), c in zip(staged, finals)]
        return self._record(
            str(Ref(r.repo, r.ref, r.ancestry)), changes, [*created, *finals], message
        )

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
        r = parse_ref(ref)
        if r.is_commit or r.ancestry:
            raise InvalidReference(f"record_files() needs repo@branch, got {ref!r}")
        base = (r.path or "/").rstrip("/")
        staged: dict[str, Content] = {}
        for rel, content in files:
            path = normalize_path(base + "/" + rel.lstrip("/"), allow_root=False)
            if path in staged:
                raise InvalidPath(f"record_files() on {ref}: path {path} is given twice")
            staged[path] = content
        rows = _content_rows(staged.values())  # refuses pending ones
        with self.meta.transaction() as conn:
            if rows:
                self.meta.put_contents(conn, rows)
            commit = self._start(conn, Ref(r.repo, r.ref), message, "USER", None)
            ids = [self._resolve(conn, parse_ref(p)).id for p in provenance]
            if ids:
                self.meta.add_provenance(conn, commit.id, ids)
            changes = {p: trees.Entry(p, c.hash, c.size) for p, c in staged.items()}
            return CommitInfo.of(self._finish(conn, commit, None, changes))

    def put_dir(
        self,
        ref: str,
        local_dir: str | os.PathLike[str],
        message: str = "",
        progress: Callable[[int], None] | None = None,
    ) -> CommitInfo:
        """Write every file under ``local_dir`` (recursively) below ``ref``'s path."""
        root = Path(local_dir)
        if not root.is_dir():
            raise FileNotFound(f"{root} is not a local directory")
        return self.put_files(ref, _local_files(os.fspath(root)), message, progress)

    def put_url(self, ref: str, url: str, message: str = "") -> CommitInfo:
        """Write the file at an fsspec ``url`` (``s3://...``, ``https://...``, ``memory://...``)."""
        with fsspec.open(url, "rb") as f:
            return self.put_file(ref, f, message)

    def delete_file(self, ref: str, message: str = "") -> CommitInfo:
        """Delete a file, or every file under a directory."""
        r = parse_ref(ref)
        path = _file_path(r, ref)
        with self.meta.read() as conn:
            nodes, base = self._view(conn, Ref(r.repo, r.ref, r.ancestry))
            if trees.get(nodes, base, path) is not None:
                paths = [path]
            else:
                paths = [e.path for e in trees.iter_entries(nodes, base, path)]
        if not paths:
            raise FileNotFound(f"{ref}: no such file or directory")
        return self._record(str(Ref(r.repo, r.ref)), [(p, None, None) for p in paths], [], message)

    def copy_file(self, src: str, dst: str, message: str = "") -> CommitInfo:
        """Copy a file or directory between commits or repos without copying bytes."""
        s = parse_ref(src)
        d = parse_ref(dst)
        src_path = s.path or "/"
        dst_path = normalize_path(d.path or src_path)
        with self.meta.read() as conn:
            nodes, root = self._view(conn, Ref(s.repo, s.ref, s.ancestry))
            single = trees.get(nodes, root, src_path) if src_path != "/" else None
            if single is not None:
                entries = [
                    (
                        dst_path
                        if not dst_path.endswith("/")
                        else dst_path + src_path.rsplit("/", 1)[1],
                        single,
                    )
                ]
            else:
                found = list(trees.iter_entries(nodes, root, src_path))
                if not found:
                    raise FileNotFound(f"{src}: no such file or directory")
                prefix = src_path.rstrip("/")
                entries = [
                    (normalize_path(dst_path.rstrip("/") + e.path[len(prefix) :]), e) for e in found
                ]
        changes = [(p, e.hash, e.size) for p, e in entries]
        return self._record(str(Ref(d.repo, d.ref)), changes, [], message)

    # -- reading files --------------------------------------------------------------------------

    def _entry(self, ref: str) -> tuple[trees.Entry, Content]:
        r = parse_ref(ref)
        path = _file_path(r, ref)
        with self.meta.read() as conn:
            nodes, root = self._view(conn, r)
            entry = trees.get(nodes, root, path)
            if entry is None:
                raise FileNotFound(f"{ref}: no such file")
            record = self.meta.get_content(conn, entry.hash)
        return entry, Content.from_json(record.layout)

    def get_file(self, ref: str) -> bytes:
        """The bytes of ``repo@ref:/path`` (verified against their hash)."""
        _, content = self._entry(ref)
        return read_content(self.objects, content)

    def open_file(self, ref: str) -> Iterator[bytes]:
        """The bytes of a file as a stream of blocks (for large files)."""
        _, content = self._entry(ref)
        return iter_content(self.objects, content)

    def get_file_to(self, ref: str, destination: str | os.PathLike[str]) -> list[str]:
        """Write a file, or every file under a directory, to a local path; return local paths."""
        r = parse_ref(ref)
        dest = Path(destination)
        with self.meta.read() as conn:
            nodes, root = self._view(conn, Ref(r.repo, r.ref, r.ancestry))
            path = r.path or "/"
            single = trees.get(nodes, root, path) if path != "/" else None
            entries = (
                [single] if single is not None else list(trees.iter_entries(nodes, root, path))
            )
            if not entries:
                raise FileNotFound(f"{ref}: no such file or directory")
            records = self.meta.get_contents(conn, {e.hash for e in entries})
        written = []
        for e in entries:
            if single is not None:
                target = dest / Path(e.path).name if dest.is_dir() else dest
            else:
                target = dest / e.path[len(path.rstrip("/")) :].lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".headrace-part")
            with open(tmp, "wb") as f:
                for block in iter_content(self.objects, Content.from_json(records[e.hash].layout)):
                    f.write(block)
            os.replace(tmp, target)
            written.append(str(target))
        return written

    def inspect_file(self, ref: str) -> FileInfo:
        r = parse_ref(ref)
        path = r.path or "/"
        with self.meta.read() as conn:
            nodes, root = self._view(conn, Ref(r.repo, r.ref, r.ancestry))
            entry = trees.get(nodes, root, path) if path != "/" else None
            if entry is not None:
                return file_info(entry)
            count, size = trees.count_and_size(nodes, root, path)
        if not count:
            raise FileNotFound(f"{ref}: no such file or directory")
        return FileInfo(path, "dir", size)

    def list_files(
        self,
        ref: str,
        recursive: bool = False,
        start_after: str | None = None,
        limit: int | None = None,
    ) -> list[FileInfo]:
        """Files (and, unless recursive, subdirectories) under ``repo@ref:/dir``, in path order."""
        r = parse_ref(ref)
        path = r.path or "/"
        with self.meta.read() as conn:
            nodes, root = self._view(conn, Ref(r.repo, r.ref, r.ancestry))
            single = trees.get(nodes, root, path) if path != "/" else None
            if single is not None:
                return [file_info(single)]
            out: list[FileInfo] = []
            if recursive:
                for paths, hashes, sizes in trees.iter_runs(nodes, root, path, start_after, limit):
                    out.extend(file_infos(paths, hashes, sizes))
            else:
                items = trees.list(
                    nodes, root, prefix=path, start_after=start_after, limit=limit, recursive=False
                )
                for item in items:
                    if isinstance(item, trees.Entry):
                        out.append(file_info(item))
                    else:
                        _, size = trees.count_and_size(nodes, root, item.path)
                        out.append(FileInfo(item.path, "dir", size))
        if not out and path != "/" and start_after is None:
            raise FileNotFound(f"{ref}: no such file or directory")
        return out

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
        if batch < 1:
            raise ValueError(f"walk_files batch must be at least 1 file, got {batch}")
        r = parse_ref(ref)
        path = r.path if r.path not in (None, "/") else normalize_path(prefix)
        with self.meta.read() as conn:
            nodes, root = self._view(conn, Ref(r.repo, r.ref, r.ancestry))
            first = list(trees.iter_runs(nodes, root, path, None, batch))
        if not first and path != "/":
            raise FileNotFound(f"{ref}: no such file or directory")
        return self._walk(nodes, root, path, first, batch)

    def _walk(
        self, nodes: OverlayNodes, root: str, path: str, runs: list[_Run], batch: int
    ) -> Iterator[FileInfo]:
        # A page is kept as runs of the tree's own sequences, and each FileInfo is made as it
        # is consumed: no object per file lives longer than the consumer keeps it.
        while runs:
            for paths, hashes, sizes in runs:
                yield from file_infos(paths, hashes, sizes)
            if sum(len(run[0]) for run in runs) < batch:
                return
            after = runs[-1][0][-1]
            with self.meta.read() as conn:
                nodes.base = self.meta.tree_nodes(conn)
                runs = list(trees.iter_runs(nodes, root, path, after, batch))

    def glob_files(self, ref: str, pattern: str | None = None) -> list[FileInfo]:
        """Files and directories matching a glob such as ``repo@master:/**/*.csv``."""
        r = parse_ref(ref)
        pattern = pattern or r.path or "/**"
        with self.meta.read() as conn:
            nodes, root = self._view(conn, Ref(r.repo, r.ref, r.ancestry))
            return [
                file_info(e) if isinstance(e, trees.Entry) else FileInfo(e.path, "dir", 0)
                for e in trees.glob(nodes, root, pattern)
            ]

    def diff(self, new: str, old: str | None = None, prefix: str = "/") -> list[DiffEntry]:
        """What changed from ``old`` (default: ``new``'s parent) to ``new``."""
        n = parse_ref(new)
        with self.meta.read() as conn:
            nodes = OverlayNodes(self.meta.tree_nodes(conn))
            new_commit = self._resolve(conn, Ref(n.repo, n.ref, n.ancestry))
            new_root = self._root_of(conn, new_commit.id, nodes)
            if old is None:
                old_root = self._root_of(conn, new_commit.parent, nodes)
            else:
                o = parse_ref(old)
                old_id = self._resolve(conn, Ref(o.repo, o.ref, o.ancestry)).id
                old_root = self._root_of(conn, old_id, nodes)
            out = []
            for path, before, after in trees.diff(
                nodes, old_root, new_root, prefix=n.path or prefix
            ):
                kind = "added" if before is None else "deleted" if after is None else "modified"
                out.append(
                    DiffEntry(
                        path,
                        kind,
                        file_info(before) if before else None,
                        file_info(after) if after else None,
                    )
                )
        return out

    # -- maintenance ----------------------------------------------------------------------------

    def merge(self, source: str, target: str, message: str = "") -> MergeResult:
        """Merge branch ``source`` into ``target``: fast-forward or a three-way file merge."""
        return merge(self, source, target, message)

    def fsck(self, verify_objects: bool = True) -> FsckReport:
        """Check every commit, tree, content and object; report problems (changes nothing)."""
        return fsck(self, verify_objects)

    def gc(self, dry_run: bool = False, grace_seconds: float = 3600.0) -> GcReport:
        """Remove unreferenced tree nodes, contents and objects (never an open commit's)."""
        return gc(self, dry_run, grace_seconds)


_Run = tuple[Sequence[str], Sequence[str], Sequence[int]]  # paths, hashes, sizes


def _changes(staged: Iterable[Any]) -> dict[str, trees.Entry | None]:
    return {
        s.path: None if s.content_hash is None else trees.Entry(s.path, s.content_hash, s.size or 0)
        for s in staged
    }


def _file_path(r: Ref, text: str) -> str:
    if r.path is None or r.path == "/":
        raise InvalidPath(f"{text!r} names no file: write repo@branch:/path/to/file")
    return r.path


def _entries(
    changes: Iterable[tuple[str, str | None, int | None]],
) -> dict[str, trees.Entry | None]:
    """Changes as :func:`trees.apply` takes them (the last change to a path wins)."""
    return {
        path: None if digest is None else trees.Entry(path, digest, size or 0)
        for path, digest, size in changes
    }


def _content_rows(contents: Iterable[Content]) -> list[tuple[str, int, str]]:
    """Rows for :meth:`Metadata.put_contents`, one per distinct hash."""
    unique = {c.hash: c for c in contents}
    return [(c.hash, c.size, c.to_json()) for c in unique.values()]


def _local_files(top: str, rel: str = "") -> Iterator[tuple[str, str]]:
    """``(relative posix path, local path)`` of every file under ``top``, in path order, as
    ``sorted(Path(top).rglob("*"))`` orders them; symbolic links to files are followed, those
    to directories are not."""
    with os.scandir(top) as it:
        found = sorted(it, key=lambda e: e.name)
    for e in found:
        name = rel + e.name
        if e.is_dir(follow_symlinks=False):
            yield from _local_files(e.path, name + "/")
        elif e.is_file():
            yield name, e.path


def _add(writer: ContentWriter, data: Any) -> Content:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return writer.add_bytes(data)
    if isinstance(data, (str, os.PathLike)):
        try:
            return writer.add_file(data)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
            if e.filename != os.fspath(data):
                raise  # not about opening the file itself
            raise FileNotFound(f"local file {os.fspath(data)!r} does not exist") from None
    if hasattr(data, "read"):
        return writer.add_stream(data)
    raise TypeError(
        f"cannot store {type(data).__name__}: give bytes, a local path or a file object"
    )


class OpenCommit:
    """The handle given by ``with store.commit(...) as c``: buffered writes to one commit."""

    def __init__(self, store: Store, ref: Ref) -> None:
        self.store = store
        self.ref = ref
        self.writer = store.writer()
        self._changes: dict[str, Content | None] = {}
        self.info: CommitInfo | None = None

    def put_file(self, path: str, data: bytes | str | os.PathLike[str] | IO[bytes]) -> None:
        self._changes[normalize_path(path, allow_root=False)] = _add(self.writer, data)

    def put_dir(self, path: str, local_dir: str | os.PathLike[str]) -> None:
        if not os.path.isdir(local_dir):
            raise FileNotFound(f"{os.fspath(local_dir)} is not a local directory")
        for rel, local in _local_files(os.fspath(local_dir)):
            self.put_file(path.rstrip("/") + "/" + rel, local)

    def delete_file(self, path: str) -> None:
        self._changes[normalize_path(path, allow_root=False)] = None

    def write(self, path: str) -> _BufferedFile:
        """A binary file object; its bytes are stored when it is closed."""
        return _BufferedFile(self, path)


class _BufferedFile(io.BytesIO):
    def __init__(self, commit: OpenCommit, path: str) -> None:
        super().__init__()
        self._commit = commit
        self._path = path

    def close(self) -> None:
        if not self.closed:
            self._commit.put_file(self._path, self.getvalue())
        super().close()


class _CommitContext(AbstractContextManager[OpenCommit]):
    def __init__(
        self, store: Store, ref: str, message: str, origin: str, provenance: tuple[str, ...]
    ) -> None:
        r = parse_ref(ref)
        if r.is_commit or r.ancestry or r.path not in (None, "/"):
            raise InvalidReference(f"commit() needs repo@branch, got {ref!r}")
        self.store = store
        self.ref = r
        self.message = message
        self.origin = origin
        self.provenance = provenance
        self.handle: OpenCommit | None = None

    def __enter__(self) -> OpenCommit:
        with self.store.meta.read() as conn:
            self.store.meta.get_repo(conn, self.ref.repo)
        self.handle = OpenCommit(self.store, self.ref)
        return self.handle

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        handle = self.handle
        assert handle is not None
        if exc_type is not None:
            return  # nothing was recorded; written objects are unreferenced until gc
        created = handle.writer.flush()
        changes: dict[str, trees.Entry | None] = {}
        for path, content in handle._changes.items():
            if content is None:
                changes[path] = None
            else:
                final = handle.writer.resolve(content)
                created.append(final)
                changes[path] = trees.Entry(path, final.hash, final.size)
        store = self.store
        with store.meta.transaction() as conn:
            if created:
                store.meta.put_contents(conn, _content_rows(created))
            commit = store._start(conn, self.ref, self.message, self.origin, None)
            if self.provenance:
                ids = [store._resolve(conn, parse_ref(p)).id for p in self.provenance]
                store.meta.add_provenance(conn, commit.id, ids)
            handle.info = CommitInfo.of(store._finish(conn, commit, None, changes))
