"""Pipeline type checking: construction-time checks of input hints, output hints as element
types, the TypeOptions, and run-time checks. Follows Beam's ``PTransformTypeCheckTestCase`` in
apache_beam/transforms/ptransform_test.py (messages, ALL_REQUIRED, disabling the check)."""

from __future__ import annotations

import typing

import pytest

import headrace.beam as beam
from headrace.beam.options.pipeline_options import PipelineOptions, TypeOptions
from headrace.beam.typehints import (
    TypeCheckError,
    TypeVariable,
    with_input_types,
    with_output_types,
)
from headrace.model.pipeline import Pipeline
from headrace.model.typehints import format_hint, is_consistent_with
from headrace.testing.util import assert_that, equal_to


def test_map_input_hint_violation_names_transform_and_producer() -> None:
    p = Pipeline()
    with pytest.raises(TypeCheckError, match=r"'Upper' requires.*str.*applied.*int.*'T'"):
        _ = (
            p
            | "T" >> beam.Create([1, 2]).with_output_types(int)
            | "Upper" >> beam.Map(lambda x: x.upper()).with_input_types(str)
        )


def test_decorated_function_and_dofn_hints_are_checked() -> None:
    @with_input_types(a=float)
    def more_than_half(a):
        return a > 0.5

    @with_input_types(str, str)
    @with_output_types(str)
    class Prefix(beam.DoFn):
        def process(self, element, prefix):
            return [prefix + element]

    p = Pipeline()
    with pytest.raises(TypeCheckError, match=r"Half.*requires.*float.*applied.*str"):
        _ = p | "S" >> beam.Create(["1"]) | "Half" >> beam.Filter(more_than_half)
    with pytest.raises(TypeCheckError, match=r"Pre.*requires.*str.*applied.*int"):
        _ = p | "I" >> beam.Create([1]) | "Pre" >> beam.ParDo(Prefix(), "x")


def test_consistent_hints_run_and_set_the_output_type() -> None:
    @with_input_types(a=str)
    @with_output_types(list[str])
    def upper_all(a):
        return [a.upper()]

    with Pipeline() as p:
        d = p | "T" >> beam.Create(["a", "b"]).with_output_types(str) | beam.FlatMap(upper_all)
        assert_that(d, equal_to(["A", "B"]))
    assert d.element_type is str  # a FlatMap's elements, not List[str]


def test_group_by_key_needs_kv_and_infers_its_output_type() -> None:
    p = Pipeline()
    with pytest.raises(TypeCheckError) as e:
        _ = p | "A" >> beam.Create([1, 2]) | "D" >> beam.GroupByKey()
    assert str(e.value).startswith(
        "Input type hint violation at D: expected Tuple[TypeVariable[K], TypeVariable[V]], "
        "got <class 'int'>"
    )
    with pytest.raises(TypeCheckError, match=r"got Iterable\[<class 'int'>\]"):
        _ = (
            p
            | beam.Create([[1]]).with_output_types(typing.Iterable[int])
            | "T" >> beam.GroupByKey()
        )
    q = Pipeline()
    d = (
        q
        | beam.Create(range(3)).with_output_types(int)
        | beam.Map(lambda x: (x, -x)).with_output_types(tuple[int, int])
        | beam.GroupByKey()
    )
    assert is_consistent_with(d.element_type, tuple[int, typing.Iterable[int]])
    assert not is_consistent_with(d.element_type, tuple[int, int])


def test_pipeline_type_check_can_be_turned_off() -> None:
    p = Pipeline()
    p.options.view_as(TypeOptions).pipeline_type_check = False
    _ = p | beam.Create([1]).with_output_types(int) | beam.Map(str).with_input_types(str)


def test_all_required_strictness() -> None:
    """Beam's exact messages (test_pipeline_checking_*_insufficient_type_information)."""
    p = Pipeline(options=PipelineOptions(type_check_strictness="ALL_REQUIRED"))
    with pytest.raises(TypeCheckError) as e:
        _ = p | "Nums" >> beam.Create(range(5)) | "ModDup" >> beam.FlatMap(lambda x: (x, x))
    assert str(e.value) == (
        "Pipeline type checking is enabled, however no output type-hint was found for the "
        "PTransform Create(Nums)"
    )
    with pytest.raises(TypeCheckError, match=r"for the PTransform ParDo\(Dup\)$"):
        _ = (
            p
            | "Ints" >> beam.Create(range(5)).with_output_types(int)
            | "Dup" >> beam.Map(lambda x: (x, x))
            | beam.GroupByKey()
        )


def test_runtime_type_check_fails_the_run() -> None:
    opts = PipelineOptions(runtime_type_check=True, pipeline_type_check=False)
    p = Pipeline(options=opts)
    _ = p | beam.Create(["1"]) | "Add" >> beam.Map(lambda x: x + "1").with_input_types(int)
    with pytest.raises(TypeCheckError, match="within Add.*Expected an instance of <class 'int'>"):
        p.run().wait_until_finish()
    q = Pipeline(options=opts)
    _ = q | beam.Create([1]) | "Out" >> beam.Map(str).with_output_types(int)
    with pytest.raises(TypeCheckError, match="within Out: type-hint for the output"):
        q.run().wait_until_finish()


def test_runtime_type_check_passes_good_elements() -> None:
    with Pipeline(options=PipelineOptions(runtime_type_check=True)) as p:
        out = (
            p
            | beam.Create([1, 2])
            | beam.FlatMap(lambda x: [x, x]).with_input_types(int).with_output_types(int)
        )
        assert_that(out, equal_to([1, 1, 2, 2]))


def test_consistency_and_formatting() -> None:
    k = TypeVariable("K")
    assert is_consistent_with(int, int | None)
    assert is_consistent_with(tuple[str, int], tuple[k, int])
    assert not is_consistent_with(tuple[str, int], tuple[int, int])
    assert not is_consistent_with(str, int)
    assert is_consistent_with(bool, int)
    assert format_hint(tuple[str, typing.Iterable[int]]) == (
        "Tuple[<class 'str'>, Iterable[<class 'int'>]]"
    )
