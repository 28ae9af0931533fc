"""``apache_beam.testing.util``."""

from headrace.testing.util import *  # noqa: F403
from headrace.testing.util import __all__
