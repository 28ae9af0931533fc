"""Reading commits: files, listings, globs and diffs, and file bytes written to local paths.

Each function resolves its reference in a read transaction of its own and sees the commit it
names as it is then: a finished commit's tree, or an open commit's base plus its staged
changes (see :func:`headrace.store.commits.view`). Tree nodes come through the metadata's
shared node cache and a listing fetches the leaves it needs together. Bytes are read from the
object store after the transaction, verified against their hash.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from headrace.store import commits, trees
from headrace.store.content import Content, iter_content
from headrace.store.errors import FileNotFound, ObjectNotFound
from headrace.store.metadata import Metadata
from headrace.store.objects import ObjectStore
from headrace.store.records import DiffEntry, FileInfo, OverlayNodes, file_info, file_infos
from headrace.store.refs import Ref, file_path, normalize_path, parse_ref

__all__ = [
    "diff",
    "file_content",
    "get_file_to",
    "glob_files",
    "inspect_file",
    "list_files",
    "lookup_contents",
    "lookup_files",
    "walk_files",
    "write_contents",
]

_Run = tuple[Sequence[str], Sequence[str], Sequence[int]]  # paths, hashes, sizes


def lookup_contents(meta: Metadata, digests: Collection[str]) -> dict[str, Content]:
    """The known Contents among ``digests``: one read, one query per batch of keys."""
    with meta.read() as conn:
        found = meta.get_contents(conn, digests)
    return {digest: Content.from_json(r.layout) for digest, r in found.items()}


def file_content(meta: Metadata, ref: str) -> Content:
    """The stored Content (layout) of the file ``repo@ref:/path``."""
    r = parse_ref(ref)
    path = file_path(r, ref)
    with meta.read() as conn:
        nodes, root = commits.view(meta, conn, r)
        entry = trees.get(nodes, root, path)
        if entry is None:
            raise FileNotFound(f"{ref}: no such file")
        record = meta.get_content(conn, entry.hash)
    return Content.from_json(record.layout)


def _write_local(objects: ObjectStore, content: Content, target: Path) -> int:
    """Write ``content`` to ``target`` (parents created) through a temporary name; bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".headrace-part")
    total = 0
    try:
        with open(tmp, "wb") as f:
            for block in iter_content(objects, content):
                f.write(block)
                total += len(block)
        os.replace(tmp, target)
    except BaseException:  # a damaged or missing object, a full disk: leave no partial file
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return total


def get_file_to(
    meta: Metadata, objects: ObjectStore, ref: str, destination: str | os.PathLike[str]
) -> list[str]:
    """Write a file, or every file under a directory, to a local path; return local paths."""
    r = parse_ref(ref)
    dest = Path(destination)
    with meta.read() as conn:
        nodes, root = commits.view(meta, conn, Ref(r.repo, r.ref, r.ancestry))
        path = r.path or "/"
        single = trees.get(nodes, root, path) if path != "/" else None
        entries = [single] if single is not None else list(trees.iter_entries(nodes, root, path))
        if not entries:
            raise FileNotFound(f"{ref}: no such file or directory")
        records = meta.get_contents(conn, {e.hash for e in entries})
    lost = [e for e in entries if e.hash not in records]
    if lost:
        shown = ", ".join(f"{e.path} (content {e.hash})" for e in lost[:5])
        more = f" and {len(lost) - 5} more" if len(lost) > 5 else ""
        raise ObjectNotFound(
            f"{ref}: the metadata has no record of the content of {shown}{more}; the store is "
            "damaged: run fsck"
        )
    written = []
    for e in entries:
        if single is not None:
            target = dest / Path(e.path).name if dest.is_dir() else dest
        else:
            target = dest / e.path[len(path.rstrip("/")) :].lstrip("/")
        _write_local(objects, Content.from_json(records[e.hash].layout), target)
        written.append(str(target))
    return written


def write_contents(
    meta: Metadata,
    objects: ObjectStore,
    items: Iterable[tuple[str, str | os.PathLike[str]]],
    known: Mapping[str, Content] | None = None,
) -> int:
    """Write files by content hash; see ``Store.write_contents``."""
    pairs = list(items)
    given = known or {}
    missing = {h for h, _ in pairs if h not in given}
    known = {**given, **lookup_contents(meta, missing)} if missing else given
    total = 0
    for digest, local in pairs:
        content = known.get(digest)
        if content is None:
            raise FileNotFound(f"content {digest} is not in the store (removed by gc?)")
        total += _write_local(objects, content, Path(local))
    return total


def lookup_files(meta: Metadata, ref: str, paths: Iterable[str]) -> dict[str, FileInfo]:
    """The files among ``paths`` that exist in the commit ``ref`` names, in one read."""
    r = parse_ref(ref)
    with meta.read() as conn:
        nodes, root = commits.view(meta, conn, Ref(r.repo, r.ref, r.ancestry))
        out: dict[str, FileInfo] = {}
        for path in paths:
            entry = trees.get(nodes, root, normalize_path(path, allow_root=False))
            if entry is not None:
                out[path] = file_info(entry)
        return out


def inspect_file(meta: Metadata, ref: str) -> FileInfo:
    """A file, or a directory with its total size; see ``Store.inspect_file``."""
    r = parse_ref(ref)
    path = r.path or "/"
    with meta.read() as conn:
        nodes, root = commits.view(meta, conn, Ref(r.repo, r.ref, r.ancestry))
        entry = trees.get(nodes, root, path) if path != "/" else None
        if entry is not None:
            return file_info(entry)
        count, size = trees.count_and_size(nodes, root, path)
    if not count:
        raise FileNotFound(f"{ref}: no such file or directory")
    return FileInfo(path, "dir", size)


def list_files(
    meta: Metadata, ref: str, recursive: bool, start_after: str | None, limit: int | None
) -> list[FileInfo]:
    """One page of a listing; see ``Store.list_files``."""
    r = parse_ref(ref)
    path = r.path or "/"
    with meta.read() as conn:
        nodes, root = commits.view(meta, conn, Ref(r.repo, r.ref, r.ancestry))
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


def walk_files(meta: Metadata, ref: str, prefix: str, batch: int) -> Iterator[FileInfo]:
    """A streamed listing; see ``Store.walk_files``. The reference is resolved, and a missing
    directory reported, now; the files are read as the iterator is consumed."""
    if batch < 1:
        raise ValueError(f"walk_files batch must be at least 1 file, got {batch}")
    r = parse_ref(ref)
    path = r.path if r.path not in (None, "/") else normalize_path(prefix)
    with meta.read() as conn:
        nodes, root = commits.view(meta, conn, Ref(r.repo, r.ref, r.ancestry))
        first = list(trees.iter_runs(nodes, root, path, None, batch))
    if not first and path != "/":
        raise FileNotFound(f"{ref}: no such file or directory")
    return _walk(meta, nodes, root, path, first, batch)


def _walk(
    meta: Metadata, nodes: OverlayNodes, root: str, path: str, runs: list[_Run], batch: int
) -> Iterator[FileInfo]:
    # A page is kept as runs of the tree's own sequences, and each FileInfo is made as it
    # is consumed: no object per file lives longer than the consumer keeps it.
    while runs:
        for paths, hashes, sizes in runs:
            yield from file_infos(paths, hashes, sizes)
        if sum(len(run[0]) for run in runs) < batch:
            return
        after = runs[-1][0][-1]
        with meta.read() as conn:
            nodes.base = meta.tree_nodes(conn)
            runs = list(trees.iter_runs(nodes, root, path, after, batch))


def glob_files(meta: Metadata, ref: str, pattern: str | None) -> list[FileInfo]:
    """Files and directories matching a glob; see ``Store.glob_files``."""
    r = parse_ref(ref)
    pattern = pattern or r.path or "/**"
    with meta.read() as conn:
        nodes, root = commits.view(meta, conn, Ref(r.repo, r.ref, r.ancestry))
        return [
            file_info(e) if isinstance(e, trees.Entry) else FileInfo(e.path, "dir", 0)
            for e in trees.glob(nodes, root, pattern)
        ]


def diff(meta: Metadata, new: str, old: str | None, prefix: str) -> list[DiffEntry]:
    """What changed from ``old`` (default: ``new``'s parent) to ``new``."""
    n = parse_ref(new)
    with meta.read() as conn:
        nodes = OverlayNodes(meta.tree_nodes(conn))
        new_commit = commits.resolve(meta, conn, Ref(n.repo, n.ref, n.ancestry))
        new_root = commits.root_of(meta, conn, new_commit.id, nodes)
        if old is None:
            old_root = commits.root_of(meta, conn, new_commit.parent, nodes)
        else:
            o = parse_ref(old)
            old_id = commits.resolve(meta, conn, Ref(o.repo, o.ref, o.ancestry)).id
            old_root = commits.root_of(meta, conn, old_id, nodes)
        out = []
        for path, before, after in trees.diff(nodes, old_root, new_root, prefix=n.path or prefix):
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
