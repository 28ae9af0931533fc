"""``apache_beam.io``.

Names and submodules load on first use (PEP 562 ``__getattr__``), so ``import headrace.beam``
does not import the connectors (nor pyarrow, fastavro, fsspec) until a pipeline uses one.
"""

import importlib
from typing import TYPE_CHECKING, Any

import headrace.io as _io
from headrace.io import __all__ as _io_all
from headrace.model.transforms.core import Read

if TYPE_CHECKING:
    from headrace.beam.io import avroio, fileio, filesystem, filesystems, parquetio, textio
    from headrace.io import *  # noqa: F403

_SUBMODULES = frozenset({"avroio", "fileio", "filesystem", "filesystems", "parquetio", "textio"})

__all__ = [
    *_io_all,
    "Read",
    "avroio",
    "fileio",
    "filesystem",
    "filesystems",
    "parquetio",
    "textio",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _io_all:
        value = getattr(_io, name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
