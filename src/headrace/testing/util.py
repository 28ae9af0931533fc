"""Assertions on pipeline contents: ``assert_that(pcoll, equal_to([...]))``.

``assert_that`` adds a check to the pipeline; the check runs when the pipeline runs, once, with
every element of the PCollection (also when it is empty), and fails the run with an
:class:`BeamAssertException` describing what was missing and what was unexpected.
"""

from __future__ import annotations

import collections
import glob
import io
import math
import numbers
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, NamedTuple

from headrace.model.pvalue import AsList, PCollection, PDone
from headrace.model.row import Row
from headrace.model.transforms.core import Impulse, Map, ParDo, WindowInto
from headrace.model.transforms.dofn import DoFn
from headrace.model.transforms.ptransform import PTransform, ptransform_fn
from headrace.model.window import PANE_INFO_UNKNOWN, GlobalWindows

__all__ = [
    "AssertThat",
    "BeamAssertException",
    "SortLists",
    "TestWindowedValue",
    "assert_that",
    "contains_in_any_order",
    "equal_to",
    "equal_to_approx",
    "equal_to_per_window",
    "has_at_least_one",
    "is_empty",
    "is_not_empty",
    "matches_all",
    "open_shards",
    "row_namedtuple_equals_fn",
]


class BeamAssertException(AssertionError):
    """A pipeline assertion failed."""


class TestWindowedValue(NamedTuple):
    """What ``assert_that(..., reify_windows=True)`` compares: value, timestamp, windows, pane.

    A NamedTuple as in Beam, so ``TestWindowedValue(v, t, [w])`` equals the reified element
    whose pane is unknown; timestamps compare with numbers (``Timestamp(4) == 4.0``).
    """

    value: Any
    timestamp: Any
    windows: list[Any]
    pane_info: Any = PANE_INFO_UNKNOWN


TestWindowedValue.__test__ = False  # type: ignore[attr-defined]  # not a pytest test class


def contains_in_any_order(iterable: Iterable[Any]) -> Any:
    """An object equal to any iterable holding the same items, counted, in any order.

    >>> contains_in_any_order([1, 2, 2]) == [2, 1, 2], contains_in_any_order([1]) == [1, 1]
    (True, False)
    """
    return _InAnyOrder(iterable)


class _InAnyOrder:
    def __init__(self, iterable: Iterable[Any]) -> None:
        self._counter = collections.Counter(iterable)

    def __eq__(self, other: object) -> bool:
        try:
            return self._counter == collections.Counter(other)  # type: ignore[call-overload]
        except TypeError:
            return False

    def __hash__(self) -> int:
        return hash(frozenset(self._counter.items()))

    def __repr__(self) -> str:
        return f"InAnyOrder({self._counter})"


def _is_named_tuple(obj: Any) -> bool:
    return isinstance(obj, tuple) and hasattr(obj, "_asdict") and hasattr(obj, "_fields")


def row_namedtuple_equals_fn(
    expected: Any, actual: Any, fallback_equals_fn: Callable[[Any, Any], bool] | None = None
) -> bool:
    """An ``equals_fn`` for :func:`equal_to` that treats Rows and NamedTuples with the same
    fields and values as equal (recursively); other values compare with ``fallback_equals_fn``
    (``==`` by default).

    >>> from typing import NamedTuple
    >>> class P(NamedTuple):
    ...     x: int
    >>> row_namedtuple_equals_fn(Row(x=1), P(1)), row_namedtuple_equals_fn(Row(x=1), P(2))
    (True, False)
    """
    if fallback_equals_fn is None:
        fallback_equals_fn = _plain_equals
    if not _is_row_like(expected) or not _is_row_like(actual):
        return fallback_equals_fn(expected, actual)
    expected_dict = _row_dict(expected)
    actual_dict = _row_dict(actual)
    if len(expected_dict) != len(actual_dict):
        return False
    return all(
        k in actual_dict and row_namedtuple_equals_fn(v, actual_dict[k])
        for k, v in expected_dict.items()
    )


def _plain_equals(expected: Any, actual: Any) -> bool:
    return bool(expected == actual)


def _is_row_like(obj: Any) -> bool:
    return type(obj) is Row or _is_named_tuple(obj)


def _row_dict(obj: Any) -> dict[str, Any]:
    return dict(obj._asdict()) if hasattr(obj, "_asdict") else dict(vars(obj))


def _counts(items: Iterable[Any]) -> tuple[Counter[Any], list[Any]]:
    hashable: Counter[Any] = Counter()
    other: list[Any] = []
    for item in items:
        try:
            hashable[item] += 1
        except TypeError:
            other.append(item)
    return hashable, other


def _diff(
    expected: list[Any], actual: list[Any], equals_fn: Callable[[Any, Any], bool] | None
) -> tuple[list[Any], list[Any]]:
    if equals_fn is not None:
        remaining = list(actual)
        missing = []
        for e in expected:
            for i, a in enumerate(remaining):
                if equals_fn(e, a):
                    del remaining[i]
                    break
            else:
                missing.append(e)
        return missing, remaining
    exp_h, exp_o = _counts(expected)
    act_h, act_o = _counts(actual)
    missing = list((exp_h - act_h).elements())
    unexpected = list((act_h - exp_h).elements())
    rest = list(act_o)
    for e in exp_o:
        for i, a in enumerate(rest):
            if a == e:
                del rest[i]
                break
        else:
            missing.append(e)
    unexpected.extend(rest)
    if missing and unexpected:
        # Rows and NamedTuples with equal fields are equal (Beam's default equals_fn).
        return _diff(missing, unexpected, row_namedtuple_equals_fn)
    return missing, unexpected


def equal_to(
    expected: Iterable[Any], equals_fn: Callable[[Any, Any], bool] | None = None
) -> Callable[[Iterable[Any]], None]:
    """A matcher: the PCollection holds exactly ``expected``, in any order.

    >>> equal_to([1, 2])([2, 1])
    >>> equal_to([1, 2])([1, 3])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    headrace.testing.util.BeamAssertException: ... unexpected elements [3], missing elements [2]
    """
    expected_list = list(expected)

    def match(actual: Iterable[Any]) -> None:
        actual_list = list(actual)
        missing, unexpected = _diff(expected_list, actual_list, equals_fn)
        if missing or unexpected:
            parts = [f"Failed assert: {expected_list!r} == {actual_list!r}"]
            if unexpected:
                parts.append(f"unexpected elements {unexpected!r}")
            if missing:
                parts.append(f"missing elements {missing!r}")
            raise BeamAssertException(", ".join(parts))

    return match


def is_empty() -> Callable[[Iterable[Any]], None]:
    """A matcher: the PCollection is empty.

    >>> is_empty()([])
    """

    def match(actual: Iterable[Any]) -> None:
        actual_list = list(actual)
        if actual_list:
            raise BeamAssertException(f"Failed assert: [] == {actual_list!r}")

    return match


def is_not_empty() -> Callable[[Iterable[Any]], None]:
    """A matcher: the PCollection has at least one element."""

    def match(actual: Iterable[Any]) -> None:
        if not list(actual):
            raise BeamAssertException("Failed assert: pcol is empty")

    return match


def equal_to_approx(
    expected: Iterable[Any], rel_tol: float = 1e-09, abs_tol: float = 0.0
) -> Callable[[Iterable[Any]], None]:
    """Like :func:`equal_to`, with real numbers (also inside lists and tuples) compared by
    ``math.isclose``.

    >>> equal_to_approx([1.0, (2.0, "a")])([(2.0000000001, "a"), 1.0000000001])
    """

    def approx(e: Any, a: Any) -> bool:
        return _approx_equal(e, a, rel_tol, abs_tol)

    return equal_to(expected, equals_fn=approx)


def _approx_equal(expected: Any, actual: Any, rel_tol: float, abs_tol: float) -> bool:
    if isinstance(expected, numbers.Real) and isinstance(actual, numbers.Real):
        return math.isclose(expected, actual, rel_tol=rel_tol, abs_tol=abs_tol)
    if (
        isinstance(expected, (list, tuple))
        and type(actual) is type(expected)
        and len(expected) == len(actual)
    ):
        return all(_approx_equal(e, a, rel_tol, abs_tol) for e, a in zip(expected, actual))
    return bool(expected == actual)


def matches_all(expected: Iterable[Any]) -> Callable[[Iterable[Any]], None]:
    """A matcher: the elements match ``expected`` (values or PyHamcrest matchers) in any order.
    Needs the ``PyHamcrest`` package, as in Beam."""

    expected_list = list(expected)

    def match(actual: Iterable[Any]) -> None:
        try:
            from hamcrest.core import assert_that as hamcrest_assert
            from hamcrest.library.collection import contains_inanyorder
        except ImportError as e:
            raise ImportError("matches_all needs PyHamcrest: pip install pyhamcrest") from e
        hamcrest_assert(list(actual), contains_inanyorder(*expected_list))

    return match


class _EqualToPerWindow:
    """The matcher :func:`equal_to_per_window` returns (assert_that reifies windows for it)."""

    def __init__(self, expected_window_to_elements: dict[Any, Iterable[Any]]) -> None:
        self.expected = expected_window_to_elements

    def __call__(self, actual: Iterable[Any]) -> None:
        # Beam's algorithm and messages (_EqualToPerWindowMatcher in testing/util.py).
        remaining = {w: list(elements) for w, elements in self.expected.items()}
        for item in actual:
            if not isinstance(item, TestWindowedValue):
                raise BeamAssertException(
                    f"Failed assert: received element {item!r} is not a TestWindowedValue; "
                    "use assert_that(..., reify_windows=True)"
                )
            window = item.windows[0]
            if window not in remaining:
                raise BeamAssertException(
                    f"Failed assert: window {window} not found in any expected windows "
                    f"{list(remaining)}"
                )
            try:
                remaining[window].remove(item.value)
            except ValueError:
                raise BeamAssertException(
                    f"Failed assert: element {item.value} not found in window "
                    f"{window}:{remaining[window]}"
                ) from None
        for window, left in remaining.items():
            if left:
                raise BeamAssertException(
                    f"Failed assert: unmatched elements {left} in window {window}"
                )


def equal_to_per_window(
    expected_window_to_elements: dict[Any, Iterable[Any]],
) -> Callable[[Iterable[Any]], None]:
    """A matcher of the elements of each window; ``assert_that`` reifies the windows for it.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.model.window import FixedWindows, IntervalWindow, TimestampedValue
    >>> with Pipeline() as p:
    ...     pc = (p | Create([1, 12]) | Map(lambda t: TimestampedValue(t, t))
    ...             | WindowInto(FixedWindows(10)))
    ...     assert_that(pc, equal_to_per_window({IntervalWindow(0, 10): [1],
    ...                                          IntervalWindow(10, 20): [12]}))
    """
    return _EqualToPerWindow(expected_window_to_elements)


class _ReifyDoFn(DoFn):
    def process(
        self,
        x: Any,
        t: Any = DoFn.TimestampParam,
        w: Any = DoFn.WindowParam,
        pane: Any = DoFn.PaneInfoParam,
    ) -> Iterator[TestWindowedValue]:
        yield TestWindowedValue(x, t, [w], pane)


class _AddWindow(DoFn):
    def process(self, x: Any, w: Any = DoFn.WindowParam) -> Iterator[tuple[Any, Any]]:
        yield (w, x)


def _match_per_window(matcher: Callable[[Any], Any], pairs: list[tuple[Any, Any]]) -> None:
    by_window: dict[Any, list[Any]] = {}
    for w, x in pairs:
        by_window.setdefault(w, []).append(x)
    for w, values in by_window.items():
        matcher((values, w))


class _AssertThat(PTransform):
    def __init__(self, matcher: Callable[[Any], Any], reify_windows: bool, use_global_window: bool):
        super().__init__()
        self.matcher = matcher
        self.reify_windows = reify_windows
        self.use_global_window = use_global_window

    def expand(self, pcoll: PCollection) -> Any:
        matcher = self.matcher
        if self.reify_windows:
            pcoll = pcoll | "ReifyWindows" >> ParDo(_ReifyDoFn())
        if not self.use_global_window:
            # Beam calls the matcher once per window with (elements, window).
            pcoll = pcoll | "AddWindow" >> ParDo(_AddWindow())
            matcher = _PerWindowMatcher(matcher)
        pcoll = pcoll | "WindowIntoGlobal" >> WindowInto(GlobalWindows())
        (
            pcoll.pipeline
            | "Once" >> Impulse()
            | "Match" >> Map(_run_matcher, matcher, AsList(pcoll))
        )
        return PDone(pcoll.pipeline)


class _PerWindowMatcher:
    def __init__(self, matcher: Callable[[Any], Any]) -> None:
        self.matcher = matcher

    def __call__(self, pairs: list[tuple[Any, Any]]) -> None:
        _match_per_window(self.matcher, pairs)


def _run_matcher(_: Any, matcher: Callable[[Any], Any], actual: list[Any]) -> None:
    matcher(actual)


def _unique_label(pipeline: Any, label: str) -> str:
    """``label``, or ``label_2``, ``label_3``... when a transform of that name exists (Beam
    numbers repeated assertion labels the same way)."""
    used = pipeline.applied_labels
    prefix = pipeline.current_label_prefix()
    if prefix + label not in used:
        return label
    n = 2
    while f"{prefix}{label}_{n}" in used:
        n += 1
    return f"{label}_{n}"


def assert_that(
    actual: PCollection,
    matcher: Callable[[Any], Any],
    label: str = "assert_that",
    reify_windows: bool = False,
    use_global_window: bool = True,
) -> None:
    """Check the whole contents of ``actual`` with ``matcher`` when the pipeline runs.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> with Pipeline() as p:
    ...     assert_that(p | Create([3, 1, 2]), equal_to([1, 2, 3]))
    """
    if not isinstance(actual, PCollection):
        raise TypeError(f"assert_that needs a PCollection, got {actual!r}")
    if getattr(actual.pipeline, "result", None) is not None:
        raise RuntimeError(
            "assert_that must be used within a pipeline context: the pipeline has already run, "
            "so this check would never run. Move the assert_that call into the with block."
        )
    if isinstance(matcher, _EqualToPerWindow):
        reify_windows, use_global_window = True, True
    label = _unique_label(actual.pipeline, label)
    actual | label >> _AssertThat(matcher, reify_windows, use_global_window)


@ptransform_fn
def AssertThat(pcoll: PCollection, *args: Any, **kwargs: Any) -> None:
    """:func:`assert_that` as a transform: ``pcoll | AssertThat(equal_to([...]))``."""
    return assert_that(pcoll, *args, **kwargs)


class _Matched(DoFn):
    def __init__(self, criterion: Callable[..., bool]) -> None:
        self.criterion = criterion

    def process(
        self,
        e: Any,
        t: Any = DoFn.TimestampParam,
        w: Any = DoFn.WindowParam,
        p: Any = DoFn.PaneInfoParam,
    ) -> Iterator[Any]:
        if self.criterion(e, t, w, p):
            yield (e, t, w, p)


def has_at_least_one(
    input: PCollection, criterion: Callable[..., bool], label: str = "has_at_least_one"
) -> None:
    """Check that at least one element satisfies ``criterion(element, timestamp, window,
    pane)``."""
    label = _unique_label(input.pipeline, label)
    matched = input | label >> ParDo(_Matched(criterion))
    assert_that(matched, _not_empty_criterion, label=f"{label}_check")


def _not_empty_criterion(actual: Iterable[Any]) -> None:
    if not list(actual):
        raise BeamAssertException("Failed assert: nothing matches the criterion")


def open_shards(glob_pattern: str, mode: str = "rt", encoding: str = "utf-8") -> IO[Any]:
    """One file object with the contents of every file matching ``glob_pattern``, in glob order
    (Beam's helper for reading a sharded output in tests)."""
    if "b" in mode:
        encoding = None  # type: ignore[assignment]
    with tempfile.NamedTemporaryFile(delete=False) as out:
        for shard in sorted(glob.glob(glob_pattern)):
            with open(shard, "rb") as f:
                out.write(f.read())
        name = out.name
    return io.open(name, mode, encoding=encoding)  # noqa: UP020 - Beam's call


def _sort_lists(result: Any) -> Any:
    if isinstance(result, list):
        return sorted(result)
    if isinstance(result, tuple):
        return tuple(_sort_lists(e) for e in result)
    if isinstance(result, dict):
        return {k: _sort_lists(v) for k, v in result.items()}
    if isinstance(result, Iterable) and not isinstance(result, str):
        return sorted(result)
    return result


#: Sorts every list (also inside tuples and dicts) of each element: ``pcoll | SortLists``.
SortLists = Map(_sort_lists)
