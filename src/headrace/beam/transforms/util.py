"""``apache_beam.transforms.util``."""

from headrace.model.transforms.util import *  # noqa: F403
from headrace.model.transforms.util import __all__
