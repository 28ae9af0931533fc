"""Parquet transforms under Beam's names (``apache_beam.io.parquetio``), built on pyarrow.

Reading splits per file and, for files larger than a split's share, per run of row groups.
Records are dicts keyed by column name (``as_rows=True``: :class:`~headrace.model.row.Row`);
``ReadFromParquetBatched`` yields one ``pyarrow.Table`` per row group.

Writing buffers ``record_batch_size`` records into a ``pyarrow.RecordBatch`` and writes a row group
whenever the buffered batches reach ``row_group_buffer_size`` bytes (and at the end of a shard).
When ``schema`` is None it is inferred by pyarrow from each shard's first record batch, so shards
may disagree (a column that is all ``None`` in one shard becomes type ``null`` there); pass a
``pyarrow.Schema`` for stable types.

pyarrow is imported where it is used (opening a Parquet file, converting records, checking a
schema), not when this module is, so ``import headrace.beam`` does not pay for it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from headrace.io.filebasedsink import FileBasedSink, FileShardWriter, ShardWriter, WriteFiles
from headrace.io.filebasedsource import FileBasedSource, FileRange, ReadEachPattern
from headrace.io.filesystem import (
    CompressionTypes,
    CorruptFileError,
    FileMetadata,
    open_for_read,
)
from headrace.io.tabular import record_to_dict
from headrace.io.windowedsink import (
    WriteWindowedFiles,
    wants_windowed_write,
    with_triggering_frequency,
)
from headrace.model.row import Row
from headrace.model.transforms.core import FlatMap, Read
from headrace.model.transforms.ptransform import PTransform

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

__all__ = [
    "ReadAllFromParquet",
    "ReadAllFromParquetBatched",
    "ReadFromParquet",
    "ReadFromParquetBatched",
    "WriteToParquet",
    "WriteToParquetBatched",
]


def _arrow_errors(*more: type[Exception]) -> tuple[type[Exception], ...]:
    """What pyarrow raises for bad data or records that do not fit the schema (and ``more``)."""
    import pyarrow as pa

    return (pa.ArrowException, TypeError, ValueError, OverflowError, KeyError, *more)


class _ParquetSource(FileBasedSource):
    """Parquet files; ranges are row-group index ranges ``[start, stop)``."""

    def __init__(
        self,
        file_pattern: str,
        *,
        min_bundle_size: int = 0,
        validate: bool = True,
        columns: list[str] | None = None,
        as_rows: bool = False,
        batched: bool = False,
    ) -> None:
        super().__init__(
            file_pattern,
            min_bundle_size=min_bundle_size,
            compression_type=CompressionTypes.UNCOMPRESSED,
            splittable=True,
            validate=validate,
        )
        self.columns = None if columns is None else list(columns)
        self.as_rows = as_rows
        self.batched = batched

    def _open(self, f: IO[bytes], path: str) -> pq.ParquetFile:
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(f)
        except _arrow_errors(OSError) as exc:
            raise CorruptFileError(f"{path!r} is not a readable Parquet file: {exc}") from exc

    def split_file(self, file: FileMetadata, bundle_size: int) -> list[FileRange]:
        size = file.size_in_bytes
        if size <= bundle_size:
            return [FileRange(file.path, 0, None, size)]
        with open_for_read(file.path, CompressionTypes.UNCOMPRESSED) as f:
            meta = self._open(f, file.path).metadata
        sizes = [meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)]
        total = sum(sizes) or 1
        ranges: list[FileRange] = []
        start, acc = 0, 0
        for i, rg_size in enumerate(sizes):
            acc += rg_size * size // total
            if acc >= bundle_size or i == len(sizes) - 1:
                ranges.append(FileRange(file.path, start, i + 1, acc))
                start, acc = i + 1, 0
        return ranges or [FileRange(file.path, 0, None, size)]

    def read_range(self, file_range: FileRange) -> Iterator[Any]:
        path = file_range.path
        with open_for_read(path, CompressionTypes.UNCOMPRESSED) as f:
            pf = self._open(f, path)
            stop = pf.num_row_groups if file_range.stop is None else file_range.stop
            for index in range(file_range.start, stop):
                try:
                    table = pf.read_row_group(index, columns=self.columns)
                except _arrow_errors(OSError) as exc:
                    raise CorruptFileError(
                        f"cannot read row group {index} of Parquet file {path!r}: {exc}"
                    ) from exc
                if self.batched:
                    yield table
                elif self.as_rows:
                    make = Row._from_mapping
                    for record in table.to_pylist():
                        yield make(record)
                else:
                    yield from table.to_pylist()

    def display_data(self) -> dict[str, Any]:
        data = super().display_data()
        if self.columns is not None:
            data["columns"] = self.columns
        return data


class _ReadParquetFiles(PTransform):
    """What the two Parquet read transforms share: one :class:`_ParquetSource`, read."""

    def __init__(
        self,
        file_pattern: str | None,
        min_bundle_size: int,
        validate: bool,
        columns: list[str] | None,
        label: str | None,
        *,
        as_rows: bool = False,
        batched: bool = False,
    ) -> None:
        super().__init__(label)
        if file_pattern is None:
            raise ValueError(f"{type(self).__name__} needs a file_pattern")
        self._source = _ParquetSource(
            file_pattern,
            min_bundle_size=min_bundle_size,
            validate=validate,
            columns=columns,
            as_rows=as_rows,
            batched=batched,
        )

    def expand(self, pbegin: Any) -> Any:
        return pbegin | Read(self._source)


class ReadFromParquet(_ReadParquetFiles):
    """Read Parquet files as dicts (``as_rows=True``: Rows), one per record.

    ``columns`` selects columns (a name may be a prefix of nested fields).

    >>> import pyarrow as pa, pyarrow.parquet as pq, fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with fsspec.open("memory://doc/t.parquet", "wb") as f:
    ...     pq.write_table(pa.table({"k": ["a", "b"], "v": [1, 2]}), f)
    >>> with Pipeline() as p:
    ...     assert_that(p | ReadFromParquet("memory://doc/t.parquet", columns=["v"]),
    ...                 equal_to([{"v": 1}, {"v": 2}]))
    """

    def __init__(
        self,
        file_pattern: str | None = None,
        min_bundle_size: int = 0,
        validate: bool = True,
        columns: list[str] | None = None,
        as_rows: bool = False,
        label: str | None = None,
    ) -> None:
        super().__init__(file_pattern, min_bundle_size, validate, columns, label, as_rows=as_rows)


class ReadFromParquetBatched(_ReadParquetFiles):
    """Read Parquet files as ``pyarrow.Table`` objects, one per row group.

    >>> import pyarrow as pa, pyarrow.parquet as pq, fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Map
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with fsspec.open("memory://doc/b.parquet", "wb") as f:
    ...     pq.write_table(pa.table({"v": [1, 2, 3]}), f)
    >>> with Pipeline() as p:
    ...     sizes = p | ReadFromParquetBatched("memory://doc/b.parquet") | Map(len)
    ...     assert_that(sizes, equal_to([3]))
    """

    def __init__(
        self,
        file_pattern: str | None = None,
        min_bundle_size: int = 0,
        validate: bool = True,
        columns: list[str] | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(file_pattern, min_bundle_size, validate, columns, label, batched=True)


class _ReadAllParquet(PTransform):
    """What the two ReadAllFromParquet transforms share: a FlatMap over the input patterns."""

    def __init__(
        self,
        min_bundle_size: int,
        columns: list[str] | None,
        with_filename: bool,
        label: str,
        *,
        batched: bool,
    ) -> None:
        super().__init__()
        self._read = ReadEachPattern(
            functools.partial(
                _ParquetSource,
                min_bundle_size=min_bundle_size,
                validate=False,
                columns=None if columns is None else list(columns),
                batched=batched,
            ),
            with_filename,
        )
        self._read_label = label

    def expand(self, pcoll: Any) -> Any:
        return pcoll | self._read_label >> FlatMap(self._read)


class ReadAllFromParquetBatched(_ReadAllParquet):
    """Read the Parquet files named by a PCollection of patterns, one ``pyarrow.Table`` per row
    group (``with_filename=True``: ``(path, table)``). A pattern matching nothing reads nothing,
    as in Beam.

    >>> import pyarrow as pa, pyarrow.parquet as pq, fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create, Map
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with fsspec.open("memory://doc/all-b.parquet", "wb") as f:
    ...     pq.write_table(pa.table({"v": [1, 2]}), f)
    >>> with Pipeline() as p:
    ...     tables = p | Create(["memory://doc/all-b.parquet"]) | ReadAllFromParquetBatched()
    ...     assert_that(tables | Map(len), equal_to([2]))
    """

    def __init__(
        self,
        min_bundle_size: int = 0,
        desired_bundle_size: int = 64 * 1024 * 1024,
        columns: list[str] | None = None,
        with_filename: bool = False,
        label: str = "ReadAllFiles",
    ) -> None:
        super().__init__(min_bundle_size, columns, with_filename, label, batched=True)


class ReadAllFromParquet(_ReadAllParquet):
    """Read the Parquet files named by a PCollection of patterns, one dict per record
    (``with_filename=True``: ``(path, record)``). A pattern matching nothing reads nothing, as
    in Beam.

    >>> import pyarrow as pa, pyarrow.parquet as pq, fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with fsspec.open("memory://doc/all-r.parquet", "wb") as f:
    ...     pq.write_table(pa.table({"v": [1, 2]}), f)
    >>> with Pipeline() as p:
    ...     rows = p | Create(["memory://doc/all-r.parquet"]) | ReadAllFromParquet()
    ...     assert_that(rows, equal_to([{"v": 1}, {"v": 2}]))
    """

    def __init__(
        self,
        min_bundle_size: int = 0,
        desired_bundle_size: int = 64 * 1024 * 1024,
        columns: list[str] | None = None,
        with_filename: bool = False,
        label: str = "ReadAllFiles",
    ) -> None:
        super().__init__(min_bundle_size, columns, with_filename, label, batched=False)


class _ParquetShardWriter(FileShardWriter):
    def __init__(self, sink: _ParquetSink, f: IO[bytes]) -> None:
        super().__init__(f)
        self._sink = sink
        self._schema: pa.Schema | None = sink.schema
        self._writer: pq.ParquetWriter | None = None
        self._records: list[Any] = []
        self._batches: list[pa.RecordBatch] = []
        self._buffered_bytes = 0

    def write(self, value: Any) -> None:
        records = self._records
        records.append(value)
        if len(records) >= self._sink.record_batch_size:
            self._make_batch()

    def _convert(self, values: list[Any]) -> pa.RecordBatch:
        import pyarrow as pa

        try:
            dicts = [record_to_dict(v) for v in values]
            return pa.RecordBatch.from_pylist(dicts, schema=self._schema)
        except _arrow_errors() as exc:
            for value in values:  # find the culprit to show it
                try:
                    pa.RecordBatch.from_pylist([record_to_dict(value)], schema=self._schema)
                except _arrow_errors() as one_exc:
                    raise self._sink.record_error(value, one_exc) from one_exc
            raise self._sink.record_error(values[0], exc) from exc

    def _make_batch(self) -> None:
        batch = self._convert(self._records)
        self._records = []
        if self._schema is None:
            self._schema = batch.schema
        self._batches.append(batch)
        self._buffered_bytes += batch.nbytes
        if self._buffered_bytes >= self._sink.row_group_buffer_size:
            self._write_row_group()

    def _parquet_writer(self) -> pq.ParquetWriter:
        if self._writer is None:
            import pyarrow as pa
            import pyarrow.parquet as pq

            sink = self._sink
            self._writer = pq.ParquetWriter(
                self._f,
                self._schema if self._schema is not None else pa.schema([]),
                compression=sink.codec,
                use_deprecated_int96_timestamps=sink.use_deprecated_int96_timestamps,
                use_compliant_nested_type=sink.use_compliant_nested_type,
            )
        return self._writer

    def _write_row_group(self) -> None:
        import pyarrow as pa

        table = pa.Table.from_batches(self._batches, schema=self._schema)
        self._batches = []
        self._buffered_bytes = 0
        self._parquet_writer().write_table(table, row_group_size=max(1, table.num_rows))

    def finish(self) -> None:
        if self._records:
            self._make_batch()
        if self._batches:
            self._write_row_group()
        self._parquet_writer().close()


class _ParquetTablesShardWriter(_ParquetShardWriter):
    """Writes each ``pyarrow.Table`` (or ``RecordBatch``) element as it comes."""

    def write(self, value: Any) -> None:
        import pyarrow as pa

        if isinstance(value, pa.RecordBatch):
            value = pa.Table.from_batches([value])
        if not isinstance(value, pa.Table):
            raise TypeError(
                f"WriteToParquetBatched writes pyarrow Tables (or RecordBatches), got "
                f"{type(value).__name__}; use WriteToParquet for dicts and Rows"
            )
        if self._schema is None:
            self._schema = value.schema
        try:
            self._parquet_writer().write_table(value)
        except _arrow_errors() as exc:
            raise self._sink.record_error(value.schema, exc) from exc

    def finish(self) -> None:
        self._parquet_writer().close()


def _is_arrow_schema(schema: object) -> bool:
    import pyarrow as pa

    return isinstance(schema, pa.Schema)


class _ParquetSink(FileBasedSink):
    transform_name = "WriteToParquet"

    def __init__(
        self,
        file_path_prefix: str,
        *,
        schema: pa.Schema | None,
        row_group_buffer_size: int,
        record_batch_size: int,
        codec: str,
        use_deprecated_int96_timestamps: bool,
        use_compliant_nested_type: bool,
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
            # Parquet compresses inside the file (codec).
            compression_type=CompressionTypes.UNCOMPRESSED,
            mime_type=mime_type,
        )
        if schema is not None and not _is_arrow_schema(schema):
            raise TypeError(
                f"WriteToParquet: schema must be a pyarrow.Schema (or None to infer), "
                f"got {type(schema).__name__}"
            )
        if record_batch_size < 1 or row_group_buffer_size < 1:
            raise ValueError(
                "WriteToParquet: record_batch_size and row_group_buffer_size must be >= 1"
            )
        self.schema = schema
        self.row_group_buffer_size = row_group_buffer_size
        self.record_batch_size = record_batch_size
        self.codec = codec
        self.use_deprecated_int96_timestamps = use_deprecated_int96_timestamps
        self.use_compliant_nested_type = use_compliant_nested_type

    tables = False

    def same_records(self, a: str, b: str) -> bool:
        """Whether Parquet files ``a`` and ``b`` hold the same rows in any order (a windowed
        write comparing a recomputed pane with the one already published)."""
        import pyarrow.parquet as pq

        rows = []
        for path in (a, b):
            with open_for_read(path, CompressionTypes.UNCOMPRESSED) as f:
                rows.append(sorted(map(repr, pq.read_table(f).to_pylist())))
        return rows[0] == rows[1]

    def open_writer(self, path: str) -> ShardWriter:
        if self.tables:
            return _ParquetTablesShardWriter(self, self.open_file(path))
        return _ParquetShardWriter(self, self.open_file(path))


class WriteToParquet(PTransform):
    """Write dicts (or Rows) as Parquet files ``prefix-SSSSS-of-NNNNN + suffix``.

    ``schema`` is a ``pyarrow.Schema``; None infers it per shard (see the module docstring).
    ``codec`` is any pyarrow compression name (``'snappy'``, ``'zstd'``, ``'none'``, ...).

    >>> import pyarrow as pa, pyarrow.parquet as pq, fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> schema = pa.schema([("name", pa.string()), ("age", pa.int64())])
    >>> with Pipeline() as p:
    ...     _ = (p | Create([{"name": "ada", "age": 36}])
    ...            | WriteToParquet("memory://doc/pq/people", schema, shard_name_template=""))
    >>> with fsspec.open("memory://doc/pq/people", "rb") as f:
    ...     pq.read_table(f).to_pylist()
    [{'name': 'ada', 'age': 36}]
    """

    def __init__(
        self,
        file_path_prefix: str,
        schema: pa.Schema | None = None,
        row_group_buffer_size: int = 64 * 1024 * 1024,
        record_batch_size: int = 1000,
        codec: str = "snappy",
        use_deprecated_int96_timestamps: bool = False,
        use_compliant_nested_type: bool = False,
        file_name_suffix: str = "",
        num_shards: int = 0,
        shard_name_template: str | None = None,
        mime_type: str = "application/x-parquet",
        triggering_frequency: float | None = None,
        windowed_writes: bool | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        self._triggering_frequency = triggering_frequency
        self._windowed_writes = windowed_writes
        self._sink = _ParquetSink(
            file_path_prefix,
            schema=schema,
            row_group_buffer_size=row_group_buffer_size,
            record_batch_size=record_batch_size,
            codec=codec,
            use_deprecated_int96_timestamps=use_deprecated_int96_timestamps,
            use_compliant_nested_type=use_compliant_nested_type,
            file_name_suffix=file_name_suffix,
            num_shards=num_shards,
            shard_name_template=shard_name_template,
            mime_type=mime_type,
        )

    def expand(self, pcoll: Any) -> Any:
        if wants_windowed_write(self._windowed_writes, pcoll):
            pcoll = with_triggering_frequency(pcoll, self._triggering_frequency)
            return pcoll | "WriteWindowed" >> WriteWindowedFiles(self._sink)
        return pcoll | WriteFiles(self._sink)


class WriteToParquetBatched(PTransform):
    """Write ``pyarrow.Table`` elements as Parquet files, each table as it comes (Beam's name).

    >>> import pyarrow as pa, pyarrow.parquet as pq, fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> table = pa.table({"v": [1, 2]})
    >>> with Pipeline() as p:
    ...     _ = (p | Create([table])
    ...            | WriteToParquetBatched("memory://doc/pqb/t", shard_name_template=""))
    >>> with fsspec.open("memory://doc/pqb/t", "rb") as f:
    ...     pq.read_table(f).to_pylist()
    [{'v': 1}, {'v': 2}]
    """

    def __init__(
        self,
        file_path_prefix: str,
        schema: pa.Schema | None = None,
        codec: str = "none",
        use_deprecated_int96_timestamps: bool = False,
        use_compliant_nested_type: bool = False,
        file_name_suffix: str = "",
        num_shards: int = 0,
        shard_name_template: str | None = None,
        mime_type: str = "application/x-parquet",
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        self._sink = _ParquetSink(
            file_path_prefix,
            schema=schema,
            row_group_buffer_size=1,
            record_batch_size=1,
            codec=codec,
            use_deprecated_int96_timestamps=use_deprecated_int96_timestamps,
            use_compliant_nested_type=use_compliant_nested_type,
            file_name_suffix=file_name_suffix,
            num_shards=num_shards,
            shard_name_template=shard_name_template,
            mime_type=mime_type,
        )
        self._sink.tables = True

    def expand(self, pcoll: Any) -> Any:
        return pcoll | WriteFiles(self._sink)
