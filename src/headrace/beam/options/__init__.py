"""``apache_beam.options``."""

from headrace.beam.options import pipeline_options
from headrace.beam.options.pipeline_options import PipelineOptions

__all__ = ["PipelineOptions", "pipeline_options"]
