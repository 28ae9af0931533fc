"""``apache_beam.typehints``: type hints, checked when the pipeline is built (see
:mod:`headrace.model.typehints`)."""

from headrace.beam.typehints import decorators
from headrace.model.typehints import *  # noqa: F403
from headrace.model.typehints import __all__ as _hints_all

__all__ = [*_hints_all, "decorators"]
