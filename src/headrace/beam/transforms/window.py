"""``apache_beam.transforms.window``."""

from headrace.beam.window import *  # noqa: F403
from headrace.beam.window import __all__
