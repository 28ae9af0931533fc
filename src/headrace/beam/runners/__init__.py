"""``apache_beam.runners``: the runner API module paths Beam programs import."""

from headrace.beam.runners import runner
from headrace.model.result import PipelineResult, PipelineState

__all__ = ["PipelineResult", "PipelineState", "runner"]
