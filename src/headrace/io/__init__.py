"""Sources and sinks: text, CSV, JSON, Parquet and Avro files through fsspec, under Beam's names."""

from __future__ import annotations

from headrace.io.avroio import ReadFromAvro, WriteToAvro
from headrace.io.filesystem import CompressionTypes
from headrace.io.parquetio import ReadFromParquet, ReadFromParquetBatched, WriteToParquet
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
    "ReadFromText",
    "ReadFromTextWithFilename",
    "WriteToAvro",
    "WriteToCsv",
    "WriteToJson",
    "WriteToParquet",
    "WriteToText",
]
