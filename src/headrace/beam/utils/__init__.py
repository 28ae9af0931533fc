"""``apache_beam.utils``."""

from headrace.beam.utils import timestamp, windowed_value

__all__ = ["timestamp", "windowed_value"]
