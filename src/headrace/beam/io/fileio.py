"""``apache_beam.io.fileio`` (the continuous matching part)."""

from headrace.io.streaming import MatchContinuously

__all__ = ["MatchContinuously"]
