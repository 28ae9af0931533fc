"""``apache_beam.utils``."""

from headrace.beam.utils import sharded_key, timestamp, windowed_value

__all__ = ["sharded_key", "timestamp", "windowed_value"]
