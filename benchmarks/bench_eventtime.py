"""Event time the way users write it (issue 16): ``Create`` + ``Map`` to ``TimestampedValue``.

Input: ``n`` events ``(f"user{k}", v, t)`` from a seeded ``random.Random``: ``k`` in
``[0, 1000)``, ``v`` in ``[0, 100)`` and ``t = i * 0.01`` seconds, so 300k events span 50
minutes (50 one-minute windows per key). The plain-Python baseline loops over the same list and
sums ``v`` per ``(key, window start)`` in a dict (``get`` + add), then counts the sums.

Cases, each ending in ``ParDo(CountOutputs())``, a DoFn that counts its inputs (and sums a
checksum of key, window and sum) in metric counters; the counters are compared with the
baseline's after every run:

* **batch, as users write it**: ``Create(events) | Map(lambda e: TimestampedValue((e[0], e[1]),
  e[2])) | WindowInto(FixedWindows(60)) | CombinePerKey(sum) | ParDo(CountOutputs())``.
  Goal <= 3x.
* **streaming, TestStream**: the same events in a ``TestStream`` built with ``add_elements`` of
  the raw tuples in 100 steps, each followed by ``advance_watermark_to`` the first event time of
  the next step (no event is late), then the same ``Map`` and the rest. Goal <= 6x. Building the
  TestStream is part of the timed work (users build it in the pipeline code).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness import BenchmarkError, Case, Row, measure, timed

import headrace.beam as beam
from headrace.beam.testing.test_stream import TestStream
from headrace.beam.window import TimestampedValue

__all__ = ["make_events", "run_eventtime"]

WINDOW_S = 60
STEPS = 100
BATCH_GOAL = ("<=", 3.0)
STREAMING_GOAL = ("<=", 6.0)
NAMESPACE = "bench_eventtime"

Event = tuple[str, int, float]
Checks = tuple[int, int, int]  # (number of sums, total of the sums, checksum)


def make_events(n: int, seed: int = 16) -> list[Event]:
    """The issue's events: ``(f"user{k}", v, i * 0.01)``."""
    r = random.Random(seed)
    return [(f"user{r.randrange(1000)}", r.randrange(100), i * 0.01) for i in range(n)]


def _check_term(key: str, window_start_s: int, total: int) -> int:
    return (int(key[4:]) * 100_003 + window_start_s) * total


# -- plain Python -------------------------------------------------------------------------------


def baseline(events: list[Event]) -> Checks:
    """Sum ``v`` per (key, minute) in a dict; count the sums (what CountOutputs does)."""
    sums: dict[tuple[str, int], int] = {}
    get = sums.get
    for key, value, t in events:
        kw = (key, int(t - t % WINDOW_S))
        sums[kw] = get(kw, 0) + value
    count = total = check = 0
    for (key, start), s in sums.items():
        count += 1
        total += s
        check += _check_term(key, start, s)
    return count, total, check


# -- headrace -----------------------------------------------------------------------------------


class CountOutputs(beam.DoFn):
    """Count the (key, sum) elements and add up a checksum of key, window and sum."""

    def __init__(self) -> None:
        self.count = beam.metrics.Metrics.counter(NAMESPACE, "count")
        self.total = beam.metrics.Metrics.counter(NAMESPACE, "total")
        self.check = beam.metrics.Metrics.counter(NAMESPACE, "check")

    def process(self, kv: Any, window: Any = beam.DoFn.WindowParam) -> Iterator[Any]:
        key, s = kv
        self.count.inc()
        self.total.inc(s)
        self.check.inc(_check_term(key, window.start.micros // 1_000_000, s))
        return iter(())


def _to_timestamped(e: Event) -> TimestampedValue:
    return TimestampedValue((e[0], e[1]), e[2])


def _run(build: Callable[[beam.Pipeline], Any]) -> Checks:
    p = beam.Pipeline()
    (
        build(p)
        | "Stamp" >> beam.Map(_to_timestamped)
        | "Minutes" >> beam.WindowInto(beam.window.FixedWindows(WINDOW_S))
        | "Sum" >> beam.CombinePerKey(sum)
        | "Count" >> beam.ParDo(CountOutputs())
    )
    result = p.run()
    result.wait_until_finish()
    query = result.metrics().query(beam.metrics.MetricsFilter().with_namespace(NAMESPACE))
    got = {r.key.metric.name: r.committed for r in query["counters"]}
    return got.get("count", 0), got.get("total", 0), got.get("check", 0)


def headrace_batch(events: list[Event]) -> Checks:
    return _run(lambda p: p | "Events" >> beam.Create(events))


def make_stream(events: list[Event], steps: int = STEPS) -> TestStream:
    """``steps`` add_elements of the raw events, each followed by a watermark advance."""
    stream = TestStream()
    n = len(events)
    bounds = [n * i // steps for i in range(steps + 1)]
    for lo, hi in itertools.pairwise(bounds):
        if lo == hi:
            continue
        stream.add_elements(events[lo:hi], event_timestamp=events[lo][2])
        if hi < n:
            stream.advance_watermark_to(events[hi][2])
    return stream.advance_watermark_to_infinity()


def headrace_streaming(events: list[Event]) -> Checks:
    return _run(lambda p: p | "Events" >> make_stream(events))


# -- the benchmark ------------------------------------------------------------------------------


def run_eventtime(
    tmp: Path, n: int, repeat: int, log: Callable[[str], None]
) -> tuple[list[Row], dict[str, Any]]:
    """Time the user-written batch and streaming windowed sums; return rows and facts."""
    del tmp  # nothing is written: CountOutputs reports through metrics
    events = make_events(n)
    warm = make_events(2000, seed=1)
    want_warm = baseline(warm)
    for fn in (headrace_batch, headrace_streaming):
        if fn(warm) != want_warm:
            raise BenchmarkError(f"event time warm-up: {fn.__name__} {fn(warm)} != {want_warm}")
    expected: list[Checks] = []
    got: dict[str, Checks] = {}

    def case(name: str, fn: Callable[[list[Event]], Checks], goal: Any, note: str) -> Case:
        def run(_: int) -> float:
            return timed(lambda: got.__setitem__(name, fn(events)))

        def check(_: int) -> None:
            if got[name] != expected[0]:
                raise BenchmarkError(
                    f"event time / {name}: (sums, total, checksum) {got[name]} != {expected[0]}"
                )

        return Case(name, run, check, goal=goal, elements=n, note=note)

    def run_base(_: int) -> float:
        return timed(lambda: got.__setitem__("base", baseline(events)))

    def check_base(_: int) -> None:
        expected[:] = [got["base"]]
        if expected[0][0] < n // (100 * WINDOW_S) * 900:
            raise BenchmarkError(f"event time baseline: only {expected[0][0]} (key, window) sums")

    cases = [
        Case("plain Python dict get + add", run_base, check_base, elements=n, note="baseline"),
        case(
            "headrace batch, Create + Map",
            headrace_batch,
            BATCH_GOAL,
            "Create | Map(->TimestampedValue) | FixedWindows(60) | CombinePerKey(sum)",
        ),
        case(
            "headrace streaming, TestStream",
            headrace_streaming,
            STREAMING_GOAL,
            f"{STEPS} add_elements steps, watermark after each",
        ),
    ]
    rows = measure("event time", cases, repeat, log)
    return rows, {"events": n, "keys": 1000, "windows": int(n * 0.01 // WINDOW_S) + 1}
