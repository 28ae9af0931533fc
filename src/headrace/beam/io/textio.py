"""``apache_beam.io.textio``."""

from headrace.io.textio import *  # noqa: F403
from headrace.io.textio import __all__
