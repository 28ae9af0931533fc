"""A damaged metadata database is reported as damaged (issue 13 item 9), and a store whose
database was lost is not silently restarted over its objects. Damage of an object shared by
many files names every file it touches (item 10)."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from headrace.store.errors import StoreError
from headrace.store.store import Store


def _filled(home: Path, db: str | None = None) -> None:
    with Store.open(home, db=db) as store:
        store.create_repo("r")
        for i in range(40):
            store.put_file(f"r@master:/f{i}", os.urandom(3000))


def _garble(path: Path, seed: int, pages: int = 4) -> None:
    """Overwrite ``pages`` random pages (after the first) with random bytes."""
    rng = random.Random(seed)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        for _ in range(pages):
            f.seek(rng.randrange(1, size // 4096) * 4096)
            f.write(rng.randbytes(4096))


@pytest.mark.parametrize("seed", range(6))
def test_garbage_pages_are_reported_as_damage(tmp_path: Path, seed: int) -> None:
    home = tmp_path / "home"
    _filled(home)
    _garble(home / "metadata.db", seed)
    try:
        store = Store.open(home)
    except StoreError as e:  # the damage is where opening reads
        assert "is damaged" in str(e) and "restore it from a backup" in str(e)
        assert "newer" not in str(e)
        return
    with store:
        report = store.fsck()
    database = [p for p in report.problems if p.startswith("metadata database: ")]
    assert database, report.problems
    assert not any("newer" in p for p in report.problems)


def test_a_damaged_version_table_is_not_called_newer(tmp_path: Path) -> None:
    """A version number read from a damaged file is not trusted: the integrity check decides
    whether the database is newer or damaged (it used to say "upgrade headrace")."""
    home = tmp_path / "home"
    _filled(home)
    with Store.open(home) as store, store.meta.transaction() as conn:
        conn.execute(sa.text("INSERT INTO schema_version VALUES (99, 0)"))
    _garble(home / "metadata.db", 1, pages=6)
    with pytest.raises(StoreError) as info:
        Store.open(home)
    assert "is damaged" in str(info.value) and "newer" not in str(info.value)


def test_fsck_runs_the_integrity_check(tmp_path: Path) -> None:
    home = tmp_path / "home"
    _filled(home)
    with Store.open(home) as store:
        assert store.fsck().ok
        assert store.meta.integrity_problems() == []
        raw = sqlite3.connect(home / "metadata.db")  # a row whose commit is gone
        raw.execute("INSERT INTO staged VALUES ('0123', '/x', NULL, NULL)")  # no FK checks
        raw.commit()
        raw.close()
        report = store.fsck()
        assert any("table staged row" in p and "commits" in p for p in report.problems)


def test_fsck_sanity_checks_postgresql(tmp_path: Path, postgresql_metadata_url: str) -> None:
    home = tmp_path / "home"
    _filled(home, postgresql_metadata_url)
    with Store.open(home, db=postgresql_metadata_url) as store:
        assert store.fsck().ok
        with store.meta.engine.connect() as conn:  # a reference the constraints would refuse
            conn.exec_driver_sql("ALTER TABLE staged DROP CONSTRAINT staged_commit_id_fkey")
            conn.exec_driver_sql("INSERT INTO staged VALUES ('0123', '/x', NULL, NULL)")
            conn.commit()
        report = store.fsck()
        assert any("a staged change's commit is missing" in p for p in report.problems)


@pytest.mark.parametrize("how", ["truncated", "deleted"])
def test_lost_database_with_objects_is_refused(tmp_path: Path, how: str) -> None:
    """``metadata.db`` truncated to 0 bytes (or gone) while ``objects/`` holds the store's
    objects: opening refuses, every time, instead of starting an empty store over them."""
    home = tmp_path / "home"
    _filled(home)
    db = home / "metadata.db"
    if how == "truncated":
        db.write_bytes(b"")
    else:
        db.unlink()
    for _ in range(2):
        with pytest.raises(StoreError, match=r"holds no store .* objects folder .* holds the "
                           r"objects of one: the store's database was lost"):  # fmt: skip
            Store.open(home)
    Store.open(tmp_path / "fresh").close()  # a new store (no objects) still opens


def test_lost_postgresql_schema_with_objects_is_refused(
    tmp_path: Path, postgresql_metadata_url: str
) -> None:
    home = tmp_path / "home"
    _filled(home)  # SQLite metadata; its objects folder is then given a new, empty database
    with pytest.raises(StoreError, match="the store's database was lost"):
        Store.open(home, db=postgresql_metadata_url)


def _pack_of_12(tmp_path: Path) -> tuple[Store, str, dict[str, tuple[int, int]]]:
    store = Store.open(tmp_path / "home")
    store.create_repo("r")
    store.put_files("r@master", [(f"/f{i:02d}.txt", b"file %02d\n" % i * 20) for i in range(12)])
    slices = {}
    for f in store.walk_files("r@master"):
        (segment,) = store.contents([f.hash])[f.hash].layout
        assert segment[0] == "p"
        slices[f.path] = (segment[2], segment[3])
        pack = segment[1]
    return store, pack, slices


def test_fsck_names_the_files_whose_slice_of_a_pack_is_damaged(tmp_path: Path) -> None:
    """Issue 13 item 10: damage inside a pack object shared by 12 small files names the files
    whose bytes it hit (here the 8th), not the first file that uses the pack."""
    store, pack, slices = _pack_of_12(tmp_path)
    offset, _ = slices["/f07.txt"]
    location = store.objects.location(pack)
    with open(location, "r+b") as f:
        f.seek(1 + offset + 3)  # after the format header byte
        f.write(b"XX")
    problems = store.fsck().problems
    assert len(problems) == 1 and ":/f07.txt: object " in problems[0], problems
    assert "corrupt" in problems[0]
    store.close()


def test_fsck_names_every_file_of_a_missing_pack(tmp_path: Path) -> None:
    store, pack, slices = _pack_of_12(tmp_path)
    os.unlink(store.objects.location(pack))
    problems = store.fsck().problems
    named = sorted(p.split(":")[1] for p in problems)
    assert named == sorted(slices) and all("is missing" in p for p in problems)
    store.close()
