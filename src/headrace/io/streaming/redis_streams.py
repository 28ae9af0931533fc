"""Reading a Redis stream through a consumer group: ``ReadFromRedisStreams``.

Each reader is one consumer of the group (``split`` gives ``num_consumers`` of them, named
``consumer-0``, ``consumer-1``, ...; Redis shares new entries between them). The reader is at
least once and, with the runner's checkpoints, exactly once:

* **Reading.** A reader first re-reads its consumer's pending entries (delivered earlier, never
  acknowledged: what a crashed or closed reader had not committed), then reads new entries with
  ``XREADGROUP ... >``, blocking up to the poll's timeout. Entries reach one consumer in
  increasing id order.
* **Checkpoint** (:class:`RedisStreamCheckpoint`): the id of the last entry returned (and the
  watermark). ``commit`` runs ``XACK`` for every entry returned up to that id. A reader created
  from a checkpoint first acknowledges its consumer's pending entries up to the checkpoint's id
  (they were processed; only the acknowledgement was lost), then re-reads the rest.
  ``checkpoint_at`` makes a checkpoint in the middle of the last poll (one of
  ``poll_positions()``): the streaming runner commits only up to the first entry whose output is
  not yet published.
* **Group.** Created on first use at ``start_id`` (``"0"``: the whole stream; ``"$"``: only new
  entries), with ``MKSTREAM``.
* **Elements** are the entry's fields as a dict (``str`` keys and values; ``decode=False`` keeps
  ``bytes``), or ``parse(entry_id, fields)``. The timestamp is the id's milliseconds part.
* **Watermark.** The timestamp of the last entry returned. When a read of new entries comes back
  empty, it moves up to the server's ``TIME`` taken just before that read, since Redis gives a
  later entry an id at least that large. Turn this off (``advance_watermark_when_idle=False``)
  when producers choose their own ids with ``XADD`` instead of ``*``.

Pending entries of a consumer that is never started again (after lowering ``num_consumers``) stay
pending; claim them with ``XAUTOCLAIM``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headrace.io.streaming._common import require
from headrace.model.pvalue import PBegin, PCollection
from headrace.model.sources import UnboundedReader, UnboundedSource, timestamped_us
from headrace.model.timestamp import MIN_US
from headrace.model.transforms.ptransform import PTransform
from headrace.model.transforms.unbounded import ReadUnbounded

__all__ = [
    "ReadFromRedisStreams",
    "RedisStreamCheckpoint",
    "RedisStreamReader",
    "RedisStreamSource",
]

_NAME = "ReadFromRedisStreams"
_ACK_CHUNK = 1000


@dataclass(frozen=True)
class RedisStreamCheckpoint:
    """The last entry id returned by a reader (``None``: none yet) and its watermark."""

    last_id: str | None
    watermark_us: int = MIN_US


def _parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisStreamSource(UnboundedSource):
    """The entries of Redis stream ``stream``, read as consumer ``consumer`` of ``group``."""

    def __init__(
        self,
        stream: str,
        group: str,
        consumer: str,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        parse: Callable[[str, dict[Any, Any]], Any] | None = None,
        decode: bool = True,
        start_id: str = "0",
        num_consumers: int = 1,
        advance_watermark_when_idle: bool = True,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if num_consumers < 1:
            raise ValueError(f"{_NAME}: num_consumers must be >= 1, got {num_consumers}")
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.host = host
        self.port = port
        self.db = db
        self.password = password
        self.parse = parse
        self.decode = decode
        self.start_id = start_id
        self.num_consumers = num_consumers
        self.advance_watermark_when_idle = advance_watermark_when_idle
        self.client_kwargs = dict(client_kwargs or {})

    def split(self, desired_num_splits: int) -> list[UnboundedSource]:
        """``num_consumers`` consumers (``desired_num_splits`` is ignored, to keep names stable)."""
        if self.num_consumers == 1:
            return [self]
        parts: list[UnboundedSource] = []
        for i in range(self.num_consumers):
            part = RedisStreamSource.__new__(RedisStreamSource)
            part.__dict__.update(self.__dict__)
            part.consumer = f"{self.consumer}-{i}"
            part.num_consumers = 1
            parts.append(part)
        return parts

    def create_reader(self, checkpoint: RedisStreamCheckpoint | None = None) -> RedisStreamReader:
        return RedisStreamReader(self, checkpoint)

    def display_data(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "group": self.group,
            "consumer": self.consumer,
            "server": f"{self.host}:{self.port}/{self.db}",
        }

    def default_label(self) -> str:
        return f"RedisStream({self.stream})"


class RedisStreamReader(UnboundedReader):
    """One consumer of a Redis consumer group; see the module docstring."""

    def __init__(self, source: RedisStreamSource, checkpoint: RedisStreamCheckpoint | None) -> None:
        redis = require("redis", "redis", _NAME)
        self._source = source
        self._redis_error: type[Exception] = redis.exceptions.ResponseError
        kwargs: dict[str, Any] = {"socket_connect_timeout": 5.0}
        kwargs.update(source.client_kwargs)
        self._client = redis.Redis(
            host=source.host,
            port=source.port,
            db=source.db,
            password=source.password,
            decode_responses=False,
            **kwargs,
        )
        self._last_id: str | None = checkpoint.last_id if checkpoint else None
        self._watermark = checkpoint.watermark_us if checkpoint else MIN_US
        self._unacked: deque[tuple[tuple[int, int], str]] = deque()
        self._committed: tuple[int, int] = (-1, -1)
        self._closed = False
        try:
            self._ensure_group()
            if self._last_id is not None:
                self._ack_pending_up_to(self._last_id)
                self._committed = _parse_id(self._last_id)
        except redis.exceptions.ConnectionError as exc:
            self._client.close()
            raise ConnectionError(
                f"{_NAME}: cannot connect to Redis at {source.host}:{source.port} ({exc}); "
                "is redis-server running?"
            ) from exc
        except Exception:
            self._client.close()
            raise
        # Re-read this consumer's pending entries after the checkpoint, then new ones.
        self._pending_cursor: str | None = self._last_id or "0"
        self._positions: list[str] = []  # entry ids of the last poll

    def _ensure_group(self) -> None:
        s = self._source
        try:
            self._client.xgroup_create(s.stream, s.group, id=s.start_id, mkstream=True)
        except self._redis_error as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _ack_pending_up_to(self, last_id: str) -> None:
        s = self._source
        while True:
            pending = self._client.xpending_range(
                s.stream, s.group, "-", last_id, _ACK_CHUNK, consumername=s.consumer
            )
            if not pending:
                return
            self._client.xack(s.stream, s.group, *[p["message_id"] for p in pending])
            if len(pending) < _ACK_CHUNK:
                return

    def _entries(self, reply: Any) -> list[tuple[Any, Any]]:
        if not reply:
            return []
        if isinstance(reply, dict):  # RESP3: {stream: [entries]}
            (value,) = reply.values()
            return list(value[0]) if value else []
        return list(reply[0][1])

    def poll(self, max_elements: int, timeout_s: float) -> list[Any]:
        if self._closed:
            raise RuntimeError(f"{_NAME}: the reader of {self._source.stream!r} is closed")
        s = self._source
        count = max(1, max_elements)
        entries: list[tuple[Any, Any]] = []
        self._positions = []
        if self._pending_cursor is not None:
            reply = self._read(count, self._pending_cursor, None)
            entries = self._entries(reply)
            if entries:
                self._pending_cursor = _text(entries[-1][0])
                gone = [e[0] for e in entries if not e[1]]
                if gone:  # deleted from the stream (XDEL, XTRIM) while pending
                    self._client.xack(s.stream, s.group, *gone)
                    entries = [e for e in entries if e[1]]
                if not entries:
                    return []
            else:
                self._pending_cursor = None
        if not entries:
            block = max(1, round(timeout_s * 1000)) if timeout_s > 0 else None
            pipe = self._client.pipeline(transaction=False)
            pipe.time()
            self._read(count, ">", block, pipe)
            (secs, micros), reply = pipe.execute()
            entries = self._entries(reply)
            if not entries:
                if s.advance_watermark_when_idle:
                    server_ms = (secs * 1_000_000 + micros) // 1000
                    self._watermark = max(self._watermark, server_ms * 1000)
                return []
        return self._emit(entries)

    def _read(self, count: int, cursor: str, block: int | None, target: Any = None) -> Any:
        s = self._source
        client = self._client if target is None else target
        try:
            return client.xreadgroup(
                s.group, s.consumer, {s.stream: cursor}, count=count, block=block
            )
        except self._redis_error as exc:
            if "NOGROUP" in str(exc):
                raise RuntimeError(
                    f"{_NAME}: stream {s.stream!r} or its group {s.group!r} disappeared while "
                    "reading (the key was deleted?); recreate it or restart the pipeline"
                ) from exc
            raise

    def _emit(self, entries: list[tuple[Any, Any]]) -> list[Any]:
        s = self._source
        parse, decode = s.parse, s.decode
        out: list[Any] = []
        positions: list[str] = []
        self._positions = positions
        unacked = self._unacked
        entry_id = ""
        ms = 0
        for raw_id, fields in entries:
            entry_id = raw_id.decode() if isinstance(raw_id, bytes) else raw_id
            key = _parse_id(entry_id)
            ms = key[0]
            if decode:
                fields = {_text(k): _text(v) for k, v in fields.items()}
            value = fields if parse is None else parse(entry_id, fields)
            out.append(timestamped_us(value, ms * 1000))
            positions.append(entry_id)
            unacked.append((key, entry_id))
        self._last_id = entry_id
        self._watermark = max(self._watermark, ms * 1000)
        return out

    def watermark_us(self) -> int:
        return self._watermark

    def checkpoint(self) -> RedisStreamCheckpoint:
        return RedisStreamCheckpoint(self._last_id, self._watermark)

    def poll_positions(self) -> list[str]:
        """One position (the entry id) per element of the last poll, for :meth:`checkpoint_at`."""
        return self._positions

    def checkpoint_at(self, position: str) -> RedisStreamCheckpoint:
        """A checkpoint covering the entries up to ``position`` (from :meth:`poll_positions`):
        the runner commits it when only the entries up to there are fully processed."""
        return RedisStreamCheckpoint(position, self._watermark)

    def commit(self, checkpoint: RedisStreamCheckpoint) -> None:
        if checkpoint.last_id is None:
            return
        upto = _parse_id(checkpoint.last_id)
        if upto <= self._committed:
            return
        ids: list[str] = []
        unacked = self._unacked
        while unacked and unacked[0][0] <= upto:
            ids.append(unacked.popleft()[1])
        s = self._source
        for i in range(0, len(ids), _ACK_CHUNK):
            self._client.xack(s.stream, s.group, *ids[i : i + _ACK_CHUNK])
        self._committed = upto

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()


class ReadFromRedisStreams(PTransform):
    """Read a Redis stream as consumer ``consumer`` of group ``group`` (unbounded).

    Elements are the entries' fields as dicts of ``str`` (or ``parse(entry_id, fields)``),
    timestamped with the entry id's milliseconds. Committing a checkpoint acknowledges the entries
    (``XACK``); entries returned but never committed are delivered again after a restart. See
    :mod:`headrace.io.streaming.redis_streams` for the details. Needs ``streaming=True`` and the
    ``redis`` package (``pip install 'headrace[streaming]'``).

    >>> from headrace.model.pipeline import Pipeline
    >>> p = Pipeline()
    >>> events = p | ReadFromRedisStreams("clicks", group="counter", consumer="worker")
    >>> events.is_bounded
    False
    """

    def __init__(
        self,
        stream: str,
        group: str,
        consumer: str,
        host: str = "127.0.0.1",
        port: int = 6379,
        *,
        db: int = 0,
        password: str | None = None,
        parse: Callable[[str, dict[Any, Any]], Any] | None = None,
        decode: bool = True,
        start_id: str = "0",
        num_consumers: int = 1,
        advance_watermark_when_idle: bool = True,
        client_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.source = RedisStreamSource(
            stream,
            group,
            consumer,
            host=host,
            port=port,
            db=db,
            password=password,
            parse=parse,
            decode=decode,
            start_id=start_id,
            num_consumers=num_consumers,
            advance_watermark_when_idle=advance_watermark_when_idle,
            client_kwargs=client_kwargs,
        )

    def expand(self, pbegin: PBegin) -> PCollection:
        result: PCollection = pbegin | "Read" >> ReadUnbounded(self.source)
        return result
