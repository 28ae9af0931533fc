"""The schema of the store's SQL metadata: its tables, their migrations and their record types.

:mod:`headrace.store.metadata` runs every query on these tables and re-exports the public
names here. The underscored table objects (``_repos``, ``_commits``, ...) are shared with that
module only.

Tables (times are seconds since the epoch as floating point numbers; hashes and keys are text):

``schema_version``  ``version`` (PK, int), ``applied_at``: one row per applied migration.
``repos``           ``name`` (PK), ``description``, ``created_at``.
``branches``        ``repo`` (→ repos, cascade), ``name``, ``head_commit`` (→ commits, NULL for an
                    empty branch), ``created_at``; PK (repo, name).
``commits``         ``id`` (PK, 32 hex digits), ``seq`` (unique, increasing with insertion: the
                    "newest first" order), ``repo`` (→ repos, cascade), ``branch`` (the branch it
                    was made on, NULL if none; a name, not a reference, so history survives
                    deleting the branch), ``parent`` (→ commits, NULL for a first commit),
                    ``origin`` ('USER' | 'AUTO'), ``state`` ('OPEN' | 'FINISHED'),
                    ``started_at``, ``finished_at`` (NULL while open), ``message``,
                    ``size_bytes`` and ``file_count`` (NULL while open), ``root_tree`` (key of
                    the root tree node; may be set while open, fixed once finished).
``staged``          ``commit_id`` (→ commits, cascade), ``path``, ``content_hash`` (NULL means
                    "delete this path"), ``size``; PK (commit_id, path). Pending changes of an
                    open commit; the last change to a path wins.
``provenance``      ``commit_id`` (→ commits, cascade), ``source_commit_id`` (→ commits,
                    cascade); PK (commit_id, source_commit_id): the commit was made from the source.
``contents``        ``hash`` (PK), ``size``, ``layout`` (JSON text: how the bytes are stored).
``tree_nodes``      ``key`` (PK), ``data`` (bytes): content-addressed, immutable tree nodes.
``gc_doomed``       ``key`` (PK): objects a running gc found unreferenced and will delete unless
                    a writer takes them back first (version 2; see
                    :mod:`headrace.store.maintenance` for the protocol).

Schema versions: ``MIGRATIONS[i]`` brings a database from version ``i`` to ``i + 1`` (version 1
is the initial schema); ``schema_version`` records each one applied. :class:`Metadata
<headrace.store.metadata.Metadata>` applies the missing ones when it opens a database, in one
transaction, and refuses a database newer than this code. To change the schema, append a
migration and update the current table definitions; never edit an applied migration.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

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
    "RepoRecord",
    "StagedChange",
]

USER, AUTO = "USER", "AUTO"  # a commit's origin
OPEN, FINISHED = "OPEN", "FINISHED"  # a commit's state


# ---------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class RepoRecord:
    """One row of ``repos``."""

    name: str
    description: str
    created_at: float


@dataclass(frozen=True, slots=True)
class BranchRecord:
    """One row of ``branches``; ``head_commit`` is None for an empty branch."""

    repo: str
    name: str
    head_commit: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class CommitRecord:
    """One row of ``commits`` (see the module docstring for the columns)."""

    id: str
    repo: str
    branch: str | None
    parent: str | None
    origin: str
    state: str
    started_at: float
    finished_at: float | None
    message: str
    size_bytes: int | None
    file_count: int | None
    root_tree: str | None

    @property
    def finished(self) -> bool:
        return self.state == FINISHED


@dataclass(frozen=True, slots=True)
class StagedChange:
    """A pending change of an open commit; ``content_hash`` None means the path is deleted."""

    path: str
    content_hash: str | None
    size: int | None


@dataclass(frozen=True, slots=True)
class ContentRecord:
    """One row of ``contents``: a file content's hash, size and storage layout (JSON text)."""

    hash: str
    size: int
    layout: str

    def layout_json(self) -> Any:
        return json.loads(self.layout)


# ---------------------------------------------------------------- schema


def _v1_tables(meta: sa.MetaData) -> None:
    """Declare the version-1 schema on ``meta``. Frozen: migration 1 creates exactly this."""
    sa.Sequence("commit_seq", metadata=meta)
    sa.Table(
        "repos",
        meta,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    sa.Table(
        "commits",
        meta,
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("seq", sa.BigInteger, nullable=False, unique=True),
        sa.Column(
            "repo", sa.String(100), sa.ForeignKey("repos.name", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("branch", sa.String(100)),
        sa.Column("parent", sa.String(32), sa.ForeignKey("commits.id")),
        sa.Column("origin", sa.String(8), nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double),
        sa.Column("message", sa.Text, nullable=False, server_default=""),
        sa.Column("size_bytes", sa.BigInteger),
        sa.Column("file_count", sa.BigInteger),
        sa.Column("root_tree", sa.String),
        sa.CheckConstraint("origin IN ('USER', 'AUTO')", name="commit_origin"),
        sa.CheckConstraint("state IN ('OPEN', 'FINISHED')", name="commit_state"),
        sa.Index("commits_repo_seq", "repo", "seq"),
        sa.Index("commits_repo_branch_seq", "repo", "branch", "seq"),
        sa.Index("commits_parent", "parent"),
    )
    sa.Table(
        "branches",
        meta,
        sa.Column(
            "repo",
            sa.String(100),
            sa.ForeignKey("repos.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("head_commit", sa.String(32), sa.ForeignKey("commits.id")),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Index("branches_head", "head_commit"),
    )
    sa.Table(
        "staged",
        meta,
        sa.Column(
            "commit_id",
            sa.String(32),
            sa.ForeignKey("commits.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("path", sa.String, primary_key=True),
        sa.Column("content_hash", sa.String),
        sa.Column("size", sa.BigInteger),
    )
    sa.Table(
        "provenance",
        meta,
        sa.Column(
            "commit_id",
            sa.String(32),
            sa.ForeignKey("commits.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "source_commit_id",
            sa.String(32),
            sa.ForeignKey("commits.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Index("provenance_source", "source_commit_id"),
    )
    sa.Table(
        "contents",
        meta,
        sa.Column("hash", sa.String, primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("layout", sa.Text, nullable=False),
    )
    sa.Table(
        "tree_nodes",
        meta,
        sa.Column("key", sa.String, primary_key=True),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def _migrate_v1(conn: Connection) -> None:
    meta = sa.MetaData()
    _v1_tables(meta)
    meta.create_all(conn)


def _v2_tables(meta: sa.MetaData) -> None:
    """Tables added by migration 2. Frozen."""
    sa.Table("gc_doomed", meta, sa.Column("key", sa.String(64), primary_key=True))


def _migrate_v2(conn: Connection) -> None:
    meta = sa.MetaData()
    _v2_tables(meta)
    meta.create_all(conn)


MIGRATIONS: list[Callable[[Connection], None]] = [_migrate_v1, _migrate_v2]
"""``MIGRATIONS[i]`` upgrades a database from version ``i`` to ``i + 1``."""
SCHEMA_VERSION = len(MIGRATIONS)

# The current schema: version 1 plus the tables of version 2.
_META = sa.MetaData()
_v1_tables(_META)
_v2_tables(_META)
_SCHEMA_VERSION_TABLE = sa.Table(
    "schema_version",
    sa.MetaData(),
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.Double, nullable=False),
)
_COMMIT_SEQ = sa.Sequence("commit_seq")
_repos = _META.tables["repos"]
_branches = _META.tables["branches"]
_commits = _META.tables["commits"]
_staged = _META.tables["staged"]
_provenance = _META.tables["provenance"]
_contents = _META.tables["contents"]
_tree_nodes = _META.tables["tree_nodes"]
_gc_doomed = _META.tables["gc_doomed"]
_COMMIT_COLUMNS = [c for c in _commits.c if c.name != "seq"]

# A fixed key for pg_advisory_xact_lock: serialises concurrent migrations of one database.
_MIGRATION_LOCK = 0x68656164726163  # "headrac"
# A fixed key for the gc lock on PostgreSQL: gc takes it exclusively, writers that add
# references to contents take it shared (on SQLite every write transaction is exclusive).
_GC_LOCK = 0x68656164676300  # "headgc"
