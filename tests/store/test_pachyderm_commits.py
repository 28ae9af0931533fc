"""Pachyderm's commit rules. Its ancestry syntax (docs: 'Ancestry Syntax'): 'master^',
'master~~', 'master^2' go back from the head; 'master.N' counts from the branch's first
commit (master.1). Deleting a commit with children, or squashing into an open child, is
refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from headrace.store.errors import CommitNotFound, StoreError
from headrace.store.store import Store


def test_ancestry_syntax(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.create_repo("r")
    ids = [store.put_files("r@master", [(f"/{i}", b"x")]).id for i in range(4)]
    assert store.inspect_commit("r@master").id == ids[3]
    assert store.inspect_commit("r@master~").id == ids[2]
    assert store.inspect_commit("r@master~~").id == ids[1]
    assert store.inspect_commit("r@master^^^").id == ids[0]
    assert store.inspect_commit("r@master~2").id == ids[1]
    assert store.inspect_commit("r@master.1").id == ids[0]
    assert store.inspect_commit("r@master.3").id == ids[2]
    assert store.inspect_commit("r@master.4^").id == ids[2]
    assert [f.path for f in store.list_files("r@master.2:/")] == ["/0", "/1"]
    with pytest.raises(CommitNotFound, match="has 4 commits"):
        store.inspect_commit("r@master.5")
    store.close()


def test_a_branch_whose_name_ends_in_dot_digits_is_still_that_branch(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    store.create_repo("r")
    store.put_files("r@master", [("/a", b"x")])
    only = store.put_files("r@v1.2", [("/b", b"y")])
    assert store.inspect_commit("r@v1.2").id == only.id
    store.close()


def test_deleting_a_commit_with_children_is_refused(tmp_path: Path) -> None:
    """Pachyderm's DeleteCommit refuses a commit with children (it would rewrite their
    history); squash it into them instead."""
    store = Store.open(tmp_path)
    store.create_repo("r")
    first = store.put_files("r@master", [("/a", b"1")])
    store.put_files("r@master", [("/b", b"2")])
    with pytest.raises(StoreError, match="child commit"):
        store.delete_commit(f"r@{first.id}")
    assert store.inspect_commit("r@master^").id == first.id  # nothing changed
    store.close()


def test_squashing_into_an_open_child_is_refused(tmp_path: Path) -> None:
    """Pachyderm's SquashCommit refuses when a child is still open."""
    store = Store.open(tmp_path)
    store.create_repo("r")
    first = store.put_files("r@master", [("/a", b"1")])
    store.start_commit("r@master")
    with pytest.raises(StoreError, match="open child"):
        store.squash_commit(f"r@{first.id}")
    store.close()
