"""TestPipeline: a Pipeline for tests that always runs and waits on exit.

Options come from keyword ``options``, from ``argv``, or from the ``--test-pipeline-options``
command-line flag (a quoted string of pipeline flags), as with Beam's TestPipeline.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import unittest
from collections.abc import Sequence
from typing import Any

from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.model.result import PipelineResult, PipelineState

__all__ = ["TestPipeline"]


class TestPipeline(Pipeline):
    """A pipeline for tests.

    >>> from headrace.model.transforms.core import Create, Map
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with TestPipeline() as p:
    ...     assert_that(p | Create([1, 2]) | Map(lambda x: -x), equal_to([-1, -2]))
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        runner: Any = None,
        options: PipelineOptions | None = None,
        argv: Sequence[str] | None = None,
        is_integration_test: bool = False,
        blocking: bool = True,
        additional_pipeline_args: Sequence[str] | None = None,
        display_data: Any = None,
        timeout: float | None = None,
    ) -> None:
        self.is_integration_test = is_integration_test
        self.blocking = blocking
        self.timeout = timeout
        self.not_use_test_runner_api = False
        self.options_list = self._parse_test_option_args(argv) + list(
            additional_pipeline_args or []
        )
        if options is None:
            options = PipelineOptions(self.options_list)
        super().__init__(runner=runner, options=options)

    def _parse_test_option_args(self, argv: Sequence[str] | None) -> list[str]:
        """The flags in ``--test-pipeline-options`` (of ``argv``, else the command line); an
        integration test without them is skipped, as in Beam."""
        parser = argparse.ArgumentParser(add_help=False)
        parser.add_argument("--test-pipeline-options", type=str, default=None)
        parser.add_argument("--not-use-test-runner-api", action="store_true", default=False)
        known, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
        if self.is_integration_test and not known.test_pipeline_options:
            raise unittest.SkipTest(
                "IT is skipped because --test-pipeline-options is not specified"
            )
        self.not_use_test_runner_api = known.not_use_test_runner_api
        return shlex.split(known.test_pipeline_options or "")

    def run(self, test_runner_api: Any = None) -> PipelineResult:
        result = super().run()
        if self.blocking:
            state = result.wait_until_finish(self.timeout)
            if state not in (PipelineState.DONE, PipelineState.CANCELLED):
                raise AssertionError(f"Pipeline execution failed (state {state})")
        return result

    def get_option(self, name: str, bool_option: bool = False) -> Any:
        """The value of ``--name`` in the test's pipeline flags (None when absent)."""
        parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
        if bool_option:
            parser.add_argument(f"--{name}", action="store_true", default=None)
        else:
            parser.add_argument(f"--{name}", type=str, default=None)
        known, _ = parser.parse_known_args(self.options_list)
        return getattr(known, name.replace("-", "_"), None)

    def get_pipeline_options(self) -> PipelineOptions:
        return self.options

    def get_full_options_as_args(self, **extra_opts: Any) -> list[str]:
        """The test's pipeline flags plus ``--key=value`` for each extra option, as Beam's
        TestPipeline: a false value is left out, ``True`` gives a bare ``--key``.

        >>> p = TestPipeline(argv=["--test-pipeline-options=--runner=DirectRunner"])
        >>> p.get_full_options_as_args(output="/tmp/out", streaming=True, dry=False)
        ['--runner=DirectRunner', '--output=/tmp/out', '--streaming']
        """
        options = list(self.options_list)
        for key, value in extra_opts.items():
            if not value:
                continue
            if value is True:
                options.append(f"--{key}")
            else:
                options.append(f"--{key}={value}")
        return options
