"""Periodic impulses on the processing-time clock: ``PeriodicImpulse`` and ``PeriodicSequence``.

``PeriodicImpulse`` is an unbounded source (:class:`PeriodicImpulseSource`) that emits one element
for each fire time ``start, start + interval, ...`` before ``stop``, no earlier than that time on
the processing-time clock (it catches up at once on fire times already past). Each element's event
timestamp is its fire time; by default the element *is* that fire time, in float seconds (as in
Beam). The reader's checkpoint is the index of the next fire time, so a restart neither repeats nor
skips one. The watermark is the next fire time (``MAX_US`` once past ``stop``).

``PeriodicSequence`` does the same for each ``(start, stop, interval)`` element of its input, inside
a DoFn that waits on the clock, so it holds up its bundle while it waits; prefer
``PeriodicImpulse`` as the root of a streaming pipeline.

Both take a ``clock`` (a function returning seconds, like :func:`time.time`) so tests can drive
time.
"""

from __future__ import annotations

import enum
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from headrace.io.streaming._common import Clock, clock_us
from headrace.model.pvalue import PBegin, PCollection
from headrace.model.sources import UnboundedReader, UnboundedSource, timestamped_us
from headrace.model.timestamp import MAX_TIMESTAMP, MAX_US, MIN_US, Timestamp, to_micros
from headrace.model.transforms.core import ParDo, WindowInto
from headrace.model.transforms.dofn import DoFn
from headrace.model.transforms.ptransform import PTransform
from headrace.model.transforms.unbounded import ReadUnbounded
from headrace.model.window import FixedWindows

__all__ = [
    "PeriodicCheckpoint",
    "PeriodicImpulse",
    "PeriodicImpulseSource",
    "PeriodicSequence",
    "RebaseMode",
]


class RebaseMode(enum.Enum):
    """How ``PeriodicImpulse`` moves its start and stop to the time the reading starts.

    ``REBASE_NONE`` keeps them; ``REBASE_ALL`` moves both, keeping the duration; ``REBASE_START``
    moves only the start.
    """

    REBASE_NONE = 0
    REBASE_ALL = 1
    REBASE_START = 2


@dataclass(frozen=True)
class PeriodicCheckpoint:
    """Where a periodic reader stands: the next fire index and the (rebased) start and stop."""

    next_index: int
    start_us: int
    stop_us: int
    watermark_us: int = MIN_US


def _micros(value: Any) -> int:
    return value.micros if isinstance(value, Timestamp) else to_micros(value)


class PeriodicImpulseSource(UnboundedSource):
    """Fire times ``start_us + i * interval_us`` before ``stop_us`` (all integer microseconds).

    ``data`` (optional) replaces the fire time as the element: a list of values (cycled) or of
    ``(Timestamp, value)`` pairs whose timestamps are used as event times.
    """

    def __init__(
        self,
        start_us: int,
        stop_us: int,
        interval_us: int,
        data: Sequence[Any] | None = None,
        rebase: RebaseMode = RebaseMode.REBASE_NONE,
        clock: Clock | None = None,
    ) -> None:
        if interval_us <= 0:
            raise ValueError(f"PeriodicImpulse fire_interval must be positive, got {interval_us}us")
        self.start_us = start_us
        self.stop_us = stop_us
        self.interval_us = interval_us
        self.data = list(data) if data is not None else None
        self.pre_timestamped = bool(
            self.data
            and isinstance(self.data[0], tuple)
            and len(self.data[0]) == 2
            and isinstance(self.data[0][0], Timestamp)
        )
        self.rebase = rebase
        self.clock = clock

    def create_reader(self, checkpoint: PeriodicCheckpoint | None = None) -> PeriodicReader:
        return PeriodicReader(self, checkpoint)

    def display_data(self) -> dict[str, Any]:
        return {
            "start_us": self.start_us,
            "stop_us": self.stop_us,
            "interval_us": self.interval_us,
            "rebase": self.rebase.name,
        }

    def default_label(self) -> str:
        return "PeriodicImpulse"


class PeriodicReader(UnboundedReader):
    """Emits the fire times of a :class:`PeriodicImpulseSource` that the clock has reached."""

    def __init__(
        self, source: PeriodicImpulseSource, checkpoint: PeriodicCheckpoint | None
    ) -> None:
        self._source = source
        self._clock = source.clock
        if checkpoint is None:
            start, stop = source.start_us, source.stop_us
            if source.rebase is not RebaseMode.REBASE_NONE:
                now = clock_us(self._clock)
                if source.rebase is RebaseMode.REBASE_ALL and stop < MAX_US:
                    stop = now + (stop - start)
                start = now
            checkpoint = PeriodicCheckpoint(0, start, stop)
        self._next = checkpoint.next_index
        self._start = checkpoint.start_us
        self._stop = checkpoint.stop_us
        self._watermark = checkpoint.watermark_us

    def _element(self, index: int, fire_us: int) -> Any:
        data = self._source.data
        if data is None:
            return timestamped_us(fire_us / 1_000_000, fire_us)
        item = data[index % len(data)]
        if self._source.pre_timestamped:
            return timestamped_us(item[1], item[0].micros)
        return timestamped_us(item, fire_us)

    def poll(self, max_elements: int, timeout_s: float) -> list[Any]:
        interval = self._source.interval_us
        fire = self._start + self._next * interval
        if fire >= self._stop:
            return []
        now = clock_us(self._clock)
        if fire > now and timeout_s > 0:
            time.sleep(min(timeout_s, (fire - now) / 1_000_000))
            now = clock_us(self._clock)
        out: list[Any] = []
        index = self._next
        limit = min(now + 1, self._stop)
        while fire < limit and len(out) < max_elements:
            out.append(self._element(index, fire))
            index += 1
            fire += interval
        self._next = index
        if out and self._source.pre_timestamped:
            self._watermark = max(self._watermark, *(tv.timestamp_us for tv in out))
        return out

    def watermark_us(self) -> int:
        if self.is_done():
            return MAX_US
        if self._source.pre_timestamped:
            # As in Beam: the newest timestamp emitted; older ones that follow are late.
            return self._watermark
        return self._start + self._next * self._source.interval_us

    def checkpoint(self) -> PeriodicCheckpoint:
        return PeriodicCheckpoint(self._next, self._start, self._stop, self._watermark)

    def is_done(self) -> bool:
        return self._start + self._next * self._source.interval_us >= self._stop


def _adjust_stop_for_data(
    data: Sequence[Any], start_us: int, stop_us: int, interval_us: int, pre_timestamped: bool
) -> int:
    """Beam's rule: with ``data`` and no stop, stop after the last item; check there is enough."""
    data_span = (len(data) - 1) * interval_us
    if stop_us == MAX_US:
        return start_us + data_span + interval_us
    if data_span + interval_us < stop_us - start_us:
        message = (
            f"PeriodicImpulse: the {len(data)} items of data cover "
            f"{(data_span + interval_us) / 1e6}s but start..stop spans "
            f"{(stop_us - start_us) / 1e6}s"
        )
        if pre_timestamped:
            raise ValueError(f"{message}; provide more data or an earlier stop_timestamp")
        warnings.warn(f"{message}; the data repeats to fill it", UserWarning, stacklevel=3)
    return stop_us


class PeriodicImpulse(PTransform):
    """Emit an element every ``fire_interval`` seconds of processing time (an unbounded source).

    Elements are the fire times ``start_timestamp + k * fire_interval`` (float seconds, each also
    the element's event timestamp) before ``stop_timestamp``; fire times already past are emitted
    at once. ``start_timestamp`` defaults to the time this transform is built. With
    ``apply_windowing`` each element goes into its own ``FixedWindows(fire_interval)`` window.
    ``data`` and ``rebase`` are as in Beam (values to emit instead of the fire times; moving start
    and stop to when reading begins). ``clock`` replaces :func:`time.time` (for tests).

    Running it needs ``streaming=True``. The reader can be driven directly:

    >>> impulse = PeriodicImpulse(start_timestamp=10, stop_timestamp=13, fire_interval=1,
    ...                           clock=lambda: 11.5)
    >>> reader = impulse.source.create_reader()
    >>> reader.poll(10, timeout_s=0), reader.watermark_us()
    ([TimestampedValue(10.0, 10), TimestampedValue(11.0, 11)], 12000000)
    """

    def __init__(
        self,
        start_timestamp: Any = None,
        stop_timestamp: Any = MAX_TIMESTAMP,
        fire_interval: float = 360.0,
        apply_windowing: bool = False,
        data: Sequence[Any] | None = None,
        rebase: RebaseMode = RebaseMode.REBASE_NONE,
        *,
        clock: Clock | None = None,
    ) -> None:
        super().__init__()
        start_us = clock_us(clock) if start_timestamp is None else _micros(start_timestamp)
        stop_us = _micros(stop_timestamp)
        interval_us = to_micros(fire_interval)
        if interval_us <= 0:
            raise ValueError(
                f"PeriodicImpulse fire_interval must be positive, got {fire_interval!r}"
            )
        self.fire_interval = fire_interval
        self.apply_windowing = apply_windowing
        source = PeriodicImpulseSource(start_us, stop_us, interval_us, data, rebase, clock)
        if source.data is not None:
            if not source.data:
                raise ValueError("PeriodicImpulse data must not be empty (omit it instead)")
            source.stop_us = _adjust_stop_for_data(
                source.data, start_us, stop_us, interval_us, source.pre_timestamped
            )
        self.source = source

    def expand(self, pbegin: PBegin) -> PCollection:
        result: PCollection = pbegin | "Read" >> ReadUnbounded(self.source)
        if self.apply_windowing:
            result = result | "ApplyWindowing" >> WindowInto(FixedWindows(self.fire_interval))
        return result


class _SequenceDoFn(DoFn):
    """For each ``(start, stop, interval)``, yield the fire times as the clock reaches them."""

    def __init__(self, clock: Clock | None) -> None:
        self.clock = clock

    def process(self, element: Any) -> Iterator[Any]:
        try:
            start, stop, interval = element
        except (TypeError, ValueError):
            raise ValueError(
                f"PeriodicSequence needs (start, stop, interval) elements, got {element!r}"
            ) from None
        source = PeriodicImpulseSource(
            _micros(start), _micros(stop), to_micros(interval), clock=self.clock
        )
        reader = source.create_reader()
        while not reader.is_done():
            yield from reader.poll(1024, timeout_s=1.0)


class PeriodicSequence(PTransform):
    """For each ``(start, stop, interval)`` input element, emit its fire times on the clock.

    Like :class:`PeriodicImpulse`, but driven by input elements (timestamps or seconds). The DoFn
    waits on the processing-time clock between fire times, so it holds up its bundle.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     times = p | Create([(0, 3, 1)]) | PeriodicSequence(clock=lambda: 100.0)
    ...     assert_that(times, equal_to([0.0, 1.0, 2.0]))
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        super().__init__()
        self.clock = clock

    def expand(self, pcoll: PCollection) -> PCollection:
        result: PCollection = pcoll | "GenSequence" >> ParDo(_SequenceDoFn(self.clock))
        return result
