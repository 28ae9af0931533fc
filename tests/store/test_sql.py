"""SQL plumbing under the metadata: switching a new SQLite file to WAL mode under contention."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from headrace.store.metadata import Metadata
from headrace.store.sql import sqlite_url


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """A connection holding a write lock on the (new, not yet WAL) file at ``path``."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_switching_a_new_file_to_wal_waits_for_another_connection(tmp_path: Path) -> None:
    # Switching to WAL upgrades a read lock to a write lock, for which SQLite does not call the
    # busy handler: without its own wait, opening failed at once with "database is locked".
    path = tmp_path / "metadata.db"
    holder = _hold_write_lock(path)
    release = threading.Timer(0.3, holder.execute, ["ROLLBACK"])
    release.start()
    started = time.monotonic()
    try:
        with Metadata(sqlite_url(path), busy_timeout=30) as meta:
            assert time.monotonic() - started >= 0.25
            with meta.read() as conn:
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        release.join()
        holder.close()


def test_switching_to_wal_gives_up_after_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    holder = _hold_write_lock(path)
    started = time.monotonic()
    try:
        with pytest.raises(sa.exc.OperationalError, match="database is locked"):
            Metadata(sqlite_url(path), busy_timeout=0.3)
        assert time.monotonic() - started >= 0.25  # it did wait (a lower bound cannot flake)
    finally:
        holder.close()


def test_concurrent_first_opens_of_one_file_all_succeed(tmp_path: Path) -> None:
    # Many rounds of the race in test_metadata.py::test_concurrent_first_opens_migrate_once.
    for round_ in range(20):
        url = sqlite_url(tmp_path / f"{round_}.db")
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def open_it(url: str = url, barrier: threading.Barrier = barrier) -> None:
            barrier.wait(10)
            try:
                Metadata(url).close()
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=open_it) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == [], f"round {round_}"
