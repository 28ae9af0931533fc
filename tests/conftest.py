"""Shared fixtures: ``make_pipeline`` builds pipelines for each direct-runner configuration.

Tests that take ``make_pipeline`` (or ``pipeline_options``) run twice: in this process and with
two worker processes, so both execution paths must agree.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from headrace.model.options import PipelineOptions
from headrace.model.pipeline import Pipeline

RUNNER_CONFIGS: dict[str, dict[str, object]] = {
    "in_process": {},
    "two_processes": {"direct_num_workers": 2, "direct_running_mode": "multi_processing"},
}


@pytest.fixture(params=list(RUNNER_CONFIGS))
def pipeline_options(request: pytest.FixtureRequest) -> PipelineOptions:
    """Options for one direct-runner configuration (see ``RUNNER_CONFIGS``)."""
    return PipelineOptions(**RUNNER_CONFIGS[request.param])


@pytest.fixture
def make_pipeline(pipeline_options: PipelineOptions) -> Callable[[], Pipeline]:
    """A factory of pipelines that run with ``pipeline_options``."""
    return lambda: Pipeline(options=pipeline_options)
