"""``apache_beam.transforms.periodicsequence``."""

from headrace.io.streaming import PeriodicImpulse, PeriodicSequence

__all__ = ["PeriodicImpulse", "PeriodicSequence"]
