"""TestPipeline: a Pipeline for tests that always runs and waits on exit.

Options come from keyword ``options``, from ``argv``, or from the ``--test-pipeline-options``
command-line flag (a quoted string of pipeline flags), as with Beam's TestPipeline.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from typing import Any

from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline
from headrace.model.result import PipelineResult

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
    ) -> None:
        self.is_integration_test = is_integration_test
        self.blocking = blocking
        flags = list(argv) if argv is not None else _flags_from_command_line()
        flags += list(additional_pipeline_args or [])
        self.options_list = flags
        if options is None:
            options = PipelineOptions(flags)
        super().__init__(runner=runner, options=options)

    def run(self, test_runner_api: Any = None) -> PipelineResult:
        result = super().run()
        if self.blocking:
            result.wait_until_finish()
        return result

    def get_option(self, name: str) -> Any:
        return self.options.get_all_options(retain_unknown_options=True).get(name)

    def get_pipeline_options(self) -> PipelineOptions:
        return self.options

    def get_full_options_as_args(self, **extra_opts: Any) -> list[str]:
        """The test's pipeline flags plus ``--key=value`` for each extra option, as Beam's
        TestPipeline: a false value is left out, ``True`` gives a bare ``--key``.

        >>> TestPipeline(argv=["--runner=DirectRunner"]).get_full_options_as_args(
        ...     output="/tmp/out", streaming=True, dry=False)
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


def _flags_from_command_line() -> list[str]:
    for i, arg in enumerate(sys.argv):
        if arg.startswith("--test-pipeline-options="):
            return shlex.split(arg.split("=", 1)[1])
        if arg == "--test-pipeline-options" and i + 1 < len(sys.argv):
            return shlex.split(sys.argv[i + 1])
    return []
