"""``with_exception_handling(timeout=..., use_subprocess=True)``.

Beam (apache_beam/transforms/core.py ``_TimeoutDoFn``/``_SubprocessDoFn``; ptransform_test
``DeadLettersTest``): an element whose processing overruns ``timeout`` goes to the dead letters
as ``TimeoutError()``; with ``use_subprocess`` a hard crash (``os._exit``) of an element becomes
a dead letter and later elements still run, the DoFn being set up again in a new child.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

import headrace.beam as beam
from headrace.beam.testing.util import assert_that, equal_to


def _crash_if_negative(x: int, bound: int = 0) -> Any:
    if x < bound:
        os._exit(3)
    return x, bound


@pytest.mark.slow
@pytest.mark.parametrize("use_subprocess", [False, True])
def test_overrunning_elements_become_timeout_dead_letters(use_subprocess: bool) -> None:
    timeout = 1.0 if use_subprocess else 0.2

    def slow_if_s(x: str) -> str:
        if x.startswith("s"):
            time.sleep(3 * timeout)
        return x

    with beam.Pipeline() as p:
        good, bad = (
            p
            | beam.Create(["alpha", "slow", "beta"])
            | beam.Map(slow_if_s).with_exception_handling(
                use_subprocess=use_subprocess, timeout=timeout
            )
        )
        assert_that(good, equal_to(["alpha", "beta"]), label="Good")
        assert_that(
            bad | beam.MapTuple(lambda e, info: (e, info[1])),
            equal_to([("slow", "TimeoutError()")]),
            label="Bad",
        )


def test_a_crash_in_the_child_is_a_dead_letter_and_side_arguments_still_arrive() -> None:
    with beam.Pipeline() as p:
        good, bad = (
            p
            | beam.Create([-1, 10, 100])
            | beam.Map(_crash_if_negative, bound=20).with_exception_handling(use_subprocess=True)
        )
        assert_that(good, equal_to([(100, 20)]), label="Good")
        assert_that(bad | beam.Keys(), equal_to([-1, 10]), label="Bad")


class Lifecycle(beam.DoFn):
    state: str | None = None

    def setup(self) -> None:
        assert self.state is None
        self.state = "setup"

    def start_bundle(self) -> None:
        assert self.state in ("setup", "finish_bundle"), self.state
        self.state = "start_bundle"

    def finish_bundle(self) -> None:
        assert self.state == "start_bundle", self.state
        self.state = "finish_bundle"

    def process(self, x: int) -> Any:
        if x < 0:
            os._exit(1)
        yield self.state


def test_lifecycle_is_kept_across_child_replacements() -> None:
    with beam.Pipeline() as p:
        good, _ = (
            p
            | beam.Create([-1, 0, 1, -10, 10])
            | beam.ParDo(Lifecycle()).with_exception_handling(use_subprocess=True)
        )
        assert_that(good, equal_to(["start_bundle"] * 3))


def test_crash_not_in_exc_class_fails_the_run() -> None:
    with pytest.raises(Exception):
        with beam.Pipeline() as p:
            _ = (
                p
                | beam.Create([-1])
                | beam.Map(_crash_if_negative).with_exception_handling(
                    use_subprocess=True, exc_class=TypeError
                )
            )
