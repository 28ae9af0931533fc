"""Ready-made combiners: Count, Mean, Top, Sample, ToList/ToDict/ToSet, Latest and their CombineFns.

This module mirrors Beam's ``apache_beam.transforms.combiners``. Every transform here is a thin
composite of core transforms (``CombineGlobally``, ``CombinePerKey``, ``Map``), so the planner lifts
them like any other combine. The CombineFns they apply (and the tuple CombineFns) live in
:mod:`headrace.model.transforms.combinefns`, which documents their accumulators; this module
re-exports them, so every combiner name is importable from here as in Beam.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from headrace.model.pvalue import PCollection
from headrace.model.transforms.combinefns import (
    CountCombineFn,
    Largest,
    LatestCombineFn,
    MeanCombineFn,
    SampleCombineFn,
    SingleInputTupleCombineFn,
    Smallest,
    ToDictCombineFn,
    ToListCombineFn,
    TopCombineFn,
    ToSetCombineFn,
    TupleCombineFn,
    _check_n,
)
from headrace.model.transforms.core import CombineGlobally, CombinePerKey, FlatMap, Map
from headrace.model.transforms.dofn import CombineFn, DoFn
from headrace.model.transforms.ptransform import PTransform, ptransform_fn
from headrace.model.typehints import (
    KV_HINT,
    dict_of,
    key_value_types,
    kv_of,
    list_of,
    set_of,
    typed,
)

__all__ = [
    "CombinerWithoutDefaults",
    "Count",
    "CountCombineFn",
    "Largest",
    "Latest",
    "LatestCombineFn",
    "Mean",
    "MeanCombineFn",
    "Sample",
    "SampleCombineFn",
    "SingleInputTupleCombineFn",
    "Smallest",
    "ToDict",
    "ToDictCombineFn",
    "ToList",
    "ToListCombineFn",
    "ToSet",
    "ToSetCombineFn",
    "Top",
    "TopCombineFn",
    "TupleCombineFn",
]


class CombinerWithoutDefaults(PTransform):
    """Base of the global combiners: ``without_defaults()`` drops the output for empty input.

    Outside the global window a global combine has no default value, so windowed pipelines call
    ``.without_defaults()`` on Count.Globally, Top.Of, ToList and friends.
    """

    def __init__(self, has_defaults: bool = True) -> None:
        super().__init__()
        self.has_defaults = has_defaults

    def with_defaults(self, has_defaults: bool = True) -> CombinerWithoutDefaults:
        """A copy of this transform that does (or does not) emit a value for empty input."""
        new = copy.copy(self)
        new.has_defaults = has_defaults
        return new

    def without_defaults(self) -> CombinerWithoutDefaults:
        """A copy of this transform that emits nothing for empty input."""
        return self.with_defaults(False)

    def _combine_globally(self, fn: CombineFn) -> CombineGlobally:
        combine = CombineGlobally(fn)
        return combine if self.has_defaults else combine.without_defaults()


# -- Count ----------------------------------------------------------------------------------------


def _pair_with_void(element: Any) -> tuple[Any, None]:
    return (element, None)


class Count:
    """Transforms that count elements: ``Globally``, ``PerKey`` and ``PerElement``."""

    class Globally(CombinerWithoutDefaults):
        """The number of elements (0 for an empty input).

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     assert_that(p | Create(["a", "b", "a"]) | Count.Globally(), equal_to([3]))
        """

        def expand(self, pcoll: PCollection) -> PCollection:
            return typed(pcoll | self._combine_globally(CountCombineFn()), int)

    class PerKey(PTransform):
        """``(key, number of values)`` for each key of ``(key, value)`` pairs.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     counts = p | Create([("a", 1), ("b", 2), ("a", 3)]) | Count.PerKey()
        ...     assert_that(counts, equal_to([("a", 2), ("b", 1)]))
        """

        _input_type_hint = KV_HINT

        def expand(self, pcoll: PCollection) -> PCollection:
            key, _ = key_value_types(pcoll.element_type)
            return typed(pcoll | CombinePerKey(CountCombineFn()), kv_of(key, int))

    class PerElement(PTransform):
        """``(element, number of occurrences)`` for each distinct element.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     counts = p | Create(["a", "b", "a"]) | Count.PerElement()
        ...     assert_that(counts, equal_to([("a", 2), ("b", 1)]))
        """

        def expand(self, pcoll: PCollection) -> PCollection:
            counts = (
                pcoll
                | f"{self.label}:PairWithVoid" >> Map(_pair_with_void)
                | CombinePerKey(CountCombineFn())
            )
            return typed(counts, kv_of(pcoll.element_type, int))


# -- Mean -----------------------------------------------------------------------------------------


class Mean:
    """Transforms that compute arithmetic means: ``Globally`` and ``PerKey``."""

    class Globally(CombinerWithoutDefaults):
        """The mean of all elements (NaN for an empty input).

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     assert_that(p | Create([1, 2, 3, 4]) | Mean.Globally(), equal_to([2.5]))
        """

        def expand(self, pcoll: PCollection) -> PCollection:
            return typed(pcoll | self._combine_globally(MeanCombineFn()), float)

    class PerKey(PTransform):
        """``(key, mean of its values)`` for each key.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     means = p | Create([("a", 1), ("a", 2), ("b", 5)]) | Mean.PerKey()
        ...     assert_that(means, equal_to([("a", 1.5), ("b", 5.0)]))
        """

        _input_type_hint = KV_HINT

        def expand(self, pcoll: PCollection) -> PCollection:
            key, _ = key_value_types(pcoll.element_type)
            return typed(pcoll | CombinePerKey(MeanCombineFn()), kv_of(key, float))


# -- Top ------------------------------------------------------------------------------------------


@ptransform_fn
def _largest(pcoll: PCollection, n: int, has_defaults: bool = True, key: Any = None) -> PCollection:
    return pcoll | Top.Of(n, key).with_defaults(has_defaults)


@ptransform_fn
def _smallest(
    pcoll: PCollection, n: int, has_defaults: bool = True, key: Any = None
) -> PCollection:
    return pcoll | Top.Of(n, key, reverse=True).with_defaults(has_defaults)


@ptransform_fn
def _largest_per_key(pcoll: PCollection, n: int, key: Any = None) -> PCollection:
    return pcoll | Top.PerKey(n, key)


@ptransform_fn
def _smallest_per_key(pcoll: PCollection, n: int, key: Any = None) -> PCollection:
    return pcoll | Top.PerKey(n, key, reverse=True)


class Top:
    """Transforms that keep the greatest (or least) ``n`` elements, as lists sorted best-first.

    ``key`` and ``reverse`` mean what they mean for ``sorted``: by default the largest come first;
    with ``reverse=True`` the smallest do.
    """

    class Of(CombinerWithoutDefaults):
        """One list of the ``n`` best elements of the whole input (``[]`` for an empty input).

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     shortest = p | Create(["ccc", "a", "bb"]) | Top.Of(2, key=len, reverse=True)
        ...     assert_that(shortest, equal_to([["a", "bb"]]))
        """

        def __init__(
            self, n: int, key: Callable[[Any], Any] | None = None, reverse: bool = False
        ) -> None:
            super().__init__()
            self._n = _check_n(n, "Top.Of")
            self._key = key
            self._reverse = reverse

        def default_label(self) -> str:
            return f"Top({self._n})"

        def expand(self, pcoll: PCollection) -> PCollection:
            fn = TopCombineFn(self._n, self._key, self._reverse)
            return typed(pcoll | self._combine_globally(fn), list_of(pcoll.element_type))

    class PerKey(PTransform):
        """``(key, list of the n best values)`` for each key.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     pairs = p | Create([("a", 1), ("a", 3), ("a", 2), ("b", 7)])
        ...     assert_that(pairs | Top.PerKey(2), equal_to([("a", [3, 2]), ("b", [7])]))
        """

        _input_type_hint = KV_HINT

        def __init__(
            self, n: int, key: Callable[[Any], Any] | None = None, reverse: bool = False
        ) -> None:
            super().__init__()
            self._n = _check_n(n, "Top.PerKey")
            self._key = key
            self._reverse = reverse

        def default_label(self) -> str:
            return f"TopPerKey({self._n})"

        def expand(self, pcoll: PCollection) -> PCollection:
            fn = TopCombineFn(self._n, self._key, self._reverse)
            key, value = key_value_types(pcoll.element_type)
            return typed(pcoll | CombinePerKey(fn), kv_of(key, list_of(value)))

    @staticmethod
    def Largest(n: int, has_defaults: bool = True, key: Any = None) -> PTransform:
        """The ``n`` greatest elements, greatest first.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     assert_that(p | Create([3, 4, 1, 2]) | Top.Largest(2), equal_to([[4, 3]]))
        """
        return f"Largest({n})" >> _largest(n, has_defaults, key)

    @staticmethod
    def Smallest(n: int, has_defaults: bool = True, key: Any = None) -> PTransform:
        """The ``n`` least elements, least first.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     assert_that(p | Create([3, 4, 1, 2]) | Top.Smallest(2), equal_to([[1, 2]]))
        """
        return f"Smallest({n})" >> _smallest(n, has_defaults, key)

    @staticmethod
    def LargestPerKey(n: int, key: Any = None) -> PTransform:
        """``(key, the n greatest values)`` for each key.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     pairs = p | Create([("a", 1), ("a", 3), ("a", 2)])
        ...     assert_that(pairs | Top.LargestPerKey(2), equal_to([("a", [3, 2])]))
        """
        return f"LargestPerKey({n})" >> _largest_per_key(n, key)

    @staticmethod
    def SmallestPerKey(n: int, reverse: bool = True, key: Any = None) -> PTransform:
        """``(key, the n least values)`` for each key (``reverse`` is ignored, as in Beam).

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     pairs = p | Create([("a", 1), ("a", 3), ("a", 2)])
        ...     assert_that(pairs | Top.SmallestPerKey(2), equal_to([("a", [1, 2])]))
        """
        return f"SmallestPerKey({n})" >> _smallest_per_key(n, key)


# -- Sample ---------------------------------------------------------------------------------------


class Sample:
    """Transforms that draw uniform random samples without replacement."""

    class FixedSizeGlobally(CombinerWithoutDefaults):
        """One list of ``n`` elements drawn uniformly (all of them, if there are fewer).

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create, Map
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     sample = p | Create(range(100)) | Sample.FixedSizeGlobally(3)
        ...     assert_that(sample | Map(len), equal_to([3]))
        """

        def __init__(self, n: int) -> None:
            super().__init__()
            self._n = _check_n(n, "Sample.FixedSizeGlobally")

        def default_label(self) -> str:
            return f"FixedSizeGlobally({self._n})"

        def display_data(self) -> dict[str, Any]:
            return {"n": self._n}

        def expand(self, pcoll: PCollection) -> PCollection:
            sample = pcoll | self._combine_globally(SampleCombineFn(self._n))
            return typed(sample, list_of(pcoll.element_type))

    class FixedSizePerKey(PTransform):
        """``(key, list of n of its values drawn uniformly)`` for each key.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create, MapTuple
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     pairs = p | Create([("a", i) for i in range(10)] + [("b", 1)])
        ...     sizes = pairs | Sample.FixedSizePerKey(2) | MapTuple(lambda k, vs: (k, len(vs)))
        ...     assert_that(sizes, equal_to([("a", 2), ("b", 1)]))
        """

        _input_type_hint = KV_HINT

        def __init__(self, n: int) -> None:
            super().__init__()
            self._n = _check_n(n, "Sample.FixedSizePerKey")

        def default_label(self) -> str:
            return f"FixedSizePerKey({self._n})"

        def display_data(self) -> dict[str, Any]:
            return {"n": self._n}

        def expand(self, pcoll: PCollection) -> PCollection:
            key, value = key_value_types(pcoll.element_type)
            sample = pcoll | CombinePerKey(SampleCombineFn(self._n))
            return typed(sample, kv_of(key, list_of(value)))

    class Any(PTransform):
        """Up to ``n`` arbitrary elements (not a random sample), as elements, not a list.

        Beam's ``Sample.Any`` (Java's ``Sample.any``): all elements when there are fewer.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     assert_that(p | Create([1, 2]) | Sample.Any(5), equal_to([1, 2]))
        """

        def __init__(self, n: int) -> None:
            super().__init__()
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ValueError(f"Expected non-negative n, received {n!r}.")
            self._n = n

        def default_label(self) -> str:
            return f"Any({self._n})"

        def display_data(self) -> dict[str, Any]:
            return {"n": self._n}

        def expand(self, pcoll: PCollection) -> PCollection:
            some = pcoll | CombineGlobally(_SampleAnyCombineFn(self._n)).without_defaults()
            return some | FlatMap(_identity_list)


def _identity_list(elements: list[Any]) -> list[Any]:
    return elements


class _SampleAnyCombineFn(CombineFn):
    """Keeps the first ``n`` elements it sees (no random sampling)."""

    def __init__(self, n: int) -> None:
        self._n = n

    def create_accumulator(self) -> list[Any]:
        return []

    def add_input(self, accumulator: list[Any], element: Any) -> list[Any]:
        if len(accumulator) < self._n:
            accumulator.append(element)
        return accumulator

    def merge_accumulators(self, accumulators: Any) -> list[Any]:
        result: list[Any] = []
        for accumulator in accumulators:
            for element in accumulator:
                if len(result) >= self._n:
                    return result
                result.append(element)
        return result

    def extract_output(self, accumulator: list[Any]) -> list[Any]:
        return accumulator


# -- ToList, ToDict, ToSet ------------------------------------------------------------------------


class ToList(CombinerWithoutDefaults):
    """One list of all elements (``[]`` for an empty input), in no particular order.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create, Map
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     assert_that(p | Create([2, 1]) | ToList() | Map(sorted), equal_to([[1, 2]]))
    """

    def expand(self, pcoll: PCollection) -> PCollection:
        combined = pcoll | self.label >> self._combine_globally(ToListCombineFn())
        return typed(combined, list_of(pcoll.element_type))


class ToDict(CombinerWithoutDefaults):
    """One dict of all ``(key, value)`` elements; for a repeated key one value is kept.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     assert_that(p | Create([("a", 1), ("b", 2)]) | ToDict(), equal_to([{"a": 1, "b": 2}]))
    """

    _input_type_hint = KV_HINT

    def expand(self, pcoll: PCollection) -> PCollection:
        key, value = key_value_types(pcoll.element_type)
        combined = pcoll | self.label >> self._combine_globally(ToDictCombineFn())
        return typed(combined, dict_of(key, value))


class ToSet(CombinerWithoutDefaults):
    """One set of the distinct elements.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     assert_that(p | Create(["a", "b", "a"]) | ToSet(), equal_to([{"a", "b"}]))
    """

    def expand(self, pcoll: PCollection) -> PCollection:
        combined = pcoll | self.label >> self._combine_globally(ToSetCombineFn())
        return typed(combined, set_of(pcoll.element_type))


# -- Latest ---------------------------------------------------------------------------------------


def _with_timestamp(element: Any, timestamp: Any = DoFn.TimestampParam) -> tuple[Any, Any]:
    return (element, timestamp)


def _value_with_timestamp(element: Any, timestamp: Any = DoFn.TimestampParam) -> tuple[Any, Any]:
    key, value = element
    return (key, (value, timestamp))


class Latest:
    """Transforms that keep the element with the latest event timestamp."""

    class Globally(CombinerWithoutDefaults):
        """The element with the latest timestamp (None for an empty input).

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create, Map
        >>> from headrace.model.window import TimestampedValue
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     stamped = p | Create([("a", 3), ("b", 9), ("c", 5)]) | Map(
        ...         lambda vt: TimestampedValue(*vt))
        ...     assert_that(stamped | Latest.Globally(), equal_to(["b"]))
        """

        def expand(self, pcoll: PCollection) -> PCollection:
            return (
                pcoll
                | "AddTimestamp" >> Map(_with_timestamp)
                | self._combine_globally(LatestCombineFn())
            )

    class PerKey(PTransform):
        """``(key, the value with the latest timestamp)`` for each key.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create, Map
        >>> from headrace.model.window import TimestampedValue
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     stamped = p | Create([("k", "x", 3), ("k", "y", 1)]) | Map(
        ...         lambda e: TimestampedValue((e[0], e[1]), e[2]))
        ...     assert_that(stamped | Latest.PerKey(), equal_to([("k", "x")]))
        """

        _input_type_hint = KV_HINT

        def expand(self, pcoll: PCollection) -> PCollection:
            return (
                pcoll
                | "AddTimestamp" >> Map(_value_with_timestamp)
                | CombinePerKey(LatestCombineFn())
            )
