"""Batching transforms: :class:`BatchElements`, :class:`SortAndBatchElements`,
:class:`GroupIntoBatches` and the :class:`WithLengthBucketKey` DoFn (Beam's
``apache_beam.transforms.util`` names), and Beam's :class:`ShardedKey`.

All of them batch within a bundle (one worker's share of a stage): batches never span bundles.
Batches are stamped with the end of their window (its ``max_timestamp()``).
"""

from __future__ import annotations

import bisect
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from headrace.model.pvalue import PCollection
from headrace.model.transforms.core import FlatMap, GroupByKey, Map, ParDo
from headrace.model.transforms.dofn import DoFn
from headrace.model.transforms.ptransform import PTransform
from headrace.model.window import GLOBAL_WINDOW, GLOBAL_WINDOWS_TUPLE, WindowedValue

__all__ = [
    "DEFAULT_BUCKET_BOUNDARIES",
    "BatchElements",
    "GroupIntoBatches",
    "ShardedKey",
    "SortAndBatchElements",
    "WithLengthBucketKey",
]

_LOG = logging.getLogger(__name__)

DEFAULT_BUCKET_BOUNDARIES = (16, 32, 64, 128, 256, 512)
"""Length buckets of BatchElements(length_fn=...) when no ``bucket_boundaries`` are given."""


def _check_boundaries(boundaries: Sequence[int]) -> None:
    items = list(boundaries)
    if not items or any(b <= 0 for b in items) or items != sorted(items):
        raise ValueError("bucket_boundaries must be a non-empty sorted list of positive values.")


class _Bucketer:
    """The length bucket of an element: ``bisect_right(boundaries, length_fn(x))``."""

    def __init__(self, length_fn: Callable[[Any], int], boundaries: Sequence[int]) -> None:
        self.length_fn = length_fn
        self.boundaries = list(boundaries)

    def __call__(self, x: Any) -> int:
        return bisect.bisect_right(self.boundaries, self.length_fn(x))


class WithLengthBucketKey(DoFn):
    """Key each element as ``((worker_key, length_bucket), element)`` (Beam's DoFn).

    Buckets are lower-inclusive: boundaries ``[10, 50]`` make ``(-inf, 10)``, ``[10, 50)`` and
    ``[50, inf)``, numbered 0, 1, 2. ``worker_key`` is a string chosen once per DoFn instance.

    >>> dofn = WithLengthBucketKey(len, [10, 50])
    >>> dofn.setup()
    >>> [next(iter(dofn.process(s)))[0][1] for s in ("ab", "x" * 10, "y" * 50)]
    [0, 1, 2]
    """

    def __init__(self, length_fn: Callable[[Any], int], bucket_boundaries: Sequence[int]) -> None:
        _check_boundaries(bucket_boundaries)
        self._length_fn = length_fn
        self._bucket_boundaries = list(bucket_boundaries)
        self.key = ""

    def setup(self) -> None:
        self.key = uuid.uuid4().hex

    def _get_bucket(self, length: int) -> int:
        return bisect.bisect_right(self._bucket_boundaries, length)

    def process(self, element: Any) -> Iterable[Any]:
        yield ((self.key, self._get_bucket(self._length_fn(element))), element)


class _BatchSizer:
    """Target batch sizes: start at the minimum, double after each batch, stop at the maximum."""

    __slots__ = ("max_size", "min_size", "size_fn", "target")

    def __init__(self, min_size: int, max_size: int, size_fn: Callable[[Any], int] | None) -> None:
        self.min_size = min_size
        self.max_size = max_size
        self.size_fn = size_fn
        self.target = min_size

    def grow(self) -> None:
        self.target = min(self.max_size, self.target * 2)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_BatchSizer, (self.min_size, self.max_size, self.size_fn))


class _SizedBatch:
    __slots__ = ("elements", "size")

    def __init__(self) -> None:
        self.elements: list[Any] = []
        self.size = 0


_GLOBAL_MAX_US = GLOBAL_WINDOW.max_timestamp_us()


class _BatchGlobalWindow(DoFn):
    """Batches of a globally windowed PCollection; one open batch per bundle."""

    def __init__(self, sizer: _BatchSizer) -> None:
        self.sizer = sizer
        self._batch = _SizedBatch()

    def start_bundle(self) -> None:
        self._batch = _SizedBatch()

    def process(self, x: Any) -> Iterable[Any] | None:
        batch = self._batch
        batch.elements.append(x)
        sizer = self.sizer
        batch.size += 1 if sizer.size_fn is None else sizer.size_fn(x)
        if batch.size < sizer.target:
            return None
        self._batch = _SizedBatch()
        sizer.grow()
        return (WindowedValue(batch.elements, _GLOBAL_MAX_US, GLOBAL_WINDOWS_TUPLE),)

    def finish_bundle(self) -> Iterable[Any] | None:
        batch, self._batch = self._batch, _SizedBatch()
        if not batch.elements:
            return None
        return (WindowedValue(batch.elements, _GLOBAL_MAX_US, GLOBAL_WINDOWS_TUPLE),)


class _BatchPerWindow(DoFn):
    """Batches per window; at most ``MAX_LIVE_WINDOWS`` open batches (the largest goes first)."""

    MAX_LIVE_WINDOWS = 10

    def __init__(self, sizer: _BatchSizer, bucket: _Bucketer | None = None) -> None:
        self.sizer = sizer
        self.bucket = bucket
        self._batches: dict[Any, _SizedBatch] = {}

    def start_bundle(self) -> None:
        self._batches = {}

    def process(self, x: Any, window: Any = DoFn.WindowParam) -> Iterable[Any] | None:
        batches = self._batches
        slot = window if self.bucket is None else (window, self.bucket(x))
        batch = batches.get(slot)
        if batch is None:
            batch = batches[slot] = _SizedBatch()
        batch.elements.append(x)
        sizer = self.sizer
        batch.size += 1 if sizer.size_fn is None else sizer.size_fn(x)
        if batch.size >= sizer.target:
            del batches[slot]
            sizer.grow()
            return (_in_window(batch, window),)
        if len(batches) > self.MAX_LIVE_WINDOWS:
            s, largest = max(batches.items(), key=lambda item: item[1].size)
            del batches[s]
            return (_in_window(largest, s if self.bucket is None else s[0]),)
        return None

    def finish_bundle(self) -> Iterable[Any] | None:
        batches, self._batches = self._batches, {}
        if self.bucket is not None:
            return [_in_window(b, s[0]) for s, b in batches.items()]
        return [_in_window(b, w) for w, b in batches.items()]


def _in_window(batch: _SizedBatch, window: Any) -> WindowedValue:
    return WindowedValue(batch.elements, window.max_timestamp_us(), (window,))


class BatchElements(PTransform):
    """Group elements into lists, for functions whose cost is mostly per call, not per element.

    Each output is a list of input elements of one window, stamped with the window's end (its
    ``max_timestamp()``). Batching happens within a bundle (one worker's share of a stage), so
    batches never span bundles, and the last batch of a bundle may be smaller than
    ``min_batch_size``. With ``element_size_fn``, sizes are sums of ``element_size_fn(element)``
    instead of element counts.

    Beam tunes batch sizes by timing the downstream work. headrace does not (outputs of a bundle
    are handed on after the bundle's elements are processed, so there is nothing to time): the
    target size starts at ``min_batch_size`` and doubles after every batch up to
    ``max_batch_size``. ``target_batch_overhead``, ``target_batch_duration_secs``, ``variance``,
    ``clock`` and ``record_metrics`` are accepted for compatibility and have no effect.

    ``max_batch_duration_secs`` selects Beam's stateful batching; in a bounded run a batch is then
    cut by size only. With it, ``length_fn`` (and ``bucket_boundaries``, default
    ``[16, 32, 64, 128, 256, 512]``) batches elements of similar length together: a batch holds
    elements of one length bucket (:class:`WithLengthBucketKey`'s buckets). Without
    ``max_batch_duration_secs``, ``length_fn`` is ignored, as in Beam.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create, Map
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     batches = p | Create(range(10)) | BatchElements(min_batch_size=4, max_batch_size=4)
    ...     assert_that(batches | Map(sorted), equal_to([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]))
    """

    def __init__(
        self,
        min_batch_size: int = 1,
        max_batch_size: int = 10000,
        target_batch_overhead: float | None = 0.05,
        target_batch_duration_secs: float | None = 10,
        target_batch_duration_secs_including_fixed_cost: float | None = None,
        max_batch_duration_secs: float | None = None,
        *,
        element_size_fn: Callable[[Any], int] | None = None,
        variance: float = 0.25,
        clock: Callable[[], float] | None = None,
        record_metrics: bool = True,
        length_fn: Callable[[Any], int] | None = None,
        bucket_boundaries: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        if bucket_boundaries is not None and length_fn is None:
            raise ValueError("bucket_boundaries requires length_fn to be set.")
        if bucket_boundaries is not None:
            _check_boundaries(bucket_boundaries)
        for name, value in (("min_batch_size", min_batch_size), ("max_batch_size", max_batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"BatchElements {name} must be a positive int, got {value!r}")
        if min_batch_size > max_batch_size:
            raise ValueError(
                f"BatchElements min_batch_size ({min_batch_size}) must not be greater than "
                f"max_batch_size ({max_batch_size})"
            )
        if element_size_fn is not None and not callable(element_size_fn):
            raise TypeError(
                f"BatchElements element_size_fn must be callable, got {element_size_fn!r}"
            )
        self.min_batch_size = min_batch_size
        self.max_batch_size = max_batch_size
        self.element_size_fn = element_size_fn
        self.max_batch_duration_secs = max_batch_duration_secs
        self._length_fn = length_fn
        self._bucket_boundaries: list[int] | None = None
        if bucket_boundaries is not None:
            self._bucket_boundaries = list(bucket_boundaries)
        elif length_fn is not None:
            self._bucket_boundaries = list(DEFAULT_BUCKET_BOUNDARIES)

    def expand(self, pcoll: PCollection) -> PCollection:
        if not isinstance(pcoll, PCollection):
            raise TypeError(f"{self.label!r} must be applied to a PCollection, not {pcoll!r}")
        if not pcoll.is_bounded:
            raise NotImplementedError(
                f"{self.label!r}: BatchElements on an unbounded PCollection needs stateful "
                "processing, which headrace does not run yet; use it on bounded input"
            )
        sizer = _BatchSizer(self.min_batch_size, self.max_batch_size, self.element_size_fn)
        if self.max_batch_duration_secs is not None and self._length_fn is not None:
            assert self._bucket_boundaries is not None
            bucket = _Bucketer(self._length_fn, self._bucket_boundaries)
            return pcoll | "Batch" >> ParDo(_BatchPerWindow(sizer, bucket))
        if pcoll.windowing.is_global:
            dofn: DoFn = _BatchGlobalWindow(sizer)
        else:
            dofn = _BatchPerWindow(sizer)
        return pcoll | "Batch" >> ParDo(dofn)


# -- SortAndBatchElements -------------------------------------------------------------------------


class _SortAndBatch(DoFn):
    """Buffers a bundle per window, sorts it by size and cuts it into batches at the end.

    A batch closes before an element that would make it hold more than ``max_batch_size``
    elements, or reach ``max_batch_weight`` (Beam's ``>=``; a batch always takes one element).
    At most ``MAX_LIVE_WINDOWS`` windows are buffered; beyond that the largest is flushed.
    """

    MAX_LIVE_WINDOWS = 10

    def __init__(
        self, max_batch_size: int, max_batch_weight: int, size_fn: Callable[[Any], int] | None
    ) -> None:
        self.max_batch_size = max_batch_size
        self.max_batch_weight = max_batch_weight
        self.size_fn = size_fn
        self._warned = False
        self._buffers: dict[Any, list[Any]] = {}

    def _size(self, x: Any) -> int:
        if self.size_fn is not None:
            return self.size_fn(x)
        try:
            return len(x)
        except TypeError:
            if not self._warned:
                _LOG.warning(
                    "Element of type %s does not support len(). Falling back to size 1. "
                    "Consider providing a custom element_size_fn to SortAndBatchElements.",
                    type(x).__name__,
                )
                self._warned = True
            return 1

    def start_bundle(self) -> None:
        self._buffers = {}

    def process(self, x: Any, window: Any = DoFn.WindowParam) -> Iterable[Any] | None:
        buffers = self._buffers
        buffer = buffers.get(window)
        if buffer is None:
            buffer = buffers[window] = []
        buffer.append(x)
        if len(buffers) > self.MAX_LIVE_WINDOWS:
            largest = max(buffers, key=lambda w: len(buffers[w]))
            return self._flush(largest, buffers.pop(largest))
        return None

    def _flush(self, window: Any, buffer: list[Any]) -> list[WindowedValue]:
        size = self._size
        out: list[WindowedValue] = []
        batch: list[Any] = []
        weight = 0
        stamp, windows = window.max_timestamp_us(), (window,)
        for x in sorted(buffer, key=size):
            s = size(x)
            full = len(batch) >= self.max_batch_size
            if full or (batch and weight + s >= self.max_batch_weight):
                out.append(WindowedValue(batch, stamp, windows))
                batch, weight = [], 0
            batch.append(x)
            weight += s
        if batch:
            out.append(WindowedValue(batch, stamp, windows))
        return out

    def finish_bundle(self) -> Iterable[Any] | None:
        buffers, self._buffers = self._buffers, {}
        out: list[WindowedValue] = []
        for window, buffer in buffers.items():
            out.extend(self._flush(window, buffer))
        return out


class SortAndBatchElements(PTransform):
    """Batch elements after sorting a bundle by size, so that batches hold similar sizes.

    Beam's transform for padding-sensitive work (model inference over sequences): all elements
    of a bundle are buffered per window, sorted by ``element_size_fn`` (default ``len``, or 1
    for elements without a length), then cut into batches of at most ``max_batch_size``
    elements whose total size stays below ``max_batch_weight``. Each batch is a list of one
    window's elements, stamped with the window's end.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     words = p | Create(["ccc", "a", "dddd", "bb"])
    ...     batches = words | SortAndBatchElements(1, 2, 100)
    ...     assert_that(batches, equal_to([["a", "bb"], ["ccc", "dddd"]]))
    """

    def __init__(
        self,
        min_batch_size: int,
        max_batch_size: int,
        max_batch_weight: int,
        element_size_fn: Callable[[Any], int] | None = None,
    ) -> None:
        super().__init__()
        if min_batch_size < 1:
            raise ValueError(f"min_batch_size must be >= 1, got {min_batch_size}")
        if max_batch_size < min_batch_size:
            raise ValueError(
                f"max_batch_size ({max_batch_size}) must be >= min_batch_size ({min_batch_size})"
            )
        if max_batch_weight < 1:
            raise ValueError(f"max_batch_weight must be >= 1, got {max_batch_weight}")
        if element_size_fn is not None and not callable(element_size_fn):
            raise TypeError("element_size_fn must be callable")
        self._min_batch_size = min_batch_size
        self._max_batch_size = max_batch_size
        self._max_batch_weight = max_batch_weight
        self._element_size_fn = element_size_fn

    def expand(self, pcoll: PCollection) -> PCollection:
        dofn = _SortAndBatch(self._max_batch_size, self._max_batch_weight, self._element_size_fn)
        return pcoll | "SortAndBatch" >> ParDo(dofn)


# -- GroupIntoBatches -----------------------------------------------------------------------------


class ShardedKey:
    """A user key with an opaque shard id (Beam's ``apache_beam.utils.sharded_key``).

    >>> ShardedKey("user", b"1") == ShardedKey("user", b"1"), ShardedKey("user", b"1").key
    (True, 'user')
    """

    __slots__ = ("_key", "_shard_id")

    def __init__(self, key: Any, shard_id: bytes) -> None:
        if shard_id is None:
            raise ValueError("ShardedKey needs a shard_id")
        self._key = key
        self._shard_id = shard_id

    @property
    def key(self) -> Any:
        return self._key

    def __repr__(self) -> str:
        return f"({self._key!r}, {self._shard_id!r})"

    def __eq__(self, other: object) -> bool:
        return (
            type(self) is type(other)
            and self._key == other._key
            and self._shard_id == other._shard_id
        )

    def __hash__(self) -> int:
        return hash((self._key, self._shard_id))

    def __reduce__(self) -> tuple[Any, ...]:
        return (ShardedKey, (self._key, self._shard_id))


class _SplitIntoBatches:
    """``(key, values)`` as ``(key, batch)`` pairs of at most ``size`` values, in order."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, kv: tuple[Any, Iterable[Any]]) -> Iterable[tuple[Any, list[Any]]]:
        key, values = kv
        values = list(values)
        size = self.size
        return [(key, values[i : i + size]) for i in range(0, len(values), size)]


class _ShardKey:
    def __init__(self, shard_id: bytes) -> None:
        self.shard_id = shard_id

    def __call__(self, kv: tuple[Any, Any]) -> tuple[ShardedKey, Any]:
        return (ShardedKey(kv[0], self.shard_id), kv[1])


def _check_batch_params(batch_size: Any, max_buffering_duration_secs: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive value, got {batch_size!r}")
    if max_buffering_duration_secs is not None and max_buffering_duration_secs < 0:
        raise ValueError(
            "max_buffering_duration must be a non-negative value, got "
            f"{max_buffering_duration_secs!r}"
        )


class GroupIntoBatches(PTransform):
    """Batch the values of each key (and window) into lists of at most ``batch_size``.

    The output is ``(key, [values])``; values keep their arrival order within a key. Beam runs
    this as a stateful DoFn that flushes when a batch is full, at the end of the window, or after
    ``max_buffering_duration_secs``; in a bounded run only the size matters, and headrace groups
    the key's values, then cuts them. Batches are stamped with the end of their window.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create, Map
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     pairs = p | Create([("a", i) for i in range(5)])
    ...     sizes = pairs | GroupIntoBatches(2) | Map(lambda kv: (kv[0], len(kv[1])))
    ...     assert_that(sizes, equal_to([("a", 2), ("a", 2), ("a", 1)]))
    """

    def __init__(
        self,
        batch_size: int,
        max_buffering_duration_secs: float | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__()
        _check_batch_params(batch_size, max_buffering_duration_secs)
        self.batch_size = batch_size
        self.max_buffering_duration_secs = max_buffering_duration_secs

    def expand(self, pcoll: PCollection) -> PCollection:
        grouped = pcoll | "GroupByKey" >> GroupByKey()
        return grouped | "Split" >> FlatMap(_SplitIntoBatches(self.batch_size))

    class WithShardedKey(PTransform):
        """GroupIntoBatches with the key wrapped as ``ShardedKey(key, shard_id)`` in the output.

        Beam shards a key by worker and thread; here the shard id is one per transform, so each
        key has one shard (Beam's sharding is an optimisation, its batches are the same).
        """

        def __init__(
            self,
            batch_size: int,
            max_buffering_duration_secs: float | None = None,
            clock: Callable[[], float] | None = None,
        ) -> None:
            super().__init__()
            _check_batch_params(batch_size, max_buffering_duration_secs)
            self.batch_size = batch_size
            self.max_buffering_duration_secs = max_buffering_duration_secs
            self._shard_id = uuid.uuid4().bytes

        def expand(self, pcoll: PCollection) -> PCollection:
            sharded = pcoll | "ShardKeys" >> Map(_ShardKey(self._shard_id))
            return sharded | GroupIntoBatches(self.batch_size, self.max_buffering_duration_secs)
