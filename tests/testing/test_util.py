"""headrace.testing.util against Beam's apache_beam/testing/util.py and util_test.py."""

from __future__ import annotations

from typing import NamedTuple

import pytest

import headrace.beam as beam
from headrace.model.pipeline import Pipeline
from headrace.model.row import Row
from headrace.model.timestamp import Timestamp
from headrace.model.transforms.core import Create, Map, WindowInto
from headrace.model.window import FixedWindows, GlobalWindow, IntervalWindow, TimestampedValue
from headrace.testing.util import (
    AssertThat,
    BeamAssertException,
    SortLists,
    TestWindowedValue,
    assert_that,
    contains_in_any_order,
    equal_to,
    equal_to_approx,
    equal_to_per_window,
    has_at_least_one,
    open_shards,
    row_namedtuple_equals_fn,
)


class Point(NamedTuple):
    x: int
    y: int


def _windowed(p, values, size=10, label="Make"):
    return (
        p
        | f"{label}Create" >> Create(values)
        | f"{label}Stamp" >> Map(lambda t: TimestampedValue(t, t))
        | f"{label}Window" >> WindowInto(FixedWindows(size))
    )


def test_repeated_assert_that_without_label_gets_unique_labels() -> None:
    """Beam's assert_that appends _2, _3 to a label already in use (util.py, 2.60+)."""
    with Pipeline() as p:
        pc = p | Create([1, 2])
        assert_that(pc, equal_to([1, 2]))
        assert_that(pc, equal_to([2, 1]))
        assert_that(pc, equal_to([1, 2]))
        labels = p.applied_labels
    assert {"assert_that", "assert_that_2", "assert_that_3"} <= labels


def test_repeated_assert_that_still_fails_on_a_wrong_result() -> None:
    p = Pipeline()
    pc = p | Create([1])
    assert_that(pc, equal_to([1]))
    assert_that(pc, equal_to([2]))
    with pytest.raises(BeamAssertException, match="missing elements \\[2\\]"):
        p.run().wait_until_finish()


def test_equal_to_per_window_reifies_even_with_use_global_window_false() -> None:
    """Beam's deduplicate_test/combiners_test pass use_global_window=False with
    equal_to_per_window; assert_that then reifies windows and checks per window."""
    with Pipeline() as p:
        pc = _windowed(p, [1, 2, 15])
        assert_that(
            pc,
            equal_to_per_window({IntervalWindow(0, 10): [1, 2], IntervalWindow(10, 20): [15]}),
            use_global_window=False,
            label="per window",
        )


def test_equal_to_per_window_fails_on_a_wrong_window() -> None:
    p = Pipeline()
    pc = _windowed(p, [1, 15])
    assert_that(pc, equal_to_per_window({IntervalWindow(0, 10): [1, 15]}))
    with pytest.raises(BeamAssertException, match="not found in any expected windows"):
        p.run().wait_until_finish()


def test_use_global_window_false_calls_the_matcher_per_window() -> None:
    """Beam (util.py ``AddWindow``): the matcher gets ``(elements, window)`` per window."""
    seen = []

    def matcher(actual):
        values, window = actual
        if window == IntervalWindow(0, 10):
            equal_to([1, 2])(values)
        elif window == IntervalWindow(10, 20):
            equal_to([15])(values)
        else:
            raise BeamAssertException(f"unexpected window {window}")
        seen.append(window)

    with Pipeline() as p:
        assert_that(_windowed(p, [1, 2, 15]), matcher, use_global_window=False)


def test_use_global_window_false_fails_in_the_right_window() -> None:
    def matcher(actual):
        values, window = actual
        equal_to([1])(values)

    p = Pipeline()
    assert_that(_windowed(p, [1, 15]), matcher, use_global_window=False)
    with pytest.raises(BeamAssertException, match="15"):
        p.run().wait_until_finish()


def test_reify_windows_compares_test_windowed_values() -> None:
    with Pipeline() as p:
        assert_that(
            _windowed(p, [3]),
            equal_to([TestWindowedValue(3, 3.0, [IntervalWindow(0, 10)])]),
            reify_windows=True,
        )
    assert TestWindowedValue(1, Timestamp(4), [GlobalWindow()]) == (
        1,
        4.0,
        [GlobalWindow()],
        TestWindowedValue._field_defaults["pane_info"],
    )


def test_contains_in_any_order() -> None:
    with Pipeline() as p:
        grouped = p | Create([("k", 2), ("k", 1)]) | beam.GroupByKey()
        assert_that(grouped, equal_to([("k", contains_in_any_order([1, 2]))]))
    assert contains_in_any_order([1, 2]) != [1, 2, 2]


def test_sort_lists() -> None:
    with Pipeline() as p:
        out = p | Create([("k", ([3, 1], {"a": [2, 1]}))]) | SortLists
        assert_that(out, equal_to([("k", ([1, 3], {"a": [1, 2]}))]))


def test_equal_to_approx() -> None:
    equal_to_approx([1.0, [2.0, 3]])([[2.0 + 1e-12, 3], 1.0 + 1e-12])
    with pytest.raises(BeamAssertException):
        equal_to_approx([1.0])([1.1])
    equal_to_approx([1.0], abs_tol=0.2)([1.1])


def test_rows_and_named_tuples_compare_equal() -> None:
    assert row_namedtuple_equals_fn(Row(x=1, y=2), Point(1, 2))
    assert not row_namedtuple_equals_fn(Row(x=1, y=3), Point(1, 2))
    equal_to([Row(x=1, y=2)])([Point(1, 2)])
    with pytest.raises(BeamAssertException):
        equal_to([Row(x=1, y=2)])([Point(2, 2)])


def test_open_shards(tmp_path) -> None:
    (tmp_path / "out-00000-of-00002").write_text("a\nb\n")
    (tmp_path / "out-00001-of-00002").write_text("c\n")
    with open_shards(str(tmp_path / "out-*")) as f:
        assert sorted(f.read().splitlines()) == ["a", "b", "c"]


def test_assert_that_as_a_transform_and_has_at_least_one() -> None:
    with Pipeline() as p:
        pc = p | Create([1, 5])
        _ = pc | AssertThat(equal_to([1, 5]))
        has_at_least_one(pc, lambda e, t, w, pane: e > 4)
    p2 = Pipeline()
    has_at_least_one(p2 | Create([1]), lambda e, t, w, pane: e > 4)
    with pytest.raises(BeamAssertException, match="nothing matches"):
        p2.run().wait_until_finish()


def test_messages_match_beams() -> None:
    """Beam's util_test matches these messages (is_empty, is_not_empty, per-window)."""
    from headrace.testing.util import is_empty, is_not_empty

    with pytest.raises(BeamAssertException, match=r"Failed assert: \[\] == \[1\]"):
        is_empty()([1])
    with pytest.raises(BeamAssertException, match="pcol is empty"):
        is_not_empty()([])
    w = IntervalWindow(0, 10)
    matcher = equal_to_per_window({w: [1]})
    with pytest.raises(BeamAssertException, match="element 2 not found in window"):
        matcher([TestWindowedValue(1, 1, [w]), TestWindowedValue(2, 2, [w])])
    with pytest.raises(BeamAssertException, match=r"unmatched elements \[1\] in window"):
        matcher([])


def test_assert_that_after_the_run_is_an_error() -> None:
    p = Pipeline()
    pc = p | Create([1])
    p.run().wait_until_finish()
    with pytest.raises(RuntimeError, match="within a pipeline context"):
        assert_that(pc, equal_to([1]))
