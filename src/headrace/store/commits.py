"""A commit's life in the metadata: references resolved to commits, commits started and finished.

Every function here works inside a transaction (or read) its caller opened, given as ``conn``,
so that a layer above can do several of them, and its own changes, atomically.

States: :func:`start` inserts a commit ``OPEN`` on a branch and makes it the branch head; a
branch holds at most one open commit (starting a second is a :class:`Conflict`). While open, a
commit has its parent's tree as its base plus the changes staged on it
(``Metadata.stage_changes``); :func:`root_of` and :func:`view` show that, building the changed
nodes in memory only. :func:`finish` moves it ``OPEN -> FINISHED``: it builds the commit's tree
from its staged changes (or from changes handed in, for a commit started in the same
transaction, which has nothing staged) and records root, size and file count. A finished commit
never changes again; deleting a commit is ``Metadata.delete_commit``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from headrace.store import trees
from headrace.store.errors import (
    BranchExists,
    BranchNotFound,
    CommitFinished,
    CommitNotFound,
    Conflict,
    InvalidReference,
)
from headrace.store.metadata import OPEN, CommitRecord, Metadata
from headrace.store.records import OverlayNodes
from headrace.store.refs import Ref, parse_ref, validate_name

__all__ = ["add_provenance", "finish", "resolve", "root_of", "start", "view", "write_target"]


def resolve(meta: Metadata, conn: Any, r: Ref) -> CommitRecord:
    """The commit a reference names (after ``^N`` ancestry)."""
    if r.is_commit:
        commit = meta.get_commit(conn, r.ref, repo=r.repo)
    else:
        head = meta.branch_head(conn, r.repo, r.ref)
        if head is None:  # say why
            try:  # (RepoNotFound if the repo does not exist)
                meta.get_branch(conn, r.repo, r.ref)
            except BranchNotFound:
                nth = _NTH.fullmatch(r.ref)
                if nth is not None and meta.branch_head(conn, r.repo, nth.group(1)) is not None:
                    return _nth_commit(meta, conn, r, nth.group(1), int(nth.group(2)))
                raise BranchNotFound(
                    f"branch {r.repo}@{r.ref} does not exist yet; a branch is created by "
                    "its first commit (or headrace branch create)"
                ) from None
            raise CommitNotFound(f"branch {r.repo}@{r.ref} has no commits yet")
        commit = head
    if r.ancestry:
        chain = meta.ancestors(conn, commit.id, r.ancestry)
        if len(chain) < r.ancestry:
            raise CommitNotFound(
                f"{r} goes back {r.ancestry} commits but {commit.id} has only "
                f"{len(chain)} ancestors"
            )
        commit = chain[-1]
    return commit


_NTH = re.compile(r"(.+)\.(\d+)")


def _nth_commit(meta: Metadata, conn: Any, r: Ref, branch: str, n: int) -> CommitRecord:
    """``branch.N``: the N-th commit of the branch counting from its first (Pachyderm's
    ancestry syntax), then ``r``'s ``^`` ancestry."""
    head = meta.branch_head(conn, r.repo, branch)
    assert head is not None
    lineage = [head, *meta.ancestors(conn, head.id)][::-1]
    if not 1 <= n <= len(lineage):
        raise CommitNotFound(
            f"{r.repo}@{branch}.{n}: the branch has {len(lineage)} commits (count from 1)"
        )
    return resolve(meta, conn, Ref(r.repo, lineage[n - 1].id, r.ancestry, r.path))


def add_provenance(meta: Metadata, conn: Any, commit_id: str, sources: Iterable[str]) -> None:
    """Record that ``commit_id`` was made from the commits ``sources`` (references) name."""
    ids = [resolve(meta, conn, parse_ref(s)).id for s in sources]
    meta.add_provenance(conn, commit_id, ids)


def start(
    meta: Metadata, conn: Any, r: Ref, message: str, origin: str, parent: str | None
) -> CommitRecord:
    """Open a commit on branch ``r`` (creating the branch if needed) and make it the head.

    Its parent is the branch head, or the commit the reference ``parent`` names."""
    if r.is_commit or r.ancestry:
        raise InvalidReference(f"commits are started on a branch; {r} is not a branch")
    meta.get_repo(conn, r.repo)
    try:
        branch = meta.get_branch(conn, r.repo, r.ref, for_update=True)
    except BranchNotFound:
        validate_name(r.ref, "branch")
        try:
            branch = meta.create_branch(conn, r.repo, r.ref)
        except BranchExists:
            # Another writer made the branch after we looked; its row is committed, so lock it
            # and go on as if it had been there (a first write racing a first write).
            branch = meta.get_branch(conn, r.repo, r.ref, for_update=True)
    head = branch.head_commit
    if head is not None:
        current = meta.get_commit(conn, head)
        if current.state == OPEN:
            raise Conflict(
                f"{r.repo}@{r.ref} already has an open commit {head}; finish it "
                "(headrace commit finish) or delete it before starting another"
            )
    parent_id = head if parent is None else resolve(meta, conn, parse_ref(parent)).id
    if parent_id is None:
        root = trees.EMPTY_ROOT
    else:
        parent_commit = meta.get_commit(conn, parent_id)
        if parent_commit.state == OPEN:
            raise Conflict(f"parent commit {parent_id} is open; finish it first")
        root = parent_commit.root_tree or trees.EMPTY_ROOT
    commit = meta.insert_commit(
        conn, r.repo, branch=r.ref, parent=parent_id, origin=origin, message=message,
        root_tree=root,
    )  # fmt: skip
    meta.set_head(conn, r.repo, r.ref, head, commit.id)
    return commit


def write_target(meta: Metadata, conn: Any, r: Ref, message: str) -> tuple[CommitRecord, bool]:
    """The commit a write to ``r`` goes to, and whether it was started here (a one-shot commit
    for the caller to finish): the open commit ``r`` names, the branch's open head, or else a
    new commit on the branch."""
    if r.is_commit:
        commit = meta.get_commit(conn, r.ref, repo=r.repo)
        if commit.state != OPEN:
            raise CommitFinished(f"commit {commit.id} is finished; finished commits are immutable")
        return commit, False
    try:
        branch = meta.get_branch(conn, r.repo, r.ref, for_update=True)
        if branch.head_commit is not None:
            head = meta.get_commit(conn, branch.head_commit)
            if head.state == OPEN:
                return head, False
    except BranchNotFound:
        pass
    return start(meta, conn, Ref(r.repo, r.ref), message, "USER", None), True


def finish(
    meta: Metadata,
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
        staged = meta.staged_changes(conn, commit.id)
        changes = _staged_entries(staged) if staged else {}
    nodes = meta.tree_nodes(conn)
    root = commit.root_tree or trees.EMPTY_ROOT
    if changes:
        root = trees.apply(nodes, root, changes)
    count, size = trees.count_and_size(nodes, root)
    return meta.finish_commit(conn, commit.id, root, size, count, message=message)


def root_of(
    meta: Metadata, conn: Any, commit: str | CommitRecord | None, nodes: OverlayNodes
) -> str:
    """The tree root of a commit (an id or a record). An open commit's view is its base
    plus its staged changes, built into ``nodes``' memory overlay (nothing is written)."""
    if commit is None:
        return trees.EMPTY_ROOT
    c = meta.get_commit(conn, commit) if isinstance(commit, str) else commit
    base = c.root_tree or trees.EMPTY_ROOT
    if c.state != OPEN:
        return base
    staged = meta.staged_changes(conn, c.id)
    return trees.apply(nodes, base, _staged_entries(staged)) if staged else base


def view(meta: Metadata, conn: Any, r: Ref) -> tuple[OverlayNodes, str]:
    """Tree nodes and root of the commit ``r`` names, open or finished."""
    nodes = OverlayNodes(meta.tree_nodes(conn))
    return nodes, root_of(meta, conn, resolve(meta, conn, r), nodes)


def _staged_entries(staged: Iterable[Any]) -> dict[str, trees.Entry | None]:
    """Staged changes as :func:`trees.apply` takes them (``None`` deletes a path)."""
    return {
        s.path: None if s.content_hash is None else trees.Entry(s.path, s.content_hash, s.size or 0)
        for s in staged
    }
