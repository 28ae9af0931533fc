"""Assertions on pipeline contents: ``assert_that(pcoll, equal_to([...]))``.

``assert_that`` adds a check to the pipeline; the check runs when the pipeline runs, once, with
every element of the PCollection (also when it is empty), and fails the run with an
:class:`BeamAssertException` describing what was missing and what was unexpected.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from headrace.model.pvalue import AsList, PCollection, PDone
from headrace.model.transforms.core import Impulse, Map, WindowInto
from headrace.model.transforms.dofn import DoFn
from headrace.model.transforms.ptransform import PTransform
from headrace.model.window import GlobalWindows

__all__ = [
    "BeamAssertException",
    "TestWindowedValue",
    "assert_that",
    "equal_to",
    "equal_to_per_window",
    "is_empty",
    "is_not_empty",
]


class BeamAssertException(AssertionError):
    """A pipeline assertion failed."""


class TestWindowedValue:
    """What ``assert_that(..., reify_windows=True)`` compares: value, timestamp, windows."""

    __test__ = False

    def __init__(self, value: Any, timestamp: Any, windows: Iterable[Any]) -> None:
        from headrace.model.timestamp import Timestamp

        self.value = value
        self.timestamp = Timestamp.of(timestamp)
        self.windows = tuple(windows)

    def _key(self) -> tuple[Any, ...]:
        return (self.value, self.timestamp, self.windows)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TestWindowedValue) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return f"TestWindowedValue({self.value!r}, {self.timestamp!r}, {list(self.windows)!r})"


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
            raise BeamAssertException(f"Failed assert: {actual_list!r} is not empty")

    return match


def is_not_empty() -> Callable[[Iterable[Any]], None]:
    """A matcher: the PCollection has at least one element."""

    def match(actual: Iterable[Any]) -> None:
        if not list(actual):
            raise BeamAssertException("Failed assert: the PCollection is empty")

    return match


def equal_to_per_window(
    expected_window_to_elements: dict[Any, Iterable[Any]],
) -> Callable[[Iterable[Any]], None]:
    """A matcher for ``reify_windows=True``: the elements of each window."""

    def match(actual: Iterable[Any]) -> None:
        by_window: dict[Any, list[Any]] = {}
        for item in actual:
            for w in item.windows:
                by_window.setdefault(w, []).append(item.value)
        for window, elements in expected_window_to_elements.items():
            equal_to(list(elements))(by_window.get(window, []))
        extra = set(by_window) - set(expected_window_to_elements)
        if extra:
            raise BeamAssertException(f"Failed assert: unexpected windows {sorted(extra)!r}")

    return match


class _ReifyDoFn(DoFn):
    def process(
        self, x: Any, t: Any = DoFn.TimestampParam, w: Any = DoFn.WindowParam
    ) -> Iterator[TestWindowedValue]:
        yield TestWindowedValue(x, t, [w])


class _AssertThat(PTransform):
    def __init__(self, matcher: Callable[[Any], Any], reify_windows: bool, use_global_window: bool):
        super().__init__()
        self.matcher = matcher
        self.reify_windows = reify_windows
        self.use_global_window = use_global_window

    def expand(self, pcoll: PCollection) -> Any:
        from headrace.model.transforms.core import ParDo

        if self.reify_windows:
            pcoll = pcoll | "ReifyWindows" >> ParDo(_ReifyDoFn())
        if self.use_global_window or self.reify_windows:
            pcoll = pcoll | "WindowIntoGlobal" >> WindowInto(GlobalWindows())
        matcher = self.matcher
        (
            pcoll.pipeline
            | "Once" >> Impulse()
            | "Match" >> Map(lambda _, actual: matcher(actual), AsList(pcoll))
        )
        return PDone(pcoll.pipeline)


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
    actual | label >> _AssertThat(matcher, reify_windows, use_global_window)
