"""Which returned values are iterated and which are refused.

Beam (apache_beam/runners/common.py, ``_OutputHandler``): a str, bytes or dict returned by
``process`` is refused with a TypeError only for a user's DoFn class whose ``process`` is not
a generator; Map/FlatMap and ParDo(function) wrap the callable and iterate what it returns, so
``FlatMap()`` over strings gives their characters (Beam's core_test ``FlatMapTest.test_default``).
"""

from __future__ import annotations

from typing import Any

import pytest

import headrace.beam as beam
from headrace.beam.testing.util import assert_that, equal_to


def test_flatmap_identity_over_strings_gives_characters() -> None:
    with beam.Pipeline() as p:
        out = p | beam.Create(["abc", "de"]) | beam.FlatMap()
        assert_that(out, equal_to(["a", "b", "c", "d", "e"]))


def test_flatmap_and_pardo_function_iterate_a_returned_dict_and_str() -> None:
    with beam.Pipeline() as p:
        data = p | beam.Create([1])
        keys = data | "Dict" >> beam.FlatMap(lambda x: {"k": x, "j": x})
        chars = data | "Str" >> beam.ParDo(lambda x: "xy")
        assert_that(keys, equal_to(["k", "j"]), label="Keys")
        assert_that(chars, equal_to(["x", "y"]), label="Chars")


class ReturnsStr(beam.DoFn):
    def process(self, element: Any) -> Any:
        return "oops"


def test_a_dofn_class_returning_a_str_is_refused() -> None:
    with pytest.raises(Exception, match="returned a str"):
        with beam.Pipeline() as p:
            _ = p | beam.Create([1]) | beam.ParDo(ReturnsStr())


def test_partition_apply_partition_fn_fn_tags_by_index_numpy_included() -> None:
    """Beam's ``Partition.ApplyPartitionFnFn`` (core_test's numpy-integer tests)."""
    import numpy as np

    class ByMod(beam.PartitionFn):
        def partition_for(self, element: Any, num_partitions: int) -> Any:
            return np.int32(element % num_partitions)

    fn = beam.Partition.ApplyPartitionFnFn()
    (out,) = list(fn.process(np.int64(5), ByMod(), 3))
    assert (out.tag, out.value) == ("2", 5)
    with pytest.raises(ValueError, match="out-of-bounds"):
        list(fn.process(1, lambda e, n: 7, 3))


@pytest.mark.parametrize(
    ("fn", "message"),
    [
        (lambda x: x + "1", "Returning a str from a ParDo or FlatMap is discouraged"),
        (lambda x: {x: 1}, "Returning a dict from a ParDo or FlatMap is discouraged"),
        (len, "FlatMap and ParDo must return an iterable"),
    ],
)
def test_runtime_type_check_refuses_non_list_returns(fn: Any, message: str) -> None:
    """Beam's ptransform_test ``test_do_with_do_fn_returning_string_raises_warning`` and
    friends: with ``runtime_type_check`` on, even an unhinted FlatMap's return is checked."""
    from headrace.beam.options.pipeline_options import PipelineOptions, TypeOptions

    options = PipelineOptions()
    options.view_as(TypeOptions).runtime_type_check = True
    with pytest.raises(Exception, match=message):
        with beam.Pipeline(options=options) as p:
            _ = p | beam.Create(["2", "9"]) | beam.FlatMap(fn)
