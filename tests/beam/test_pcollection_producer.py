"""``PCollection.producer``: the primitive transform that made a PCollection.

Beam (apache_beam/pipeline.py, ``Pipeline.apply`` sets ``result.producer`` only once, for the
leaf transform; ``AppliedPTransform.__repr__``) — ptransform_test's ``test_str`` prints it as
``AppliedPTransform(ALabel, Impulse)``; core_test reads ``ok.producer.transform``.
"""

from __future__ import annotations

import headrace.beam as beam


def test_producer_of_a_primitive_names_label_and_transform_type() -> None:
    p = beam.Pipeline()
    res = p | "ALabel" >> beam.Impulse()
    assert str(res.producer) == "AppliedPTransform(ALabel, Impulse)"
    assert isinstance(res.producer.transform, beam.Impulse)
    assert res.producer.inputs == ()


def test_producer_of_a_composite_output_is_its_innermost_primitive() -> None:
    p = beam.Pipeline()
    src = p | beam.Create([1, 2])
    out = src | "Double" >> beam.Map(lambda x: 2 * x)
    assert out.producer.full_label == "Double"
    assert isinstance(out.producer.transform, beam.ParDo)
    assert out.producer.inputs == (src,)
    counted = src | "Count" >> beam.combiners.Count.Globally()
    assert counted.producer.full_label.startswith("Count/")
    assert counted.producer.outputs["main"] is counted


def test_every_output_of_a_multi_output_pardo_shares_the_producer() -> None:
    p = beam.Pipeline()
    outs = p | beam.Create([1]) | "Split" >> beam.ParDo(lambda x: [x]).with_outputs("odd", main="m")
    assert outs.m.producer is outs.odd.producer
    assert outs.m.producer.full_label == "Split"


def test_transform_str_shows_inputs_and_side_inputs_attributes() -> None:
    """Beam's ptransform_test ``test_str``."""
    assert str(beam.PTransform()) == "<PTransform(PTransform) label=[PTransform]>"
    t = (beam.Pipeline() | beam.Impulse()).producer.transform
    t.inputs = ("ci",)
    assert str(t) == "<Impulse(PTransform) label=[Impulse] inputs=('ci',)>"
    t.side_inputs = ("cs",)
    assert str(t) == "<Impulse(PTransform) label=[Impulse] inputs=('ci',) side_inputs=('cs',)>"
