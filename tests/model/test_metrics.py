"""Tests for headrace.model.metrics: user metrics, containers, updates, filters and results."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

from headrace.model import metrics as m
from headrace.model.metrics import (
    CounterCell,
    DirectMetricResults,
    DistributionData,
    DistributionResult,
    GaugeData,
    GaugeResult,
    MetricKey,
    MetricName,
    MetricResult,
    MetricResults,
    Metrics,
    MetricsContainer,
    MetricsFilter,
    MetricUpdates,
    current_container,
    scoped_container,
    set_current_container,
)


@pytest.fixture(autouse=True)
def _no_leaked_container():
    assert current_container() is None
    yield
    set_current_container(None)


class MyDoFn:
    """A stand-in for a DoFn class used as a namespace."""

    def __init__(self):
        self.rows = Metrics.counter(type(self), "rows")
        self.sizes = Metrics.distribution(type(self), "sizes")
        self.last = Metrics.gauge(type(self), "last")

    def process(self, element):
        self.rows.inc()
        self.sizes.update(len(element))
        self.last.set(len(element))


def _run(container, fn):
    with scoped_container(container):
        fn()
    return container


# ---------------------------------------------------------------------------- names and keys


def test_metric_name_is_frozen_hashable_and_validated():
    a = MetricName("ns", "n")
    assert a == MetricName("ns", "n")
    assert hash(a) == hash(MetricName("ns", "n"))
    assert a != MetricName("ns", "other")
    assert {a: 1}[MetricName("ns", "n")] == 1
    with pytest.raises(AttributeError):
        a.name = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match="namespace must be a non-empty string"):
        MetricName("", "n")
    with pytest.raises(ValueError, match="name must be a non-empty string"):
        MetricName("ns", "")


def test_metric_key_equality_hash_and_repr():
    k = MetricKey("Outer/ParDo", MetricName("ns", "n"))
    assert k.step == "Outer/ParDo"
    assert k.metric.namespace == "ns" and k.metric.name == "n"
    assert k.labels == {}
    assert k == MetricKey("Outer/ParDo", MetricName("ns", "n"), None)
    assert hash(k) == hash(MetricKey("Outer/ParDo", MetricName("ns", "n")))
    assert k != MetricKey("Other", MetricName("ns", "n"))
    assert k != MetricKey("Outer/ParDo", MetricName("ns", "n"), {"a": "b"})
    assert "Outer/ParDo" in repr(k) and "'n'" in repr(k)


def test_namespace_from_class_and_string():
    assert Metrics.counter(MyDoFn, "x").metric_name == MetricName(
        f"{MyDoFn.__module__}.MyDoFn", "x"
    )
    assert Metrics.gauge("plain", "x").metric_name.namespace == "plain"
    assert Metrics.get_namespace(MyDoFn) == f"{MyDoFn.__module__}.{MyDoFn.__name__}"
    with pytest.raises(ValueError, match="string or a class"):
        Metrics.counter(42, "x")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- metric math


def test_counter_inc_dec_math():
    c = MetricsContainer("step")
    counter = Metrics.counter("ns", "n")
    with scoped_container(c):
        counter.inc()
        counter.inc(5)
        counter.dec()
        counter.dec(2)
    assert c.get_counter(MetricName("ns", "n")).get_cumulative() == 3
    assert c.to_updates().counters == {("step", "ns", "n"): 3}


def test_distribution_math_ints_and_floats():
    c = MetricsContainer("step")
    dist = Metrics.distribution("ns", "d")
    with scoped_container(c):
        for v in [4, 1, 7, 2.5]:
            dist.update(v)
    data = c.get_distribution(MetricName("ns", "d")).get_cumulative()
    assert data == DistributionData(14.5, 4, 1, 7)
    result = DistributionResult(data)
    assert (result.count, result.sum, result.min, result.max) == (4, 14.5, 1, 7)
    assert result.mean == pytest.approx(14.5 / 4)
    assert repr(result) == "DistributionResult(sum=14.5, count=4, min=1, max=7, mean=3.625)"


def test_distribution_single_negative_value_sets_min_and_max():
    c = MetricsContainer("s")
    dist = Metrics.distribution("ns", "d")
    with scoped_container(c):
        dist.update(-3)
    assert c.to_updates().distributions == {("s", "ns", "d"): (-3, 1, -3, -3)}


def test_empty_distribution_has_no_min_max_or_mean():
    c = MetricsContainer("s")
    c.get_distribution(MetricName("ns", "d"))
    assert c.to_updates().distributions == {("s", "ns", "d"): (0, 0, None, None)}
    result = DirectMetricResults(c.to_updates()).query()["distributions"][0].committed
    assert (result.count, result.sum, result.min, result.max, result.mean) == (
        0,
        0,
        None,
        None,
        None,
    )


def test_gauge_keeps_last_value_and_timestamp(monkeypatch):
    clock = iter([100.0, 200.0])
    monkeypatch.setattr(m, "_now", lambda: next(clock))
    c = MetricsContainer("s")
    gauge = Metrics.gauge("ns", "g")
    with scoped_container(c):
        gauge.set(3)
        gauge.set(9)
    assert c.to_updates().gauges == {("s", "ns", "g"): (9, 200.0)}
    result = DirectMetricResults(c.to_updates()).query()["gauges"][0].committed
    assert result == GaugeResult(GaugeData(9, 200.0))
    assert (result.value, result.timestamp) == (9, 200.0)


def test_gauge_never_set_is_not_reported():
    c = MetricsContainer("s")
    c.get_gauge(MetricName("ns", "g"))
    assert c.to_updates().gauges == {}


def test_bad_values_raise_clear_errors():
    c = MetricsContainer("s")
    with scoped_container(c):
        with pytest.raises(TypeError, match=r"Counter ns:n: inc\(\) takes an int or a float"):
            Metrics.counter("ns", "n").inc("x")  # type: ignore[arg-type]
        dist = Metrics.distribution("ns", "d")
        with pytest.raises(TypeError, match=r"Distribution ns:d: update\(\).*'x' \(str\)"):
            dist.update("x")  # type: ignore[arg-type]
        dist.update(2)
    # The failed update left the cell untouched.
    assert c.to_updates().distributions == {("s", "ns", "d"): (2, 1, 2, 2)}


# ---------------------------------------------------------------------------- current container


def test_updates_outside_a_container_are_dropped():
    counter = Metrics.counter("ns", "n")
    dist = Metrics.distribution("ns", "d")
    gauge = Metrics.gauge("ns", "g")
    counter.inc()
    counter.dec(3)
    dist.update(1.5)
    gauge.set(1)
    c = MetricsContainer("s")
    with scoped_container(c):
        counter.inc()
    assert c.to_updates() == MetricUpdates(counters={("s", "ns", "n"): 1})
    # And after leaving the container, updates are dropped again, not written to it.
    counter.inc(100)
    assert c.to_updates().counters == {("s", "ns", "n"): 1}


def test_scoped_container_nests_and_restores_on_error():
    outer, inner = MetricsContainer("outer"), MetricsContainer("inner")
    counter = Metrics.counter("ns", "n")
    with scoped_container(outer) as entered:
        assert entered is outer
        counter.inc()
        with pytest.raises(RuntimeError), scoped_container(inner):
            assert current_container() is inner
            counter.inc(10)
            raise RuntimeError("boom")
        assert current_container() is outer
        counter.inc()
    assert current_container() is None
    assert outer.to_updates().counters == {("outer", "ns", "n"): 2}
    assert inner.to_updates().counters == {("inner", "ns", "n"): 10}


def test_set_current_container_returns_previous():
    a, b = MetricsContainer("a"), MetricsContainer("b")
    assert set_current_container(a) is None
    assert set_current_container(b) is a
    assert current_container() is b
    assert set_current_container(None) is b


def test_one_metric_object_alternating_between_steps():
    a, b = MetricsContainer("a"), MetricsContainer("b")
    counter = Metrics.counter("ns", "n")
    for i in range(5):
        set_current_container(a if i % 2 == 0 else b)
        counter.inc(i)
    set_current_container(None)
    assert a.to_updates().counters == {("a", "ns", "n"): 0 + 2 + 4}
    assert b.to_updates().counters == {("b", "ns", "n"): 1 + 3}


def test_inc_uses_cached_cell_without_lookup(monkeypatch):
    c = MetricsContainer("s")
    counter = Metrics.counter("ns", "n")
    dist = Metrics.distribution("ns", "d")
    gauge = Metrics.gauge("ns", "g")
    set_current_container(c)
    counter.inc()
    dist.update(1)
    gauge.set(1)
    cell = c.counters[MetricName("ns", "n")]
    assert counter._cell is cell and counter._container is c

    calls = []

    def no_lookup(self, name):
        calls.append(name)
        raise AssertionError("looked up a cell although the container did not change")

    for method in ("get_counter", "get_distribution", "get_gauge"):
        monkeypatch.setattr(MetricsContainer, method, no_lookup)
    for _ in range(100):
        counter.inc()
        dist.update(2)
        gauge.set(2)
    assert calls == []
    assert counter._cell is cell
    assert cell.value == 101
    assert c.distributions[MetricName("ns", "d")].count == 101

    # A different container triggers exactly one lookup.
    monkeypatch.undo()
    other = MetricsContainer("other")
    set_current_container(other)
    counter.inc()
    assert counter._container is other and counter._cell is other.counters[MetricName("ns", "n")]


def test_reset_zeroes_cells_in_place_so_cached_cells_stay_valid():
    c = MetricsContainer("s")
    counter = Metrics.counter("ns", "n")
    gauge = Metrics.gauge("ns", "g")
    dist = Metrics.distribution("ns", "d")
    with scoped_container(c):
        counter.inc(5)
        gauge.set(1)
        dist.update(3)
        before = c.to_updates()
        c.reset()
        assert c.to_updates() == MetricUpdates(
            counters={("s", "ns", "n"): 0}, distributions={("s", "ns", "d"): (0, 0, None, None)}
        )
        counter.inc(2)
        dist.update(7)
    after = c.to_updates()
    assert after.counters == {("s", "ns", "n"): 2}
    assert after.distributions == {("s", "ns", "d"): (7, 1, 7, 7)}
    assert MetricUpdates.merged([before, after]).counters == {("s", "ns", "n"): 7}


# ---------------------------------------------------------------------------- updates and merging


def _worker(step, values, gauge_value, clock_value, monkeypatch):
    monkeypatch.setattr(m, "_now", lambda: clock_value)
    fn = cloudpickle.loads(cloudpickle.dumps(MyDoFn()))
    c = MetricsContainer(step)
    with scoped_container(c):
        for v in values:
            fn.process(v)
        fn.last.set(gauge_value)
    return pickle.loads(pickle.dumps(c.to_updates()))


def test_merging_updates_from_two_workers(monkeypatch):
    ns = f"{MyDoFn.__module__}.MyDoFn"
    a = _worker("Parse", ["a", "bbb"], gauge_value=1, clock_value=50.0, monkeypatch=monkeypatch)
    b = _worker(
        "Parse", ["cc", "dddd", ""], gauge_value=2, clock_value=10.0, monkeypatch=monkeypatch
    )
    a_copy = pickle.loads(pickle.dumps(a))
    merged = MetricUpdates.merged([a, b])
    assert merged.counters == {("Parse", ns, "rows"): 5}
    assert merged.distributions == {("Parse", ns, "sizes"): (10, 5, 0, 4)}
    # Worker a set its gauge later (timestamp 50 > 10), so its value wins whatever the order.
    assert merged.gauges == {("Parse", ns, "last"): (1, 50.0)}
    assert MetricUpdates.merged([b, a]).gauges == merged.gauges
    assert a == a_copy  # merged() does not change its inputs


def test_merge_gauge_tie_keeps_held_value_and_in_place_merge_returns_self():
    a = MetricUpdates(gauges={("s", "ns", "g"): ("first", 5.0)})
    b = MetricUpdates(gauges={("s", "ns", "g"): ("second", 5.0)})
    assert a.merge(b) is a
    assert a.gauges == {("s", "ns", "g"): ("first", 5.0)}


def test_merge_distribution_with_empty_and_new_keys():
    a = MetricUpdates(
        counters={("s", "ns", "x"): 1},
        distributions={("s", "ns", "d"): (0, 0, None, None), ("s", "ns", "e"): (3, 1, 3, 3)},
    )
    b = MetricUpdates(
        counters={("t", "ns", "x"): 2},
        distributions={("s", "ns", "d"): (5, 2, 1, 4), ("s", "ns", "e"): (0, 0, None, None)},
    )
    merged = MetricUpdates.merged([a, b])
    assert merged.counters == {("s", "ns", "x"): 1, ("t", "ns", "x"): 2}
    assert merged.distributions == {("s", "ns", "d"): (5, 2, 1, 4), ("s", "ns", "e"): (3, 1, 3, 3)}
    assert MetricUpdates().is_empty() and not merged.is_empty()


def test_distribution_data_combine_matches_updates_merge():
    a = DistributionData(6, 3, 1, 3)
    b = DistributionData(10, 2, 4, 6)
    assert a.combine(b) == DistributionData(16, 5, 1, 6)
    assert a.combine(DistributionData(0, 0, None, None)) == a
    assert DistributionData(0, 0, 5, 5).min is None
    assert GaugeData(1, 5.0).combine(GaugeData(2, 6.0)) == GaugeData(2, 6.0)
    assert GaugeData(1, 5.0).combine(GaugeData(2, 5.0)) == GaugeData(1, 5.0)


def _only_plain(value):
    if isinstance(value, dict):
        return all(_only_plain(k) and _only_plain(v) for k, v in value.items())
    if isinstance(value, tuple):
        return all(_only_plain(v) for v in value)
    return value is None or type(value) in (int, float, str)


def test_to_updates_is_plain_picklable_data():
    c = _run(MetricsContainer("s"), lambda: MyDoFn().process("abc"))
    updates = c.to_updates()
    for part in (updates.counters, updates.distributions, updates.gauges):
        assert part and _only_plain(part)
    assert pickle.loads(pickle.dumps(updates)) == updates
    assert cloudpickle.loads(cloudpickle.dumps(updates)) == updates


# ---------------------------------------------------------------------------- pickling


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps])
def test_metric_objects_pickle_without_their_container(dumps):
    c = MetricsContainer("s")
    fn = MyDoFn()
    with scoped_container(c):
        fn.process("abc")  # binds each metric object's cache to c
    assert fn.rows._container is c
    # MetricsContainer refuses to pickle, so this only works if the cache is left out.
    copy = pickle.loads(dumps(fn))
    assert copy.rows.metric_name == fn.rows.metric_name
    assert copy.rows._container is None
    assert copy.sizes.metric_name == fn.sizes.metric_name
    assert copy.last.metric_name == fn.last.metric_name
    other = _run(MetricsContainer("t"), lambda: copy.process("de"))
    assert other.to_updates().counters == {("t", f"{MyDoFn.__module__}.MyDoFn", "rows"): 1}
    assert c.to_updates().counters == {("s", f"{MyDoFn.__module__}.MyDoFn", "rows"): 1}


def test_module_level_metric_pickles():
    counter = Metrics.counter("ns", "n")
    assert pickle.loads(pickle.dumps(counter)).metric_name == MetricName("ns", "n")
    assert repr(counter) == "Counter('ns', 'n')"


def test_container_refuses_to_pickle_with_advice():
    with pytest.raises(TypeError, match=r"step 'Parse'.*to_updates\(\)"):
        pickle.dumps(MetricsContainer("Parse"))


def test_results_and_keys_pickle():
    key = MetricKey("s", MetricName("ns", "n"), {"k": "v"})
    dist = DistributionResult(DistributionData(6, 3, 1, 3))
    gauge = GaugeResult(GaugeData(2, 1.5))
    for obj in (key, dist, gauge, MetricResult(key, dist, dist), MetricResult(key, gauge, gauge)):
        assert pickle.loads(pickle.dumps(obj)) == obj
        assert cloudpickle.loads(cloudpickle.dumps(obj)) == obj


# ---------------------------------------------------------------------------- filters and results


def _results():
    updates = []
    for step, ns, name, value in [
        ("Read", "io", "rows", 1),
        ("Outer/ParDo", "user", "rows", 2),
        ("Outer/ParDo/Inner", "user", "errors", 3),
        ("Outer/Mid/Inner", f"{MyDoFn.__module__}.MyDoFn", "rows", 4),
        ("ParDoX", "user", "rows", 5),
    ]:
        updates.append(MetricUpdates(counters={(step, ns, name): value}))
    return DirectMetricResults(updates)


def _values(results, filter):
    return sorted(r.committed for r in results.query(filter)["counters"])


def test_filter_by_name_and_namespace():
    r = _results()
    assert _values(r, None) == [1, 2, 3, 4, 5]
    assert _values(r, MetricsFilter()) == [1, 2, 3, 4, 5]
    assert _values(r, MetricsFilter().with_name("rows")) == [1, 2, 4, 5]
    assert _values(r, MetricsFilter().with_names(["rows", "errors"])) == [1, 2, 3, 4, 5]
    assert _values(r, MetricsFilter().with_namespace("user")) == [2, 3, 5]
    assert _values(r, MetricsFilter().with_namespaces(["io", "user"])) == [1, 2, 3, 5]
    assert _values(r, MetricsFilter().with_namespace("user").with_name("rows")) == [2, 5]
    assert _values(r, MetricsFilter().with_namespace(MyDoFn)) == [4]
    assert _values(r, MetricsFilter().with_name("nothing")) == []


def test_filter_step_sub_paths():
    r = _results()
    assert _values(r, MetricsFilter().with_step("ParDo")) == [2, 3]
    assert _values(r, MetricsFilter().with_step("Outer/ParDo")) == [2, 3]
    assert _values(r, MetricsFilter().with_step("Outer/ParDo/Inner")) == [3]
    assert _values(r, MetricsFilter().with_step("Inner")) == [3, 4]
    # Parts must be whole and contiguous.
    assert _values(r, MetricsFilter().with_step("Par")) == []
    assert _values(r, MetricsFilter().with_step("Outer/Inner")) == []
    assert _values(r, MetricsFilter().with_step("ParDoX")) == [5]
    assert _values(r, MetricsFilter().with_steps(["Read", "Mid"])) == [1, 4]
    assert _values(r, MetricsFilter().with_step("ParDo").with_name("errors")) == [3]


def test_empty_step_never_matches_a_step_filter():
    key = MetricKey("", MetricName("ns", "n"))
    assert MetricResults.matches(None, key)
    assert MetricResults.matches(MetricsFilter(), key)
    assert not MetricResults.matches(MetricsFilter().with_step(""), key)


def test_filter_rejects_bare_strings_and_supports_with_metric():
    with pytest.raises(ValueError, match=r"with_name\('rows'\)"):
        MetricsFilter().with_names("rows")
    with pytest.raises(ValueError, match="collection of namespaces"):
        MetricsFilter().with_namespaces("ns")
    with pytest.raises(ValueError, match="collection of steps"):
        MetricsFilter().with_steps("Read")
    f = MetricsFilter().with_metric(Metrics.counter(MyDoFn, "rows"))
    assert f.names == frozenset({"rows"})
    assert f.namespaces == frozenset({f"{MyDoFn.__module__}.MyDoFn"})
    assert f.steps == frozenset()
    assert _values(_results(), f) == [4]


def test_direct_results_shape_and_committed_equals_attempted():
    c = MetricsContainer("Outer/Parse")
    _run(c, lambda: MyDoFn().process("abcd"))
    results = DirectMetricResults({"Outer/Parse": c.to_updates()}).query()
    assert set(results) == {
        MetricResults.COUNTERS,
        MetricResults.DISTRIBUTIONS,
        MetricResults.GAUGES,
    }
    assert (MetricResults.COUNTERS, MetricResults.DISTRIBUTIONS, MetricResults.GAUGES) == (
        "counters",
        "distributions",
        "gauges",
    )
    ns = f"{MyDoFn.__module__}.MyDoFn"
    [counter] = results["counters"]
    assert counter == MetricResult(MetricKey("Outer/Parse", MetricName(ns, "rows")), 1, 1)
    assert counter.result == 1
    [dist] = results["distributions"]
    assert dist.committed == dist.attempted == DistributionResult(DistributionData(4, 1, 4, 4))
    [gauge] = results["gauges"]
    assert gauge.committed == gauge.attempted
    assert gauge.committed.value == 4
    assert repr(counter).startswith("MetricResult(key=MetricKey(step='Outer/Parse'")
    assert counter != MetricResult(counter.key, 2, 2)


def test_direct_results_sorted_and_input_validation():
    r = DirectMetricResults(
        MetricUpdates(counters={("b", "ns", "n"): 1, ("a", "ns", "z"): 2, ("a", "ns", "m"): 3})
    )
    keys = [(x.key.step, x.key.metric.name) for x in r.query()["counters"]]
    assert keys == [("a", "m"), ("a", "z"), ("b", "n")]
    with pytest.raises(TypeError, match="MetricUpdates"):
        DirectMetricResults([{"counters": {}}])  # type: ignore[list-item]


def test_base_metric_results_query_is_abstract():
    with pytest.raises(NotImplementedError, match="MetricResults must implement query"):
        MetricResults().query()


def test_cells_runner_api():
    cell = CounterCell()
    cell.inc()
    cell.inc(4)
    cell.dec(2)
    cell.update(10)
    assert cell.get_cumulative() == 13
    c = MetricsContainer("s")
    assert c.get_counter(MetricName("ns", "n")) is c.get_counter(MetricName("ns", "n"))
    c.get_gauge(MetricName("ns", "g")).set("v", timestamp=3.0)
    assert c.to_updates().gauges == {("s", "ns", "g"): ("v", 3.0)}
