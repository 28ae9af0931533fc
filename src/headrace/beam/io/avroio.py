"""``apache_beam.io.avroio``."""

from headrace.io.avroio import *  # noqa: F403
from headrace.io.avroio import __all__
