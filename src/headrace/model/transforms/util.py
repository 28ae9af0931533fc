"""Utility transforms built from the core ones: keys and values, Distinct, CoGroupByKey, ...

Everything here is a composite of the primitives in :mod:`headrace.model.transforms.core`; the
names and semantics follow ``apache_beam.transforms.util``:

* :func:`Keys`, :func:`Values`, :func:`KvSwap` and :class:`WithKeys` reshape ``(key, value)``
  pairs;
* :class:`Distinct` (alias :class:`RemoveDuplicates`) removes duplicates within each window;
* :class:`CoGroupByKey` groups several keyed PCollections by key at once;
* :class:`Reshuffle` redistributes elements through a shuffle, keeping their timestamps and
  windows;
* :class:`BatchElements`, :class:`SortAndBatchElements` and :class:`WithLengthBucketKey`
  (defined in :mod:`headrace.model.transforms.batching`) group elements into lists within a
  bundle;
* :class:`ToString` turns elements into strings.

The functions handed to Map and ParDo here are module-level functions or small classes, so they
pickle by reference and cost one call per element.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from headrace.graph.nodes import WindowingStrategy
from headrace.model.pvalue import PCollection
from headrace.model.transforms.batching import (
    BatchElements,
    GroupIntoBatches,
    SortAndBatchElements,
    WithLengthBucketKey,
)
from headrace.model.transforms.core import (
    CombinePerKey,
    FlatMap,
    Flatten,
    GroupByKey,
    Map,
    ParDo,
    WindowInto,
)
from headrace.model.transforms.dofn import DoFn
from headrace.model.transforms.ptransform import PTransform
from headrace.model.typehints import KV_HINT, is_consistent_with
from headrace.model.window import (
    GLOBAL_WINDOWS_TUPLE,
    BoundedWindow,
    GlobalWindows,
    NonMergingWindowFn,
    WindowedValue,
    WindowFn,
)

__all__ = [
    "BatchElements",
    "CoGroupByKey",
    "Distinct",
    "GroupIntoBatches",
    "Keys",
    "KvSwap",
    "RemoveDuplicates",
    "Reshuffle",
    "SortAndBatchElements",
    "ToString",
    "Values",
    "WithKeys",
    "WithLengthBucketKey",
]


# -- reshaping pairs ----------------------------------------------------------------------------


def _first(kv: Any) -> Any:
    return kv[0]


def _second(kv: Any) -> Any:
    return kv[1]


def _swap(kv: Any) -> tuple[Any, Any]:
    return (kv[1], kv[0])


def Keys(label: str = "Keys") -> PTransform:
    """The keys of a PCollection of ``(key, value)`` pairs.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     assert_that(p | Create([("a", 1), ("b", 2)]) | Keys(), equal_to(["a", "b"]))
    """
    return label >> Map(_first)


def Values(label: str = "Values") -> PTransform:
    """The values of a PCollection of ``(key, value)`` pairs.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     assert_that(p | Create([("a", 1), ("b", 2)]) | Values(), equal_to([1, 2]))
    """
    return label >> Map(_second)


def KvSwap(label: str = "KvSwap") -> PTransform:
    """Turn each ``(key, value)`` pair into ``(value, key)``.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     assert_that(p | Create([("a", 1)]) | KvSwap(), equal_to([(1, "a")]))
    """
    return label >> Map(_swap)


class _ConstantKey:
    __slots__ = ("key",)

    def __init__(self, key: Any) -> None:
        self.key = key

    def __call__(self, value: Any) -> tuple[Any, Any]:
        return (self.key, value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_ConstantKey, (self.key,))


class _KeyFrom:
    __slots__ = ("key_fn",)

    def __init__(self, key_fn: Callable[..., Any]) -> None:
        self.key_fn = key_fn

    def __call__(self, value: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        return (self.key_fn(value, *args, **kwargs), value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_KeyFrom, (self.key_fn,))


class WithKeys(PTransform):
    """Pair each element with a key: ``key_fn(element)`` when given a callable, else a constant.

    Extra arguments (plain values or side-input views such as ``AsSingleton(pcoll)``) are passed
    to ``key_fn`` after the element.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     words = p | Create(["apple", "bob"])
    ...     assert_that(words | "ByLen" >> WithKeys(len), equal_to([(5, "apple"), (3, "bob")]),
    ...                 label="CheckLen")
    ...     assert_that(words | "Const" >> WithKeys("k"), equal_to([("k", "apple"), ("k", "bob")]))
    """

    def __init__(self, key_fn_or_constant: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.key = key_fn_or_constant
        self.args = args
        self.kwargs = kwargs
        if not callable(key_fn_or_constant) and (args or kwargs):
            raise TypeError(
                f"WithKeys got the constant key {key_fn_or_constant!r} and extra arguments; extra "
                "arguments are only passed to a key function (a callable)"
            )

    def expand(self, pcoll: PCollection) -> PCollection:
        if callable(self.key):
            pair = Map(_KeyFrom(self.key), *self.args, **self.kwargs)
        else:
            pair = Map(_ConstantKey(self.key))
        return pcoll | "AddKeys" >> pair


# -- Distinct ---------------------------------------------------------------------------------


def _pair_with_zero(v: Any) -> tuple[Any, int]:
    return (v, 0)


class Distinct(PTransform):
    """Remove duplicate elements (within each window); elements must be hashable.

    Built as ``(element, 0)`` pairs combined per key, so duplicates are already dropped before the
    shuffle. Equal elements are merged as Python's ``==`` and ``hash`` see them (``1`` and ``1.0``
    are one element).

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     assert_that(p | Create([1, 2, 1, 3, 2]) | Distinct(), equal_to([1, 2, 3]))
    """

    def expand(self, pcoll: PCollection) -> PCollection:
        if not isinstance(pcoll, PCollection):
            raise TypeError(f"{self.label!r} must be applied to a PCollection, not {pcoll!r}")
        return (
            pcoll
            | "ToPairs" >> Map(_pair_with_zero)
            | "Group" >> CombinePerKey(sum)
            | "Keys" >> Map(_first)
        )


class RemoveDuplicates(Distinct):
    """The older name of :class:`Distinct` (Beam keeps it as a deprecated alias).

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     assert_that(p | Create(["a", "a"]) | RemoveDuplicates(), equal_to(["a"]))
    """


# -- CoGroupByKey -----------------------------------------------------------------------------


class _TagValue:
    """``(key, value)`` → ``(key, (index, value))`` for input number ``index`` of a CoGroupByKey."""

    __slots__ = ("index", "label")

    def __init__(self, index: int, label: str) -> None:
        self.index = index
        self.label = label

    def __call__(self, kv: Any) -> tuple[Any, tuple[int, Any]]:
        try:
            key, value = kv
        except (TypeError, ValueError):
            raise ValueError(
                f"{self.label!r} needs (key, value) pairs, got {kv!r:.80}; key the elements first, "
                "e.g. beam.Map(lambda x: (key_of(x), x)) or beam.WithKeys(key_of)"
            ) from None
        return (key, (self.index, value))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_TagValue, (self.index, self.label))


class _SplitByTag:
    """``(key, [(index, value), ...])`` → ``(key, {tag: [values]})`` or ``(key, ([...], ...))``."""

    __slots__ = ("tags",)

    def __init__(self, tags: list[Any] | None, n: int) -> None:
        self.tags = tags if tags is not None else n

    def __call__(self, element: Any) -> tuple[Any, Any]:
        key, tagged = element
        tags = self.tags
        n = tags if isinstance(tags, int) else len(tags)
        lists: list[list[Any]] = [[] for _ in range(n)]
        for index, value in tagged:
            lists[index].append(value)
        if isinstance(tags, int):
            return (key, tuple(lists))
        return (key, dict(zip(tags, lists)))

    def __reduce__(self) -> tuple[Any, ...]:
        tags = self.tags
        return (_SplitByTag, (None, tags) if isinstance(tags, int) else (tags, len(tags)))


class CoGroupByKey(PTransform):
    """Group several PCollections of ``(key, value)`` pairs by key in one shuffle.

    Given a dict ``{tag: pcoll}`` each output is ``(key, {tag: [values], ...})``; given a tuple or
    list of PCollections it is ``(key, ([values of input 0], [values of input 1], ...))``. Every
    tag (or position) is present for every key, with an empty list where an input has no value
    for the key. All inputs must be windowed alike; grouping is per key and window. Pass
    ``pipeline=p`` when the inputs may be empty (a dict or tuple with no PCollections).

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     emails = p | "Emails" >> Create([("amy", "amy@x.org")])
    ...     phones = p | "Phones" >> Create([("amy", "555"), ("bob", "777")])
    ...     joined = {"email": emails, "phone": phones} | CoGroupByKey()
    ...     assert_that(joined, equal_to([("amy", {"email": ["amy@x.org"], "phone": ["555"]}),
    ...                                   ("bob", {"email": [], "phone": ["777"]})]))
    """

    def __init__(self, *, pipeline: Any = None) -> None:
        super().__init__()
        self.pipeline = pipeline

    def expand(self, pcolls: Any) -> PCollection:
        if isinstance(pcolls, dict):
            tags: list[Any] | None = list(pcolls)
            inputs = list(pcolls.values())
        elif isinstance(pcolls, (list, tuple)):
            tags = None
            inputs = list(pcolls)
        else:
            raise TypeError(
                f"{self.label!r} needs a dict {{tag: pcoll}} or a tuple of PCollections, got "
                f"{pcolls!r}"
            )
        names = [str(t) for t in tags] if tags is not None else [str(i) for i in range(len(inputs))]
        for name, pc in zip(names, inputs):
            if not isinstance(pc, PCollection):
                raise TypeError(f"{self.label!r}: input {name!r} is {pc!r}, not a PCollection")
            _check_pairs(pc, f"{self.label}/pair_with_{name}")
        tagged = [
            pc | f"pair_with_{name}" >> Map(_TagValue(i, f"{self.label}/pair_with_{name}"))
            for i, (name, pc) in enumerate(zip(names, inputs))
        ]
        pipeline = self.pipeline if self.pipeline is not None else _pipeline_of(inputs)
        return (
            tagged
            | "Flatten" >> Flatten(pipeline=pipeline)
            | "GroupByKey" >> GroupByKey()
            | "SplitByTag" >> Map(_SplitByTag(tags, len(inputs)))
        )


def _pipeline_of(inputs: list[PCollection]) -> Any:
    return inputs[0].pipeline if inputs else None


def _check_pairs(pcoll: PCollection, label: str) -> None:
    t = pcoll.element_type
    if t is not None and t not in (tuple, list, Any) and not is_consistent_with(t, KV_HINT):
        raise ValueError(
            f"{label!r} needs (key, value) pairs but its input {pcoll!r} has elements of type "
            f"{getattr(t, '__name__', t)}; key them first, e.g. beam.WithKeys(key_of)"
        )


# -- Reshuffle --------------------------------------------------------------------------------


class _AddRandomKeyGlobal(DoFn):
    """Global window: ``x`` → ``(random key, (x, timestamp_us))``."""

    def __init__(self, num_buckets: int | None) -> None:
        self.num_buckets = num_buckets

    def process(self, x: Any, timestamp: Any = DoFn.TimestampParam) -> Iterable[Any]:
        n = self.num_buckets
        key = random.getrandbits(32) if n is None else random.randrange(n)
        return ((key, (x, timestamp.micros)),)


class _AddRandomKeyWindowed(DoFn):
    """Windowed: ``x`` → ``(random key, (x, timestamp_us, window))``, once per window."""

    def __init__(self, num_buckets: int | None) -> None:
        self.num_buckets = num_buckets

    def process(
        self, x: Any, timestamp: Any = DoFn.TimestampParam, window: Any = DoFn.WindowParam
    ) -> Iterable[Any]:
        n = self.num_buckets
        key = random.getrandbits(32) if n is None else random.randrange(n)
        return ((key, (x, timestamp.micros, window)),)


def _restore_global(kvs: Any) -> list[WindowedValue]:
    return [WindowedValue(x, ts, GLOBAL_WINDOWS_TUPLE) for x, ts in kvs[1]]


def _restore_windowed(kvs: Any) -> list[WindowedValue]:
    return [WindowedValue(x, ts, (w,)) for x, ts, w in kvs[1]]


class _KeepWindows(NonMergingWindowFn):
    """Leaves every element in the window it already has (used to restore windowing)."""

    def assign(self, assign_context: WindowFn.AssignContext) -> Iterable[BoundedWindow]:
        return (assign_context.window,)

    def __repr__(self) -> str:
        return "KeepWindows()"


class _RestoreWindowing(WindowInto):
    """Keeps each element's window and sets the output windowing strategy to ``strategy``."""

    def __init__(self, strategy: WindowingStrategy) -> None:
        super().__init__(_KeepWindows())
        self.strategy = strategy

    def default_label(self) -> str:
        return "RestoreWindowing"

    def _strategy(self) -> WindowingStrategy:
        return self.strategy


class Reshuffle(PTransform):
    """Pass elements through a shuffle under random keys: same elements, redistributed.

    Use it to break fusion (spread the output of a small source over all workers) or to
    checkpoint. Each element keeps its value, timestamp and window. The direct runner executes it
    as one step that materialises its input and spreads it over the workers, keeping every element
    exactly as it was (pane included); the recorded parts (random keys, GroupByKey) describe the
    same thing for runners without that step, where an element in several windows comes out once
    per window and the pane is not kept. ``num_buckets`` limits the number of random keys.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     assert_that(p | Create([1, 2, 2, 3]) | Reshuffle(), equal_to([1, 2, 2, 3]))
    """

    def __init__(self, num_buckets: int | None = None) -> None:
        super().__init__()
        if num_buckets is not None and (
            not isinstance(num_buckets, int) or isinstance(num_buckets, bool) or num_buckets < 1
        ):
            raise ValueError(f"Reshuffle num_buckets must be a positive int, got {num_buckets!r}")
        self.num_buckets = num_buckets

    def expand(self, pcoll: PCollection) -> PCollection:
        if not isinstance(pcoll, PCollection):
            raise TypeError(f"{self.label!r} must be applied to a PCollection, not {pcoll!r}")
        # Runners may execute this composite as one "Reshuffle" step: a materialisation that keeps
        # every element exactly as it is (value, timestamp, windows, pane) and redistributes it.
        self._graph_composite: tuple[str, Any, dict[str, Any]] = ("Reshuffle", None, {})
        saved = pcoll.windowing
        if saved.is_global:
            return (
                pcoll
                | "AddRandomKeys" >> ParDo(_AddRandomKeyGlobal(self.num_buckets))
                | "Group" >> GroupByKey()
                | "RemoveRandomKeys" >> FlatMap(_restore_global)
            )
        return (
            pcoll
            | "AddRandomKeys" >> ParDo(_AddRandomKeyWindowed(self.num_buckets))
            | "IntoGlobalWindow" >> WindowInto(GlobalWindows())
            | "Group" >> GroupByKey()
            | "RemoveRandomKeys" >> FlatMap(_restore_windowed)
            | "RestoreWindowing" >> _RestoreWindowing(saved)
        )


# -- ToString ---------------------------------------------------------------------------------


class _KvToString:
    __slots__ = ("delimiter",)

    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter

    def __call__(self, kv: Any) -> str:
        return f"{kv[0]}{self.delimiter}{kv[1]}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_KvToString, (self.delimiter,))


class _IterableToString:
    __slots__ = ("delimiter",)

    def __init__(self, delimiter: str) -> None:
        self.delimiter = delimiter

    def __call__(self, items: Any) -> str:
        return self.delimiter.join(map(str, items))

    def __reduce__(self) -> tuple[Any, ...]:
        return (_IterableToString, (self.delimiter,))


class ToString:
    """Transforms that turn elements into strings: ``Element``, ``Kvs`` and ``Iterables``."""

    class Element(PTransform):
        """``str(element)`` for each element.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     assert_that(p | Create([1, (2, 3)]) | ToString.Element(), equal_to(["1", "(2, 3)"]))
        """

        def expand(self, pcoll: PCollection) -> PCollection:
            return pcoll | "ElementToString" >> Map(str)

    class Kvs(PTransform):
        """``f"{key}{delimiter}{value}"`` for each ``(key, value)`` pair (delimiter ``","``).

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     assert_that(p | Create([("a", 1)]) | ToString.Kvs("="), equal_to(["a=1"]))
        """

        def __init__(self, delimiter: str | None = None) -> None:
            super().__init__()
            self.delimiter = delimiter or ","

        def expand(self, pcoll: PCollection) -> PCollection:
            return pcoll | "KvToString" >> Map(_KvToString(self.delimiter))

    class Iterables(PTransform):
        """The ``str`` of each item of each iterable element, joined by ``delimiter`` (``","``).

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     assert_that(p | Create([[1, 2, 3]]) | ToString.Iterables(), equal_to(["1,2,3"]))
        """

        def __init__(self, delimiter: str | None = None) -> None:
            super().__init__()
            self.delimiter = delimiter or ","

        def expand(self, pcoll: PCollection) -> PCollection:
            return pcoll | "IterablesToString" >> Map(_IterableToString(self.delimiter))
