"""``apache_beam.testing.test_stream``."""

from headrace.testing.test_stream import *  # noqa: F403
from headrace.testing.test_stream import __all__
