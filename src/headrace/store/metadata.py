"""SQL metadata of the versioned store: one database (SQLite or PostgreSQL) through SQLAlchemy Core.

:class:`Metadata` owns the schema's versioning and every query; the store facade composes
its operations inside :meth:`Metadata.transaction`, so one logical change is one transaction and
a crash at any instant leaves no half-visible commit. Operations take the connection as their
first argument and never commit on their own. Below it, and re-exported here:
:mod:`headrace.store.schema` (tables, record types, migrations) and :mod:`headrace.store.sql`
(URLs such as :func:`sqlite_url`, engines, transactions, dialect differences).

A commit's states: ``insert_commit`` creates it OPEN; ``stage_changes`` adds pending changes
while it is open; ``finish_commit`` moves it to FINISHED (fixing its tree, size and file count
and dropping its staged changes); a FINISHED commit never changes again, except that
``delete_commit`` may remove it. Branch heads move only through ``set_head``, a compare-and-set:
of two writers that read the same head, exactly one moves it and the other gets
:class:`~headrace.store.errors.Conflict`.

Concurrency: on SQLite writers are serialised (``BEGIN IMMEDIATE``); on PostgreSQL writers run
at READ COMMITTED, ``set_head``/``finish_commit`` are conditional updates, and
``for_update=True`` on ``get_branch``/``get_commit`` takes a row lock for read-then-write
sequences. Opening a database applies the migrations it lacks in one transaction, reading the
version again after taking the write lock (an advisory lock on PostgreSQL), so concurrent first
opens migrate once; a database newer than this code is refused.

>>> meta = Metadata("sqlite://")
>>> with meta.transaction() as conn:
...     meta.create_repo(conn, "sales").name
...     c = meta.insert_commit(conn, "sales", branch="master")
...     meta.create_branch(conn, "sales", "master", head_commit=c.id).head_commit == c.id
'sales'
True
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from headrace.store.errors import (
    BranchExists,
    BranchNotFound,
    CommitFinished,
    CommitNotFound,
    Conflict,
    ObjectNotFound,
    RepoExists,
    RepoNotFound,
    StoreError,
)
from headrace.store.integrity import integrity_problems, is_damage
from headrace.store.nodecache import DEFAULT_NODE_CACHE_BYTES, NodeCache, TreeNodes
from headrace.store.refs import validate_name
from headrace.store.schema import (
    _COMMIT_COLUMNS,
    _COMMIT_SEQ,
    _GC_LOCK,
    _MIGRATION_LOCK,
    _SCHEMA_VERSION_TABLE,
    AUTO,
    FINISHED,
    MIGRATIONS,
    OPEN,
    SCHEMA_VERSION,
    USER,
    BranchRecord,
    CommitRecord,
    ContentRecord,
    RepoRecord,
    StagedChange,
    _branches,
    _commits,
    _contents,
    _gc_doomed,
    _provenance,
    _repos,
    _staged,
    _tree_nodes,
)
from headrace.store.sql import SQLDatabase, sqlite_url

__all__ = [
    "AUTO",
    "FINISHED",
    "MIGRATIONS",
    "OPEN",
    "SCHEMA_VERSION",
    "USER",
    "BranchRecord",
    "CommitRecord",
    "ContentRecord",
    "Metadata",
    "NodeCache",
    "RepoRecord",
    "StagedChange",
    "TreeNodes",
    "sqlite_url",
]

# Built once: the statement is on the path of every read of a branch.
_BRANCH_HEAD = (
    sa.select(*_COMMIT_COLUMNS)
    .join(_branches, _branches.c.head_commit == _commits.c.id)
    .where(_branches.c.repo == sa.bindparam("repo"), _branches.c.name == sa.bindparam("name"))
)


class Metadata(SQLDatabase):
    """The store's SQL metadata at ``url``; creates or upgrades its schema when opened.

    ``busy_timeout`` (seconds, SQLite only) is how long a writer waits for another writer
    before failing with "database is locked". ``node_cache_bytes``: the size of
    :attr:`node_cache`, the tree nodes kept across transactions (see :meth:`tree_nodes`).
    Pickles as its URL and settings (reopened on unpickling, with an empty cache).
    Transactions and ``close`` are those of :class:`~headrace.store.sql.SQLDatabase`.
    """

    def __init__(
        self,
        url: str,
        *,
        busy_timeout: float = 60.0,
        node_cache_bytes: int = DEFAULT_NODE_CACHE_BYTES,
        before_create: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(url, busy_timeout=busy_timeout)
        self.node_cache = NodeCache(node_cache_bytes)
        self._before_create = before_create
        try:
            self._migrate()
        except BaseException:
            self._engine.dispose()
            raise

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "node_cache_bytes": self.node_cache.capacity}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(  # type: ignore[misc]
            state["url"],
            busy_timeout=state["busy_timeout"],
            node_cache_bytes=state.get("node_cache_bytes", DEFAULT_NODE_CACHE_BYTES),
        )

    # ---- schema versions

    def _migrate(self) -> None:
        try:
            with self.read() as conn:
                current = self._current_version(conn)
        except sa.exc.DatabaseError as e:
            if is_damage(e):
                raise self._damaged(e) from None
            raise
        if current == len(MIGRATIONS):
            return
        if current == 0 and self._before_create is not None:
            self._before_create()  # may refuse to make a new store here
        with self.transaction() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))
            _SCHEMA_VERSION_TABLE.create(conn, checkfirst=True)
            current = self._current_version(conn)
            for version in range(current + 1, len(MIGRATIONS) + 1):
                MIGRATIONS[version - 1](conn)
                conn.execute(
                    _SCHEMA_VERSION_TABLE.insert().values(version=version, applied_at=time.time())
                )

    def _current_version(self, conn: Connection) -> int:
        if not sa.inspect(conn).has_table("schema_version"):
            return 0
        version = conn.scalar(sa.select(sa.func.max(_SCHEMA_VERSION_TABLE.c.version))) or 0
        if version > len(MIGRATIONS) and self.dialect == "sqlite":
            problems = self.integrity_problems(quick=True)
            if problems:  # a damaged page, not a newer headrace
                raise self._damaged(problems[0])
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the metadata database {self._shown_url} has schema version {version}, but "
                f"this headrace knows versions up to {len(MIGRATIONS)}: it was written by a "
                "newer headrace; upgrade headrace to open it"
            )
        return int(version)

    def _damaged(self, detail: object) -> StoreError:
        problems = self.integrity_problems(quick=True)
        found = "; ".join(problems[:3]) if problems else str(detail).splitlines()[0]
        return StoreError(
            f"the metadata database {self._shown_url} is damaged ({found}); restore it from a "
            "backup. headrace fsck lists what its integrity check finds"
        )

    def integrity_problems(self, quick: bool = False) -> list[str]:
        """What is damaged in the database itself (empty when it is sound); see
        :func:`headrace.store.integrity.integrity_problems`."""
        return integrity_problems(self._engine, self.dialect, quick)

    def schema_version(self) -> int:
        """The schema version of the open database."""
        with self.read() as conn:
            return self._current_version(conn)

    # ---- repos

    def create_repo(
        self,
        conn: Connection,
        name: str,
        description: str = "",
        created_at: float | None = None,
    ) -> RepoRecord:
        """Insert a repo; :class:`RepoExists` if the name is taken."""
        validate_name(name, "repo")
        record = RepoRecord(name, description, time.time() if created_at is None else created_at)
        if conn.scalar(sa.select(_repos.c.name).where(_repos.c.name == name)) is not None:
            raise RepoExists(f"repo {name!r} already exists; pick another name or delete it first")
        try:
            conn.execute(
                _repos.insert().values(
                    name=name, description=description, created_at=record.created_at
                )
            )
        except IntegrityError:
            raise RepoExists(f"repo {name!r} was just created by another writer") from None
        return record

    def get_repo(self, conn: Connection, name: str) -> RepoRecord:
        row = conn.execute(sa.select(_repos).where(_repos.c.name == name)).first()
        if row is None:
            raise RepoNotFound(f"repo {name!r} not found; create it first")
        return RepoRecord(*row)

    def list_repos(self, conn: Connection) -> list[RepoRecord]:
        """Every repo, by name."""
        return [RepoRecord(*row) for row in conn.execute(sa.select(_repos).order_by(_repos.c.name))]

    def delete_repo(self, conn: Connection, name: str) -> None:
        """Delete a repo with its branches, commits, staged changes and provenance links
        (including links from other repos' commits to its commits)."""
        self.get_repo(conn, name)
        in_repo = sa.select(_commits.c.id).where(_commits.c.repo == name)
        conn.execute(_staged.delete().where(_staged.c.commit_id.in_(in_repo)))
        conn.execute(
            _provenance.delete().where(
                _provenance.c.commit_id.in_(in_repo) | _provenance.c.source_commit_id.in_(in_repo)
            )
        )
        conn.execute(_branches.delete().where(_branches.c.repo == name))
        conn.execute(_commits.delete().where(_commits.c.repo == name))
        conn.execute(_repos.delete().where(_repos.c.name == name))

    # ---- branches

    def create_branch(
        self,
        conn: Connection,
        repo: str,
        name: str,
        head_commit: str | None = None,
        created_at: float | None = None,
    ) -> BranchRecord:
        """Insert a branch (empty, or at ``head_commit``); :class:`BranchExists` if it exists."""
        validate_name(name, "branch")
        self.get_repo(conn, repo)
        if head_commit is not None:
            self._check_commit_in_repo(conn, head_commit, repo)
        exists = conn.scalar(
            sa.select(_branches.c.name).where(_branches.c.repo == repo, _branches.c.name == name)
        )
        if exists is not None:
            raise BranchExists(
                f"branch {repo}@{name} already exists; move it with set_head or delete it first"
            )
        record = BranchRecord(
            repo, name, head_commit, time.time() if created_at is None else created_at
        )
        try:
            conn.execute(
                _branches.insert().values(
                    repo=repo, name=name, head_commit=head_commit, created_at=record.created_at
                )
            )
        except IntegrityError:
            raise Conflict(f"branch {repo}@{name} was just created by another writer") from None
        return record

    def get_branch(
        self, conn: Connection, repo: str, name: str, *, for_update: bool = False
    ) -> BranchRecord:
        """The branch; ``for_update`` locks its row until the transaction ends (PostgreSQL)."""
        query = sa.select(_branches).where(_branches.c.repo == repo, _branches.c.name == name)
        if for_update:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            self.get_repo(conn, repo)
            raise BranchNotFound(f"branch {name!r} not found in repo {repo!r}")
        return BranchRecord(*row)

    def branch_head(self, conn: Connection, repo: str, name: str) -> CommitRecord | None:
        """The head commit of ``repo@name`` in one query; None if the branch does not exist
        or has no commit (ask :meth:`get_branch` which)."""
        row = conn.execute(_BRANCH_HEAD, {"repo": repo, "name": name}).first()
        return None if row is None else CommitRecord(*row)

    def list_branches(self, conn: Connection, repo: str) -> list[BranchRecord]:
        """The repo's branches, by name."""
        rows = conn.execute(
            sa.select(_branches).where(_branches.c.repo == repo).order_by(_branches.c.name)
        ).all()
        if not rows:
            self.get_repo(conn, repo)
        return [BranchRecord(*row) for row in rows]

    def delete_branch(self, conn: Connection, repo: str, name: str) -> None:
        """Delete a branch; its commits stay (they still name it in ``branch``)."""
        result = conn.execute(
            _branches.delete().where(_branches.c.repo == repo, _branches.c.name == name)
        )
        if result.rowcount == 0:
            self.get_branch(conn, repo, name)  # raises the right NotFound

    def set_head(
        self,
        conn: Connection,
        repo: str,
        branch: str,
        expected_old: str | None,
        new: str | None,
    ) -> None:
        """Move ``repo@branch`` from ``expected_old`` to ``new`` (compare-and-set).

        :class:`Conflict` if the head is no longer ``expected_old`` (another writer moved it).
        """
        if new is not None:
            self._check_commit_in_repo(conn, new, repo)
        where = [_branches.c.repo == repo, _branches.c.name == branch]
        if expected_old is None:
            where.append(_branches.c.head_commit.is_(None))
        else:
            where.append(_branches.c.head_commit == expected_old)
        result = conn.execute(_branches.update().where(*where).values(head_commit=new))
        if result.rowcount == 1:
            return
        current = self.get_branch(conn, repo, branch)
        raise Conflict(
            f"branch {repo}@{branch} moved to {current.head_commit or 'no commit'} while this "
            f"writer expected {expected_old or 'no commit'}; re-read the branch and retry"
        )

    # ---- commits

    def insert_commit(
        self,
        conn: Connection,
        repo: str,
        *,
        branch: str | None = None,
        parent: str | None = None,
        origin: str = USER,
        message: str = "",
        commit_id: str | None = None,
        started_at: float | None = None,
        root_tree: str | None = None,
    ) -> CommitRecord:
        """Insert a new OPEN commit (id generated unless given) and return it."""
        if origin not in (USER, AUTO):
            raise ValueError(f"commit origin must be {USER!r} or {AUTO!r}, got {origin!r}")
        self.get_repo(conn, repo)
        if parent is not None:
            self._check_commit_in_repo(conn, parent, repo)
        record = CommitRecord(
            id=commit_id or uuid.uuid4().hex,
            repo=repo,
            branch=branch,
            parent=parent,
            origin=origin,
            state=OPEN,
            started_at=time.time() if started_at is None else started_at,
            finished_at=None,
            message=message,
            size_bytes=None,
            file_count=None,
            root_tree=root_tree,
        )
        values = {c.name: getattr(record, c.name) for c in _COMMIT_COLUMNS}
        try:
            conn.execute(_commits.insert().values(seq=self._next_seq(), **values))
        except IntegrityError:
            raise StoreError(f"commit id {record.id} already exists; use a new id") from None
        return record

    def _next_seq(self) -> sa.ColumnElement[Any]:
        if self.dialect == "postgresql":
            return _COMMIT_SEQ.next_value()
        # SQLite writers are serialised (BEGIN IMMEDIATE), so max + 1 is unique.
        return sa.select(sa.func.coalesce(sa.func.max(_commits.c.seq), 0) + 1).scalar_subquery()

    def _check_commit_in_repo(self, conn: Connection, commit_id: str, repo: str) -> None:
        owner = conn.scalar(sa.select(_commits.c.repo).where(_commits.c.id == commit_id))
        if owner != repo:
            where = "" if owner is None else f" (it belongs to repo {owner!r})"
            raise CommitNotFound(f"commit {commit_id} not found in repo {repo!r}{where}")

    def get_commit(
        self, conn: Connection, commit_id: str, *, repo: str | None = None, for_update: bool = False
    ) -> CommitRecord:
        """The commit (of ``repo``, if given); ``for_update`` locks its row (PostgreSQL)."""
        query = sa.select(*_COMMIT_COLUMNS).where(_commits.c.id == commit_id)
        if for_update:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None or (repo is not None and row.repo != repo):
            where = "" if repo is None else f" in repo {repo!r}"
            raise CommitNotFound(f"commit {commit_id} not found{where}")
        return CommitRecord(*row)

    def list_commits(
        self,
        conn: Connection,
        repo: str,
        branch: str | None = None,
        limit: int | None = None,
        state: str | None = None,
    ) -> list[CommitRecord]:
        """The repo's commits, newest first; only those made on ``branch`` / in ``state``."""
        query = sa.select(*_COMMIT_COLUMNS).where(_commits.c.repo == repo)
        if branch is not None:
            query = query.where(_commits.c.branch == branch)
        if state is not None:
            query = query.where(_commits.c.state == state)
        query = query.order_by(_commits.c.seq.desc()).limit(limit)
        rows = conn.execute(query).all()
        if not rows:
            self.get_repo(conn, repo)
        return [CommitRecord(*row) for row in rows]

    def finish_commit(
        self,
        conn: Connection,
        commit_id: str,
        root_tree: str | None,
        size_bytes: int,
        file_count: int,
        *,
        message: str | None = None,
        finished_at: float | None = None,
    ) -> CommitRecord:
        """Make an OPEN commit FINISHED with its tree and totals; drops its staged changes.

        :class:`CommitFinished` if it was already finished.
        """
        values: dict[str, Any] = {
            "state": FINISHED,
            "root_tree": root_tree,
            "size_bytes": size_bytes,
            "file_count": file_count,
            "finished_at": time.time() if finished_at is None else finished_at,
        }
        if message is not None:
            values["message"] = message
        result = conn.execute(
            _commits.update()
            .where(_commits.c.id == commit_id, _commits.c.state == OPEN)
            .values(**values)
        )
        if result.rowcount == 0:
            self.get_commit(conn, commit_id)
            raise CommitFinished(f"commit {commit_id} is already finished; start a new commit")
        conn.execute(_staged.delete().where(_staged.c.commit_id == commit_id))
        return self.get_commit(conn, commit_id)

    def delete_commit(self, conn: Connection, commit_id: str) -> CommitRecord:
        """Delete a commit, keeping history connected: its children are re-parented onto its
        parent and branch heads at it move to its parent. Returns the deleted commit."""
        record = self.get_commit(conn, commit_id)
        conn.execute(
            _commits.update().where(_commits.c.parent == commit_id).values(parent=record.parent)
        )
        conn.execute(
            _branches.update()
            .where(_branches.c.head_commit == commit_id)
            .values(head_commit=record.parent)
        )
        conn.execute(_staged.delete().where(_staged.c.commit_id == commit_id))
        conn.execute(
            _provenance.delete().where(
                (_provenance.c.commit_id == commit_id)
                | (_provenance.c.source_commit_id == commit_id)
            )
        )
        conn.execute(_commits.delete().where(_commits.c.id == commit_id))
        return record

    def children(self, conn: Connection, commit_id: str) -> list[CommitRecord]:
        """The commits whose parent is ``commit_id``, oldest first."""
        rows = conn.execute(
            sa.select(*_COMMIT_COLUMNS)
            .where(_commits.c.parent == commit_id)
            .order_by(_commits.c.seq)
        )
        return [CommitRecord(*row) for row in rows]

    def ancestors(
        self, conn: Connection, commit_id: str, n: int | None = None
    ) -> list[CommitRecord]:
        """The commit's parent, grandparent, ... (at most ``n``), nearest first; one query."""
        self.get_commit(conn, commit_id)
        if n is not None and n <= 0:
            return []
        if n is not None:
            n = min(n, 2**62)  # no history is longer; a bigger number overflows SQL integers
        one = sa.literal_column("1", sa.Integer)
        walk = (
            sa.select(_commits.c.parent.label("id"), one.label("depth"))
            .where(_commits.c.id == commit_id)
            .cte("ancestry", recursive=True)
        )
        step = sa.select(_commits.c.parent, walk.c.depth + one).join(
            walk, _commits.c.id == walk.c.id
        )
        if n is not None:
            step = step.where(walk.c.depth < n)
        walk = walk.union_all(step)
        rows = conn.execute(
            sa.select(*_COMMIT_COLUMNS)
            .join(walk, _commits.c.id == walk.c.id)
            .order_by(walk.c.depth)
        )
        return [CommitRecord(*row) for row in rows]

    # ---- staged changes

    def stage_change(
        self,
        conn: Connection,
        commit_id: str,
        path: str,
        content_hash: str | None,
        size: int | None,
    ) -> None:
        """Stage one change (``content_hash`` None deletes ``path``); see :meth:`stage_changes`."""
        self.stage_changes(conn, commit_id, [(path, content_hash, size)])

    def stage_changes(
        self,
        conn: Connection,
        commit_id: str,
        changes: Iterable[tuple[str, str | None, int | None]],
    ) -> int:
        """Stage ``(path, content_hash or None, size)`` changes on an OPEN commit; the last
        change to a path wins. Returns how many paths were staged.

        :class:`CommitFinished` if the commit is finished (its row is share-locked on
        PostgreSQL, so it cannot finish meanwhile).
        """
        query = sa.select(_commits.c.state).where(_commits.c.id == commit_id)
        state = conn.scalar(query.with_for_update(read=True))
        if state is None:
            raise CommitNotFound(f"commit {commit_id} not found")
        if state != OPEN:
            raise CommitFinished(
                f"commit {commit_id} is finished and cannot change; start a new commit"
            )
        latest = {path: (content_hash, size) for path, content_hash, size in changes}
        paths = list(latest)
        values = list(latest.values())
        self._ops.bulk_insert(
            conn,
            _staged,
            {
                "commit_id": [commit_id] * len(paths),
                "path": paths,
                "content_hash": [v[0] for v in values],
                "size": [v[1] for v in values],
            },
            update=("content_hash", "size"),
        )
        return len(paths)

    def staged_changes(self, conn: Connection, commit_id: str) -> list[StagedChange]:
        """The commit's staged changes, by path."""
        rows = conn.execute(
            sa.select(_staged.c.path, _staged.c.content_hash, _staged.c.size)
            .where(_staged.c.commit_id == commit_id)
            .order_by(_staged.c.path)
        )
        return [StagedChange(*row) for row in rows]

    def clear_staged(self, conn: Connection, commit_id: str) -> int:
        """Drop the commit's staged changes; returns how many there were."""
        return conn.execute(_staged.delete().where(_staged.c.commit_id == commit_id)).rowcount

    # ---- provenance

    def add_provenance(self, conn: Connection, commit_id: str, sources: Iterable[str]) -> None:
        """Record that ``commit_id`` was made from each of ``sources`` (duplicates ignored)."""
        unique = list(dict.fromkeys(sources))
        if not unique:
            return
        self.get_commit(conn, commit_id)
        missing = sorted(set(unique) - self._ops.existing(conn, _commits.c.id, unique))
        if missing:
            raise CommitNotFound(f"provenance of {commit_id}: commit {missing[0]} not found")
        self._ops.bulk_insert(
            conn,
            _provenance,
            {"commit_id": [commit_id] * len(unique), "source_commit_id": unique},
        )

    def provenance(
        self, conn: Connection, commit_id: str, *, transitive: bool = False
    ) -> list[CommitRecord]:
        """The commits ``commit_id`` was made from (all of them upstream if ``transitive``)."""
        return self._linked(
            conn, commit_id, _provenance.c.commit_id, _provenance.c.source_commit_id, transitive
        )

    def subvenance(
        self, conn: Connection, commit_id: str, *, transitive: bool = False
    ) -> list[CommitRecord]:
        """The commits made from ``commit_id`` (all of them downstream if ``transitive``)."""
        return self._linked(
            conn, commit_id, _provenance.c.source_commit_id, _provenance.c.commit_id, transitive
        )

    def _linked(
        self,
        conn: Connection,
        commit_id: str,
        this: sa.Column[Any],
        other: sa.Column[Any],
        transitive: bool,
    ) -> list[CommitRecord]:
        self.get_commit(conn, commit_id)
        direct = sa.select(other.label("id")).where(this == commit_id)
        ids: sa.CTE | sa.Subquery
        if transitive:
            walk = direct.cte("linked", recursive=True)
            ids = walk.union(sa.select(other).join(walk, this == walk.c.id))
        else:
            ids = direct.subquery()
        rows = conn.execute(
            sa.select(*_COMMIT_COLUMNS)
            .join(ids, _commits.c.id == ids.c.id)
            .order_by(_commits.c.repo, _commits.c.seq)
        )
        return [CommitRecord(*row) for row in rows]

    # ---- contents

    def put_contents(self, conn: Connection, items: Iterable[tuple[str, int, str]]) -> None:
        """Insert ``(hash, size, layout_json)`` rows; hashes already present are kept as is."""
        unique = {h: (size, layout) for h, size, layout in items}
        values = list(unique.values())
        self._ops.bulk_insert(
            conn,
            _contents,
            {
                "hash": list(unique),
                "size": [v[0] for v in values],
                "layout": [v[1] for v in values],
            },
        )

    def get_content(self, conn: Connection, content_hash: str) -> ContentRecord:
        """The content with this hash; :class:`ObjectNotFound` if it is unknown."""
        row = conn.execute(sa.select(_contents).where(_contents.c.hash == content_hash)).first()
        if row is None:
            raise ObjectNotFound(f"content {content_hash} is not in the metadata; run fsck")
        return ContentRecord(*row)

    def get_contents(self, conn: Connection, hashes: Iterable[str]) -> dict[str, ContentRecord]:
        """The known contents among ``hashes``, by hash (unknown ones are left out)."""
        out: dict[str, ContentRecord] = {}
        for batch in self._ops.batches(hashes):
            query = sa.select(_contents).where(self._ops.among(_contents.c.hash, batch))
            out.update((row.hash, ContentRecord(*row)) for row in conn.execute(query))
        return out

    def contents_exist(self, conn: Connection, hashes: Iterable[str]) -> set[str]:
        """Which of ``hashes`` are known contents."""
        return self._ops.existing(conn, _contents.c.hash, hashes)

    def all_content_hashes(self, conn: Connection) -> set[str]:
        """Every content hash (for gc)."""
        return set(conn.scalars(sa.select(_contents.c.hash)))

    def staged_content_hashes(self, conn: Connection) -> set[str]:
        """Every content hash referenced by a staged change (for gc: keep these)."""
        query = sa.select(_staged.c.content_hash).where(_staged.c.content_hash.is_not(None))
        return set(conn.scalars(query.distinct()))

    def delete_contents(self, conn: Connection, hashes: Iterable[str]) -> int:
        """Delete content rows (for gc); returns how many were deleted."""
        return sum(
            conn.execute(
                _contents.delete().where(self._ops.among(_contents.c.hash, batch))
            ).rowcount
            for batch in self._ops.batches(hashes)
        )

    # ---- tree nodes

    def put_tree_nodes(self, conn: Connection, nodes: Mapping[str, bytes]) -> None:
        """Insert tree nodes by key; keys already present are kept (nodes are immutable)."""
        self._ops.bulk_insert(conn, _tree_nodes, {"key": list(nodes), "data": list(nodes.values())})

    def get_tree_node(self, conn: Connection, key: str) -> bytes:
        """The node's bytes; :class:`ObjectNotFound` if there is no such node. Reads the
        database, not the node cache (see :meth:`tree_nodes`)."""
        data = self._ops.value_by_key(conn, _tree_nodes, "key", "data", key)
        if data is None:
            raise ObjectNotFound(f"tree node {key} is not in the metadata; run fsck")
        return data if type(data) is bytes else bytes(data)

    def get_tree_nodes(self, conn: Connection, keys: Iterable[str]) -> dict[str, bytes]:
        """The nodes among ``keys`` that exist, by key: one query per batch of keys. Reads the
        database, not the node cache."""
        found = self._ops.values_by_key(conn, _tree_nodes, "key", "data", keys)
        for key, data in found.items():
            if type(data) is not bytes:
                found[key] = bytes(data)
        return found

    def all_tree_node_keys(self, conn: Connection) -> set[str]:
        """Every tree node key (for gc)."""
        return set(conn.scalars(sa.select(_tree_nodes.c.key)))

    def root_trees(self, conn: Connection) -> set[str]:
        """The root tree key of every commit that has one (for gc: the roots to keep)."""
        query = sa.select(_commits.c.root_tree).where(_commits.c.root_tree.is_not(None))
        return set(conn.scalars(query.distinct()))

    def delete_tree_nodes(self, conn: Connection, keys: Iterable[str]) -> int:
        """Delete tree nodes (for gc), evicting them from the node cache; returns how many
        were deleted."""
        unique = list(dict.fromkeys(keys))
        self.node_cache.discard(unique)
        return sum(
            conn.execute(
                _tree_nodes.delete().where(self._ops.among(_tree_nodes.c.key, batch))
            ).rowcount
            for batch in self._ops.batches(unique)
        )

    # ---- the gc protocol (see headrace.store.maintenance)

    def lock_for_gc(self, conn: Connection, *, exclusive: bool) -> None:
        """Serialise ``conn``'s transaction with gc: gc's marking and deleting take this
        exclusively, a writer adding references to contents takes it shared (writers do not
        wait for each other). On SQLite every write transaction is exclusive already."""
        if self.dialect == "postgresql":
            if exclusive:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_GC_LOCK)))
            else:
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock_shared(_GC_LOCK)))

    def doom_objects(self, conn: Connection, keys: Iterable[str]) -> None:
        """Replace the doomed objects by ``keys`` (gc's marking; call with the gc lock held)."""
        conn.execute(_gc_doomed.delete())
        unique = list(dict.fromkeys(keys))
        if unique:
            self._ops.bulk_insert(conn, _gc_doomed, {"key": unique})

    def doomed_objects(self, conn: Connection, limit: int) -> list[str]:
        """Up to ``limit`` doomed object keys, in key order."""
        query = sa.select(_gc_doomed.c.key).order_by(_gc_doomed.c.key).limit(limit)
        return list(conn.scalars(query))

    def forget_doomed(self, conn: Connection, keys: Iterable[str]) -> int:
        """Remove ``keys`` from the doomed objects; return how many were doomed. A writer calls
        it (with the gc lock held shared) for every object it is about to refer to: taken back,
        they are not deleted; gc calls it for the objects it deleted."""
        doomed = _gc_doomed.c.key
        return sum(
            conn.execute(_gc_doomed.delete().where(self._ops.among(doomed, batch))).rowcount
            for batch in self._ops.batches(keys)
        )

    def tree_nodes(self, conn: Connection, *, cached: bool = True) -> TreeNodes:
        """A node store (``get_node``/``get_nodes``/``put_nodes``) bound to ``conn``, for the
        trees module. Reads go through :attr:`node_cache`, shared by every transaction, unless
        ``cached`` is False: then every node comes from the database as ``conn`` sees it (for
        checks such as fsck, which must notice a missing node)."""
        return TreeNodes(self, conn, self.node_cache if cached else None)
