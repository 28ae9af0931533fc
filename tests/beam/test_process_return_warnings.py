"""Construction-time warnings about a DoFn's ``process`` (Beam: apache_beam/transforms/core.py,
``ParDo.__init__``; core_test ``test_dofn_with_yield_and_return`` and
``test_dofn_with_explicit_return_none``): yielding and returning a value, or ``return None``."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import headrace.beam as beam


class YieldsAndReturns(beam.DoFn):
    def process(self, element: Any) -> Any:
        if element:
            yield element
        return [element]


class ReturnsNone(beam.DoFn):
    def process(self, element: Any) -> Any:
        return None


class FilterLike(beam.DoFn):
    def process(self, element: Any) -> Any:
        if not element:
            return
        return [element]


class InnerGenerator(beam.DoFn):
    def process(self, element: Any) -> Any:
        def inner() -> Any:
            yield element

        return inner()


class VariableNamedYield(beam.DoFn):
    def process(self, element: Any) -> Any:
        yield_value = [element]
        return yield_value


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (YieldsAndReturns, "Using yield and return"),
        (ReturnsNone, "Process method returned None"),
        (FilterLike, None),
        (InnerGenerator, None),
        (VariableNamedYield, None),
    ],
)
def test_warning_names_the_dofn_class(
    caplog: pytest.LogCaptureFixture, cls: type, expected: str | None
) -> None:
    with caplog.at_level(logging.WARNING):
        beam.ParDo(cls())
    if expected is None:
        assert "Using yield and return" not in caplog.text
        assert "returned None" not in caplog.text
    else:
        assert expected in caplog.text
        assert str(cls) in caplog.text
