"""``apache_beam.io.parquetio``."""

from headrace.io.parquetio import *  # noqa: F403
from headrace.io.parquetio import __all__
