"""Event-time benchmarks: windowed sums in batch and streaming, and a stateful DoFn.

Input: ``n`` timestamped events ``TimestampedValue((key, value), t)`` from
:class:`TimedPairSource`: event ``i`` has key ``(i * 7919) % keys``, value ``i % 97`` and event
time ``BASE + i * 6 ms`` plus a jitter of up to 30 s, so events arrive slightly out of order and
1M events span 100 minutes (100 one-minute windows per key). The plain-Python baseline iterates
the same generated events and sums ``value`` per ``(key, window start)`` in a dict
(``get`` + add), then writes one ``key window_start: sum`` line per pair, as every headrace case
does with ``WriteToText``. Outputs are compared with the baseline's after every run.

Cases:

* **batch**: ``Read(TimedPairSource) | WindowInto(FixedWindows(60)) | CombinePerKey(sum)``.
* **streaming**: the same pipeline over a ``TestStream`` that adds the events in 100 steps of 1%
  and advances the watermark after each step to the earliest event time still to come (so no
  event is late). Its element events generate their elements when the runner replays them (see
  :class:`GeneratedElements`): a TestStream holding 1M ready-made ``TimestampedValue`` objects
  would be pickled into the pipeline graph at construction (seconds), which is not what this
  measures.
* **stateful**: a DoFn with a bag state and an event-time timer per key (and window) that buffers
  values and emits their sum when the watermark passes the end of the window, over the same
  windowed events: it computes the same sums. Reported in elements per second. Stateful DoFns
  are new; while the runner refuses them (``NotImplementedError``) the row says "not yet
  supported" instead of failing the suite.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness import (
    BenchmarkError,
    Case,
    Row,
    make_row,
    measure,
    read_kv_lines,
    remove_files,
    same_counts,
    timed,
)

import headrace.beam as beam
from headrace.beam.testing.test_stream import ElementEvent, Event, TestStream, WatermarkEvent
from headrace.beam.transforms.userstate import BagStateSpec, TimeDomain, TimerSpec, on_timer
from headrace.model.sources import BoundedSource, timestamped_us

__all__ = ["GeneratedElements", "TimedPairSource", "run_streaming"]

STEP = 7919
JITTER_STEP = 7907
BASE_US = 1_714_521_600_000_000  # 2024-05-01 00:00:00 UTC
SPACING_US = 6_000  # 6 ms of event time between events
JITTER_US = 30_000_000  # events are up to 30 s late relative to their position
WINDOW_S = 60
WINDOW_US = WINDOW_S * 1_000_000
BATCH_GOAL = ("<=", 4.0)
STREAMING_GOAL = ("<=", 8.0)
STATEFUL_GOAL_PER_S = 300_000


class TimedPairSource(BoundedSource):
    """Events ``i`` in ``[start, stop)`` of the sequence in the module docstring."""

    def __init__(self, n: int, keys: int, start: int = 0, stop: int | None = None) -> None:
        if keys % STEP == 0:
            raise ValueError(f"keys must not be a multiple of {STEP}")
        self.n, self.keys = n, keys
        self.start, self.stop = start, n if stop is None else stop

    def split(self, desired_num_splits: int) -> list[BoundedSource]:
        size = self.stop - self.start
        parts = max(1, min(desired_num_splits, size))
        bounds = [self.start + size * i // parts for i in range(parts + 1)]
        return [TimedPairSource(self.n, self.keys, lo, hi) for lo, hi in itertools.pairwise(bounds)]

    def read(self) -> Iterator[Any]:
        lo, hi = self.start, self.stop
        keys = map(operator.mod, range(lo * STEP, hi * STEP, STEP), itertools.repeat(self.keys))
        values = map(operator.mod, range(lo, hi), itertools.repeat(97))
        jitter = map(
            operator.mod,
            range(lo * JITTER_STEP * 1000, hi * JITTER_STEP * 1000, JITTER_STEP * 1000),
            itertools.repeat(JITTER_US),
        )
        times = map(
            operator.add,
            range(BASE_US + lo * SPACING_US, BASE_US + hi * SPACING_US, SPACING_US),
            jitter,
        )
        return map(timestamped_us, zip(keys, values), times)

    def min_time_us(self) -> int:
        """No event of this range is earlier than this (the watermark after the range before)."""
        return BASE_US + self.start * SPACING_US

    def estimate_size(self) -> int:
        return (self.stop - self.start) * 48


class GeneratedElements(ElementEvent):
    """A TestStream element event standing for the events of a :class:`TimedPairSource` range.

    It holds and pickles only the range. When the runner loads the TestStream from the pipeline
    graph, unpickling turns it into a plain :class:`ElementEvent` holding the generated elements,
    so generating them is part of the timed run (as reading the source is in batch), and the
    benchmark process does not keep 1M elements alive between runs (which would make every
    garbage collection of every case slower).
    """

    __slots__ = ("source",)

    def __init__(self, source: TimedPairSource, tag: Any = None) -> None:
        super().__init__((), tag)
        self.source = source

    def __reduce__(self) -> tuple[Any, ...]:
        return (_generate_event, (self.source, self.tag))


def _generate_event(source: TimedPairSource, tag: Any) -> ElementEvent:
    return ElementEvent(source.read(), tag)


def make_test_stream(source: TimedPairSource, steps: int = 100) -> TestStream:
    """The events in ``steps`` element events, each followed by a watermark advance to the
    earliest event time still to come, then the watermark to infinity."""
    events: list[Event] = []
    parts = source.split(steps)
    for part, following in itertools.zip_longest(parts, parts[1:]):
        assert isinstance(part, TimedPairSource)
        events.append(GeneratedElements(part))
        if isinstance(following, TimedPairSource):
            events.append(WatermarkEvent(beam.window.Timestamp(micros=following.min_time_us())))
    return TestStream(events=events).advance_watermark_to_infinity()


# -- plain Python -------------------------------------------------------------------------------


def baseline_windowed_sum(source: TimedPairSource, out_path: str) -> None:
    sums: dict[tuple[int, int], int] = {}
    get = sums.get
    for tv in source.read():
        t = tv.timestamp_us
        key, value = tv.value
        kw = (key, t - t % WINDOW_US)
        sums[kw] = get(kw, 0) + value
    with open(out_path, "w", encoding="utf-8") as out:
        out.writelines(f"{k} {w // 1_000_000}: {s}\n" for (k, w), s in sums.items())


# -- headrace -----------------------------------------------------------------------------------


class FormatWindowed(beam.DoFn):
    def process(self, kv: Any, window: Any = beam.DoFn.WindowParam) -> Iterator[str]:
        yield f"{kv[0]} {window.start.micros // 1_000_000}: {kv[1]}"


def headrace_windowed_sum(read: beam.PTransform, out_prefix: str) -> None:
    with beam.Pipeline() as p:
        (
            p
            | "Events" >> read
            | "Minutes" >> beam.WindowInto(beam.window.FixedWindows(WINDOW_S))
            | "Sum" >> beam.CombinePerKey(sum)
            | "Format" >> beam.ParDo(FormatWindowed())
            | "Write" >> beam.io.WriteToText(out_prefix, file_name_suffix=".txt")
        )


BUFFER = BagStateSpec("buffer", beam.coders.VarIntCoder())
FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
BUFFER_PARAM = beam.DoFn.StateParam(BUFFER)
FLUSH_PARAM = beam.DoFn.TimerParam(FLUSH)


class BufferAndSum(beam.DoFn):
    """Buffer each key's values of a window in a bag; emit their sum when the window closes."""

    def process(
        self,
        kv: Any,
        window: Any = beam.DoFn.WindowParam,
        buffer: Any = BUFFER_PARAM,
        flush: Any = FLUSH_PARAM,
    ) -> None:
        buffer.add(kv[1])
        flush.set(window.max_timestamp())

    @on_timer(FLUSH)
    def on_flush(
        self,
        key: Any = beam.DoFn.KeyParam,
        window: Any = beam.DoFn.WindowParam,
        buffer: Any = BUFFER_PARAM,
    ) -> Iterator[str]:
        yield f"{key} {window.start.micros // 1_000_000}: {sum(buffer.read())}"
        buffer.clear()


def headrace_stateful(source: TimedPairSource, out_prefix: str) -> None:
    with beam.Pipeline() as p:
        (
            p
            | "Events" >> beam.io.Read(source)
            | "Minutes" >> beam.WindowInto(beam.window.FixedWindows(WINDOW_S))
            | "BufferAndSum" >> beam.ParDo(BufferAndSum())
            | "Write" >> beam.io.WriteToText(out_prefix, file_name_suffix=".txt")
        )


def stateful_supported(tmp: Path) -> str | None:
    """None if a stateful DoFn runs; else why not (the runner's NotImplementedError)."""
    try:
        headrace_stateful(TimedPairSource(1000, 10), str(tmp / "probe"))
    except NotImplementedError as e:
        return str(e)
    finally:
        remove_files(str(tmp / "probe*"))
    return None


# -- the benchmark ------------------------------------------------------------------------------


def streaming_cases(tmp: Path, source: TimedPairSource, stateful_reason: str | None) -> list[Case]:
    base_out = tmp / "windowed-baseline.txt"
    expected: dict[str, str] = {}
    stream = make_test_stream(source)

    def run_base(_: int) -> float:
        return timed(lambda: baseline_windowed_sum(source, str(base_out)))

    def check_base(_: int) -> None:
        expected.clear()
        expected.update(read_kv_lines(str(base_out)))
        want = source.keys * (source.n * SPACING_US // WINDOW_US)
        if not want <= len(expected) <= want + source.keys:
            raise BenchmarkError(f"baseline: {len(expected)} (key, window) sums, expected ~{want}")

    def headrace_case(name: str, work: Callable[[str], None], goal: Any, note: str) -> Case:
        prefix = tmp / name.replace(" ", "-").replace(",", "")

        def run(_: int) -> float:
            return timed(lambda: work(str(prefix)))

        def check(_: int) -> None:
            pattern = f"{prefix}-*.txt"
            same_counts(name, read_kv_lines(pattern), expected)
            remove_files(pattern)

        return Case(name, run, check, goal=goal, elements=source.n, note=note)

    cases = [
        Case(
            "plain Python dict get + add", run_base, check_base, elements=source.n, note="baseline"
        ),
        headrace_case(
            "headrace batch",
            lambda prefix: headrace_windowed_sum(beam.io.Read(source), prefix),
            BATCH_GOAL,
            "Read | FixedWindows(60) | CombinePerKey(sum)",
        ),
        headrace_case(
            "headrace streaming, TestStream",
            lambda prefix: headrace_windowed_sum(stream, prefix),
            STREAMING_GOAL,
            "watermark advanced every 1%",
        ),
    ]
    if stateful_reason is None:
        cases.append(
            headrace_case(
                "headrace stateful DoFn, bag + timer",
                lambda prefix: headrace_stateful(source, prefix),
                None,
                f"bag state + event-time timer; goal >= {STATEFUL_GOAL_PER_S // 1000} k el/s",
            )
        )
    return cases


def run_streaming(
    tmp: Path, events: int, keys: int, repeat: int, log: Callable[[str], None]
) -> tuple[list[Row], dict[str, Any]]:
    """Time the windowed sums (batch, streaming) and the stateful DoFn; return rows and facts."""
    source = TimedPairSource(events, keys)
    warm = TimedPairSource(2000, 10)
    headrace_windowed_sum(beam.io.Read(warm), str(tmp / "warm-up-out"))
    headrace_windowed_sum(make_test_stream(warm, 4), str(tmp / "warm-up-out"))
    remove_files(str(tmp / "warm-up-out*"))
    stateful_reason = stateful_supported(tmp)
    if stateful_reason is not None:
        log(f"  stateful DoFn: not yet supported ({stateful_reason})")

    rows = measure("windowed sum", streaming_cases(tmp, source, stateful_reason), repeat, log)
    for row in rows:
        if row.case.startswith("headrace stateful") and row.throughput_best is not None:
            row.goal = f">= {STATEFUL_GOAL_PER_S // 1000} k el/s"
            row.goal_met = row.throughput_best >= STATEFUL_GOAL_PER_S
    if stateful_reason is not None:
        missing = make_row("windowed sum", "headrace stateful DoFn", [float("nan")], None)
        missing.ratio_best = missing.ratio_median = None
        missing.note = "not yet supported"
        missing.goal = f">= {STATEFUL_GOAL_PER_S // 1000} k el/s"
        rows.append(missing)
    generate = [timed(lambda: _drain(source.read())) for _ in range(repeat)]
    gen = make_row("windowed sum", "generating the events only", generate, None, None, events)
    gen.ratio_best = gen.ratio_median = None
    gen.note = "part of every case above"
    rows.append(gen)
    facts = {
        "events": events,
        "keys": keys,
        "windows": events * SPACING_US // WINDOW_US,
        "stateful": "measured" if stateful_reason is None else "not yet supported",
    }
    return rows, facts


def _drain(it: Iterator[Any]) -> None:
    for _ in it:
        pass
