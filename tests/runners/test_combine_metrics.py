"""Metrics a CombineFn updates belong to its combine step (as in Beam), on every runner
configuration: the lifted pre-combine, the merge after the shuffle and extract_output all count
under the combine's label, not under the step that feeds it or the one it feeds."""

from __future__ import annotations

import headrace.beam as beam
from headrace.beam.metrics import Metrics
from headrace.beam.metrics.metric import MetricsFilter
from headrace.beam.testing.util import assert_that, equal_to


class ConcatCounting(beam.CombineFn):
    def __init__(self) -> None:
        self.inputs = Metrics.counter(self.__class__, "inputs")
        self.merges = Metrics.counter(self.__class__, "merges")
        self.outputs = Metrics.counter(self.__class__, "outputs")

    def create_accumulator(self):
        return ""

    def add_input(self, acc, element):
        self.inputs.inc()
        return acc + element

    def merge_accumulators(self, accs):
        self.merges.inc()
        return "".join(accs)

    def extract_output(self, acc):
        self.outputs.inc()
        return "".join(sorted(acc))


def _by_step(result, name):
    found = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    return {c.key.step: c.committed for c in found}


def test_combine_fn_metrics_count_under_each_combine_step(make_pipeline) -> None:
    p = make_pipeline()
    pairs = p | beam.Create([("k1", "a"), ("k1", "b"), ("k1", "c"), ("k2", "x"), ("k2", "y")])
    everything = pairs | beam.Values() | "All" >> beam.CombineGlobally(ConcatCounting())
    per_key = pairs | "PerKey" >> beam.CombinePerKey(ConcatCounting())
    lengths = per_key | "Lengths" >> beam.Map(lambda kv: len(kv[1]))
    assert_that(everything, equal_to(["abcxy"]), label="CheckAll")
    assert_that(lengths, equal_to([3, 2]), label="CheckLengths")
    result = p.run()
    result.wait_until_finish()

    inputs = _by_step(result, "inputs")
    assert inputs == {"All/CombinePerKey": 5, "PerKey": 5}
    outputs = _by_step(result, "outputs")
    assert outputs == {"All/CombinePerKey": 1, "PerKey": 2}
    # Merges happen after the shuffle (and, spilling, before it): only under the combine steps.
    assert set(_by_step(result, "merges")) <= {"All/CombinePerKey", "PerKey"}
