"""The runs of a shuffle: what a grouping writer leaves for the task reading one partition.

A :class:`MemoryRun` is a writer's table handed over in memory (one process only). A
:class:`FileRun` is one partition of a writer's table in one blob of the run's
:class:`~headrace.exec.spill.SpillSpace`: either one block per sub-bucket (a spill, readable piece
by piece when the reader is over its budget) or one *whole* block in the writer's order. Blocks
are encoded by :mod:`headrace.exec.blocks`; a run whose values are typed columns
(``typecode``; see :class:`~headrace.exec.grouping.GroupTable`) stores each group's values as the
bytes of an ``array`` and is read back into arrays, which :func:`plain_values` turns into the
lists user code sees. Writing and merging runs is :mod:`headrace.exec.grouping`'s business.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Any

from headrace.exec.blocks import dump_block
from headrace.exec.blocks import load_block as decode_block
from headrace.exec.spill import SpillSpace

__all__ = [
    "SUB_BUCKETS",
    "WHOLE",
    "FileRun",
    "MemoryRun",
    "Run",
    "load_block",
    "load_blocks",
    "plain_values",
    "write_file_run",
    "write_whole_run",
]

SUB_BUCKETS = 16
WHOLE = -1  # FileRun.index key of a block holding every sub-bucket of the partition


@dataclass
class MemoryRun:
    """A writer's table handed over in memory (only within one process)."""

    table: dict[Any, Any]
    ts: dict[Any, int] | None
    nbytes: int


@dataclass
class FileRun:
    """One partition of a spill: block offsets per sub-bucket in one blob of the spill space.

    ``index`` maps a sub-bucket to its block's (offset, length); a *whole* run has the one
    entry ``WHOLE``, a block with every group of the partition in the writer's order. The
    sub-bucket of a group is ``(stable_hash(key, salt) // parts) % SUB_BUCKETS``, where ``parts``
    is how many partitions the writer had (so every run of a partition agrees on it).
    """

    key: str
    index: dict[int, tuple[int, int]] = field(default_factory=dict)
    salt: int = 0
    # In-memory size per pickled byte (the writer's estimate over what it wrote): a pickled int
    # takes a few bytes, the object in a list ~36, so a reader that compared pickled sizes with
    # its memory budget merged several times the budget at once.
    mem_ratio: float = 1.0
    parts: int = 1
    # Values are typed columns (GroupTable._add_gbk_typed) stored as the bytes of an
    # array(typecode); _load_blocks turns them back into arrays.
    typecode: str | None = None

    @property
    def whole(self) -> bool:
        """One block with every sub-bucket (read it all, or split it first)."""
        return WHOLE in self.index

    @property
    def nbytes(self) -> int:
        """Estimated memory the run takes once loaded."""
        return int(sum(length for _, length in self.index.values()) * self.mem_ratio)

    def block_bytes(self, sub_bucket: int) -> int:
        """Estimated memory of one sub-bucket once loaded."""
        return int(self.index.get(sub_bucket, (0, 0))[1] * self.mem_ratio)


Run = MemoryRun | FileRun


def plain_values(table: dict[Any, Any]) -> dict[Any, Any]:
    """``table`` with every typed value column (an ``array``) turned back into a list.

    >>> plain_values({"a": array("q", [1, 2]), "b": [3.5]})
    {'a': [1, 2], 'b': [3.5]}
    """
    for k, vs in table.items():
        if type(vs) is array:
            table[k] = vs.tolist()
    return table


def write_file_run(
    spill: SpillSpace,
    sub_buckets: list[list[Any]],
    salt: int,
    parts: int = 1,
    typecode: str | None = None,
) -> FileRun:
    """One blob with a block per non-empty sub-bucket."""
    key, f = spill.create("run")
    index: dict[int, tuple[int, int]] = {}
    with f:
        for s, items in enumerate(sub_buckets):
            if not items:
                continue
            data = dump_block(_column_bytes(items) if typecode else items)
            index[s] = (f.tell(), len(data))
            f.write(data)
    return FileRun(key, index, salt, parts=parts, typecode=typecode)


def write_whole_run(
    spill: SpillSpace, items: list[Any], parts: int, typecode: str | None = None
) -> FileRun:
    """One blob with one block of every item (salt 0), in the order given."""
    key, f = spill.create("run")
    data = dump_block(_column_bytes(items) if typecode else items)
    with f:
        f.write(data)
    return FileRun(key, {WHOLE: (0, len(data))}, 0, parts=parts, typecode=typecode)


def _column_bytes(items: list[tuple[Any, Any]]) -> list[tuple[Any, bytes]]:
    return [(k, column.tobytes()) for k, column in items]


def _columns(typecode: str, items: list[tuple[Any, bytes]]) -> list[tuple[Any, Any]]:
    out = []
    for k, raw in items:
        column = array(typecode)
        column.frombytes(raw)
        out.append((k, column))
    return out


def load_block(spill: SpillSpace, run: FileRun, s: int) -> list[Any]:
    blocks = load_blocks(spill, run, [s])
    return blocks[0] if blocks else []


def load_blocks(spill: SpillSpace, run: FileRun, sub_buckets: list[int]) -> list[list[Any]]:
    """The blocks of ``sub_buckets`` in ``run`` (all of a whole run's), opening its blob once."""
    if run.whole:
        assert len(sub_buckets) == SUB_BUCKETS, "split a whole run before reading sub-buckets"
        spans = [run.index[WHOLE]]
    else:
        spans = [run.index[s] for s in sub_buckets if s in run.index]
    if not spans:
        return []
    out = []
    with spill.open(run.key) as f:
        for offset, length in spans:
            f.seek(offset)
            items = decode_block(f.read(length))
            out.append(_columns(run.typecode, items) if run.typecode else items)
    return out
