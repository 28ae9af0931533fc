"""``apache_beam.transforms.util``."""

from headrace.model.secret import GcpHsmGeneratedSecret, GcpSecret, Secret
from headrace.model.transforms.composites import LogElements, Reify, Tee, WaitOn
from headrace.model.transforms.regex import Regex
from headrace.model.transforms.util import *  # noqa: F403
from headrace.model.transforms.util import __all__ as _util_all

__all__ = [
    *_util_all,
    "GcpHsmGeneratedSecret",
    "GcpSecret",
    "LogElements",
    "Regex",
    "Reify",
    "Secret",
    "Tee",
    "WaitOn",
]
