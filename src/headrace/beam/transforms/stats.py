"""``apache_beam.transforms.stats``."""

from headrace.model.transforms.stats import (
    ApproximateQuantiles,
    ApproximateQuantilesCombineFn,
    ApproximateUnique,
    ApproximateUniqueCombineFn,
)

__all__ = ["ApproximateQuantiles", "ApproximateUnique"]

# Importable by name as in Beam, though not part of ``from ... import *``.
_COMBINE_FNS = (ApproximateQuantilesCombineFn, ApproximateUniqueCombineFn)
