"""Approximate statistics: ``ApproximateQuantiles`` and ``ApproximateUnique`` (Beam's
``apache_beam.transforms.stats``).

Both are composites of ``CombineGlobally`` / ``CombinePerKey`` over a CombineFn defined here, so
the planner lifts them like any other combine.

**Quantiles** follow the "New Algorithm" of Manku, Rajagopalan and Lindsay (*Approximate Medians
and other Quantiles in One Pass and with Limited Memory*, SIGMOD 1998), sized as Beam sizes it:
for an error bound ``epsilon`` (default ``1 / num_quantiles``; ``min(0.01, 1 / num_quantiles)``
when weighted) over at most ``max_num_elements`` inputs (default 10⁹), ``b`` buffers of ``k``
elements each, where ``b`` is the largest value with ``(b - 2) * 2**(b - 2) < epsilon * N`` plus
one and ``k = max(2, ceil(N / 2**(b - 1)))``. Elements are gathered into sorted buffers of ``k``;
when more than ``b`` buffers exist, the lowest-level ones are *collapsed* into one buffer of
``k`` elements picked at evenly spaced weighted ranks (for an even total weight the rank offset
alternates between rounding up and down, per CombineFn instance, as in the paper). The output
is the minimum, ``num_quantiles - 2`` elements at evenly spaced ranks of the weighted union of
the buffers, and the maximum: the same elements Beam picks for the same buffers, so results
match Beam's exactly wherever no collapse happened (fewer than ``b * k`` elements, e.g. 1,500
elements for 5 quantiles). After collapses, which buffers meet depends on how the runner split
the input into bundles, in Beam as here, so only the error bound is shared.

**Unique counts** keep the ``size`` largest distinct 64-bit hashes of the elements' encodings
(the first 8 bytes of their MD5 digest, as Beam does without ``mmh3``) and estimate the number
of distinct values from the density of that sample; below ``size`` distinct hashes the count is
exact. The estimate's relative error is about ``2 / sqrt(size)``. headrace's coders do not write
Beam's bytes, so the hashes and hence the estimates differ from Beam's, within the same bound.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from headrace.model.coder_registry import registry as _coder_registry
from headrace.model.coders import Coder
from headrace.model.pvalue import PCollection
from headrace.model.transforms.core import CombineGlobally, CombinePerKey
from headrace.model.transforms.dofn import CombineFn
from headrace.model.transforms.ptransform import PTransform
from headrace.model.typehints import key_value_types, kv_of, list_of, typed

__all__ = [
    "ApproximateQuantiles",
    "ApproximateQuantilesCombineFn",
    "ApproximateUnique",
    "ApproximateUniqueCombineFn",
]


# -- ApproximateUnique ----------------------------------------------------------------------------


def _hash64(data: bytes) -> int:
    """An unsigned 64-bit hash of ``data``: the first 8 bytes of its MD5 digest."""
    return int.from_bytes(hashlib.md5(data, usedforsecurity=False).digest()[:8], "big")


class _HashSample:
    """The ``size`` largest distinct hashes seen (the accumulator of ApproximateUnique)."""

    __slots__ = ("heap", "members", "size")

    HASH_SPACE = 2.0**64

    def __init__(self, size: int) -> None:
        self.size = size
        self.heap: list[int] = []  # a min-heap: heap[0] is the smallest hash kept
        self.members: set[int] = set()

    def __getstate__(self) -> tuple[int, list[int]]:
        return (self.size, self.heap)

    def __setstate__(self, state: tuple[int, list[int]]) -> None:
        self.size, self.heap = state
        self.members = set(self.heap)

    def add(self, h: int) -> None:
        if h in self.members:
            return
        if len(self.heap) < self.size:
            heapq.heappush(self.heap, h)
            self.members.add(h)
        elif h > self.heap[0]:
            dropped = heapq.heapreplace(self.heap, h)
            self.members.discard(dropped)
            self.members.add(h)

    def estimate(self) -> int:
        """The number of distinct hashes, extrapolated from the sample's density when full.

        With ``s`` hashes kept, the smallest being ``m``, the sample covers a fraction
        ``(2**64 - m) / 2**64`` of the hash space; the estimate corrects that proportion for
        collisions: ``log(1 - s/space) / log(1 - 1/space) * 2**64 / space``.
        """
        if len(self.heap) < self.size:
            return len(self.heap)
        space = self.HASH_SPACE - float(self.heap[0])
        estimate = math.log1p(-self.size / space) / math.log1p(-1 / space) * self.HASH_SPACE / space
        return round(estimate)


class ApproximateUniqueCombineFn(CombineFn):
    """Estimates the number of distinct inputs from a sample of ``sample_size`` hashes of their
    encodings by ``coder`` (which must be deterministic, or have a deterministic variant).

    >>> fn = ApproximateUniqueCombineFn(16, coder=_coder_registry.get_coder(int))
    >>> fn.apply([1, 2, 2, 3]), 900 <= fn.apply(range(1000)) <= 1100
    (3, True)
    """

    def __init__(self, sample_size: int, coder: Coder) -> None:
        self._sample_size = sample_size
        self._coder = _coder_registry.verify_deterministic(coder, "ApproximateUniqueCombineFn")

    def create_accumulator(self, *args: Any, **kwargs: Any) -> _HashSample:
        return _HashSample(self._sample_size)

    def add_input(self, accumulator: _HashSample, element: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            encoded = self._coder.encode(element)
        except Exception as exc:
            raise RuntimeError(
                f"Runtime exception: ApproximateUnique cannot encode {element!r} with "
                f"{self._coder!r} to hash it: {exc}"
            ) from exc
        accumulator.add(_hash64(encoded))
        return accumulator

    def merge_accumulators(
        self, accumulators: Iterable[_HashSample], *args: Any, **kwargs: Any
    ) -> _HashSample:
        merged = self.create_accumulator()
        for accumulator in accumulators:
            for h in accumulator.heap:
                merged.add(h)
        return merged

    def extract_output(self, accumulator: _HashSample, *args: Any, **kwargs: Any) -> int:
        return accumulator.estimate()

    def display_data(self) -> dict[str, Any]:
        return {"sample_size": self._sample_size}


def _element_coder(hint: Any) -> Coder:
    return _coder_registry.get_coder(Any if hint is None else hint)


class ApproximateUnique:
    """Estimate the number of distinct elements: ``Globally`` and ``PerKey``.

    Give exactly one of ``size`` (the number of hashes sampled, at least 16) or ``error`` (the
    wanted relative error, 0.01 to 0.5; the sample size is then ``ceil(4 / error**2)``). The
    estimate's relative error is about ``2 / sqrt(size)``; inputs with fewer distinct values
    than ``size`` are counted exactly. Elements are hashed through their coder (from the input's
    element type), which must encode equal values to equal bytes: values that are not
    primitives or containers of primitives need a type hint with a deterministic coder.
    """

    _NO_VALUE_ERR_MSG = "ApproximateUnique needs either size or error, and got neither."
    _MULTI_VALUE_ERR_MSG = (
        "ApproximateUnique needs either size or error, not both: got size = %s and error = %s."
    )
    _INPUT_SIZE_ERR_MSG = (
        "ApproximateUnique needs an integer size of at least 16 (the relative error is about "
        "2 / sqrt(size), so 16 gives 0.5), got size = %s."
    )
    _INPUT_ERROR_ERR_MSG = (
        "ApproximateUnique needs an error between 0.01 and 0.50 (the relative estimation "
        "error), got error = %s."
    )

    @staticmethod
    def parse_input_params(size: int | None = None, error: float | None = None) -> int:
        """The sample size for ``size`` or ``error`` (exactly one of them); ``ValueError`` when
        both, neither or an out-of-range value is given.

        >>> ApproximateUnique.parse_input_params(size=20), ApproximateUnique.parse_input_params(
        ...     error=0.1)
        (20, 400)
        """
        if size is not None and error is not None:
            raise ValueError(ApproximateUnique._MULTI_VALUE_ERR_MSG % (size, error))
        if size is None and error is None:
            raise ValueError(ApproximateUnique._NO_VALUE_ERR_MSG)
        if size is not None:
            if isinstance(size, bool) or not isinstance(size, int) or size < 16:
                raise ValueError(ApproximateUnique._INPUT_SIZE_ERR_MSG % (size,))
            return size
        assert error is not None
        if not 0.01 <= error <= 0.5:
            raise ValueError(ApproximateUnique._INPUT_ERROR_ERR_MSG % (error,))
        return ApproximateUnique._get_sample_size_from_est_error(error)

    @staticmethod
    def _get_sample_size_from_est_error(est_err: float) -> int:
        """The sample size whose estimation error is about ``est_err``: ``ceil(4 / est_err**2)``."""
        return math.ceil(4.0 / math.pow(est_err, 2.0))

    class Globally(PTransform):
        """The approximate number of distinct elements (one integer).

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create, Map
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     estimate = p | Create(list(range(1000)) * 2) | ApproximateUnique.Globally(size=64)
        ...     close = estimate | Map(lambda n: abs(n - 1000) / 1000 <= 2 / 64**0.5)
        ...     assert_that(close, equal_to([True]))
        """

        def __init__(self, size: int | None = None, error: float | None = None) -> None:
            super().__init__()
            self._sample_size = ApproximateUnique.parse_input_params(size, error)

        def display_data(self) -> dict[str, Any]:
            return {"sample_size": self._sample_size}

        def expand(self, pcoll: PCollection) -> PCollection:
            coder = _element_coder(pcoll.element_type)
            estimate = pcoll | "CountGlobalUniqueValues" >> CombineGlobally(
                ApproximateUniqueCombineFn(self._sample_size, coder)
            )
            return typed(estimate, int)

    class PerKey(PTransform):
        """``(key, approximate number of distinct values)`` for each key.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     pairs = [("a", 1), ("a", 2), ("a", 1), ("b", 7)]
        ...     counts = p | Create(pairs) | ApproximateUnique.PerKey(size=16)
        ...     assert_that(counts, equal_to([("a", 2), ("b", 1)]))
        """

        def __init__(self, size: int | None = None, error: float | None = None) -> None:
            super().__init__()
            self._sample_size = ApproximateUnique.parse_input_params(size, error)

        def display_data(self) -> dict[str, Any]:
            return {"sample_size": self._sample_size}

        def expand(self, pcoll: PCollection) -> PCollection:
            key, value = key_value_types(pcoll.element_type)
            coder = _element_coder(value)
            estimates = pcoll | "CountPerKeyUniqueValues" >> CombinePerKey(
                ApproximateUniqueCombineFn(self._sample_size, coder)
            )
            return typed(estimates, kv_of(key, int))


# -- ApproximateQuantiles -------------------------------------------------------------------------


class _QuantileSpec:
    """How quantiles are computed: buffer size ``k``, number of buffers ``b``, and the order."""

    def __init__(
        self,
        buffer_size: int,
        num_buffers: int,
        weighted: bool,
        key: Callable[[Any], Any] | None,
        reverse: bool,
    ) -> None:
        self.buffer_size = buffer_size
        self.num_buffers = num_buffers
        self.weighted = weighted
        self.key = key
        self.reverse = reverse

    def before(self, a: Any, b: Any) -> bool:
        """Whether ``a`` comes strictly before ``b`` in the output order."""
        ka, kb = (a, b) if self.key is None else (self.key(a), self.key(b))
        return bool(ka > kb) if self.reverse else bool(ka < kb)

    def sorted_values(self, values: Sequence[Any]) -> list[Any]:
        return sorted(values, key=self.key, reverse=self.reverse)

    def sorted_order(self, values: Sequence[Any], start: int, stop: int) -> list[int]:
        """The indexes ``start..stop-1`` of ``values`` in the output order of their values."""
        key = self.key
        by: Callable[[int], Any] = values.__getitem__ if key is None else (lambda i: key(values[i]))
        return sorted(range(start, stop), key=by, reverse=self.reverse)

    def sorted_pairs(self, pairs: Iterable[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
        """``(value, weight)`` pairs in output order (whole pairs compared when no key)."""
        key = self.key
        if key is None:
            return sorted(pairs, reverse=self.reverse)
        return sorted(pairs, key=lambda pair: key(pair[0]), reverse=self.reverse)


class _QuantileBuffer:
    """A sorted buffer of the algorithm. Unweighted: ``weights`` is ``[w]``, the weight of each
    element; weighted: one weight per element. ``lo``/``hi`` are the first and last values in
    output order of everything the buffer summarises (a collapsed buffer may not hold them)."""

    __slots__ = ("hi", "level", "lo", "values", "weights")

    def __init__(
        self,
        values: list[Any],
        weights: list[Any],
        level: int = 0,
        bounds: tuple[Any, Any] | None = None,
    ) -> None:
        self.values = values
        self.weights = weights
        self.level = level
        self.lo, self.hi = bounds if bounds is not None else (values[0], values[-1])

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.values, self.weights, self.level, self.lo, self.hi)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.values, self.weights, self.level, self.lo, self.hi = state

    def __lt__(self, other: _QuantileBuffer) -> bool:
        return self.level < other.level

    def pairs(self, weighted: bool) -> Iterator[tuple[Any, Any]]:
        weights = self.weights if weighted else itertools.repeat(self.weights[0])
        return zip(self.values, weights)

    def total_weight(self, weighted: bool) -> Any:
        return sum(self.weights) if weighted else len(self.values) * self.weights[0]


class _QuantileState:
    """The accumulator: full buffers (a heap by level) and the elements not yet in one."""

    __slots__ = ("buffers", "pending", "pending_weights")

    def __init__(self) -> None:
        self.buffers: list[_QuantileBuffer] = []
        self.pending: list[Any] = []
        self.pending_weights: list[Any] = []

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.buffers, self.pending, self.pending_weights)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.buffers, self.pending, self.pending_weights = state

    def is_empty(self) -> bool:
        return not self.pending and not self.buffers


def _add(
    state: _QuantileState,
    spec: _QuantileSpec,
    values: Sequence[Any],
    weights: Sequence[Any] | None,
    rank_offset: Callable[[Any], float],
) -> None:
    """Add elements (with their weights when weighted), cutting every ``k`` pending elements
    into a sorted buffer, then collapse while there are too many buffers."""
    k = spec.buffer_size
    state.pending.extend(values)
    if spec.weighted:
        assert weights is not None
        state.pending_weights.extend(weights)
    full = len(state.pending) // k
    for n in range(full):
        if spec.weighted:
            order = spec.sorted_order(state.pending, n * k, (n + 1) * k)
            buffer = _QuantileBuffer(
                [state.pending[i] for i in order], [state.pending_weights[i] for i in order]
            )
        else:
            buffer = _QuantileBuffer(spec.sorted_values(state.pending[n * k : (n + 1) * k]), [1])
        heapq.heappush(state.buffers, buffer)
    if full:
        del state.pending[: full * k]
        if spec.weighted:
            del state.pending_weights[: full * k]
    _collapse_if_needed(state, spec, rank_offset)


def _collapse_if_needed(
    state: _QuantileState, spec: _QuantileSpec, rank_offset: Callable[[Any], float]
) -> None:
    """While there are more than ``b`` buffers, collapse the two of lowest level together with
    every other buffer at or below the level of the second."""
    heap = state.buffers
    while len(heap) > spec.num_buffers:
        group = [heapq.heappop(heap), heapq.heappop(heap)]
        level = group[1].level
        while heap and heap[0].level <= level:
            group.append(heapq.heappop(heap))
        heapq.heappush(heap, _collapse(group, spec, rank_offset))


def _collapse(
    group: list[_QuantileBuffer], spec: _QuantileSpec, rank_offset: Callable[[Any], float]
) -> _QuantileBuffer:
    """One buffer of ``k`` elements at evenly spaced weighted ranks of the group's union, one
    level above the highest of the group (buffers merged from other shards may differ)."""
    level = max(buffer.level for buffer in group) + 1
    total: Any = 0
    for buffer in group:
        total = total + sum(buffer.weights)
    k = spec.buffer_size
    if spec.weighted:
        step, offset = total / (k - 1), total / (2 * k)
    else:
        step, offset = total, rank_offset(total)
    values, weights, bounds = _pick(group, k, step, offset, spec)
    return _QuantileBuffer(values, weights if spec.weighted else [total], level, bounds)


def _pick(
    buffers: list[_QuantileBuffer], count: int, step: float, offset: float, spec: _QuantileSpec
) -> tuple[list[Any], list[Any], tuple[Any, Any]]:
    """The elements at weighted ranks ``offset + j * step`` (``0 <= j < count``) of the sorted
    union of ``buffers``, each element repeated as often as its weight says; with their weights
    (the weight between consecutive picks) when weighted; and the union's first and last value.
    """
    lo, hi = buffers[0].lo, buffers[0].hi
    for buffer in buffers:
        if spec.before(buffer.lo, lo):
            lo = buffer.lo
        if spec.before(hi, buffer.hi):
            hi = buffer.hi
    union = spec.sorted_pairs(
        itertools.chain.from_iterable(buffer.pairs(spec.weighted) for buffer in buffers)
    )
    if not spec.weighted:
        weight = buffers[0].weights[0]
        if all(buffer.weights[0] == weight for buffer in buffers):
            # Every element counts ``weight`` times: the ranks map straight onto indexes.
            last = len(union) - 1
            index_step, index_offset = step / weight, offset / weight
            picked = [union[min(int(j * index_step + index_offset), last)][0] for j in range(count)]
            return picked, [], (lo, hi)
    values: list[Any] = []
    weights: list[Any] = []
    position = 0
    current_value, reached = union[0]
    previous = 0
    for j in range(count):
        target = j * step + offset
        while reached <= target and position + 1 < len(union):
            position += 1
            current_value, weight = union[position]
            reached += weight
        values.append(current_value)
        if spec.weighted:
            weights.append(reached - previous)
            previous = reached
    return values, weights, (lo, hi)


class ApproximateQuantilesCombineFn(CombineFn):
    """Approximate ``num_quantiles``-tiles: the minimum, ``num_quantiles - 2`` evenly spaced
    intermediate elements and the maximum, in the order of ``key`` (natural order without one;
    largest first with ``reverse``). Fewer inputs than quantiles give repeated elements; no input
    gives ``[]``. With ``weighted`` each input is ``(value, weight)``; with ``input_batched`` each
    input is a list of values (weighted: a pair ``(values, weights)`` of lists).

    ``buffer_size`` (``k``) and ``num_buffers`` (``b``) size the summary; :meth:`create` derives
    them from an error bound. See the module docstring for the algorithm.

    >>> fn = ApproximateQuantilesCombineFn.create(num_quantiles=5)
    >>> fn.apply(range(101))
    [0, 25, 50, 75, 100]
    >>> (fn._spec.num_buffers, fn._spec.buffer_size)
    (25, 60)
    """

    #: The input size assumed when sizing the summary without ``max_num_elements``.
    _MAX_NUM_ELEMENTS = 1e9

    def __init__(
        self,
        num_quantiles: int,
        buffer_size: int,
        num_buffers: int,
        key: Callable[[Any], Any] | None = None,
        reverse: bool = False,
        weighted: bool = False,
        input_batched: bool = False,
    ) -> None:
        if isinstance(num_quantiles, bool) or not isinstance(num_quantiles, int):
            raise TypeError(
                f"ApproximateQuantiles needs an int num_quantiles, got {num_quantiles!r}"
            )
        if num_quantiles < 2:
            raise ValueError(
                "ApproximateQuantiles needs num_quantiles >= 2 (the output holds the minimum and "
                f"the maximum), got {num_quantiles}"
            )
        if buffer_size < 2 or num_buffers < 2:
            raise ValueError(
                "ApproximateQuantilesCombineFn needs buffer_size >= 2 and num_buffers >= 2, got "
                f"{buffer_size} and {num_buffers}"
            )
        self._num_quantiles = num_quantiles
        self._spec = _QuantileSpec(buffer_size, num_buffers, weighted, key, reverse)
        self._input_batched = input_batched
        # Alternates between 0 and 2 so that even-weight collapses round up and down in turn.
        self._offset_jitter = 0

    @classmethod
    def create(
        cls,
        num_quantiles: int,
        epsilon: float | None = None,
        max_num_elements: float | None = None,
        key: Callable[[Any], Any] | None = None,
        reverse: bool = False,
        weighted: bool = False,
        input_batched: bool = False,
    ) -> ApproximateQuantilesCombineFn:
        """A combiner whose rank error stays below ``epsilon * N`` for up to
        ``max_num_elements`` (``N``) inputs; see the module docstring for the sizing."""
        n = max_num_elements or cls._MAX_NUM_ELEMENTS
        if not epsilon:
            epsilon = min(1e-2, 1.0 / num_quantiles) if weighted else 1.0 / num_quantiles
        b = 2
        while (b - 2) * (1 << (b - 2)) < epsilon * n:
            b += 1
        b -= 1
        k = max(2, math.ceil(n / float(1 << (b - 1))))
        return cls(num_quantiles, k, b, key, reverse, weighted, input_batched)

    def _rank_offset(self, total_weight: Any) -> float:
        """The rank of the first pick when collapsing buffers of total weight ``total_weight``:
        the middle for an odd weight; for an even one, alternately just above and at it."""
        if total_weight % 2 == 1:
            return (total_weight + 1) / 2
        self._offset_jitter = 2 - self._offset_jitter
        return (total_weight + self._offset_jitter) / 2

    def create_accumulator(self, *args: Any, **kwargs: Any) -> _QuantileState:
        return _QuantileState()

    def add_input(
        self, accumulator: _QuantileState, element: Any, *args: Any, **kwargs: Any
    ) -> Any:
        spec = self._spec
        if self._input_batched:
            if spec.weighted:
                values, weights = _weighted_batch(element)
            else:
                values, weights = list(element), None
            if not values:
                return accumulator
        elif spec.weighted:
            value, weight = _weighted_element(element)
            values, weights = [value], [weight]
        else:
            values, weights = [element], None
        _add(accumulator, spec, values, weights, self._rank_offset)
        return accumulator

    def merge_accumulators(
        self, accumulators: Iterable[_QuantileState], *args: Any, **kwargs: Any
    ) -> _QuantileState:
        merged = _QuantileState()
        for accumulator in accumulators:
            if accumulator.is_empty():
                continue
            weights = accumulator.pending_weights if self._spec.weighted else None
            _add(merged, self._spec, accumulator.pending, weights, self._rank_offset)
            merged.buffers.extend(accumulator.buffers)
        heapq.heapify(merged.buffers)
        _collapse_if_needed(merged, self._spec, self._rank_offset)
        return merged

    def extract_output(self, accumulator: _QuantileState, *args: Any, **kwargs: Any) -> list[Any]:
        if accumulator.is_empty():
            return []
        spec = self._spec
        buffers = list(accumulator.buffers)
        if accumulator.pending:
            # The last, partly filled buffer; the accumulator itself stays as it is.
            if spec.weighted:
                order = spec.sorted_order(accumulator.pending, 0, len(accumulator.pending))
                buffers.append(
                    _QuantileBuffer(
                        [accumulator.pending[i] for i in order],
                        [accumulator.pending_weights[i] for i in order],
                    )
                )
            else:
                buffers.append(_QuantileBuffer(spec.sorted_values(accumulator.pending), [1]))
        total: Any = 0
        for buffer in buffers:
            total += buffer.total_weight(spec.weighted)
        step = total / (self._num_quantiles - 1)
        offset = (total - 1) / (self._num_quantiles - 1)
        inner, _, (lo, hi) = _pick(buffers, self._num_quantiles - 2, step, offset, spec)
        return [lo, *inner, hi]

    def display_data(self) -> dict[str, Any]:
        return _quantiles_display_data(
            self._num_quantiles,
            self._spec.key,
            self._spec.reverse,
            self._spec.weighted,
            self._input_batched,
        )


def _weighted_element(element: Any) -> tuple[Any, Any]:
    try:
        value, weight = element
    except (TypeError, ValueError):
        raise TypeError(
            f"ApproximateQuantiles with weighted=True needs (value, weight) pairs, got {element!r}"
        ) from None
    return value, weight


def _weighted_batch(element: Any) -> tuple[list[Any], list[Any]]:
    try:
        values, weights = element
        values, weights = list(values), list(weights)
    except (TypeError, ValueError):
        raise TypeError(
            "ApproximateQuantiles with weighted=True and input_batched=True needs batches "
            f"(values, weights) of two lists, got {element!r}"
        ) from None
    if len(values) != len(weights):
        raise ValueError(
            "ApproximateQuantiles with weighted=True and input_batched=True got a batch with "
            f"{len(values)} values but {len(weights)} weights"
        )
    return values, weights


def _quantiles_display_data(
    num_quantiles: int, key: Any, reverse: bool, weighted: bool, input_batched: bool
) -> dict[str, Any]:
    return {
        "num_quantiles": num_quantiles,
        "key": getattr(key, "__name__", type(key).__name__),
        "reverse": str(reverse),
        "weighted": str(weighted),
        "input_batched": str(input_batched),
    }


class ApproximateQuantiles:
    """Approximate N-tiles (quartiles, percentiles...) of a collection: ``Globally`` and
    ``PerKey``. Arguments of both:

    * ``num_quantiles``: the length of each output list, minimum and maximum included (``5``
      gives quartiles);
    * ``key``: maps an element to what it is ordered by, as in ``sorted``;
    * ``reverse``: order largest first;
    * ``weighted``: inputs are ``(value, weight)`` pairs, and ranks count weights;
    * ``input_batched``: each input is a list of elements (weighted: ``(values, weights)``).

    The computation is :class:`ApproximateQuantilesCombineFn` with its default error bound
    ``1 / num_quantiles`` (weighted: ``min(0.01, 1 / num_quantiles)``).
    """

    class Globally(PTransform):
        """One list: the approximate ``num_quantiles``-tiles of all elements.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     numbers = p | Create(list(range(101)))
        ...     quartiles = numbers | "Quartiles" >> ApproximateQuantiles.Globally(5)
        ...     assert_that(quartiles, equal_to([[0, 25, 50, 75, 100]]))
        ...     pairs = [(i, 1 if i < 10 else 1e-5) for i in range(101)]
        ...     weighted = p | "Weighted" >> Create(pairs)
        ...     low = weighted | "Low" >> ApproximateQuantiles.Globally(5, weighted=True)
        ...     assert_that(low, equal_to([[0, 2, 4, 7, 100]]), label="CheckLow")
        """

        def __init__(
            self,
            num_quantiles: int,
            key: Callable[[Any], Any] | None = None,
            reverse: bool = False,
            weighted: bool = False,
            input_batched: bool = False,
        ) -> None:
            super().__init__()
            self._num_quantiles = num_quantiles
            self._key = key
            self._reverse = reverse
            self._weighted = weighted
            self._input_batched = input_batched
            self._combine_fn = ApproximateQuantilesCombineFn.create(
                num_quantiles,
                key=key,
                reverse=reverse,
                weighted=weighted,
                input_batched=input_batched,
            )

        def expand(self, pcoll: PCollection) -> PCollection:
            element = None if self._weighted or self._input_batched else pcoll.element_type
            return typed(pcoll | CombineGlobally(self._combine_fn), list_of(element))

        def display_data(self) -> dict[str, Any]:
            return _quantiles_display_data(
                self._num_quantiles, self._key, self._reverse, self._weighted, self._input_batched
            )

    class PerKey(PTransform):
        """``(key, list of the approximate num_quantiles-tiles of its values)`` for each key.

        >>> from headrace.model.pipeline import Pipeline
        >>> from headrace.model.transforms.core import Create
        >>> from headrace.testing.util import assert_that, equal_to
        >>> with Pipeline() as p:
        ...     pairs = p | Create([("a", 1), ("a", 2), ("a", 3), ("b", 10), ("b", 1)])
        ...     ranges = pairs | ApproximateQuantiles.PerKey(2)
        ...     assert_that(ranges, equal_to([("a", [1, 3]), ("b", [1, 10])]))
        """

        def __init__(
            self,
            num_quantiles: int,
            key: Callable[[Any], Any] | None = None,
            reverse: bool = False,
            weighted: bool = False,
            input_batched: bool = False,
        ) -> None:
            super().__init__()
            self._num_quantiles = num_quantiles
            self._key = key
            self._reverse = reverse
            self._weighted = weighted
            self._input_batched = input_batched
            self._combine_fn = ApproximateQuantilesCombineFn.create(
                num_quantiles,
                key=key,
                reverse=reverse,
                weighted=weighted,
                input_batched=input_batched,
            )

        def expand(self, pcoll: PCollection) -> PCollection:
            key, value = key_value_types(pcoll.element_type)
            if self._weighted or self._input_batched:
                value = None
            return typed(pcoll | CombinePerKey(self._combine_fn), kv_of(key, list_of(value)))

        def display_data(self) -> dict[str, Any]:
            return _quantiles_display_data(
                self._num_quantiles, self._key, self._reverse, self._weighted, self._input_batched
            )
