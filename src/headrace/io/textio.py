"""Text, CSV and JSON transforms under Beam's names (``apache_beam.io.textio``).

Reads are splittable sources (see :mod:`headrace.io.lines`); writes go through
:class:`~headrace.io.filebasedsink.WriteFiles`, so output files appear only when the run succeeds;
on unbounded input they go through :class:`~headrace.io.windowedsink.WriteWindowedFiles`, one file
per window and pane, each published as it fires.
CSV and JSON reads yield :class:`~headrace.model.row.Row` objects; the CSV typing rule is in
:mod:`headrace.io.tabular`. Parameters that Beam has and headrace does not implement are accepted
at their default value and raise :class:`NotImplementedError` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from headrace.io.filebasedsink import WriteFiles
from headrace.io.filesystem import CompressionTypes, EmptyMatchTreatment, match_files
from headrace.io.lines import TextSink, TextSource
from headrace.io.streaming.filewatch import MatchContinuously
from headrace.io.tabular import CsvSink, CsvSource, JsonSink, JsonSource
from headrace.io.windowedsink import (
    WriteWindowedFiles,
    wants_windowed_write,
    with_triggering_frequency,
)
from headrace.model.transforms.core import FlatMap, Read
from headrace.model.transforms.ptransform import PTransform

__all__ = [
    "ReadAllFromText",
    "ReadAllFromTextContinuously",
    "ReadFromCsv",
    "ReadFromJson",
    "ReadFromText",
    "ReadFromTextWithFilename",
    "WriteToCsv",
    "WriteToJson",
    "WriteToText",
]

DEFAULT_DESIRED_BUNDLE_SIZE = 64 * 1024 * 1024


def _unsupported(transform: str, **given: Any) -> None:
    """Raise for parameters that headrace accepts for Beam compatibility but does not implement."""
    for name, (value, default) in given.items():
        if value != default:
            raise NotImplementedError(
                f"{transform}: {name}={value!r} is not supported by headrace; leave it at "
                f"{default!r}"
            )


def _pop_label(kwargs: dict[str, Any]) -> str | None:
    label = kwargs.pop("label", None)
    return label if isinstance(label, str) or label is None else str(label)


def _reject_extra(transform: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        names = ", ".join(sorted(kwargs))
        raise NotImplementedError(f"{transform}: unsupported argument(s) {names}")


class ReadFromText(PTransform):
    r"""Read text files as a PCollection of lines (``str``), one element per line.

    Lines end with ``\n`` or ``\r\n`` (or ``delimiter``), which are removed unless
    ``strip_trailing_newlines=False``. ``file_pattern`` may hold globs and fsspec URLs; ``.gz``
    and ``.bz2`` files are decompressed (``compression_type``). Uncompressed files are split
    into byte ranges for parallel reading.

    >>> import fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with fsspec.open("memory://doc/poem.txt", "wb") as f:
    ...     _ = f.write(b"title\nroses are red\nviolets are blue\n")
    >>> with Pipeline() as p:
    ...     lines = p | ReadFromText("memory://doc/poem.txt", skip_header_lines=1)
    ...     assert_that(lines, equal_to(["roses are red", "violets are blue"]))
    """

    _with_filename = False

    def __init__(
        self,
        file_pattern: str | None = None,
        min_bundle_size: int = 0,
        compression_type: str = CompressionTypes.AUTO,
        strip_trailing_newlines: bool = True,
        coder: Any = None,
        validate: bool = True,
        skip_header_lines: int = 0,
        delimiter: bytes | None = None,
        escapechar: bytes | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(_pop_label(kwargs))
        name = type(self).__name__
        _reject_extra(name, kwargs)
        _unsupported(name, escapechar=(escapechar, None))
        if file_pattern is None:
            raise ValueError(f"{name} needs a file_pattern")
        self._source = TextSource(
            file_pattern,
            min_bundle_size=min_bundle_size,
            compression_type=compression_type,
            strip_trailing_newlines=strip_trailing_newlines,
            coder=coder,
            validate=validate,
            skip_header_lines=skip_header_lines,
            delimiter=delimiter,
            with_filename=self._with_filename,
        )

    def expand(self, pbegin: Any) -> Any:
        return pbegin | Read(self._source)


class ReadFromTextWithFilename(ReadFromText):
    """Like :class:`ReadFromText`, but each element is ``(file_name, line)``.

    >>> import fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with fsspec.open("memory://doc/named.txt", "wb") as f:
    ...     _ = f.write(b"x\\n")
    >>> with Pipeline() as p:
    ...     assert_that(p | ReadFromTextWithFilename("memory://doc/named.txt"),
    ...                 equal_to([("memory:///doc/named.txt", "x")]))
    """

    _with_filename = True


class _ReadAllFiles:
    """Reads every file of one pattern (the function ``ReadAllFromText`` maps over patterns)."""

    def __init__(self, options: dict[str, Any], empty_match_treatment: str) -> None:
        self.options = options
        self.empty_match_treatment = empty_match_treatment

    def __call__(self, pattern: Any) -> Iterator[Any]:
        pattern = getattr(pattern, "path", pattern)  # a FileMetadata from MatchContinuously
        try:
            match_files(pattern)
        except FileNotFoundError:
            if EmptyMatchTreatment.allow_empty_match(pattern, self.empty_match_treatment):
                return iter(())
            raise
        return TextSource(pattern, validate=False, **self.options).read()


class ReadAllFromText(PTransform):
    """Read the text files named by a PCollection of file patterns.

    A pattern that matches no file reads as nothing, as in Beam (its ``ReadAllFiles`` expands
    each pattern with ``FileSystems.match``, which gives an empty list). Pass
    ``empty_match_treatment=EmptyMatchTreatment.DISALLOW`` (or ``ALLOW_IF_WILDCARD``) to fail
    on such a pattern instead (a headrace option, named after Beam's ``fileio.MatchAll``).

    >>> import fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> for name in ("a", "b"):
    ...     with fsspec.open(f"memory://doc/all-{name}.txt", "wb") as f:
    ...         _ = f.write(name.encode() + b"1\\n")
    >>> with Pipeline() as p:
    ...     lines = p | Create(["memory://doc/all-*.txt"]) | ReadAllFromText()
    ...     assert_that(lines, equal_to(["a1", "b1"]))
    """

    def __init__(
        self,
        min_bundle_size: int = 0,
        desired_bundle_size: int = DEFAULT_DESIRED_BUNDLE_SIZE,
        compression_type: str = CompressionTypes.AUTO,
        strip_trailing_newlines: bool = True,
        validate: bool = False,
        coder: Any = None,
        skip_header_lines: int = 0,
        with_filename: bool = False,
        delimiter: bytes | None = None,
        escapechar: bytes | None = None,
        empty_match_treatment: str = EmptyMatchTreatment.ALLOW,
        **kwargs: Any,
    ) -> None:
        super().__init__(_pop_label(kwargs))
        _reject_extra("ReadAllFromText", kwargs)
        EmptyMatchTreatment.allow_empty_match("", empty_match_treatment)  # validate it now
        _unsupported("ReadAllFromText", escapechar=(escapechar, None))
        self._read = _ReadAllFiles(
            {
                "min_bundle_size": min_bundle_size,
                "compression_type": compression_type,
                "strip_trailing_newlines": strip_trailing_newlines,
                "coder": coder,
                "skip_header_lines": skip_header_lines,
                "delimiter": delimiter,
                "with_filename": with_filename,
            },
            empty_match_treatment,
        )
        self.desired_bundle_size = desired_bundle_size

    def expand(self, pcoll: Any) -> Any:
        return pcoll | "ReadAllFiles" >> FlatMap(self._read)


class ReadAllFromTextContinuously(ReadAllFromText):
    """Watch ``file_pattern`` and read each new (or, with ``match_updated_files``, changed) file.

    Takes :class:`ReadAllFromText`'s arguments and ``MatchContinuously``'s (``interval``,
    ``has_deduplication``, ``start_timestamp``, ``stop_timestamp``, ``match_updated_files``,
    ``apply_windowing``), as Beam's transform does. The output is unbounded.
    """

    _ARGS_FOR_MATCH = frozenset(
        {
            "interval",
            "has_deduplication",
            "start_timestamp",
            "stop_timestamp",
            "match_updated_files",
            "apply_windowing",
        }
    )

    def __init__(self, file_pattern: str, **kwargs: Any) -> None:
        match = {k: kwargs.pop(k) for k in list(kwargs) if k in self._ARGS_FOR_MATCH}
        super().__init__(**kwargs)
        self._file_pattern = file_pattern
        self._match = match

    def expand(self, pbegin: Any) -> Any:
        files = pbegin | MatchContinuously(self._file_pattern, **self._match)
        return files | "ReadAllFiles" >> FlatMap(self._read)


class WriteToText(PTransform):
    """Write each element as a line of text files ``prefix-SSSSS-of-NNNNN + suffix``.

    ``str`` is written as UTF-8, ``bytes`` as they are, anything else as ``str(element)``
    (or via ``coder.encode``). ``num_shards=0`` writes one file per worker; ``num_shards=n``
    exactly ``n`` files; ``shard_name_template=''`` one file named ``prefix + suffix``.
    A ``.gz``/``.bz2``/``.deflate``/``.zst``/``.xz`` suffix compresses
    (``compression_type=AUTO``). Files appear only when the pipeline succeeds.

    On an unbounded PCollection (or with ``windowed_writes=True``) each pane of each window
    is written to its own file as soon as it fires, and the transform returns the paths written;
    ``windowed_writes=False`` keeps the one-commit-at-the-end write. ``triggering_frequency``
    (seconds) re-windows a windowed write into fixed windows of that length, each written once
    the watermark passes it, as Beam does for streaming file writes. File names and guarantees:
    :mod:`headrace.io.windowedsink`.

    >>> import fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> with Pipeline() as p:
    ...     _ = p | Create([1, 2, 3]) | WriteToText("memory://doc/out/nums", ".txt",
    ...                                             shard_name_template="")
    >>> fsspec.open("memory://doc/out/nums.txt", "rb").open().read()
    b'1\\n2\\n3\\n'
    """

    def __init__(
        self,
        file_path_prefix: str,
        file_name_suffix: str = "",
        append_trailing_newlines: bool = True,
        num_shards: int = 0,
        shard_name_template: str | None = None,
        coder: Any = None,
        compression_type: str = CompressionTypes.AUTO,
        header: Any = None,
        footer: Any = None,
        *,
        max_records_per_shard: int | None = None,
        max_bytes_per_shard: int | None = None,
        skip_if_empty: bool = False,
        windowed_writes: bool | None = None,
        triggering_frequency: float | None = None,
        label: str | None = None,
    ) -> None:
        super().__init__(label)
        self._windowed_writes = windowed_writes
        self._triggering_frequency = triggering_frequency
        _unsupported(
            "WriteToText",
            max_records_per_shard=(max_records_per_shard, None),
            max_bytes_per_shard=(max_bytes_per_shard, None),
        )
        self._sink = TextSink(
            file_path_prefix,
            file_name_suffix=file_name_suffix,
            append_trailing_newlines=append_trailing_newlines,
            num_shards=num_shards,
            shard_name_template=shard_name_template,
            coder=coder,
            compression_type=compression_type,
            header=header,
            footer=footer,
        )
        self._sink.skip_if_empty = skip_if_empty

    def expand(self, pcoll: Any) -> Any:
        if wants_windowed_write(self._windowed_writes, pcoll):
            pcoll = with_triggering_frequency(pcoll, self._triggering_frequency)
            return pcoll | "WriteWindowed" >> WriteWindowedFiles(self._sink)
        return pcoll | WriteFiles(self._sink)


_CSV_READ_OPTIONS = frozenset(
    {
        "sep",
        "delimiter",
        "header",
        "names",
        "usecols",
        "dtype",
        "quotechar",
        "escapechar",
        "doublequote",
        "skipinitialspace",
        "skiprows",
        "keep_default_na",
        "encoding",
        "compression",
    }
)

_COMPRESSION_NAMES = {
    None: CompressionTypes.UNCOMPRESSED,
    "infer": CompressionTypes.AUTO,
    "gzip": CompressionTypes.GZIP,
    "bz2": CompressionTypes.BZIP2,
    "xz": CompressionTypes.LZMA,
    "zstd": CompressionTypes.ZSTD,
}


def _compression_from_pandas(transform: str, kwargs: dict[str, Any]) -> str:
    value = kwargs.pop("compression", "infer")
    if value in _COMPRESSION_NAMES:
        return _COMPRESSION_NAMES[value]
    if CompressionTypes.is_valid_compression_type(value):
        return str(value)
    raise NotImplementedError(
        f"{transform}: compression={value!r} is not supported; use 'infer', 'gzip', 'bz2', 'xz', "
        "'zstd' or None"
    )


class ReadFromCsv(PTransform):
    """Read CSV files as :class:`~headrace.model.row.Row` objects, one per line.

    Accepts a subset of ``pandas.read_csv``'s options: ``sep``/``delimiter``, ``header`` (0 or
    None), ``names``, ``usecols``, ``dtype``, ``quotechar``, ``escapechar``, ``doublequote``,
    ``skipinitialspace``, ``skiprows`` (an int), ``keep_default_na``, ``encoding`` (ASCII-
    compatible), ``compression``. Values are typed per column as Beam's pandas-based reader
    types them (int, float, bool or str; missing values None; see
    :mod:`headrace.io.csvtyping`). ``splittable=False`` reads each file whole, which is
    needed when quoted fields contain newlines.

    >>> import fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.row import Row
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with fsspec.open("memory://doc/scores.csv", "wb") as f:
    ...     _ = f.write(b"name,score\\nada,9.5\\nbob,7\\n")
    >>> with Pipeline() as p:
    ...     rows = p | ReadFromCsv("memory://doc/scores.csv")
    ...     assert_that(rows, equal_to([Row(name="ada", score=9.5), Row(name="bob", score=7)]))
    """

    def __init__(self, path: str, *, splittable: bool = True, **kwargs: Any) -> None:
        super().__init__(_pop_label(kwargs))
        validate = kwargs.pop("validate", True)
        min_bundle_size = kwargs.pop("min_bundle_size", 0)
        unknown = set(kwargs) - _CSV_READ_OPTIONS
        _reject_extra("ReadFromCsv", {k: kwargs[k] for k in unknown})
        if "delimiter" in kwargs:
            if "sep" in kwargs and kwargs["sep"] != kwargs["delimiter"]:
                raise ValueError("ReadFromCsv: pass sep or delimiter, not both")
            kwargs["sep"] = kwargs.pop("delimiter")
        if kwargs.get("header", 0) == "infer":
            kwargs["header"] = None if kwargs.get("names") is not None else 0
        compression = _compression_from_pandas("ReadFromCsv", kwargs)
        self._source = CsvSource(
            path,
            compression_type=compression,
            splittable=splittable,
            min_bundle_size=min_bundle_size,
            validate=validate,
            **kwargs,
        )

    def expand(self, pbegin: Any) -> Any:
        return pbegin | Read(self._source)


def _write_options(
    transform: str,
    num_shards: int | None,
    file_naming: Any,
    kwargs: dict[str, Any],
    allowed: frozenset[str],
) -> dict[str, Any]:
    _unsupported(transform, file_naming=(file_naming, None))
    options = {
        "num_shards": 0 if num_shards is None else num_shards,
        "file_name_suffix": kwargs.pop("file_name_suffix", ""),
        "shard_name_template": kwargs.pop("shard_name_template", None),
        "compression_type": _compression_from_pandas(transform, kwargs),
    }
    kwargs.pop("index", None)
    unknown = {k: v for k, v in kwargs.items() if k not in allowed}
    _reject_extra(transform, unknown)
    options.update(kwargs)
    return options


class WriteToCsv(PTransform):
    """Write dicts or Rows as CSV files with a header row (``path-SSSSS-of-NNNNN``).

    Options (a subset of ``DataFrame.to_csv``): ``sep``, ``header`` (bool), ``columns``,
    ``quotechar``, ``lineterminator``, ``na_rep``, ``encoding``, ``compression``; and headrace's
    ``file_name_suffix``, ``shard_name_template``. Columns come from ``columns`` or the first
    record of each shard.

    >>> import fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> with Pipeline() as p:
    ...     _ = p | Create([{"a": 1, "b": "x"}]) | WriteToCsv("memory://doc/csvout/t",
    ...                                                       shard_name_template="")
    >>> fsspec.open("memory://doc/csvout/t", "rb").open().read()
    b'a,b\\n1,x\\n'
    """

    _ALLOWED = frozenset(
        {"sep", "header", "columns", "quotechar", "lineterminator", "na_rep", "encoding"}
    )

    def __init__(
        self,
        path: str,
        num_shards: int | None = None,
        file_naming: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(_pop_label(kwargs))
        options = _write_options("WriteToCsv", num_shards, file_naming, kwargs, self._ALLOWED)
        self._sink = CsvSink(path, **options)

    def expand(self, pcoll: Any) -> Any:
        return pcoll | WriteFiles(self._sink)


class ReadFromJson(PTransform):
    """Read JSON Lines files (one object per line) as :class:`~headrace.model.row.Row` objects.

    ``lines=False`` reads each file as one JSON array of objects. Only ``orient='records'``
    is supported.

    >>> import fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.row import Row
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with fsspec.open("memory://doc/in.jsonl", "wb") as f:
    ...     _ = f.write(b'{"k": "a", "v": 1}\\n{"k": "b", "v": 2}\\n')
    >>> with Pipeline() as p:
    ...     rows = p | ReadFromJson("memory://doc/in.jsonl")
    ...     assert_that(rows, equal_to([Row(k="a", v=1), Row(k="b", v=2)]))
    """

    def __init__(
        self, path: str, *, orient: str = "records", lines: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(_pop_label(kwargs))
        _unsupported("ReadFromJson", orient=(orient, "records"))
        validate = kwargs.pop("validate", True)
        min_bundle_size = kwargs.pop("min_bundle_size", 0)
        encoding = kwargs.pop("encoding", "utf-8")
        compression = _compression_from_pandas("ReadFromJson", kwargs)
        _reject_extra("ReadFromJson", kwargs)
        self._source = JsonSource(
            path,
            lines=lines,
            encoding=encoding,
            compression_type=compression,
            min_bundle_size=min_bundle_size,
            validate=validate,
        )

    def expand(self, pbegin: Any) -> Any:
        return pbegin | Read(self._source)


class WriteToJson(PTransform):
    """Write dicts or Rows as JSON Lines files (``path-SSSSS-of-NNNNN``).

    Records are written compactly (``{"a":1}``), non-ASCII escaped unless ``force_ascii=False``;
    ``default_handler`` converts values ``json`` cannot. ``lines=False`` writes one JSON array
    per shard. Also accepts ``file_name_suffix``, ``shard_name_template``, ``compression``.
    ``windowed_writes`` as in :class:`WriteToText` (unbounded input: one file per window and pane).

    >>> import fsspec
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.row import Row
    >>> from headrace.model.transforms.core import Create
    >>> with Pipeline() as p:
    ...     _ = p | Create([Row(a=1)]) | WriteToJson("memory://doc/jsonout/r",
    ...                                              shard_name_template="")
    >>> fsspec.open("memory://doc/jsonout/r", "rb").open().read()
    b'{"a":1}\\n'
    """

    _ALLOWED = frozenset({"force_ascii", "default_handler", "encoding"})

    def __init__(
        self,
        path: str,
        *,
        num_shards: int | None = None,
        file_naming: Any = None,
        orient: str = "records",
        lines: bool = True,
        windowed_writes: bool | None = None,
        triggering_frequency: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(_pop_label(kwargs))
        _unsupported("WriteToJson", orient=(orient, "records"))
        self._triggering_frequency = triggering_frequency
        options = _write_options("WriteToJson", num_shards, file_naming, kwargs, self._ALLOWED)
        self._sink = JsonSink(path, lines=lines, **options)
        self._windowed_writes = windowed_writes

    def expand(self, pcoll: Any) -> Any:
        if wants_windowed_write(self._windowed_writes, pcoll):
            pcoll = with_triggering_frequency(pcoll, self._triggering_frequency)
            return pcoll | "WriteWindowed" >> WriteWindowedFiles(self._sink)
        return pcoll | WriteFiles(self._sink)
