"""User metrics (counters, distributions, gauges) and the containers runners fill with them.

This module owns the user and runner sides of Beam's metrics API:

* **User side.** ``Metrics.counter/distribution/gauge(namespace, name)`` return small metric
  objects that a DoFn creates in ``__init__`` (or at module level) and updates while processing.
  They carry only their :class:`MetricName`, so they pickle and travel to workers.
* **Runner side.** A runner gives each step a :class:`MetricsContainer` and makes it the
  *current container* while that step's user code runs (:func:`scoped_container` or
  :func:`set_current_container`). Metric updates land in the container's cells.
  ``container.to_updates()`` turns the cells into a :class:`MetricUpdates` of plain tuples that
  crosses processes; updates from several workers and steps merge with
  :meth:`MetricUpdates.merge`.

Two modules below this one hold the rest, and every public name of both is re-exported here, so
``headrace.model.metrics`` stays the one place to import metrics from:

* :mod:`headrace.model.metricdata`: names, keys, result values and :class:`MetricUpdates`.
* :mod:`headrace.model.metricquery`: the query side, :class:`MetricsFilter`,
  :class:`MetricResult` and :class:`MetricResults` (``PipelineResult.metrics()``), with
  :class:`DirectMetricResults` built from merged updates.

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

from time import time as _now
from typing import Any, ClassVar

from headrace.model.metricdata import (
    DistributionData,
    DistributionResult,
    DistTuple,
    GaugeData,
    GaugeResult,
    MetricKey,
    MetricName,
    MetricUpdates,
    Number,
    UpdateKey,
    namespace_of,
)
from headrace.model.metricquery import (
    DirectMetricResults,
    MetricResult,
    MetricResults,
    MetricsFilter,
)

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
# Containers


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
        return namespace_of(namespace)

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
