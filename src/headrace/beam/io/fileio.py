"""``apache_beam.io.fileio`` (the continuous matching part and ``EmptyMatchTreatment``)."""

from headrace.io.filesystem import EmptyMatchTreatment
from headrace.io.streaming import MatchContinuously

__all__ = ["EmptyMatchTreatment", "MatchContinuously"]
