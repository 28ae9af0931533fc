"""Pachyderm's ancestry syntax (docs: 'Ancestry Syntax'): 'master^', 'master~~', 'master^2'
go back from the head; 'master.N' counts from the branch's first commit (master.1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from headrace.store.errors import CommitNotFound
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
