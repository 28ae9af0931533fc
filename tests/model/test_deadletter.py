"""with_exception_handling(): dead-letter outputs on ParDo, Map and FlatMap.

Follows Beam's ``ExceptionHandlingTest`` and ``ExceptionHandlingWithOutputsTest`` in
apache_beam/transforms/core_test.py and ``_ExceptionHandlingWrapperDoFn`` in core.py.
"""

from __future__ import annotations

import pytest

import headrace.beam as beam
from headrace.model.pipeline import Pipeline
from headrace.testing.util import assert_that, equal_to


class FailOnLong(beam.DoFn):
    def process(self, word):
        if len(word) > 5:
            raise ValueError(f"too long: {word}")
        yield word


class FailOnEven(beam.DoFn):
    def process(self, x):
        if x % 2 == 0:
            raise ValueError(f"even {x}")
        if x % 3 == 0:
            yield beam.pvalue.TaggedOutput("threes", x)
        else:
            yield x


def _bad_summary(bad):
    return bad | "Summary" >> beam.Map(lambda b: (b[0], b[1][0].__name__, b[1][1]))


def test_pardo_routes_failures_to_bad() -> None:
    with Pipeline() as p:
        good, bad = (
            p
            | beam.Create(["abc", "long_word", "foo", "foobar"])
            | beam.ParDo(FailOnLong()).with_exception_handling()
        )
        assert_that(good, equal_to(["abc", "foo"]), label="Good")
        assert_that(
            _bad_summary(bad),
            equal_to(
                [
                    ("long_word", "ValueError", "ValueError('too long: long_word')"),
                    ("foobar", "ValueError", "ValueError('too long: foobar')"),
                ]
            ),
            label="Bad",
        )


def test_bad_element_carries_the_traceback_lines() -> None:
    out = [0] | beam.Map(lambda x: 1 // x).with_exception_handling()
    [(element, (exc_type, exc_repr, tb))] = out["bad"]
    assert (element, exc_type) == (0, ZeroDivisionError)
    assert exc_repr == repr(ZeroDivisionError("integer division or modulo by zero"))
    assert isinstance(tb, list) and "ZeroDivisionError" in tb[-1]


def test_flatmap_without_partial_emits_nothing_for_a_failing_element() -> None:
    def explode(x):
        yield x
        if x == 2:
            raise KeyError(x)
        yield x * 10

    with Pipeline() as p:
        good, bad = p | beam.Create([1, 2]) | beam.FlatMap(explode).with_exception_handling()
        assert_that(good, equal_to([1, 10]), label="Good")
        assert_that(bad | beam.Keys(), equal_to([2]), label="Bad")


def test_flatmap_partial_keeps_outputs_before_the_failure() -> None:
    def explode(x):
        yield x
        raise KeyError(x)

    good = ([1] | beam.FlatMap(explode).with_exception_handling(partial=True)).good
    assert good == [1]


def test_exc_class_limits_what_is_caught() -> None:
    p = Pipeline()
    _ = (
        p
        | beam.Create([0])
        | beam.Map(lambda x: 1 // x).with_exception_handling(exc_class=KeyError)
    )
    with pytest.raises(ZeroDivisionError):
        p.run().wait_until_finish()


def test_custom_tags_and_callback(tmp_path) -> None:
    log = tmp_path / "failures"

    def on_failure(exc, element):
        with open(log, "a") as f:
            f.write(f"{type(exc).__name__}:{element}\n")

    with Pipeline() as p:
        ok, dead = (
            p
            | beam.Create(["a", "toolong"])
            | beam.ParDo(FailOnLong()).with_exception_handling(
                main_tag="ok", dead_letter_tag="dead", on_failure_callback=on_failure
            )
        )
        assert_that(ok, equal_to(["a"]), label="Ok")
        assert_that(dead | beam.Keys(), equal_to(["toolong"]), label="Dead")
    assert log.read_text() == "ValueError:toolong\n"


@pytest.mark.parametrize("order", ["handling_then_outputs", "outputs_then_handling"])
def test_with_outputs_in_either_order(order: str) -> None:
    pardo = beam.ParDo(FailOnEven())
    if order == "handling_then_outputs":
        t = pardo.with_exception_handling().with_outputs("threes", main="main")
    else:
        t = pardo.with_outputs("threes", main="main").with_exception_handling()
    with Pipeline() as p:
        results = p | beam.Create([1, 2, 3, 4, 7]) | t
        assert_that(results.main, equal_to([1, 7]), label="Main")
        assert_that(results.threes, equal_to([3]), label="Threes")
        assert_that(results.bad | beam.Keys(), equal_to([2, 4]), label="Bad")


def test_threshold_fails_the_pipeline_when_exceeded() -> None:
    p = Pipeline()
    _ = (
        p
        | beam.Create([0, 0, 1])
        | beam.Map(lambda x: 1 // x).with_exception_handling(threshold=0.5)
    )
    with pytest.raises(Exception, match="exceeded the threshold"):
        p.run().wait_until_finish()


def test_threshold_not_exceeded_passes() -> None:
    with Pipeline() as p:
        good, _ = (
            p
            | beam.Create([0, 1, 1])
            | beam.Map(lambda x: 1 // x).with_exception_handling(threshold=0.5)
        )
        assert_that(good, equal_to([1, 1]))


def test_unsupported_options_are_refused() -> None:
    with pytest.raises(NotImplementedError, match="allow_unsafe_userstate_in_process"):
        beam.Map(str).with_exception_handling(allow_unsafe_userstate_in_process=True)
    with pytest.raises(ValueError, match="timeout"):
        beam.Map(str).with_exception_handling(timeout=0)
