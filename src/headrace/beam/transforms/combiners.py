"""``apache_beam.transforms.combiners``."""

from headrace.model.transforms.combiners import *  # noqa: F403
from headrace.model.transforms.combiners import __all__
