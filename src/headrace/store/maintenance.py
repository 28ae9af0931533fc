"""Merging branches, checking the store (``fsck``) and collecting garbage (``gc``).

Merge: if the target branch's head is an ancestor of the source head, the target fast-forwards;
otherwise a three-way, file-level merge against their nearest common ancestor makes a new commit on
the target, or fails with :class:`~headrace.store.errors.MergeConflict` listing every path
changed differently on both sides (nothing is written then). A merge commit records its source in
the provenance table, so later merges find the right common ancestor.

gc keeps: every tree node reachable from a commit's root, every content referenced by those trees
or by an open commit's staged changes, and every object those contents use. Objects younger than
the grace period are never deleted, so a writer that stored objects but has not yet committed the
metadata that refers to them is normally left alone. The tree nodes it deletes leave the
metadata's node cache. In a local objects folder gc also removes the temporary files
(``<key>.<pid>.<thread>.tmp``) of writers killed before their rename: such a file can never become
an object. The same grace period protects a write in progress, and nothing but names of exactly
that form is touched.

gc and writers: no interleaving loses a committed object. A writer stores objects (or finds them
already stored, or finds a known content whose objects they are) and later refers to them in its
commit transaction; gc cannot see a writer between those two steps, so it must not decide and
delete in one go. The protocol, with one lock in the metadata database (on SQLite the write lock
every write transaction takes; on PostgreSQL an advisory transaction lock, exclusive for gc,
shared for writers, which do not wait for each other):

1. *list*: gc lists the objects older than the grace period (no lock).
2. *mark*: in one transaction holding the lock exclusively, gc computes what is live, deletes
   the dead content rows and tree nodes, and records the listed objects that are not live in
   the table ``gc_doomed`` (replacing what an earlier, killed gc left there).
3. *sweep*: batch by batch, in transactions holding the lock exclusively, gc deletes the doomed
   objects still recorded and removes their rows, the file deletions inside the transaction.
4. *writer*: every transaction that refers to contents (a commit, staged changes) first takes the
   lock shared, then removes every object its contents use from ``gc_doomed`` (taking them back)
   and checks that each of them exists. If one does not, a sweep deleted it after the writer had
   found it: the transaction fails with :class:`~headrace.store.errors.ObjectsCollected` and
   records nothing (the caller writes the files again).

Why it holds: a writer's transaction W runs wholly before or after a mark M and each sweep batch
S (the lock). If W is before M, its contents are live at M and their objects are not doomed.
If W is after M and before the S that would delete an object, W took the object back and S
does not delete it; if W is after that S, W sees the object missing and records nothing. An
invariant follows: every content row's objects exist and none is doomed, so a content a writer
finds in the metadata refers to objects that stay until W (or W fails loudly). The cost for a
writer is one indexed delete and one existence check per object it refers to, in its own
transaction.

fsck reads tree nodes from the database, past the node cache, so a missing node is reported even
while the cache still holds it.
"""

from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DatabaseError

from headrace.store import commits, trees
from headrace.store.content import Content, object_keys, read_content
from headrace.store.errors import Conflict, MergeConflict, ObjectNotFound, StoreError
from headrace.store.metadata import OPEN
from headrace.store.records import CommitInfo, OverlayNodes
from headrace.store.refs import parse_ref

if TYPE_CHECKING:
    from headrace.store.store import Store

__all__ = ["FsckReport", "GcReport", "MergeResult", "fsck", "gc", "merge"]


@dataclass(frozen=True)
class MergeResult:
    """``kind``: ``up-to-date``, ``fast-forward`` or ``merge``; ``commit``: the new head."""

    kind: str
    commit: CommitInfo


def _lineage(store: Store, conn: Any, commit_id: str) -> list[str]:
    """``commit_id`` and everything it descends from (parents and merge sources), nearest first."""
    seen: dict[str, None] = {}
    queue = deque([commit_id])
    while queue:
        cid = queue.popleft()
        if cid in seen:
            continue
        seen[cid] = None
        chain = [cid, *(c.id for c in store.meta.ancestors(conn, cid))]
        for c in chain:
            seen.setdefault(c, None)
            for source in store.meta.provenance(conn, c):
                if source.repo == store.meta.get_commit(conn, c).repo and source.id not in seen:
                    queue.append(source.id)
    return list(seen)


def merge(store: Store, source: str, target: str, message: str = "") -> MergeResult:
    """Merge branch ``source`` into branch ``target`` (same repo)."""
    s_ref, t_ref = parse_ref(source), parse_ref(target)
    if s_ref.repo != t_ref.repo:
        raise StoreError(f"merge works within one repo; {source} and {target} differ")
    with store.meta.transaction() as conn:
        store.meta.lock_for_gc(conn, exclusive=False)  # it refers to contents: not during gc
        src = commits.resolve(store.meta, conn, s_ref)
        if src.state == OPEN:
            raise Conflict(f"{source} has an open commit {src.id}; finish it before merging")
        branch = store.meta.get_branch(conn, t_ref.repo, t_ref.ref, for_update=True)
        head = branch.head_commit
        if head is None:
            store.meta.set_head(conn, t_ref.repo, t_ref.ref, None, src.id)
            return MergeResult("fast-forward", CommitInfo.of(src))
        dst = store.meta.get_commit(conn, head)
        if dst.id == src.id:
            return MergeResult("up-to-date", CommitInfo.of(dst))
        if dst.state == OPEN:
            raise Conflict(f"{target} has an open commit {dst.id}; finish it before merging")
        src_line = _lineage(store, conn, src.id)
        if dst.id in src_line:
            store.meta.set_head(conn, t_ref.repo, t_ref.ref, dst.id, src.id)
            return MergeResult("fast-forward", CommitInfo.of(src))
        dst_line = _lineage(store, conn, dst.id)
        if src.id in dst_line:
            return MergeResult("up-to-date", CommitInfo.of(dst))
        in_src = set(src_line)
        base_id = next((c for c in dst_line if c in in_src), None)
        nodes = OverlayNodes(store.meta.tree_nodes(conn))
        base_root = commits.root_of(store.meta, conn, base_id, nodes)
        theirs = {
            p: new for p, _, new in trees.diff(nodes, base_root, src.root_tree or trees.EMPTY_ROOT)
        }
        ours = {
            p: new for p, _, new in trees.diff(nodes, base_root, dst.root_tree or trees.EMPTY_ROOT)
        }
        conflicts = sorted(p for p in theirs.keys() & ours.keys() if theirs[p] != ours[p])
        if conflicts:
            shown = ", ".join(conflicts[:10]) + (" ..." if len(conflicts) > 10 else "")
            raise MergeConflict(
                f"merging {source} into {target}: {len(conflicts)} path(s) changed on both "
                f"sides: {shown}; resolve them on one branch and merge again",
                conflicts,
            )
        changes = [
            (p, e.hash if e else None, e.size if e else None)
            for p, e in theirs.items()
            if p not in ours
        ]
        text = message or f"merge {source} into {target}"
        commit = commits.start(store.meta, conn, t_ref, text, "USER", None)
        store.meta.stage_changes(conn, commit.id, changes)
        store.meta.add_provenance(conn, commit.id, [src.id])
        finished = commits.finish(store.meta, conn, commit, None)
        return MergeResult("merge", CommitInfo.of(finished))


@dataclass
class FsckReport:
    """What ``fsck`` checked and every problem found (empty when the store is sound)."""

    commits: int = 0
    trees: int = 0
    contents: int = 0
    objects: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def fsck(store: Store, verify_objects: bool = True) -> FsckReport:
    """Check every reference: commits → tree nodes → contents → objects (and their hashes)."""
    report = FsckReport()
    meta = store.meta
    report.problems += [f"metadata database: {p}" for p in meta.integrity_problems()]
    try:
        _check_references(store, report, verify_objects)
    except DatabaseError as e:  # a damaged page the integrity check did not name
        report.problems.append(f"metadata database: reading it failed: {e.orig}")
    return report


def _check_references(store: Store, report: FsckReport, verify_objects: bool) -> None:
    meta = store.meta
    # content hash -> {path: where it is (the first commit seen with it at that path)}
    content_hashes: dict[str, dict[str, str]] = {}
    with meta.read() as conn:
        nodes = meta.tree_nodes(conn, cached=False)  # what the database holds, not the cache
        seen_roots: set[str] = set()
        for repo in meta.list_repos(conn):
            for commit in meta.list_commits(conn, repo.name):
                report.commits += 1
                where = f"commit {commit.id} of {repo.name}"
                if commit.state == OPEN:
                    for s in meta.staged_changes(conn, commit.id):
                        if s.content_hash is not None:
                            content_hashes.setdefault(s.content_hash, {}).setdefault(
                                s.path, f"{where}:{s.path} (staged)"
                            )
                    continue
                root = commit.root_tree or trees.EMPTY_ROOT
                if root in seen_roots:
                    continue
                seen_roots.add(root)
                report.trees += 1
                try:
                    for entry in trees.iter_entries(nodes, root, "/"):
                        content_hashes.setdefault(entry.hash, {}).setdefault(
                            entry.path, f"{where}:{entry.path}"
                        )
                except DatabaseError as e:
                    report.problems.append(
                        f"{where}: its file tree cannot be read from the database: "
                        f"{str(e.orig).splitlines()[0]}"
                    )
                except Exception as e:
                    report.problems.append(f"{where}: its file tree cannot be read: {e}")
        records = meta.get_contents(conn, content_hashes)
    users: dict[str, list[Content]] = {}  # object key -> the contents that use it
    for digest, places in content_hashes.items():
        report.contents += 1
        record = records.get(digest)
        if record is None:
            for where in places.values():
                report.problems.append(f"{where}: content {digest} is not recorded in the metadata")
            continue
        content = Content.from_json(record.layout)
        for key in object_keys(content):
            users.setdefault(key, []).append(content)
    for key, contents in users.items():
        report.objects += 1
        good = store.objects.verify(key) if verify_objects else store.objects.exists(key)
        if good:
            continue
        missing = not store.objects.exists(key)
        state = "missing" if missing else "corrupt (hash mismatch)"
        for content in contents:
            # A pack holds many files: a file whose own slice still reads back whole is intact.
            if not missing and _intact(store, content):
                continue
            for where in content_hashes[content.hash].values():
                report.problems.append(
                    f"{where}: object {key} is {state} at {store.objects.location(key)}"
                )


def _intact(store: Store, content: Content) -> bool:
    """Whether ``content`` reads back whole, its bytes matching its hash."""
    try:
        read_content(store.objects, content)
    except StoreError:
        return False
    return True


@dataclass
class GcReport:
    """What ``gc`` deleted (with ``dry_run``: would delete).

    ``bytes_freed`` counts objects; ``temp_bytes_freed`` counts the leftover temporary files of
    killed writers (``temp_files_removed``), which never were objects.
    """

    objects_deleted: int = 0
    bytes_freed: int = 0
    contents_deleted: int = 0
    nodes_deleted: int = 0
    dry_run: bool = False
    temp_files_removed: int = 0
    temp_bytes_freed: int = 0


# Called with the name of each step gc finished ("listed", "marked", "swept") when set: tests
# use it to run a writer at every point between gc's steps.
_step_hook: Callable[[str], None] | None = None


def _step(name: str) -> None:
    if _step_hook is not None:
        _step_hook(name)


def gc(
    store: Store, dry_run: bool = False, grace_seconds: float = 3600.0, batch: int = 1000
) -> GcReport:
    """Delete what nothing references (see the module docstring for what is kept and how a
    concurrent writer is protected)."""
    meta = store.meta
    report = GcReport(dry_run=dry_run)
    cutoff = time.time() - grace_seconds
    # 1. list: only objects stored before the marking can be doomed by it.
    stored = list(store.objects.keys())
    old = [key for key in stored if _older_than(store, key, cutoff)]
    _step("listed")
    # 2. mark, excluding writers: what no tree, staged change or content row uses is doomed.
    with meta.transaction() as conn:
        meta.lock_for_gc(conn, exclusive=True)
        nodes = meta.tree_nodes(conn)
        live_nodes: set[str] = set()
        live_contents: set[str] = set(meta.staged_content_hashes(conn))
        for root in meta.root_trees(conn):
            for key in trees.reachable_nodes(nodes, root):
                live_nodes.add(key)
            live_contents.update(e.hash for e in trees.iter_entries(nodes, root, "/"))
        dead_nodes = meta.all_tree_node_keys(conn) - live_nodes
        all_contents = meta.all_content_hashes(conn)
        records = meta.get_contents(conn, all_contents)
        live_objects: set[str] = set()
        dead_contents = []
        for digest, record in records.items():
            keys = object_keys(Content.from_json(record.layout))
            if digest in live_contents:
                live_objects |= keys
            else:
                dead_contents.append(digest)
        doomed = [key for key in old if key not in live_objects]
        if not dry_run:
            report.nodes_deleted = meta.delete_tree_nodes(conn, dead_nodes)
            report.contents_deleted = meta.delete_contents(conn, dead_contents)
            meta.doom_objects(conn, doomed)
        else:
            report.nodes_deleted, report.contents_deleted = len(dead_nodes), len(dead_contents)
    if not dry_run:
        # delete_tree_nodes evicted them; a reader of an older snapshot may have cached one
        # again before this transaction committed.
        meta.node_cache.discard(dead_nodes)
    _step("marked")
    # 3. sweep, excluding writers batch by batch: delete the doomed objects no writer took back.
    if dry_run:
        for key in doomed:
            report.objects_deleted += 1
            report.bytes_freed += _size(store, key)
    else:
        while True:
            with meta.transaction() as conn:
                meta.lock_for_gc(conn, exclusive=True)
                sweep = meta.doomed_objects(conn, batch)
                for key in sweep:
                    size = _size(store, key)
                    if store.objects.delete(key):
                        report.objects_deleted += 1
                        report.bytes_freed += size
                meta.forget_doomed(conn, sweep)
            if len(sweep) < batch:
                break
    _step("swept")
    for path, size in _stale_temp_files(store, cutoff):
        if not dry_run:
            try:
                os.unlink(path)
            except FileNotFoundError:  # its writer renamed it after all, or another gc won
                continue
        report.temp_files_removed += 1
        report.temp_bytes_freed += size
    return report


def _size(store: Store, key: str) -> int:
    try:
        return store.objects.size(key)
    except ObjectNotFound:
        return 0


# What ObjectStore._put_local writes before renaming: <root>/<kk>/<rest of key>.<pid>.<thread>.tmp
_TEMP_NAME = re.compile(r"^[0-9a-f]{62}\.[0-9]+\.[0-9]+\.tmp$")
_PREFIX = re.compile(r"^[0-9a-f]{2}$")


def _stale_temp_files(store: Store, cutoff: float) -> list[tuple[str, int]]:
    """``(path, size)`` of each temporary object file last written before ``cutoff``.

    Local objects folders only; a file still being written has a recent modification time.
    """
    objects = store.objects
    if not objects._local:
        return []
    try:
        prefixes = sorted(os.listdir(objects._root))
    except FileNotFoundError:
        return []
    found = []
    for prefix in prefixes:
        if not _PREFIX.match(prefix):
            continue
        try:
            entries = list(os.scandir(os.path.join(objects._root, prefix)))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if not _TEMP_NAME.match(entry.name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:  # renamed or removed since the listing
                continue
            if entry.is_file(follow_symlinks=False) and st.st_mtime < cutoff:
                found.append((entry.path, st.st_size))
    return found


def _older_than(store: Store, key: str, cutoff: float) -> bool:
    location = store.objects.location(key)
    try:
        if "://" not in location:
            return os.stat(location).st_mtime < cutoff
        info = store.objects._fs.info(location)
    except FileNotFoundError:
        return False
    mtime = info.get("mtime") or info.get("LastModified") or info.get("created")
    if mtime is None:
        return True
    stamp = mtime.timestamp() if hasattr(mtime, "timestamp") else float(mtime)
    return stamp < cutoff
