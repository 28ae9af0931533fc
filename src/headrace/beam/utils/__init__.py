"""``apache_beam.utils``."""

from headrace.beam.utils import secret, sharded_key, timestamp, windowed_value

__all__ = ["secret", "sharded_key", "timestamp", "windowed_value"]
