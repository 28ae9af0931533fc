"""A deterministic Nexmark event generator: Persons, Auctions and Bids in 1:3:46 proportion.

Beam's Python Nexmark suite has no generator of its own (it reads events that Beam's Java
generator wrote as JSON lines); this module follows the Java generator's rules, written anew:

- Event ``n`` is a Person when ``n % 50 == 0``, an Auction when ``n % 50`` is 1..3, else a Bid.
- Person ids and auction ids count up from 1000 in the order they are made (the id of event
  ``n`` follows from ``n`` alone); event ``n`` happens at ``base_time_ms + n * 1000 / rate``
  (event time, milliseconds), in order.
- A new auction's seller is, 3 times in 4, the most recent "hot" person (ids a multiple of 4);
  otherwise one of the last 1000 persons (or up to 10 persons ahead, not yet seen). The
  category is one of 5 (ids 10..14). Prices are ``int(10 ** (6 * u) * 100)`` cents for a
  uniform ``u``, the reserve is the initial bid plus such a price. An auction lasts a uniform
  random time up to twice the time 1666 events take (100 auctions in flight on average).
- A bid goes, 1 time in 2, to the most recent "hot" auction (ids a multiple of 2), otherwise to
  one of the last 100 auctions (or up to 10 ahead); its bidder is, 3 times in 4, the most recent
  hot bidder, otherwise as for sellers.
- ``extra`` pads each event to an average size (Person 200, Auction 500, Bid 100 bytes).

The event rate defaults to 100 events/s of event time: Beam Python's WinningBids hard-codes an
expected auction duration of 16.667 s, which is what 1666 events take at that rate. Random
draws come from one ``random.Random(seed)``, so the same ``(n, seed)`` gives the same events on
any interpreter. Events are not delivered out of order (Java's ``outOfOrderGroupSize`` of 1).

>>> events = generate(100)
>>> [type(e).__name__ for e in events[:5]]
['Person', 'Auction', 'Auction', 'Auction', 'Bid']
>>> sum(isinstance(e, Bid) for e in events), generate(100) == events
(92, True)
>>> events[50].id, events[51].id, events[1].date_time - events[0].date_time
(1001, 1003, 10)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from nexmark.model import Auction, Bid, Person

__all__ = ["GeneratorConfig", "event_time_ms", "generate"]

PERSON_PROPORTION = 1
AUCTION_PROPORTION = 3
BID_PROPORTION = 46
TOTAL_PROPORTION = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION
FIRST_PERSON_ID = 1000
FIRST_AUCTION_ID = 1000
FIRST_CATEGORY_ID = 10
NUM_CATEGORIES = 5
NUM_ACTIVE_PEOPLE = 1000
NUM_IN_FLIGHT_AUCTIONS = 100
PERSON_ID_LEAD = 10
AUCTION_ID_LEAD = 10
HOT_SELLER_RATIO = 4
HOT_AUCTION_RATIO = 2
HOT_BIDDER_RATIO = 4
AVG_PERSON_BYTES = 200
AVG_AUCTION_BYTES = 500
AVG_BID_BYTES = 100

US_STATES = ("AZ", "CA", "ID", "OR", "WA", "WY")
US_CITIES = (
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
)
FIRST_NAMES = ("Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah")
LAST_NAMES = ("Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones")


@dataclass(frozen=True)
class GeneratorConfig:
    """What shapes the stream: event-time rate, start time and the random seed."""

    events_per_second: int = 100
    base_time_ms: int = 1_436_918_400_000  # 2015-07-15 00:00 UTC
    seed: int = 16


def event_time_ms(n: int, config: GeneratorConfig = GeneratorConfig()) -> int:
    """Event time of event ``n`` in milliseconds."""
    return config.base_time_ms + n * 1000 // config.events_per_second


def _last_person(n: int) -> int:
    """Base-0 id of the last person made at or before event ``n``."""
    return n // TOTAL_PROPORTION


def _last_auction(n: int) -> int:
    """Base-0 id of the last auction made at or before event ``n`` (-1 before the first)."""
    epoch, offset = divmod(n, TOTAL_PROPORTION)
    if offset < PERSON_PROPORTION:
        epoch -= 1
        offset = AUCTION_PROPORTION - 1
    elif offset >= PERSON_PROPORTION + AUCTION_PROPORTION:
        offset = AUCTION_PROPORTION - 1
    else:
        offset -= PERSON_PROPORTION
    return epoch * AUCTION_PROPORTION + offset


class _Draws:
    """The random draws of the generator, from one seeded stream."""

    def __init__(self, seed: int) -> None:
        r = random.Random(seed)
        self.below = r.randrange
        self.uniform = r.random
        # Text to cut random-looking strings from: cheaper than drawing each character.
        letters = "abcdefghijklmnopqrstuvwxyz"
        self.text = "".join(letters[r.randrange(26)] for _ in range(4096))

    def string(self, length: int) -> str:
        start = self.below(len(self.text) - length)
        return self.text[start : start + length]

    def price(self) -> int:
        return int(10.0 ** (self.uniform() * 6.0) * 100.0)

    def extra(self, current: int, average: int) -> str:
        want = average - current
        if want <= 0:
            return ""
        delta = want // 5
        return self.string(want - delta + self.below(2 * delta + 1))

    def person_id(self, n: int) -> int:
        """A recent person, or one not yet made (base 0)."""
        people = _last_person(n) + 1
        active = min(people, NUM_ACTIVE_PEOPLE)
        return people - active + self.below(active + PERSON_ID_LEAD)

    def auction_id(self, n: int) -> int:
        """A recent auction, or one not yet made (base 0)."""
        last = _last_auction(n)
        low = max(last - NUM_IN_FLIGHT_AUCTIONS, 0)
        return low + self.below(last - low + 1 + AUCTION_ID_LEAD)


def _person(n: int, t: int, d: _Draws) -> Person:
    name = f"{FIRST_NAMES[d.below(len(FIRST_NAMES))]} {LAST_NAMES[d.below(len(LAST_NAMES))]}"
    email = f"{d.string(7)}@{d.string(5)}.com"
    card = " ".join(f"{d.below(10000):04d}" for _ in range(4))
    city = US_CITIES[d.below(len(US_CITIES))]
    state = US_STATES[d.below(len(US_STATES))]
    size = 16 + len(name) + len(email) + len(card) + len(city) + len(state)
    pid = _last_person(n) + FIRST_PERSON_ID
    return Person(pid, name, email, card, city, state, t, d.extra(size, AVG_PERSON_BYTES))


def _auction(n: int, t: int, d: _Draws, config: GeneratorConfig) -> Auction:
    if d.below(HOT_SELLER_RATIO) > 0:
        seller = (_last_person(n) // HOT_SELLER_RATIO) * HOT_SELLER_RATIO
    else:
        seller = d.person_id(n)
    category = FIRST_CATEGORY_ID + d.below(NUM_CATEGORIES)
    initial = d.price()
    # An auction lasts up to twice the time NUM_IN_FLIGHT_AUCTIONS auctions take to be made.
    horizon = event_time_ms(n + NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION // AUCTION_PROPORTION,
                            config) - t  # fmt: skip
    expires = t + 1 + d.below(max(horizon * 2, 1))
    name, description = d.string(20), d.string(100)
    reserve = initial + d.price()
    size = 8 + len(name) + len(description) + 8 + 8 + 8 + 8 + 8
    return Auction(
        _last_auction(n) + FIRST_AUCTION_ID,
        name,
        description,
        initial,
        reserve,
        t,
        expires,
        seller + FIRST_PERSON_ID,
        category,
        d.extra(size, AVG_AUCTION_BYTES),
    )


def _bid(n: int, t: int, d: _Draws) -> Bid:
    if d.below(HOT_AUCTION_RATIO) > 0:
        auction = (_last_auction(n) // HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
    else:
        auction = d.auction_id(n)
    if d.below(HOT_BIDDER_RATIO) > 0:
        bidder = (_last_person(n) // HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
    else:
        bidder = d.person_id(n)
    price = d.price()
    return Bid(
        auction + FIRST_AUCTION_ID, bidder + FIRST_PERSON_ID, price, t, d.extra(32, AVG_BID_BYTES)
    )


def generate(
    count: int, config: GeneratorConfig = GeneratorConfig()
) -> list[Person | Auction | Bid]:
    """The first ``count`` events of the stream ``config`` describes, in event-time order."""
    d = _Draws(config.seed)
    out: list[Person | Auction | Bid] = []
    for n in range(count):
        t = event_time_ms(n, config)
        kind = n % TOTAL_PROPORTION
        if kind < PERSON_PROPORTION:
            out.append(_person(n, t, d))
        elif kind < PERSON_PROPORTION + AUCTION_PROPORTION:
            out.append(_auction(n, t, d, config))
        else:
            out.append(_bid(n, t, d))
    return out
