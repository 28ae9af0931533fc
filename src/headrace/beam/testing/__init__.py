"""``apache_beam.testing``."""

from headrace.beam.testing import test_pipeline, util

__all__ = ["test_pipeline", "util"]
