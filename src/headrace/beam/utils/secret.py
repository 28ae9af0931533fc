"""``apache_beam.utils.secret``."""

from headrace.model.secret import *  # noqa: F403
from headrace.model.secret import __all__
