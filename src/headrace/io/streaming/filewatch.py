"""Watching a file pattern: ``MatchContinuously`` (new files) and ``ReadFromTextContinuously``
(the lines of each new file), both over the unbounded :class:`FileWatchSource`.

How the reader works (one reader per pattern; ``split`` does not divide it):

* **Scans.** Every ``interval`` seconds of processing time, once the files of the previous scan are
  read, the reader lists the pattern (any fsspec URL) and queues the files it has not seen, oldest
  modification time first. ``match_updated_files=True`` also queues a seen file whose modification
  time changed (it is then read again from the start).
* **Reading.** Each queued file is read once: as lines (``ReadFromTextContinuously``) or as one
  :class:`~headrace.io.filesystem.FileMetadata` element (``MatchContinuously``). Write files
  elsewhere and rename them into place: a file still being written is read as far as it goes.
* **Timestamps.** ``timestamp="mtime"`` gives each element its file's modification time;
  ``timestamp="processing_time"`` the time of the scan that found the file.
* **Watermark.** The time of the latest scan minus ``watermark_lag``, held back to the timestamp of
  any file found but not yet fully read. In ``mtime`` mode a file that turns up later with an
  older modification time than that (copied with its times preserved, renamed into place long
  after it was written) is late: raise ``watermark_lag`` to allow for it.
* **Checkpoint** (:class:`FileWatchCheckpoint`): the files fully read (path and modification
  time), the byte offset reached in the file being read, the number of files read and the stop
  time. A reader restored from it skips the files read, resumes the current file at its offset,
  and finds the files that were merely queued again at its first scan. The set of files read
  grows with the number of files.
* **Restarts** (``checkpoint_file``). There is no broker to acknowledge to, so by default a
  restarted pipeline reads every file again: with ``timestamp="mtime"`` it recomputes the same
  panes (which a windowed file write then leaves as published), but with ``"processing_time"``
  the lines land in new windows. With ``checkpoint_file=PATH`` (a local path or fsspec URL),
  ``commit`` writes the checkpoint there (JSON, replaced atomically) and a reader created
  without a checkpoint starts from it: the runner commits only what every output made from it
  has published, so a restart resumes exactly after it. One file per watch; do not share it.
* **Stopping** (for tests and demos): at ``stop_timestamp`` (processing time) or ``stop_after``
  seconds after the first reader started, the reader scans one last time, reads what it found and
  is done; with ``max_files`` it is done after that many files.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from headrace.io.filesystem import (
    CompressionTypes,
    FileMetadata,
    open_for_read,
    open_for_write,
    rename,
)
from headrace.io.streaming._common import Clock, clock_us
from headrace.model.pvalue import PBegin, PCollection
from headrace.model.sources import UnboundedReader, UnboundedSource, timestamped_us
from headrace.model.timestamp import MAX_TIMESTAMP, MAX_US, MIN_US, Timestamp, to_micros
from headrace.model.transforms.core import WindowInto
from headrace.model.transforms.ptransform import PTransform
from headrace.model.transforms.unbounded import ReadUnbounded
from headrace.model.window import FixedWindows

__all__ = [
    "FileWatchCheckpoint",
    "FileWatchReader",
    "FileWatchSource",
    "MatchContinuously",
    "ReadFromTextContinuously",
]

_GLOB_CHARS = frozenset("*?[")
_BLOCK = 1 << 20
_TIMESTAMPS = ("mtime", "processing_time")


@dataclass(frozen=True)
class FileWatchCheckpoint:
    """The position of a :class:`FileWatchReader` (see the module docstring)."""

    done: Mapping[str, int]
    """Path -> modification time (microseconds) of every file fully read."""
    current: tuple[str, int, int, int] | None
    """``(path, mtime_us, timestamp_us, byte_offset)`` of the file being read, if any."""
    files_done: int
    stop_us: int
    last_scan_us: int
    watermark_us: int
    stopped: bool = False

    def to_json(self) -> str:
        """The checkpoint as JSON (what ``checkpoint_file`` holds)."""
        return json.dumps(
            {
                "version": 1,
                "done": dict(self.done),
                "current": list(self.current) if self.current is not None else None,
                "files_done": self.files_done,
                "stop_us": self.stop_us,
                "last_scan_us": self.last_scan_us,
                "watermark_us": self.watermark_us,
                "stopped": self.stopped,
            }
        )

    @classmethod
    def from_json(cls, text: str, where: str) -> FileWatchCheckpoint:
        """Read :meth:`to_json`'s output; ``where`` names the file in errors."""
        try:
            d = json.loads(text)
            if d.get("version") != 1:
                raise ValueError(f"unknown version {d.get('version')!r}")
            current = d["current"]
            return cls(
                {str(k): int(v) for k, v in d["done"].items()},
                (str(current[0]), int(current[1]), int(current[2]), int(current[3]))
                if current is not None
                else None,
                int(d["files_done"]),
                int(d["stop_us"]),
                int(d["last_scan_us"]),
                int(d["watermark_us"]),
                bool(d["stopped"]),
            )
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            raise ValueError(
                f"the file watch checkpoint {where!r} is damaged ({exc}); delete it to read "
                "every file again, or restore it from a backup"
            ) from None


@dataclass
class _PollStart:
    """The reader's state when a poll began reading, shared by the positions of that poll."""

    done: dict[str, int]
    finished: list[tuple[str, int]]  # files finished during the poll, in order
    files_done: int
    stop_us: int
    last_scan_us: int
    watermark_us: int
    stopped: bool


@dataclass
class _File:
    path: str
    mtime_us: int
    timestamp_us: int
    size: int
    offset: int = 0
    handle: IO[bytes] | None = None
    buf: bytes = b""
    pos: int = 0
    eof: bool = False

    def read_lines(self, count: int, compression: str) -> list[bytes]:
        """Up to ``count`` more lines (without the ``\\n``); fewer only at the end of the file."""
        if self.handle is None:
            self.handle = open_for_read(self.path, compression)
            if self.offset:
                if CompressionTypes.resolve(compression, self.path) == "uncompressed":
                    self.handle.seek(self.offset)
                else:
                    left = self.offset
                    while left > 0:
                        skipped = len(self.handle.read(min(left, _BLOCK)))
                        if not skipped:
                            break
                        left -= skipped
        out: list[bytes] = []
        buf, pos = self.buf, self.pos
        while len(out) < count:
            end = buf.find(b"\n", pos)
            if end >= 0:
                out.append(buf[pos:end])
                self.offset += end + 1 - pos
                pos = end + 1
                continue
            if self.eof:
                if pos < len(buf):
                    out.append(buf[pos:])
                    self.offset += len(buf) - pos
                    pos = len(buf)
                break
            block = self.handle.read(_BLOCK)
            if block:
                buf, pos = buf[pos:] + block, 0
            else:
                self.eof = True
        self.buf, self.pos = buf, pos
        return out

    @property
    def finished(self) -> bool:
        return self.eof and self.pos >= len(self.buf)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _mtime_us(info: Mapping[str, Any], fallback_us: int) -> int:
    """The modification time in an fsspec ``info`` dict, whatever the backend calls it."""
    for key in ("mtime", "LastModified", "updated", "last_modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            return round(value * 1_000_000)
        if isinstance(value, str):
            try:
                value = _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, _dt.datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=_dt.UTC)
            return Timestamp.from_utc_datetime(value).micros
    return fallback_us


class FileWatchSource(UnboundedSource):
    """Files matching ``file_pattern`` as they appear (see the module docstring).

    ``output`` is ``"lines"`` (str elements) or ``"metadata"`` (FileMetadata elements). Times are
    integer microseconds of processing time; ``stop_after_us`` counts from the first reader.
    """

    def __init__(
        self,
        file_pattern: str,
        interval_us: int,
        output: str = "lines",
        timestamp: str = "mtime",
        match_updated_files: bool = False,
        start_us: int = MIN_US,
        stop_us: int = MAX_US,
        stop_after_us: int | None = None,
        max_files: int | None = None,
        watermark_lag_us: int = 0,
        compression_type: str = CompressionTypes.AUTO,
        encoding: str = "utf-8",
        clock: Clock | None = None,
        checkpoint_file: str | None = None,
    ) -> None:
        if interval_us <= 0:
            raise ValueError(f"the scan interval of {file_pattern!r} must be positive")
        if output not in ("lines", "metadata"):
            raise ValueError(f"output must be 'lines' or 'metadata', got {output!r}")
        if timestamp not in _TIMESTAMPS:
            raise ValueError(
                f"timestamp must be 'mtime' or 'processing_time', got {timestamp!r} "
                f"(watching {file_pattern!r})"
            )
        if max_files is not None and max_files < 0:
            raise ValueError(f"max_files must be >= 0, got {max_files}")
        CompressionTypes.resolve(compression_type, file_pattern)
        self.file_pattern = file_pattern
        self.interval_us = interval_us
        self.output = output
        self.timestamp = timestamp
        self.match_updated_files = match_updated_files
        self.start_us = start_us
        self.stop_us = stop_us
        self.stop_after_us = stop_after_us
        self.max_files = max_files
        self.watermark_lag_us = watermark_lag_us
        self.compression_type = compression_type
        self.encoding = encoding
        self.clock = clock
        self.checkpoint_file = checkpoint_file

    def create_reader(self, checkpoint: FileWatchCheckpoint | None = None) -> FileWatchReader:
        return FileWatchReader(self, checkpoint)

    def display_data(self) -> dict[str, Any]:
        return {
            "file_pattern": self.file_pattern,
            "interval_s": self.interval_us / 1e6,
            "output": self.output,
            "timestamp": self.timestamp,
        }

    def default_label(self) -> str:
        return f"WatchFiles({self.file_pattern})"


class FileWatchReader(UnboundedReader):
    """Reads the new files of a :class:`FileWatchSource`; see the module docstring."""

    def __init__(self, source: FileWatchSource, checkpoint: FileWatchCheckpoint | None) -> None:
        from fsspec.core import url_to_fs  # imported here, not at module import: fsspec is slow
        from fsspec.implementations.local import LocalFileSystem

        self._source = source
        self._clock = source.clock
        self._fs, self._root = url_to_fs(source.file_pattern)
        self._local = isinstance(self._fs, LocalFileSystem)
        self._queue: deque[_File] = deque()
        self._queued: set[str] = set()
        self._current: _File | None = None
        now = clock_us(self._clock)
        if checkpoint is None and source.checkpoint_file is not None:
            checkpoint = _load_checkpoint(source.checkpoint_file)
        self._saved: FileWatchCheckpoint | None = checkpoint
        if checkpoint is None:
            stop = source.stop_us
            if source.stop_after_us is not None:
                stop = min(stop, now + source.stop_after_us)
            checkpoint = FileWatchCheckpoint({}, None, 0, stop, MIN_US, MIN_US)
        self._done: dict[str, int] = dict(checkpoint.done)
        self._files_done = checkpoint.files_done
        self._stop_us = checkpoint.stop_us
        self._last_scan_us = checkpoint.last_scan_us
        self._watermark = checkpoint.watermark_us
        self._stopped = checkpoint.stopped
        self._next_scan_us = max(now, source.start_us)  # a new reader scans at once
        if checkpoint.current is not None:
            path, mtime, ts, offset = checkpoint.current
            self._current = _File(path, mtime, ts, 0, offset)
        self._closed = False
        self._positions: list[Any] = []

    # -- scanning --------------------------------------------------------------------------------

    def _limit_reached(self) -> bool:
        limit = self._source.max_files
        if limit is None:
            return False
        in_flight = len(self._queue) + (self._current is not None)
        return self._files_done + in_flight >= limit

    def _list(self) -> dict[str, dict[str, Any]]:
        self._fs.invalidate_cache()
        root = self._root
        if _GLOB_CHARS.intersection(root):
            return dict(self._fs.glob(root, detail=True))
        try:
            return {root: self._fs.info(root)}
        except FileNotFoundError:
            return {}

    def _scan(self, now: int) -> None:
        source = self._source
        use_mtime = source.timestamp == "mtime"
        current = self._current
        found: list[_File] = []
        for name, info in self._list().items():
            if info.get("type", "file") == "directory":
                continue
            path = name if self._local else self._fs.unstrip_protocol(name)
            mtime = _mtime_us(info, now)
            seen = self._done.get(path)
            if seen is not None and (not source.match_updated_files or seen == mtime):
                continue
            if path in self._queued or (current is not None and current.path == path):
                continue
            found.append(
                _File(path, mtime, mtime if use_mtime else now, int(info.get("size") or 0))
            )
        found.sort(key=lambda f: (f.mtime_us, f.path))
        for f in found:
            if self._limit_reached():
                break
            self._queue.append(f)
            self._queued.add(f.path)
        self._last_scan_us = max(self._last_scan_us, now)
        self._next_scan_us = now + source.interval_us

    def _maybe_scan(self) -> None:
        if self._stopped or self._limit_reached():
            return
        now = clock_us(self._clock)
        if now >= self._stop_us:
            self._scan(now)  # the last scan: everything present at the stop time is read
            self._stopped = True
        elif now >= self._next_scan_us and not self._queue and self._current is None:
            self._scan(now)

    # -- reading ---------------------------------------------------------------------------------

    def _finish_current(self) -> None:
        f = self._current
        assert f is not None
        f.close()
        self._done[f.path] = f.mtime_us
        self._files_done += 1
        self._current = None

    def _read(self, max_elements: int) -> list[Any]:
        source = self._source
        out: list[Any] = []
        positions: list[tuple[_PollStart, int, tuple[str, int, int, int] | None]] = []
        self._positions = positions
        if not self._queue and self._current is None:
            return out
        start = _PollStart(
            dict(self._done),
            [],
            self._files_done,
            self._stop_us,
            self._last_scan_us,
            self._watermark,
            self._stopped,
        )
        finished = start.finished
        while len(out) < max_elements:
            if self._current is None:
                if not self._queue:
                    break
                self._current = self._queue.popleft()
                self._queued.discard(self._current.path)
            f = self._current
            if source.output == "metadata":
                meta = FileMetadata(f.path, f.size)
                out.append(timestamped_us(meta, f.timestamp_us))
                f.eof = True
                self._finish_current()
                finished.append((f.path, f.mtime_us))
                positions.append((start, len(finished), None))
                continue
            offset = f.offset
            try:
                lines = f.read_lines(max_elements - len(out), source.compression_type)
            except FileNotFoundError:
                lines = []  # deleted before (or while) it was read: nothing more to read
                f.eof, f.buf, f.pos = True, b"", 0
            # Where each line ends, for checkpoint_at (all end with \n but perhaps the last).
            k = len(finished)
            for line in lines:
                offset += len(line) + 1
                positions.append((start, k, (f.path, f.mtime_us, f.timestamp_us, offset)))
            if lines:
                positions[-1] = (start, k, (f.path, f.mtime_us, f.timestamp_us, f.offset))
            ts, encoding = f.timestamp_us, source.encoding
            try:
                out.extend(
                    [timestamped_us(line.decode(encoding).removesuffix("\r"), ts) for line in lines]
                )
            except UnicodeDecodeError as exc:
                raise ValueError(
                    f"{f.path!r} is not valid {encoding} text ({exc}); pass encoding= to "
                    "ReadFromTextContinuously, or MatchContinuously to read it yourself"
                ) from exc
            if f.finished:
                self._finish_current()
                finished.append((f.path, f.mtime_us))
                if lines:
                    positions[-1] = (start, len(finished), None)
        return out

    # -- the UnboundedReader API -----------------------------------------------------------------

    def poll(self, max_elements: int, timeout_s: float) -> list[Any]:
        if self._closed:
            raise RuntimeError(f"the reader of {self._source.file_pattern!r} is closed")
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            self._maybe_scan()
            out = self._read(max_elements)
            left = deadline - time.monotonic()
            if out or self.is_done() or left <= 0:
                self._update_watermark()
                return out
            wait = (min(self._next_scan_us, self._stop_us) - clock_us(self._clock)) / 1e6
            time.sleep(min(left, max(wait, 0.001)))

    def _update_watermark(self) -> None:
        if self._last_scan_us == MIN_US:
            return
        mark = self._last_scan_us - self._source.watermark_lag_us
        if self._current is not None:
            mark = min(mark, self._current.timestamp_us)
        for f in self._queue:
            mark = min(mark, f.timestamp_us)
        self._watermark = max(self._watermark, mark)

    def watermark_us(self) -> int:
        return MAX_US if self.is_done() else self._watermark

    def checkpoint(self) -> FileWatchCheckpoint:
        f = self._current
        current = None if f is None else (f.path, f.mtime_us, f.timestamp_us, f.offset)
        return FileWatchCheckpoint(
            dict(self._done),
            current,
            self._files_done,
            self._stop_us,
            self._last_scan_us,
            self._watermark,
            self._stopped,
        )

    def poll_positions(self) -> list[Any]:
        """One position per element of the last poll, for :meth:`checkpoint_at`."""
        return self._positions

    def checkpoint_at(self, position: Any) -> FileWatchCheckpoint:
        """A checkpoint covering the elements up to ``position`` (from :meth:`poll_positions`):
        the files finished by then read, the file of that line read up to its end. The
        watermark, scan time and stop flag are those from before the poll (a restored reader
        then scans again at once)."""
        start, finished, current = position
        done = dict(start.done)
        done.update(start.finished[:finished])
        return FileWatchCheckpoint(
            done,
            current,
            start.files_done + finished,
            start.stop_us,
            start.last_scan_us,
            start.watermark_us,
            start.stopped,
        )

    def commit(self, checkpoint: FileWatchCheckpoint) -> None:
        """Write ``checkpoint`` to ``checkpoint_file`` (atomically), if the source has one."""
        path = self._source.checkpoint_file
        if path is None or checkpoint == self._saved:
            return
        temp = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        with open_for_write(temp, CompressionTypes.UNCOMPRESSED) as f:
            f.write(checkpoint.to_json().encode())
        rename(temp, path)
        self._saved = checkpoint

    def is_done(self) -> bool:
        limit = self._source.max_files
        if limit is not None and self._files_done >= limit:
            return True
        return self._stopped and not self._queue and self._current is None

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        self._closed = True


def _load_checkpoint(path: str) -> FileWatchCheckpoint | None:
    try:
        with open_for_read(path, CompressionTypes.UNCOMPRESSED) as f:
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return None
    return FileWatchCheckpoint.from_json(text, path)


def _stop_us(stop_timestamp: Any) -> int:
    return (
        stop_timestamp.micros
        if isinstance(stop_timestamp, Timestamp)
        else to_micros(stop_timestamp)
    )


class MatchContinuously(PTransform):
    """Emit a :class:`~headrace.io.filesystem.FileMetadata` for each new file matching a pattern.

    Beam's ``fileio.MatchContinuously``: scans every ``interval`` seconds; each element's timestamp
    is the time of the scan that found it (``timestamp="mtime"`` for the modification time). Files
    are always deduplicated (``has_deduplication=False`` is refused). ``stop_after`` and
    ``max_files`` end the watch (tests, demos). Needs ``streaming=True``.

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "a.csv"), "w") as f:
    ...     _ = f.write("x,y\\n")
    >>> match = MatchContinuously(os.path.join(folder, "*.csv"), interval=0.01, max_files=1)
    >>> reader = match.source.create_reader()
    >>> [os.path.basename(tv.value.path) for tv in reader.poll(10, timeout_s=1)], reader.is_done()
    (['a.csv'], True)
    >>> import shutil; shutil.rmtree(folder)
    """

    def __init__(
        self,
        file_pattern: str,
        interval: float = 360.0,
        has_deduplication: bool = True,
        start_timestamp: Any = None,
        stop_timestamp: Any = MAX_TIMESTAMP,
        match_updated_files: bool = False,
        apply_windowing: bool = False,
        *,
        timestamp: str = "processing_time",
        stop_after: float | None = None,
        max_files: int | None = None,
        watermark_lag: float = 0.0,
        clock: Clock | None = None,
        checkpoint_file: str | None = None,
    ) -> None:
        super().__init__()
        if not has_deduplication:
            raise ValueError(
                "MatchContinuously(has_deduplication=False) is not supported: every file is "
                "emitted once (use match_updated_files=True to see changed files again)"
            )
        self.interval = interval
        self.apply_windowing = apply_windowing
        self.source = FileWatchSource(
            file_pattern,
            to_micros(interval),
            output="metadata",
            timestamp=timestamp,
            match_updated_files=match_updated_files,
            start_us=MIN_US if start_timestamp is None else _stop_us(start_timestamp),
            stop_us=_stop_us(stop_timestamp),
            stop_after_us=None if stop_after is None else to_micros(float(stop_after)),
            max_files=max_files,
            watermark_lag_us=to_micros(float(watermark_lag)),
            clock=clock,
            checkpoint_file=checkpoint_file,
        )

    def expand(self, pbegin: PBegin) -> PCollection:
        result: PCollection = pbegin | "Watch" >> ReadUnbounded(self.source)
        if self.apply_windowing:
            result = result | "ApplyWindowing" >> WindowInto(FixedWindows(self.interval))
        return result


class ReadFromTextContinuously(PTransform):
    """Read the lines of each new file matching ``file_pattern``, each file once (unbounded).

    Scans every ``interval`` seconds. Lines are ``str`` without their line end (``\n`` or
    ``\r\n``; ``compression_type`` as in ``ReadFromText``); each line's
    timestamp is its file's modification time (``timestamp="processing_time"``: the time of the
    scan that found the file). ``stop_after`` (seconds), ``stop_timestamp`` and ``max_files`` end
    the watch. ``checkpoint_file`` keeps the position across restarts (otherwise a restarted
    pipeline reads every file again). See :mod:`headrace.io.streaming.filewatch` for the
    watermark and the checkpoint. Needs ``streaming=True``.

    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "1.txt"), "w") as f:
    ...     _ = f.write("hello\\nworld\\n")
    >>> os.utime(os.path.join(folder, "1.txt"), (60, 60))
    >>> read = ReadFromTextContinuously(os.path.join(folder, "*.txt"), interval=0.01, max_files=1)
    >>> reader = read.source.create_reader()
    >>> reader.poll(10, timeout_s=1)
    [TimestampedValue('hello', 60), TimestampedValue('world', 60)]
    >>> reader.close(); import shutil; shutil.rmtree(folder)
    """

    def __init__(
        self,
        file_pattern: str,
        interval: float = 1.0,
        *,
        timestamp: str = "mtime",
        match_updated_files: bool = False,
        stop_timestamp: Any = MAX_TIMESTAMP,
        stop_after: float | None = None,
        max_files: int | None = None,
        watermark_lag: float = 0.0,
        compression_type: str = CompressionTypes.AUTO,
        encoding: str = "utf-8",
        clock: Clock | None = None,
        checkpoint_file: str | None = None,
    ) -> None:
        super().__init__()
        self.source = FileWatchSource(
            file_pattern,
            to_micros(interval),
            output="lines",
            timestamp=timestamp,
            match_updated_files=match_updated_files,
            stop_us=_stop_us(stop_timestamp),
            stop_after_us=None if stop_after is None else to_micros(float(stop_after)),
            max_files=max_files,
            watermark_lag_us=to_micros(float(watermark_lag)),
            compression_type=compression_type,
            encoding=encoding,
            clock=clock,
            checkpoint_file=checkpoint_file,
        )

    def expand(self, pbegin: PBegin) -> PCollection:
        result: PCollection = pbegin | "Watch" >> ReadUnbounded(self.source)
        return result
