"""The plain values that name metrics and carry their results: keys, result data, updates.

Everything here is immutable or plain data that pickles cheaply, so it can cross processes:

* :class:`MetricName` and :class:`MetricKey` name a metric (and the step that updated it);
  :func:`namespace_of` turns a class or a string into a namespace string.
* :class:`DistributionData`/:class:`DistributionResult` and :class:`GaugeData`/
  :class:`GaugeResult` are the values a query returns.
* :class:`MetricUpdates` is what a worker sends back: metric values keyed by
  ``(step, namespace, name)`` as plain tuples, merged across workers and steps.

The objects users update and the containers runners fill live in :mod:`headrace.model.metrics`;
queries over merged updates live in :mod:`headrace.model.metricquery`. Both sit on this module,
so neither imports the other at run time.

>>> key = ("Parse", "demo", "rows")
>>> MetricUpdates(counters={key: 2}).merge(MetricUpdates(counters={key: 3}))
MetricUpdates(counters={('Parse', 'demo', 'rows'): 5}, distributions={}, gauges={})
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DistTuple",
    "DistributionData",
    "DistributionResult",
    "GaugeData",
    "GaugeResult",
    "GaugeTuple",
    "MetricKey",
    "MetricName",
    "MetricUpdates",
    "Number",
    "UpdateKey",
    "namespace_of",
]

Number = int | float
# (step, namespace, name): the key of one metric in MetricUpdates.
UpdateKey = tuple[str, str, str]


# --------------------------------------------------------------------------------------------
# Names and keys


@dataclass(frozen=True, slots=True)
class MetricName:
    """The namespace and name of a user metric; hashable and picklable."""

    namespace: str
    name: str

    def __post_init__(self) -> None:
        if not self.namespace or not isinstance(self.namespace, str):
            raise ValueError(
                f"Metric namespace must be a non-empty string, got {self.namespace!r} "
                f"(metric name {self.name!r}); pass a string or a class to Metrics.counter/"
                "distribution/gauge"
            )
        if not self.name or not isinstance(self.name, str):
            raise ValueError(
                f"Metric name must be a non-empty string, got {self.name!r} "
                f"(namespace {self.namespace!r})"
            )


def namespace_of(namespace: type | str) -> str:
    """The namespace string for a class (``"module.QualName"``) or a string (itself).

    >>> import collections
    >>> namespace_of(collections.OrderedDict), namespace_of("mine")
    ('collections.OrderedDict', 'mine')
    """
    if isinstance(namespace, str):
        return namespace
    if isinstance(namespace, type):
        return f"{namespace.__module__}.{namespace.__name__}"
    raise ValueError(
        f"Metric namespace must be a string or a class, got {namespace!r} "
        f"({type(namespace).__name__})"
    )


class MetricKey:
    """Identifies one metric of one step: ``.step`` (full step label), ``.metric``, ``.labels``."""

    __slots__ = ("labels", "metric", "step")

    def __init__(self, step: str, metric: MetricName, labels: dict[str, str] | None = None):
        self.step = step
        self.metric = metric
        self.labels: dict[str, str] = dict(labels) if labels else {}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetricKey):
            return NotImplemented
        return (
            self.step == other.step and self.metric == other.metric and self.labels == other.labels
        )

    def __hash__(self) -> int:
        return hash((self.step, self.metric, frozenset(self.labels.items())))

    def __repr__(self) -> str:
        return f"MetricKey(step={self.step!r}, metric={self.metric!r}, labels={self.labels!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return MetricKey, (self.step, self.metric, self.labels)


# --------------------------------------------------------------------------------------------
# Result values


@dataclass(frozen=True, slots=True)
class DistributionData:
    """Sum, count, min and max of the values a distribution received (Beam's argument order).

    ``min`` and ``max`` are ``None`` while ``count`` is 0.
    """

    sum: Number
    count: int
    min: Number | None
    max: Number | None

    def __post_init__(self) -> None:
        if not self.count:
            object.__setattr__(self, "min", None)
            object.__setattr__(self, "max", None)

    @property
    def mean(self) -> float | None:
        """``sum / count``, or ``None`` for an empty distribution."""
        return self.sum / self.count if self.count else None

    def combine(self, other: DistributionData) -> DistributionData:
        """The data of both distributions together."""
        mine = (self.sum, self.count, self.min, self.max)
        return DistributionData(
            *_combine_distribution(mine, (other.sum, other.count, other.min, other.max))
        )

    def get_result(self) -> DistributionResult:
        """Wrap this data as the value a query returns."""
        return DistributionResult(self)


@dataclass(frozen=True, slots=True, repr=False)
class DistributionResult:
    """What a query returns for a distribution: ``.count .sum .min .max .mean``."""

    data: DistributionData

    @property
    def count(self) -> int:
        """Number of values received."""
        return self.data.count

    @property
    def sum(self) -> Number:
        """Sum of the values received."""
        return self.data.sum

    @property
    def min(self) -> Number | None:
        """Smallest value received, ``None`` if none was."""
        return self.data.min

    @property
    def max(self) -> Number | None:
        """Largest value received, ``None`` if none was."""
        return self.data.max

    @property
    def mean(self) -> float | None:
        """Mean of the values received, ``None`` if none was."""
        return self.data.mean

    def __repr__(self) -> str:
        return (
            f"DistributionResult(sum={self.sum}, count={self.count}, min={self.min}, "
            f"max={self.max}, mean={self.mean})"
        )


@dataclass(frozen=True, slots=True)
class GaugeData:
    """The last value a gauge was set to and when (seconds since the epoch; 0 if unknown)."""

    value: Any
    timestamp: float = 0

    def __post_init__(self) -> None:
        if self.timestamp is None:  # Beam accepts GaugeData(value, None)
            object.__setattr__(self, "timestamp", 0)

    def combine(self, other: GaugeData) -> GaugeData:
        """The later of the two (``self`` on a tie)."""
        return other if other.timestamp > self.timestamp else self

    def get_result(self) -> GaugeResult:
        """Wrap this data as the value a query returns."""
        return GaugeResult(self)


@dataclass(frozen=True, slots=True, repr=False)
class GaugeResult:
    """What a query returns for a gauge: ``.value`` and ``.timestamp``."""

    data: GaugeData

    @property
    def value(self) -> Any:
        """The last value set."""
        return self.data.value

    @property
    def timestamp(self) -> float:
        """When the last value was set (seconds since the epoch)."""
        return self.data.timestamp

    def __repr__(self) -> str:
        return f"GaugeResult(value={self.value!r}, timestamp={self.timestamp})"


# --------------------------------------------------------------------------------------------
# Updates: what crosses processes

DistTuple = tuple[Number, int, Number | None, Number | None]  # (sum, count, min, max)
GaugeTuple = tuple[Any, float]  # (value, timestamp)


def _combine_distribution(a: DistTuple, b: DistTuple) -> DistTuple:
    if not b[1]:
        return a
    if not a[1]:
        return b
    a_min, b_min, a_max, b_max = a[2], b[2], a[3], b[3]
    assert a_min is not None and b_min is not None and a_max is not None and b_max is not None
    return (a[0] + b[0], a[1] + b[1], min(a_min, b_min), max(a_max, b_max))


class MetricUpdates:
    """Metric values keyed by ``(step, namespace, name)``, as plain tuples that cross processes.

    ``counters`` maps to a number, ``distributions`` to ``(sum, count, min, max)`` and ``gauges``
    to ``(value, timestamp)``. Merging adds counters, combines distributions and keeps the gauge
    with the later timestamp (the one already held on a tie).

    >>> a = MetricUpdates(counters={("s", "ns", "n"): 2}, gauges={("s", "ns", "g"): (1, 10.0)})
    >>> b = MetricUpdates(counters={("s", "ns", "n"): 3}, gauges={("s", "ns", "g"): (7, 5.0)})
    >>> merged = MetricUpdates.merged([a, b])
    >>> merged.counters, merged.gauges
    ({('s', 'ns', 'n'): 5}, {('s', 'ns', 'g'): (1, 10.0)})
    """

    __slots__ = ("counters", "distributions", "gauges")

    def __init__(
        self,
        counters: dict[UpdateKey, Number] | None = None,
        distributions: dict[UpdateKey, DistTuple] | None = None,
        gauges: dict[UpdateKey, GaugeTuple] | None = None,
    ) -> None:
        self.counters: dict[UpdateKey, Number] = counters if counters is not None else {}
        self.distributions: dict[UpdateKey, DistTuple] = (
            distributions if distributions is not None else {}
        )
        self.gauges: dict[UpdateKey, GaugeTuple] = gauges if gauges is not None else {}

    def merge(self, other: MetricUpdates) -> MetricUpdates:
        """Fold ``other`` into this object (in place) and return this object."""
        counters = self.counters
        for key, value in other.counters.items():
            counters[key] = counters[key] + value if key in counters else value
        distributions = self.distributions
        for key, dist in other.distributions.items():
            old = distributions.get(key)
            distributions[key] = dist if old is None else _combine_distribution(old, dist)
        gauges = self.gauges
        for key, gauge in other.gauges.items():
            held = gauges.get(key)
            if held is None or gauge[1] > held[1]:
                gauges[key] = gauge
        return self

    @classmethod
    def merged(cls, updates: Iterable[MetricUpdates]) -> MetricUpdates:
        """A new object holding all ``updates`` merged (the inputs are not changed)."""
        result = cls()
        for update in updates:
            result.merge(update)
        return result

    def is_empty(self) -> bool:
        """True if no metric is recorded."""
        return not (self.counters or self.distributions or self.gauges)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MetricUpdates):
            return NotImplemented
        return (
            self.counters == other.counters
            and self.distributions == other.distributions
            and self.gauges == other.gauges
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return (
            f"MetricUpdates(counters={self.counters!r}, distributions={self.distributions!r}, "
            f"gauges={self.gauges!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return MetricUpdates, (self.counters, self.distributions, self.gauges)
