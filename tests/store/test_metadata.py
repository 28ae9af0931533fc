"""The SQL metadata of the store, run over SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

import os
import pickle
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import cloudpickle
import pytest
import sqlalchemy as sa

from headrace.store import metadata as metadata_module
from headrace.store.errors import (
    BranchNotFound,
    CommitFinished,
    CommitNotFound,
    Conflict,
    InvalidName,
    ObjectNotFound,
    RepoExists,
    RepoNotFound,
    StoreError,
)
from headrace.store.metadata import (
    AUTO,
    FINISHED,
    OPEN,
    SCHEMA_VERSION,
    Metadata,
    StagedChange,
    TreeNodes,
    sqlite_url,
)


def _chain(meta: Metadata, conn: sa.Connection, repo: str, n: int, branch: str = "master"):
    """n commits on ``branch``, each the parent of the next; returns them oldest first."""
    out = []
    parent = None
    for _ in range(n):
        c = meta.insert_commit(conn, repo, branch=branch, parent=parent)
        out.append(c)
        parent = c.id
    return out


@contextmanager
def _count_statements(meta: Metadata) -> Iterator[list[str]]:
    seen: list[str] = []

    def listener(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    sa.event.listen(meta.engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        sa.event.remove(meta.engine, "before_cursor_execute", listener)


# ---------------------------------------------------------------- repos and branches


def test_repos_create_get_list_delete(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        made = metadata.create_repo(conn, "sales", "monthly sales", created_at=10.0)
        metadata.create_repo(conn, "alpha")
    assert made.name == "sales" and made.description == "monthly sales"
    with metadata.read() as conn:
        assert metadata.get_repo(conn, "sales") == made
        assert [r.name for r in metadata.list_repos(conn)] == ["alpha", "sales"]
    with metadata.transaction() as conn:
        metadata.delete_repo(conn, "sales")
    with metadata.read() as conn:
        assert [r.name for r in metadata.list_repos(conn)] == ["alpha"]
        with pytest.raises(RepoNotFound, match="'sales' not found"):
            metadata.get_repo(conn, "sales")


def test_repo_errors(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "sales")
    with pytest.raises(RepoExists, match="'sales' already exists"), metadata.transaction() as conn:
        metadata.create_repo(conn, "sales")
    with pytest.raises(InvalidName), metadata.transaction() as conn:
        metadata.create_repo(conn, "../x")
    with pytest.raises(RepoNotFound), metadata.transaction() as conn:
        metadata.delete_repo(conn, "nope")


def test_branches(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        c = metadata.insert_commit(conn, "r", branch="master")
        metadata.create_branch(conn, "r", "master", head_commit=c.id)
        empty = metadata.create_branch(conn, "r", "dev")
    assert empty.head_commit is None
    with metadata.read() as conn:
        assert metadata.get_branch(conn, "r", "master").head_commit == c.id
        assert [b.name for b in metadata.list_branches(conn, "r")] == ["dev", "master"]
        with pytest.raises(BranchNotFound, match="'x' not found in repo 'r'"):
            metadata.get_branch(conn, "r", "x")
        with pytest.raises(RepoNotFound):
            metadata.get_branch(conn, "nope", "master")
        with pytest.raises(RepoNotFound):
            metadata.list_branches(conn, "nope")
    with pytest.raises(StoreError, match="already exists"), metadata.transaction() as conn:
        metadata.create_branch(conn, "r", "dev")
    with pytest.raises(InvalidName), metadata.transaction() as conn:
        metadata.create_branch(conn, "r", "bad name")
    with metadata.transaction() as conn:
        metadata.delete_branch(conn, "r", "master")
        with pytest.raises(BranchNotFound):
            metadata.delete_branch(conn, "r", "master")
        # The commit survives its branch and still names it.
        assert metadata.get_commit(conn, c.id).branch == "master"
        assert [b.name for b in metadata.list_branches(conn, "r")] == ["dev"]


def test_set_head_is_compare_and_set(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        metadata.create_repo(conn, "other")
        metadata.create_branch(conn, "r", "master")
        a, b = _chain(metadata, conn, "r", 2)
        foreign = metadata.insert_commit(conn, "other")
        metadata.set_head(conn, "r", "master", None, a.id)
        metadata.set_head(conn, "r", "master", a.id, b.id)
        assert metadata.get_branch(conn, "r", "master").head_commit == b.id
        with pytest.raises(Conflict, match=f"moved to {b.id} while this writer expected {a.id}"):
            metadata.set_head(conn, "r", "master", a.id, a.id)
        with pytest.raises(Conflict, match="expected no commit"):
            metadata.set_head(conn, "r", "master", None, a.id)
        with pytest.raises(CommitNotFound, match="belongs to repo 'other'"):
            metadata.set_head(conn, "r", "master", b.id, foreign.id)
        with pytest.raises(BranchNotFound):
            metadata.set_head(conn, "r", "nope", None, a.id)
        metadata.set_head(conn, "r", "master", b.id, None)
        assert metadata.get_branch(conn, "r", "master", for_update=True).head_commit is None


# ---------------------------------------------------------------- commits


def test_commit_lifecycle(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        c = metadata.insert_commit(conn, "r", branch="master", message="first", origin=AUTO)
    assert len(c.id) == 32 and int(c.id, 16) >= 0
    assert (c.state, c.origin, c.finished_at, c.size_bytes) == (OPEN, AUTO, None, None)
    with metadata.transaction() as conn:
        metadata.stage_change(conn, c.id, "/a", "h1", 3)
        done = metadata.finish_commit(
            conn, c.id, root_tree="root1", size_bytes=3, file_count=1, message="done"
        )
    assert done.state == FINISHED and done.finished
    assert (done.root_tree, done.size_bytes, done.file_count, done.message) == (
        "root1",
        3,
        1,
        "done",
    )
    assert done.finished_at is not None and done.finished_at >= done.started_at
    with metadata.read() as conn:
        assert metadata.get_commit(conn, c.id) == done
        assert metadata.get_commit(conn, c.id, repo="r") == done
        assert metadata.staged_changes(conn, c.id) == []  # finishing drops staged changes
        with pytest.raises(CommitNotFound, match="in repo 'x'"):
            metadata.get_commit(conn, c.id, repo="x")
        with pytest.raises(CommitNotFound):
            metadata.get_commit(conn, "0" * 32)
    with pytest.raises(CommitFinished, match="already finished"), metadata.transaction() as conn:
        assert metadata.get_commit(conn, c.id, for_update=True) == done
        metadata.finish_commit(conn, c.id, root_tree=None, size_bytes=0, file_count=0)
    with pytest.raises(CommitNotFound), metadata.transaction() as conn:
        metadata.finish_commit(conn, "f" * 32, root_tree=None, size_bytes=0, file_count=0)


def test_insert_commit_checks(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        metadata.create_repo(conn, "s")
        c = metadata.insert_commit(conn, "r", commit_id="a" * 32)
        with pytest.raises(ValueError, match="origin must be"):
            metadata.insert_commit(conn, "r", origin="ROBOT")
        with pytest.raises(RepoNotFound):
            metadata.insert_commit(conn, "nope")
        with pytest.raises(CommitNotFound, match="belongs to repo 'r'"):
            metadata.insert_commit(conn, "s", parent=c.id)
    with pytest.raises(StoreError, match="already exists"), metadata.transaction() as conn:
        metadata.insert_commit(conn, "r", commit_id="a" * 32)


def test_list_commits_newest_first(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        metadata.create_repo(conn, "empty")
        master = _chain(metadata, conn, "r", 4)
        dev = _chain(metadata, conn, "r", 2, branch="dev")
        # Same start time for all: the order must not depend on the clock.
        loose = metadata.insert_commit(conn, "r", started_at=0.0)
        metadata.finish_commit(conn, master[0].id, None, 0, 0)
    everything = [c.id for c in [*master, *dev, loose]][::-1]
    with metadata.read() as conn:
        assert [c.id for c in metadata.list_commits(conn, "r")] == everything
        assert [c.id for c in metadata.list_commits(conn, "r", "master")] == [
            c.id for c in reversed(master)
        ]
        assert [c.id for c in metadata.list_commits(conn, "r", limit=2)] == everything[:2]
        assert [c.id for c in metadata.list_commits(conn, "r", "dev", limit=1)] == [dev[-1].id]
        assert [c.id for c in metadata.list_commits(conn, "r", state=FINISHED)] == [master[0].id]
        assert metadata.list_commits(conn, "empty") == []
        with pytest.raises(RepoNotFound):
            metadata.list_commits(conn, "nope")


def test_ancestors_walks_parents_in_one_query(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        chain = _chain(metadata, conn, "r", 300)
    tip = chain[-1]
    with metadata.read() as conn:
        with _count_statements(metadata) as statements:
            everything = metadata.ancestors(conn, tip.id)
        assert len(statements) <= 2
        assert [c.id for c in everything] == [c.id for c in reversed(chain[:-1])]
        assert [c.id for c in metadata.ancestors(conn, tip.id, 3)] == [
            chain[-2].id,
            chain[-3].id,
            chain[-4].id,
        ]
        assert metadata.ancestors(conn, tip.id, 0) == []
        assert metadata.ancestors(conn, chain[0].id) == []
        assert [c.id for c in metadata.ancestors(conn, chain[1].id, 10)] == [chain[0].id]
        with pytest.raises(CommitNotFound):
            metadata.ancestors(conn, "e" * 32, 1)


def test_delete_commit_keeps_history_connected(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        a, b, c = _chain(metadata, conn, "r", 3)
        metadata.create_branch(conn, "r", "master", head_commit=c.id)
        metadata.create_branch(conn, "r", "old", head_commit=b.id)
        sibling = metadata.insert_commit(conn, "r", parent=a.id)
        assert [x.id for x in metadata.children(conn, a.id)] == [b.id, sibling.id]
        metadata.delete_commit(conn, sibling.id)
        metadata.stage_change(conn, b.id, "/x", "h", 1)
        metadata.add_provenance(conn, c.id, [b.id])
        metadata.add_provenance(conn, b.id, [a.id])
    with metadata.transaction() as conn:
        gone = metadata.delete_commit(conn, b.id)
    assert gone.id == b.id
    with metadata.read() as conn:
        assert metadata.get_commit(conn, c.id).parent == a.id
        assert metadata.get_branch(conn, "r", "old").head_commit == a.id
        assert metadata.get_branch(conn, "r", "master").head_commit == c.id
        assert metadata.provenance(conn, c.id) == []
        assert metadata.subvenance(conn, a.id) == []
        assert metadata.staged_changes(conn, b.id) == []
        with pytest.raises(CommitNotFound):
            metadata.get_commit(conn, b.id)
        assert [x.id for x in metadata.ancestors(conn, c.id)] == [a.id]
        assert [x.id for x in metadata.children(conn, a.id)] == [c.id]
        assert metadata.children(conn, c.id) == []


# ---------------------------------------------------------------- staged changes


def test_staged_changes(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        c = metadata.insert_commit(conn, "r")
        other = metadata.insert_commit(conn, "r")
        metadata.stage_change(conn, c.id, "/b", "hb", 2)
        metadata.stage_change(conn, c.id, "/a", "ha", 1)
        metadata.stage_change(conn, other.id, "/a", "hz", 9)
        # The last change to a path wins, within one call and across calls.
        staged = metadata.stage_changes(
            conn, c.id, [("/c", "hc", 3), ("/b", "hb2", 5), ("/c", None, None)]
        )
        assert staged == 2
    with metadata.read() as conn:
        assert metadata.staged_changes(conn, c.id) == [
            StagedChange("/a", "ha", 1),
            StagedChange("/b", "hb2", 5),
            StagedChange("/c", None, None),
        ]
        assert metadata.staged_content_hashes(conn) == {"ha", "hb2", "hz"}
    with metadata.transaction() as conn:
        assert metadata.clear_staged(conn, c.id) == 3
        assert metadata.staged_changes(conn, c.id) == []
        assert metadata.staged_changes(conn, other.id) == [StagedChange("/a", "hz", 9)]
        assert metadata.stage_changes(conn, c.id, []) == 0
        metadata.finish_commit(conn, c.id, root_tree=None, size_bytes=0, file_count=0)
        with pytest.raises(CommitFinished, match="is finished and cannot change"):
            metadata.stage_change(conn, c.id, "/a", "h", 1)
        with pytest.raises(CommitNotFound):
            metadata.stage_change(conn, "d" * 32, "/a", "h", 1)


# ---------------------------------------------------------------- provenance


def test_provenance_and_subvenance(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "raw")
        metadata.create_repo(conn, "clean")
        metadata.create_repo(conn, "report")
        raw1 = metadata.insert_commit(conn, "raw")
        raw2 = metadata.insert_commit(conn, "raw")
        clean = metadata.insert_commit(conn, "clean", origin=AUTO)
        report = metadata.insert_commit(conn, "report", origin=AUTO)
        metadata.add_provenance(conn, clean.id, [raw1.id, raw2.id, raw1.id])
        metadata.add_provenance(conn, clean.id, [raw2.id])  # again: ignored
        metadata.add_provenance(conn, report.id, [clean.id])
        metadata.add_provenance(conn, report.id, [])
        with pytest.raises(CommitNotFound, match="b{32} not found"):
            metadata.add_provenance(conn, report.id, ["b" * 32])
    with metadata.read() as conn:
        assert [c.id for c in metadata.provenance(conn, clean.id)] == [raw1.id, raw2.id]
        assert [c.id for c in metadata.provenance(conn, report.id)] == [clean.id]
        assert [c.id for c in metadata.provenance(conn, report.id, transitive=True)] == [
            clean.id,
            raw1.id,
            raw2.id,
        ]
        assert [c.id for c in metadata.subvenance(conn, raw1.id)] == [clean.id]
        assert [c.id for c in metadata.subvenance(conn, raw1.id, transitive=True)] == [
            clean.id,
            report.id,
        ]
        assert metadata.provenance(conn, raw1.id) == []
        with pytest.raises(CommitNotFound):
            metadata.subvenance(conn, "c" * 32)


def test_delete_repo_cascades(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "raw")
        metadata.create_repo(conn, "clean")
        raw = _chain(metadata, conn, "raw", 3)
        metadata.create_branch(conn, "raw", "master", head_commit=raw[-1].id)
        metadata.stage_change(conn, raw[-1].id, "/x", "h", 1)
        clean = metadata.insert_commit(conn, "clean")
        metadata.add_provenance(conn, clean.id, [raw[0].id])
        metadata.add_provenance(conn, raw[1].id, [clean.id])
    with metadata.transaction() as conn:
        metadata.delete_repo(conn, "raw")
    with metadata.read() as conn:
        assert [r.name for r in metadata.list_repos(conn)] == ["clean"]
        assert metadata.provenance(conn, clean.id) == []
        assert metadata.subvenance(conn, clean.id) == []
        assert metadata.staged_content_hashes(conn) == set()
        for c in raw:
            with pytest.raises(CommitNotFound):
                metadata.get_commit(conn, c.id)
    # The name is free again.
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "raw")
        assert metadata.list_branches(conn, "raw") == []
        assert metadata.list_commits(conn, "raw") == []


# ---------------------------------------------------------------- contents and tree nodes


def test_contents(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.put_contents(conn, [("h1", 10, '{"pack": "p1"}'), ("h2", 20, "[]")])
        # A known hash keeps its first row: content addressing means equal contents.
        metadata.put_contents(conn, [("h1", 999, "{}"), ("h3", 30, "{}"), ("h3", 30, "{}")])
        metadata.put_contents(conn, [])
    with metadata.read() as conn:
        first = metadata.get_content(conn, "h1")
        assert (first.size, first.layout_json()) == (10, {"pack": "p1"})
        assert metadata.contents_exist(conn, ["h1", "h3", "zz", "h1"]) == {"h1", "h3"}
        assert set(metadata.get_contents(conn, ["h2", "nope"])) == {"h2"}
        assert metadata.all_content_hashes(conn) == {"h1", "h2", "h3"}
        with pytest.raises(ObjectNotFound, match="content nope"):
            metadata.get_content(conn, "nope")
    with metadata.transaction() as conn:
        assert metadata.delete_contents(conn, ["h1", "h3", "absent"]) == 2
        assert metadata.all_content_hashes(conn) == {"h2"}


def test_contents_exist_in_batches(metadata: Metadata) -> None:
    hashes = [f"{i:064x}" for i in range(2500)]
    with metadata.transaction() as conn:
        metadata.put_contents(conn, [(h, 1, "{}") for h in hashes[::2]])
        assert metadata.contents_exist(conn, hashes) == set(hashes[::2])
        assert len(metadata.get_contents(conn, hashes)) == 1250


def test_tree_nodes(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        metadata.put_tree_nodes(conn, {"k1": b"\x00one", "k2": b"two"})
        metadata.put_tree_nodes(conn, {"k1": b"other"})
        metadata.put_tree_nodes(conn, {})
        c = metadata.insert_commit(conn, "r", root_tree="k1")
        metadata.insert_commit(conn, "r")
        metadata.finish_commit(conn, c.id, root_tree="k2", size_bytes=0, file_count=0)
    with metadata.read() as conn:
        assert metadata.get_tree_node(conn, "k1") == b"\x00one"
        assert metadata.all_tree_node_keys(conn) == {"k1", "k2"}
        assert metadata.root_trees(conn) == {"k2"}
        with pytest.raises(ObjectNotFound, match="tree node k9"):
            metadata.get_tree_node(conn, "k9")
    with metadata.transaction() as conn:
        assert metadata.delete_tree_nodes(conn, ["k1", "k9"]) == 1
        assert metadata.all_tree_node_keys(conn) == {"k2"}


def test_tree_node_adapter(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        nodes = metadata.tree_nodes(conn)
        assert isinstance(nodes, TreeNodes)
        nodes.put_nodes({"a": b"A", "b": b"B"})
        assert nodes.get_node("a") == b"A"
        with pytest.raises(ObjectNotFound):
            nodes.get_node("c")
    with metadata.read() as conn:
        fresh = metadata.tree_nodes(conn)
        assert (fresh.get_node("b"), fresh.get_node("b")) == (b"B", b"B")


# ---------------------------------------------------------------- transactions and concurrency


def test_failed_transaction_leaves_nothing(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "kept")
    with pytest.raises(RuntimeError, match="boom"), metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        c = metadata.insert_commit(conn, "r", branch="master")
        metadata.create_branch(conn, "r", "master", head_commit=c.id)
        metadata.stage_change(conn, c.id, "/a", "h", 1)
        metadata.put_contents(conn, [("h", 1, "{}")])
        metadata.put_tree_nodes(conn, {"n": b"x"})
        raise RuntimeError("boom")
    with metadata.read() as conn:
        assert [r.name for r in metadata.list_repos(conn)] == ["kept"]
        assert metadata.all_content_hashes(conn) == set()
        assert metadata.all_tree_node_keys(conn) == set()
        with pytest.raises(CommitNotFound):
            metadata.get_commit(conn, c.id)


def test_read_sees_one_snapshot(metadata: Metadata) -> None:
    with metadata.read() as conn:
        assert metadata.list_repos(conn) == []
        with metadata.transaction() as writer:  # a read transaction never blocks a writer
            metadata.create_repo(writer, "new")
        assert metadata.list_repos(conn) == []
    with metadata.read() as conn:
        assert [r.name for r in metadata.list_repos(conn)] == ["new"]


def test_transactions_do_not_nest(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        with pytest.raises(StoreError, match="already open in this thread"):
            with metadata.transaction():
                pass
        with metadata.read() as reader:  # reading meanwhile is fine
            assert metadata.list_repos(reader) == []
    with metadata.transaction() as conn:  # and the guard is released afterwards
        assert [r.name for r in metadata.list_repos(conn)] == ["r"]


def test_read_then_write_on_one_pooled_connection(metadata_url: str) -> None:
    # A read-only snapshot must not leave its mode on the pooled connection.
    with Metadata(metadata_url) as meta:
        for i in range(3):
            with meta.read() as conn:
                meta.list_repos(conn)
            with meta.transaction() as conn:
                meta.create_repo(conn, f"r{i}")
        with meta.read() as conn:
            assert len(meta.list_repos(conn)) == 3


def test_concurrent_first_opens_migrate_once(metadata_url: str) -> None:
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def open_it() -> None:
        barrier.wait(10)
        try:
            with Metadata(metadata_url) as meta:
                assert meta.schema_version() == SCHEMA_VERSION
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=open_it) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with Metadata(metadata_url) as meta:
        assert _versions(meta) == list(range(1, SCHEMA_VERSION + 1))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork is POSIX only")
def test_forked_child_uses_its_own_connections(metadata: Metadata) -> None:
    with metadata.transaction() as conn:  # leaves a connection in the pool
        metadata.create_repo(conn, "parent")
    assert metadata.engine.pool.checkedin() >= 1
    pid = os.fork()
    if pid == 0:  # child: must not touch the parent's pooled connection
        code = 1
        try:
            if metadata.engine.pool.checkedin() != 0:
                os._exit(2)  # the parent's connection is still pooled here
            with metadata.transaction() as conn:
                metadata.create_repo(conn, "child")
            metadata.close()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with metadata.read() as conn:
        assert [r.name for r in metadata.list_repos(conn)] == ["child", "parent"]


def _setup_race(metadata: Metadata) -> tuple[str, list[str]]:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        base = metadata.insert_commit(conn, "r")
        metadata.create_branch(conn, "r", "master", head_commit=base.id)
        mine = [metadata.insert_commit(conn, "r", parent=base.id).id for _ in range(2)]
    return base.id, mine


def test_set_head_race_one_writer_waits_and_loses(metadata: Metadata) -> None:
    base, (first, second) = _setup_race(metadata)
    first_moved = threading.Event()
    second_starting = threading.Event()
    outcome: dict[str, object] = {}

    def winner() -> None:
        with metadata.transaction() as conn:
            metadata.set_head(conn, "r", "master", base, first)
            first_moved.set()
            assert second_starting.wait(10)
            time.sleep(0.3)  # the other writer is now blocked on us (lock or row lock)
        outcome["first"] = "moved"

    def loser() -> None:
        assert first_moved.wait(10)
        second_starting.set()
        try:
            with metadata.transaction() as conn:
                metadata.set_head(conn, "r", "master", base, second)
            outcome["second"] = "moved"
        except Conflict as e:
            outcome["second"] = e

    threads = [threading.Thread(target=winner), threading.Thread(target=loser)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert outcome["first"] == "moved"
    assert isinstance(outcome["second"], Conflict)
    assert f"moved to {first}" in str(outcome["second"])
    with metadata.read() as conn:
        assert metadata.get_branch(conn, "r", "master").head_commit == first


def test_set_head_race_exactly_one_wins(metadata: Metadata) -> None:
    base, candidates = _setup_race(metadata)
    for _ in range(5):
        with metadata.transaction() as conn:
            metadata.set_head(
                conn, "r", "master", metadata.get_branch(conn, "r", "master").head_commit, base
            )
        barrier = threading.Barrier(2)
        results: list[object] = [None, None]

        def race(i: int) -> None:
            barrier.wait(10)
            try:
                with metadata.transaction() as conn:
                    head = metadata.get_branch(conn, "r", "master").head_commit
                    assert head == base or head == candidates[1 - i]
                    metadata.set_head(conn, "r", "master", base, candidates[i])
                results[i] = "won"
            except Conflict as e:
                results[i] = e

        threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "str"]
        winner = candidates[results.index("won")]
        with metadata.read() as conn:
            assert metadata.get_branch(conn, "r", "master").head_commit == winner


def test_finish_race_exactly_one_finishes(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        c = metadata.insert_commit(conn, "r")
    barrier = threading.Barrier(3)
    results: list[str] = []

    def finish() -> None:
        barrier.wait(10)
        try:
            with metadata.transaction() as conn:
                metadata.finish_commit(conn, c.id, root_tree=None, size_bytes=0, file_count=0)
            results.append("finished")
        except CommitFinished:
            results.append("refused")

    threads = [threading.Thread(target=finish) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == ["finished", "refused", "refused"]


# ---------------------------------------------------------------- bulk speed


@pytest.mark.slow
def test_bulk_staging_and_contents(metadata: Metadata) -> None:
    n = 20_000  # bulk paths (chunked inserts); their speed is in benchmarks/bench_store_trees.py
    changes = [(f"/data/{i:07d}.csv", f"{i:064x}", i) for i in range(n)]
    contents = [(f"{i:064x}", i, '{"chunks": []}') for i in range(n)]
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        c = metadata.insert_commit(conn, "r")
    with metadata.transaction() as conn:
        assert metadata.stage_changes(conn, c.id, changes) == n
    with metadata.transaction() as conn:
        metadata.put_contents(conn, contents)
    with metadata.read() as conn:
        staged = metadata.staged_changes(conn, c.id)
        assert len(staged) == n and staged[5] == StagedChange(*changes[5])
        assert len(metadata.all_content_hashes(conn)) == n


# ---------------------------------------------------------------- schema versions and opening


def _versions(meta: Metadata) -> list[int]:
    with meta.read() as conn:
        return list(conn.scalars(sa.text("SELECT version FROM schema_version ORDER BY version")))


def test_reopen_does_not_migrate_again(metadata_url: str, monkeypatch) -> None:
    meta = Metadata(metadata_url)
    with meta.transaction() as conn:
        meta.create_repo(conn, "r")
    assert meta.schema_version() == SCHEMA_VERSION == 2
    meta.close()

    def must_not_run(conn: sa.Connection) -> None:
        raise AssertionError("a migration ran on an up-to-date database")

    monkeypatch.setattr(metadata_module, "MIGRATIONS", [must_not_run, must_not_run])
    again = Metadata(metadata_url)
    with again.read() as conn:
        assert [r.name for r in again.list_repos(conn)] == ["r"]
    assert _versions(again) == [1, 2]
    again.close()


def test_new_migration_is_applied_once(metadata_url: str, monkeypatch) -> None:
    Metadata(metadata_url).close()
    calls: list[int] = []

    def add_labels(conn: sa.Connection) -> None:
        calls.append(1)
        conn.execute(sa.text("CREATE TABLE labels (name VARCHAR(50) PRIMARY KEY)"))

    monkeypatch.setattr(metadata_module, "MIGRATIONS", [*metadata_module.MIGRATIONS, add_labels])
    for _ in range(2):
        with Metadata(metadata_url) as meta:
            assert meta.schema_version() == 3
            assert _versions(meta) == [1, 2, 3]
    assert calls == [1]


def test_version_1_database_gains_the_gc_table(metadata_url: str, monkeypatch) -> None:
    """A store written before the gc protocol (schema 1) is upgraded in place, its data kept."""
    monkeypatch.setattr(metadata_module, "MIGRATIONS", metadata_module.MIGRATIONS[:1])
    with Metadata(metadata_url) as meta:
        with meta.transaction() as conn:
            meta.create_repo(conn, "old")
            assert not sa.inspect(conn).has_table("gc_doomed")
    monkeypatch.undo()
    with Metadata(metadata_url) as meta:
        assert _versions(meta) == [1, 2]
        with meta.transaction() as conn:
            assert [r.name for r in meta.list_repos(conn)] == ["old"]
            meta.doom_objects(conn, ["a" * 64])
            assert meta.doomed_objects(conn, 10) == ["a" * 64]


def test_failed_migration_changes_nothing(metadata_url: str, monkeypatch) -> None:
    Metadata(metadata_url).close()

    def broken(conn: sa.Connection) -> None:
        conn.execute(sa.text("CREATE TABLE half_done (x INTEGER)"))
        raise RuntimeError("migration 3 failed")

    monkeypatch.setattr(metadata_module, "MIGRATIONS", [*metadata_module.MIGRATIONS, broken])
    with pytest.raises(RuntimeError, match="migration 3 failed"):
        Metadata(metadata_url)
    monkeypatch.undo()
    meta = Metadata(metadata_url)
    assert _versions(meta) == [1, 2]
    with meta.read() as conn:
        assert not sa.inspect(conn).has_table("half_done")
    meta.close()


def test_future_schema_version_is_refused(metadata_url: str) -> None:
    meta = Metadata(metadata_url)
    with meta.transaction() as conn:
        conn.execute(sa.text("INSERT INTO schema_version VALUES (7, 0)"))
    meta.close()
    with pytest.raises(StoreError, match=r"schema version 7.*up to 2.*upgrade headrace"):
        Metadata(metadata_url)


def test_metadata_pickles_as_its_url(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
    for dumps, loads in [(pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)]:
        copy = loads(dumps(metadata))
        assert copy.url == metadata.url and copy.dialect == metadata.dialect
        with copy.read() as conn:
            assert [r.name for r in copy.list_repos(conn)] == ["r"]
        copy.close()


def test_bad_urls_are_refused() -> None:
    with pytest.raises(StoreError, match="unsupported metadata URL 'mysql://u:\\*\\*\\*@h/db'"):
        Metadata("mysql://u:secret@h/db")
    with pytest.raises(StoreError, match="invalid metadata URL"):
        Metadata("not a url")


def test_postgresql_scheme_means_psycopg(postgresql_metadata_url: str) -> None:
    plain = postgresql_metadata_url.replace("postgresql+psycopg://", "postgresql://")
    with Metadata(plain) as meta:
        assert meta.dialect == "postgresql"
        assert meta.engine.dialect.driver == "psycopg"
        assert meta.schema_version() == SCHEMA_VERSION


def test_sqlite_settings(tmp_path) -> None:
    url = sqlite_url(tmp_path / "deep" / "dir" / "metadata.db")
    assert url.startswith("sqlite:////")
    with Metadata(url, busy_timeout=12.5) as meta:
        with meta.engine.connect() as conn:
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            assert pragma("journal_mode") == "wal"
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 12500
    assert (tmp_path / "deep" / "dir" / "metadata.db").exists()


def test_in_memory_sqlite() -> None:
    with Metadata("sqlite://") as meta:
        with meta.transaction() as conn:
            meta.create_repo(conn, "r")
        with meta.read() as conn:
            assert [r.name for r in meta.list_repos(conn)] == ["r"]


# ---------------------------------------------------------------- the tree node cache


def test_get_tree_nodes_reads_many_in_batches(metadata: Metadata) -> None:
    nodes = {f"k{i:05d}": f"node {i}".encode() + b"\x00\xff" for i in range(2000)}
    with metadata.transaction() as conn:
        metadata.put_tree_nodes(conn, nodes)
    wanted = [*list(nodes)[::2], "missing-1", "missing-2"]  # 1002 keys
    with metadata.read() as conn, _count_statements(metadata) as seen:
        found = metadata.get_tree_nodes(conn, wanted)
    assert found == {k: nodes[k] for k in list(nodes)[::2]}
    assert all(type(v) is bytes for v in found.values())
    # One statement per batch: SQLite binds at most 900 keys, PostgreSQL one array.
    assert len(seen) == (1 if metadata.dialect == "postgresql" else 2)
    with metadata.read() as conn:
        assert metadata.get_tree_nodes(conn, []) == {}
        assert metadata.get_tree_node(conn, "k00007") == nodes["k00007"]


def _delete_row(metadata: Metadata, key: str) -> None:
    """Remove a node behind the metadata's back (as damage would)."""
    with metadata.transaction() as conn:
        conn.execute(sa.text("DELETE FROM tree_nodes WHERE key = :k"), {"k": key})


def test_node_cache_is_shared_across_transactions(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.put_tree_nodes(conn, {"a": b"A", "b": b"B", "c": b"C"})
    assert len(metadata.node_cache) == 0  # writes do not fill the cache
    with metadata.read() as conn:
        nodes = metadata.tree_nodes(conn)
        assert nodes.get_node("a") == b"A"
        assert nodes.get_nodes(["b", "c", "zz"]) == {"b": b"B", "c": b"C"}
    assert sorted(metadata.node_cache.keys()) == ["a", "b", "c"]
    _delete_row(metadata, "a")
    with metadata.read() as conn, _count_statements(metadata) as seen:
        assert metadata.tree_nodes(conn).get_node("a") == b"A"  # from the cache
        assert metadata.tree_nodes(conn).get_nodes(["a", "b"]) == {"a": b"A", "b": b"B"}
        assert not any("tree_nodes" in s for s in seen)
        uncached = metadata.tree_nodes(conn, cached=False)
        with pytest.raises(ObjectNotFound, match="tree node a"):
            uncached.get_node("a")  # the database's view, as fsck needs
        assert uncached.get_nodes(["a", "b"]) == {"b": b"B"}
    assert uncached.cache is not metadata.node_cache


def test_deleting_tree_nodes_evicts_them(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.put_tree_nodes(conn, {"a": b"A", "b": b"B"})
    with metadata.read() as conn:
        metadata.tree_nodes(conn).get_nodes(["a", "b"])
    with metadata.transaction() as conn:
        assert metadata.delete_tree_nodes(conn, ["a", "a", "x"]) == 1
    assert metadata.node_cache.keys() == ["b"]
    with metadata.read() as conn, pytest.raises(ObjectNotFound):
        metadata.tree_nodes(conn).get_node("a")


def test_node_cache_size_is_kept_when_pickled(metadata_url: str) -> None:
    meta = Metadata(metadata_url, node_cache_bytes=12345)
    try:
        for dumps in (pickle.dumps, cloudpickle.dumps):
            copy = pickle.loads(dumps(meta))
            assert copy.node_cache.capacity == 12345 and len(copy.node_cache) == 0
            copy.close()
    finally:
        meta.close()


def test_branch_head_in_one_query(metadata: Metadata) -> None:
    with metadata.transaction() as conn:
        metadata.create_repo(conn, "r")
        metadata.create_branch(conn, "r", "empty")
        (c,) = _chain(metadata, conn, "r", 1)
        metadata.create_branch(conn, "r", "master", head_commit=c.id)
    with metadata.read() as conn:
        with _count_statements(metadata) as seen:
            assert metadata.branch_head(conn, "r", "master") == c
        assert len(seen) == 1
        assert metadata.branch_head(conn, "r", "empty") is None
        assert metadata.branch_head(conn, "r", "nope") is None
        assert metadata.branch_head(conn, "nope", "master") is None


def test_node_cache_evicts_least_recently_used_by_bytes() -> None:
    overhead = metadata_module.NodeCache(0)  # keeps nothing
    overhead.put("k", b"x")
    assert len(overhead) == 0 and overhead.get("k") is None
    cache = metadata_module.NodeCache(3 * (1000 + 200))
    for key in "abc":
        cache.put(key, key.encode() * 1000)
    assert cache.keys() == ["a", "b", "c"] and cache.nbytes == 3600
    assert cache.get("a") == b"a" * 1000  # now the most recently used
    cache.put("d", b"d" * 1000)
    assert cache.keys() == ["c", "a", "d"]  # b, the least recently used, went
    cache.put("huge", b"h" * 5000)  # larger than the whole cache: not kept
    assert "huge" not in cache and cache.nbytes == 3600
    assert cache.get_many(["c", "zz", "d"]) == {"c": b"c" * 1000, "d": b"d" * 1000}
    cache.discard(["c", "zz"])
    assert cache.keys() == ["a", "d"] and cache.nbytes == 2400
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
    with pytest.raises(ValueError, match="capacity"):
        metadata_module.NodeCache(-1)


def test_node_cache_is_thread_safe() -> None:
    cache = metadata_module.NodeCache(50 * 300)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(3000):
                key = f"{(i * 7 + n) % 120}"
                cache.put(key, key.encode() * 10)
                got = cache.get(f"{(i + n) % 120}")
                assert got is None or got == f"{(i + n) % 120}".encode() * 10
                if i % 50 == 0:
                    cache.discard([key])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.nbytes == sum(len(cache.get(k) or b"") + 200 for k in cache.keys())
    assert cache.nbytes <= cache.capacity


def test_forked_child_can_use_a_node_cache_locked_in_the_parent() -> None:
    cache = metadata_module.NodeCache(10_000)
    cache.put("k", b"v")
    with cache._lock:  # as if another thread of the parent were using it at fork time
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if cache.get("k") == b"v" else 2
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
