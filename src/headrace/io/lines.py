"""Reading and writing delimited text records fast: the engine under the text, CSV and JSON IO.

Reading works on large blocks (8 MiB): a block is cut after its last delimiter, the complete part is
decoded in one call and split in one call, so the per-line cost is one list slot. An uncompressed
file can be read in byte ranges: a range ``[start, stop)`` owns exactly the records that *start*
inside it (a record starts at offset 0 or right after a delimiter), so ranges that tile a file read
every record exactly once. The default delimiter is ``\\n``; a ``\\r`` before it is part of the
delimiter (``\\r\\n`` line ends). Compressed files are read whole, as one range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO, Any

from headrace.io.filebasedsink import FileBasedSink, FileShardWriter, ShardWriter
from headrace.io.filebasedsource import FileBasedSource, FileRange
from headrace.io.filesystem import CompressionTypes, open_for_read
from headrace.model.coders import StrUtf8Coder

__all__ = ["TextSink", "TextSource", "iter_chunks", "to_bytes"]

BLOCK_SIZE = 8 << 20
_MIN_READ = 64 << 10


def iter_chunks(
    f: IO[bytes], start: int, stop: int | None, delimiter: bytes, aligned: bool
) -> Iterator[bytes]:
    """Yield byte chunks holding the whole records that start in ``[start, stop)``.

    Each chunk is a run of complete records, each ending with ``delimiter``, except possibly the
    last record of the file. ``aligned`` says ``start`` is known to be a record start (otherwise
    reading begins after the first delimiter that ends at or after ``start``). ``stop=None`` reads
    to the end of the file; then ``f`` need not be seekable when ``start`` is 0.
    """
    dlen = len(delimiter)
    buf = b""
    pos = start  # file offset of buf[0]
    if start > 0:
        if not aligned:
            pos = _offset_after(f, max(0, start - dlen), 1, delimiter)
        f.seek(pos)
    while stop is None or pos < stop:
        cut = buf.rfind(delimiter)
        if cut >= 0:
            end = cut + dlen
            if stop is None or pos + end < stop:
                yield buf[:end]
                buf = buf[end:]
                pos += end
                continue
            if pos + end > stop:
                # The chunk runs past stop: keep records up to the one holding byte stop - 1.
                end = buf.find(delimiter, max(0, stop - pos - dlen)) + dlen
            yield buf[:end]
            return
        want = BLOCK_SIZE if stop is None else min(BLOCK_SIZE, max(_MIN_READ, stop - pos + 4096))
        block = f.read(want)
        if not block:
            if buf:
                yield buf
            return
        buf = buf + block if buf else block


def header_end(f: IO[bytes], num_records: int, delimiter: bytes) -> int:
    """Byte offset just after the first ``num_records`` records (file size if there are fewer)."""
    return _offset_after(f, 0, num_records, delimiter)


def _offset_after(f: IO[bytes], offset: int, count: int, delimiter: bytes) -> int:
    """The offset just after the ``count``-th delimiter at or after ``offset`` (else file size)."""
    f.seek(offset)
    left = count
    tail = b""
    dlen = len(delimiter)
    while left > 0:
        block = f.read(_MIN_READ)
        if not block:
            return offset + len(tail)
        data = tail + block
        base = offset
        idx = 0
        while left > 0:
            found = data.find(delimiter, idx)
            if found < 0:
                break
            idx = found + dlen
            left -= 1
        if left == 0:
            return base + idx
        keep = max(idx, len(data) - (dlen - 1)) if dlen > 1 else len(data)
        tail = data[keep:]
        offset = base + keep
    return offset


def _lines_from_chunks(chunks: Iterator[bytes], strip: bool, path: str) -> Iterator[list[str]]:
    """Default format: UTF-8 text, records end with ``\\n`` or ``\\r\\n``."""
    for chunk in chunks:
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValueError(
                f"{path!r} is not valid UTF-8 ({exc}); pass a coder that decodes bytes"
            ) from exc
        if strip:
            if "\r" in text:
                text = text.replace("\r\n", "\n")
            lines = text.split("\n")
            if not lines[-1]:
                lines.pop()
        else:
            lines = text.split("\n")
            last = lines.pop()
            lines = [line + "\n" for line in lines]
            if last:
                lines.append(last)
        yield lines


def _records_from_chunks(
    chunks: Iterator[bytes],
    delimiter: bytes,
    strip: bool,
    decode: Callable[[bytes], Any],
) -> Iterator[list[Any]]:
    """Any delimiter or coder: split bytes, then decode each record (``\r\n`` still ends a
    line when the delimiter is the default)."""
    crlf = strip and delimiter == b"\n"
    for chunk in chunks:
        if crlf and b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        parts = chunk.split(delimiter)
        last = parts.pop()
        if not strip:
            parts = [p + delimiter for p in parts]
        if last:
            parts.append(last)
        yield [decode(p) for p in parts]


def _utf8(data: bytes) -> str:
    return data.decode("utf-8")


class TextSource(FileBasedSource):
    """Records of text files, one per delimited line; see :class:`headrace.io.ReadFromText`.

    >>> import fsspec
    >>> with fsspec.open("memory://doc/lines.txt", "wb") as f:
    ...     _ = f.write(b"a\\nbb\\r\\nccc")
    >>> list(TextSource("memory://doc/lines.txt").read())
    ['a', 'bb', 'ccc']
    """

    def __init__(
        self,
        file_pattern: str,
        *,
        min_bundle_size: int = 0,
        compression_type: str = CompressionTypes.AUTO,
        strip_trailing_newlines: bool = True,
        coder: Any = None,
        validate: bool = True,
        skip_header_lines: int = 0,
        delimiter: bytes | None = None,
        with_filename: bool = False,
    ) -> None:
        if not isinstance(skip_header_lines, int) or skip_header_lines < 0:
            raise ValueError(f"skip_header_lines must be an int >= 0, got {skip_header_lines!r}")
        if delimiter is not None and (not isinstance(delimiter, bytes) or not delimiter):
            raise ValueError(f"delimiter must be non-empty bytes, got {delimiter!r}")
        if coder is not None and not callable(getattr(coder, "decode", None)):
            raise TypeError(f"coder must have a decode(bytes) method, got {coder!r}")
        super().__init__(
            file_pattern,
            min_bundle_size=min_bundle_size,
            compression_type=compression_type,
            splittable=True,
            validate=validate,
        )
        self.strip_trailing_newlines = strip_trailing_newlines
        self.coder = coder
        self.skip_header_lines = skip_header_lines
        self.delimiter = delimiter
        self.with_filename = with_filename

    def read_range(self, file_range: FileRange) -> Iterator[Any]:
        for batch in self.read_batches(file_range):
            yield from batch

    def read_batches(self, file_range: FileRange) -> Iterator[list[Any]]:
        """The records of ``file_range`` as lists (one per block), for callers that batch."""
        path = file_range.path
        compression = CompressionTypes.resolve(self.compression_type, path)
        delimiter = self.delimiter or b"\n"
        skip = self.skip_header_lines
        with open_for_read(path, compression) as f:
            if compression == CompressionTypes.UNCOMPRESSED:
                start, aligned = file_range.start, file_range.start == 0
                if skip:
                    first = header_end(f, skip, delimiter)
                    if start <= first:
                        start, aligned = first, True
                    skip = 0
                    if start == 0:
                        f.seek(0)
                chunks = iter_chunks(f, start, file_range.stop, delimiter, aligned)
            else:
                chunks = iter_chunks(f, 0, None, delimiter, True)
            if self.delimiter is None and (self.coder is None or type(self.coder) is StrUtf8Coder):
                batches = _lines_from_chunks(chunks, self.strip_trailing_newlines, path)
            else:
                decode = _utf8 if self.coder is None else self.coder.decode
                batches = _records_from_chunks(
                    chunks, delimiter, self.strip_trailing_newlines, decode
                )
            if skip:
                batches = _skip_records(batches, skip)
            if self.with_filename:
                for batch in batches:
                    yield [(path, r) for r in batch]
            else:
                yield from batches

    def display_data(self) -> dict[str, Any]:
        data = super().display_data()
        if self.skip_header_lines:
            data["skip_header_lines"] = self.skip_header_lines
        return data


def _skip_records(batches: Iterator[list[Any]], count: int) -> Iterator[list[Any]]:
    for batch in batches:
        if count >= len(batch):
            count -= len(batch)
            continue
        if count:
            batch = batch[count:]
            count = 0
        yield batch


def to_bytes(value: Any) -> bytes:
    """``bytes`` as they are, ``str`` as UTF-8, anything else as ``str(value)`` in UTF-8."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(value).encode("utf-8")


class _TextShardWriter(FileShardWriter):
    __slots__ = ("_buf", "_coder", "_footer", "_newline")

    _FLUSH_EVERY = 8192

    def __init__(self, f: IO[bytes], coder: Any, newline: bytes, header: Any, footer: Any) -> None:
        super().__init__(f)
        self._coder = coder
        self._newline = newline
        self._footer = footer
        self._buf: list[Any] = []
        if header is not None:
            f.write(to_bytes(header) + newline)

    def write(self, value: Any) -> None:
        buf = self._buf
        buf.append(value)
        if len(buf) >= self._FLUSH_EVERY:
            self._flush()

    def _flush(self) -> None:
        buf = self._buf
        if not buf:
            return
        self._buf = []
        newline = self._newline
        if self._coder is not None:
            encode = self._coder.encode
            data = newline.join([encode(v) for v in buf])
        else:
            try:
                data = newline.decode().join(buf).encode("utf-8")
            except TypeError:
                data = newline.join([to_bytes(v) for v in buf])
        self._f.write(data + newline)

    def finish(self) -> None:
        self._flush()
        if self._footer is not None:
            self._f.write(to_bytes(self._footer) + self._newline)


class TextSink(FileBasedSink):
    """Writes one record per line; see :class:`headrace.io.WriteToText`."""

    transform_name = "WriteToText"

    def __init__(
        self,
        file_path_prefix: str,
        *,
        file_name_suffix: str = "",
        append_trailing_newlines: bool = True,
        num_shards: int = 0,
        shard_name_template: str | None = None,
        coder: Any = None,
        compression_type: str = CompressionTypes.AUTO,
        header: Any = None,
        footer: Any = None,
    ) -> None:
        super().__init__(
            file_path_prefix,
            file_name_suffix=file_name_suffix,
            num_shards=num_shards,
            shard_name_template=shard_name_template,
            compression_type=compression_type,
            mime_type="text/plain",
        )
        if coder is not None and not callable(getattr(coder, "encode", None)):
            raise TypeError(f"{self.transform_name}: coder must have an encode(value) method")
        self.append_trailing_newlines = append_trailing_newlines
        self.coder = coder
        self.header = header
        self.footer = footer

    def open_writer(self, path: str) -> ShardWriter:
        newline = b"\n" if self.append_trailing_newlines else b""
        return _TextShardWriter(self.open_file(path), self.coder, newline, self.header, self.footer)
