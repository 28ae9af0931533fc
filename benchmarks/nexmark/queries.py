"""Nexmark queries 0-12 against headrace's Beam API, as Beam's Python suite defines them.

Each query is a function ``qN(events, params)`` taking a PCollection of timestamped events
(:mod:`model` objects; the element timestamp is the event's ``date_time``) and returning the
PCollection of its results. ``params`` holds the knobs of Beam's Python launcher
(:data:`DEFAULT_PARAMS`). The code is what a Beam user writes: it imports ``headrace.beam`` and
nothing else of headrace, and ``beam_side.py`` runs this very module on Apache Beam by mapping
``headrace.beam`` onto ``apache_beam``.

Where Beam's Python queries differ from the Java suite (the original spec), these follow Beam
Python:

- q0 round-trips each event through a serializer (pickle here, a Beam coder there).
- q3 joins with a stateful DoFn after a ``CoGroupByKey`` in the global window with
  ``Repeatedly(AfterCount(30))`` (Java uses a stateful DoFn without a trigger), and keeps a
  person for ``max_auction_waiting_time`` seconds of event time. A key's pane fires only
  once 30 of its elements arrived, which no seller reaches with this generator, so on Beam as
  on headrace its output is empty; ``params["num_events_in_pane"]`` (30, Beam's value) lets
  the tests run the join with a pane of 1.
- q4 averages winning prices over sliding windows (``window_size_sec``/``window_period_sec``);
  q5 counts bids per auction in sliding windows and keeps the auctions with the most bids; q6
  keeps a moving mean of the last 10 winning prices per seller with an accumulating
  ``AfterCount(1)`` trigger; q7 uses a side input for the window's highest price.
- WinningBids (q4, q6, q9) uses Beam Python's custom merging window function with its
  hard-coded expected auction duration (16.667 s).
- q10 shards events into ``5 * num_max_workers`` log shards per fixed window; Beam's Python
  version leaves the file writing empty and its last step emits nothing. Here the write step
  emits what it would write (window, shard, pane, number of events) and the index step emits,
  per window, the number of events and of shards, so the result can be checked.
- q11 counts bids per bidder per session (gap ``window_size_sec``), q12 per bidder in the
  global window with a processing-time trigger.

>>> import headrace.beam as beam
>>> from headrace.beam.testing.util import assert_that, equal_to
>>> from nexmark.model import Bid
>>> with beam.Pipeline() as p:
...     bids = p | beam.Create([Bid(1000, 1001, 100, 0), Bid(1107, 1002, 200, 10)])
...     out = q2(bids, DEFAULT_PARAMS)
...     assert_that(out, equal_to([{"auction_id": 1107, "price": 200}]))
"""

from __future__ import annotations

import pickle
import struct
from collections.abc import Callable
from typing import Any

import headrace.beam as beam
from headrace.beam.transforms import trigger, userstate, window
from headrace.beam.utils.timestamp import Duration, Timestamp
from nexmark.model import Auction, AuctionBid, Bid, Person

__all__ = ["DEFAULT_PARAMS", "QUERIES", "millis_to_timestamp", "timestamped"]

# The knobs of Beam's Python launcher (nexmark_launcher.py), same values.
DEFAULT_PARAMS: dict[str, int] = {
    "auction_skip": 123,
    "window_size_sec": 10,
    "window_period_sec": 5,
    "num_max_workers": 5,
    "max_log_events": 100_000,
    "occasional_delay_sec": 3,
    "max_auction_waiting_time": 600,
    "num_events_in_pane": 30,  # q3's trigger count, hard-coded in Beam's query3.py
}
USD_TO_EURO = 0.89
AUCTION_TAG, BID_TAG, PERSON_TAG = "auctions", "bids", "person"
EXPECTED_AUCTION_DURATION_US = 16_667_000


def millis_to_timestamp(millis: int) -> Timestamp:
    """A Nexmark time (milliseconds) as a Beam timestamp."""
    return Timestamp(micros=millis * 1000)


def timestamped(event: Any) -> Any:
    """``event`` with its ``date_time`` as element timestamp (what Beam's launcher does)."""
    return window.TimestampedValue(event, millis_to_timestamp(event.date_time))


def is_bid(e: Any) -> bool:
    return isinstance(e, Bid)


def is_auction(e: Any) -> bool:
    return isinstance(e, Auction)


def is_person(e: Any) -> bool:
    return isinstance(e, Person)


def is_auction_or_bid(e: Any) -> bool:
    return isinstance(e, (Auction, Bid))


# -- q0, q1, q2: stateless --------------------------------------------------------------------


class RoundTripFn(beam.DoFn):
    def process(self, element):  # type: ignore[no-untyped-def]
        yield pickle.loads(pickle.dumps(element))


def q0(events, params):  # type: ignore[no-untyped-def]
    """Pass-through: serialise and deserialise every event."""
    return events | "q0_roundtrip" >> beam.ParDo(RoundTripFn())


def q1(events, params):  # type: ignore[no-untyped-def]
    """Currency conversion: every bid with its price in euros."""
    return (
        events
        | "q1_bids" >> beam.Filter(is_bid)
        | "q1_euro"
        >> beam.Map(lambda b: Bid(b.auction, b.bidder, b.price * USD_TO_EURO, b.date_time, b.extra))
    )


def q2(events, params):  # type: ignore[no-untyped-def]
    """Selection: auction id and price of bids on every ``auction_skip``-th auction."""
    skip = params["auction_skip"]
    return (
        events
        | "q2_bids" >> beam.Filter(is_bid)
        | "q2_select" >> beam.Filter(lambda b: b.auction % skip == 0)
        | "q2_project" >> beam.Map(lambda b: {"auction_id": b.auction, "price": b.price})
    )


# -- q3: local item suggestion (stateful join) -------------------------------------------------


class JoinPersonAuctionStateFn(beam.DoFn):
    """Join auctions to their seller, holding auctions until the person arrives and the person
    for ``max_wait`` seconds of event time after it arrived."""

    auctions_spec = userstate.BagStateSpec("auctions", beam.coders.PickleCoder())
    person_spec = userstate.ReadModifyWriteStateSpec("person", beam.coders.PickleCoder())
    expiry_spec = userstate.TimerSpec("person_expiring", userstate.TimeDomain.WATERMARK)

    def __init__(self, max_wait: int) -> None:
        self.max_wait = max_wait

    def process(  # type: ignore[no-untyped-def]
        self,
        element,
        auctions=beam.DoFn.StateParam(auctions_spec),  # noqa: B008 - Beam's idiom
        person_state=beam.DoFn.StateParam(person_spec),  # noqa: B008 - Beam's idiom
        expiry=beam.DoFn.TimerParam(expiry_spec),  # noqa: B008 - Beam's idiom
    ):
        _, group = element
        known = person_state.read()
        if known:
            for auction in group[AUCTION_TAG]:
                yield auction, known
            return
        persons = list(group[PERSON_TAG])
        if persons:
            person = persons[0]  # ids are unique: a second one would be a generator bug
            for auction in auctions.read() or ():
                yield auction, person
            auctions.clear()
            for auction in group[AUCTION_TAG]:
                yield auction, person
            person_state.write(person)
            expiry.set(millis_to_timestamp(person.date_time) + self.max_wait)
            return
        for auction in group[AUCTION_TAG]:
            auctions.add(auction)

    @userstate.on_timer(expiry_spec)
    def expire(self, person_state=beam.DoFn.StateParam(person_spec)):  # type: ignore[no-untyped-def]  # noqa: B008
        person_state.clear()


def q3(events, params):  # type: ignore[no-untyped-def]
    """Local item suggestion: sellers in OR, ID or CA of auctions in category 10."""
    windowed = events | "q3_window" >> beam.WindowInto(
        window.GlobalWindows(),
        trigger=trigger.Repeatedly(trigger.AfterCount(params["num_events_in_pane"])),
        accumulation_mode=trigger.AccumulationMode.DISCARDING,
    )
    auctions = (
        windowed
        | "q3_auctions" >> beam.Filter(is_auction)
        | "q3_category" >> beam.Filter(lambda a: a.category == 10)
        | "q3_by_seller" >> beam.Map(lambda a: (a.seller, a))
    )
    persons = (
        windowed
        | "q3_persons" >> beam.Filter(is_person)
        | "q3_region" >> beam.Filter(lambda p: p.state in ("OR", "ID", "CA"))
        | "q3_by_id" >> beam.Map(lambda p: (p.id, p))
    )
    return (
        {AUCTION_TAG: auctions, PERSON_TAG: persons}
        | "q3_cogbk" >> beam.CoGroupByKey()
        | "q3_join" >> beam.ParDo(JoinPersonAuctionStateFn(params["max_auction_waiting_time"]))
        | "q3_output"
        >> beam.MapTuple(
            lambda a, p: {"name": p.name, "city": p.city, "state": p.state, "auction_id": a.id}
        )
    )


# -- WinningBids (q4, q6, q9) ------------------------------------------------------------------


class AuctionOrBidWindow(window.IntervalWindow):
    """The window of an open auction, or of a bid waiting for its auction."""

    def __init__(self, start: Any, end: Any, auction: int, is_auction_window: bool) -> None:
        super().__init__(start, end)
        self.auction = auction
        self.is_auction_window = is_auction_window

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (AuctionOrBidWindow, (self.start, self.end, self.auction, self.is_auction_window))

    def __repr__(self) -> str:
        kind = "auction" if self.is_auction_window else "bid"
        return f"AuctionOrBidWindow({self.start}, {self.end}, {kind} {self.auction})"


class AuctionOrBidWindowCoder(beam.coders.Coder):
    """Deterministic bytes for an :class:`AuctionOrBidWindow` (start, end, auction, kind)."""

    _layout = struct.Struct(">qqq?")

    def encode(self, w):  # type: ignore[no-untyped-def]
        return self._layout.pack(w.start.micros, w.end.micros, w.auction, w.is_auction_window)

    def decode(self, data):  # type: ignore[no-untyped-def]
        start, end, auction, is_auction = self._layout.unpack(data)
        return AuctionOrBidWindow(
            Timestamp(micros=start), Timestamp(micros=end), auction, is_auction
        )

    def is_deterministic(self) -> bool:
        return True


class AuctionOrBidWindowFn(window.WindowFn):
    """An auction's window runs until it expires; a bid's lasts twice the expected auction
    duration. Bids on an auction that start before its end merge into the auction's window."""

    def __init__(self, expected_duration_us: int) -> None:
        self.expected_duration_us = expected_duration_us

    def assign(self, context):  # type: ignore[no-untyped-def]
        event, ts = context.element, context.timestamp
        if isinstance(event, Auction):
            return [AuctionOrBidWindow(ts, millis_to_timestamp(event.expires), event.id, True)]
        if isinstance(event, Bid):
            end = ts + Duration(micros=2 * self.expected_duration_us)
            return [AuctionOrBidWindow(ts, end, event.auction, False)]
        raise ValueError(f"AuctionOrBidWindowFn assigns only auctions and bids, got {event!r}")

    def merge(self, merge_context):  # type: ignore[no-untyped-def]
        auction_windows: dict[int, Any] = {}
        bid_windows: dict[int, list[Any]] = {}
        for w in merge_context.windows:
            if w.is_auction_window:
                auction_windows[w.auction] = w
            else:
                bid_windows.setdefault(w.auction, []).append(w)
        for auction, aw in auction_windows.items():
            early = [bw for bw in bid_windows.get(auction, ()) if bw.start < aw.end]
            if early:
                merge_context.merge([*early, aw], aw)

    def get_window_coder(self):  # type: ignore[no-untyped-def]
        return AuctionOrBidWindowCoder()

    def get_transformed_output_time(self, w, input_timestamp):  # type: ignore[no-untyped-def]
        return w.max_timestamp()


def _higher_bid(bid: Bid, other: Bid) -> bool:
    if bid.price != other.price:
        return bid.price > other.price
    return bid.date_time < other.date_time


class JoinAuctionBidFn(beam.DoFn):
    def process(self, element):  # type: ignore[no-untyped-def]
        _, group = element
        auctions = list(group[AUCTION_TAG])
        if not auctions:
            return
        auction = auctions[0]
        best = None
        for bid in group[BID_TAG]:
            if bid.price >= auction.reserve and (best is None or _higher_bid(bid, best)):
                best = bid
        if best is not None:
            yield AuctionBid(auction, best)


class WinningBids(beam.PTransform):
    """The winning bid (highest price at or above the reserve, earliest first) of each
    auction, among bids made before it expired."""

    def expand(self, pcoll):  # type: ignore[no-untyped-def]
        events = pcoll | "window" >> beam.WindowInto(
            AuctionOrBidWindowFn(EXPECTED_AUCTION_DURATION_US)
        )
        auctions = (
            events
            | "auctions" >> beam.Filter(is_auction)
            | "auction_by_id" >> beam.Map(lambda a: (a.id, a))
        )
        bids = (
            events
            | "bids" >> beam.Filter(is_bid)
            | "bid_by_auction" >> beam.Map(lambda b: (b.auction, b))
        )
        return (
            {AUCTION_TAG: auctions, BID_TAG: bids}
            | "cogbk" >> beam.CoGroupByKey()
            | "join" >> beam.ParDo(JoinAuctionBidFn())
        )


class ProjectToCategoryPriceFn(beam.DoFn):
    def process(self, element, pane_info=beam.DoFn.PaneInfoParam):  # type: ignore[no-untyped-def]
        yield {"category": element[0], "price": element[1], "is_last": pane_info.is_last}


def q4(events, params):  # type: ignore[no-untyped-def]
    """Average winning price per category, over sliding windows."""
    return (
        events
        | "q4_auctions_bids" >> beam.Filter(is_auction_or_bid)
        | "q4_winning" >> WinningBids()
        | "q4_by_category" >> beam.Map(lambda ab: (ab.auction.category, ab.bid.price))
        | "q4_sliding"
        >> beam.WindowInto(
            window.SlidingWindows(params["window_size_sec"], params["window_period_sec"])
        )
        | "q4_mean" >> beam.CombinePerKey(beam.combiners.MeanCombineFn())
        | "q4_project" >> beam.ParDo(ProjectToCategoryPriceFn())
    )


# -- q5: hot items -----------------------------------------------------------------------------


class MostBidsFn(beam.CombineFn):
    """The auctions with the most bids, and that number."""

    def create_accumulator(self):  # type: ignore[no-untyped-def]
        return [], 0

    def add_input(self, accumulator, element):  # type: ignore[no-untyped-def]
        auctions, most = accumulator
        auction, count = element
        if count > most:
            return [auction], count
        if count < most:
            return accumulator
        return [*auctions, auction], most

    def merge_accumulators(self, accumulators):  # type: ignore[no-untyped-def]
        best: list[Any] = []
        most = 0
        for auctions, count in accumulators:
            if count > most:
                best, most = list(auctions), count
            elif count == most:
                best = best + list(auctions)
        return best, most

    def extract_output(self, accumulator):  # type: ignore[no-untyped-def]
        return accumulator


def q5(events, params):  # type: ignore[no-untyped-def]
    """Hot items: in each sliding window, the auctions with the most bids."""
    return (
        events
        | "q5_bids" >> beam.Filter(is_bid)
        | "q5_sliding"
        >> beam.WindowInto(
            window.SlidingWindows(params["window_size_sec"], params["window_period_sec"])
        )
        | "q5_auction" >> beam.Map(lambda b: b.auction)
        | "q5_count" >> beam.combiners.Count.PerElement()
        | "q5_most" >> beam.CombineGlobally(MostBidsFn()).without_defaults()
        | "q5_output"
        >> beam.FlatMap(lambda best: [{"auction_id": a, "num": best[1]} for a in best[0]])
    )


# -- q6: average selling price by seller -------------------------------------------------------


class MovingMeanSellingPriceFn(beam.CombineFn):
    """The mean price of a seller's ``max_bids`` latest winning bids (as an int)."""

    def __init__(self, max_bids: int) -> None:
        self.max_bids = max_bids

    def create_accumulator(self):  # type: ignore[no-untyped-def]
        return []

    def add_input(self, accumulator, bid):  # type: ignore[no-untyped-def]
        latest = sorted([*accumulator, bid], key=lambda b: (-b.date_time, -b.price))
        return latest[: self.max_bids]

    def merge_accumulators(self, accumulators):  # type: ignore[no-untyped-def]
        merged = [b for acc in accumulators for b in acc]
        merged.sort(key=lambda b: (b.date_time, b.price))
        return merged[-self.max_bids :]

    def extract_output(self, accumulator):  # type: ignore[no-untyped-def]
        if not accumulator:
            return 0
        return int(sum(b.price for b in accumulator) / len(accumulator))


def q6(events, params):  # type: ignore[no-untyped-def]
    """Average selling price of each seller's last 10 closed auctions, updated on each."""
    return (
        events
        | "q6_auctions_bids" >> beam.Filter(is_auction_or_bid)
        | "q6_winning" >> WinningBids()
        | "q6_by_seller" >> beam.Map(lambda ab: (ab.auction.seller, ab.bid))
        | "q6_global"
        >> beam.WindowInto(
            window.GlobalWindows(),
            trigger=trigger.Repeatedly(trigger.AfterCount(1)),
            accumulation_mode=trigger.AccumulationMode.ACCUMULATING,
            allowed_lateness=0,
        )
        | "q6_mean" >> beam.CombinePerKey(MovingMeanSellingPriceFn(10))
        | "q6_output" >> beam.MapTuple(lambda seller, price: {"seller": seller, "price": price})
    )


# -- q7: highest bid ---------------------------------------------------------------------------


class SelectMaxBidFn(beam.DoFn):
    def process(self, bid, max_price):  # type: ignore[no-untyped-def]
        if bid.price == max_price:
            yield bid


def q7(events, params):  # type: ignore[no-untyped-def]
    """Highest bid: the bids at the highest price of each fixed window (via a side input)."""
    bids = (
        events
        | "q7_bids" >> beam.Filter(is_bid)
        | "q7_fixed" >> beam.WindowInto(window.FixedWindows(params["window_size_sec"]))
    )
    max_prices = (
        bids
        | "q7_price" >> beam.Map(lambda b: b.price)
        | "q7_max" >> beam.CombineGlobally(max).without_defaults()
    )
    return bids | "q7_select" >> beam.ParDo(SelectMaxBidFn(), beam.pvalue.AsSingleton(max_prices))


# -- q8: monitor new users ---------------------------------------------------------------------


class JoinNewPersonAuctionFn(beam.DoFn):
    def process(self, element):  # type: ignore[no-untyped-def]
        _, group = element
        persons = list(group[PERSON_TAG])
        if not persons:
            return
        person = persons[0]
        for auction in group[AUCTION_TAG]:
            yield {"id": person.id, "name": person.name, "reserve": auction.reserve}


def q8(events, params):  # type: ignore[no-untyped-def]
    """New users: persons who opened an auction in the fixed window they joined in."""
    size = params["window_size_sec"]
    persons = (
        events
        | "q8_persons" >> beam.Filter(is_person)
        | "q8_window_persons" >> beam.WindowInto(window.FixedWindows(size))
        | "q8_person_by_id" >> beam.Map(lambda p: (p.id, p))
    )
    auctions = (
        events
        | "q8_auctions" >> beam.Filter(is_auction)
        | "q8_window_auctions" >> beam.WindowInto(window.FixedWindows(size))
        | "q8_auction_by_seller" >> beam.Map(lambda a: (a.seller, a))
    )
    return (
        {PERSON_TAG: persons, AUCTION_TAG: auctions}
        | "q8_cogbk" >> beam.CoGroupByKey()
        | "q8_join" >> beam.ParDo(JoinNewPersonAuctionFn())
    )


def q9(events, params):  # type: ignore[no-untyped-def]
    """Winning bids of the closed auctions."""
    return events | "q9_auctions_bids" >> beam.Filter(is_auction_or_bid) | "q9" >> WinningBids()


# -- q10: log to sharded files -----------------------------------------------------------------


class ShardEventsFn(beam.DoFn):
    def __init__(self, shards: int) -> None:
        self.shards = shards

    def process(self, event):  # type: ignore[no-untyped-def]
        yield f"shard-{hash(event) % self.shards:05d}-of-{self.shards:05d}", event


class WriteEventsFn(beam.DoFn):
    """What one log file of a shard, window and pane would hold (Beam writes nothing either)."""

    def process(  # type: ignore[no-untyped-def]
        self, element, w=beam.DoFn.WindowParam, pane=beam.DoFn.PaneInfoParam
    ):
        shard, events = element
        count = sum(1 for _ in events)
        yield None, (shard, pane.index, count)


class WriteIndexFn(beam.DoFn):
    def process(self, element, w=beam.DoFn.WindowParam):  # type: ignore[no-untyped-def]
        files = list(element[1])
        yield {
            "window_end_us": w.end.micros,
            "shards": len({shard for shard, _, _ in files}),
            "events": sum(count for _, _, count in files),
        }


def q10(events, params):  # type: ignore[no-untyped-def]
    """Log every event to one of ``5 * num_max_workers`` shards per fixed window."""
    size = params["window_size_sec"]
    max_events = params["max_log_events"]
    day = Duration.of(24 * 60 * 60)
    return (
        events
        | "q10_shard" >> beam.ParDo(ShardEventsFn(5 * params["num_max_workers"]))
        | "q10_window"
        >> beam.WindowInto(
            window.FixedWindows(size),
            trigger=trigger.AfterEach(
                trigger.OrFinally(
                    trigger.Repeatedly(trigger.AfterCount(max_events)), trigger.AfterWatermark()
                ),
                trigger.Repeatedly(
                    trigger.AfterAny(
                        trigger.AfterCount(max_events), trigger.AfterProcessingTime(10)
                    )
                ),
            ),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
            allowed_lateness=day,
        )
        | "q10_gbk" >> beam.GroupByKey()
        | "q10_write" >> beam.ParDo(WriteEventsFn())
        | "q10_window_files"
        >> beam.WindowInto(
            window.FixedWindows(size),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
            allowed_lateness=day,
        )
        | "q10_gbk_files" >> beam.GroupByKey()
        | "q10_index" >> beam.ParDo(WriteIndexFn())
    )


# -- q11, q12: sessions and processing time ----------------------------------------------------


def q11(events, params):  # type: ignore[no-untyped-def]
    """Bids per bidder per session (gap ``window_size_sec``)."""
    return (
        events
        | "q11_bids" >> beam.Filter(is_bid)
        | "q11_bidder" >> beam.Map(lambda b: b.bidder)
        | "q11_sessions"
        >> beam.WindowInto(
            window.Sessions(params["window_size_sec"]),
            trigger=trigger.AfterWatermark(early=trigger.AfterCount(params["max_log_events"])),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
            allowed_lateness=params["occasional_delay_sec"] // 2,
        )
        | "q11_count" >> beam.combiners.Count.PerElement()
        | "q11_output" >> beam.MapTuple(lambda bidder, n: {"bidder_id": bidder, "bid_count": n})
    )


def q12(events, params):  # type: ignore[no-untyped-def]
    """Bids per bidder per ``window_size_sec`` of processing time."""
    return (
        events
        | "q12_bids" >> beam.Filter(is_bid)
        | "q12_bidder" >> beam.Map(lambda b: b.bidder)
        | "q12_global"
        >> beam.WindowInto(
            window.GlobalWindows(),
            trigger=trigger.Repeatedly(trigger.AfterProcessingTime(params["window_size_sec"])),
            accumulation_mode=trigger.AccumulationMode.DISCARDING,
            allowed_lateness=0,
        )
        | "q12_count" >> beam.combiners.Count.PerElement()
        | "q12_output" >> beam.MapTuple(lambda bidder, n: {"bidder_id": bidder, "bid_count": n})
    )


QUERIES: dict[int, Callable[..., Any]] = {
    0: q0, 1: q1, 2: q2, 3: q3, 4: q4, 5: q5, 6: q6,
    7: q7, 8: q8, 9: q9, 10: q10, 11: q11, 12: q12,
}  # fmt: skip
