"""The query side of metrics: :class:`MetricsFilter`, :class:`MetricResult` and the results.

``PipelineResult.metrics()`` returns a :class:`MetricResults`; its ``query(filter)`` returns
``{"counters": [...], "distributions": [...], "gauges": [...]}`` lists of
:class:`MetricResult`. :class:`DirectMetricResults` builds those lists from the merged
:class:`~headrace.model.metricdata.MetricUpdates` of a run. Nothing here is updated while a
pipeline runs: a filter is built, then results are read. :mod:`headrace.model.metrics`
re-exports every name of this module.

>>> from headrace.model.metricdata import MetricUpdates
>>> results = DirectMetricResults(MetricUpdates(counters={("Outer/Parse", "ns", "rows"): 4}))
>>> [r.committed for r in results.query(MetricsFilter().with_step("Parse"))["counters"]]
[4]
>>> results.query(MetricsFilter().with_step("Par"))["counters"]
[]
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from headrace.model.metricdata import (
    DistributionData,
    DistributionResult,
    GaugeData,
    GaugeResult,
    MetricKey,
    MetricName,
    MetricUpdates,
    namespace_of,
)

if TYPE_CHECKING:
    from headrace.model.metrics import Counter, Distribution, Gauge

__all__ = [
    "DirectMetricResults",
    "MetricResult",
    "MetricResults",
    "MetricsFilter",
]


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
        self._namespaces.update(namespace_of(ns) for ns in namespaces)
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
