"""``apache_beam.utils``."""

from headrace.beam.utils import timestamp

__all__ = ["timestamp"]
