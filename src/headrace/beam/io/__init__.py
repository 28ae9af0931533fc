"""``apache_beam.io``."""

from headrace.beam.io import avroio, fileio, parquetio, textio
from headrace.io import *  # noqa: F403
from headrace.io import __all__ as _io_all
from headrace.model.transforms.core import Read

__all__ = [*_io_all, "Read", "avroio", "fileio", "parquetio", "textio"]
