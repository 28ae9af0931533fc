"""``ErrorHandler`` / ``CollectingErrorHandler`` and ``with_error_handler``.

Beam (apache_beam/transforms/error_handling.py; core.py ``_ExceptionHandlingWrapper.expand``):
error records go to the handler, whose consumer is applied once to all of them when it closes;
``with_error_handler`` returns the good output alone; a handler left unclosed (or a collecting
handler whose output was never read) fails ``Pipeline.run``.
"""

from __future__ import annotations

from typing import Any

import pytest

import headrace.beam as beam
from headrace.beam.testing.util import assert_that, equal_to
from headrace.beam.transforms import error_handling


def _title_short(x: str, limit: int) -> str:
    if len(x) > limit:
        raise ValueError(x)
    return x.title()


class SplitsBad(beam.PTransform):
    """A composite reporting bad records to a handler itself (Beam's own example)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.handler: Any = None

    def with_error_handler(self, handler: Any) -> SplitsBad:
        self.handler = handler
        return self

    def expand(self, pcoll: Any) -> Any:
        limit = self.limit

        def split(x: str) -> Any:
            return x.title() if len(x) < limit else beam.pvalue.TaggedOutput("bad", x)

        good, bad = pcoll | beam.Map(split).with_outputs("bad", main="good")
        self.handler.add_error_pcollection(bad)
        return good


def test_errors_of_two_transforms_meet_in_one_consumer() -> None:
    with beam.Pipeline() as p:
        words = p | beam.Create(["a", "bb", "cccc"])
        with error_handling.ErrorHandler(beam.Map(lambda e: f"error: {e}")) as handler:
            first = words | "Own" >> SplitsBad(3).with_error_handler(handler)
            second = words | "Map" >> beam.Map(_title_short, limit=1).with_error_handler(handler)
        out = handler.output()
        assert_that(first, equal_to(["A", "Bb"]), label="First")
        assert_that(second, equal_to(["A"]), label="Second")
        # the Map's dead letters are (element, error info) pairs; the composite's plain strings
        assert_that(
            out | beam.Map(lambda s: s.split(",")[0]),
            equal_to(["error: cccc", "error: ('bb'", "error: ('cccc'"]),
            label="Errors",
        )


def test_on_failure_callback_is_passed_through(tmp_path: Any) -> None:
    marker = tmp_path / "failed.txt"  # the DoFn runs on a copy: record through a file

    def record(exn: BaseException, element: Any) -> None:
        with open(marker, "a") as f:
            f.write(f"{element}\n")

    with beam.Pipeline() as p:
        with error_handling.CollectingErrorHandler() as handler:
            good = (
                p
                | beam.Create(["a", "cccc"])
                | beam.Map(_title_short, limit=3).with_error_handler(
                    handler, on_failure_callback=record
                )
            )
        assert_that(handler.output() | beam.Map(lambda b: b[0]), equal_to(["cccc"]), "Bad")
        assert_that(good, equal_to(["A"]), label="Good")
    assert marker.read_text().split() == ["cccc"]


def test_unclosed_handler_fails_the_run() -> None:
    with pytest.raises(RuntimeError, match="Unclosed error handler"):
        with beam.Pipeline() as p:
            handler = error_handling.ErrorHandler(beam.Map(lambda x: x))
            _ = p | beam.Create(["a"]) | SplitsBad(3).with_error_handler(handler)


def test_collecting_handler_whose_output_is_never_read_fails_the_run() -> None:
    with pytest.raises(RuntimeError, match="requires the output to be retrieved"):
        with beam.Pipeline() as p:
            with error_handling.CollectingErrorHandler() as handler:
                _ = (
                    p
                    | beam.Create(["a"])
                    | beam.Map(_title_short, limit=3).with_error_handler(handler)
                )


def test_output_before_close_is_refused() -> None:
    handler = error_handling.ErrorHandler(beam.Map(lambda x: x))
    with pytest.raises(RuntimeError, match="until it has been closed"):
        handler.output()
