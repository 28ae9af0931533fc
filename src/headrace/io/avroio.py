"""Avro transforms under Beam's names (``apache_beam.io.avroio``), built on fastavro.

Reading splits per file and yields each record as a dict (``as_rows=True``: a
:class:`~headrace.model.row.Row`). Writing takes the Avro schema as a dict or a JSON string
(parsed with ``fastavro.parse_schema`` when the transform is built, so a bad schema fails early) and
compresses blocks with ``codec`` (``'deflate'`` by default; ``'null'`` for none).

fastavro is imported where it is used (reading a file, building or opening a writer), not when this
module is, so ``import headrace.beam`` does not pay for it.
"""

from __future__ import annotations

import functools
import io
import json
from collections.abc import Iterator
from typing import IO, Any

from headrace.io.filebasedsink import FileBasedSink, FileShardWriter, ShardWriter, WriteFiles
from headrace.io.filebasedsource import FileBasedSource, FileRange, ReadEachPattern
from headrace.io.filesystem import CompressionTypes, CorruptFileError, open_for_read
from headrace.io.tabular import record_to_dict
from headrace.model.row import Row
from headrace.model.transforms.core import FlatMap, Read
from headrace.model.transforms.ptransform import PTransform

__all__ = ["ReadAllFromAvro", "ReadFromAvro", "WriteToAvro"]


class _AvroSource(FileBasedSource):
    """Avro container files, read whole (one range per file)."""

    def __init__(
        self, file_pattern: str, *, min_bundle_size: int, validate: bool, as_rows: bool
    ) -> None:
        super().__init__(
            file_pattern,
            min_bundle_size=min_bundle_size,
            compression_type=CompressionTypes.UNCOMPRESSED,
            splittable=False,
            validate=validate,
        )
        self.as_rows = as_rows

    def read_range(self, file_range: FileRange) -> Iterator[Any]:
        path = file_range.path
        make = Row._from_mapping if self.as_rows else None
        import fastavro

        with open_for_read(path, CompressionTypes.UNCOMPRESSED) as f:
            try:
                for record in fastavro.reader(f):
                    yield record if make is None else make(record)  # type: ignore[arg-type]
            except Exception as exc:  # fastavro raises many types for bad data
                raise CorruptFileError(f"cannot read Avro file {path!r}: {exc}") from exc


class ReadFromAvro(PTransform):
    """Read Avro files as dicts (``as_rows=True``: Rows), one per record.

    >>> import fastavro, fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.testing.util import assert_that, equal_to
    >>> schema = {"type": "record", "name": "U", "fields": [{"name": "n", "type": "long"}]}
    >>> with fsspec.open("memory://doc/u.avro", "wb") as f:
    ...     fastavro.writer(f, schema, [{"n": 1}, {"n": 2}])
    >>> with Pipeline() as p:
    ...     assert_that(p | ReadFromAvro("memory://doc/u.avro"), equal_to([{"n": 1}, {"n": 2}]))
    """

    def __init__(
        self,
        file_pattern: str | None = None,
        min_bundle_size: int = 0,
        validate: bool = True,
        use_fastavro: bool = True,
        as_rows: bool = False,
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        if file_pattern is None:
            raise ValueError("ReadFromAvro needs a file_pattern")
        self._source = _AvroSource(
            file_pattern, min_bundle_size=min_bundle_size, validate=validate, as_rows=as_rows
        )

    def expand(self, pbegin: Any) -> Any:
        return pbegin | Read(self._source)


class ReadAllFromAvro(PTransform):
    """Read the Avro files named by a PCollection of patterns, one dict per record
    (``with_filename=True``: ``(path, record)``). A pattern matching nothing reads nothing, as
    in Beam.

    >>> import fastavro, fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> schema = {"type": "record", "name": "U", "fields": [{"name": "n", "type": "long"}]}
    >>> with fsspec.open("memory://doc/all-u.avro", "wb") as f:
    ...     fastavro.writer(f, schema, [{"n": 1}])
    >>> with Pipeline() as p:
    ...     records = p | Create(["memory://doc/all-u.avro"]) | ReadAllFromAvro(with_filename=True)
    ...     assert_that(records, equal_to([("memory:///doc/all-u.avro", {"n": 1})]))
    """

    def __init__(
        self,
        min_bundle_size: int = 0,
        desired_bundle_size: int = 64 * 1024 * 1024,
        use_fastavro: bool = True,
        with_filename: bool = False,
        label: str = "ReadAllFiles",
    ) -> None:
        super().__init__()
        self._read = ReadEachPattern(
            functools.partial(
                _AvroSource, min_bundle_size=min_bundle_size, validate=False, as_rows=False
            ),
            with_filename,
        )
        self._read_label = label

    def expand(self, pcoll: Any) -> Any:
        return pcoll | self._read_label >> FlatMap(self._read)


class _AvroShardWriter(FileShardWriter):
    def __init__(self, sink: _AvroSink, f: IO[bytes]) -> None:
        super().__init__(f)
        self._sink = sink
        import fastavro

        self._writer = fastavro.write.Writer(f, fastavro.parse_schema(sink.schema), sink.codec)

    def write(self, value: Any) -> None:
        try:
            self._writer.write(record_to_dict(value))
        except Exception as exc:  # fastavro reports schema mismatches with many types
            raise self._sink.record_error(value, exc) from exc

    def finish(self) -> None:
        self._writer.flush()


class _AvroSink(FileBasedSink):
    transform_name = "WriteToAvro"

    def __init__(
        self,
        file_path_prefix: str,
        *,
        schema: Any,
        codec: str,
        file_name_suffix: str,
        num_shards: int,
        shard_name_template: str | None,
        mime_type: str,
    ) -> None:
        super().__init__(
            file_path_prefix,
            file_name_suffix=file_name_suffix,
            num_shards=num_shards,
            shard_name_template=shard_name_template,
            compression_type=CompressionTypes.UNCOMPRESSED,  # Avro compresses its blocks (codec)
            mime_type=mime_type,
        )
        if isinstance(schema, str):
            try:
                schema = json.loads(schema)
            except json.JSONDecodeError as exc:
                raise ValueError(f"WriteToAvro: schema is not valid JSON: {exc}") from exc
        if not isinstance(schema, (dict, list)):
            raise TypeError(
                f"WriteToAvro: schema must be a dict or a JSON string, got {type(schema).__name__}"
            )
        import fastavro

        try:
            parsed = fastavro.parse_schema(schema)
        except Exception as exc:
            raise ValueError(f"WriteToAvro: invalid Avro schema: {exc}") from exc
        try:
            fastavro.write.Writer(io.BytesIO(), parsed, codec)
        except Exception as exc:
            raise ValueError(
                f"WriteToAvro: cannot use codec {codec!r}: {exc} (try 'deflate' or 'null')"
            ) from exc
        self.schema = schema
        self.codec = codec

    def open_writer(self, path: str) -> ShardWriter:
        return _AvroShardWriter(self, self.open_file(path))


class WriteToAvro(PTransform):
    """Write dicts (or Rows) as Avro files ``prefix-SSSSS-of-NNNNN + suffix``.

    >>> import fastavro, fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> schema = {"type": "record", "name": "U", "fields": [{"name": "n", "type": "long"}]}
    >>> with Pipeline() as p:
    ...     _ = (p | Create([{"n": 7}])
    ...            | WriteToAvro("memory://doc/av/u", schema, shard_name_template=""))
    >>> with fsspec.open("memory://doc/av/u", "rb") as f:
    ...     list(fastavro.reader(f))
    [{'n': 7}]
    """

    def __init__(
        self,
        file_path_prefix: str,
        schema: Any,
        codec: str = "deflate",
        file_name_suffix: str = "",
        num_shards: int = 0,
        shard_name_template: str | None = None,
        mime_type: str = "application/x-avro",
        use_fastavro: bool = True,
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        self._sink = _AvroSink(
            file_path_prefix,
            schema=schema,
            codec=codec,
            file_name_suffix=file_name_suffix,
            num_shards=num_shards,
            shard_name_template=shard_name_template,
            mime_type=mime_type,
        )

    def expand(self, pcoll: Any) -> Any:
        return pcoll | WriteFiles(self._sink)
