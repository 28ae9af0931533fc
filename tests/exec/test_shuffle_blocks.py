"""Shuffle blocks: what a worker writes for another comes back exact (types included), and whole
runs (one block per partition) merge with sub-bucketed ones when the reader is over budget."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.exec.blocks import dump_block, load_block
from headrace.exec.collect import Collector, read_collection
from headrace.exec.grouping import FileRun, GroupTable, Merger, plain_values, read_partition
from headrace.exec.spill import LocalSpillSpace


def typed(x: Any) -> Any:
    """``x`` with the exact type of every part spelled out: equal only if types match too."""
    if isinstance(x, (list, tuple)):
        return (type(x), tuple(typed(v) for v in x))
    if isinstance(x, dict):
        return (type(x), tuple(sorted(((typed(k), typed(v)) for k, v in x.items()), key=repr)))
    if isinstance(x, frozenset):
        return (type(x), frozenset(typed(v) for v in x))
    if isinstance(x, float) and x != x:
        return (type(x), "nan")
    return (type(x), x)


class Tag(str):
    """A str subclass: must not come back as a plain str."""


atoms = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=True),
    st.text(),
    st.binary(),
    st.text().map(Tag),
)
values = st.recursive(
    atoms,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.frozensets(st.one_of(st.integers(), st.text()), max_size=3),
        st.dictionaries(st.text(max_size=3), inner, max_size=3),
    ),
    max_leaves=12,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(values, st.lists(values, max_size=4)), max_size=8))
def test_a_block_comes_back_with_every_type_and_value(items: list[Any]) -> None:
    back = load_block(dump_block(items))
    assert typed(back) == typed(items)


def test_a_cyclic_value_and_shared_parts_come_back() -> None:
    cyclic: list[Any] = ["x"]
    cyclic.append(cyclic)
    shared = [1, 2]
    back = load_block(dump_block([("k", cyclic), ("j", (shared, shared))]))
    assert back[0][1][0] == "x" and back[0][1][1] is back[0][1]
    assert back[1][1] == ([1, 2], [1, 2])  # equal values; identity is not kept across a block


def test_a_collection_spilled_to_blocks_reads_back_exactly(tmp_path: Path) -> None:
    space = LocalSpillSpace(str(tmp_path))
    collector = Collector(space, budget_bytes=1 << 20, in_memory_handoff=False, chunk_size=3)
    elements = [("a", 1), ("b", 2.5), (b"c", (True, None)), (Tag("t"), [1, 2]), 7, "s", 2**80]
    collector.add(elements)
    runs = collector.close()
    back = [e for chunk in read_collection(runs, space) for e in chunk]
    assert typed(back) == typed(elements)
    halves = [e for i in (0, 1) for chunk in read_collection(runs, space, (i, 2)) for e in chunk]
    assert sorted(map(repr, halves)) == sorted(map(repr, elements))


def _pairs(n: int, keys: int, start: int = 0) -> list[tuple[str, int]]:
    return [(f"k{i % keys}", i) for i in range(start, start + n)]


def _table(space: LocalSpillSpace, budget: int, parts: int = 2) -> GroupTable:
    return GroupTable("G", "gbk", Merger("gbk", None), parts, space, budget, windowed=False)


def _read(runs: list[Any], budget: int, space: LocalSpillSpace) -> tuple[dict[str, list[int]], int]:
    merged: dict[str, list[int]] = {}
    pieces = 0
    for piece, _ in read_partition(runs, Merger("gbk", None), False, None, budget, space, "gbk"):
        pieces += 1
        for k, vs in piece.items():
            assert k not in merged, f"group {k!r} came out in two pieces"
            merged[k] = sorted(vs)
    return merged, pieces


def test_a_table_that_never_spilled_closes_into_one_whole_block_per_partition(
    tmp_path: Path,
) -> None:
    space = LocalSpillSpace(str(tmp_path))
    table = _table(space, budget=1 << 30)
    for start in range(0, 20_000, 1000):
        table.add(_pairs(1000, 500, start))
    parts = table.close()
    assert table.spills == 0
    runs = [r for part in parts for r in part]
    assert len(runs) == 2 and all(isinstance(r, FileRun) and r.whole for r in runs)
    merged = {}
    for part in parts:
        got, pieces = _read(part, 1 << 30, space)
        assert pieces == 1
        merged.update(got)
    assert merged == {f"k{k}": list(range(k, 20_000, 500)) for k in range(500)}


def test_whole_and_sub_bucketed_runs_of_one_partition_merge_over_budget(tmp_path: Path) -> None:
    """One writer spilled (sub-bucketed runs), another did not (whole runs); a reader whose
    budget both do not fit splits the whole runs into the writers' own sub-buckets, so every
    group still comes out once with all its values, and leaves the runs it was given readable
    (a retried reader reads them again)."""
    space = LocalSpillSpace(str(tmp_path))
    spilled = _table(space, budget=60_000)
    for start in range(0, 20_000, 1000):
        spilled.add(_pairs(1000, 2000, start))
    whole = _table(space, budget=1 << 30)
    for start in range(20_000, 40_000, 1000):
        whole.add(_pairs(1000, 2000, start))
    spilled_parts, whole_parts = spilled.close(), whole.close()
    assert spilled.spills >= 2 and whole.spills == 0
    files_before = set(os.listdir(tmp_path))
    merged: dict[str, list[int]] = {}
    for p in range(2):
        runs = spilled_parts[p] + whole_parts[p]
        assert any(isinstance(r, FileRun) and r.whole for r in runs)
        assert any(isinstance(r, FileRun) and not r.whole for r in runs)
        budget = max(r.nbytes for r in runs)  # each run fits alone; all of them do not
        got, pieces = _read(runs, budget, space)
        assert pieces > 1
        merged.update(got)
        again, _ = _read(runs, 1 << 30, space)
        assert again == got
    assert merged == {f"k{k}": list(range(k, 40_000, 2000)) for k in range(2000)}
    assert set(os.listdir(tmp_path)) == files_before  # the reader's split copies are gone


class Flag(int):
    """An int subclass: must come back as itself, never as a plain int."""


def _group(chunks_by_writer: list[list[list[Any]]], budget: int, tmp: Path) -> dict[Any, list]:
    """Write each writer's chunks with a 2-partition shuffle table, read both partitions back."""
    space = LocalSpillSpace(str(tmp))
    parts: list[list[Any]] = [[], []]
    for chunks in chunks_by_writer:
        table = _table(space, budget=budget)
        for chunk in chunks:
            table.add(chunk)
        for p, runs in enumerate(table.close()):
            parts[p].extend(runs)
    merged: dict[Any, list] = {}
    for runs in parts:
        for piece, _ in read_partition(
            runs, Merger("gbk", None), False, None, budget, space, "gbk"
        ):
            for k, vs in plain_values(piece).items():
                assert type(vs) is list
                assert k not in merged
                merged[k] = vs
    return merged


def test_int_values_travel_in_typed_columns_and_come_back_as_int_lists(tmp_path: Path) -> None:
    space = LocalSpillSpace(str(tmp_path))
    table = _table(space, budget=1 << 30)
    table.add([(f"k{i % 5}", i) for i in range(100)])
    assert table.typecode == "q"
    merged = _group([[[(f"k{i % 5}", i) for i in range(100)]]], 1 << 30, tmp_path)
    assert typed(merged) == typed({f"k{k}": list(range(k, 100, 5)) for k in range(5)})


@pytest.mark.parametrize(
    "late",
    [True, Flag(7), 2**70, -(2**63) - 1, 1.5, "s", None],
    ids=["bool", "int-subclass", "big-int", "below-int64", "float", "str", "none"],
)
def test_a_value_of_another_type_after_typed_chunks_keeps_every_value_exact(
    late: Any, tmp_path: Path
) -> None:
    """Ints first, then (mid-chunk) a value an int64 column would retype or refuse: the table
    goes back to lists without losing or retyping anything, before or after it."""
    first = [("a", 1), ("b", 2)]
    second = [("a", 3), ("b", late), ("a", 4)]
    merged = _group([[first, second]], 1 << 30, tmp_path)
    assert typed(merged) == typed({"a": [1, 3, 4], "b": [2, late]})


def test_writers_with_int_float_and_list_columns_merge_exactly(tmp_path: Path) -> None:
    ints = [[("k", 1), ("j", 2)]]
    floats = [[("k", 1.0), ("j", 2.5)]]
    mixed = [[("k", "x"), ("j", True)]]
    merged = _group([ints, floats, mixed], 1 << 30, tmp_path)
    assert {k: sorted(map(repr, vs)) for k, vs in merged.items()} == {
        "k": sorted(map(repr, [1, 1.0, "x"])),
        "j": sorted(map(repr, [2, 2.5, True])),
    }
    assert typed(sorted(merged["k"], key=repr)) == typed(sorted([1, 1.0, "x"], key=repr))


def test_typed_columns_survive_spills_and_a_reader_over_budget(tmp_path: Path) -> None:
    spilled = [[(f"k{i % 2000}", i) for i in range(s, s + 1000)] for s in range(0, 20_000, 1000)]
    whole = [[(f"k{i % 2000}", i) for i in range(s, s + 1000)] for s in range(20_000, 40_000, 1000)]
    space = LocalSpillSpace(str(tmp_path))
    parts: list[list[Any]] = [[], []]
    for chunks, budget in ((spilled, 60_000), (whole, 1 << 30)):
        table = _table(space, budget=budget)
        for chunk in chunks:
            table.add(chunk)
        assert table.typecode == "q"
        for p, runs in enumerate(table.close()):
            parts[p].extend(runs)
    merged: dict[str, list[int]] = {}
    for runs in parts:
        budget = max(r.nbytes for r in runs)
        pieces = list(read_partition(runs, Merger("gbk", None), False, None, budget, space, "gbk"))
        assert len(pieces) > 1
        for piece, _ in pieces:
            merged.update((k, sorted(vs)) for k, vs in plain_values(piece).items())
    assert typed(merged) == typed({f"k{k}": list(range(k, 40_000, 2000)) for k in range(2000)})
