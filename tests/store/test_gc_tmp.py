"""gc removes the temporary files of object writers killed before their rename, and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from headrace.store.store import Store

HOUR = 3600.0


@pytest.fixture
def store(tmp_path: Path):
    s = Store.open(tmp_path / "home")
    yield s
    s.close()


def _age(path: Path | str, seconds: float) -> None:
    """Set ``path``'s access and modification times ``seconds`` in the past."""
    stamp = time.time() - seconds
    os.utime(path, (stamp, stamp))


def _objects_root(store: Store) -> Path:
    return Path(store.objects.url).expanduser()


def _temp_path(store: Store, key: str, pid: int = 4242, thread: int = 139_812_345) -> Path:
    """Where ``ObjectStore._put_local`` writes ``key`` before renaming it into place."""
    return Path(f"{store.objects.location(key)}.{pid}.{thread}.tmp")


def _fake_temp(store: Store, key: str, size: int, age: float, **kw: int) -> Path:
    path = _temp_path(store, key, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00" * size)
    _age(path, age)
    return path


def _some_file(store: Store) -> None:
    store.create_repo("r")
    store.put_file("r@master:/a.txt", b"alpha")
    store.put_file("r@master:/b.txt", b"beta" * 1000)


def test_old_temp_files_are_removed_and_counted(store: Store) -> None:
    _some_file(store)
    live = next(iter(store.objects.keys()))
    beside_live = _fake_temp(store, live, 100, 2 * HOUR)  # a key's folder that has objects
    elsewhere = _fake_temp(store, "ab" + "c" * 62, 30, 2 * HOUR, pid=7)  # a folder of its own
    report = store.gc(grace_seconds=HOUR)
    assert (report.temp_files_removed, report.temp_bytes_freed) == (2, 130)
    assert not beside_live.exists() and not elsewhere.exists()
    assert report.objects_deleted == 0 and report.bytes_freed == 0  # temp bytes counted apart
    assert store.get_file("r@master:/a.txt") == b"alpha"
    assert store.get_file("r@master:/b.txt") == b"beta" * 1000
    assert store.fsck().ok
    again = store.gc(grace_seconds=HOUR)
    assert (again.temp_files_removed, again.temp_bytes_freed) == (0, 0)


def test_young_temp_files_are_kept(store: Store) -> None:
    """A temp file younger than the grace period may be a write in progress."""
    _some_file(store)
    key = "cd" + "e" * 62
    now = _fake_temp(store, key, 10, 0, pid=1)
    almost = _fake_temp(store, key, 10, HOUR - 120, pid=2)
    old = _fake_temp(store, key, 10, HOUR + 120, pid=3)
    report = store.gc(grace_seconds=HOUR)
    assert report.temp_files_removed == 1
    assert now.exists() and almost.exists() and not old.exists()
    assert store.gc(grace_seconds=0).temp_files_removed == 2  # gc --grace 0 takes them too


def test_dry_run_removes_nothing(store: Store) -> None:
    _some_file(store)
    paths = [_fake_temp(store, f"{i:02x}" + "f" * 62, 50, 2 * HOUR) for i in range(3)]
    young = _fake_temp(store, "ee" + "f" * 62, 50, 0)
    report = store.gc(dry_run=True, grace_seconds=HOUR)
    assert report.dry_run
    assert (report.temp_files_removed, report.temp_bytes_freed) == (3, 150)
    assert all(p.exists() for p in [*paths, young])
    real = store.gc(grace_seconds=HOUR)
    assert (real.temp_files_removed, real.temp_bytes_freed) == (3, 150)
    assert not any(p.exists() for p in paths) and young.exists()
    assert store.fsck().ok


def test_only_temp_names_of_object_writes_are_touched(store: Store, tmp_path: Path) -> None:
    _some_file(store)
    root = _objects_root(store)
    key = next(iter(store.objects.keys()))
    folder = Path(store.objects.location(key)).parent
    others = [
        folder / "notes.tmp",  # not <62 hex>.<pid>.<thread>.tmp
        folder / f"{key[2:]}.tmp",
        folder / f"{key[2:]}.12.x.tmp",
        folder / f"{key[2:].upper()}.12.34.tmp",
        root / f"{key[2:]}.12.34.tmp",  # not inside a two-hex-digit folder
        root / "zz" / f"{key[2:]}.12.34.tmp",
    ]
    for path in others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"keep")
        _age(path, 2 * HOUR)
    a_dir = folder / f"{'0' * 62}.1.2.tmp"  # right name, but a directory
    a_dir.mkdir()
    _age(a_dir, 2 * HOUR)
    # get_file_to's partial files live in the user's destination, never in the store.
    dest = tmp_path / "out"
    part = dest / "a.txt.headrace-part"
    dest.mkdir()
    part.write_bytes(b"partial")
    _age(part, 2 * HOUR)
    report = store.gc(grace_seconds=0)
    assert report.temp_files_removed == 0
    assert all(p.exists() for p in others) and a_dir.is_dir() and part.exists()
    assert store.fsck().ok


def test_leftover_of_a_killed_writer(store: Store) -> None:
    """A real ``ObjectStore.put`` killed between writing its temp file and renaming it."""
    _some_file(store)
    code = textwrap.dedent(
        """
        import os, signal, sys
        from headrace.store.objects import ObjectStore

        objects = ObjectStore(sys.argv[1])
        os.replace = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
        objects.put(b"never committed " * 100)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, store.objects.url],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -9, done.stderr
    root = _objects_root(store)
    leftovers = sorted(root.glob("*/*.tmp"))
    assert len(leftovers) == 1
    size = leftovers[0].stat().st_size
    keys_before = set(store.objects.keys())
    assert store.gc(grace_seconds=HOUR).temp_files_removed == 0  # written just now
    assert leftovers[0].exists()
    _age(leftovers[0], 2 * HOUR)
    report = store.gc(grace_seconds=HOUR)
    assert (report.temp_files_removed, report.temp_bytes_freed) == (1, size)
    assert not leftovers[0].exists()
    assert set(store.objects.keys()) == keys_before
    assert store.fsck().ok


def test_object_store_elsewhere_reports_no_temp_files(tmp_path: Path) -> None:
    """Not a local folder (``memory://``): nothing to scan, and gc still works."""
    store = Store.open(tmp_path / "home", objects=f"memory://{uuid.uuid4().hex}")
    try:
        _some_file(store)
        report = store.gc(grace_seconds=0)
        assert (report.temp_files_removed, report.temp_bytes_freed) == (0, 0)
        assert store.fsck().ok
    finally:
        store.close()
