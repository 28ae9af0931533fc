"""``apache_beam.testing``."""

from headrace.beam.testing import test_pipeline, test_stream, util

__all__ = ["test_pipeline", "test_stream", "util"]
