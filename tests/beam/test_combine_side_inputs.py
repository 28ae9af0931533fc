"""Side inputs to CombinePerKey / CombineGlobally / CombineValues.

Beam (apache_beam/transforms/core.py ``CombinePerKey.__new__`` and ``LiftedCombinePerKey`` in
apache_beam/transforms/combiners.py): when an argument is a side-input view, the combine runs as
ParDos that read the view, and every CombineFn method (create_accumulator, add_input, compact,
merge_accumulators, extract_output) receives the arguments with the views replaced by their
values in the element's window.
"""

from __future__ import annotations

from typing import Any

import pytest

import headrace.beam as beam
from headrace.beam import pvalue, window
from headrace.beam.testing.util import assert_that, equal_to


def _common(sets: list[set[str]], excluded: Any = "") -> set[str]:
    return set.intersection(*(sets or [set()])).difference(excluded)


PRODUCE = [{"a", "b", "x"}, {"b", "x", "c"}, {"x", "b"}]


@pytest.mark.parametrize("as_kwarg", [False, True])
@pytest.mark.parametrize("wrap", [False, True])
def test_combine_per_key_and_globally_read_a_singleton(as_kwarg: bool, wrap: bool) -> None:
    combiner: Any = beam.CombineFn.from_callable(_common) if wrap else _common
    with beam.Pipeline() as p:
        side = pvalue.AsSingleton(p | "Side" >> beam.Create(["x"]))
        args, kwargs = ((), {"excluded": side}) if as_kwarg else ((side,), {})
        data = p | beam.Create(PRODUCE)
        per_key = (
            data | beam.WithKeys(lambda _: "k") | beam.CombinePerKey(combiner, *args, **kwargs)
        )
        glob = data | beam.CombineGlobally(combiner, *args, **kwargs)
        assert_that(per_key, equal_to([("k", {"b"})]), label="PerKey")
        assert_that(glob, equal_to([{"b"}]), label="Globally")


def test_every_combinefn_method_receives_static_and_side_arguments() -> None:
    class Recording(beam.CombineFn):
        def create_accumulator(self, *args: Any, **kwargs: Any) -> Any:
            return ("acc", args, kwargs)

        def add_input(self, acc: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
            assert (args, kwargs) == ((0, 1), {"s": 2, "d": 3}), ("add_input", args, kwargs)
            return acc

        def compact(self, acc: Any, *args: Any, **kwargs: Any) -> Any:
            assert (args, kwargs) == ((0, 1), {"s": 2, "d": 3}), ("compact", args, kwargs)
            return acc

        def merge_accumulators(self, accs: Any, *args: Any, **kwargs: Any) -> Any:
            assert (args, kwargs) == ((0, 1), {"s": 2, "d": 3}), ("merge", args, kwargs)
            return ("merged", args, kwargs)

        def extract_output(self, acc: Any, *args: Any, **kwargs: Any) -> Any:
            return (acc, args, kwargs)

    with beam.Pipeline() as p:
        one = pvalue.AsSingleton(p | "One" >> beam.Create([1]))
        three = pvalue.AsSingleton(p | "Three" >> beam.Create([3]))
        out = (
            p
            | beam.Create([("k", "v1"), ("k", "v2")])
            | beam.CombinePerKey(Recording(), 0, one, s=2, d=three)
        )
        expected_args = ((0, 1), {"s": 2, "d": 3})
        assert_that(out, equal_to([("k", (("merged", *expected_args), *expected_args))]))


def _sum_with_floor(values: Any, min_value: int = 0) -> int:
    total = sum(values)
    return total + min_value if total < min_value else total


def test_side_values_follow_the_window_of_the_combined_elements() -> None:
    """Beam's combiners_test ``test_cpk_with_windows``: a windowed side input gives each
    window its own value; a globally windowed one the same value to every window."""
    with beam.Pipeline() as p:
        floors = (
            p
            | "Floors"
            >> beam.Create([window.TimestampedValue(50, 5), window.TimestampedValue(1000, 100)])
            | "WindowFloors" >> beam.WindowInto(window.FixedWindows(99))
        )
        data = (
            p
            | beam.Create([1, 2, 100, 101, 102])
            | beam.Map(lambda x: window.TimestampedValue(("k", x), x))
            | beam.WindowInto(window.FixedWindows(99))
        )
        windowed = data | "Windowed" >> beam.CombinePerKey(
            _sum_with_floor, min_value=pvalue.AsSingleton(floors)
        )
        global_floor = pvalue.AsSingleton(p | "Global" >> beam.Create([100]))
        globally = data | "GlobalSide" >> beam.CombinePerKey(
            _sum_with_floor, min_value=global_floor
        )
        assert_that(windowed, equal_to([("k", 53), ("k", 1303)]), label="CheckWindowed")
        assert_that(globally, equal_to([("k", 103), ("k", 303)]), label="CheckGlobal")


def test_empty_global_combine_uses_the_side_values_for_its_default() -> None:
    def total_plus(values: Any, extra: int) -> int:
        return sum(values) + extra

    with beam.Pipeline() as p:
        extra = pvalue.AsSingleton(p | "Extra" >> beam.Create([7]))
        out = p | beam.Create([]) | beam.CombineGlobally(total_plus, extra)
        assert_that(out, equal_to([7]))


def test_combine_values_reads_side_inputs() -> None:
    with beam.Pipeline() as p:
        extra = pvalue.AsList(p | "Extra" >> beam.Create([10, 20]))
        out = (
            p
            | beam.Create([("a", [1, 2]), ("b", [3])])
            | beam.CombineValues(lambda vs, more: sum(vs) + sum(more), extra)
        )
        assert_that(out, equal_to([("a", 33), ("b", 33)]))


def test_default_view_with_side_inputs_is_refused_naming_the_transform() -> None:
    with beam.Pipeline() as p:
        extra = pvalue.AsSingleton(p | "Extra" >> beam.Create([7]))
        with pytest.raises(NotImplementedError, match="Views.*as_singleton_view"):
            _ = (
                p
                | beam.Create([1])
                | "Views" >> beam.CombineGlobally(_sum_with_floor, extra).as_singleton_view()
            )
