"""``apache_beam.coders``."""

from headrace.beam.coders import coders, typecoders
from headrace.model.coder_registry import registry
from headrace.model.coders import *  # noqa: F403
from headrace.model.coders import __all__ as _coders_all

__all__ = [*_coders_all, "coders", "registry", "typecoders"]
