"""How the store's metadata talks to SQL: URLs, engines, transactions, dialect differences.

URLs (:func:`normalise_url`): ``sqlite:////abs/path/metadata.db`` (see :func:`sqlite_url`),
``sqlite://`` (in memory, on one shared connection: for examples only; no concurrent or
overlapping transactions) or ``postgresql+psycopg://user@host:5432/db`` (``postgresql://`` is
accepted and means psycopg).

Engines (:func:`create_engine`): on SQLite every new connection gets ``busy_timeout`` and
foreign keys and, for a file, WAL mode (:func:`_enable_wal` says why switching to it needs its
own wait); the sqlite3 module's own transaction handling is switched off, and every transaction
begins with ``BEGIN IMMEDIATE`` unless the connection's execution option ``headrace_begin``
names another mode. In a forked child, every engine opened here forgets its pooled connections
without closing them (they belong to the parent); the child opens its own.

Transactions (:class:`SQLDatabase`): :meth:`~SQLDatabase.transaction` writes, on SQLite after
``BEGIN IMMEDIATE`` (writers are serialised, each waiting up to ``busy_timeout`` for the one
before; readers never block), on PostgreSQL at READ COMMITTED; :meth:`~SQLDatabase.read` sees
one snapshot (``BEGIN DEFERRED`` in WAL mode; REPEATABLE READ, read only) and never blocks
writers. A thread may hold one write transaction at a time: a second would wait for the first.

:class:`DialectOps` holds the statements that differ between SQLite and PostgreSQL: bulk
inserts and upserts, batches of keys and ``IN`` tests, and look-ups by key run as plain driver
statements (for the hot read paths, where compiling a statement per call would dominate).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy import Connection, event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import StaticPool

from headrace.store.errors import StoreError

__all__ = ["DialectOps", "SQLDatabase", "create_engine", "normalise_url", "sqlite_url"]

# Keys per query: SQLite binds each key of IN (...) (staying below its historical limit of 999
# parameters); PostgreSQL binds one array per query, so its batches only bound memory.
_BATCH = {"sqlite": 900, "postgresql": 50_000}


def _pg_dialect() -> ModuleType:
    """SQLAlchemy's PostgreSQL dialect, imported when a PostgreSQL store first needs it: a
    command on a SQLite store (``headrace repo list``) does not pay for importing it."""
    from sqlalchemy.dialects import postgresql

    return postgresql


# ---------------------------------------------------------------- engines


def sqlite_url(path: str | os.PathLike[str]) -> str:
    """The metadata URL of an SQLite file (the default for a store in a local folder).

    >>> sqlite_url("/data/store/metadata.db")
    'sqlite:////data/store/metadata.db'
    """
    return "sqlite:///" + str(Path(path).absolute())


def normalise_url(url: str) -> URL:
    """The parsed metadata URL (``postgresql://`` means psycopg); StoreError if unsupported."""
    try:
        parsed = make_url(url)
    except Exception as e:
        raise StoreError(
            f"invalid metadata URL {url!r}: {e}; use sqlite:////path/metadata.db or "
            "postgresql+psycopg://user@host:5432/database"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        return parsed
    raise StoreError(
        f"unsupported metadata URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite:////path/metadata.db or postgresql+psycopg://user@host:5432/database"
    )


_OPEN_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _dispose_after_fork() -> None:
    # Pooled connections belong to the parent process; the child opens its own.
    for engine in list(_OPEN_ENGINES):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_dispose_after_fork)


def create_engine(url: URL, busy_timeout: float) -> Engine:
    """An engine for ``url`` (from :func:`normalise_url`), set up as the module docstring says.

    ``busy_timeout``: seconds an SQLite connection waits for another writer before failing.
    """
    if not url.drivername.startswith("sqlite"):
        engine = sa.create_engine(url, pool_pre_ping=True)
        _OPEN_ENGINES.add(engine)
        return engine
    database = url.database or ""
    if database in ("", ":memory:"):
        engine = sa.create_engine(
            url, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": busy_timeout})
    timeout_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module: _on_begin issues BEGIN.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {timeout_ms}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if database not in ("", ":memory:"):
            _enable_wal(cursor, busy_timeout)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("headrace_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    _OPEN_ENGINES.add(engine)
    return engine


def _enable_wal(cursor: sqlite3.Cursor, timeout: float) -> None:
    """Put the database file in WAL mode, waiting up to ``timeout`` seconds for other connections.

    Switching a file that is not yet in WAL mode (a new one) takes a read lock, then upgrades it
    to a write lock to rewrite the header. SQLite does not call the busy handler for that upgrade
    (a connection waiting while it holds a read lock could deadlock), so when several connections
    switch the same new file at once, all but one fail at once with "database is locked",
    whatever ``busy_timeout`` says. Retrying is safe: once the file is in WAL mode, the pragma
    changes nothing and needs no write lock.
    """
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            busy = getattr(e, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


# ---------------------------------------------------------------- dialect-specific statements


class DialectOps:
    """The statements of one dialect (``"sqlite"`` or ``"postgresql"``) that differ by dialect."""

    __slots__ = ("_compiled", "_sql", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._compiled: dict[tuple[Any, ...], tuple[str, tuple[str, ...]]] = {}
        self._sql: dict[tuple[Any, ...], str] = {}

    def bulk_insert(
        self,
        conn: Connection,
        table: sa.Table,
        columns: dict[str, list[Any]],
        update: tuple[str, ...] = (),
    ) -> None:
        """Insert rows given column by column; on a primary key already present, overwrite the
        ``update`` columns (or keep the row if there are none). Rows must have distinct keys.

        SQLite: one prepared statement run over all rows (executemany). PostgreSQL: one
        ``INSERT ... SELECT FROM unnest(arrays)`` per batch, a single round trip, the arrays sent
        in binary (psycopg's ``%b``: no per-element quoting in Python).
        """
        names = list(columns)
        total = len(columns[names[0]])
        batch = _BATCH[self.name]
        if self.name == "postgresql":
            key = (table.name, tuple(names), update)
            compiled = self._compiled.get(key)
            if compiled is None:
                pg_dialect = _pg_dialect()
                arrays = [
                    sa.bindparam(name, type_=pg_dialect.ARRAY(table.c[name].type)) for name in names
                ]
                rows = sa.select(sa.func.unnest(*arrays).table_valued(*names).render_derived())
                insert = pg_dialect.insert(table).from_select(names, rows)
                sql = self._on_conflict(insert, update).compile(dialect=conn.dialect).string
                for name in names:
                    if f"%({name})s" not in sql:
                        raise StoreError(f"unexpected bulk insert for {table.name}: {sql}")
                    sql = sql.replace(f"%({name})s", f"%({name})b")
                compiled = self._compiled[key] = (sql, tuple(names))
            for start in range(0, total, batch):
                conn.exec_driver_sql(
                    compiled[0], {name: columns[name][start : start + batch] for name in names}
                )
        elif total:
            # Compiled once; rows go to the driver as tuples, skipping per-row bind processing
            # (none is needed for these column types on SQLite).
            key = (table.name, tuple(names), update)
            compiled = self._compiled.get(key)
            if compiled is None:
                statement = self._on_conflict(sqlite_dialect.insert(table), update)
                done = statement.compile(dialect=conn.dialect, column_keys=names)
                compiled = self._compiled[key] = (done.string, tuple(done.positiontup or ()))
            sql, order = compiled
            conn.exec_driver_sql(sql, list(zip(*(columns[name] for name in order))))

    @staticmethod
    def _on_conflict(insert: Any, update: tuple[str, ...]) -> Any:
        if not update:
            return insert.on_conflict_do_nothing()
        return insert.on_conflict_do_update(
            index_elements=list(insert.table.primary_key.columns),
            set_={name: insert.excluded[name] for name in update},
        )

    def batches(self, keys: Iterable[str]) -> Iterator[list[str]]:
        """The distinct ``keys`` in batches small enough for one :meth:`among` test each."""
        size = _BATCH[self.name]
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), size):
            yield unique[start : start + size]

    def among(self, column: sa.Column[Any], keys: list[str]) -> sa.ColumnElement[bool]:
        """``column IN keys`` (one bound array on PostgreSQL); ``keys`` is one batch."""
        if self.name == "postgresql":
            array = _pg_dialect().ARRAY(sa.String)
            return column == sa.any_(sa.bindparam("keys", keys, type_=array))
        return column.in_(keys)

    def _lookup_sql(self, conn: Connection, table: sa.Table, key: str, value: str, n: int) -> str:
        """``SELECT key, value FROM table WHERE key IN <n keys>`` in the driver's own syntax
        (``n`` 0: one key, selecting only ``value``)."""
        cache_key = (table.name, key, value, n if self.name == "sqlite" else min(n, 1))
        sql = self._sql.get(cache_key)
        if sql is None:
            prep = conn.dialect.identifier_preparer
            name, k, v = prep.format_table(table), prep.quote(key), prep.quote(value)
            mark = "?" if self.name == "sqlite" else "%b"  # (psycopg: sent in binary)
            if n == 0:
                sql = f"SELECT {v} FROM {name} WHERE {k} = {mark}"
            elif self.name == "sqlite":
                sql = f"SELECT {k}, {v} FROM {name} WHERE {k} IN ({', '.join([mark] * n)})"
            else:
                sql = f"SELECT {k}, {v} FROM {name} WHERE {k} = ANY({mark})"
            self._sql[cache_key] = sql
        return sql

    def value_by_key(
        self, conn: Connection, table: sa.Table, key: str, value: str, wanted: str
    ) -> Any:
        """The ``value`` column of the row whose ``key`` column is ``wanted`` (None if none)."""
        sql = self._lookup_sql(conn, table, key, value, 0)
        return conn.exec_driver_sql(sql, (wanted,)).scalar()

    def values_by_key(
        self, conn: Connection, table: sa.Table, key: str, value: str, wanted: Iterable[str]
    ) -> dict[str, Any]:
        """``{key: value}`` of the rows whose ``key`` column is among ``wanted``: one statement
        per batch of keys."""
        out: dict[str, Any] = {}
        for batch in self.batches(wanted):
            sql = self._lookup_sql(conn, table, key, value, len(batch))
            params = tuple(batch) if self.name == "sqlite" else (batch,)
            out.update(conn.exec_driver_sql(sql, params).all())
        return out

    def existing(self, conn: Connection, column: sa.Column[Any], keys: Iterable[str]) -> set[str]:
        """Which of ``keys`` are values of ``column``."""
        found: set[str] = set()
        for batch in self.batches(keys):
            found.update(conn.scalars(sa.select(column).where(self.among(column, batch))))
        return found


# ---------------------------------------------------------------- the database handle


class SQLDatabase:
    """The SQL database at ``url``, used through :meth:`transaction` and :meth:`read`.

    ``busy_timeout`` (seconds, SQLite only) is how long a writer waits for another writer
    before failing with "database is locked". Pickles as its URL and ``busy_timeout``:
    unpickling calls ``__init__`` again, so a subclass reopens the database its own way.
    """

    def __init__(self, url: str, *, busy_timeout: float = 60.0) -> None:
        self.url = url
        self.busy_timeout = busy_timeout
        parsed = normalise_url(url)
        self.dialect = "sqlite" if parsed.drivername.startswith("sqlite") else "postgresql"
        self._shown_url = parsed.render_as_string(hide_password=True)
        self._ops = DialectOps(self.dialect)
        self._local = threading.local()  # .writing: this thread is inside transaction()
        self._engine = create_engine(parsed, busy_timeout)

    @staticmethod
    def shown_url(url: str) -> str:
        """``url`` as messages show it (the password hidden)."""
        return normalise_url(url).render_as_string(hide_password=True)

    @property
    def ops(self) -> DialectOps:
        """This database's dialect-specific bulk statements (for tables of other layers kept in
        the same database)."""
        return self._ops

    # ---- lifecycle

    def close(self) -> None:
        """Close every pooled connection; the object can still be used (it reconnects)."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._shown_url!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "busy_timeout": self.busy_timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], busy_timeout=state["busy_timeout"])  # type: ignore[misc]

    @property
    def engine(self) -> Engine:
        return self._engine

    # ---- transactions

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: commits when the block ends, rolls back if it raises.

        On SQLite it begins with ``BEGIN IMMEDIATE`` (one writer at a time; others wait up to
        ``busy_timeout``). Transactions do not nest: pass the open one's connection instead.
        """
        if getattr(self._local, "writing", False):
            raise StoreError(
                f"a write transaction on {self._shown_url} is already open in this thread; "
                "pass its connection on instead of opening another (the two would wait for "
                "each other)"
            )
        self._local.writing = True
        try:
            with self._engine.connect() as conn, conn.begin():
                yield conn
        finally:
            self._local.writing = False

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction seeing one consistent snapshot; never blocks writers."""
        with self._engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.execution_options(headrace_begin="DEFERRED")
            else:
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            conn.begin()
            try:
                yield conn
            finally:
                conn.rollback()
