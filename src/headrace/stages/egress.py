"""Egress: copying a stage's finished output commit out of the store.

A stage spec's ``egress`` is either an fsspec URL or a :class:`~headrace.stages.spec.SqlEgress`;
:func:`egress_commit` sends one finished commit there and returns an :class:`EgressReport`.

**A folder or bucket (fsspec URL)** becomes a mirror of the commit: each file ``/p`` of the
commit is written at ``<url>/p``. Given ``previous`` (the commit egressed last time to the same
URL), only the files :meth:`~headrace.store.Store.diff` reports added or modified are written
and the deleted ones removed; without it every file is written and every file under the URL
that the commit lacks is removed (so point the URL at a folder of its own). Removals come
first, so a path that turned from a file into a directory (or back) can be written. Each file
is written whole before it becomes visible: on a local disk under a temporary name in the same
folder, then renamed; on object stores (S3, GCS, Azure, memory) by one upload of the whole
file, read first (into memory, or a local temporary file when over 64 MiB), which the store
publishes only when complete; elsewhere under a temporary name, then moved.

**A SQL table** gets every ``.csv`` file of the commit (``.jsonl`` and ``.ndjson`` for the
``jsonl`` format; in any letter case), in path order, as its whole contents: one transaction
deletes the old rows and inserts the new ones in batches, so readers see the old table or the new
one, never a mix, and any failure leaves the old contents. A missing table is created with a TEXT
column per header field (CSV) or per key of the first object (JSON lines); an existing table must
have exactly the files' columns. Values are inserted as text (JSON numbers, booleans and nested
values as their JSON text; ``null`` as NULL) for the database to convert to the column's type; an
empty CSV value in a column that is not text becomes NULL. Concurrent loads of one table are
serialised (SQLite ``BEGIN IMMEDIATE``, PostgreSQL ``LOCK TABLE ... IN EXCLUSIVE MODE``, which
still lets readers read).

Every failure is an :class:`EgressError` naming the commit, the target (password hidden) and,
when one is involved, the file.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from headrace.stages.spec import SqlEgress, hide_password
from headrace.store.store import Store

__all__ = ["EgressError", "EgressReport", "egress_commit"]

# Rows per INSERT batch: large enough to amortise round trips, small enough to bound memory.
_BATCH_ROWS = 2000
# fsspec protocols whose uploads become visible only once complete (no rename needed).
_ATOMIC_UPLOAD = frozenset(
    {"s3", "s3a", "gs", "gcs", "abfs", "abfss", "az", "adl", "oci", "oss", "memory"}
)
_SUFFIXES = {"csv": (".csv",), "jsonl": (".jsonl", ".ndjson")}
# Files up to this size are uploaded from memory, larger ones from a local temporary file.
_IN_MEMORY_BYTES = 64 << 20


@dataclass(frozen=True)
class EgressReport:
    """What :func:`egress_commit` did.

    ``target`` is the URL (and table) without password. For a SQL target ``files_written``
    counts the files loaded and ``rows`` the rows the table now holds; ``files_deleted`` is 0.
    """

    target: str
    files_written: int
    files_deleted: int
    rows: int
    seconds: float


class EgressError(Exception):
    """Egress failed; ``target`` is shown without password, ``path`` is the file, if any."""

    def __init__(self, commit: str, target: str, path: str | None, problem: str) -> None:
        self.commit = commit
        self.target = target
        self.path = path
        self.problem = problem
        at = f" at {path}" if path else ""
        super().__init__(f"egress of {commit} to {target} failed{at}: {problem}")

    def __reduce__(self) -> tuple[type[EgressError], tuple[str, str, str | None, str]]:
        return (EgressError, (self.commit, self.target, self.path, self.problem))


def egress_commit(
    store: Store, commit: str, target: str | SqlEgress, previous: str | None = None
) -> EgressReport:
    """Send the files of the finished commit ``commit`` (``repo@<id>`` or ``repo@branch``) to
    ``target``: mirror them under an fsspec URL or load them into a SQL table.

    ``previous`` (``repo@<id>`` or a bare commit id of the same repo) is the commit last sent
    to the same URL: only the difference is written then. It is ignored for a SQL target,
    which is always replaced whole.

    >>> import tempfile
    >>> store = Store.open(tempfile.mkdtemp())
    >>> _ = store.create_repo("out")
    >>> first = store.put_files("out@master", [("/a.csv", b"x\\n1\\n"), ("/b.csv", b"x\\n2\\n")])
    >>> second = store.put_files("out@master", [("/b.csv", b"x\\n3\\n")])
    >>> url = "memory://egress-doc"
    >>> egress_commit(store, f"out@{first.id}", url).files_written
    2
    >>> report = egress_commit(store, f"out@{second.id}", url, previous=first.id)
    >>> report.files_written, report.files_deleted
    (1, 0)
    >>> fsspec.filesystem("memory").cat("/egress-doc/b.csv")
    b'x\\n3\\n'
    """
    shown = _show(target)
    started = time.perf_counter()
    try:
        info = store.inspect_commit(commit)
    except Exception as err:
        raise EgressError(commit, shown, None, _problem(err)) from err
    ref = f"{info.repo}@{info.id}"
    if not info.finished:
        raise EgressError(
            ref, shown, None, "the commit is still open; egress it after finish_commit"
        )
    if isinstance(target, SqlEgress):
        files, rows = _SqlLoad(store, ref, target, shown).run()
        return EgressReport(shown, files, 0, rows, time.perf_counter() - started)
    old = None
    if previous is not None:
        old = previous if "@" in previous else f"{info.repo}@{previous}"
    written, deleted = _Mirror(store, ref, target, shown).run(old)
    return EgressReport(shown, written, deleted, 0, time.perf_counter() - started)


def _show(target: str | SqlEgress) -> str:
    if isinstance(target, SqlEgress):
        return f"table {target.table} in {hide_password(target.url)}"
    return hide_password(target)


def _problem(err: BaseException) -> str:
    """A short message for ``err``: the driver's message for database errors (SQLAlchemy's
    own text repeats the statement and every parameter of a batch)."""
    if isinstance(err, sa.exc.DBAPIError) and err.orig is not None:
        text = str(err.orig).strip()
    else:
        text = str(err).strip()
    return hide_password(f"{type(err).__name__}: {text}" if text else type(err).__name__)


# ---------------------------------------------------------------------------------------------
# Files: a mirror under an fsspec URL


class _Mirror:
    """Write (and delete) the commit's files under one fsspec URL."""

    def __init__(self, store: Store, ref: str, url: str, shown: str) -> None:
        self.store = store
        self.ref = ref
        self.shown = shown
        try:
            self.fs, root = fsspec.core.url_to_fs(url)
        except Exception as err:
            raise EgressError(ref, shown, None, _problem(err)) from err
        self.root = root.rstrip("/")
        protocols = self.fs.protocol
        protocols = {protocols} if isinstance(protocols, str) else set(protocols)
        self.local = "file" in protocols or "local" in protocols
        self.upload = bool(protocols & _ATOMIC_UPLOAD)

    def run(self, previous: str | None) -> tuple[int, int]:
        try:
            if previous is None:
                paths = [f.path for f in self.store.walk_files(self.ref)]
                keep = set(paths)
                stale = [p for p in self._existing() if p not in keep]
            else:
                changes = self.store.diff(self.ref, previous)
                stale = [c.path for c in changes if c.kind == "deleted"]
                paths = [c.path for c in changes if c.kind != "deleted"]
        except Exception as err:
            raise EgressError(self.ref, self.shown, None, _problem(err)) from err
        for path, action in [
            *((p, self._delete) for p in stale),
            *((p, self._write) for p in paths),
        ]:
            try:
                action(path)
            except Exception as err:
                raise EgressError(self.ref, self.shown, path, _problem(err)) from err
        return len(paths), len(stale)

    def _existing(self) -> list[str]:
        """Paths (``/dir/name``, relative to the root) of the files now under the URL."""
        if not self.fs.exists(self.root or "/"):
            return []
        found = self.fs.find(self.root or "/", withdirs=False)
        cut = len(self.root)
        out = []
        for full in found:
            rel = "/" + full[cut:].lstrip("/") if self.root else "/" + full.lstrip("/")
            out.append(rel)
        return out

    def _target(self, path: str) -> str:
        return self.root + path

    def _write(self, path: str) -> None:
        blocks = self.store.open_file(f"{self.ref}:{path}")
        final = self._target(path)
        folder, _, name = final.rpartition("/")
        if self.local:
            os.makedirs(folder or "/", exist_ok=True)
            temporary = _temporary_name(folder, name)
            try:
                with open(temporary, "wb") as out:
                    for block in blocks:
                        out.write(block)
                os.replace(temporary, final)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.remove(temporary)
                raise
            return
        if self.upload:
            # The whole file is read first: an upload closed after a failed read would
            # publish half of it.
            data, spilled = _gather(blocks)
            try:
                if spilled is None:
                    self.fs.pipe_file(final, data)
                else:
                    self.fs.put_file(spilled, final)
            finally:
                if spilled is not None:
                    os.remove(spilled)
            return
        self.fs.makedirs(folder, exist_ok=True)
        temporary = _temporary_name(folder, name)
        try:
            with self.fs.open(temporary, "wb") as out:
                for block in blocks:
                    out.write(block)
            self.fs.mv(temporary, final)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(temporary)
            raise

    def _delete(self, path: str) -> None:
        final = self._target(path)
        if self.local:
            with contextlib.suppress(FileNotFoundError):
                os.remove(final)
            # Remove folders the deletion left empty, up to (not including) the root.
            folder = os.path.dirname(final)
            while len(folder) > len(self.root) and folder.startswith(self.root):
                try:
                    os.rmdir(folder)
                except OSError:
                    break
                folder = os.path.dirname(folder)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(final)


def _temporary_name(folder: str, name: str) -> str:
    """A hidden name beside ``folder/name`` for writing it (kept short: names have limits)."""
    return f"{folder}/.{name[:100]}.headrace-{uuid.uuid4().hex[:12]}"


def _gather(blocks: Iterator[bytes]) -> tuple[bytes, str | None]:
    """A file's bytes in memory, or in a local temporary file (its path) when large."""
    parts: list[bytes] = []
    size = 0
    for block in blocks:
        parts.append(block)
        size += len(block)
        if size > _IN_MEMORY_BYTES:
            handle, spilled = tempfile.mkstemp(prefix="headrace-egress-")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.writelines(parts)
                    parts.clear()
                    out.writelines(blocks)
            except BaseException:
                os.remove(spilled)
                raise
            return b"", spilled
    return b"".join(parts), None


# ---------------------------------------------------------------------------------------------
# Rows: replacing a SQL table's contents


class _SqlLoad:
    """Load the commit's CSV or JSON-lines files into one table, in one transaction."""

    def __init__(self, store: Store, ref: str, target: SqlEgress, shown: str) -> None:
        self.store = store
        self.ref = ref
        self.target = target
        self.shown = shown
        schema, _, name = target.table.rpartition(".")
        self.schema = schema or None
        self.name = name
        self.path: str | None = None  # the file being read, for error messages

    def fail(self, problem: str) -> EgressError:
        return EgressError(self.ref, self.shown, self.path, problem)

    def run(self) -> tuple[int, int]:
        suffixes = _SUFFIXES[self.target.format]
        try:
            paths = [
                f.path for f in self.store.walk_files(self.ref) if f.path.lower().endswith(suffixes)
            ]
            engine = _engine(self.target.url)
        except Exception as err:
            raise self.fail(_problem(err)) from err
        try:
            with engine.begin() as conn:
                rows = self._load(conn, paths)
        except EgressError:
            raise
        except Exception as err:
            raise self.fail(_problem(err)) from err
        finally:
            engine.dispose()
        return len(paths), rows

    def _load(self, conn: Connection, paths: list[str]) -> int:
        columns: list[str] | None = None
        not_text: set[str] = set()
        inspector = sa.inspect(conn)
        if inspector.has_table(self.name, schema=self.schema):
            existing = inspector.get_columns(self.name, schema=self.schema)
            columns = [c["name"] for c in existing]
            not_text = {c["name"] for c in existing if not isinstance(c["type"], sa.String)}
            insert = self._empty(conn, columns)
        total = 0
        for path in paths:
            self.path = path
            header, records = self._open(path)
            if header == []:  # an empty CSV file: no columns, no rows
                continue
            if columns is None:  # no table yet: this file's columns make it
                if header is None:  # JSON lines: the first object's keys
                    first = next(records, None)
                    if first is None:
                        continue
                    columns, records = list(first), _chain_first(first, records)
                else:
                    columns = header
                self._create(conn, columns)
                insert = self._empty(conn, columns)
            wanted = set(columns)
            if header is not None and set(header) != wanted:
                raise self.fail(
                    f"its columns {header} are not those of table {self.target.table} "
                    f"{columns}; make the header match the table, or alter or drop the table"
                )
            batch: list[dict[str, Any]] = []
            for record in records:
                if header is None and record.keys() != wanted:
                    record = self._fit(record, columns)
                for name in not_text:
                    if record.get(name) == "":
                        record[name] = None
                batch.append(record)
                if len(batch) >= _BATCH_ROWS:
                    conn.execute(insert, batch)
                    total += len(batch)
                    batch = []
            if batch:
                conn.execute(insert, batch)
                total += len(batch)
        self.path = None
        return total

    def _empty(self, conn: Connection, columns: list[str]) -> sa.Insert:
        """Lock the table against other writers, delete its rows, return its INSERT."""
        table = sa.table(self.name, *(sa.column(c) for c in columns), schema=self.schema)
        if conn.dialect.name == "postgresql":
            quoted = conn.dialect.identifier_preparer.format_table(table)
            conn.exec_driver_sql(f"LOCK TABLE {quoted} IN EXCLUSIVE MODE")
        conn.execute(sa.delete(table))
        return sa.insert(table)

    def _create(self, conn: Connection, columns: list[str]) -> None:
        if conn.dialect.name == "postgresql":
            long = [c for c in columns if len(c.encode("utf-8")) > 63]
            if long:
                raise self.fail(
                    f"the column names {long} are longer than PostgreSQL's 63 bytes; "
                    "shorten them in the file"
                )
        sa.Table(
            self.name,
            sa.MetaData(),
            *(sa.Column(c, sa.Text) for c in columns),
            schema=self.schema,
        ).create(conn)

    def _fit(self, record: dict[str, Any], columns: list[str]) -> dict[str, Any]:
        """A JSON object with missing keys as NULL; keys that are not columns are an error."""
        extra = sorted(set(record) - set(columns))
        if extra:
            raise self.fail(
                f"the keys {extra} are not columns of table {self.target.table} {columns}; "
                "add them to the table or drop them from the file"
            )
        return {name: record.get(name) for name in columns}

    # -- reading files ----------------------------------------------------------------------

    def _open(self, path: str) -> tuple[list[str] | None, Iterator[dict[str, Any]]]:
        """A CSV file's header and rows (an empty file has no header and no rows), or a JSON
        lines file's objects (header None)."""
        text = io.TextIOWrapper(
            io.BufferedReader(_BlockReader(self.store.open_file(f"{self.ref}:{path}")), 1 << 16),
            encoding="utf-8-sig",
            newline="",
        )
        if self.target.format != "csv":
            return None, self._json_rows(text)
        reader = csv.reader(text)
        try:
            header = next(reader, None)
        except UnicodeDecodeError as err:
            raise self.fail(_not_utf8(err)) from err
        except csv.Error as err:
            raise self.fail(f"cannot read line 1: {err}") from err
        if header is None:
            return [], iter(())
        if any(not name for name in header):
            raise self.fail(f"the header {header} has an empty column name")
        if len(set(header)) != len(header):
            twice = sorted({n for n in header if header.count(n) > 1})
            raise self.fail(f"the header names the columns {twice} more than once")
        return header, self._csv_rows(reader, header)

    def _csv_rows(self, reader: Any, header: list[str]) -> Iterator[dict[str, Any]]:
        width = len(header)
        try:
            for row in reader:
                if len(row) != width:
                    if not row:  # a blank line
                        continue
                    raise self.fail(
                        f"line {reader.line_num} has {len(row)} values but the header has "
                        f"{width} columns {header}"
                    )
                yield dict(zip(header, row))
        except UnicodeDecodeError as err:
            raise self.fail(_not_utf8(err)) from err
        except csv.Error as err:
            raise self.fail(f"cannot read line {reader.line_num + 1}: {err}") from err

    def _json_rows(self, text: io.TextIOWrapper) -> Iterator[dict[str, Any]]:
        number = 0
        try:
            for line in text:
                number += 1
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as err:
                    raise self.fail(f"line {number} is not JSON: {err}") from None
                if not isinstance(value, dict):
                    raise self.fail(
                        f"line {number} is a JSON {type(value).__name__}; each line must be "
                        "an object of column values"
                    )
                yield {key: _text(item) for key, item in value.items()}
        except UnicodeDecodeError as err:
            raise self.fail(_not_utf8(err)) from err


def _not_utf8(err: UnicodeDecodeError) -> str:
    return f"not UTF-8 text ({err.reason} at byte {err.start} of a block); save it as UTF-8"


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _chain_first(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


def _engine(url: str) -> Engine:
    """An engine whose transactions include DDL (SQLite's module would commit around it)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, poolclass=NullPool)
    engine = sa.create_engine(parsed, poolclass=NullPool, connect_args={"timeout": 60})

    @sa.event.listens_for(engine, "connect")
    def _autocommit_driver(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy issues BEGIN itself

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class _BlockReader(io.RawIOBase):
    """A readable binary stream over an iterator of byte blocks (a store file's contents)."""

    def __init__(self, blocks: Iterator[bytes]) -> None:
        self._blocks = blocks
        self._block = memoryview(b"")
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._offset >= len(self._block):
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._block = memoryview(block)
            self._offset = 0
        n = min(len(buffer), len(self._block) - self._offset)
        buffer[:n] = self._block[self._offset : self._offset + n]
        self._offset += n
        return n
