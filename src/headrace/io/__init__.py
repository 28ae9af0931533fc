"""Sources and sinks under Beam's names: text, CSV, JSON, Parquet and Avro files through fsspec,
and the versioned store's repositories (``ReadFromRepo``, ``WriteToRepo``)."""

from __future__ import annotations

from headrace.io.avroio import ReadFromAvro, WriteToAvro
from headrace.io.filesystem import CompressionTypes
from headrace.io.parquetio import ReadFromParquet, ReadFromParquetBatched, WriteToParquet
from headrace.io.repoio import ReadFromRepo, WriteToRepo
from headrace.io.textio import (
    ReadAllFromText,
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
    "ReadAllFromText",
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
    "WriteToRepo",
    "WriteToText",
]
