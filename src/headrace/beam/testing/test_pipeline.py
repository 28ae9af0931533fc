"""``apache_beam.testing.test_pipeline``."""

from headrace.testing.test_pipeline import TestPipeline

__all__ = ["TestPipeline"]
