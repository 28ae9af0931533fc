"""``apache_beam.utils.timestamp``."""

from headrace.model.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP, Duration, Timestamp

__all__ = ["MAX_TIMESTAMP", "MIN_TIMESTAMP", "Duration", "Timestamp"]
