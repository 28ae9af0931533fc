"""``apache_beam.runners.runner``: the result of a run and its states."""

from headrace.model.result import PipelineResult, PipelineState

__all__ = ["PipelineResult", "PipelineState"]
