"""``apache_beam.transforms.error_handling``."""

from headrace.model.transforms.error_handling import *  # noqa: F403
from headrace.model.transforms.error_handling import __all__
