"""The Store API, run over {SQLite + folder, PostgreSQL + folder, SQLite + memory://}."""

from __future__ import annotations

import os
import pickle
import threading
import uuid

import pytest

from headrace.store import trees
from headrace.store.errors import (
    CommitFinished,
    CommitNotFound,
    Conflict,
    CorruptObject,
    FileNotFound,
    InvalidName,
    InvalidPath,
    InvalidReference,
    MergeConflict,
    ObjectNotFound,
    RepoExists,
    RepoNotFound,
)
from headrace.store.metadata import Metadata
from headrace.store.objects import ObjectStore
from headrace.store.records import FileInfo
from headrace.store.store import Store

CONFIGS = ["sqlite+folder", "postgresql+folder", "sqlite+memory"]


@pytest.fixture(params=CONFIGS)
def store(request, tmp_path):
    db, objects = request.param.split("+")
    url = request.getfixturevalue(f"{db}_metadata_url")
    location = str(tmp_path / "objects") if objects == "folder" else f"memory://{uuid.uuid4().hex}"
    s = Store(Metadata(url), ObjectStore(location))
    yield s
    s.close()


def object_count(store: Store) -> int:
    return sum(1 for _ in store.objects.keys())


def test_repos(store):
    store.create_repo("sales", "monthly sales")
    store.create_repo("users")
    assert [r.name for r in store.list_repos()] == ["sales", "users"]
    assert store.inspect_repo("sales").description == "monthly sales"
    with pytest.raises(RepoExists):
        store.create_repo("sales")
    for bad in ["", "has space", "../up", "a/b", "-x"]:
        with pytest.raises(InvalidName):
            store.create_repo(bad)
    store.delete_repo("users")
    with pytest.raises(RepoNotFound):
        store.inspect_repo("users")


def test_commit_context_puts_and_reads(store):
    store.create_repo("sales")
    with store.commit("sales@master", message="jan") as c:
        c.put_file("/2024/jan.csv", b"a,b\n1,2\n")
        c.put_file("2024/feb.csv", b"a,b\n3,4\n")
        c.put_file("/readme.txt", b"hello")
    info = store.inspect_commit("sales@master")
    assert info.finished and info.file_count == 3 and info.message == "jan"
    assert info.size_bytes == len(b"a,b\n1,2\n") * 2 + 5
    assert store.get_file("sales@master:/2024/feb.csv") == b"a,b\n3,4\n"
    top = store.list_files("sales@master")
    assert [(f.path, f.type) for f in top] == [("/2024", "dir"), ("/readme.txt", "file")]
    assert top[0].size == 16
    assert [f.path for f in store.list_files("sales@master:/", recursive=True)] == [
        "/2024/feb.csv",
        "/2024/jan.csv",
        "/readme.txt",
    ]
    assert [f.path for f in store.glob_files("sales@master:/**/*.csv")] == [
        "/2024/feb.csv",
        "/2024/jan.csv",
    ]
    assert store.inspect_file("sales@master:/2024").type == "dir"
    with pytest.raises(FileNotFound):
        store.get_file("sales@master:/nope.csv")


def test_failed_commit_block_leaves_nothing_visible(store):
    store.create_repo("sales")
    store.put_file("sales@master:/a.txt", b"one")
    before = store.inspect_commit("sales@master")
    with pytest.raises(RuntimeError):
        with store.commit("sales@master") as c:
            c.put_file("/b.txt", b"two")
            raise RuntimeError("boom")
    assert store.inspect_commit("sales@master").id == before.id
    assert [f.path for f in store.list_files("sales@master")] == ["/a.txt"]


def test_references_and_ancestry(store):
    store.create_repo("r")
    ids = [store.put_file(f"r@master:/f{i}.txt", str(i).encode()).id for i in range(4)]
    assert store.inspect_commit("r@master").id == ids[-1]
    assert store.inspect_commit("r@master^").id == ids[-2]
    assert store.inspect_commit("r@master^3").id == ids[0]
    assert store.inspect_commit("r@master~2").id == ids[1]
    assert store.inspect_commit(f"r@{ids[1]}").id == ids[1]
    assert store.get_file(f"r@{ids[0]}:/f0.txt") == b"0"
    with pytest.raises(FileNotFound):
        store.get_file(f"r@{ids[0]}:/f1.txt")
    with pytest.raises(CommitNotFound):
        store.inspect_commit("r@master^9")
    for bad in ["r@", "r@master:/../etc", "@master", "r@bad name"]:
        with pytest.raises((InvalidReference, InvalidPath)):
            store.inspect_commit(bad)


def test_open_commits_serialise_writers_and_finished_commits_are_immutable(store):
    store.create_repo("r")
    open_commit = store.start_commit("r@master", message="wip")
    store.put_file(f"r@{open_commit.id}:/a.txt", b"A")
    store.put_file("r@master:/b.txt", b"B")  # goes into the open commit too
    assert {f.path for f in store.list_files("r@master")} == {"/a.txt", "/b.txt"}
    with pytest.raises(Conflict):
        store.start_commit("r@master")
    done = store.finish_commit("r@master")
    assert done.finished and done.file_count == 2
    with pytest.raises(CommitFinished):
        store.put_file(f"r@{done.id}:/c.txt", b"C")
    with pytest.raises(CommitFinished):
        store.finish_commit(f"r@{done.id}")


def test_delete_copy_and_diff(store):
    store.create_repo("r")
    store.create_repo("other")
    with store.commit("r@master") as c:
        c.put_file("/d/a.txt", b"a")
        c.put_file("/d/b.txt", b"b")
        c.put_file("/keep.txt", b"k")
    objects_before = object_count(store)
    store.copy_file("r@master:/d", "other@master:/copied")
    assert object_count(store) == objects_before  # no bytes copied
    assert store.get_file("other@master:/copied/b.txt") == b"b"
    with store.commit("r@master") as c:
        c.put_file("/d/a.txt", b"A changed")
        c.put_file("/new.txt", b"n")
        c.delete_file("/keep.txt")
    changes = {(d.path, d.kind) for d in store.diff("r@master")}
    assert changes == {("/d/a.txt", "modified"), ("/new.txt", "added"), ("/keep.txt", "deleted")}
    store.delete_file("r@master:/d")
    assert [f.path for f in store.list_files("r@master", recursive=True)] == ["/new.txt"]
    assert {d.kind for d in store.diff("r@master", "r@master^2")} == {"added", "deleted"}


def test_unchanged_content_is_stored_once(store):
    store.create_repo("r")
    data = bytes(range(256)) * 4000  # ~1 MB: chunked, not packed
    store.put_file("r@master:/big.bin", data)
    n = object_count(store)
    store.put_file("r@master:/same.bin", data)
    store.put_file("r@master:/big.bin", data)
    assert object_count(store) == n
    assert store.get_file("r@master:/same.bin") == data


def test_branches_and_merges(store):
    store.create_repo("r")
    store.put_file("r@master:/a.txt", b"1")
    store.create_branch("r@dev", head="r@master")
    store.put_file("r@dev:/b.txt", b"2")
    result = store.merge("r@dev", "r@master")
    assert result.kind == "fast-forward"
    assert store.get_file("r@master:/b.txt") == b"2"
    # diverge without conflict
    store.put_file("r@dev:/c.txt", b"dev")
    store.put_file("r@master:/d.txt", b"master")
    result = store.merge("r@dev", "r@master")
    assert result.kind == "merge"
    assert {f.path for f in store.list_files("r@master")} == {
        "/a.txt",
        "/b.txt",
        "/c.txt",
        "/d.txt",
    }
    assert store.merge("r@dev", "r@master").kind == "up-to-date"
    # conflict: both change a.txt differently
    store.put_file("r@dev:/a.txt", b"dev-version")
    store.put_file("r@master:/a.txt", b"master-version")
    head = store.inspect_commit("r@master").id
    with pytest.raises(MergeConflict) as info:
        store.merge("r@dev", "r@master")
    assert info.value.paths == ["/a.txt"]
    assert store.inspect_commit("r@master").id == head
    assert [b.name for b in store.list_branches("r")] == ["dev", "master"]
    store.delete_branch("r@dev")
    assert [b.name for b in store.list_branches("r")] == ["master"]


def test_provenance_and_subvenance(store):
    store.create_repo("raw")
    store.create_repo("clean")
    src = store.put_file("raw@master:/x.csv", b"x")
    with store.commit("clean@master", provenance=["raw@master"]) as c:
        c.put_file("/x.csv", b"X")
    out = store.inspect_commit("clean@master")
    assert [c.id for c in store.provenance("clean@master")] == [src.id]
    assert [c.id for c in store.subvenance(f"raw@{src.id}")] == [out.id]


def test_squash_and_delete_commits(store):
    store.create_repo("r")
    first = store.put_file("r@master:/a.txt", b"1")
    middle = store.put_file("r@master:/b.txt", b"2")
    last = store.put_file("r@master:/c.txt", b"3")
    store.squash_commit(f"r@{middle.id}")
    assert store.inspect_commit("r@master^").id == first.id
    assert store.get_file("r@master:/b.txt") == b"2"  # its change is still in the child
    store.delete_commit("r@master")
    assert store.inspect_commit("r@master").id == first.id
    with pytest.raises(CommitNotFound):
        store.inspect_commit(f"r@{last.id}")


def test_corruption_is_detected_and_named(store, tmp_path):
    store.create_repo("r")
    store.put_file("r@master:/a.txt", b"precious data")
    assert store.fsck().ok
    (key,) = list(store.objects.keys())
    location = store.objects.location(key)
    fs = store.objects._fs
    raw = bytearray(fs.cat_file(location))
    raw[-1] ^= 0xFF
    fs.pipe_file(location, bytes(raw))
    store.objects._cache.discard(key)
    with pytest.raises(CorruptObject, match=key):
        store.get_file("r@master:/a.txt")
    report = store.fsck()
    assert not report.ok
    assert key in report.problems[0] and "corrupt" in report.problems[0]


def test_gc_removes_only_unreferenced_objects(store):
    store.create_repo("keep")
    store.create_repo("drop")
    store.put_file("keep@master:/k.txt", b"keep me")
    store.put_file("drop@master:/d.txt", b"drop me")
    open_commit = store.start_commit("keep@wip")
    store.put_file(f"keep@{open_commit.id}:/w.txt", b"work in progress")
    store.delete_repo("drop")
    report = store.gc(grace_seconds=0)
    assert report.objects_deleted >= 1
    assert store.get_file("keep@master:/k.txt") == b"keep me"
    assert store.get_file(f"keep@{open_commit.id}:/w.txt") == b"work in progress"
    assert store.fsck().ok
    assert store.gc(grace_seconds=0).objects_deleted == 0


def test_concurrent_writers_lose_no_update(store):
    store.create_repo("r")
    errors = []

    def writer(n):
        for i in range(8):
            for attempt in range(50):
                try:
                    store.put_file(f"r@master:/w{n}/f{i}.txt", f"{n}-{i}".encode())
                    break
                except Conflict:
                    continue
            else:
                errors.append((n, i))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    files = store.list_files("r@master", recursive=True)
    assert len(files) == 24
    assert store.get_file("r@master:/w2/f7.txt") == b"2-7"


def test_record_files_makes_one_commit_from_stored_contents(store):
    from headrace.store.errors import StoreError

    store.create_repo("src")
    store.create_repo("out")
    src = store.put_file("src@master:/in.txt", b"input")
    store.put_file("out@master:/keep.txt", b"keep")
    writer = store.writer()
    added = [
        ("a.txt", writer.add_bytes(b"alpha")),
        ("sub/b.bin", writer.add_bytes(b"b" * 300_000)),
        ("/empty", writer.add_bytes(b"")),
    ]
    writer.flush()
    files = [(path, writer.resolve(c)) for path, c in added]
    pending = store.writer().add_bytes(b"not flushed")
    with pytest.raises(StoreError, match="pending"):
        store.record_files("out@master", [("p", pending)])
    with pytest.raises(InvalidPath, match="path /d/a is given twice"):
        store.record_files("out@master:/d", [("a", files[0][1]), ("/a", files[0][1])])
    with pytest.raises(InvalidReference, match="repo@branch"):
        store.record_files(f"out@{src.id}", files)
    assert len(store.list_commits("out")) == 1  # the refused calls recorded nothing
    info = store.record_files("out@master:/d", files, message="recorded", provenance=["src@master"])
    assert info.finished and info.message == "recorded" and info.file_count == 4
    assert store.get_file("out@master:/d/sub/b.bin") == b"b" * 300_000
    assert store.get_file("out@master:/d/a.txt") == b"alpha"
    assert store.get_file("out@master:/keep.txt") == b"keep"  # the parent's files stay
    assert [c.id for c in store.provenance("out@master")] == [src.id]
    assert store.fsck().ok
    store.start_commit("out@master")
    with pytest.raises(Conflict, match="open commit"):
        store.record_files("out@master", files)


# ---------------------------------------------------------------- put_dir and batched look-ups


def _content_queries(store: Store):
    import sqlalchemy as sa

    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        if "FROM contents" in statement:
            seen.append(statement)

    sa.event.listen(store.meta.engine, "before_cursor_execute", listener)
    return seen, lambda: sa.event.remove(store.meta.engine, "before_cursor_execute", listener)


def test_put_dir_looks_contents_up_a_pack_at_a_time_and_stores_nothing_twice(store, tmp_path):
    store.create_repo("r")
    src = tmp_path / "src"
    for i in range(300):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i:03d}.txt").write_bytes(f"line {i}\n".encode() * 10)
    seen, stop = _content_queries(store)
    try:
        first = store.put_dir("r@master", src)
        assert len(seen) <= 2  # one batch for the one pack, not one query per file
    finally:
        stop()
    assert first.file_count == 300
    objects = object_count(store)
    stored = sum(store.objects.size(k) for k in store.objects.keys())
    again = store.put_dir("r@other", src)  # the same files again: nothing new is stored
    assert again.file_count == 300 and object_count(store) == objects
    # Some known files and some new ones: only the new bytes are stored.
    for i in range(0, 300, 30):
        (src / f"d{i % 3}" / f"f{i:03d}.txt").write_bytes(f"changed {i}\n".encode())
    third = store.put_dir("r@master", src)
    grown = sum(store.objects.size(k) for k in store.objects.keys()) - stored
    assert 0 < grown <= 10 * len(b"changed 000\n") + 100
    assert store.get_file("r@master:/d0/f030.txt") == b"changed 30\n"
    assert store.get_file(f"r@{third.id}:/d1/f001.txt") == b"line 1\n" * 10
    assert [d.path for d in store.diff("r@master")] == [
        f"/d{i % 3}/f{i:03d}.txt" for i in sorted(range(0, 300, 30), key=lambda i: (i % 3, i))
    ]
    assert store.fsck().ok


def test_put_dir_walks_like_sorted_rglob(store, tmp_path):
    from pathlib import Path

    from headrace.store.writing import local_files as _local_files

    src = tmp_path / "src"
    for rel in ["a-b", "a/b", "a/c/d.txt", ".hidden", "a.txt", "z/.x", "empty/"]:
        target = src / rel
        if rel.endswith("/"):
            target.mkdir(parents=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(rel.encode())
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "o.txt").write_bytes(b"outside")
    expected = [
        (p.relative_to(src).as_posix(), str(p)) for p in sorted(src.rglob("*")) if p.is_file()
    ]
    assert list(_local_files(str(src))) == expected
    store.create_repo("r")
    info = store.put_dir("r@master:/in", Path(src))
    assert info.file_count == len(expected)
    with pytest.raises(FileNotFound, match="does not exist"):
        store.put_file("r@master:/x", str(tmp_path / "missing.txt"))
    with pytest.raises(FileNotFound, match="does not exist"):
        store.put_file("r@master:/x", str(src / "a"))  # a directory
    with pytest.raises(FileNotFound, match="not a local directory"):
        store.put_dir("r@master", tmp_path / "missing")


def test_put_dir_refuses_symbolic_links(store, tmp_path):
    """Issue 13 item 4: storing a folder never reads through a link by default (git stores a
    link as a link; headrace refuses it, naming it). ``follow_links`` follows links that stay
    inside the folder, and still refuses one leading out of it."""
    from pathlib import Path

    from headrace.store.errors import InvalidPath

    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"a")
    (src / "sub" / "b.txt").write_bytes(b"b")
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"not yours")
    store.create_repo("r")
    (src / "passwd").symlink_to(secret)
    with pytest.raises(InvalidPath, match=r"src/passwd is a symbolic link to .*secret\.txt.*"
                       r"does not follow links"):  # fmt: skip
        store.put_dir("r@master", Path(src))
    with pytest.raises(InvalidPath, match=r"outside the folder being stored"):
        store.put_dir("r@master", Path(src), follow_links=True)
    (src / "passwd").unlink()
    (src / "sub" / "up").symlink_to(tmp_path)  # a folder link out of it
    with pytest.raises(InvalidPath, match=r"sub/up is a symbolic link.*outside"):
        store.put_dir("r@master", Path(src), follow_links=True)
    (src / "sub" / "up").unlink()
    (src / "alias.txt").symlink_to("a.txt")  # relative, inside
    (src / "again").symlink_to(src / "sub")  # a folder inside
    with pytest.raises(InvalidPath, match=r"src/again is a symbolic link to .*src/sub: headrace"):
        store.put_dir("r@master", Path(src))
    assert store.list_commits("r") == []
    store.put_dir("r@master", Path(src), follow_links=True)
    files = {f.path: store.get_file(f"r@master:{f.path}") for f in store.walk_files("r@master")}
    assert files == {
        "/a.txt": b"a", "/alias.txt": b"a", "/again/b.txt": b"b", "/sub/b.txt": b"b",
    }  # fmt: skip
    (src / "sub" / "loop").symlink_to(src)  # a cycle
    with pytest.raises(InvalidPath, match="a cycle"):
        store.put_dir("r@master", Path(src), follow_links=True)
    (src / "sub" / "loop").unlink()
    os.mkfifo(src / "pipe")
    with pytest.raises(InvalidPath, match="pipe is not a regular file"):
        store.put_dir("r@master", Path(src), follow_links=True)


# ---------------------------------------------------------------- walking and the node cache


def _many_files(n: int) -> list[tuple[str, bytes]]:
    return [(f"/d{i // 100:02d}/f{i:04d}.txt", f"{i % 7}\n".encode()) for i in range(n)]


def test_walk_files_streams_every_file_in_order(store):
    store.create_repo("r")
    files = _many_files(1000)
    store.put_files("r@master", files)
    listed = store.list_files("r@master", recursive=True)
    assert [f.path for f in listed] == [p for p, _ in files]
    for batch in (1, 7, 250, 1000, 10_000):
        assert list(store.walk_files("r@master", batch=batch)) == listed
    assert list(store.walk_files("r@master:/d03")) == listed[300:400]
    assert list(store.walk_files("r@master", prefix="/d03", batch=30)) == listed[300:400]
    assert list(store.walk_files("r@master:/d03/f0301.txt")) == [listed[301]]
    assert listed[5] == FileInfo("/d00/f0005.txt", "file", 2, listed[5].hash)
    with pytest.raises(FileNotFound, match="no such file or directory"):
        store.walk_files("r@master:/nope")
    with pytest.raises(ValueError, match="batch"):
        store.walk_files("r@master", batch=0)
    store.create_repo("empty")
    store.put_files("empty@master", [])
    assert list(store.walk_files("empty@master")) == []


def test_walk_files_resolves_the_reference_once(store):
    store.create_repo("r")
    first = store.put_files("r@master", _many_files(300))
    walk = store.walk_files("r@master", batch=50)
    head = [next(walk) for _ in range(60)]
    store.delete_file("r@master:/d01")  # the branch moves on; the walk keeps its commit
    store.put_file("r@master:/d00/zzz.txt", b"new")
    rest = list(walk)
    assert [f.path for f in head + rest] == [p for p, _ in _many_files(300)]
    assert len(store.list_files("r@master", recursive=True)) == 201
    assert list(store.walk_files(f"r@{first.id}", batch=64)) == head + rest


def test_walk_files_of_an_open_commit_sees_its_staged_changes(store):
    store.create_repo("r")
    store.put_files("r@master", _many_files(200))
    commit = store.start_commit("r@master")
    store.put_file(f"r@{commit.id}:/d00/f0000.txt", b"changed")
    store.put_file(f"r@{commit.id}:/e/new.txt", b"new")
    store.delete_file(f"r@{commit.id}:/d01")
    walked = list(store.walk_files(f"r@{commit.id}", batch=16))
    assert walked == store.list_files(f"r@{commit.id}", recursive=True)
    assert len(walked) == 101 and walked[-1].path == "/e/new.txt"
    assert walked[0].size == len(b"changed")


def test_gc_evicts_deleted_tree_nodes_from_the_cache(store):
    store.create_repo("keep")
    store.create_repo("drop")
    store.put_files("keep@master", _many_files(50))
    store.put_files("drop@master", [(p, b"other " + d) for p, d in _many_files(400)])
    assert len(store.list_files("drop@master", recursive=True)) == 400  # fills the cache
    with store.meta.read() as conn:
        drop_root = store.meta.get_commit(conn, store.inspect_commit("drop@master").id).root_tree
        dead = set(trees.reachable_nodes(store.meta.tree_nodes(conn), drop_root))
    cache = store.meta.node_cache
    assert dead & set(cache.keys())
    store.delete_repo("drop")
    report = store.gc(grace_seconds=0)
    assert report.nodes_deleted == len(dead)
    assert not dead & set(cache.keys())
    assert len(store.list_files("keep@master", recursive=True)) == 50
    assert store.fsck().ok


def test_fsck_reads_past_the_node_cache(store):
    import sqlalchemy as sa

    store.create_repo("r")
    store.put_files("r@master", _many_files(400))
    listed = store.list_files("r@master", recursive=True)  # every node is now cached
    with store.meta.read() as conn:
        root = store.meta.get_commit(conn, store.inspect_commit("r@master").id).root_tree
    with store.meta.transaction() as conn:  # damage: a node disappears from the database
        conn.execute(sa.text("DELETE FROM tree_nodes WHERE key = :k"), {"k": root})
    assert root in store.meta.node_cache
    assert store.list_files("r@master", recursive=True) == listed  # served from the cache
    report = store.fsck(verify_objects=False)
    assert not report.ok
    assert "cannot be read" in report.problems[0] and root in report.problems[0]
    store.meta.node_cache.clear()
    with pytest.raises(ObjectNotFound, match=root):
        store.list_files("r@master", recursive=True)


def test_file_info_is_an_immutable_record():
    info = FileInfo("/a.csv", "file", 3, "ab")
    assert (info.path, info.type, info.size, info.hash) == ("/a.csv", "file", 3, "ab")
    assert FileInfo("/d", "dir", 0).hash is None
    assert info == FileInfo("/a.csv", "file", 3, "ab") and len({info, info}) == 1
    with pytest.raises(AttributeError):
        info.size = 4  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(info)) == info
    assert repr(info) == "FileInfo(path='/a.csv', type='file', size=3, hash='ab')"


def test_a_first_write_racing_another_first_write_joins_the_branch(store, monkeypatch):
    """Two first writers both find no ``master``; the one whose insert comes second must see the
    branch the other made, not fail with "already exists" (seen on PostgreSQL in CI: a writer
    thread died and its files were lost to the caller)."""
    from headrace.store.errors import BranchNotFound

    store.create_repo("r")
    store.put_file("r@master:/a.txt", b"a")
    real = Metadata.get_branch
    stale = [True, True]  # write_target's look and start's look both miss the branch

    def looks_before_the_other_writer_committed(self, conn, repo, name, *, for_update=False):
        if stale and name == "master" and for_update:
            stale.pop()
            raise BranchNotFound(f"branch {name!r} not found in repo {repo!r}")
        return real(self, conn, repo, name, for_update=for_update)

    monkeypatch.setattr(Metadata, "get_branch", looks_before_the_other_writer_committed)
    store.put_file("r@master:/b.txt", b"b")
    assert not stale
    assert store.get_file("r@master:/a.txt") == b"a"
    assert store.get_file("r@master:/b.txt") == b"b"
    assert len(store.list_commits("r", "master")) == 2
