"""``apache_beam.typehints``: hints are recorded, not enforced."""

from headrace.model.typehints import *  # noqa: F403
from headrace.model.typehints import __all__
