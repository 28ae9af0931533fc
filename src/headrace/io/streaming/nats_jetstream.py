"""Reading a NATS JetStream stream through a durable pull consumer: ``ReadFromNatsJetStream``.

nats-py is asyncio-only, so each reader runs its own event loop in a private daemon thread
(:class:`~headrace.io.streaming._common.LoopThread`) and its synchronous methods wait on it.

* **Consumer.** The durable consumer ``durable`` on ``stream`` is created on first use with
  ``filter_subject=subject`` and *cumulative* acknowledgement (``AckPolicy.ALL``), starting at the
  first message of the stream (``deliver_policy="all"``) or at the next new one (``"new"``). An
  existing durable must have been made the same way (the reader says so otherwise). One reader
  reads one durable: ``split`` does not divide it.
* **Resuming.** When a reader starts and the durable has delivered messages that were never
  acknowledged (the previous reader crashed or was closed without committing), it recreates the
  durable positioned right after its *ack floor* (or after the checkpoint, if that is further),
  so those messages come again at once and in order, rather than after ``ack_wait``.
* **Checkpoint** (:class:`JetStreamCheckpoint`): the stream sequence of the last message returned
  (and the watermark). ``commit`` acknowledges that message, which acknowledges every earlier
  one, and waits for the server to confirm. A reader created from a checkpoint skips what it
  covers. Messages redelivered while a reader holds them uncommitted (``ack_wait`` ran out) are
  dropped by that reader, so keep ``ack_wait_s`` above the time between commits (in a
  windowed pipeline: about a window plus its allowed lateness). ``checkpoint_at`` makes a
  checkpoint in the middle of the last poll (one of ``poll_positions()``): the streaming runner
  commits only up to the first message whose output is not yet published, so a restart reads
  again exactly the input of the panes still to come.
* **Elements** are the message payloads (``bytes``), or ``parse(payload)``; with
  ``with_metadata=True`` a :class:`JetStreamMessage` (subject, payload, headers, sequence) is
  passed instead. The timestamp is the time the server stored the message (message metadata).
* **Watermark.** The timestamp of the last message returned. When a fetch comes back empty *and
  the durable has nothing left to give* (no message it has not delivered, none delivered that this
  reader has not received), it moves up to the reader's clock at the start of that fetch minus
  ``clock_skew_s`` (a bound on how far the server's clock may run behind this machine's);
  ``clock_skew_s=None`` turns that off. An empty fetch alone proves nothing: a short fetch can
  time out while a backlog waits (after a restart, the messages the dead reader never
  acknowledged), and moving the watermark to the clock then would make that backlog late data.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from headrace.io.streaming._common import LoopThread, require
from headrace.model.pvalue import PBegin, PCollection
from headrace.model.sources import UnboundedReader, UnboundedSource, timestamped_us
from headrace.model.timestamp import MIN_US, Timestamp
from headrace.model.transforms.ptransform import PTransform
from headrace.model.transforms.unbounded import ReadUnbounded

__all__ = [
    "JetStreamCheckpoint",
    "JetStreamMessage",
    "JetStreamReader",
    "JetStreamSource",
    "ReadFromNatsJetStream",
]

_NAME = "ReadFromNatsJetStream"


@dataclass(frozen=True)
class JetStreamCheckpoint:
    """The stream sequence of the last message returned (0: none yet) and the watermark."""

    stream_seq: int
    watermark_us: int = MIN_US


@dataclass(frozen=True)
class JetStreamMessage:
    """A message with its metadata (``with_metadata=True``)."""

    subject: str
    data: bytes
    headers: dict[str, str] | None
    stream_seq: int
    num_delivered: int


class JetStreamSource(UnboundedSource):
    """Messages on ``subject`` in JetStream stream ``stream``, read by durable ``durable``."""

    def __init__(
        self,
        subject: str,
        stream: str,
        durable: str,
        servers: str | list[str] = "nats://127.0.0.1:4222",
        parse: Callable[[Any], Any] | None = None,
        with_metadata: bool = False,
        deliver_policy: str = "all",
        ack_wait_s: float = 30.0,
        max_ack_pending: int = 20_000,
        clock_skew_s: float | None = 1.0,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = 5.0,
        connect_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if deliver_policy not in ("all", "new"):
            raise ValueError(
                f"{_NAME}: deliver_policy must be 'all' or 'new', got {deliver_policy!r}"
            )
        if "." in durable or "*" in durable or ">" in durable:
            raise ValueError(f"{_NAME}: durable name {durable!r} may not contain '.', '*' or '>'")
        self.subject = subject
        self.stream = stream
        self.durable = durable
        self.servers = servers
        self.parse = parse
        self.with_metadata = with_metadata
        self.deliver_policy = deliver_policy
        self.ack_wait_s = ack_wait_s
        self.max_ack_pending = max_ack_pending
        self.clock_skew_s = clock_skew_s
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self.connect_kwargs = dict(connect_kwargs or {})

    def create_reader(self, checkpoint: JetStreamCheckpoint | None = None) -> JetStreamReader:
        return JetStreamReader(self, checkpoint)

    def display_data(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "stream": self.stream,
            "durable": self.durable,
            "servers": self.servers,
        }

    def default_label(self) -> str:
        return f"NatsJetStream({self.stream}:{self.subject})"


class JetStreamReader(UnboundedReader):
    """The reader of one durable pull consumer; see the module docstring."""

    def __init__(self, source: JetStreamSource, checkpoint: JetStreamCheckpoint | None) -> None:
        require("nats", "nats-py", _NAME)
        self._source = source
        self._nc: Any = None
        self._sub: Any = None
        self._last_error: BaseException | None = None
        ckpt_seq = checkpoint.stream_seq if checkpoint else 0
        self._last_seq = ckpt_seq  # messages at or below this are never returned again
        self._committed = ckpt_seq
        self._watermark = checkpoint.watermark_us if checkpoint else MIN_US
        self._last_msg: Any = None
        self._positions: list[tuple[int, Any]] = []  # (stream seq, message) of the last poll
        self._held: dict[int, Any] = {}  # checkpointed stream seq -> message to ack on commit
        # The durable's delivered position when this reader bound to it: what was delivered
        # before then was acknowledged (or is covered by the checkpoint), never to be received.
        self._base_seq = ckpt_seq
        self._closed = False
        self._loop = LoopThread(f"headrace-nats-{source.durable}")
        try:
            budget = source.connect_timeout_s + 4 * source.request_timeout_s + 5
            self._loop.run(self._open(ckpt_seq), timeout=budget)
        except BaseException:
            self._shutdown()
            raise

    # -- on the event loop -----------------------------------------------------------------------

    async def _on_error(self, exc: Exception) -> None:
        self._last_error = exc

    async def _open(self, ckpt_seq: int) -> None:
        import asyncio

        import nats
        from nats.js import api
        from nats.js.errors import NotFoundError

        s = self._source
        try:
            self._nc = await asyncio.wait_for(
                nats.connect(
                    s.servers,
                    connect_timeout=max(1, round(s.connect_timeout_s)),
                    error_cb=self._on_error,
                    **s.connect_kwargs,
                ),
                timeout=s.connect_timeout_s,
            )
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            cause = self._last_error or exc
            raise ConnectionError(
                f"{_NAME}: cannot connect to NATS at {s.servers} "
                f"({type(cause).__name__}: {cause}); is nats-server running (with -js)?"
            ) from exc
        js = self._nc.jetstream(timeout=s.request_timeout_s)
        try:
            await js.stream_info(s.stream)
        except NotFoundError:
            raise ValueError(
                f"{_NAME}: JetStream stream {s.stream!r} does not exist; create it first "
                f"(nats stream add {s.stream} --subjects {s.subject!r}, or js.add_stream)"
            ) from None
        except nats.errors.Error as exc:
            raise ConnectionError(
                f"{_NAME}: JetStream does not answer at {s.servers} ({type(exc).__name__}: "
                f"{exc}); start nats-server with JetStream enabled (-js)"
            ) from exc
        try:
            info = await js.consumer_info(s.stream, s.durable)
        except NotFoundError:
            info = None
        start_seq = ckpt_seq + 1 if ckpt_seq else 0
        if info is not None:
            cfg = info.config
            if cfg.ack_policy != api.AckPolicy.ALL or cfg.filter_subject != s.subject:
                raise ValueError(
                    f"{_NAME}: durable {s.durable!r} on stream {s.stream!r} exists with "
                    f"ack_policy={getattr(cfg.ack_policy, 'value', cfg.ack_policy)!r} and "
                    f"filter_subject={cfg.filter_subject!r}, but this reader needs 'all' and "
                    f"{s.subject!r}; delete it (nats consumer rm) or choose another durable name"
                )
            floor = self._ack_floor(info, api)
            if (info.num_ack_pending or 0) > 0 or ckpt_seq > floor:
                # Undo the dead reader's deliveries: restart right after what is acknowledged.
                await js.delete_consumer(s.stream, s.durable)
                start_seq = max(floor, ckpt_seq) + 1
                info = None
            else:
                self._base_seq = max(ckpt_seq, info.delivered.stream_seq if info.delivered else 0)
        if info is None:
            if not start_seq and s.deliver_policy == "new":
                # A start sequence rather than DeliverPolicy.NEW: the ack floor of a consumer that
                # has acknowledged nothing yet is then known from its config (see _ack_floor).
                stream_info = await js.stream_info(s.stream)
                start_seq = stream_info.state.last_seq + 1
            if start_seq:
                policy, opt_start = api.DeliverPolicy.BY_START_SEQUENCE, start_seq
            else:
                policy, opt_start = api.DeliverPolicy.ALL, None
            self._base_seq = max(ckpt_seq, start_seq - 1)
            config = api.ConsumerConfig(
                durable_name=s.durable,
                deliver_policy=policy,
                opt_start_seq=opt_start,
                ack_policy=api.AckPolicy.ALL,
                ack_wait=s.ack_wait_s,
                max_ack_pending=s.max_ack_pending,
                filter_subject=s.subject,
            )
            await js.add_consumer(s.stream, config=config)
        self._sub = await js.pull_subscribe_bind(durable=s.durable, stream=s.stream)

    def _ack_floor(self, info: Any, api: Any) -> int:
        """The stream sequence up to which the durable has acknowledged everything.

        The server reports 0 until the first acknowledgement, so before that the floor is the
        message before the consumer's configured start.
        """
        cfg = info.config
        acked = info.ack_floor.stream_seq if info.ack_floor else 0
        if cfg.deliver_policy == api.DeliverPolicy.BY_START_SEQUENCE:
            return max(acked, (cfg.opt_start_seq or 1) - 1)
        if cfg.deliver_policy == api.DeliverPolicy.ALL or acked:
            return acked
        s = self._source
        raise ValueError(
            f"{_NAME}: durable {s.durable!r} on stream {s.stream!r} has messages delivered but "
            f"unacknowledged and deliver_policy={getattr(cfg.deliver_policy, 'value', '?')!r}, "
            "so where to resume is unknown; delete it (nats consumer rm) or choose another "
            "durable name"
        )

    async def _fetch(self, batch: int, timeout_s: float) -> list[Any]:
        import nats

        try:
            msgs: list[Any] = await self._sub.fetch(batch, timeout=timeout_s)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        return msgs

    async def _caught_up(self) -> bool:
        """Whether the durable holds nothing this reader has not received yet.

        Asked after an empty fetch, before the watermark moves to the clock: no message matching
        the filter is waiting for delivery, and every message delivered (highest stream sequence)
        has reached this reader, or was delivered before it bound to the durable.
        """
        info = await self._sub.consumer_info()
        delivered = info.delivered.stream_seq if info.delivered else 0
        return not info.num_pending and delivered <= max(self._last_seq, self._base_seq)

    async def _close(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # the connection may already be gone
                pass
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.close()

    # -- the UnboundedReader API -----------------------------------------------------------------

    def poll(self, max_elements: int, timeout_s: float) -> list[Any]:
        if self._closed:
            raise RuntimeError(f"{_NAME}: the reader of durable {self._source.durable!r} is closed")
        s = self._source
        batch = max(1, min(max_elements, s.max_ack_pending))
        wait = max(0.01, timeout_s)
        started_us = time.time_ns() // 1000
        msgs = self._loop.run(self._fetch(batch, wait), timeout=wait + s.request_timeout_s + 5)
        if not msgs:
            self._positions = []
            if s.clock_skew_s is not None:
                timeout = s.request_timeout_s
                if self._loop.run(self._caught_up(), timeout=timeout + 5):
                    mark = started_us - round(s.clock_skew_s * 1_000_000)
                    self._watermark = max(self._watermark, mark)
            return []
        parse, with_metadata = s.parse, s.with_metadata
        out: list[Any] = []
        positions: list[tuple[int, Any]] = []
        self._positions = positions
        last_seq, watermark = self._last_seq, self._watermark
        for msg in msgs:
            meta = msg.metadata
            seq = meta.sequence.stream
            if seq <= last_seq:
                continue  # redelivered while held, or covered by the checkpoint
            ts = Timestamp.from_utc_datetime(meta.timestamp).micros
            value: Any = msg.data
            if with_metadata:
                value = JetStreamMessage(
                    msg.subject, msg.data, msg.headers, seq, meta.num_delivered
                )
            if parse is not None:
                value = parse(value)
            out.append(timestamped_us(value, ts))
            positions.append((seq, msg))
            last_seq = seq
            watermark = max(watermark, ts)
            self._last_msg = msg
        self._last_seq, self._watermark = last_seq, watermark
        return out

    def watermark_us(self) -> int:
        return self._watermark

    def checkpoint(self) -> JetStreamCheckpoint:
        if self._last_seq > self._committed and self._last_msg is not None:
            self._held[self._last_seq] = self._last_msg
        return JetStreamCheckpoint(self._last_seq, self._watermark)

    def poll_positions(self) -> list[tuple[int, Any]]:
        """One position per element of the last poll, for :meth:`checkpoint_at`."""
        return self._positions

    def checkpoint_at(self, position: tuple[int, Any]) -> JetStreamCheckpoint:
        """A checkpoint covering the messages up to ``position`` (from :meth:`poll_positions`):
        the runner commits it when only the messages up to there are fully processed."""
        seq, msg = position
        if seq > self._committed:
            self._held[seq] = msg
        return JetStreamCheckpoint(seq, self._watermark)

    def commit(self, checkpoint: JetStreamCheckpoint) -> None:
        seq = checkpoint.stream_seq
        if seq <= self._committed:
            return
        msg = self._held.get(seq)
        if msg is None:
            raise ValueError(
                f"{_NAME}: commit got a checkpoint (stream_seq={seq}) that this reader did not "
                "make; commit the values returned by this reader's checkpoint()"
            )
        timeout = self._source.request_timeout_s
        self._loop.run(msg.ack_sync(timeout=timeout), timeout=timeout + 5)
        self._held = {k: v for k, v in self._held.items() if k > seq}
        self._committed = seq

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._shutdown()

    def _shutdown(self) -> None:
        try:
            if self._nc is not None:
                self._loop.run(self._close(), timeout=10)
        finally:
            self._loop.close()


class ReadFromNatsJetStream(PTransform):
    """Read ``subject`` from JetStream stream ``stream`` with durable consumer ``durable``.

    Elements are the payloads (``bytes``, or ``parse(payload)``), timestamped with the time the
    server stored each message. Committing a checkpoint acknowledges the messages; after a restart
    the reader resumes from the durable's ack floor. See
    :mod:`headrace.io.streaming.nats_jetstream`.
    Needs ``streaming=True`` and the ``nats-py`` package (``pip install 'headrace[streaming]'``).

    >>> from headrace.model.pipeline import Pipeline
    >>> p = Pipeline()
    >>> orders = p | ReadFromNatsJetStream("orders.*", stream="ORDERS", durable="billing")
    >>> orders.is_bounded
    False
    """

    def __init__(
        self,
        subject: str,
        stream: str,
        durable: str,
        servers: str | list[str] = "nats://127.0.0.1:4222",
        *,
        parse: Callable[[Any], Any] | None = None,
        with_metadata: bool = False,
        deliver_policy: str = "all",
        ack_wait_s: float = 30.0,
        max_ack_pending: int = 20_000,
        clock_skew_s: float | None = 1.0,
        connect_timeout_s: float = 5.0,
        request_timeout_s: float = 5.0,
        connect_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.source = JetStreamSource(
            subject,
            stream,
            durable,
            servers=servers,
            parse=parse,
            with_metadata=with_metadata,
            deliver_policy=deliver_policy,
            ack_wait_s=ack_wait_s,
            max_ack_pending=max_ack_pending,
            clock_skew_s=clock_skew_s,
            connect_timeout_s=connect_timeout_s,
            request_timeout_s=request_timeout_s,
            connect_kwargs=connect_kwargs,
        )

    def expand(self, pbegin: PBegin) -> PCollection:
        result: PCollection = pbegin | "Read" >> ReadUnbounded(self.source)
        return result
