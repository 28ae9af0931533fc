"""``PaneInfo.is_last`` of a grouping's output, as Beam Python gives it (checked against Apache Beam
2.78's own runner): Beam marks a pane last only when its trigger finished
(``apache_beam/transforms/trigger.py``, ``GeneralTriggerDriver._output``), and the default
trigger never finishes, so the one pane of a fixed, sliding or session window is *not* last,
even though no other pane can follow it. Only batch's single firing of the global window
(``BatchGlobalTriggerDriver.ONLY_FIRING``) is last."""

from __future__ import annotations

import pytest

import headrace.beam as beam
from headrace.beam.testing.util import assert_that, equal_to
from headrace.beam.transforms import window


class Reify(beam.DoFn):
    def process(self, kv, w=beam.DoFn.WindowParam, p=beam.DoFn.PaneInfoParam):
        yield (str(w), p.is_first, p.is_last, p.timing.name, p.index)


@pytest.mark.parametrize(
    ("window_fn", "expected"),
    [
        (window.FixedWindows(10), [("[0.0, 10.0)", True, False, "ON_TIME", 0),
                                   ("[10.0, 20.0)", True, False, "ON_TIME", 0)]),
        (window.Sessions(5), [("[1.0, 6.0)", True, False, "ON_TIME", 0),
                              ("[12.0, 17.0)", True, False, "ON_TIME", 0)]),
        (window.GlobalWindows(), [("GlobalWindow", True, True, "ON_TIME", 0)]),
    ],
    ids=["fixed", "sessions", "global"],
)  # fmt: skip
def test_the_one_pane_of_a_batch_window_is_last_only_in_the_global_window(window_fn, expected):
    with beam.Pipeline() as p:
        out = (
            p
            | beam.Create([("a", 1), ("a", 12)])
            | beam.Map(lambda kv: window.TimestampedValue(kv, kv[1]))
            | beam.WindowInto(window_fn)
            | beam.GroupByKey()
            | beam.ParDo(Reify())
        )
        assert_that(out, equal_to(expected))
