"""The CombineFns behind the ready-made combiners, and the tuple CombineFns that compose them.

These are the worker-side halves of :mod:`headrace.model.transforms.combiners` (which re-exports
every name here): they run inside bundles and never touch a pipeline. Accumulators are plain
Python data (ints, tuples, lists, dicts, sets) so that they pickle cheaply between bundles and
processes:

=====================  ==============================================================
CombineFn              accumulator
=====================  ==============================================================
CountCombineFn         ``int``; ``fast_path = "count"`` lets executors count directly
MeanCombineFn          ``(sum, count)``
TopCombineFn           list of at most ``n + max(n, 16)`` elements; compacts to the n best
SampleCombineFn        ``[elements_seen, reservoir]`` (uniform sample without replacement)
ToList/ToDict/ToSet    the list, dict or set itself
LatestCombineFn        ``(value, timestamp)``
TupleCombineFn         a list with one accumulator per component CombineFn
=====================  ==============================================================

As Beam allows, ``merge_accumulators`` may modify and return the first accumulator it is given.
The batched ``add_inputs`` of each CombineFn here falls back to calling ``add_input`` per element
when a subclass overrides ``add_input``, so subclasses that change how one input is added work.
"""

from __future__ import annotations

import heapq
import itertools
import numbers
import random
import typing
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from headrace.model.timestamp import MIN_TIMESTAMP, Duration, Timestamp
from headrace.model.transforms.dofn import CombineFn
from headrace.model.typehints import TypeVariable, with_input_types, with_output_types

__all__ = [
    "CountCombineFn",
    "Largest",
    "LatestCombineFn",
    "MeanCombineFn",
    "SampleCombineFn",
    "SingleInputTupleCombineFn",
    "Smallest",
    "ToDictCombineFn",
    "ToListCombineFn",
    "ToSetCombineFn",
    "TopCombineFn",
    "TupleCombineFn",
]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check_n(n: Any, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"{what} needs a number of elements n >= 0, got {n!r}")
    return n


# -- Count ----------------------------------------------------------------------------------------


@with_output_types(int)
class CountCombineFn(CombineFn):
    """Counts its inputs; the accumulator is a plain int.

    ``fast_path = "count"`` tells executors they may count without calling the methods. A subclass
    that overrides any combining method loses the fast path, so its own code always runs.

    >>> CountCombineFn().apply(["a", "b", "c"])
    3
    """

    fast_path: ClassVar[str | None] = "count"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        overridden = (
            "create_accumulator",
            "add_input",
            "add_inputs",
            "merge_accumulators",
            "extract_output",
        )
        if "fast_path" not in cls.__dict__ and any(name in cls.__dict__ for name in overridden):
            cls.fast_path = None

    def create_accumulator(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def add_input(self, accumulator: int, element: Any, *args: Any, **kwargs: Any) -> int:
        return accumulator + 1

    def add_inputs(
        self, accumulator: int, elements: Iterable[Any], *args: Any, **kwargs: Any
    ) -> int:
        if type(self).add_input is not CountCombineFn.add_input:
            return super().add_inputs(accumulator, elements, *args, **kwargs)
        try:
            return accumulator + len(elements)  # type: ignore[arg-type]
        except TypeError:
            return accumulator + sum(1 for _ in elements)

    def merge_accumulators(self, accumulators: Iterable[int], *args: Any, **kwargs: Any) -> int:
        return sum(accumulators)

    def extract_output(self, accumulator: int, *args: Any, **kwargs: Any) -> int:
        return accumulator


# -- Mean -----------------------------------------------------------------------------------------


@with_input_types(numbers.Number)
@with_output_types(float)
class MeanCombineFn(CombineFn):
    """The arithmetic mean; the accumulator is ``(sum, count)``; an empty input gives NaN.

    >>> MeanCombineFn().apply([1, 2, 3, 4])
    2.5
    >>> MeanCombineFn().apply([])
    nan
    """

    def create_accumulator(self, *args: Any, **kwargs: Any) -> tuple[Any, int]:
        return (0, 0)

    def add_input(self, sum_count: tuple[Any, int], element: Any, *args: Any, **kwargs: Any) -> Any:
        total, count = sum_count
        try:
            return (total + element, count + 1)
        except TypeError as e:
            raise _not_a_number(element) from e

    def add_inputs(
        self, sum_count: tuple[Any, int], elements: Iterable[Any], *args: Any, **kwargs: Any
    ) -> Any:
        if type(self).add_input is not MeanCombineFn.add_input:
            return super().add_inputs(sum_count, elements, *args, **kwargs)
        if not isinstance(elements, (list, tuple)):
            elements = list(elements)
        total, count = sum_count
        try:
            return (sum(elements, total), count + len(elements))
        except TypeError:
            for element in elements:
                self.add_input((0, 0), element)
            raise

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        total: Any = 0
        count = 0
        for s, c in accumulators:
            total += s
            count += c
        return (total, count)

    def extract_output(self, sum_count: tuple[Any, int], *args: Any, **kwargs: Any) -> Any:
        total, count = sum_count
        if count == 0:
            return float("nan")
        return total / count


def _not_a_number(element: Any) -> TypeError:
    return TypeError(
        f"Mean needs numbers, got {_short(element)} of type {type(element).__name__}; "
        "convert the elements first, e.g. beam.Map(float)"
    )


# -- Top ------------------------------------------------------------------------------------------


class TopCombineFn(CombineFn):
    """The ``n`` greatest elements (by ``key``; least if ``reverse``), as a list best-first.

    The accumulator is a list of elements. Inputs are appended until it holds ``n + max(n, 16)``
    elements, then the ``n`` best are kept with a heap selection (``heapq.nlargest`` or
    ``nsmallest``). ``compact`` and ``merge_accumulators`` also keep only the ``n`` best, so what
    crosses a shuffle is small. Which of several elements with equal keys is kept is unspecified
    (as in Beam): within one accumulator earlier inputs win, but bundles may split the input.

    >>> TopCombineFn(2).apply([3, 1, 4, 1, 5])
    [5, 4]
    >>> TopCombineFn(2, key=len, reverse=True).apply(["ccc", "a", "bb"])
    ['a', 'bb']
    """

    def __init__(
        self, n: int, key: Callable[[Any], Any] | None = None, reverse: bool = False
    ) -> None:
        self._n = _check_n(n, type(self).__name__)
        if key is not None and not callable(key):
            raise TypeError(f"{type(self).__name__}: key must be a callable or None, got {key!r}")
        self._key = key
        self._reverse = bool(reverse)
        self._limit = n + max(n, 16)

    def _best(self, elements: list[Any]) -> list[Any]:
        try:
            if self._reverse:
                return heapq.nsmallest(self._n, elements, key=self._key)
            return heapq.nlargest(self._n, elements, key=self._key)
        except TypeError as e:
            raise TypeError(
                f"{type(self).__name__}({self._n}) could not order its elements ({e}); the "
                "elements (or their keys) must be comparable with each other: pass key=... to Top"
            ) from e

    def create_accumulator(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def add_input(self, accumulator: list[Any], element: Any, *args: Any, **kwargs: Any) -> Any:
        accumulator.append(element)
        if len(accumulator) > self._limit:
            return self._best(accumulator)
        return accumulator

    def add_inputs(
        self, accumulator: list[Any], elements: Iterable[Any], *args: Any, **kwargs: Any
    ) -> Any:
        if type(self).add_input is not TopCombineFn.add_input:
            return super().add_inputs(accumulator, elements, *args, **kwargs)
        accumulator.extend(elements)
        if len(accumulator) > self._limit:
            return self._best(accumulator)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        merged: list[Any] = []
        for acc in accumulators:
            merged.extend(acc)
        return self._best(merged) if len(merged) > self._n else merged

    def compact(self, accumulator: list[Any], *args: Any, **kwargs: Any) -> list[Any]:
        return self._best(accumulator) if len(accumulator) > self._n else accumulator

    def extract_output(self, accumulator: list[Any], *args: Any, **kwargs: Any) -> list[Any]:
        return self._best(accumulator)


class Largest(TopCombineFn):
    """The ``n`` greatest elements, greatest first.

    >>> Largest(2).apply([3, 1, 4])
    [4, 3]
    """

    def __init__(self, n: int) -> None:
        super().__init__(n)

    def default_label(self) -> str:
        return f"Largest({self._n})"


class Smallest(TopCombineFn):
    """The ``n`` least elements, least first.

    >>> Smallest(2).apply([3, 1, 4])
    [1, 3]
    """

    def __init__(self, n: int) -> None:
        super().__init__(n, reverse=True)

    def default_label(self) -> str:
        return f"Smallest({self._n})"


# -- Sample ---------------------------------------------------------------------------------------


class SampleCombineFn(CombineFn):
    """A uniform random sample of ``n`` elements, without replacement, in random order.

    The accumulator is ``[elements_seen, reservoir]``: adding is reservoir sampling (the i-th
    input replaces a random slot with probability n/i). Merging two samples of populations of
    sizes a and b draws each slot from the first with probability a/(a+b) (both shrinking as
    slots are drawn), so the merged sample is again uniform over the union. Random numbers come
    from the ``random`` module (``random.seed`` makes a single process reproducible).

    >>> sorted(SampleCombineFn(3).apply([1, 2]))
    [1, 2]
    >>> len(SampleCombineFn(3).apply(range(100)))
    3
    """

    def __init__(self, n: int) -> None:
        self._n = _check_n(n, "SampleCombineFn")

    def create_accumulator(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [0, []]

    def add_input(self, accumulator: list[Any], element: Any, *args: Any, **kwargs: Any) -> Any:
        seen = accumulator[0] + 1
        accumulator[0] = seen
        reservoir = accumulator[1]
        n = self._n
        if len(reservoir) < n:
            reservoir.append(element)
        else:
            slot = int(random.random() * seen)
            if slot < n:
                reservoir[slot] = element
        return accumulator

    def add_inputs(
        self, accumulator: list[Any], elements: Iterable[Any], *args: Any, **kwargs: Any
    ) -> Any:
        if type(self).add_input is not SampleCombineFn.add_input:
            return super().add_inputs(accumulator, elements, *args, **kwargs)
        seen, reservoir = accumulator
        n = self._n
        rand = random.random
        for element in elements:
            seen += 1
            if len(reservoir) < n:
                reservoir.append(element)
            else:
                slot = int(rand() * seen)
                if slot < n:
                    reservoir[slot] = element
        accumulator[0] = seen
        return accumulator

    def _merge_two(self, a: list[Any], b: list[Any]) -> list[Any]:
        size_a, sample_a = a
        size_b, sample_b = b
        if not size_b:
            return a
        if not size_a:
            return b
        if size_a + size_b <= self._n:
            return [size_a + size_b, sample_a + sample_b]
        rand = random.random
        left_a, left_b = size_a, size_b  # population not yet drawn from, per side
        pool_a, pool_b = list(sample_a), list(sample_b)
        out = []
        for _ in range(self._n):
            if rand() * (left_a + left_b) < left_a:
                pool, left_a = pool_a, left_a - 1
            else:
                pool, left_b = pool_b, left_b - 1
            i = int(rand() * len(pool))
            pool[i], pool[-1] = pool[-1], pool[i]
            out.append(pool.pop())
        return [size_a + size_b, out]

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        result: list[Any] | None = None
        for acc in accumulators:
            result = acc if result is None else self._merge_two(result, acc)
        return result if result is not None else self.create_accumulator()

    def extract_output(self, accumulator: list[Any], *args: Any, **kwargs: Any) -> list[Any]:
        out = list(accumulator[1])
        random.shuffle(out)
        return out


# -- ToList, ToDict, ToSet ------------------------------------------------------------------------


class ToListCombineFn(CombineFn):
    """All inputs in one list (in no particular order).

    >>> ToListCombineFn().apply("ab")
    ['a', 'b']
    """

    def create_accumulator(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []

    def add_input(self, accumulator: list[Any], element: Any, *args: Any, **kwargs: Any) -> Any:
        accumulator.append(element)
        return accumulator

    def add_inputs(
        self, accumulator: list[Any], elements: Iterable[Any], *args: Any, **kwargs: Any
    ) -> Any:
        if type(self).add_input is not ToListCombineFn.add_input:
            return super().add_inputs(accumulator, elements, *args, **kwargs)
        accumulator.extend(elements)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        result: list[Any] | None = None
        for acc in accumulators:
            if result is None:
                result = acc
            else:
                result.extend(acc)
        return [] if result is None else result

    def extract_output(self, accumulator: list[Any], *args: Any, **kwargs: Any) -> list[Any]:
        return accumulator


class ToDictCombineFn(CombineFn):
    """A dict of ``(key, value)`` inputs; for a repeated key one of its values is kept.

    >>> ToDictCombineFn().apply([("a", 1), ("b", 2)])
    {'a': 1, 'b': 2}
    """

    def create_accumulator(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return {}

    def add_input(
        self, accumulator: dict[Any, Any], element: Any, *args: Any, **kwargs: Any
    ) -> Any:
        try:
            key, value = element
            accumulator[key] = value
        except (TypeError, ValueError) as e:
            raise _not_a_pair(element, e) from e
        return accumulator

    def add_inputs(
        self, accumulator: dict[Any, Any], elements: Iterable[Any], *args: Any, **kwargs: Any
    ) -> Any:
        if type(self).add_input is not ToDictCombineFn.add_input:
            return super().add_inputs(accumulator, elements, *args, **kwargs)
        if not isinstance(elements, (list, tuple)):
            elements = list(elements)
        try:
            accumulator.update(elements)
        except (TypeError, ValueError):
            for element in elements:
                self.add_input(accumulator, element)
            raise
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        result: dict[Any, Any] | None = None
        for acc in accumulators:
            if result is None:
                result = acc
            else:
                result.update(acc)
        return {} if result is None else result

    def extract_output(self, accumulator: dict[Any, Any], *args: Any, **kwargs: Any) -> Any:
        return accumulator


def _not_a_pair(element: Any, cause: Exception) -> Exception:
    if isinstance(element, (tuple, list)) and len(element) == 2:
        return TypeError(
            f"ToDict got the unhashable key {_short(element[0])}; keys must be hashable "
            "(use a tuple, not a list)"
        )
    return ValueError(
        f"ToDict needs (key, value) pairs, got {_short(element)}; "
        "key the elements first, e.g. beam.Map(lambda x: (key_of(x), x))"
    )


class ToSetCombineFn(CombineFn):
    """The set of distinct inputs.

    >>> sorted(ToSetCombineFn().apply("abca"))
    ['a', 'b', 'c']
    """

    def create_accumulator(self, *args: Any, **kwargs: Any) -> set[Any]:
        return set()

    def add_input(self, accumulator: set[Any], element: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            accumulator.add(element)
        except TypeError as e:
            raise _unhashable(element) from e
        return accumulator

    def add_inputs(
        self, accumulator: set[Any], elements: Iterable[Any], *args: Any, **kwargs: Any
    ) -> Any:
        if type(self).add_input is not ToSetCombineFn.add_input:
            return super().add_inputs(accumulator, elements, *args, **kwargs)
        if not isinstance(elements, (list, tuple)):
            elements = list(elements)
        try:
            accumulator.update(elements)
        except TypeError:
            for element in elements:
                self.add_input(accumulator, element)
            raise
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        result: set[Any] | None = None
        for acc in accumulators:
            if result is None:
                result = acc
            else:
                result.update(acc)
        return set() if result is None else result

    def extract_output(self, accumulator: set[Any], *args: Any, **kwargs: Any) -> Any:
        return accumulator


def _unhashable(element: Any) -> TypeError:
    return TypeError(
        f"ToSet got the unhashable element {_short(element)} of type {type(element).__name__}; "
        "convert it to a hashable value first (a tuple instead of a list, frozenset for a set)"
    )


# -- Latest ---------------------------------------------------------------------------------------


@with_input_types(typing.Tuple[TypeVariable("T"), int | float | Timestamp | Duration])  # noqa: UP006
class LatestCombineFn(CombineFn):
    """The value of the ``(value, timestamp)`` input with the latest timestamp (None if empty).

    >>> LatestCombineFn().apply([("a", 3), ("b", 7), ("c", 5)])
    'b'
    """

    def create_accumulator(self, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return (None, MIN_TIMESTAMP)

    def add_input(self, accumulator: Any, element: Any, *args: Any, **kwargs: Any) -> Any:
        return accumulator if accumulator[1] > element[1] else element

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        result = self.create_accumulator()
        for acc in accumulators:
            if not result[1] > acc[1]:
                result = acc
        return result

    def extract_output(self, accumulator: Any, *args: Any, **kwargs: Any) -> Any:
        return accumulator[0]


# -- tuples of combiners --------------------------------------------------------------------------


class _TupleCombineFnBase(CombineFn):
    def __init__(self, *combiners: Any, merge_accumulators_batch_size: int | None = None) -> None:
        self._combiners = [CombineFn.maybe_from_callable(c) for c in combiners]
        # How many accumulator tuples merge_accumulators holds at once (it reads its input
        # lazily); by default fewer the more CombineFns there are, as in Beam.
        if merge_accumulators_batch_size is not None and merge_accumulators_batch_size < 1:
            raise ValueError(
                "merge_accumulators_batch_size must be at least 1, got "
                f"{merge_accumulators_batch_size}"
            )
        self._merge_accumulators_batch_size = merge_accumulators_batch_size or max(
            10, 1000 // max(1, len(combiners))
        )

    def setup(self, *args: Any, **kwargs: Any) -> None:
        for c in self._combiners:
            c.setup(*args, **kwargs)

    def create_accumulator(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [c.create_accumulator(*args, **kwargs) for c in self._combiners]

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any:
        """Merge field by field, reading at most ``merge_accumulators_batch_size`` tuples at a
        time (each batch merged together with the result so far), to bound memory."""
        pending = iter(accumulators)
        merged: Any = None
        while True:
            batch = list(itertools.islice(pending, self._merge_accumulators_batch_size))
            if not batch:
                break
            if merged is not None:
                batch.insert(0, merged)
            elif len(batch) == 1:
                merged = batch[0]
                continue
            merged = [
                c.merge_accumulators(list(column), *args, **kwargs)
                for c, column in zip(self._combiners, zip(*batch))
            ]
            del batch  # before the next batch is read
        return merged if merged is not None else self.create_accumulator(*args, **kwargs)

    def compact(self, accumulator: list[Any], *args: Any, **kwargs: Any) -> list[Any]:
        return [c.compact(a, *args, **kwargs) for c, a in zip(self._combiners, accumulator)]

    def extract_output(self, accumulator: list[Any], *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return tuple(
            c.extract_output(a, *args, **kwargs) for c, a in zip(self._combiners, accumulator)
        )

    def teardown(self, *args: Any, **kwargs: Any) -> None:
        for c in reversed(self._combiners):
            c.teardown(*args, **kwargs)


class TupleCombineFn(_TupleCombineFnBase):
    """Combine N-tuples field by field, the i-th field with the i-th CombineFn (or callable).

    >>> TupleCombineFn(max, sum).apply([(1, 10), (3, 20)])
    (3, 30)
    """

    def add_input(self, accumulator: list[Any], element: Any, *args: Any, **kwargs: Any) -> Any:
        return [
            c.add_input(a, e, *args, **kwargs)
            for c, a, e in zip(self._combiners, accumulator, element)
        ]

    def with_common_input(self) -> SingleInputTupleCombineFn:
        """The same CombineFns, each applied to the whole input instead of one field."""
        return SingleInputTupleCombineFn(*self._combiners)


class SingleInputTupleCombineFn(_TupleCombineFnBase):
    """Apply every CombineFn (or callable) to each input; the output is the tuple of results.

    >>> SingleInputTupleCombineFn(min, max, CountCombineFn()).apply([4, 2, 9])
    (2, 9, 3)
    """

    def add_input(self, accumulator: list[Any], element: Any, *args: Any, **kwargs: Any) -> Any:
        return [
            c.add_input(a, element, *args, **kwargs) for c, a in zip(self._combiners, accumulator)
        ]
