"""``apache_beam.transforms``."""

from headrace.beam.transforms import (
    combiners,
    core,
    error_handling,
    periodicsequence,
    ptransform,
    stats,
    timeutil,
    trigger,
    userstate,
    util,
    window,
)
from headrace.beam.transforms.core import *  # noqa: F403
from headrace.beam.transforms.core import __all__ as _core_all
from headrace.beam.transforms.ptransform import PTransform, ptransform_fn
from headrace.beam.transforms.stats import ApproximateQuantiles, ApproximateUnique
from headrace.beam.transforms.util import *  # noqa: F403
from headrace.beam.transforms.util import __all__ as _util_all

__all__ = [
    *_core_all,
    "ApproximateQuantiles",
    "ApproximateUnique",
    *_util_all,
    "PTransform",
    "combiners",
    "periodicsequence",
    "core",
    "error_handling",
    "ptransform",
    "ptransform_fn",
    "stats",
    "timeutil",
    "trigger",
    "userstate",
    "util",
    "window",
]
