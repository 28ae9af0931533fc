"""Tests of headrace.exec.userstate: state cells per (key, window), timers and their queue."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

from headrace.exec.userstate import (
    BagState,
    CombiningValueState,
    ReadModifyWriteState,
    SetState,
    StateScope,
    StateStore,
    Timer,
    TimerQueue,
)
from headrace.model.timestamp import Timestamp
from headrace.model.transforms.combinefns import CountCombineFn
from headrace.model.transforms.dofn import CombineFn
from headrace.model.userstate import (
    BagStateSpec,
    CombiningValueStateSpec,
    ReadModifyWriteStateSpec,
    SetStateSpec,
    TimeDomain,
    TimerSpec,
)
from headrace.model.window import GlobalWindow, IntervalWindow

W1 = IntervalWindow(0, 10)
W2 = IntervalWindow(5, 15)
W3 = IntervalWindow(12, 20)
MERGED = IntervalWindow(0, 20)
GW = GlobalWindow()


class MeanFn(CombineFn):
    """A CombineFn without a fast path; counts its setup/teardown calls."""

    def __init__(self):
        self.setups = 0
        self.teardowns = 0

    def setup(self):
        self.setups += 1

    def teardown(self):
        self.teardowns += 1

    def create_accumulator(self):
        return [0, 0]

    def add_input(self, acc, x):
        acc[0] += x
        acc[1] += 1
        return acc

    def merge_accumulators(self, accs):
        accs = list(accs)
        return [sum(a[0] for a in accs), sum(a[1] for a in accs)]

    def extract_output(self, acc):
        return acc[0] / acc[1] if acc[1] else None


def all_specs():
    return [
        ReadModifyWriteStateSpec("last"),
        BagStateSpec("bag"),
        SetStateSpec("seen"),
        CombiningValueStateSpec("total", sum),
        CombiningValueStateSpec("mean", MeanFn()),
    ]


# -- accessors -------------------------------------------------------------------------------------


def test_accessor_types():
    store = StateStore(all_specs())
    acc = store.accessors(StateScope("k", GW))
    assert isinstance(acc["last"], ReadModifyWriteState)
    assert isinstance(acc["bag"], BagState)
    assert isinstance(acc["seen"], SetState)
    assert isinstance(acc["total"], CombiningValueState)
    assert isinstance(acc["mean"], CombiningValueState)


def test_read_modify_write_state():
    store = StateStore([ReadModifyWriteStateSpec("last")])
    last = store.state("last", "k", GW)
    assert last.read() is None
    last.write(3)
    last.write(4)
    assert last.read() == 4
    last.write(None)
    assert last.read() is None and len(store) == 1  # None is a written value
    last.clear()
    assert last.read() is None and len(store) == 0
    last.clear()  # clearing an empty cell is fine


def test_bag_state_keeps_order_and_reads_a_snapshot():
    store = StateStore([BagStateSpec("bag")])
    bag = store.state("bag", "k", GW)
    assert tuple(bag.read()) == ()
    bag.add(2)
    bag.add(1)
    bag.add(2)
    snapshot = bag.read()
    bag.add(7)
    assert list(snapshot) == [2, 1, 2]
    assert list(bag.read()) == [2, 1, 2, 7]
    bag.clear()
    assert list(bag.read()) == [] and len(store) == 0


def test_set_state_is_distinct_and_reads_a_copy():
    store = StateStore([SetStateSpec("seen")])
    seen = store.state("seen", "k", GW)
    assert seen.read() == set()
    for v in ["a", "b", "a"]:
        seen.add(v)
    copy = seen.read()
    copy.add("zzz")
    assert seen.read() == {"a", "b"}
    seen.clear()
    assert seen.read() == set() and len(store) == 0


@pytest.mark.parametrize(
    ("fn", "values", "expected", "empty"),
    [
        (sum, [1, 2, 3], 6, 0),
        (CountCombineFn(), ["x", "y"], 2, 0),
        (min, [5, 2, 9], 2, ValueError),
        (max, [5, 2, 9], 9, ValueError),
        (MeanFn(), [1, 2, 3, 6], 3.0, None),
        (lambda xs: max(xs, default=-1), [4, 8, 1], 8, -1),
    ],
    ids=["sum", "count", "min", "max", "mean", "lambda"],
)
def test_combining_value_state(fn, values, expected, empty):
    store = StateStore([CombiningValueStateSpec("c", fn)])
    cell = store.state("c", "k", GW)
    if isinstance(empty, type) and issubclass(empty, Exception):
        with pytest.raises(empty):
            cell.read()
    else:
        assert cell.read() == empty
    for v in values:
        cell.add(v)
    assert cell.read() == expected
    cell.clear()
    assert len(store) == 0


def test_combining_sum_fast_path_keeps_a_plain_number():
    store = StateStore([CombiningValueStateSpec("c", sum)])
    cell = store.state("c", "k", GW)
    for v in range(1000):
        cell.add(v)
    assert store._cells["c"][GW]["k"] == sum(range(1000))


def test_combine_fn_setup_and_teardown():
    fn = MeanFn()
    store = StateStore([CombiningValueStateSpec("m", fn)])
    assert fn.setups == 1
    store.teardown()
    assert fn.teardowns == 1


def test_scope_switches_key_and_window_without_new_objects():
    store = StateStore([BagStateSpec("bag"), CombiningValueStateSpec("total", sum)])
    scope = StateScope()
    acc = store.accessors(scope)
    for key, window, value in [("a", W1, 1), ("b", W1, 2), ("a", W2, 3), ("a", W1, 4)]:
        scope.key, scope.window = key, window
        acc["bag"].add(value)
        acc["total"].add(value)
    scope.key, scope.window = "a", W1
    assert list(acc["bag"].read()) == [1, 4] and acc["total"].read() == 5
    scope.key, scope.window = "b", W1
    assert list(acc["bag"].read()) == [2] and acc["total"].read() == 2
    scope.key, scope.window = "a", W2
    assert list(acc["bag"].read()) == [3] and acc["total"].read() == 3
    assert store.windows() == {W1, W2}
    assert store.keys(W1) == {"a", "b"}
    assert len(store) == 6


def test_unknown_state_name_and_bad_specs():
    store = StateStore([BagStateSpec("bag")], owner="ParDo(X)")
    with pytest.raises(KeyError, match="'ParDo\\(X\\)' has no state named 'nope'"):
        store.state("nope", "k", GW)
    with pytest.raises(TypeError, match="needs state specs"):
        StateStore([TimerSpec("t", TimeDomain.WATERMARK)])
    with pytest.raises(ValueError, match="two state specs named 'x'"):
        StateStore([BagStateSpec("x"), SetStateSpec("x")])


def test_store_accepts_a_mapping_of_specs():
    spec = BagStateSpec("bag")
    store = StateStore({"bag": spec})
    assert store.specs == {"bag": spec}


# -- clearing windows ------------------------------------------------------------------------------


def fill(store, key, window):
    acc = store.accessors(StateScope(key, window))
    acc["last"].write(key)
    acc["bag"].add(1)
    acc["seen"].add("x")
    acc["total"].add(2)
    acc["mean"].add(4)


def test_clear_window_drops_only_that_key_and_window():
    store = StateStore(all_specs())
    fill(store, "a", W1)
    fill(store, "b", W1)
    fill(store, "a", W2)
    assert len(store) == 15
    store.clear_window("a", W1)
    assert store.is_empty("a", W1)
    assert not store.is_empty("b", W1) and not store.is_empty("a", W2)
    assert len(store) == 10
    assert store.state("bag", "b", W1).read() == (1,)
    store.clear_window("b", W1)
    assert W1 not in store.windows()  # an emptied window leaves no dict behind
    assert all(W1 not in by_window for by_window in store._cells.values())
    store.clear_window("zzz", W3)  # nothing there: no error


def test_drop_window_clears_every_key():
    store = StateStore(all_specs())
    fill(store, "a", W1)
    fill(store, "b", W1)
    fill(store, "a", W2)
    store.drop_window(W1)
    assert store.windows() == {W2}
    assert store.keys(W1) == set()
    assert len(store) == 5


def test_clearing_cells_one_by_one_removes_the_window_entry():
    store = StateStore([BagStateSpec("bag")])
    bag = store.state("bag", "k", W1)
    bag.add(1)
    bag.clear()
    assert store._cells["bag"] == {}


# -- merging windows -------------------------------------------------------------------------------


def merging_specs():
    return [
        BagStateSpec("bag"),
        SetStateSpec("seen"),
        CombiningValueStateSpec("total", sum),
        CombiningValueStateSpec("mean", MeanFn()),
        CombiningValueStateSpec("biggest", lambda xs: max(xs, default=None)),
    ]


def test_merge_windows_merges_each_kind():
    store = StateStore(merging_specs())
    for window, values in [(W1, [1, 2]), (W2, [3]), (W3, [10])]:
        acc = store.accessors(StateScope("k", window))
        for v in values:
            acc["bag"].add(v)
            acc["seen"].add(v % 2)
            acc["total"].add(v)
            acc["mean"].add(v)
            acc["biggest"].add(v)
    other = store.state("bag", "other", W1)
    other.add(99)
    store.merge_windows("k", [W1, W2, W3], MERGED)
    acc = store.accessors(StateScope("k", MERGED))
    assert sorted(acc["bag"].read()) == [1, 2, 3, 10]
    assert acc["seen"].read() == {0, 1}
    assert acc["total"].read() == 16
    assert acc["mean"].read() == 4.0
    assert acc["biggest"].read() == 10
    for window in (W1, W2, W3):
        assert store.is_empty("k", window)
    assert store.state("bag", "other", W1).read() == (99,)  # other keys untouched


def test_merge_into_a_window_that_already_has_state():
    store = StateStore([BagStateSpec("bag"), CombiningValueStateSpec("total", sum)])
    for window, v in [(MERGED, 1), (W1, 2), (W2, 3)]:
        acc = store.accessors(StateScope("k", window))
        acc["bag"].add(v)
        acc["total"].add(v)
    store.merge_windows("k", [MERGED, W1, W2], MERGED)
    acc = store.accessors(StateScope("k", MERGED))
    assert list(acc["bag"].read()) == [1, 2, 3]
    assert acc["total"].read() == 6
    assert store.windows() == {MERGED}


def test_merge_without_state_in_old_windows_is_a_no_op():
    store = StateStore([BagStateSpec("bag")])
    store.merge_windows("k", [W1, W2], MERGED)
    assert len(store) == 0 and store.windows() == set()


def test_merge_with_read_modify_write_state_is_refused_before_any_change():
    store = StateStore([BagStateSpec("bag"), ReadModifyWriteStateSpec("last")], owner="ParDo(S)")
    store.state("bag", "k", W1).add(1)
    store.state("bag", "k", W2).add(2)
    with pytest.raises(
        ValueError, match=r"'ParDo\(S\)' uses ReadModifyWriteStateSpec\('last'\) in merging"
    ):
        store.merge_windows("k", [W1, W2], MERGED)
    assert store.state("bag", "k", W1).read() == (1,)
    assert store.state("bag", "k", W2).read() == (2,)
    assert store.is_empty("k", MERGED)


# -- pickling --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_store_with_content_pickles(dumps):
    store = StateStore(all_specs())
    fill(store, "a", W1)
    back = pickle.loads(dumps(store))
    assert len(back) == 5
    acc = back.accessors(StateScope("a", W1))
    assert acc["last"].read() == "a"
    assert acc["total"].read() == 2
    assert acc["mean"].read() == 4.0


# -- timers ----------------------------------------------------------------------------------------

FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
TICK = TimerSpec("tick", TimeDomain.REAL_TIME)


def test_timer_set_with_timestamp_or_seconds_and_replace():
    q = TimerQueue()
    scope = StateScope("k", W1)
    flush = q.timer(FLUSH, scope)
    assert isinstance(flush, Timer)
    flush.set(Timestamp(5))
    assert q.get("k", W1, "flush") == ("WATERMARK", 5_000_000)
    flush.set(2.5)
    assert q.get("k", W1, "flush") == ("WATERMARK", 2_500_000)
    assert len(q) == 1
    assert q.pop_ready(TimeDomain.WATERMARK, 10_000_000) == [("k", W1, "flush", 2_500_000)]
    assert q.pop_ready(TimeDomain.WATERMARK, 10_000_000) == []
    assert not q


def test_timer_clear():
    q = TimerQueue()
    flush = q.timer(FLUSH, StateScope("k", W1))
    flush.set(1)
    flush.clear()
    flush.clear()  # clearing twice is fine
    assert len(q) == 0
    assert q.next_time("WATERMARK") is None
    assert q.pop_ready("WATERMARK", 10**12) == []


def test_timer_follows_its_scope():
    q = TimerQueue()
    scope = StateScope()
    flush = q.timer(FLUSH, scope)
    for key, window, t in [("a", W1, 3), ("b", W1, 1), ("a", W2, 2)]:
        scope.key, scope.window = key, window
        flush.set(t)
    assert q.pop_ready("WATERMARK", 10**9) == [
        ("b", W1, "flush", 1_000_000),
        ("a", W2, "flush", 2_000_000),
        ("a", W1, "flush", 3_000_000),
    ]


def test_timer_dynamic_tags_are_refused():
    q = TimerQueue()
    flush = q.timer(FLUSH, StateScope("k", W1))
    with pytest.raises(NotImplementedError, match="dynamic timer tags"):
        flush.set(1, dynamic_timer_tag="x")
    with pytest.raises(NotImplementedError, match="dynamic timer tags"):
        flush.clear(dynamic_timer_tag="x")


def test_pop_ready_is_inclusive_and_ordered_by_time_then_set_order():
    q = TimerQueue()
    q.set("a", GW, "t", "WATERMARK", 20)
    q.set("b", GW, "t", "WATERMARK", 10)
    q.set("c", GW, "t", "WATERMARK", 10)
    q.set("d", GW, "t", "WATERMARK", 30)
    assert q.pop_ready("WATERMARK", 9) == []
    assert q.pop_ready("WATERMARK", 20) == [
        ("b", GW, "t", 10),
        ("c", GW, "t", 10),
        ("a", GW, "t", 20),
    ]
    assert q.next_time("WATERMARK") == 30
    assert len(q) == 1


def test_domains_are_independent():
    q = TimerQueue()
    q.timer(FLUSH, StateScope("k", GW)).set(5)
    q.timer(TICK, StateScope("k", GW)).set(1)
    assert q.next_time(TimeDomain.WATERMARK) == 5_000_000
    assert q.next_time(TimeDomain.REAL_TIME) == 1_000_000
    assert q.pop_ready(TimeDomain.REAL_TIME, 10**9) == [("k", GW, "tick", 1_000_000)]
    assert q.next_time(TimeDomain.WATERMARK) == 5_000_000
    with pytest.raises(ValueError, match="unknown time domain 'SOON'"):
        q.next_time("SOON")


def test_two_timer_names_on_one_key_window_are_separate():
    q = TimerQueue()
    q.set("k", GW, "a", "WATERMARK", 5)
    q.set("k", GW, "b", "WATERMARK", 5)
    assert len(q) == 2
    q.clear("k", GW, "a")
    assert q.pop_ready("WATERMARK", 5) == [("k", GW, "b", 5)]


def test_replaced_timer_never_fires_at_its_old_time():
    q = TimerQueue()
    q.set("k", GW, "t", "WATERMARK", 5)
    q.set("k", GW, "t", "WATERMARK", 50)
    assert q.next_time("WATERMARK") == 50
    assert q.pop_ready("WATERMARK", 10) == []
    q.set("k", GW, "t", "WATERMARK", 1)  # moved earlier again
    assert q.pop_ready("WATERMARK", 10) == [("k", GW, "t", 1)]
    assert q.pop_ready("WATERMARK", 100) == []


def test_watermark_hold_is_the_earliest_pending_event_time_timer():
    q = TimerQueue()
    assert q.min_pending_watermark_timer() is None
    q.set("a", GW, "t", "WATERMARK", 30)
    q.set("b", GW, "t", "WATERMARK", 10)
    q.set("c", GW, "t", "REAL_TIME", 1)  # processing-time timers do not hold the watermark
    assert q.min_pending_watermark_timer() == 10
    q.clear("b", GW, "t")
    assert q.min_pending_watermark_timer() == 30
    q.set("a", GW, "t", "WATERMARK", 40)
    assert q.min_pending_watermark_timer() == 40
    q.pop_ready("WATERMARK", 40)
    assert q.min_pending_watermark_timer() is None


def test_resetting_timers_does_not_grow_memory():
    q = TimerQueue()
    for i in range(20_000):
        q.set("k", GW, "t", "WATERMARK", i)
        q.set(i % 7, GW, "t", "WATERMARK", 2 * i)
    assert len(q) == 8
    assert sum(len(h) for h in q._heaps.values()) < 3_000
    ready = q.pop_ready("WATERMARK", 10**9)
    assert len(ready) == 8
    assert ready[0] == ("k", GW, "t", 19_999)


def test_setting_the_same_time_again_is_cheap():
    q = TimerQueue()
    for _ in range(100):
        q.set("k", GW, "t", "WATERMARK", 7)
    assert sum(len(h) for h in q._heaps.values()) == 1


def test_timer_queue_clear_window():
    q = TimerQueue()
    q.set("k", W1, "a", "WATERMARK", 1)
    q.set("k", W1, "b", "REAL_TIME", 1)
    q.set("k", W2, "a", "WATERMARK", 1)
    q.set("j", W1, "a", "WATERMARK", 1)
    q.clear_window("k", W1)
    assert len(q) == 2
    assert q.get("k", W1, "a") is None and q.get("k", W1, "b") is None
    assert q.get("k", W2, "a") == ("WATERMARK", 1)


def test_timer_queue_merge_windows_keeps_the_earliest_time():
    q = TimerQueue()
    q.set("k", W1, "t", "WATERMARK", 30)
    q.set("k", W2, "t", "WATERMARK", 20)
    q.set("k", W2, "u", "REAL_TIME", 5)
    q.set("j", W1, "t", "WATERMARK", 1)
    q.merge_windows("k", [W1, W2], MERGED)
    assert q.get("k", MERGED, "t") == ("WATERMARK", 20)
    assert q.get("k", MERGED, "u") == ("REAL_TIME", 5)
    assert q.get("k", W1, "t") is None and q.get("k", W2, "t") is None
    assert q.get("j", W1, "t") == ("WATERMARK", 1)
    assert q.pop_ready("WATERMARK", 100) == [("j", W1, "t", 1), ("k", MERGED, "t", 20)]


def test_timer_queue_merge_respects_an_earlier_timer_in_the_new_window():
    q = TimerQueue()
    q.set("k", MERGED, "t", "WATERMARK", 3)
    q.set("k", W1, "t", "WATERMARK", 9)
    q.merge_windows("k", [W1], MERGED)
    assert q.get("k", MERGED, "t") == ("WATERMARK", 3)
    assert len(q) == 1


def test_timer_callback_may_set_a_timer_that_is_already_due():
    q = TimerQueue()
    q.set("k", GW, "t", "WATERMARK", 1)
    fired = []
    while batch := q.pop_ready("WATERMARK", 10):
        for key, window, name, ts in batch:
            fired.append(ts)
            if ts < 3:
                q.set(key, window, name, "WATERMARK", ts + 1)
    assert fired == [1, 2, 3]
