"""The fused event-time loop (``ParDoOperator.fuse_window_into`` feeding
``GroupTable.add_assigned``) against the unfused operators it replaces.

Each case pushes the same chunks through Map -> WindowInto -> GroupTable twice: once as three
operators, once fused. The grouping tables must hold the same groups and values, the fused loop
must report the same element counts, and user errors must name the same transform and element.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from headrace.exec.grouping import GroupTable, Merger, read_partition
from headrace.exec.operators import ParDoOperator, WindowIntoOperator
from headrace.exec.spill import LocalSpillSpace
from headrace.model.metrics import MetricsContainer
from headrace.model.timestamp import MIN_US
from headrace.model.transforms.core import _CallableDoFn
from headrace.model.transforms.dofn import CallableWrapperCombineFn, CombineFn
from headrace.model.window import (
    GLOBAL_WINDOWS_TUPLE,
    FixedWindows,
    IntervalWindow,
    SlidingWindows,
    TimestampedValue,
    WindowedValue,
)


class MeanFn(CombineFn):
    """A CombineFn without a fast path: the table runs create/add_input for it."""

    def create_accumulator(self):
        return (0, 0)

    def add_input(self, acc, x):
        return (acc[0] + x, acc[1] + 1)

    def merge_accumulators(self, accs):
        return (sum(a[0] for a in accs), sum(a[1] for a in accs))

    def extract_output(self, acc):
        return acc[0] / acc[1] if acc[1] else None


COMBINES = {
    "sum": lambda: Merger("combine", (CallableWrapperCombineFn(sum), (), {})),
    "mean": lambda: Merger("combine", (MeanFn(), (), {})),
    "gbk": lambda: Merger("gbk", None),
}


def _events(n: int = 3000, seed: int = 7) -> list[tuple[str, int, float]]:
    r = random.Random(seed)
    return [
        (f"k{r.randrange(20)}", r.randrange(100), round(r.uniform(-300, 900), 3)) for _ in range(n)
    ]


def _stamp(e):
    return TimestampedValue((e[0], e[1]), e[2])


def _chain(
    fn, window_fn, merger_name, tmp_path, *, in_windowed, fuse, args=(), budget=1 << 30, parts=1
):
    """(map operator, window operator, table) wired as the task builder wires them."""
    merger = COMBINES[merger_name]()
    folder = tmp_path / ("fused" if fuse else "plain")
    folder.mkdir(parents=True, exist_ok=True)
    table = GroupTable(
        label="Group",
        mode="gbk" if merger_name == "gbk" else "combine",
        merger=merger,
        num_partitions=parts,
        spill=LocalSpillSpace(str(folder)),
        budget_bytes=budget,
        windowed=True,
    )
    window_op = WindowIntoOperator("Window", window_fn, [table.add], True, True)
    map_op = ParDoOperator(
        label="Stamp",
        fn_kind="map",
        dofn=_CallableDoFn(fn, "map"),
        args=args,
        kwargs={},
        dofn_params={},
        main_tag="main",
        outputs={"main": [window_op.process]},
        out_windowed={"main": True},
        in_windowed=in_windowed,
        side_inputs=[],
        metrics=MetricsContainer("Stamp"),
    )
    if fuse:
        assert table.takes_assigned
        assert map_op.fuse_window_into(window_op, table.add_assigned)
    return map_op, window_op, table


def _groups(table: GroupTable) -> dict[Any, Any]:
    (run,) = table.close()[0]
    out = {}
    for gk, v in run.table.items():
        out[gk] = sorted(v) if isinstance(v, list) else table.merger.output(v)
    return out


def _run_both(tmp_path, fn, window_fn, merger_name, chunks, *, in_windowed=False, args=()):
    results = []
    for fuse in (False, True):
        map_op, window_op, table = _chain(
            fn, window_fn, merger_name, tmp_path, in_windowed=in_windowed, fuse=fuse, args=args
        )
        for chunk in chunks:
            map_op.process(chunk)
        counts = (
            map_op.elements_in,
            map_op.elements_out,
            window_op.elements_in,
            window_op.elements_out,
        )
        results.append((_groups(table), counts))
    return results


WINDOW_FNS = {
    "fixed": lambda: FixedWindows(60),
    "fixed_offset": lambda: FixedWindows(60, 15),
    "sliding": lambda: SlidingWindows(60, 20),
}


@pytest.mark.parametrize("window", sorted(WINDOW_FNS))
@pytest.mark.parametrize("merger_name", sorted(COMBINES))
def test_fused_tables_equal_the_unfused_ones(tmp_path, window, merger_name):
    events = _events()
    chunks = [events[i : i + 700] for i in range(0, len(events), 700)]
    (plain, plain_counts), (fused, fused_counts) = _run_both(
        tmp_path, _stamp, WINDOW_FNS[window](), merger_name, chunks
    )
    assert fused == plain
    assert fused_counts == plain_counts
    assert len(plain) > 100  # many (key, window) groups, so the comparison means something


@pytest.mark.parametrize("offset", [0, 15])
def test_fixed_window_groups_are_the_plain_python_ones(tmp_path, offset):
    events = _events()
    _, (fused, _) = _run_both(tmp_path, _stamp, FixedWindows(60, offset), "sum", [events])
    want: dict[Any, int] = {}
    for k, v, t in events:
        us = round(t * 1_000_000)
        start = us - (us - offset * 1_000_000) % 60_000_000
        gk = (k, IntervalWindow.from_us(start, start + 60_000_000))
        want[gk] = want.get(gk, 0) + v
    assert fused == want


def test_windowed_input_keeps_its_timestamp_when_the_map_sets_none(tmp_path):
    """A Map after the timestamps were set (its input is windowed) that returns plain values."""
    events = _events()
    chunk = [WindowedValue((k, v), round(t * 1e6), GLOBAL_WINDOWS_TUPLE) for k, v, t in events]
    (plain, pc), (fused, fc) = _run_both(
        tmp_path,
        lambda kv, m: (kv[0], kv[1] * m),
        FixedWindows(30),
        "sum",
        [chunk],
        in_windowed=True,
        args=(3,),
    )
    assert fused == plain and fc == pc
    assert sum(fused.values()) == 3 * sum(v for _, v, _ in events)


def test_plain_outputs_of_a_plain_input_sit_at_the_minimum_timestamp(tmp_path):
    (plain, _), (fused, _) = _run_both(
        tmp_path, lambda x: (x % 3, x), FixedWindows(60), "sum", [list(range(30))]
    )
    assert fused == plain
    assert {w.start_us <= MIN_US < w.end_us for _, w in fused} == {True}


def test_a_windowed_value_output_in_two_windows_counts_once_per_window(tmp_path):
    """As unfused: WindowInto re-windows such an element once per window it was in."""
    two = (IntervalWindow(0, 10), IntervalWindow(5, 15))

    def fn(e):
        if e[1] % 2:
            return WindowedValue((e[0], e[1]), round(e[2] * 1e6), two)
        return _stamp(e)

    events = _events(500)
    for window in ("fixed", "sliding"):
        (plain, pc), (fused, fc) = _run_both(
            tmp_path / window, fn, WINDOW_FNS[window](), "sum", [events]
        )
        assert fused == plain and fc == pc
        assert pc[3] > pc[2]  # the copies were counted


def test_a_failing_map_names_its_label_and_element(tmp_path):
    def fn(e):
        if e[1] == 42:
            raise ValueError("bad value")
        return _stamp(e)

    events = [("a", 1, 1.0), ("b", 42, 2.0), ("c", 3, 3.0)]
    messages = []
    for fuse in (False, True):
        map_op, _, _ = _chain(fn, FixedWindows(60), "sum", tmp_path, in_windowed=False, fuse=fuse)
        with pytest.raises(ValueError) as info:
            map_op.process(events)
        messages.append(str(info.value) + "".join(getattr(info.value, "__notes__", [])))
    for text in messages:
        assert "Stamp" in text and "'b', 42" in text
    assert messages[0] == messages[1]


def test_an_output_that_is_not_a_pair_names_the_grouping(tmp_path):
    for fuse in (False, True):
        map_op, _, _ = _chain(
            lambda e: TimestampedValue(e[0], e[2]),
            FixedWindows(60),
            "sum",
            tmp_path,
            in_windowed=False,
            fuse=fuse,
        )
        with pytest.raises(ValueError, match=r"'Group' needs \(key, value\) pairs"):
            map_op.process([("abc", 1, 1.0)])


def test_only_plain_maps_into_windowed_tables_fuse(tmp_path):
    map_op, window_op, table = _chain(
        _stamp, FixedWindows(60), "sum", tmp_path, in_windowed=False, fuse=False
    )
    keeping_times = GroupTable(
        "Group",
        "combine",
        COMBINES["sum"](),
        1,
        LocalSpillSpace(tmp_path / "t"),
        1 << 30,
        windowed=True,
        track_ts="min",
    )
    assert not keeping_times.takes_assigned
    assert table.takes_assigned
    flat = ParDoOperator(
        "Flat",
        "flatmap",
        _CallableDoFn(lambda e: [_stamp(e)], "flatmap"),
        (),
        {},
        {},
        "main",
        {"main": [window_op.process]},
        {"main": True},
        False,
        [],
        MetricsContainer("Flat"),
    )
    assert not flat.fuse_window_into(window_op, table.add_assigned)


@pytest.mark.parametrize("merger_name", ["sum", "mean"])
def test_fused_tables_spill_and_partition_like_the_unfused_ones(tmp_path, merger_name):
    """A budget far below the table's size: the fused sums are folded into the table before
    every spill, and the partitions read back hold the same groups."""
    events = _events(6000)
    got = []
    for fuse in (False, True):
        map_op, _, table = _chain(
            _stamp,
            FixedWindows(60),
            merger_name,
            tmp_path,
            in_windowed=False,
            fuse=fuse,
            budget=20_000,
            parts=2,
        )
        for i in range(0, len(events), 500):
            map_op.process(events[i : i + 500])
        parts = table.close()
        assert table.spills > 1
        groups = {}
        for runs in parts:
            for merged, _ in read_partition(
                runs, table.merger, True, None, 1 << 30, table.space, table.mode
            ):
                groups.update({gk: table.merger.output(a) for gk, a in merged.items()})
        got.append(groups)
    assert got[0] == got[1] and len(got[0]) > 300
