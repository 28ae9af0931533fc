"""Shared machinery for sinks that write sharded files, visible only when the run succeeds.

How a write runs (:class:`WriteFiles`):

1. *Write temp files.* With ``num_shards=0`` a DoFn writes one temporary file per bundle (a
   bundle is one worker's share of the stage): the file is opened on the bundle's first element
   and closed in ``finish_bundle``, which emits a record ``(None, temp_path)``. With
   ``num_shards=n > 0`` each element is keyed by a shard index (round robin from a random start
   per bundle), grouped by key, and each group is written to its own temp file, emitting
   ``(index, temp_path)``. Temporary files
   live in ``<directory of file_path_prefix>/.headrace-temp-<uuid>``, created on first write.
2. *Finalize.* The records go to :class:`~headrace.model.sinks.FinalizeOnSuccess`. Only when the
   whole run has succeeded does :class:`FileFinalizer.commit` run, once, in the coordinating
   process: it gives every temp file its final name ``prefix + shard + suffix`` (shard from
   ``shard_name_template``), writes empty shards where no temp file exists (every shard of
   ``num_shards`` gets a file, and an empty input still yields one file), and removes the temp
   directory. If the run fails, :meth:`FileFinalizer.abort` removes the temp directory, so no output
   file appears.

A format plugs in by subclassing :class:`FileBasedSink` and implementing
:meth:`FileBasedSink.open_writer`, which returns a :class:`ShardWriter` (usually a
:class:`FileShardWriter` over :meth:`FileBasedSink.open_file`).
"""

from __future__ import annotations

import contextlib
import random
import re
import reprlib
import uuid
from collections.abc import Iterable, Iterator
from typing import IO, Any

from headrace.io.filesystem import (
    CompressionTypes,
    delete_files,
    delete_recursive,
    dirname,
    join,
    open_for_write,
    rename,
)
from headrace.model.sinks import FinalizeOnSuccess, Finalizer
from headrace.model.transforms.core import DoFn, GroupByKey, ParDo, WindowInto
from headrace.model.transforms.ptransform import PTransform
from headrace.model.window import GlobalWindows

__all__ = [
    "DEFAULT_SHARD_NAME_TEMPLATE",
    "AssignShardsDoFn",
    "FileBasedSink",
    "FileFinalizer",
    "FileShardWriter",
    "ShardWriter",
    "WriteFiles",
    "shard_name",
]

DEFAULT_SHARD_NAME_TEMPLATE = "-SSSSS-of-NNNNN"
TEMP_DIR_PREFIX = ".headrace-temp-"


def _check_template(template: str) -> None:
    if template and re.search("S+", template) is None:
        raise ValueError(
            f"shard_name_template {template!r} has no shard number placeholder: use a run of "
            "'S' (e.g. '-SSSSS-of-NNNNN'), or '' for a single unsharded file"
        )


def shard_name(template: str, index: int, count: int) -> str:
    """The shard part of a file name: the first run of ``S`` becomes ``index`` zero-padded to the
    run's length, the first run of ``N`` becomes ``count`` likewise.

    >>> shard_name("-SSSSS-of-NNNNN", 3, 12)
    '-00003-of-00012'
    >>> shard_name("", 0, 1)
    ''
    """
    if not template:
        return ""
    s_match = re.search("S+", template)
    if s_match is None:
        _check_template(template)
        return template
    s_run = s_match.group(0)
    name = template.replace(s_run, f"{index:0{len(s_run)}d}")
    n_match = re.search("N+", name)
    if n_match is not None:
        n_run = n_match.group(0)
        name = name.replace(n_run, f"{count:0{len(n_run)}d}")
    return name


def describe_record(value: Any) -> str:
    """A short, truncated repr of a record for error messages."""
    shower = reprlib.Repr()
    shower.maxstring = shower.maxother = 80
    shower.maxdict = shower.maxlist = 8
    return shower.repr(value)


class ShardWriter:
    """Writes the records of one shard file; made by :meth:`FileBasedSink.open_writer`."""

    def write(self, value: Any) -> None:
        """Append one record."""
        raise NotImplementedError

    def close(self) -> None:
        """Finish the file (footer, flush) and close it."""
        raise NotImplementedError


class FileShardWriter(ShardWriter):
    """A :class:`ShardWriter` over one open byte stream ``f``, which :meth:`close` always closes.

    Subclasses implement :meth:`write` and, when they buffer or end with a footer, :meth:`finish`.
    """

    __slots__ = ("_f",)

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def finish(self) -> None:
        """Write what is still buffered and any footer; ``close`` then closes the stream."""

    def close(self) -> None:
        try:
            self.finish()
        finally:
            self._f.close()


class FileBasedSink:
    """Describes a sharded file output: names, compression, and how one shard is written.

    Instances are plain configuration and pickle; they travel to every worker. Subclasses
    implement :meth:`open_writer`.
    """

    #: The user-facing transform name, used in error messages.
    transform_name = "Write"

    def __init__(
        self,
        file_path_prefix: str,
        *,
        file_name_suffix: str = "",
        num_shards: int = 0,
        shard_name_template: str | None = None,
        compression_type: str = CompressionTypes.AUTO,
        mime_type: str = "application/octet-stream",
    ) -> None:
        if not isinstance(file_path_prefix, str) or not file_path_prefix:
            raise ValueError(
                f"{self.transform_name}: file_path_prefix must be a non-empty string, "
                f"got {file_path_prefix!r}"
            )
        if not isinstance(file_name_suffix, str):
            raise ValueError(
                f"{self.transform_name}: file_name_suffix must be a string, "
                f"got {file_name_suffix!r}"
            )
        if not isinstance(num_shards, int) or isinstance(num_shards, bool) or num_shards < 0:
            raise ValueError(
                f"{self.transform_name}: num_shards must be an int >= 0 (0 lets the runner "
                f"choose), got {num_shards!r}"
            )
        if shard_name_template is None:
            shard_name_template = DEFAULT_SHARD_NAME_TEMPLATE
        _check_template(shard_name_template)
        if shard_name_template == "":
            num_shards = 1
        self.file_path_prefix = file_path_prefix
        self.file_name_suffix = file_name_suffix
        self.num_shards = num_shards
        self.shard_name_template = shard_name_template
        self.compression_type = CompressionTypes.resolve(
            compression_type, file_path_prefix + file_name_suffix
        )
        self.mime_type = mime_type
        #: Write no file at all when the input is empty (Beam's ``skip_if_empty``).
        self.skip_if_empty = False

    # -- to implement ------------------------------------------------------------------------

    def open_writer(self, path: str) -> ShardWriter:
        """Create the file ``path`` and return a writer for one shard's records."""
        raise NotImplementedError(f"{type(self).__name__} must implement open_writer()")

    # -- helpers -----------------------------------------------------------------------------

    def open_file(self, path: str) -> IO[bytes]:
        """Open ``path`` for writing with this sink's compression."""
        return open_for_write(path, self.compression_type)

    def final_path(self, index: int, count: int) -> str:
        """The final name of shard ``index`` of ``count``."""
        return (
            self.file_path_prefix
            + shard_name(self.shard_name_template, index, count)
            + self.file_name_suffix
        )

    def describe(self) -> str:
        """``'<transform> to <prefix>'``, for error messages."""
        return f"{self.transform_name} to {self.file_path_prefix!r}"

    def record_error(self, value: Any, problem: object) -> ValueError:
        """An error saying that ``value`` could not be written, naming this output."""
        return ValueError(
            f"{self.describe()}: cannot write record {describe_record(value)}: {problem}"
        )

    def display_data(self) -> dict[str, Any]:
        """Facts for plans and the UI."""
        return {
            "file_path_prefix": self.file_path_prefix,
            "file_name_suffix": self.file_name_suffix,
            "num_shards": self.num_shards,
            "shard_name_template": self.shard_name_template,
            "compression_type": self.compression_type,
        }


def _new_temp_path(temp_dir: str) -> str:
    return join(temp_dir, uuid.uuid4().hex)


class _BundleWriter:
    """Opens a temp file on the first record and closes it on demand; shared by the DoFns."""

    __slots__ = ("path", "sink", "temp_dir", "writer")

    def __init__(self, sink: FileBasedSink, temp_dir: str) -> None:
        self.sink = sink
        self.temp_dir = temp_dir
        self.writer: ShardWriter | None = None
        self.path: str | None = None

    def open(self) -> ShardWriter:
        self.path = _new_temp_path(self.temp_dir)
        self.writer = self.sink.open_writer(self.path)
        return self.writer

    def close(self) -> str | None:
        """Close the open file, if any, and return its path."""
        writer, path = self.writer, self.path
        self.writer = self.path = None
        if writer is not None:
            writer.close()
        return path

    def discard(self) -> None:
        """Best-effort removal of a half-written file after a failure."""
        writer, path = self.writer, self.path
        self.writer = self.path = None
        # Best effort: the original error matters, and abort removes the temp dir anyway.
        with contextlib.suppress(Exception):
            if writer is not None:
                writer.close()
        if path is not None:
            with contextlib.suppress(Exception):
                delete_files([path])


class _WriteBundlesDoFn(DoFn):
    """One temp file per bundle; emits ``(None, temp_path)`` from ``finish_bundle``."""

    def __init__(self, sink: FileBasedSink, temp_dir: str) -> None:
        self.sink = sink
        self.temp_dir = temp_dir
        self._out: _BundleWriter | None = None

    def start_bundle(self) -> None:
        self._out = _BundleWriter(self.sink, self.temp_dir)

    def process(self, element: Any) -> None:
        out = self._out
        if out is None:
            out = self._out = _BundleWriter(self.sink, self.temp_dir)
        writer = out.writer
        if writer is None:
            writer = out.open()
        writer.write(element)

    def finish_bundle(self) -> Iterator[tuple[int | None, str]]:
        out = self._out
        if out is not None:
            path = out.close()
            if path is not None:
                yield (None, path)

    def teardown(self) -> None:
        if self._out is not None:
            self._out.discard()
            self._out = None

    def __getstate__(self) -> dict[str, Any]:
        return {"sink": self.sink, "temp_dir": self.temp_dir, "_out": None}


class AssignShardsDoFn(DoFn):
    """Keys elements by shard index, round robin from a random start in each bundle."""

    def __init__(self, num_shards: int) -> None:
        self.num_shards = num_shards
        self._next = 0

    def start_bundle(self) -> None:
        self._next = random.randrange(self.num_shards)

    def process(self, element: Any) -> Iterator[tuple[int, Any]]:
        index = self._next
        self._next = index + 1 if index + 1 < self.num_shards else 0
        yield (index, element)


class _WriteShardsDoFn(DoFn):
    """Writes each ``(shard_index, values)`` group to its own temp file."""

    def __init__(self, sink: FileBasedSink, temp_dir: str) -> None:
        self.sink = sink
        self.temp_dir = temp_dir

    def process(self, element: tuple[int, Iterable[Any]]) -> Iterator[tuple[int, str]]:
        index, values = element
        out = _BundleWriter(self.sink, self.temp_dir)
        writer = out.open()
        try:
            for value in values:
                writer.write(value)
            path = out.close()
        except BaseException:
            out.discard()
            raise
        assert path is not None
        yield (index, path)


class FileFinalizer(Finalizer):
    """Renames temp files to their final shard names on success; removes them on failure."""

    def __init__(self, sink: FileBasedSink, temp_dir: str) -> None:
        self.sink = sink
        self.temp_dir = temp_dir

    def final_paths(self, results: list[Any]) -> list[tuple[str | None, str]]:
        """``(temp_path or None for an empty shard, final_path)`` for every output shard."""
        sink = self.sink
        if sink.num_shards > 0:
            count = sink.num_shards
            by_index: dict[int, str] = {}
            for index, path in results:
                if index is None or not 0 <= index < count:
                    raise ValueError(f"{sink.describe()}: unexpected shard record {index!r}")
                if index in by_index:
                    raise ValueError(
                        f"{sink.describe()}: shard {index} was written twice; a sharded write "
                        "needs its input in the global window"
                    )
                by_index[index] = path
            temps: list[str | None] = [by_index.get(i) for i in range(count)]
        else:
            temps = sorted(path for _, path in results) or [None]
            count = len(temps)
        return [(temp, sink.final_path(i, count)) for i, temp in enumerate(temps)]

    def commit(self, results: list[Any]) -> None:
        if not results and self.sink.skip_if_empty:
            delete_recursive(self.temp_dir)
            return
        for temp, final in self.final_paths(results):
            if temp is None:
                temp = _new_temp_path(self.temp_dir)
                self.sink.open_writer(temp).close()
            rename(temp, final)
        delete_recursive(self.temp_dir)

    def abort(self, results: list[Any]) -> None:
        delete_recursive(self.temp_dir)


class WriteFiles(PTransform):
    """Writes a PCollection through ``sink``; files appear only when the run succeeds.

    Format transforms (``WriteToText``, ``WriteToParquet``, ...) expand into this.

    >>> import fsspec
    >>> from headrace.io.lines import TextSink
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> with Pipeline() as p:
    ...     _ = p | Create(["x", "y"]) | WriteFiles(TextSink("memory://doc/wf/out", num_shards=2))
    >>> sorted(fsspec.filesystem("memory").ls("/doc/wf", detail=False))
    ['/doc/wf/out-00000-of-00002', '/doc/wf/out-00001-of-00002']
    """

    def __init__(self, sink: FileBasedSink, label: str | None = None) -> None:
        super().__init__(label)
        self.sink = sink

    def expand(self, pcoll: Any) -> Any:
        sink = self.sink
        temp_dir = join(dirname(sink.file_path_prefix), TEMP_DIR_PREFIX + uuid.uuid4().hex)
        if sink.num_shards == 0:
            records = pcoll | "WriteBundles" >> ParDo(_WriteBundlesDoFn(sink, temp_dir))
        else:
            windowing = pcoll.windowing
            if windowing.window_fn is not None or windowing.trigger is not None:
                # Shards are numbered once per run, not per window or pane.
                pcoll = pcoll | "GlobalWindow" >> WindowInto(GlobalWindows())
            records = (
                pcoll
                | "AssignShards" >> ParDo(AssignShardsDoFn(sink.num_shards))
                | "GroupShards" >> GroupByKey()
                | "WriteShards" >> ParDo(_WriteShardsDoFn(sink, temp_dir))
            )
        return records | "Finalize" >> FinalizeOnSuccess(FileFinalizer(sink, temp_dir))
