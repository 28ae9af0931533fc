"""Checks of the metadata database itself: is a page or an index damaged, does a row refer to a
row that is gone. :meth:`Metadata.integrity_problems <headrace.store.metadata.Metadata.
integrity_problems>` and ``fsck`` use them; opening a damaged database reports them instead of a
misleading error.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from headrace.store.schema import (
    _branches,
    _commits,
    _contents,
    _gc_doomed,
    _provenance,
    _repos,
    _staged,
    _tree_nodes,
)

__all__ = ["integrity_problems", "is_damage"]


def is_damage(e: sa.exc.DatabaseError) -> bool:
    """Whether ``e`` says the database file or a page of it is damaged (not busy, not down)."""
    orig = e.orig
    if isinstance(orig, sqlite3.DatabaseError) and not isinstance(orig, sqlite3.OperationalError):
        return True  # "database disk image is malformed", "file is not a database"
    return str(getattr(orig, "sqlstate", "") or "").startswith("XX")  # data/index corrupted


def integrity_problems(engine: Engine, dialect: str, quick: bool = False) -> list[str]:
    """What is damaged in the database (empty when it is sound).

    SQLite: ``PRAGMA integrity_check`` (``quick_check`` with ``quick``) and
    ``foreign_key_check``. PostgreSQL, which has no such check built in: every table of the
    store is read whole (a damaged page fails the read), its indexes are checked with the
    ``amcheck`` extension when it is installed, and every reference between tables is checked
    (a branch head, a commit's parent, a staged change's commit).

    >>> integrity_problems(sa.create_engine("sqlite://"), "sqlite")
    []
    """
    problems: list[str] = []
    try:
        with engine.connect() as conn:
            if dialect == "sqlite":
                pragma = "quick_check" if quick else "integrity_check"
                rows = [r[0] for r in conn.exec_driver_sql(f"PRAGMA {pragma}(100)")]
                problems += [f"integrity check: {r}" for r in rows if r != "ok"]
                if not quick:
                    for row in conn.exec_driver_sql("PRAGMA foreign_key_check"):
                        problems.append(
                            f"table {row[0]} row {row[1]} refers to a missing row of {row[2]}"
                        )
            else:
                problems += _postgres_checks(conn, quick)
            conn.rollback()
    except sa.exc.DatabaseError as e:
        problems.append(f"the database is damaged: {_first_line(e)}")
        if not quick:  # name the tables that cannot be read
            problems += _table_scans(engine)
    return problems


def _first_line(e: sa.exc.DatabaseError) -> str:
    return str(e.orig).splitlines()[0] if str(e.orig) else type(e.orig).__name__


_TABLES = [
    t.name
    for t in (_repos, _branches, _commits, _staged, _provenance, _contents, _tree_nodes, _gc_doomed)
]


def _table_scans(engine: Engine) -> list[str]:
    """Every table of the store read whole, each in its own transaction; the unreadable ones."""
    problems = []
    for name in _TABLES:
        try:
            with engine.connect() as conn:
                for _ in conn.exec_driver_sql(f"SELECT * FROM {name}"):
                    pass
                conn.rollback()
        except sa.exc.DatabaseError as e:
            problems.append(f"table {name} cannot be read: {_first_line(e)}")
    return problems


def _postgres_checks(conn: Connection, quick: bool) -> list[str]:
    problems: list[str] = []
    tables = _TABLES
    for name in tables:
        try:
            with conn.begin_nested():
                for _ in conn.exec_driver_sql(f"SELECT * FROM {name}"):
                    pass
        except sa.exc.DatabaseError as e:
            problems.append(f"table {name} cannot be read: {_first_line(e)}")
    if quick:
        return problems
    has_amcheck = conn.exec_driver_sql(
        "SELECT 1 FROM pg_extension WHERE extname = 'amcheck'"
    ).first()
    if has_amcheck:
        indexes = conn.exec_driver_sql(
            "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_class c "
            "ON c.oid = i.indrelid WHERE c.relname = ANY(%(names)s) "
            "AND c.relnamespace = current_schema()::regnamespace",
            {"names": tables},
        )
        for (index,) in list(indexes):
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql("SELECT bt_index_check(%(i)s::regclass)", {"i": index})
            except sa.exc.DatabaseError as e:
                problems.append(f"index {index} is damaged: {_first_line(e)}")
    dangling = {
        "a branch head": sa.select(_branches.c.repo, _branches.c.name).where(
            _branches.c.head_commit.is_not(None),
            _branches.c.head_commit.not_in(sa.select(_commits.c.id)),
        ),
        "a commit's parent": sa.select(_commits.c.repo, _commits.c.id).where(
            _commits.c.parent.is_not(None), _commits.c.parent.not_in(sa.select(_commits.c.id))
        ),
        "a staged change's commit": sa.select(_staged.c.commit_id, _staged.c.path).where(
            _staged.c.commit_id.not_in(sa.select(_commits.c.id))
        ),
    }
    for what, query in dangling.items():
        for row in conn.execute(query.limit(10)):
            problems.append(f"{what} is missing: {tuple(row)}")
    return problems
