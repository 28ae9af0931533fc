"""Batch event time as users write it, on every runner configuration.

``Create(events) | Map(-> TimestampedValue) | WindowInto(...) | CombinePerKey/GroupByKey`` runs as
one fused loop (tests/exec/test_fused_eventtime.py checks the loop itself); here the whole
pipeline's outputs, with their timestamps and windows, must equal what plain Python computes,
fused or not (a second reader of the Map's output keeps it unfused). The Create of plain values
is read unwrapped and handed to tasks as index ranges: the elements' timestamps and windows must
still be Beam's (minimum timestamp, global window).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from headrace.graph.nodes import Payload
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import (
    CombinePerKey,
    Create,
    GroupByKey,
    Map,
    ParDo,
    WindowInto,
)
from headrace.model.transforms.dofn import DoFn
from headrace.model.window import (
    MIN_TIMESTAMP,
    FixedWindows,
    GlobalWindow,
    IntervalWindow,
    SlidingWindows,
    TimestampedValue,
)
from headrace.plan.stages import build_plan
from headrace.runners.coordinator import RunOutputs
from headrace.testing.util import assert_that, equal_to

SIZE_S, PERIOD_S = 60, 20


class Reify(DoFn):
    """(element, timestamp in microseconds, window)."""

    def process(self, x, t=DoFn.TimestampParam, w=DoFn.WindowParam):
        yield (x, t.micros, w)


def _events(n: int = 4000) -> list[tuple[str, int, float]]:
    r = random.Random(16)
    return [(f"user{r.randrange(30)}", r.randrange(100), i * 0.37) for i in range(n)]


def _stamp(e):
    return TimestampedValue((e[0], e[1]), e[2])


def _windows_of(us: int, sliding: bool) -> list[IntervalWindow]:
    size, period = SIZE_S * 1_000_000, PERIOD_S * 1_000_000
    if not sliding:
        start = us - us % size
        return [IntervalWindow.from_us(start, start + size)]
    last = us - us % period
    return [IntervalWindow.from_us(s, s + size) for s in range(last, us - size, -period)]


def _expected(events, sliding: bool, grouped: bool) -> list[Any]:
    """((key, sum or sorted values), end of window - 1 us, window) per key and window."""
    groups: dict[tuple[str, IntervalWindow], list[int]] = {}
    for k, v, t in events:
        for w in _windows_of(round(t * 1_000_000), sliding):
            groups.setdefault((k, w), []).append(v)
    return [
        ((k, sorted(vs) if grouped else sum(vs)), w.max_timestamp_us(), w)
        for (k, w), vs in groups.items()
    ]


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
@pytest.mark.parametrize("how", ["fixed_sum", "sliding_sum", "fixed_gbk"])
def test_event_time_as_users_write_it(make_pipeline, how, fused):
    events = _events()
    sliding, grouped = how.startswith("sliding"), how.endswith("gbk")
    window_fn = SlidingWindows(SIZE_S, PERIOD_S) if sliding else FixedWindows(SIZE_S)
    with make_pipeline() as p:
        stamped = p | Create(events) | "Stamp" >> Map(_stamp)
        if not fused:  # a second reader of the Map's output: the three steps run one by one
            assert_that(stamped | "Keys" >> Map(lambda kv: kv[0]), equal_to([e[0] for e in events]))
        windowed = stamped | WindowInto(window_fn)
        if grouped:
            out = windowed | GroupByKey() | "Sort" >> Map(lambda kv: (kv[0], sorted(kv[1])))
        else:
            out = windowed | CombinePerKey(sum)
        assert_that(out | ParDo(Reify()), equal_to(_expected(events, sliding, grouped)))


def test_a_create_of_plain_values_is_at_the_minimum_timestamp_in_the_global_window(make_pipeline):
    with make_pipeline() as p:
        out = p | Create(list(range(500))) | ParDo(Reify())
        assert_that(out, equal_to([(i, MIN_TIMESTAMP.micros, GlobalWindow()) for i in range(500)]))


def test_a_create_of_timestamped_values_keeps_their_timestamps(make_pipeline):
    values = [TimestampedValue(("k", i), i * 30.0) for i in range(10)]
    with make_pipeline() as p:
        out = p | Create(values) | Map(lambda kv: kv) | WindowInto(FixedWindows(60))
        out = out | CombinePerKey(sum) | ParDo(Reify())
        want = [
            (
                ("k", 2 * i + 2 * i + 1),
                (i + 1) * 60_000_000 - 1,
                IntervalWindow(i * 60, i * 60 + 60),
            )
            for i in range(5)
        ]
        assert_that(out, equal_to(want))


def test_the_plan_moves_a_plain_create_unwrapped_into_a_timestamping_map():
    p = Pipeline()
    created = p | "Plain" >> Create([("a", 1, 0.5)])
    created | "Stamp" >> Map(_stamp) | WindowInto(FixedWindows(60)) | CombinePerKey(sum)
    stamped = p | "Stamped" >> Create([TimestampedValue(("a", 1), 0.5)])
    stamped | "Same" >> Map(lambda kv: kv) | "W" >> WindowInto(FixedWindows(60))
    plan = build_plan(p.to_graph())
    assert created.node_id not in plan.windowed
    assert stamped.node_id in plan.windowed


def test_a_plain_create_reaches_tasks_as_index_ranges():
    events = _events(1001)
    p = Pipeline()
    p | "Events" >> Create(events) | Map(_stamp)
    graph = p.to_graph()
    plan = build_plan(graph)
    (stage,) = [s for s in plan.stages if s.root.kind == "source"]
    tasks = RunOutputs().tasks(plan, stage, 3)
    assert [t.sources for t in tasks] == [[], [], []]
    assert [t.ranges for t in tasks] == [[(0, 334)], [(334, 668)], [(668, 1001)]]
    node = plan.leaves[stage.root.node]
    assert node.payload is not None and node.payload.is_shared
    assert node.payload.load().as_list() == events


def test_a_create_of_mutable_values_is_read_as_it_was_built(make_pipeline):
    """Values that could change are pickled when the Create is applied (a snapshot, as Beam
    encodes them then); immutable ones are kept by reference."""
    rows = [[i, "x"] for i in range(5)]
    with make_pipeline() as p:
        out = p | Create(rows) | Map(tuple)
        rows[0][1] = "changed after Create"
        assert_that(out, equal_to([(i, "x") for i in range(5)]))


@pytest.mark.parametrize(
    ("values", "shared"),
    [
        ([1, 2.5, "a", b"b", None, True, 3j], True),
        ([("a", 1, 0.5), ("b", (2, (3, frozenset({4}))))], True),
        ([("a", [1])], False),
        ([{"a": 1}], False),
        ([TimestampedValue(1, 2)], False),
        ([(((((1,),),),),)], False),  # deeper than the check looks
    ],
    ids=["atoms", "nested_tuples", "list_in_tuple", "dict", "timestamped", "too_deep"],
)
def test_which_creates_are_kept_by_reference(values, shared):
    p = Pipeline()
    pc = p | Create(values)
    node = p.to_graph().transforms[p.to_graph().pcollections[pc.node_id].producer]
    assert node.payload is not None
    assert node.payload.is_shared is shared
    assert node.params.get("timestamped", True) is not shared
    assert node.payload.load().as_list() == values


def test_a_shared_payload_pickles_once_and_stays_shared():
    import pickle

    from headrace.model.transforms.core import _CreateSource

    values = [("k", i) for i in range(100)]
    payload = Payload.shared(_CreateSource(values))
    assert payload.load().values is values  # no copy in this process
    again = pickle.loads(pickle.dumps(payload))
    assert again.is_shared and again == payload
    assert again.load() is again.load()  # unpickled once where it arrived
    assert again.load().values == values
    # another copy of the same plan (a Ray task, a subprocess) reuses what this process loaded
    assert pickle.loads(pickle.dumps(payload)).load() is again.load()
    assert Payload.from_json(payload.to_json()) == Payload.of(_CreateSource(values))
