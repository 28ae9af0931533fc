"""CSV and JSON records: sources that yield :class:`~headrace.model.row.Row` and their sinks.

CSV fields are typed per column, as Beam types them through pandas (see
:mod:`headrace.io.csvtyping`): each column of each chunk of 10,000 lines gets one type (``int``,
``float``, ``bool`` or ``str``; missing values ``None``), so ``02134`` stays ``'02134'`` in a
column that also holds non-numbers, and one column never mixes ints and strings.
``keep_default_na=False`` keeps missing markers (``''``, ``NA``, ...) as text.

Pass ``dtype`` (one callable for every column, or ``{column: callable}``) to override, e.g.
``dtype={"zip": str}`` to keep leading zeros in an all-digit column.

JSON Lines records are parsed with :func:`json.loads`; each line must hold an object, which
becomes a ``Row`` (nested objects stay ``dict``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from typing import IO, Any

from headrace.io.csvtyping import BEAM_CSV_CHUNK_LINES, DEFAULT_NA_VALUES, type_csv_column
from headrace.io.filebasedsink import FileBasedSink, FileShardWriter, ShardWriter, describe_record
from headrace.io.filebasedsource import FileBasedSource, FileRange
from headrace.io.filesystem import CompressionTypes, open_for_read
from headrace.io.lines import TextSource
from headrace.model.row import Row

__all__ = ["CsvSink", "CsvSource", "JsonSink", "JsonSource", "record_to_dict"]


def _dedupe(names: Sequence[Any]) -> list[str]:
    """Column names as strings, duplicates renamed ``a.1``, ``a.2`` like pandas."""
    seen: dict[str, int] = {}
    out = []
    for raw in names:
        name = str(raw)
        if name in seen:
            seen[name] += 1
            candidate = f"{name}.{seen[name]}"
            while candidate in seen:
                seen[name] += 1
                candidate = f"{name}.{seen[name]}"
            name = candidate
        seen.setdefault(name, 0)
        out.append(name)
    return out


def _open_text(path: str, compression_type: str, encoding: str) -> io.TextIOWrapper:
    """``path`` opened for reading text (universal newlines off, as the csv module wants)."""
    return io.TextIOWrapper(open_for_read(path, compression_type), encoding=encoding, newline="")


def _new_row(fields: dict[str, Any]) -> Row:
    """A Row owning ``fields`` (no copy): the hot path of the CSV and JSON readers."""
    row = _new_object(Row)
    row.__dict__ = fields
    return row


_new_object = object.__new__


class _Decoder:
    """A coder-like object decoding lines in a given text encoding (for ``TextSource``)."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding

    def decode(self, data: bytes) -> str:
        return data.decode(self.encoding)


def _line_source(
    file_pattern: str, compression_type: str, encoding: str, skip_header_lines: int = 0
) -> TextSource:
    """The line reader under a CSV or JSON Lines source (the outer source validates the pattern)."""
    return TextSource(
        file_pattern,
        compression_type=compression_type,
        coder=None if encoding.lower().replace("-", "") == "utf8" else _Decoder(encoding),
        validate=False,
        skip_header_lines=skip_header_lines,
    )


class CsvSource(FileBasedSource):
    """Rows of CSV files; see :class:`headrace.io.ReadFromCsv` for the options.

    >>> import fsspec
    >>> with fsspec.open("memory://doc/people.csv", "wb") as f:
    ...     _ = f.write(b"name,age\\nada,36\\nalan,41\\n")
    >>> list(CsvSource("memory://doc/people.csv").read())
    [Row(name='ada', age=36), Row(name='alan', age=41)]
    """

    def __init__(
        self,
        file_pattern: str,
        *,
        sep: str = ",",
        header: int | None = 0,
        names: Sequence[str] | None = None,
        usecols: Sequence[str | int] | None = None,
        dtype: Any = None,
        quotechar: str = '"',
        escapechar: str | None = None,
        doublequote: bool = True,
        skipinitialspace: bool = False,
        skiprows: int = 0,
        keep_default_na: bool = True,
        encoding: str = "utf-8",
        compression_type: str = CompressionTypes.AUTO,
        splittable: bool = True,
        min_bundle_size: int = 0,
        validate: bool = True,
    ) -> None:
        if header not in (0, None):
            raise NotImplementedError(
                f"ReadFromCsv supports header=0 (first row names the columns) or header=None, "
                f"got header={header!r}"
            )
        if header is None and names is None:
            raise ValueError("ReadFromCsv with header=None needs names=[...] for the columns")
        if not isinstance(skiprows, int) or skiprows < 0:
            raise NotImplementedError(
                f"ReadFromCsv supports skiprows as an int >= 0, got {skiprows!r}"
            )
        super().__init__(
            file_pattern,
            min_bundle_size=min_bundle_size,
            compression_type=compression_type,
            splittable=splittable,
            validate=validate,
        )
        self.dialect: dict[str, Any] = {
            "delimiter": sep,
            "quotechar": quotechar,
            "escapechar": escapechar,
            "doublequote": doublequote,
            "skipinitialspace": skipinitialspace,
            "strict": False,
        }
        csv.reader([], **self.dialect)  # validate the dialect now, not on a worker
        self.header = header
        self.names = None if names is None else _dedupe(names)
        self.usecols = None if usecols is None else list(usecols)
        self.dtype = dtype
        self.skiprows = skiprows
        self.keep_default_na = keep_default_na
        self.encoding = encoding
        self._lines = _line_source(
            file_pattern, compression_type, encoding, skiprows + (0 if header is None else 1)
        )

    def _whole_file_records(self, path: str, skip: int) -> Generator[list[str], None, None]:
        """The CSV records of all of ``path`` after the first ``skip`` (quoted newlines allowed)."""
        with _open_text(path, self.compression_type, self.encoding) as text:
            reader = csv.reader(text, **self.dialect)
            for _ in range(skip):
                next(reader, None)
            yield from reader

    def _column_names(self, path: str) -> list[str]:
        if self.names is not None:
            return self.names
        with contextlib.closing(self._whole_file_records(path, self.skiprows)) as records:
            first = next(records, None)
        if first is None:
            return []
        return _dedupe(first)

    def _plan(
        self, path: str
    ) -> tuple[list[str], list[int] | None, list[Callable[[str], Any] | None]]:
        """Field names, selected column indices and per-column converters for one file."""
        names = self._column_names(path)
        picks: list[int] | None = None
        if self.usecols is not None:
            picks = []
            for col in self.usecols:
                if isinstance(col, int):
                    index = col
                elif col in names:
                    index = names.index(col)
                else:
                    raise ValueError(
                        f"ReadFromCsv: usecols names {col!r}, not a column of {path!r}"
                    )
                if not 0 <= index < len(names):
                    raise ValueError(
                        f"ReadFromCsv: usecols index {col!r} out of range for {path!r}"
                    )
                picks.append(index)
            picks.sort()
        out_names = names if picks is None else [names[i] for i in picks]
        convert = [self._converter(name) for name in out_names]
        return out_names, picks, convert

    def _converter(self, name: str) -> Callable[[str], Any] | None:
        """The user's converter for column ``name``; None where the column's type is inferred."""
        dtype = self.dtype
        fn = dtype.get(name) if isinstance(dtype, Mapping) else dtype
        if fn is None or not self.keep_default_na:
            return fn
        return lambda s: None if s in DEFAULT_NA_VALUES else fn(s)

    def _records(self, path: str, file_range: FileRange) -> Iterator[list[str]]:
        if self.splittable:
            for batch in self._lines.read_batches(file_range):
                yield from csv.reader(batch, **self.dialect)
            return
        yield from self._whole_file_records(path, self.skiprows + (0 if self.header is None else 1))

    def read_range(self, file_range: FileRange) -> Iterator[Any]:
        path = file_range.path
        names, picks, convert = self._plan(path)
        width = len(names)
        chunk: list[list[str]] = []
        try:
            for fields in self._records(path, file_range):
                if not fields:
                    continue  # blank line
                if picks is not None:
                    fields = [fields[i] if i < len(fields) else "" for i in picks]
                elif len(fields) != width:
                    if len(fields) > width:
                        raise ValueError(
                            f"ReadFromCsv: a line of {path!r} has {len(fields)} fields but the "
                            f"file has {width} columns: {describe_record(fields)}"
                        )
                    fields = fields + [""] * (width - len(fields))
                chunk.append(fields)
                if len(chunk) == BEAM_CSV_CHUNK_LINES:
                    yield from self._typed_rows(names, convert, chunk)
                    chunk = []
        except csv.Error as exc:
            raise ValueError(f"ReadFromCsv: cannot parse {path!r}: {exc}") from exc
        if chunk:
            yield from self._typed_rows(names, convert, chunk)

    def _typed_rows(
        self,
        names: list[str],
        convert: list[Callable[[str], Any] | None],
        chunk: list[list[str]],
    ) -> Iterator[Row]:
        """Rows of one chunk, each column typed as a whole (Beam's per-chunk pandas inference)."""
        na = DEFAULT_NA_VALUES if self.keep_default_na else frozenset()
        columns = [
            type_csv_column(column, na) if fn is None else [fn(v) for v in column]
            for fn, column in zip(convert, zip(*chunk))
        ]
        make = _new_row
        for values in zip(*columns):
            yield make(dict(zip(names, values)))

    def display_data(self) -> dict[str, Any]:
        data = super().display_data()
        if self.dialect["delimiter"] != ",":
            data["sep"] = self.dialect["delimiter"]
        return data


class JsonSource(FileBasedSource):
    """Rows of JSON Lines files (``lines=True``) or of JSON arrays of objects (``lines=False``).

    >>> import fsspec
    >>> with fsspec.open("memory://doc/events.jsonl", "wb") as f:
    ...     _ = f.write(b'{"id": 1, "tags": ["a"]}\\n{"id": 2, "tags": []}\\n')
    >>> list(JsonSource("memory://doc/events.jsonl").read())
    [Row(id=1, tags=['a']), Row(id=2, tags=[])]
    """

    def __init__(
        self,
        file_pattern: str,
        *,
        lines: bool = True,
        encoding: str = "utf-8",
        compression_type: str = CompressionTypes.AUTO,
        min_bundle_size: int = 0,
        validate: bool = True,
    ) -> None:
        super().__init__(
            file_pattern,
            min_bundle_size=min_bundle_size,
            compression_type=compression_type,
            splittable=lines,
            validate=validate,
        )
        self.lines = lines
        self.encoding = encoding
        self._text = _line_source(file_pattern, compression_type, encoding)

    def read_range(self, file_range: FileRange) -> Iterator[Any]:
        path = file_range.path
        make = _new_row
        loads = json.loads
        if not self.lines:
            with _open_text(path, self.compression_type, self.encoding) as text:
                try:
                    data = json.load(text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"ReadFromJson: {path!r} is not valid JSON: {exc}") from exc
            if not isinstance(data, list):
                raise ValueError(
                    f"ReadFromJson: {path!r} holds a JSON {type(data).__name__}; with lines=False "
                    "the file must hold an array of objects (orient='records')"
                )
            for obj in data:
                if not isinstance(obj, dict):
                    raise ValueError(
                        f"ReadFromJson: {path!r} has a non-object record {describe_record(obj)}"
                    )
                yield make(obj)
            return
        for batch in self._text.read_batches(file_range):
            for line in batch:
                try:
                    obj = loads(line)
                except json.JSONDecodeError as exc:
                    if not line.strip():
                        continue
                    raise ValueError(
                        f"ReadFromJson: bad JSON line in {path!r}: {exc}: {describe_record(line)}"
                    ) from exc
                if type(obj) is not dict:
                    raise ValueError(
                        f"ReadFromJson: a line of {path!r} is not a JSON object: "
                        f"{describe_record(line)}"
                    )
                yield make(obj)


def record_to_dict(value: Any) -> dict[str, Any]:
    """A record as a dict: dicts as they are, ``Row`` and named tuples via ``_asdict()``."""
    if type(value) is dict:
        return value
    if isinstance(value, Mapping):
        return dict(value)
    asdict = getattr(value, "_asdict", None)
    if asdict is not None:
        return asdict()
    raise TypeError(f"expected a dict, Row or named tuple, got {type(value).__name__}")


class _JsonShardWriter(FileShardWriter):
    _FLUSH_EVERY = 4096

    def __init__(self, sink: JsonSink, f: IO[bytes]) -> None:
        super().__init__(f)
        self._sink = sink
        self._buf: list[str] = []
        self._first = True
        user_default = sink.default_handler

        def default(obj: Any) -> Any:
            if isinstance(obj, Row):
                return obj._asdict()
            if user_default is not None:
                return user_default(obj)
            raise TypeError(f"{type(obj).__name__} is not JSON serializable")

        self._encode = json.JSONEncoder(
            ensure_ascii=sink.force_ascii, separators=(",", ":"), default=default
        ).encode
        if not sink.lines:
            f.write(b"[")

    def write(self, value: Any) -> None:
        try:
            text = self._encode(record_to_dict(value))
        except (TypeError, ValueError) as exc:
            raise self._sink.record_error(value, exc) from exc
        self._buf.append(text)
        if len(self._buf) >= self._FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        if not self._buf:
            return
        if self._sink.lines:
            data = "\n".join(self._buf) + "\n"
        else:
            data = ("" if self._first else ",") + ",".join(self._buf)
        self._first = False
        self._buf = []
        self._f.write(data.encode(self._sink.encoding))

    def finish(self) -> None:
        self._flush()
        if not self._sink.lines:
            self._f.write(b"]")


class JsonSink(FileBasedSink):
    """Writes dicts / Rows as JSON Lines (or one JSON array per shard with ``lines=False``)."""

    transform_name = "WriteToJson"

    def __init__(
        self,
        file_path_prefix: str,
        *,
        lines: bool = True,
        force_ascii: bool = True,
        default_handler: Callable[[Any], Any] | None = None,
        encoding: str = "utf-8",
        file_name_suffix: str = "",
        num_shards: int = 0,
        shard_name_template: str | None = None,
        compression_type: str = CompressionTypes.AUTO,
    ) -> None:
        super().__init__(
            file_path_prefix,
            file_name_suffix=file_name_suffix,
            num_shards=num_shards,
            shard_name_template=shard_name_template,
            compression_type=compression_type,
            mime_type="application/json",
        )
        self.lines = lines
        self.force_ascii = force_ascii
        self.default_handler = default_handler
        self.encoding = encoding

    def open_writer(self, path: str) -> ShardWriter:
        return _JsonShardWriter(self, self.open_file(path))


class _CsvShardWriter(FileShardWriter):
    _FLUSH_EVERY = 4096

    def __init__(self, sink: CsvSink, f: IO[bytes]) -> None:
        super().__init__(f)
        self._sink = sink
        self._text = io.StringIO()
        self._writer = csv.writer(self._text, **sink.dialect)
        self._columns: list[str] | None = None
        self._pending = 0
        if sink.columns is not None:
            self._start(list(sink.columns))

    def _start(self, columns: list[str]) -> None:
        self._columns = columns
        if self._sink.header:
            self._writer.writerow(columns)

    def write(self, value: Any) -> None:
        try:
            record = record_to_dict(value)
        except TypeError as exc:
            raise self._sink.record_error(value, exc) from exc
        columns = self._columns
        if columns is None:
            columns = list(record)
            self._start(columns)
        na = self._sink.na_rep
        try:
            row = [record[c] for c in columns]
        except KeyError as exc:
            raise self._sink.record_error(value, f"missing column {exc}") from exc
        if na:
            row = [na if v is None else v for v in row]
        self._writer.writerow(row)
        self._pending += 1
        if self._pending >= self._FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        data = self._text.getvalue()
        if data:
            self._f.write(data.encode(self._sink.encoding))
            self._text.seek(0)
            self._text.truncate()
        self._pending = 0

    finish = _flush


class CsvSink(FileBasedSink):
    """Writes dicts / Rows as CSV lines, with a header row naming the columns."""

    transform_name = "WriteToCsv"

    def __init__(
        self,
        file_path_prefix: str,
        *,
        sep: str = ",",
        header: bool = True,
        columns: Sequence[str] | None = None,
        quotechar: str = '"',
        lineterminator: str = "\n",
        na_rep: str = "",
        encoding: str = "utf-8",
        file_name_suffix: str = "",
        num_shards: int = 0,
        shard_name_template: str | None = None,
        compression_type: str = CompressionTypes.AUTO,
    ) -> None:
        super().__init__(
            file_path_prefix,
            file_name_suffix=file_name_suffix,
            num_shards=num_shards,
            shard_name_template=shard_name_template,
            compression_type=compression_type,
            mime_type="text/csv",
        )
        self.dialect: dict[str, Any] = {
            "delimiter": sep,
            "quotechar": quotechar,
            "lineterminator": lineterminator,
        }
        csv.writer(io.StringIO(), **self.dialect)  # validate now
        self.header = header
        self.columns = None if columns is None else list(columns)
        self.na_rep = na_rep
        self.encoding = encoding

    def open_writer(self, path: str) -> ShardWriter:
        return _CsvShardWriter(self, self.open_file(path))
