"""Sources and sinks under Beam's names: text, CSV, JSON, Parquet and Avro files through fsspec,
and the versioned store's repositories (``ReadFromRepo``, ``WriteToRepo``).

The names are loaded on first use (PEP 562 ``__getattr__``), so ``import headrace.io`` costs
almost nothing and a pipeline pays only for the connectors it touches; ``from headrace.io import
ReadFromText`` and ``headrace.io.textio`` work as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.io.avroio import ReadAllFromAvro, ReadFromAvro, WriteToAvro
    from headrace.io.filesystem import CompressionTypes
    from headrace.io.parquetio import (
        ReadAllFromParquet,
        ReadAllFromParquetBatched,
        ReadFromParquet,
        ReadFromParquetBatched,
        WriteToParquet,
        WriteToParquetBatched,
    )
    from headrace.io.repoio import ReadFromRepo, WriteToRepo
    from headrace.io.textio import (
        ReadAllFromText,
        ReadAllFromTextContinuously,
        ReadFromCsv,
        ReadFromJson,
        ReadFromText,
        ReadFromTextWithFilename,
        WriteToCsv,
        WriteToJson,
        WriteToText,
    )

__all__ = [
    "CompressionTypes",
    "ReadAllFromAvro",
    "ReadAllFromParquet",
    "ReadAllFromParquetBatched",
    "ReadAllFromText",
    "ReadAllFromTextContinuously",
    "ReadFromAvro",
    "ReadFromCsv",
    "ReadFromJson",
    "ReadFromParquet",
    "ReadFromParquetBatched",
    "ReadFromRepo",
    "ReadFromText",
    "ReadFromTextWithFilename",
    "WriteToAvro",
    "WriteToCsv",
    "WriteToJson",
    "WriteToParquet",
    "WriteToParquetBatched",
    "WriteToRepo",
    "WriteToText",
]

# Where each public name lives.
_EXPORTS = {
    "CompressionTypes": "filesystem",
    "ReadAllFromAvro": "avroio",
    "ReadAllFromParquet": "parquetio",
    "ReadAllFromParquetBatched": "parquetio",
    "ReadAllFromText": "textio",
    "ReadAllFromTextContinuously": "textio",
    "ReadFromAvro": "avroio",
    "ReadFromCsv": "textio",
    "ReadFromJson": "textio",
    "ReadFromParquet": "parquetio",
    "ReadFromParquetBatched": "parquetio",
    "ReadFromRepo": "repoio",
    "ReadFromText": "textio",
    "ReadFromTextWithFilename": "textio",
    "WriteToAvro": "avroio",
    "WriteToCsv": "textio",
    "WriteToJson": "textio",
    "WriteToParquet": "parquetio",
    "WriteToParquetBatched": "parquetio",
    "WriteToRepo": "repoio",
    "WriteToText": "textio",
}
_SUBMODULES = frozenset(
    {
        "avroio",
        "filebasedsink",
        "filebasedsource",
        "filesystem",
        "lines",
        "parquetio",
        "reporead",
        "repoio",
        "repostore",
        "repowrite",
        "streaming",
        "tabular",
        "textio",
        "windowedsink",
    }
)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})
