"""User metrics (counters, distributions, gauges) and the containers runners fill with them.

This module owns both sides of Beam's metrics API:

* **User side.** ``Metrics.counter/distribution/gauge(namespace, name)`` return small metric
  objects that a DoFn creates in ``__init__`` (or at module level) and updates while processing.
  They carry only their :class:`MetricName`, so they pickle and travel to workers.
* **Runner side.** A runner gives each step a :class:`MetricsContainer` and makes it the
  *current container* while that step's user code runs (:func:`scoped_container` or
  :func:`set_current_container`). Metric updates land in the container's cells.
  ``container.to_updates()`` turns the cells into a :class:`MetricUpdates` of plain tuples that
  crosses processes; updates from several workers and steps merge with
  :meth:`MetricUpdates.merge`.
* **Query side.** :class:`MetricsFilter`, :class:`MetricResult` and :class:`MetricResults`
  (``PipelineResult.metrics()``), with :class:`DirectMetricResults` built from merged updates.

State and who moves it: the module global ``_current`` holds the container of the step whose
user code is running, or ``None``. Only the executor moves it. It is a plain global, not a
thread-local, because an executor runs user code on one thread per process; a runner that runs
user code on several threads of one process must give each thread its own process or switch
containers under its own lock. Each metric object caches ``(container, cell)`` from its last
update and looks the cell up again only when ``_current`` is a different container, so an
update in the steady state is an identity check plus an addition. Updates made while no
container is current (a metric used outside a pipeline) go to a private cell nobody reads, i.e.
they are dropped silently, as in Beam.

>>> words = Metrics.counter("demo", "words")
>>> lengths = Metrics.distribution("demo", "word_len")
>>> container = MetricsContainer("Count/ParDo(Split)")
>>> with scoped_container(container):
...     for word in ["a", "bb", "ccc"]:
...         words.inc()
...         lengths.update(len(word))
>>> words.inc()  # no container is current: dropped
>>> results = DirectMetricResults(container.to_updates())
>>> found = results.query(MetricsFilter().with_step("ParDo(Split)").with_namespace("demo"))
>>> found["counters"]
[MetricResult(key=MetricKey(step='Count/ParDo(Split)', metric=MetricName(namespace='demo',
 name='words'), labels={}), committed=3, attempted=3)]
>>> found["distributions"][0].committed
DistributionResult(sum=6, count=3, min=1, max=3, mean=2.0)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from time import time as _now
from typing import Any, ClassVar

__all__ = [
    "Counter",
    "CounterCell",
    "DirectMetricResults",
    "Distribution",
    "DistributionCell",
    "DistributionData",
    "DistributionResult",
    "Gauge",
    "GaugeCell",
    "GaugeData",
    "GaugeResult",
    "MetricKey",
    "MetricName",
    "MetricResult",
    "MetricResults",
    "MetricUpdates",
    "Metrics",
    "MetricsContainer",
    "MetricsFilter",
    "current_container",
    "scoped_container",
    "set_current_container",
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
# Cells: mutable accumulators inside a container (runner-facing)


class CounterCell:
    """The running total of one counter in one container."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: Number = 0

    def inc(self, n: Number = 1) -> None:
        """Add ``n``."""
        self.value += n

    def dec(self, n: Number = 1) -> None:
        """Subtract ``n``."""
        self.value -= n

    def update(self, value: Number) -> None:
        """Add ``value`` (same as :meth:`inc`)."""
        self.value += value

    def get_cumulative(self) -> Number:
        """The current total."""
        return self.value

    def reset(self) -> None:
        """Set the total back to 0 (the cell object stays the same)."""
        self.value = 0


_INF = float("inf")


class DistributionCell:
    """Count, sum, min and max of the values one distribution received in one container."""

    __slots__ = ("count", "max", "min", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.sum: Number = 0
        # Infinite sentinels keep update() free of None checks; get_cumulative hides them.
        self.min: Number = _INF
        self.max: Number = -_INF

    def update(self, value: Number) -> None:
        """Record one value (an int or a float)."""
        self.sum += value  # first, so a bad value raises before anything changed
        self.count += 1
        # Plain comparisons, not min()/max(): this is the per-element path.
        if value < self.min:  # noqa: PLR1730
            self.min = value
        if value > self.max:  # noqa: PLR1730
            self.max = value

    def get_cumulative(self) -> DistributionData:
        """A snapshot of the data so far."""
        return DistributionData(self.sum, self.count, self.min, self.max)

    def reset(self) -> None:
        """Forget all values (the cell object stays the same)."""
        self.count = 0
        self.sum = 0
        self.min = _INF
        self.max = -_INF


class GaugeCell:
    """The last value one gauge was set to in one container, and when."""

    __slots__ = ("timestamp", "value")

    def __init__(self) -> None:
        self.value: Any = None
        self.timestamp: float | None = None  # None: never set

    def set(self, value: Any, timestamp: float | None = None) -> None:
        """Record ``value`` at ``timestamp`` (default: now)."""
        self.value = value
        self.timestamp = _now() if timestamp is None else timestamp

    update = set

    def get_cumulative(self) -> GaugeData:
        """A snapshot of the last value."""
        return GaugeData(self.value, 0 if self.timestamp is None else self.timestamp)

    def reset(self) -> None:
        """Mark the gauge as never set (the cell object stays the same)."""
        self.value = None
        self.timestamp = None


# --------------------------------------------------------------------------------------------
# Containers and updates


class MetricsContainer:
    """The cells of every metric one step updated; a runner makes it current while the step runs.

    Cells are created on first use and never replaced (``reset`` zeroes them in place), because
    metric objects cache them. A container stays in its process: send ``to_updates()`` instead.
    """

    __slots__ = ("counters", "distributions", "gauges", "step")

    def __init__(self, step: str) -> None:
        self.step = step
        self.counters: dict[MetricName, CounterCell] = {}
        self.distributions: dict[MetricName, DistributionCell] = {}
        self.gauges: dict[MetricName, GaugeCell] = {}

    def get_counter(self, name: MetricName) -> CounterCell:
        """The counter cell for ``name``, created if missing."""
        cell = self.counters.get(name)
        if cell is None:
            cell = self.counters[name] = CounterCell()
        return cell

    def get_distribution(self, name: MetricName) -> DistributionCell:
        """The distribution cell for ``name``, created if missing."""
        cell = self.distributions.get(name)
        if cell is None:
            cell = self.distributions[name] = DistributionCell()
        return cell

    def get_gauge(self, name: MetricName) -> GaugeCell:
        """The gauge cell for ``name``, created if missing."""
        cell = self.gauges.get(name)
        if cell is None:
            cell = self.gauges[name] = GaugeCell()
        return cell

    def to_updates(self) -> MetricUpdates:
        """The cumulative values of all cells as plain, picklable data.

        Gauges that were never set are left out. Merging two ``to_updates()`` of the *same*
        container double-counts; call :meth:`reset` after taking updates to report deltas.
        """
        step = self.step
        counters = {(step, n.namespace, n.name): c.value for n, c in self.counters.items()}
        distributions: dict[UpdateKey, DistTuple] = {
            (step, n.namespace, n.name): (c.sum, c.count, c.min, c.max)
            if c.count
            else (c.sum, 0, None, None)
            for n, c in self.distributions.items()
        }
        gauges = {
            (step, n.namespace, n.name): (c.value, c.timestamp)
            for n, c in self.gauges.items()
            if c.timestamp is not None
        }
        return MetricUpdates(counters, distributions, gauges)

    def reset(self) -> None:
        """Zero every cell in place (cached cells in metric objects stay valid)."""
        for cells in (self.counters, self.distributions, self.gauges):
            for cell in cells.values():
                cell.reset()

    def __repr__(self) -> str:
        return (
            f"MetricsContainer(step={self.step!r}, counters={len(self.counters)}, "
            f"distributions={len(self.distributions)}, gauges={len(self.gauges)})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError(
            f"MetricsContainer for step {self.step!r} cannot be pickled: it belongs to the "
            "process that runs the step; send container.to_updates() to other processes instead"
        )


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


# --------------------------------------------------------------------------------------------
# The current container (moved only by the executor; see the module docstring)

_current: MetricsContainer | None = None


def current_container() -> MetricsContainer | None:
    """The container of the step whose user code is running, or ``None``."""
    return _current


def set_current_container(container: MetricsContainer | None) -> MetricsContainer | None:
    """Make ``container`` current (``None``: drop updates) and return the previous one."""
    global _current
    previous = _current
    _current = container
    return previous


class _ScopedContainer:
    __slots__ = ("_container", "_previous")

    def __init__(self, container: MetricsContainer | None) -> None:
        self._container = container
        self._previous: MetricsContainer | None = None

    def __enter__(self) -> MetricsContainer | None:
        self._previous = set_current_container(self._container)
        return self._container

    def __exit__(self, *exc_info: object) -> None:
        set_current_container(self._previous)


def scoped_container(container: MetricsContainer | None) -> _ScopedContainer:
    """Context manager: ``container`` is current inside the ``with`` block, then the previous one.

    >>> c = MetricsContainer("step")
    >>> with scoped_container(c):
    ...     current_container() is c
    True
    >>> current_container() is None
    True
    """
    return _ScopedContainer(container)


# --------------------------------------------------------------------------------------------
# User-facing metric objects


class _Metric:
    """A named metric; caches the cell of the container it last updated."""

    __slots__ = ("_cell", "_container", "metric_name")
    _kind: ClassVar[str] = "Metric"

    def __init__(self, metric_name: MetricName) -> None:
        self.metric_name = metric_name
        self._container: MetricsContainer | None = None
        self._cell: Any = self._lookup(None)

    def _lookup(self, container: MetricsContainer | None) -> Any:
        raise NotImplementedError

    def _bind(self) -> Any:
        """Point the cache at the current container's cell (a detached cell when none)."""
        container = _current
        cell = self._lookup(container)
        self._container = container
        self._cell = cell
        return cell

    def _bad_value(self, method: str, value: object) -> TypeError:
        return TypeError(
            f"{self._kind} {self.metric_name.namespace}:{self.metric_name.name}: {method}() "
            f"takes an int or a float, got {value!r} ({type(value).__name__})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Only the name travels: the cached container and cell stay in this process.
        return type(self), (self.metric_name,)

    def __repr__(self) -> str:
        return f"{self._kind}({self.metric_name.namespace!r}, {self.metric_name.name!r})"


class Counter(_Metric):
    """A metric that adds up: ``inc(n=1)``, ``dec(n=1)``."""

    __slots__ = ()
    _kind = "Counter"

    def _lookup(self, container: MetricsContainer | None) -> CounterCell:
        return CounterCell() if container is None else container.get_counter(self.metric_name)

    def inc(self, n: Number = 1) -> None:
        """Add ``n`` in the current step."""
        cell = self._cell if _current is self._container else self._bind()
        try:
            cell.value += n
        except TypeError:
            raise self._bad_value("inc", n) from None

    def dec(self, n: Number = 1) -> None:
        """Subtract ``n`` in the current step."""
        cell = self._cell if _current is self._container else self._bind()
        try:
            cell.value -= n
        except TypeError:
            raise self._bad_value("dec", n) from None


class Distribution(_Metric):
    """A metric that records count, sum, min and max of values: ``update(value)``."""

    __slots__ = ()
    _kind = "Distribution"

    def _lookup(self, container: MetricsContainer | None) -> DistributionCell:
        if container is None:
            return DistributionCell()
        return container.get_distribution(self.metric_name)

    def update(self, value: Number) -> None:
        """Record ``value`` (an int or a float) in the current step."""
        cell = self._cell if _current is self._container else self._bind()
        try:
            cell.update(value)
        except TypeError:
            raise self._bad_value("update", value) from None


class Gauge(_Metric):
    """A metric that keeps the latest value set: ``set(value)``."""

    __slots__ = ()
    _kind = "Gauge"

    def _lookup(self, container: MetricsContainer | None) -> GaugeCell:
        return GaugeCell() if container is None else container.get_gauge(self.metric_name)

    def set(self, value: Number) -> None:
        """Record ``value`` as the gauge's current value in the current step."""
        cell = self._cell if _current is self._container else self._bind()
        cell.value = value
        cell.timestamp = _now()


class Metrics:
    """Creates metric objects: ``Metrics.counter(namespace, name)`` and friends.

    ``namespace`` is a string or a class (then ``"module.QualName"``).

    >>> import collections
    >>> Metrics.counter(collections.OrderedDict, "rows").metric_name
    MetricName(namespace='collections.OrderedDict', name='rows')
    """

    @staticmethod
    def get_namespace(namespace: type | str) -> str:
        """The namespace string for a class or a string."""
        if isinstance(namespace, str):
            return namespace
        if isinstance(namespace, type):
            return f"{namespace.__module__}.{namespace.__name__}"
        raise ValueError(
            f"Metric namespace must be a string or a class, got {namespace!r} "
            f"({type(namespace).__name__})"
        )

    @staticmethod
    def counter(namespace: type | str, name: str) -> Counter:
        """A counter named ``name`` in ``namespace``."""
        return Counter(MetricName(Metrics.get_namespace(namespace), name))

    @staticmethod
    def distribution(namespace: type | str, name: str) -> Distribution:
        """A distribution named ``name`` in ``namespace``."""
        return Distribution(MetricName(Metrics.get_namespace(namespace), name))

    @staticmethod
    def gauge(namespace: type | str, name: str) -> Gauge:
        """A gauge named ``name`` in ``namespace``."""
        return Gauge(MetricName(Metrics.get_namespace(namespace), name))


# --------------------------------------------------------------------------------------------
# Query side


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric's value for one step: ``.key``, ``.committed``, ``.attempted``."""

    key: MetricKey
    committed: Any
    attempted: Any

    @property
    def result(self) -> Any:
        """``committed`` if the runner reported it, else ``attempted``."""
        return self.committed if self.committed else self.attempted


def _no_bare_string(values: Iterable[Any], what: str, single: str) -> None:
    if isinstance(values, str):
        raise ValueError(
            f"MetricsFilter.with_{what}s() takes a collection of {what}s, not the string "
            f"{values!r}; use with_{single}({values!r}) for one {what}"
        )


class MetricsFilter:
    """Selects metrics by names, namespaces and steps; empty criteria match everything.

    A step criterion matches a metric whose full step label, split on ``/``, contains the
    criterion's ``/``-separated parts as a contiguous run: ``"ParDo"`` and ``"Outer/ParDo"``
    match ``"Outer/ParDo"``, ``"Par"`` does not.

    >>> f = MetricsFilter().with_name("rows").with_step("Parse")
    >>> sorted(f.names), sorted(f.steps)
    (['rows'], ['Parse'])
    """

    __slots__ = ("_names", "_namespaces", "_steps")

    def __init__(self) -> None:
        self._names: set[str] = set()
        self._namespaces: set[str] = set()
        self._steps: set[str] = set()

    @property
    def names(self) -> frozenset[str]:
        """Metric names to match (empty: any)."""
        return frozenset(self._names)

    @property
    def namespaces(self) -> frozenset[str]:
        """Namespaces to match (empty: any)."""
        return frozenset(self._namespaces)

    @property
    def steps(self) -> frozenset[str]:
        """Step labels or sub-paths to match (empty: any)."""
        return frozenset(self._steps)

    def with_name(self, name: str) -> MetricsFilter:
        """Also match metrics named ``name``."""
        return self.with_names([name])

    def with_names(self, names: Iterable[str]) -> MetricsFilter:
        """Also match metrics with any of ``names``."""
        _no_bare_string(names, "name", "name")
        self._names.update(names)
        return self

    def with_namespace(self, namespace: type | str) -> MetricsFilter:
        """Also match metrics in ``namespace`` (a string or a class)."""
        return self.with_namespaces([namespace])

    def with_namespaces(self, namespaces: Iterable[type | str]) -> MetricsFilter:
        """Also match metrics in any of ``namespaces``."""
        _no_bare_string(namespaces, "namespace", "namespace")
        self._namespaces.update(Metrics.get_namespace(ns) for ns in namespaces)
        return self

    def with_step(self, step: str) -> MetricsFilter:
        """Also match metrics of steps that ``step`` names (see the class docstring)."""
        return self.with_steps([step])

    def with_steps(self, steps: Iterable[str]) -> MetricsFilter:
        """Also match metrics of any of ``steps``."""
        _no_bare_string(steps, "step", "step")
        self._steps.update(steps)
        return self

    def with_metric(self, metric: Counter | Distribution | Gauge) -> MetricsFilter:
        """Also match ``metric``'s name and namespace."""
        return self.with_name(metric.metric_name.name).with_namespace(metric.metric_name.namespace)

    def __repr__(self) -> str:
        return (
            f"MetricsFilter(names={sorted(self._names)}, namespaces={sorted(self._namespaces)}, "
            f"steps={sorted(self._steps)})"
        )


def _step_matches(full_step: str, wanted: str) -> bool:
    """True if ``wanted``'s ``/``-parts occur as a contiguous run in ``full_step``'s parts."""
    if not full_step:
        return False
    if full_step == wanted:
        return True
    haystack = full_step.split("/")
    needle = wanted.split("/")
    width = len(needle)
    return any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


class MetricResults:
    """Base of ``PipelineResult.metrics()``: :meth:`query` returns lists of MetricResult."""

    COUNTERS: ClassVar[str] = "counters"
    DISTRIBUTIONS: ClassVar[str] = "distributions"
    GAUGES: ClassVar[str] = "gauges"

    @staticmethod
    def matches(filter: MetricsFilter | None, key: MetricKey) -> bool:
        """True if ``key`` passes ``filter`` (``None`` passes everything)."""
        if filter is None:
            return True
        if filter._names and key.metric.name not in filter._names:
            return False
        if filter._namespaces and key.metric.namespace not in filter._namespaces:
            return False
        if filter._steps:
            return any(_step_matches(key.step, step) for step in filter._steps)
        return True

    def query(self, filter: MetricsFilter | None = None) -> dict[str, list[MetricResult]]:
        """``{"counters": [...], "distributions": [...], "gauges": [...]}`` matching ``filter``."""
        raise NotImplementedError(f"{type(self).__name__} must implement query()")


def _iter_updates(
    updates: MetricUpdates | Mapping[str, MetricUpdates] | Iterable[MetricUpdates],
) -> Iterator[MetricUpdates]:
    if isinstance(updates, MetricUpdates):
        yield updates
    elif isinstance(updates, Mapping):
        yield from updates.values()
    else:
        for update in updates:
            if not isinstance(update, MetricUpdates):
                raise TypeError(
                    "DirectMetricResults takes MetricUpdates (from MetricsContainer.to_updates()), "
                    f"a mapping of step to MetricUpdates, or an iterable of them; got {update!r}"
                )
            yield update


class DirectMetricResults(MetricResults):
    """Metric results of a run, built from the runner's merged :class:`MetricUpdates`.

    ``committed`` equals ``attempted``: the direct runner keeps only the updates of bundles that
    succeeded, and every such attempt is committed. Accepts one ``MetricUpdates``, a mapping of
    step to ``MetricUpdates``, or an iterable of them (all merged). Results are sorted by step,
    namespace and name.
    """

    def __init__(
        self,
        updates: MetricUpdates | Mapping[str, MetricUpdates] | Iterable[MetricUpdates],
    ) -> None:
        self._updates = MetricUpdates.merged(_iter_updates(updates))

    def query(self, filter: MetricsFilter | None = None) -> dict[str, list[MetricResult]]:
        """``{"counters": [...], "distributions": [...], "gauges": [...]}`` matching ``filter``."""
        matches = self.matches
        counters: list[MetricResult] = []
        for (step, namespace, name), value in sorted(
            self._updates.counters.items(), key=lambda item: item[0]
        ):
            key = MetricKey(step, MetricName(namespace, name))
            if matches(filter, key):
                counters.append(MetricResult(key, value, value))
        distributions: list[MetricResult] = []
        for (step, namespace, name), dist in sorted(
            self._updates.distributions.items(), key=lambda item: item[0]
        ):
            key = MetricKey(step, MetricName(namespace, name))
            if matches(filter, key):
                result = DistributionResult(DistributionData(*dist))
                distributions.append(MetricResult(key, result, result))
        gauges: list[MetricResult] = []
        for (step, namespace, name), (value, timestamp) in sorted(
            self._updates.gauges.items(), key=lambda item: item[0]
        ):
            key = MetricKey(step, MetricName(namespace, name))
            if matches(filter, key):
                gauge = GaugeResult(GaugeData(value, timestamp))
                gauges.append(MetricResult(key, gauge, gauge))
        return {self.COUNTERS: counters, self.DISTRIBUTIONS: distributions, self.GAUGES: gauges}
