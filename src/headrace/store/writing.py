"""Writing files into commits: data made into Contents, and Contents recorded as changes.

A write has two steps, in this order. First the bytes become objects (:func:`add_data` through
a :class:`~headrace.store.content.ContentWriter`, then its ``flush``); then one metadata
transaction records the Contents and the changes (:func:`record`, :func:`record_files`,
:func:`stage_files`). A crash between the two leaves only unreferenced objects, which gc
removes. A change goes to the open commit of the branch (staged there, seen when it finishes),
or, when the branch has none, to a one-shot commit started and finished in that transaction.

:class:`OpenCommit` is the handle of ``with store.commit(...) as c``: it buffers changes in
memory and :class:`CommitContext` records them all, with the commit, when the block ends
without an error (nothing at all when it fails).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import IO, TYPE_CHECKING, Any

from headrace.store import commits, trees
from headrace.store.content import Content, ContentWriter, object_keys
from headrace.store.errors import FileNotFound, InvalidPath, InvalidReference, ObjectsCollected
from headrace.store.metadata import Metadata
from headrace.store.objects import ObjectStore
from headrace.store.records import CommitInfo
from headrace.store.refs import Ref, file_path, normalize_path, parse_ref

if TYPE_CHECKING:
    from headrace.store.store import Store

__all__ = [
    "CommitContext",
    "OpenCommit",
    "add_data",
    "content_rows",
    "copy_files",
    "delete_files",
    "local_files",
    "record",
    "record_files",
    "stage_files",
    "take_back",
]


def add_data(writer: ContentWriter, data: Any) -> Content:
    """Give ``data`` (bytes, a local path or a binary file object) to ``writer``."""
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


def local_files(
    top: str,
    rel: str = "",
    *,
    follow_links: bool = False,
    within: str | None = None,
    link_roots: Mapping[str, str] | None = None,
) -> Iterator[tuple[str, str]]:
    """``(relative posix path, local path)`` of every file under ``top``, in path order, as
    ``sorted(Path(top).rglob("*"))`` orders them.

    A symbolic link under ``top`` is refused (:class:`InvalidPath`, naming it): storing a
    folder never reads through a link by default, so a link to ``/etc/passwd`` left in an
    output folder cannot put that file's bytes in a commit. With ``follow_links``, a link whose
    target lies inside ``top`` is followed (a file is read, a folder walked; the local path
    given is the target's) and one leading outside is still refused. Anything but files,
    folders and links (a FIFO, a socket, a device) is refused too. ``top`` itself may be a
    link: the caller named it.

    ``within`` widens where followed links may lead (a stage's datum sandbox, so an output may
    link to an input file as Pachyderm users do); ``link_roots`` maps absolute link prefixes
    to local folders (``/pfs/out`` -> the sandbox's output folder), for links a transform made
    inside its own view of the file system.
    """
    root = os.path.realpath(within if within is not None else top)
    roots = {k.rstrip("/"): v for k, v in (link_roots or {}).items()}
    yield from _walk(top, rel, root, follow_links, (os.path.realpath(top),), roots)


def _link_target(path: str, roots: Mapping[str, str]) -> str:
    raw = os.readlink(path)
    for prefix, local in roots.items():
        if raw == prefix or raw.startswith(prefix + "/"):
            return os.path.realpath(local + raw[len(prefix) :])
    return os.path.realpath(path)


def _walk(
    folder: str,
    rel: str,
    root: str,
    follow: bool,
    active: tuple[str, ...],
    roots: Mapping[str, str],
) -> Iterator[tuple[str, str]]:
    with os.scandir(folder) as it:
        found = sorted(it, key=lambda e: e.name)
    for e in found:
        name = rel + e.name
        if e.is_symlink():
            target = _link_target(e.path, roots)
            shown = f"{e.path} is a symbolic link to {os.readlink(e.path)}"
            if not follow:
                raise InvalidPath(
                    f"{shown}: headrace does not follow links when storing a folder; replace "
                    "the link with the file it names, or follow links that stay inside the "
                    "folder (--follow-links, follow_links=True)"
                )
            if os.path.commonpath([root, target]) != root:
                raise InvalidPath(
                    f"{shown}, outside the folder being stored ({root}); only links inside "
                    "it are followed"
                )
            if os.path.isdir(target):
                if target in active:
                    raise InvalidPath(f"{shown}, a folder that contains the link (a cycle)")
                yield from _walk(target, name + "/", root, follow, (*active, target), roots)
            elif os.path.isfile(target):
                yield name, target
            else:
                raise InvalidPath(f"{shown}, which does not exist or is not a file or folder")
        elif e.is_dir(follow_symlinks=False):
            inner = (*active, os.path.realpath(e.path))
            yield from _walk(e.path, name + "/", root, follow, inner, roots)
        elif e.is_file(follow_symlinks=False):
            yield name, e.path
        else:
            raise InvalidPath(
                f"{e.path} is not a regular file, folder or link (a FIFO, socket or device); "
                "remove it from the folder before storing it"
            )


def take_back(meta: Metadata, objects: ObjectStore, conn: Any, contents: Iterable[Content]) -> None:
    """The writer's step of the gc protocol (:mod:`headrace.store.maintenance`), first in a
    transaction that refers to ``contents``: take the gc lock shared, take their objects back
    from a running gc, and check they exist (:class:`ObjectsCollected` if a gc deleted one).
    Objects this process wrote are made durable first (normally done by the writer's flush)."""
    objects.sync()
    meta.lock_for_gc(conn, exclusive=False)
    keys: set[str] = set()
    for content in contents:
        keys.update(object_keys(content))
    if not keys:
        return
    meta.forget_doomed(conn, keys)
    missing = sorted(key for key in keys if not objects.exists(key))
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ObjectsCollected(
            f"a gc that ran during this write deleted {len(missing)} object(s) it uses "
            f"({shown}); nothing was recorded: write the files again"
        )


def content_rows(contents: Iterable[Content]) -> list[tuple[str, int, str]]:
    """Rows for :meth:`Metadata.put_contents`, one per distinct hash."""
    unique = {c.hash: c for c in contents}
    return [(c.hash, c.size, c.to_json()) for c in unique.values()]


def record(
    meta: Metadata,
    objects: ObjectStore,
    ref: str,
    changes: Sequence[tuple[str, str | None, int | None]],
    contents: list[Content],
    message: str = "",
    reused: Collection[str] = (),
) -> CommitInfo:
    """Stage ``changes`` on the open commit of ``ref``'s branch, or make a one-shot commit.

    ``contents`` are recorded again even when known: a concurrent ``gc`` may have dropped the
    row of a content this writer found and reused. ``reused``: hashes of contents the changes
    copy from commits read earlier; their rows are read again in the transaction (a concurrent
    gc may have collected them, if those commits were deleted meanwhile)."""
    r = parse_ref(ref)
    with meta.transaction() as conn:
        meta.lock_for_gc(conn, exclusive=False)  # before reading rows a gc may be deleting
        if reused:
            found = meta.get_contents(conn, reused)
            if len(found) < len(reused):
                lost = sorted(set(reused) - found.keys())
                raise ObjectsCollected(
                    f"the contents {', '.join(lost[:5])} copied to {ref} were deleted by a gc "
                    "meanwhile (their commits were deleted); nothing was recorded"
                )
            contents = [*contents, *(Content.from_json(c.layout) for c in found.values())]
        take_back(meta, objects, conn, contents)
        if contents:
            meta.put_contents(conn, content_rows(contents))
        target, one_shot = commits.write_target(meta, conn, r, message)
        if one_shot:  # a new commit: build its tree from the changes, staging nothing
            target = commits.finish(meta, conn, target, None, _entries(changes))
        else:
            meta.stage_changes(conn, target.id, changes)
        return CommitInfo.of(target)


def record_files(
    meta: Metadata,
    objects: ObjectStore,
    ref: str,
    files: Iterable[tuple[str, Content]],
    message: str,
    provenance: Iterable[str],
) -> CommitInfo:
    """One finished commit on branch ``ref`` holding ``files``; see ``Store.record_files``."""
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
    rows = content_rows(staged.values())  # refuses pending ones
    with meta.transaction() as conn:
        take_back(meta, objects, conn, staged.values())
        if rows:
            meta.put_contents(conn, rows)
        commit = commits.start(meta, conn, Ref(r.repo, r.ref), message, "USER", None)
        commits.add_provenance(meta, conn, commit.id, provenance)
        changes = {p: trees.Entry(p, c.hash, c.size) for p, c in staged.items()}
        return CommitInfo.of(commits.finish(meta, conn, commit, None, changes))


def stage_files(
    meta: Metadata,
    objects: ObjectStore,
    commit: str,
    files: Iterable[tuple[str, Content | None]],
    also: Callable[[Any], None] | None,
) -> None:
    """Stage changes on the open commit ``repo@<id>``; see ``Store.stage_files``."""
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
    rows = content_rows(contents)
    with meta.transaction() as conn:
        take_back(meta, objects, conn, contents)
        if rows:
            meta.put_contents(conn, rows)
        target = meta.get_commit(conn, r.ref, repo=r.repo)
        if changes:
            meta.stage_changes(conn, target.id, changes)
        if also is not None:
            also(conn)


def delete_files(meta: Metadata, objects: ObjectStore, ref: str, message: str) -> CommitInfo:
    """Delete a file, or every file under a directory; see ``Store.delete_file``."""
    r = parse_ref(ref)
    path = file_path(r, ref)
    with meta.read() as conn:
        nodes, base = commits.view(meta, conn, Ref(r.repo, r.ref, r.ancestry))
        if trees.get(nodes, base, path) is not None:
            paths = [path]
        else:
            paths = [e.path for e in trees.iter_entries(nodes, base, path)]
    if not paths:
        raise FileNotFound(f"{ref}: no such file or directory")
    changes = [(p, None, None) for p in paths]
    return record(meta, objects, str(Ref(r.repo, r.ref)), changes, [], message)


def copy_files(
    meta: Metadata, objects: ObjectStore, src: str, dst: str, message: str
) -> CommitInfo:
    """Copy a file or directory without copying bytes; see ``Store.copy_file``."""
    s = parse_ref(src)
    d = parse_ref(dst)
    src_path = s.path or "/"
    dst_path = normalize_path(d.path or src_path)
    with meta.read() as conn:
        nodes, root = commits.view(meta, conn, Ref(s.repo, s.ref, s.ancestry))
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
    reused = {e.hash for _, e in entries}
    return record(meta, objects, str(Ref(d.repo, d.ref)), changes, [], message, reused)


def _entries(
    changes: Iterable[tuple[str, str | None, int | None]],
) -> dict[str, trees.Entry | None]:
    """Changes as :func:`trees.apply` takes them (the last change to a path wins)."""
    return {
        path: None if digest is None else trees.Entry(path, digest, size or 0)
        for path, digest, size in changes
    }


class OpenCommit:
    """The handle given by ``with store.commit(...) as c``: buffered writes to one commit."""

    def __init__(self, store: Store, ref: Ref) -> None:
        self.store = store
        self.ref = ref
        self.writer = store.writer()
        self._changes: dict[str, Content | None] = {}
        self.info: CommitInfo | None = None

    def put_file(self, path: str, data: bytes | str | os.PathLike[str] | IO[bytes]) -> None:
        self._changes[normalize_path(path, allow_root=False)] = add_data(self.writer, data)

    def put_dir(
        self, path: str, local_dir: str | os.PathLike[str], *, follow_links: bool = False
    ) -> None:
        if not os.path.isdir(local_dir):
            raise FileNotFound(f"{os.fspath(local_dir)} is not a local directory")
        for rel, local in local_files(os.fspath(local_dir), follow_links=follow_links):
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


class CommitContext(AbstractContextManager[OpenCommit]):
    """What ``store.commit(...)`` returns: records the block's writes as one commit."""

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
        meta = self.store.meta
        with meta.transaction() as conn:
            take_back(meta, self.store.objects, conn, created)
            if created:
                meta.put_contents(conn, content_rows(created))
            commit = commits.start(meta, conn, self.ref, self.message, self.origin, None)
            commits.add_provenance(meta, conn, commit.id, self.provenance)
            handle.info = CommitInfo.of(commits.finish(meta, conn, commit, None, changes))
