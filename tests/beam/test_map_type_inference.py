"""A Map's output type inferred from its function (Beam: apache_beam/typehints/
trivial_inference.py; ptransform_test ``test_pipeline_inference`` and
``test_inferred_bad_kv_type``), for straight-line functions of their arguments and constants."""

from __future__ import annotations

import pytest

import headrace.beam as beam
from headrace.beam import typehints
from headrace.model.inference import infer_return_type


def test_pairing_with_a_constant_is_inferred_through_group_by_key() -> None:
    p = beam.Pipeline()
    created = p | beam.Create(["a", "b"])
    mapped = created | "Pair" >> beam.Map(lambda x: (x, 1))
    grouped = mapped | beam.GroupByKey()
    assert mapped.element_type == typehints.KV[str, int]
    assert grouped.element_type == typehints.KV[str, typehints.Iterable[int]]


def test_an_inferred_triple_is_refused_by_group_by_key() -> None:
    p = beam.Pipeline()
    triples = p | beam.Create(["a"]) | "Triple" >> beam.Map(lambda x: (x, 0, 1.0))
    with pytest.raises(typehints.TypeCheckError, match="got Tuple\\[<class 'str'>, <class 'int'>"):
        _ = triples | beam.GroupByKey()


@pytest.mark.parametrize(
    "fn",
    [
        len,  # not a Python function
        lambda x: str(x) + "!",  # a call
        lambda x: x.upper(),  # an attribute
        lambda x: (x, 1) if x else (x, 2),  # a branch
    ],
)
def test_anything_else_is_left_unknown(fn: object) -> None:
    assert infer_return_type(fn, [str]) is None


def test_unknown_input_type_gives_no_inference() -> None:
    assert infer_return_type(lambda x: (x, 1), [None]) is None
    assert infer_return_type(lambda x: (1, "a"), [None]) == typehints.Tuple[int, str]


def test_an_inferred_pair_feeds_a_stateful_dofn() -> None:
    """A typed (key, value) pair is keyed input for state (Beam's combinefn_lifecycle
    ``test_combining_value_state`` keys with ``lambda x: (None, x)``)."""
    from headrace.beam.testing.util import assert_that, equal_to
    from headrace.beam.transforms import userstate

    class Total(beam.DoFn):
        TOTAL = userstate.CombiningValueStateSpec("total", sum)

        def process(self, element, total=beam.DoFn.StateParam(TOTAL)):  # type: ignore[no-untyped-def]
            total.add(element[1])
            yield total.read()

    with beam.Pipeline() as p:
        keyed = p | beam.Create([1, 2]) | beam.Map(lambda x: (None, x))
        assert keyed.element_type == typehints.Tuple[type(None), int]
        assert_that(keyed | beam.ParDo(Total()), equal_to([1, 3]))
