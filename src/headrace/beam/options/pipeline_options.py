"""``apache_beam.options.pipeline_options``."""

from headrace.model.options import *  # noqa: F403
from headrace.model.options import __all__
