"""``apache_beam.transforms.userstate``."""

from headrace.model.userstate import *  # noqa: F403
from headrace.model.userstate import __all__
