"""Windowed file writes: one file per window, pane and shard, each published atomically.

This is how ``WriteToText`` and ``WriteToJson`` write an unbounded PCollection (or any
PCollection when given ``windowed_writes=True``). A batch write (:mod:`headrace.io.filebasedsink`)
publishes its files only when the whole run succeeds; a streaming run may never end, so a windowed
write publishes each pane as soon as its trigger fires.

How a write runs (:class:`WriteWindowedFiles`):

1. *Shard.* Each element is keyed by a shard index over ``num_shards`` shards (1 when the sink's
   ``num_shards`` is 0): round robin from a random start per bundle for bounded input; for
   unbounded input a stable hash of the record's ``repr``, so that a restarted run that
   recomputes a pane puts each record in the same shard file as before.
2. *Group.* A ``GroupByKey`` groups the elements of each ``(shard, window)``; the window's trigger
   decides when a group fires, so each firing is one pane of that shard's group (pane indexes
   count per shard; with one shard they are exactly the window's panes).
3. *Write and publish.* For each fired group, a DoFn writes the records to a hidden temporary file
   next to the final one (``.<final name>.<random>.tmp``, same directory), closes it, then renames
   it to its final name (``os.replace`` locally, an fsspec move on other file systems; an object
   store's move publishes the whole object at once). Readers therefore never see a partial file.
   It emits the final path, in the pane's window and with the pane's timestamp.

File names follow Beam Python's (``apache_beam/io/filebasedsink.py``): the default template of
a windowed write is ``-W-SSSSS-of-NNNNN``, where a run of ``W`` is the window as Beam prints it
(``[60.0, 120.0)``, ``GlobalWindow``) and a run of ``V`` its bounds in UTC
(``[1970-01-01T00-01-00, 1970-01-01T00-02-00)``, ``None`` for the global window)::

    counts-[60.0, 120.0)-00000-of-00001.txt

Beam Python names every pane of a window alike, so a window's later panes replace its earlier
ones. headrace keeps them: a pane after the first gets ``-pane-{index}[-EARLY|-LATE]`` before the
suffix (``counts-[60.0, 120.0)-00000-of-00001-pane-1-LATE.txt``). A template with neither ``W``
nor ``V`` (``shard_name_template=''`` included) would give every window the same name, which Beam
overwrites; headrace then names the window itself, in UTC ISO 8601, with its pane::

    {prefix}-{window start}-{window end}-pane-{index}[-EARLY|-LATE]{shard}{suffix}
    {prefix}-global-pane-{index}[-EARLY|-LATE]{shard}{suffix}         (the global window)

Publishing twice. A batch rerun (bounded input) that writes a pane of the same name replaces the
earlier file. For unbounded input a published pane is never replaced: a streaming run restarted
after a crash recomputes the panes whose input was not yet acknowledged, and may fire a pane the
dead run had already published. Locally the name is taken with a hard link (atomic, and the data
and directory are flushed to disk first, so a published pane survives a machine crash); when the
name exists, the pane just computed is compared with the published one: the same records, in any
order (lines read back through the sink's compression), leave the published file as it is;
different records stop the run with a ``ValueError`` naming the file, rather than silently
replacing a pane with less (or other) data. The usual causes are input that changed, arrived
late or was lost upstream, or a transform that is not deterministic; move the file away or write
to a new prefix.

Empty panes (an ON_TIME pane with nothing new in DISCARDING mode) write no file, and
``skip_if_empty`` has no further effect. Files appear when panes fire, so the input should be
windowed or triggered: in the global window with the default trigger the one pane fires only
when the input ends, which for an endless stream is never.

Failure: a pane that fails while it is written removes its temporary file and the run fails; the
files of panes already published stay, since each is a complete pane. Only a killed process can
leave a ``.*.tmp`` file behind; it never carries a final name and may be deleted.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import posixpath
import re
import uuid
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from headrace.io.filebasedsink import (
    DEFAULT_SHARD_NAME_TEMPLATE,
    AssignShardsDoFn,
    FileBasedSink,
    describe_record,
    shard_name,
)
from headrace.io.filesystem import (
    delete_files,
    dirname,
    join,
    open_for_read,
    publish_new,
    rename,
)
from headrace.model.timestamp import Timestamp
from headrace.model.transforms.core import DoFn, GroupByKey, ParDo, WindowInto
from headrace.model.transforms.ptransform import PTransform
from headrace.model.trigger import AccumulationMode, AfterWatermark
from headrace.model.window import (
    BoundedWindow,
    FixedWindows,
    GlobalWindow,
    PaneInfo,
    PaneInfoTiming,
)

__all__ = [
    "WriteWindowedFiles",
    "wants_windowed_write",
    "windowed_file_name",
    "with_triggering_frequency",
]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_TIMING_TAGS = {PaneInfoTiming.EARLY: "-EARLY", PaneInfoTiming.LATE: "-LATE"}
_NOTHING: Any = object()


def _iso(micros: int) -> str:
    """A UTC instant in ISO 8601, ``Z``-suffixed; microseconds only when there are some."""
    try:
        moment = _EPOCH + _dt.timedelta(microseconds=micros)
    except OverflowError:
        return f"{micros}us"
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"


def _window_part(window: BoundedWindow) -> str:
    if isinstance(window, GlobalWindow):
        return "global"
    start = getattr(window, "start", None)
    end = getattr(window, "end", None)
    if start is not None and end is not None:
        return f"{_iso(Timestamp.of(start).micros)}-{_iso(Timestamp.of(end).micros)}"
    return f"until-{_iso(window.max_timestamp_us())}"


DEFAULT_WINDOW_SHARD_NAME_TEMPLATE = "-W-SSSSS-of-NNNNN"  # Beam Python's


def windowed_file_name(
    sink: FileBasedSink, window: BoundedWindow, pane: PaneInfo, shard: int, num_shards: int
) -> str:
    """The final name of one pane's file (see the module docstring for the pattern).

    >>> from headrace.io.lines import TextSink
    >>> from headrace.model.window import IntervalWindow
    >>> sink = TextSink("out/counts", file_name_suffix=".txt")
    >>> on_time = PaneInfo(True, True, PaneInfoTiming.ON_TIME, 0, 0)
    >>> windowed_file_name(sink, IntervalWindow(60, 120), on_time, 0, 1)
    'out/counts-[60.0, 120.0)-00000-of-00001.txt'
    >>> late = PaneInfo(False, False, PaneInfoTiming.LATE, 1, 1)
    >>> windowed_file_name(sink, IntervalWindow(60, 120), late, 0, 1)
    'out/counts-[60.0, 120.0)-00000-of-00001-pane-1-LATE.txt'
    >>> utc = TextSink("out/counts", shard_name_template="-V-SSSSS-of-NNNNN")
    >>> windowed_file_name(utc, IntervalWindow(60, 120), on_time, 0, 1)
    'out/counts-[1970-01-01T00-01-00, 1970-01-01T00-02-00)-00000-of-00001'
    >>> bare = TextSink("out/counts", shard_name_template="")
    >>> early = PaneInfo(True, False, PaneInfoTiming.EARLY, 0, -1)
    >>> windowed_file_name(bare, GlobalWindow(), early, 0, 1)
    'out/counts-global-pane-0-EARLY'
    """
    template = sink.shard_name_template
    if template == DEFAULT_SHARD_NAME_TEMPLATE:
        template = DEFAULT_WINDOW_SHARD_NAME_TEMPLATE
    tag = f"-pane-{pane.index}{_TIMING_TAGS.get(pane.timing, '')}"
    if template is None or not re.search("[WV]", template):  # Beam would overwrite: name it
        return (
            f"{sink.file_path_prefix}-{_window_part(window)}{tag}"
            f"{shard_name(template or '', shard, num_shards)}{sink.file_name_suffix}"
        )
    name = _with_window(shard_name(template, shard, num_shards), window)
    later = tag if pane.index > 0 else ""
    return f"{sink.file_path_prefix}{name}{later}{sink.file_name_suffix}"


def _with_window(template: str, window: BoundedWindow) -> str:
    """``template`` with its first run of ``W`` replaced by the window as Beam prints it and its
    first run of ``V`` by the window's bounds in UTC (Beam's ``window_utc``)."""
    for run, text in (("W+", str(window)), ("V+", _window_utc(window))):
        match = re.search(run, template)
        if match is not None:  # after the shard runs are replaced: the text stays as it is
            template = template.replace(match.group(0), text, 1)
    return template


def _window_utc(window: BoundedWindow) -> str:
    if isinstance(window, GlobalWindow):
        return "None"
    start, end = getattr(window, "start", None), getattr(window, "end", None)
    if start is None or end is None:
        return "None"
    fmt = "%Y-%m-%dT%H-%M-%S"
    first, last = (Timestamp.of(t).to_utc_datetime().strftime(fmt) for t in (start, end))
    return f"[{first}, {last})"


def with_triggering_frequency(pcoll: Any, triggering_frequency: float | None) -> Any:
    """Beam's ``triggering_frequency`` for a windowed write: fixed windows of that many seconds,
    each written once when the watermark passes it (``iobase.WriteImpl._apply_windowing``)."""
    if not triggering_frequency:
        return pcoll
    if triggering_frequency < 0:
        raise ValueError(f"triggering_frequency must be > 0 seconds, got {triggering_frequency!r}")
    return pcoll | "ApplyFixedWindows" >> WindowInto(
        FixedWindows(triggering_frequency),
        trigger=AfterWatermark(),
        accumulation_mode=AccumulationMode.DISCARDING,
        allowed_lateness=0,
    )


def wants_windowed_write(windowed_writes: bool | None, pcoll: Any) -> bool:
    """Whether a write expands to a windowed write: asked for, or by default on unbounded input."""
    if windowed_writes is None:
        return not getattr(pcoll, "is_bounded", True)
    return bool(windowed_writes)


def _temp_path_for(final: str) -> str:
    """A hidden temporary name in ``final``'s directory (so the rename stays on one device)."""
    name = posixpath.basename(final.rstrip("/"))
    return join(dirname(final), f".{name}.{uuid.uuid4().hex[:12]}.tmp")


def _same_records(a: str, b: str, compression: str) -> bool:
    """Whether files ``a`` and ``b`` hold the same lines in any order, once decompressed.

    The sinks written here (text, JSON lines) write one record per line; the order of records
    within a pane depends on arrival order, which a restarted run need not repeat.
    """
    with open_for_read(a, compression) as fa, open_for_read(b, compression) as fb:
        data_a, data_b = fa.read(), fb.read()
    return data_a == data_b or sorted(data_a.splitlines()) == sorted(data_b.splitlines())


class _StableShardsDoFn(DoFn):
    """Keys elements by a stable hash of their ``repr`` (unbounded windowed writes)."""

    def __init__(self, num_shards: int) -> None:
        self.num_shards = num_shards

    def process(self, element: Any) -> Iterator[tuple[int, Any]]:
        if self.num_shards == 1:
            yield (0, element)
        else:
            yield (zlib.crc32(repr(element).encode("utf-8", "replace")) % self.num_shards, element)


class _WritePaneDoFn(DoFn):
    """Writes each fired ``(shard, records)`` group to a temp file and publishes it.

    ``keep_published`` (unbounded input): an existing file of the same name is never replaced;
    see the module docstring.
    """

    def __init__(self, sink: FileBasedSink, num_shards: int, keep_published: bool = False) -> None:
        self.sink = sink
        self.num_shards = num_shards
        self.keep_published = keep_published

    def process(
        self,
        element: tuple[int, Iterable[Any]],
        window: Any = DoFn.WindowParam,
        pane: Any = DoFn.PaneInfoParam,
    ) -> Iterator[str]:
        shard, records = element
        iterator = iter(records)
        first = next(iterator, _NOTHING)
        if first is _NOTHING:
            return  # an empty pane (nothing new since the last firing): no file
        sink = self.sink
        final = windowed_file_name(sink, window, pane, shard, self.num_shards)
        temp = _temp_path_for(final)
        try:
            writer = sink.open_writer(temp)
            try:
                writer.write(first)
                for record in iterator:
                    writer.write(record)
            except BaseException:
                with contextlib.suppress(Exception):
                    writer.close()  # the write error is the one to report
                raise
            writer.close()
            if not self.keep_published:
                rename(temp, final)
            elif not publish_new(temp, final):
                self._check_republished(temp, final)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                delete_files([temp])  # best effort: the original error is what matters
            if isinstance(exc, Exception):
                exc.add_note(f"headrace: {sink.describe()} failed while writing {final!r}")
            raise
        yield final

    def _check_republished(self, temp: str, final: str) -> None:
        """``final`` was published before: keep it if ``temp`` holds the same records."""
        sink = self.sink
        compare = getattr(sink, "same_records", None)  # a sink that is not lines says how
        same = (
            compare(temp, final) if compare else _same_records(temp, final, sink.compression_type)
        )
        delete_files([temp])
        if not same:
            raise ValueError(
                f"{sink.describe()}: the pane file {final!r} is already published with "
                "different records than this run computed for it; a published pane is never "
                "replaced. A restarted streaming run recomputes the panes of unacknowledged "
                "input, so the input changed, arrived late or was lost, or a transform is not "
                "deterministic. Move the file away (or write to a new file_path_prefix) and "
                "restart."
            )


class WriteWindowedFiles(PTransform):
    """Writes each pane of each window to its own file, published atomically as it fires.

    ``WriteToText`` and ``WriteToJson`` expand into this for unbounded input (or when given
    ``windowed_writes=True``). The output is a PCollection of the paths written, each in its
    pane's window. See :mod:`headrace.io.windowedsink` for the file names and the guarantees.

    >>> import os, tempfile
    >>> from headrace.io.lines import TextSink
    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create, Map, WindowInto
    >>> from headrace.model.window import FixedWindows, TimestampedValue
    >>> out = tempfile.mkdtemp()
    >>> with Pipeline() as p:
    ...     _ = (p | Create([1, 2, 70]) | Map(lambda x: TimestampedValue(x, x))
    ...          | WindowInto(FixedWindows(60))
    ...          | WriteWindowedFiles(TextSink(os.path.join(out, "n"), shard_name_template="")))
    >>> sorted(os.listdir(out))  # doctest: +NORMALIZE_WHITESPACE
    ['n-1970-01-01T00:00:00Z-1970-01-01T00:01:00Z-pane-0',
     'n-1970-01-01T00:01:00Z-1970-01-01T00:02:00Z-pane-0']
    >>> import shutil; shutil.rmtree(out)
    """

    def __init__(self, sink: FileBasedSink, label: str | None = None) -> None:
        super().__init__(label)
        if not isinstance(sink, FileBasedSink):
            raise TypeError(
                f"WriteWindowedFiles needs a FileBasedSink, got {describe_record(sink)}"
            )
        self.sink = sink

    def expand(self, pcoll: Any) -> Any:
        num_shards = self.sink.num_shards or 1
        unbounded = not pcoll.is_bounded
        assign: DoFn = _StableShardsDoFn(num_shards) if unbounded else AssignShardsDoFn(num_shards)
        return (
            pcoll
            | "AssignShards" >> ParDo(assign)
            | "GroupPanes" >> GroupByKey()
            | "WritePanes" >> ParDo(_WritePaneDoFn(self.sink, num_shards, unbounded))
        )
