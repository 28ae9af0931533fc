"""Content and ContentWriter: packing, chunking, dedup and verified reads, over a local folder
and ``memory://``."""

from __future__ import annotations

import io
import os
import pickle
import random
import threading
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import fsspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headrace.store.content import (
    Content,
    ContentWriter,
    iter_content,
    object_keys,
    read_content,
    write_content_to,
)
from headrace.store.errors import CorruptObject, ObjectNotFound, StoreError
from headrace.store.objects import ObjectStore, hash_bytes

MiB = 1024 * 1024


@pytest.fixture(params=["local", "memory"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty store location: a local folder or a unique ``memory://`` root."""
    if request.param == "local":
        yield str(tmp_path / "objects")
        return
    url = f"memory://content-test-{uuid.uuid4().hex}"
    yield url
    fs = fsspec.filesystem("memory")
    path = url.removeprefix("memory://")
    if fs.exists(path):
        fs.rm(path, recursive=True)


@pytest.fixture
def objects(root: str) -> ObjectStore:
    return ObjectStore(root)


def random_bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def flip(location: str, index: int) -> None:
    with fsspec.open(location, "rb") as f:
        raw = bytearray(f.read())
    raw[index] ^= 0xFF
    with fsspec.open(location, "wb") as f:
        f.write(bytes(raw))


class Table:
    """A stand-in for the metadata table of contents: the writer's ``lookup``."""

    def __init__(self) -> None:
        self.rows: dict[str, str] = {}
        self.asked = 0

    def record(self, contents: list[Content]) -> None:
        for c in contents:
            self.rows[c.hash] = c.to_json()

    def lookup(self, digest: str) -> Content | None:
        self.asked += 1
        row = self.rows.get(digest)
        return None if row is None else Content.from_json(row)


# -- small files and packs ----------------------------------------------------------------


def test_small_file_is_pending_until_flush(objects: ObjectStore) -> None:
    writer = ContentWriter(objects)
    content = writer.add_bytes(b"hello")
    assert content.pending
    assert (content.hash, content.size, content.layout) == (hash_bytes(b"hello"), 5, ())
    assert list(objects.keys()) == []
    with pytest.raises(StoreError, match="flush"):
        read_content(objects, content)
    with pytest.raises(StoreError, match="pending"):
        content.to_json()
    (final,) = writer.flush()
    assert not final.pending
    assert final.hash == content.hash
    assert final.layout == (("o", content.hash),)  # a pack of one file is the file itself
    assert writer.resolve(content) == final
    assert read_content(objects, final) == b"hello"
    assert writer.flush() == []


def test_small_files_share_a_pack(objects: ObjectStore) -> None:
    writer = ContentWriter(objects)
    files = [f"file number {i}\n".encode() * (i + 1) for i in range(50)]
    for data in files:
        writer.add_bytes(data)
    created = writer.flush()
    assert [c.hash for c in created] == [hash_bytes(d) for d in files]
    assert all(len(c.layout) == 1 and c.layout[0][0] == "p" for c in created)
    assert len(list(objects.keys())) == 1
    assert {k for c in created for k in object_keys(c)} == set(objects.keys())
    for c, data in zip(created, files):
        assert read_content(objects, c) == data
        assert b"".join(iter_content(objects, c)) == data


def test_ten_thousand_small_files_make_a_handful_of_objects(objects: ObjectStore) -> None:
    writer = ContentWriter(objects, pack_target=2 * MiB)
    rnd = random.Random(7)
    files = [rnd.randbytes(rnd.randrange(1, 2048)) for _ in range(10_000)]
    for data in files:
        writer.add_bytes(data)
    created = writer.flush()
    assert len(created) == len(set(files))
    total = sum(len(d) for d in files)
    assert len(list(objects.keys())) <= total // (2 * MiB) + 2
    by_hash = {c.hash: c for c in created}
    for data in files[::97]:
        assert read_content(objects, by_hash[hash_bytes(data)]) == data


def test_full_pack_is_written_before_flush(objects: ObjectStore) -> None:
    writer = ContentWriter(objects, pack_target=10_000, small_limit=4000)
    first = [writer.add_bytes(random_bytes(3000, seed)) for seed in range(4)]
    assert len(list(objects.keys())) == 1  # 12 000 bytes reached the target
    assert all(writer.resolve(c).layout for c in first)
    created = writer.flush()
    assert [c.hash for c in created] == [c.hash for c in first]
    assert all(not c.pending for c in created)


def test_empty_file(objects: ObjectStore) -> None:
    writer = ContentWriter(objects)
    empty = writer.add_bytes(b"")
    assert empty == Content(hash_bytes(b""), 0, ())
    assert not empty.pending
    assert writer.flush() == [empty]
    assert read_content(objects, empty) == b""
    assert list(iter_content(objects, empty)) == []
    assert object_keys(empty) == set()
    assert list(objects.keys()) == []


# -- dedup ----------------------------------------------------------------------------------


def test_same_bytes_twice_stored_once(objects: ObjectStore) -> None:
    writer = ContentWriter(objects)
    a = writer.add_bytes(b"same")
    b = writer.add_bytes(bytearray(b"same"))
    assert a is b
    created = writer.flush()
    assert len(created) == 1
    assert writer.add_bytes(b"same") == created[0]
    assert writer.flush() == []
    assert len(list(objects.keys())) == 1


def test_known_content_is_not_stored_again(objects: ObjectStore) -> None:
    table = Table()
    first = ContentWriter(objects, table.lookup)
    first.add_bytes(b"small")
    first.add_bytes(random_bytes(MiB))
    table.record(first.flush())
    before = set(objects.keys())

    second = ContentWriter(objects, table.lookup)
    again = second.add_bytes(b"small")
    assert not again.pending  # came from the table, final
    assert read_content(objects, again) == b"small"
    assert second.add_bytes(random_bytes(MiB)).hash == hash_bytes(random_bytes(MiB))
    assert second.flush() == []
    assert set(objects.keys()) == before


def test_unchanged_large_file_writes_nothing_new(objects: ObjectStore, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(random_bytes(20 * MiB, seed=1))
    first = ContentWriter(objects).add_file(path)
    assert first.size == 20 * MiB
    assert all(seg[0] == "c" for seg in first.layout)
    keys = set(objects.keys())
    assert len(keys) == len(first.layout) >= 5
    # A fresh writer that knows nothing: chunks are found in the store, none written again.
    writes = []
    original_put = objects.put

    def counting_put(data: bytes, key: str | None = None) -> str:
        if key is None or not objects.exists(key):
            writes.append(key)
        return original_put(data, key)

    objects.put = counting_put  # type: ignore[method-assign]
    again = ContentWriter(objects).add_file(path)
    assert again == first
    assert writes == []
    assert set(objects.keys()) == keys


def test_one_changed_byte_writes_few_chunks(objects: ObjectStore) -> None:
    data = bytearray(random_bytes(20 * MiB, seed=2))
    writer = ContentWriter(objects)
    original = writer.add_bytes(bytes(data))
    keys = set(objects.keys())
    data[10 * MiB] ^= 0x55
    changed = writer.add_bytes(bytes(data))
    new = set(objects.keys()) - keys
    assert changed.hash != original.hash
    assert 1 <= len(new) <= 3
    assert len(object_keys(changed) & object_keys(original)) >= len(original.layout) - 3
    assert read_content(objects, changed) == bytes(data)
    assert read_content(objects, original) != bytes(data)


# -- large files and streams ----------------------------------------------------------------


def test_large_file_round_trip(objects: ObjectStore, tmp_path: Path) -> None:
    data = random_bytes(5 * MiB + 123, seed=3)
    path = tmp_path / "large.bin"
    path.write_bytes(data)
    writer = ContentWriter(objects, chunk_avg=256 * 1024)
    content = writer.add_file(str(path))
    assert not content.pending
    assert content.hash == hash_bytes(data) and content.size == len(data)
    assert sum(seg[2] for seg in content.layout) == len(data)  # type: ignore[misc]
    assert writer.flush() == [content]
    assert read_content(objects, content) == data
    pieces = list(iter_content(objects, content, block=100_000))
    assert max(len(p) for p in pieces) <= 100_000
    assert b"".join(pieces) == data
    out = io.BytesIO()
    assert write_content_to(objects, content, out) == len(data)
    assert out.getvalue() == data


def test_file_just_above_small_limit_is_one_object(objects: ObjectStore) -> None:
    data = random_bytes(300 * 1024, seed=4)
    content = ContentWriter(objects).add_bytes(data)
    assert content.layout == (("o", hash_bytes(data)),)
    assert read_content(objects, content) == data


class ReadOnly:
    """A stream with ``read`` only (no ``readinto``, no ``seek``), like a socket wrapper."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def read(self, n: int = -1) -> bytes:
        n = self._step if n < 0 else min(n, self._step)
        piece = self._data[self._pos : self._pos + n]
        self._pos += len(piece)
        return piece


@pytest.mark.parametrize("size", [0, 10, 256 * 1024, 256 * 1024 + 1, 3 * MiB])
def test_add_stream(objects: ObjectStore, size: int) -> None:
    data = random_bytes(size, seed=size)
    writer = ContentWriter(objects, chunk_avg=256 * 1024)
    from_stream = writer.add_stream(ReadOnly(data, 70_001))
    from_buffered = ContentWriter(objects, chunk_avg=256 * 1024).add_stream(io.BytesIO(data))
    writer.flush()
    final = writer.resolve(from_stream)
    assert final.hash == hash_bytes(data) and final.size == size
    assert from_buffered.hash == final.hash
    assert read_content(objects, final) == data


def test_add_file_of_small_file(objects: ObjectStore, tmp_path: Path) -> None:
    path = tmp_path / "small.txt"
    path.write_bytes(b"a,b\n1,2\n")
    writer = ContentWriter(objects)
    pending = writer.add_file(path)
    assert pending.pending
    (final,) = writer.flush()
    assert read_content(objects, final) == b"a,b\n1,2\n"


def test_streaming_a_large_file_holds_little_memory(tmp_path: Path) -> None:
    # A local folder only: a memory:// store holds every object in memory by design.
    objects = ObjectStore(str(tmp_path / "objects"))
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        for i in range(48):
            f.write(random_bytes(MiB, seed=100 + i))
    writer = ContentWriter(objects)
    tracemalloc.start()
    try:
        content = writer.add_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert content.size == 48 * MiB
    assert peak < 16 * MiB, f"add_file of 48 MiB peaked at {peak / MiB:.1f} MiB"
    tracemalloc.start()
    try:
        with open(tmp_path / "copy.bin", "wb") as out:
            write_content_to(objects, content, out)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * MiB, f"write_content_to of 48 MiB peaked at {peak / MiB:.1f} MiB"
    assert (tmp_path / "copy.bin").read_bytes() == path.read_bytes()


# -- damage ---------------------------------------------------------------------------------


def test_flipped_byte_in_chunk_names_the_key(objects: ObjectStore) -> None:
    data = random_bytes(3 * MiB, seed=5)
    content = ContentWriter(objects, chunk_avg=256 * 1024).add_bytes(data)
    key = content.layout[2][1]
    flip(objects.location(key), 1000)
    with pytest.raises(CorruptObject, match=key):
        read_content(objects, content)
    with pytest.raises(CorruptObject, match=key):
        b"".join(iter_content(objects, content))


def test_flipped_byte_in_pack_slice_names_the_content(objects: ObjectStore) -> None:
    writer = ContentWriter(objects)
    writer.add_bytes(b"neighbour one")
    writer.add_bytes(b"victim file")
    writer.add_bytes(b"neighbour two")
    one, victim, two = writer.flush()
    key = victim.layout[0][1]
    offset = victim.layout[0][2]  # type: ignore[misc]
    flip(objects.location(key), 1 + offset + 3)  # 1: the format header
    with pytest.raises(CorruptObject, match=victim.hash) as info:
        read_content(objects, victim)
    assert key in str(info.value)
    with pytest.raises(CorruptObject, match=victim.hash):
        list(iter_content(objects, victim))
    assert read_content(objects, one) == b"neighbour one"
    assert read_content(objects, two) == b"neighbour two"


def test_missing_object(objects: ObjectStore) -> None:
    content = ContentWriter(objects).add_bytes(random_bytes(MiB, seed=6))
    gone = content.layout[0][1]
    assert objects.delete(gone)
    with pytest.raises(ObjectNotFound, match=gone):
        read_content(objects, content)


def test_wrong_layout_is_caught(objects: ObjectStore) -> None:
    writer = ContentWriter(objects)
    a = writer.add_bytes(random_bytes(MiB, seed=8))
    b = writer.add_bytes(random_bytes(MiB, seed=9))
    mixed = Content(a.hash, a.size, b.layout)
    with pytest.raises(CorruptObject, match=a.hash):
        read_content(objects, mixed)
    with pytest.raises(CorruptObject, match=a.hash):
        list(iter_content(objects, mixed))


# -- compression ----------------------------------------------------------------------------


def test_zstd_and_plain_writers_interoperate(root: str) -> None:
    text = b"".join(b"%d,name-%d,%f\n" % (i, i % 97, i / 7) for i in range(40_000))
    packed_store = ObjectStore(root, compression="zstd")
    writer = ContentWriter(packed_store, chunk_avg=256 * 1024)
    big = writer.add_bytes(text)
    smalls = [writer.add_bytes(b"row %d\n" % i * 20) for i in range(100)]
    created = writer.flush()
    assert sum(packed_store.size(k) for k in packed_store.keys()) < len(text) // 2
    plain_store = ObjectStore(root)
    assert read_content(plain_store, big) == text
    finals = {c.hash: c for c in created}
    for i, pending in enumerate(smalls):
        assert read_content(plain_store, finals[pending.hash]) == b"row %d\n" % i * 20
    # And the other way round: plain objects read through a zstd store.
    plain_content = ContentWriter(plain_store).add_bytes(text + b"tail")
    assert read_content(packed_store, plain_content) == text + b"tail"


# -- values ---------------------------------------------------------------------------------


def test_json_round_trip_and_compactness() -> None:
    content = Content(
        "ab" * 32, 30, (("c", "01" * 32, 10), ("c", "02" * 32, 20), ("p", "03" * 32, 5, 0))
    )
    text = content.to_json()
    assert " " not in text
    assert Content.from_json(text) == content
    assert Content.from_json(text.encode()) == content
    assert Content.from_json(Content("cd" * 32, 0, ()).to_json()) == Content("cd" * 32, 0, ())


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "{}",
        '{"h":"x","s":1,"l":[["z","k"]]}',
        '{"h":"x","s":1,"l":[["c","k"]]}',
        '{"h":"x","s":"1","l":[]}',
        '{"h":"x","s":1,"l":[["p","k","0",1]]}',
    ],
)
def test_from_json_refuses_bad_records(text: str) -> None:
    with pytest.raises(ValueError, match="invalid content record"):
        Content.from_json(text)


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_content_pickles(dumps: object) -> None:
    content = Content("ab" * 32, 3, (("o", "ab" * 32),))
    assert pickle.loads(dumps(content)) == content  # type: ignore[operator]


def test_writer_options_are_checked(objects: ObjectStore) -> None:
    with pytest.raises(ValueError, match="chunk_avg=100"):
        ContentWriter(objects, chunk_avg=100)
    with pytest.raises(ValueError, match="pack_target=0"):
        ContentWriter(objects, pack_target=0)


def test_writer_is_thread_safe(objects: ObjectStore) -> None:
    writer = ContentWriter(objects, pack_target=64 * 1024, chunk_avg=64 * 1024)
    files = [random_bytes(random.Random(i).choice([100, 5000, 400_000]), seed=i) for i in range(60)]
    errors: list[BaseException] = []

    def work(part: list[bytes]) -> None:
        try:
            for data in part:
                writer.add_bytes(data)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(files[n::3] + files,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    created = writer.flush()
    assert sorted(c.hash for c in created) == sorted({hash_bytes(d) for d in files})
    finals = {c.hash: c for c in created}
    for data in files:
        assert read_content(objects, finals[hash_bytes(data)]) == data


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=st.lists(st.binary(max_size=3000), max_size=8),
    compression=st.sampled_from([None, "zstd"]),
)
def test_round_trip_any_bytes(root: str, files: list[bytes], compression: str | None) -> None:
    objects = ObjectStore(root, compression=compression)
    # Tiny limits so that every path is taken: packs, single objects and several chunks.
    writer = ContentWriter(objects, pack_target=2000, small_limit=600, chunk_avg=256)
    added = [writer.add_bytes(data) for data in files]
    finals = {c.hash: c for c in writer.flush()}
    for data, content in zip(files, added):
        final = writer.resolve(content)
        assert final.hash in finals
        assert not final.pending
        assert read_content(objects, final) == data
        assert b"".join(iter_content(objects, final, block=97)) == data
        assert Content.from_json(final.to_json()) == final


# -- batched look-ups (lookup_many) ---------------------------------------------------------


class BatchTable(Table):
    """A content table answering many hashes at once, counting calls and hashes asked."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def lookup_many(self, digests) -> dict[str, Content]:
        digests = list(digests)
        self.batches.append(len(digests))
        return {d: Content.from_json(self.rows[d]) for d in digests if d in self.rows}


def stored_bytes(objects: ObjectStore) -> int:
    return sum(objects.size(k) for k in objects.keys())


def test_small_files_are_looked_up_a_pack_at_a_time(objects: ObjectStore) -> None:
    table = BatchTable()
    files = [f"file {i}\n".encode() * 20 for i in range(50)]
    first = ContentWriter(objects, table.lookup, pack_target=4000, lookup_many=table.lookup_many)
    for data in files[:30]:
        first.add_bytes(data)
    table.record(first.flush())
    assert table.asked == 0  # no small file was asked about on its own
    assert sum(table.batches) == 30 and len(table.batches) < 30
    before_keys, before_bytes = set(objects.keys()), stored_bytes(objects)

    table.batches.clear()
    second = ContentWriter(objects, table.lookup, pack_target=4000, lookup_many=table.lookup_many)
    added = [second.add_bytes(data) for data in files]
    assert all(c.pending for c in added)  # known or not, decided when the pack is written
    created = second.flush()
    assert table.asked == 0 and sum(table.batches) == 50
    # Only the 20 new files were written: known ones were left out of the packs.
    assert sorted(c.hash for c in created) == sorted(hash_bytes(d) for d in files[30:])
    new_bytes = stored_bytes(objects) - before_bytes
    assert sum(map(len, files[30:])) <= new_bytes < sum(map(len, files[30:])) + 200
    assert before_keys <= set(objects.keys())
    for data, content in zip(files, added):
        final = second.resolve(content)
        assert not final.pending
        assert read_content(objects, final) == data
    # Known ones resolve to the table's Content, with the first writer's layout.
    assert second.resolve(added[0]) == Content.from_json(table.rows[hash_bytes(files[0])])


def test_a_pack_of_known_files_writes_nothing(objects: ObjectStore) -> None:
    table = BatchTable()
    first = ContentWriter(objects, lookup_many=table.lookup_many)
    first.add_bytes(b"one")
    first.add_bytes(b"two")
    table.record(first.flush())
    keys = set(objects.keys())
    second = ContentWriter(objects, lookup_many=table.lookup_many)
    a, b = second.add_bytes(b"two"), second.add_bytes(b"one")
    assert second.flush() == []
    assert set(objects.keys()) == keys
    assert read_content(objects, second.resolve(a)) == b"two"
    assert read_content(objects, second.resolve(b)) == b"one"


def test_large_files_are_looked_up_one_by_one(objects: ObjectStore) -> None:
    table = BatchTable()
    big = random_bytes(600_000, seed=3)
    first = ContentWriter(objects, lookup_many=table.lookup_many)
    table.record([first.add_bytes(big)])
    keys = set(objects.keys())
    # With both look-ups, a large file goes to lookup (one hash), not to lookup_many.
    second = ContentWriter(objects, table.lookup, lookup_many=table.lookup_many)
    table.batches.clear()
    known = second.add_bytes(big)
    assert table.asked == 1 and table.batches == []
    assert not known.pending and second.flush() == []
    # With lookup_many only, it is asked with the one hash.
    third = ContentWriter(objects, lookup_many=table.lookup_many)
    assert third.add_bytes(big) == known and table.batches == [1]
    assert set(objects.keys()) == keys


def test_batched_lookup_with_files_from_several_threads(objects: ObjectStore) -> None:
    table = BatchTable()
    seed = ContentWriter(objects, lookup_many=table.lookup_many)
    for i in range(0, 400, 2):
        seed.add_bytes(f"row {i}\n".encode())
    table.record(seed.flush())
    writer = ContentWriter(objects, pack_target=1000, lookup_many=table.lookup_many)
    results: dict[int, Content] = {}

    def work(start: int) -> None:
        for i in range(start, 400, 4):
            results[i] = writer.add_bytes(f"row {i}\n".encode())

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = writer.flush()
    assert sorted(c.hash for c in created) == sorted(
        hash_bytes(f"row {i}\n".encode()) for i in range(1, 400, 2)
    )
    for i, content in results.items():
        assert read_content(objects, writer.resolve(content)) == f"row {i}\n".encode()


def test_add_file_reads_small_and_growing_files(
    objects: ObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = ContentWriter(objects, small_limit=1000)
    path = tmp_path / "f.txt"
    path.write_bytes(b"x" * 1000)
    assert writer.add_file(path).size == 1000
    path.write_bytes(b"")
    assert writer.add_file(path).size == 0
    # A file that grew after its size was taken, or shrank, is read to its end all the same.
    import headrace.store.content as content_module

    real_fstat = os.fstat
    for told in (10, 5000):

        def fstat(fd: int, told: int = told) -> os.stat_result:
            st = real_fstat(fd)
            return os.stat_result((*st[:6], told, *st[7:]))

        monkeypatch.setattr(content_module.os, "fstat", fstat)
        data = random_bytes(2010, seed=told) if told == 10 else b"y" * 700
        path.write_bytes(data)
        content = writer.add_file(path)
        monkeypatch.undo()
        writer.flush()
        assert content.size == len(data)
        assert read_content(objects, writer.resolve(content)) == data
