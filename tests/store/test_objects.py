"""ObjectStore: one suite run over a local folder and ``memory://``."""

from __future__ import annotations

import os
import pickle
import threading
import uuid
from collections.abc import Iterator

import blake3
import cloudpickle
import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headrace.store.errors import CorruptObject, ObjectNotFound, StoreError
from headrace.store.objects import ObjectStore, hash_bytes

COMPRESSIBLE = b"headrace object store " * 500
RANDOM = os.urandom(4096)


@pytest.fixture(params=["local", "memory"])
def root(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[str]:
    """A fresh, empty store location: a local folder or a unique ``memory://`` root."""
    if request.param == "local":
        yield str(tmp_path) + "/objects"
        return
    url = f"memory://objects-test-{uuid.uuid4().hex}"
    yield url
    fs = fsspec.filesystem("memory")
    path = url.removeprefix("memory://")
    if fs.exists(path):
        fs.rm(path, recursive=True)


def read_raw(location: str) -> bytes:
    with fsspec.open(location, "rb") as f:
        return f.read()


def write_raw(location: str, data: bytes) -> None:
    with fsspec.open(location, "wb") as f:
        f.write(data)


def test_put_get_round_trip(root: str) -> None:
    store = ObjectStore(root)
    key = store.put(b"hello world")
    assert key == blake3.blake3(b"hello world").hexdigest()
    assert store.get(key) == b"hello world"
    assert store.exists(key)
    assert store.verify(key)
    assert store.size(key) == len(b"hello world") + 1  # format header
    assert list(store.keys()) == [key]


def test_layout_is_two_level_by_key(root: str) -> None:
    store = ObjectStore(root)
    key = store.put(b"layout")
    location = store.location(key)
    assert location.endswith(f"/{key[:2]}/{key[2:]}")
    assert read_raw(location) == b"\x00layout"


def test_same_bytes_stored_once(root: str) -> None:
    store = ObjectStore(root)
    first = store.put(b"twice")
    second = store.put(bytearray(b"twice"))
    third = store.put(memoryview(b"xxtwicexx")[2:7])
    assert first == second == third
    assert list(store.keys()) == [first]


def test_empty_object(root: str) -> None:
    store = ObjectStore(root, compression="zstd")
    key = store.put(b"")
    assert key == hash_bytes(b"")
    assert store.get(key) == b""


def test_missing_object_names_key(root: str) -> None:
    store = ObjectStore(root)
    key = hash_bytes(b"never stored")
    assert not store.exists(key)
    assert not store.verify(key)
    with pytest.raises(ObjectNotFound, match=key) as info:
        store.get(key)
    assert isinstance(info.value, StoreError)
    assert isinstance(info.value, KeyError)
    with pytest.raises(ObjectNotFound, match=key):
        store.size(key)
    with pytest.raises(ObjectNotFound, match=key):
        store.get_range(key, 0, 1)


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_flipped_byte_is_detected(root: str, compression: str | None) -> None:
    store = ObjectStore(root, compression=compression)
    key = store.put(COMPRESSIBLE)
    location = store.location(key)
    raw = bytearray(read_raw(location))
    raw[len(raw) // 2] ^= 0x01
    write_raw(location, bytes(raw))
    with pytest.raises(CorruptObject, match=key) as info:
        store.get(key)
    assert location in str(info.value)
    assert not store.verify(key)


@pytest.mark.parametrize("raw", [b"", b"\x07abc", b"\x01not zstd at all"])
def test_damaged_format_is_corrupt(root: str, raw: bytes) -> None:
    store = ObjectStore(root)
    key = store.put(b"abc")
    write_raw(store.location(key), raw)
    with pytest.raises(CorruptObject, match=key):
        store.get(key)


def test_truncated_object_is_corrupt(root: str) -> None:
    store = ObjectStore(root)
    key = store.put(RANDOM)
    location = store.location(key)
    write_raw(location, read_raw(location)[:100])
    with pytest.raises(CorruptObject, match=key):
        store.get(key)
    with pytest.raises(CorruptObject, match=key):
        store.get_range(key, 50, 100)


def test_zstd_compresses_only_when_it_helps(root: str) -> None:
    store = ObjectStore(root, compression="zstd")
    packed = store.put(COMPRESSIBLE)
    plain = store.put(RANDOM)
    assert read_raw(store.location(packed))[:1] == b"\x01"
    assert store.size(packed) < len(COMPRESSIBLE) // 10
    assert read_raw(store.location(plain))[:1] == b"\x00"
    assert store.size(plain) == len(RANDOM) + 1
    assert store.get(packed) == COMPRESSIBLE
    assert store.get(plain) == RANDOM


def test_large_incompressible_object_skips_compression(root: str) -> None:
    store = ObjectStore(root, compression="zstd:1")
    data = os.urandom(1024 * 1024)
    key = store.put(data)
    assert store.size(key) == len(data) + 1
    assert store.get(key) == data


def test_compressed_and_plain_stores_share_objects(root: str) -> None:
    zstd_store = ObjectStore(root, compression="zstd")
    plain_store = ObjectStore(root)
    a = zstd_store.put(COMPRESSIBLE)
    b = plain_store.put(COMPRESSIBLE + b"!")
    assert plain_store.get(a) == COMPRESSIBLE
    assert zstd_store.get(b) == COMPRESSIBLE + b"!"
    # Same bytes through the other store: no rewrite, same key.
    assert plain_store.put(COMPRESSIBLE) == a
    assert read_raw(plain_store.location(a))[:1] == b"\x01"
    assert sorted(zstd_store.keys()) == sorted([a, b])


@pytest.mark.parametrize("compression", [None, "zstd"])
def test_get_range(root: str, compression: str | None) -> None:
    store = ObjectStore(root, compression=compression)
    key = store.put(COMPRESSIBLE)
    assert store.get_range(key, 0, 10) == COMPRESSIBLE[:10]
    assert store.get_range(key, 1000, 77) == COMPRESSIBLE[1000:1077]
    assert store.get_range(key, len(COMPRESSIBLE), 0) == b""
    with pytest.raises(CorruptObject, match=key):
        store.get_range(key, len(COMPRESSIBLE) - 5, 10)
    with pytest.raises(ValueError, match="invalid range"):
        store.get_range(key, -1, 3)


def test_delete_and_keys(root: str) -> None:
    store = ObjectStore(root)
    keys = {store.put(str(i).encode()) for i in range(50)}
    assert set(store.keys()) == keys
    victim = sorted(keys)[7]
    assert store.delete(victim) is True
    assert store.delete(victim) is False
    assert not store.exists(victim)
    assert set(store.keys()) == keys - {victim}
    assert list(store.keys()) == sorted(store.keys())


def test_keys_skip_temporary_and_foreign_files(root: str) -> None:
    store = ObjectStore(root)
    key = store.put(b"real")
    location = store.location(key)
    write_raw(location + ".123.456.tmp", b"\x00half")
    write_raw(location.rsplit("/", 2)[0] + "/README", b"not an object")
    assert list(store.keys()) == [key]


def test_keys_of_an_empty_store(root: str) -> None:
    assert list(ObjectStore(root).keys()) == []


@pytest.mark.parametrize("bad", ["abc", "../" + "a" * 61, "A" * 64, "g" * 64])
def test_invalid_key_is_refused(root: str, bad: str) -> None:
    store = ObjectStore(root)
    with pytest.raises(ValueError, match="invalid object key"):
        store.get(bad)
    with pytest.raises(ValueError, match="invalid object key"):
        store.exists(bad)


def test_put_many(root: str) -> None:
    store = ObjectStore(root, compression="zstd")
    items = [b"one", COMPRESSIBLE, b"one", RANDOM]
    keys = store.put_many(items)
    assert keys == [hash_bytes(i) for i in items]
    assert [store.get(k) for k in keys] == items
    assert len(set(store.keys())) == 3
    assert store.put_many([]) == []


def test_trusted_key_is_used_and_caught_on_read(root: str) -> None:
    store = ObjectStore(root)
    wrong = hash_bytes(b"something else")
    assert store.put(b"payload", wrong) == wrong
    with pytest.raises(CorruptObject, match=wrong):
        store.get(wrong)


def test_unknown_compression_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown compression 'lz4'"):
        ObjectStore("memory://unused", compression="lz4")
    with pytest.raises(ValueError, match="zstd:99"):
        ObjectStore("memory://unused", compression="zstd:99")
    assert ObjectStore("memory://unused", compression="zstd:19").compression == "zstd:19"


def test_file_url_and_plain_path_are_the_same_store(tmp_path: object) -> None:
    folder = str(tmp_path) + "/objs"
    key = ObjectStore(folder).put(b"shared")
    assert ObjectStore("file://" + folder).get(key) == b"shared"
    assert ObjectStore(folder).location(key).startswith(folder)


def test_no_temporary_files_left_behind(tmp_path: object) -> None:
    folder = str(tmp_path) + "/objs"
    store = ObjectStore(folder, compression="zstd", fsync=True)
    for i in range(20):
        store.put(b"x" * i * 100)
    names = [n for _, _, files in os.walk(folder) for n in files]
    assert len(names) == 20
    assert not [n for n in names if n.endswith(".tmp")]


def test_threads_put_and_get_concurrently(root: str) -> None:
    store = ObjectStore(root, compression="zstd")
    blobs = [bytes([i % 7]) * (100 + i) for i in range(200)]
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(len(blobs)):
                data = blobs[(i + offset) % len(blobs)]
                key = store.put(data)
                assert store.get(key) == data
        except BaseException as e:  # collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n * 13,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(store.keys()) == {hash_bytes(b) for b in blobs}


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_pickles_by_url(root: str, dumps: object) -> None:
    store = ObjectStore(root, compression="zstd")
    key = store.put(COMPRESSIBLE)
    copy = pickle.loads(dumps(store))  # type: ignore[operator]
    assert isinstance(copy, ObjectStore)
    assert (copy.url, copy.compression) == (store.url, "zstd")
    assert copy.get(key) == COMPRESSIBLE


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=5000), compression=st.sampled_from([None, "zstd"]))
def test_round_trip_any_bytes(root: str, data: bytes, compression: str | None) -> None:
    store = ObjectStore(root, compression=compression)
    key = store.put(data)
    assert key == hash_bytes(data)
    assert store.get(key) == data
    assert ObjectStore(root).get(key) == data
    if data:
        assert (
            store.get_range(key, len(data) // 3, len(data) // 2)
            == (data[len(data) // 3 : len(data) // 3 + len(data) // 2])
        )


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="reads /proc/self/fd (Linux)")
def test_objects_are_on_disk_before_the_commit_refers_to_them(tmp_path, monkeypatch):
    """Issue 13 item 5: by default every new object's bytes and its folder entry are flushed
    (fsync) before the metadata transaction that refers to them; a put of many small files
    costs a handful of flushes (one pack), not one per file."""
    from headrace.store import objects as objects_module
    from headrace.store.store import Store

    assert ObjectStore(tmp_path / "o").fsync is True
    store = Store.open(tmp_path / "home")
    store.create_repo("r")
    events: list[tuple[str, str]] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    real_transaction = store.meta.transaction

    def transaction():
        events.append(("transaction", ""))
        return real_transaction()

    monkeypatch.setattr(objects_module.os, "fsync", fsync)
    monkeypatch.setattr(store.meta, "transaction", transaction)
    store.put_files("r@master", [(f"/f{i}.txt", b"row %d\n" % i) for i in range(1000)])
    first_txn = events.index(("transaction", ""))
    flushed = {path for kind, path in events[:first_txn] if kind == "fsync"}
    keys = list(store.objects.keys())
    assert len(keys) == 1  # one pack
    location = store.objects.location(keys[0])
    root = str(tmp_path / "home" / "objects")
    assert any(p.startswith(location + ".") for p in flushed)  # the temporary file, then renamed
    assert os.path.dirname(location) in flushed and root in flushed
    assert len(flushed) == 3
    assert store.get_file("r@master:/f7.txt") == b"row 7\n"
    store.close()


def test_fsync_can_be_turned_off(tmp_path, monkeypatch):
    from headrace.store import objects as objects_module

    calls: list[int] = []
    monkeypatch.setattr(objects_module.os, "fsync", calls.append)
    store = ObjectStore(tmp_path / "o", fsync=False)
    store.put(b"x")
    store.sync()
    assert calls == []
