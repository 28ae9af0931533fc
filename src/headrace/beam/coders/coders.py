"""``apache_beam.coders.coders``."""

from headrace.model.coders import *  # noqa: F403
from headrace.model.coders import __all__
