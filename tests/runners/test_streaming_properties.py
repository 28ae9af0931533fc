"""Property tests: streaming runs agree with batch runs, whatever the bundling and arrival order.

(a) With the default trigger, a TestStream that delivers the elements in a random order, in
random bundles, with the watermark advanced at random points but never past an element still to
come, gives exactly the panes of the batch pipeline over ``Create`` with the same timestamps:
one ON_TIME pane per key and window, with the same values, sum and output timestamp.

(b) With ACCUMULATING panes and early count firings of a random size, the last pane of every key
and window holds exactly what the batch pipeline computes for it, whatever fired before.

(c) Two groupings in a row (per-key sums, then a total per window) give one ON_TIME pane per
window in streaming too, stamped per the timestamp combiner: the first grouping's pending panes
hold the watermark that the second one sees.

Both pipelines are also checked against a plain-Python computation of the same groups.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import headrace.beam as beam
from headrace.beam import window
from headrace.beam.testing.test_stream import TestStream
from headrace.beam.testing.util import BeamAssertException, assert_that, equal_to
from headrace.beam.transforms.trigger import (
    AccumulationMode,
    AfterCount,
    AfterWatermark,
    Repeatedly,
)
from headrace.model.timestamp import Timestamp

SECOND = 1_000_000
# is_first, is_last, timing, index, nonspec index of the one pane of a fixed window: not last,
# in batch as in streaming (Beam Python marks last only a pane whose trigger finished)
ON_TIME_ONLY = (True, False, "ON_TIME", 0, 0)

# Timestamps in microseconds, biased towards window edges (sizes below divide 60 s).
_EDGES = [0, 1, 10 * SECOND - 1, 10 * SECOND, 30 * SECOND - 1, 60 * SECOND - 1, 60 * SECOND]
timestamps = st.one_of(st.integers(0, 120 * SECOND - 1), st.sampled_from(_EDGES))
elements = st.lists(
    st.tuples(st.sampled_from("abc"), st.integers(-50, 50), timestamps), min_size=1, max_size=25
)
window_sizes = st.sampled_from([7, 10, 30, 60])

SETTINGS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _window_key(w: Any) -> tuple[int, int]:
    return (w.start_us, w.end_us)


def _pane_key(p: Any) -> tuple[Any, ...]:
    return (p.is_first, p.is_last, p.timing.name, p.index, p.nonspeculative_index)


class ReifyGroups(beam.DoFn):
    """(key, window, sorted values, timestamp, pane) of each GroupByKey output."""

    def process(
        self, kv, w=beam.DoFn.WindowParam, t=beam.DoFn.TimestampParam, p=beam.DoFn.PaneInfoParam
    ):
        yield (kv[0], _window_key(w), tuple(sorted(kv[1])), t.micros, _pane_key(p))


class ReifySums(beam.DoFn):
    """(key, window, sum, timestamp, pane) of each CombinePerKey output."""

    def process(
        self, kv, w=beam.DoFn.WindowParam, t=beam.DoFn.TimestampParam, p=beam.DoFn.PaneInfoParam
    ):
        yield (kv[0], _window_key(w), kv[1], t.micros, _pane_key(p))


def _groups(items: list[tuple[str, int, int]], size: int) -> dict[tuple[Any, ...], list[int]]:
    """Plain Python: the values of each (key, window) of FixedWindows(size)."""
    size_us = size * SECOND
    out: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for key, value, ts in items:
        start = ts - ts % size_us
        out[(key, (start, start + size_us))].append(value)
    return out


def _stream(
    data: st.DataObject, items: list[tuple[str, int, int]]
) -> tuple[TestStream, list[tuple[str, int, int]]]:
    """A TestStream of ``items`` in a random order and random bundles, with the watermark moved
    at random points, never past the timestamp of an element still to come. Returns the stream
    and the arrival order."""
    order = data.draw(st.permutations(items), label="arrival order")
    cuts = data.draw(
        st.lists(st.booleans(), min_size=len(order), max_size=len(order)), label="cuts"
    )
    stream = TestStream()
    watermark = None
    bundle: list[Any] = []
    for i, (key, value, ts) in enumerate(order):
        bundle.append(window.TimestampedValue((key, value), Timestamp(micros=ts)))
        if not cuts[i] and i < len(order) - 1:
            continue
        stream = stream.add_elements(bundle)
        bundle = []
        rest = [t for _, _, t in order[i + 1 :]]
        if not rest:
            break
        # Any watermark at or below the earliest timestamp still to come keeps every later
        # element on time: its window cannot have been passed.
        target = min(rest) - data.draw(st.sampled_from([0, 0, 1, 5 * SECOND]), label="lag")
        if data.draw(st.booleans(), label="advance") and (watermark is None or target > watermark):
            stream = stream.advance_watermark_to(Timestamp(micros=target))
            watermark = target
    return stream.advance_watermark_to_infinity(), order


def _timestamped(items: list[tuple[str, int, int]]) -> Any:
    return beam.Map(lambda e: window.TimestampedValue((e[0], e[1]), Timestamp(micros=e[2])))


@SETTINGS
@given(items=elements, size=window_sizes, data=st.data())
def test_default_trigger_streaming_equals_batch(items, size, data):
    groups = _groups(items, size)
    want_groups = [
        (k, w, tuple(sorted(vs)), w[1] - 1, ON_TIME_ONLY) for (k, w), vs in groups.items()
    ]
    want_sums = [(k, w, sum(vs), w[1] - 1, ON_TIME_ONLY) for (k, w), vs in groups.items()]
    stream, _ = _stream(data, items)

    for source in (stream, None):
        with beam.Pipeline() as p:
            if source is None:  # batch
                pcoll = p | beam.Create(items) | _timestamped(items)
            else:
                pcoll = p | source
            windowed = pcoll | beam.WindowInto(window.FixedWindows(size))
            grouped = windowed | "Group" >> beam.GroupByKey() | "RG" >> beam.ParDo(ReifyGroups())
            summed = windowed | "Sum" >> beam.CombinePerKey(sum) | "RS" >> beam.ParDo(ReifySums())
            assert_that(grouped, equal_to(want_groups), label="groups")
            assert_that(summed, equal_to(want_sums), label="sums")


def _last_panes_match(want: dict[tuple[Any, ...], Any]) -> Any:
    """A matcher: for every (key, window), the pane with the highest index holds ``want``; pane
    indexes run 0, 1, ... without gaps; only that pane may be last."""

    def match(actual: list[tuple[Any, ...]]) -> None:
        panes: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
        for key, w, result, _, pane in actual:
            panes[(key, w)].append((pane[3], result, pane))
        if set(panes) != set(want):
            raise BeamAssertException(f"windows {sorted(panes)} != {sorted(want)}")
        for kw, seen in panes.items():
            seen.sort()
            if [i for i, _, _ in seen] != list(range(len(seen))):
                raise BeamAssertException(f"{kw}: pane indexes {[i for i, _, _ in seen]}")
            if any(pane[1] for _, _, pane in seen[:-1]):
                raise BeamAssertException(f"{kw}: a pane before the last says is_last: {seen}")
            if seen[-1][1] != want[kw]:
                raise BeamAssertException(f"{kw}: last pane {seen[-1]} != {want[kw]!r}")

    return match


@SETTINGS
@given(
    items=elements,
    size=window_sizes,
    k=st.integers(1, 4),
    watermark_trigger=st.booleans(),
    data=st.data(),
)
def test_accumulating_last_pane_equals_batch(items, size, k, watermark_trigger, data):
    groups = _groups(items, size)
    want_values = {kw: tuple(sorted(vs)) for kw, vs in groups.items()}
    want_sums = {kw: sum(vs) for kw, vs in groups.items()}
    if watermark_trigger:
        trigger = AfterWatermark(early=AfterCount(k))
    else:
        trigger = Repeatedly(AfterCount(k))
    stream, _ = _stream(data, items)

    with beam.Pipeline() as p:
        windowed = (
            p
            | stream
            | beam.WindowInto(
                window.FixedWindows(size),
                trigger=trigger,
                accumulation_mode=AccumulationMode.ACCUMULATING,
                # Repeatedly(AfterCount) leaves a remainder unemitted at expiry (as in Beam);
                # the option emits it, so that the last pane is the whole window
                fire_at_expiry=True,
            )
        )
        grouped = windowed | "Group" >> beam.GroupByKey() | "RG" >> beam.ParDo(ReifyGroups())
        summed = windowed | "Sum" >> beam.CombinePerKey(sum) | "RS" >> beam.ParDo(ReifySums())
        assert_that(grouped, _last_panes_match(want_values), label="groups")
        assert_that(summed, _last_panes_match(want_sums), label="sums")

    # The batch pipeline (same data through Create) gives the same final results in one pane.
    with beam.Pipeline() as p:
        windowed = (
            p
            | beam.Create(items)
            | _timestamped(items)
            | beam.WindowInto(window.FixedWindows(size))
        )
        grouped = windowed | "Group" >> beam.GroupByKey() | "RG" >> beam.ParDo(ReifyGroups())
        summed = windowed | "Sum" >> beam.CombinePerKey(sum) | "RS" >> beam.ParDo(ReifySums())
        assert_that(grouped, _last_panes_match(want_values), label="groups")
        assert_that(summed, _last_panes_match(want_sums), label="sums")


_COMBINERS = {
    "OUTPUT_AT_EOW": lambda w, stamps: w[1] - 1,
    "OUTPUT_AT_EARLIEST": lambda w, stamps: min(stamps),
    "OUTPUT_AT_LATEST": lambda w, stamps: max(stamps),
}


@SETTINGS
@given(
    items=elements,
    size=window_sizes,
    combiner=st.sampled_from(sorted(_COMBINERS)),
    data=st.data(),
)
def test_two_groupings_in_a_row_streaming_equals_batch(items, size, combiner, data):
    """Per-key sums, then one total per window over them: the second grouping fires only once
    the first has emitted everything for the window (its output watermark is held by its
    pending panes), so it too emits a single ON_TIME pane per window, as in batch."""
    size_us = size * SECOND
    totals: dict[tuple[int, int], list[int]] = defaultdict(list)
    stamps: dict[tuple[int, int], list[int]] = defaultdict(list)
    for _, value, ts in items:
        start = ts - ts % size_us
        totals[(start, start + size_us)].append(value)
        stamps[(start, start + size_us)].append(ts)
    stamp = _COMBINERS[combiner]
    want = [("all", w, sum(vs), stamp(w, stamps[w]), ON_TIME_ONLY) for w, vs in totals.items()]
    stream, _ = _stream(data, items)

    for source in (stream, None):
        with beam.Pipeline() as p:
            if source is None:
                pcoll = p | beam.Create(items) | _timestamped(items)
            else:
                pcoll = p | source
            out = (
                pcoll
                | beam.WindowInto(
                    window.FixedWindows(size),
                    timestamp_combiner=window.TimestampCombiner[combiner],
                )
                | "PerKey" >> beam.CombinePerKey(sum)
                | beam.Map(lambda kv: ("all", kv[1]))
                | "Total" >> beam.CombinePerKey(sum)
                | beam.ParDo(ReifySums())
            )
            assert_that(out, equal_to(want))


def test_the_stream_builder_keeps_every_element_on_time():
    """The generator above never moves the watermark past an element still to come."""

    @settings(max_examples=200, deadline=None)
    @given(items=elements, data=st.data())
    def check(items, data):
        stream, order = _stream(data, items)
        watermark = None
        seen = 0
        for event in stream.events():
            if type(event).__name__ == "ElementEvent":
                for tv in event.timestamped_values:
                    assert watermark is None or tv.timestamp_us >= watermark
                    seen += 1
            elif event.new_watermark.micros < 2**63 - 1:
                watermark = event.new_watermark.micros
        assert seen == len(order) == len(items)

    check()
