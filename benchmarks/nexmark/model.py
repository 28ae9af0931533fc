"""The Nexmark event types (Person, Auction, Bid, AuctionBid) and a canonical text form.

Plain Python, importing nothing of headrace or Apache Beam, so that the same classes run on
both (Beam runs in its own interpreter, see ``beam_side.py``). Times (``date_time``,
``expires``) are integer **milliseconds** since the epoch, as in Nexmark's wire form (Beam's
Python suite turns them into ``Timestamp`` objects when it parses JSON; the queries here convert
where they need event time, with :func:`queries.millis_to_timestamp`).

Equality and hashing use the fields, so a query's outputs can be compared as multisets; the
hash uses only integer fields, so it is the same in every process (``str`` hashes are salted per
interpreter), which keeps Query 10's sharding deterministic.

>>> b = Bid(1000, 1001, 250, 1_500_000_000_000, "")
>>> canonical(b)
'{"auction":1000,"bidder":1001,"date_time":1500000000000,"extra":"","price":250}'
>>> canonical({"seller": 3, "price": 7.5}) == canonical({"price": 7.5, "seller": 3})
True
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["Auction", "AuctionBid", "Bid", "Person", "canonical", "to_plain"]


class Person:
    """Someone who opens auctions or bids."""

    __slots__ = (
        "city",
        "credit_card",
        "date_time",
        "email_address",
        "extra",
        "id",
        "name",
        "state",
    )

    def __init__(
        self,
        id: int,
        name: str,
        email_address: str,
        credit_card: str,
        city: str,
        state: str,
        date_time: int,
        extra: str = "",
    ) -> None:
        self.id = id
        self.name = name
        self.email_address = email_address
        self.credit_card = credit_card
        self.city = city
        self.state = state
        self.date_time = date_time
        self.extra = extra

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Person) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("P", self.id, self.date_time))

    def __reduce__(self) -> Any:
        return (Person, (self.id, self.name, self.email_address, self.credit_card, self.city,
                         self.state, self.date_time, self.extra))  # fmt: skip

    def __repr__(self) -> str:
        return f"Person({canonical(self)})"


class Auction:
    """An item put up for auction by ``seller`` until ``expires``."""

    __slots__ = (
        "category",
        "date_time",
        "description",
        "expires",
        "extra",
        "id",
        "initial_bid",
        "item_name",
        "reserve",
        "seller",
    )

    def __init__(
        self,
        id: int,
        item_name: str,
        description: str,
        initial_bid: int,
        reserve: int,
        date_time: int,
        expires: int,
        seller: int,
        category: int,
        extra: str = "",
    ) -> None:
        self.id = id
        self.item_name = item_name
        self.description = description
        self.initial_bid = initial_bid
        self.reserve = reserve
        self.date_time = date_time
        self.expires = expires
        self.seller = seller
        self.category = category
        self.extra = extra

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f) for f in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Auction) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("A", self.id, self.date_time))

    def __reduce__(self) -> Any:
        return (Auction, (self.id, self.item_name, self.description, self.initial_bid,
                          self.reserve, self.date_time, self.expires, self.seller,
                          self.category, self.extra))  # fmt: skip

    def __repr__(self) -> str:
        return f"Auction({canonical(self)})"


class Bid:
    """A bid of ``price`` (cents) by ``bidder`` on ``auction``."""

    __slots__ = ("auction", "bidder", "date_time", "extra", "price")

    def __init__(
        self, auction: int, bidder: int, price: float, date_time: int, extra: str = ""
    ) -> None:
        self.auction = auction
        self.bidder = bidder
        self.price = price
        self.date_time = date_time
        self.extra = extra

    def _key(self) -> tuple[Any, ...]:
        return (self.auction, self.bidder, self.price, self.date_time, self.extra)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Bid) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((self.auction, self.bidder, self.date_time))

    def __reduce__(self) -> Any:
        return (Bid, (self.auction, self.bidder, self.price, self.date_time, self.extra))

    def __repr__(self) -> str:
        return f"Bid({canonical(self)})"


class AuctionBid:
    """The winning bid of an auction (output of WinningBids)."""

    __slots__ = ("auction", "bid")

    def __init__(self, auction: Auction, bid: Bid) -> None:
        self.auction = auction
        self.bid = bid

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AuctionBid) and (self.auction, self.bid) == (
            other.auction,
            other.bid,
        )

    def __hash__(self) -> int:
        return hash((hash(self.auction), hash(self.bid)))

    def __reduce__(self) -> Any:
        return (AuctionBid, (self.auction, self.bid))

    def __repr__(self) -> str:
        return f"AuctionBid({canonical(self)})"


def to_plain(value: Any) -> Any:
    """``value`` as JSON-able data: events and AuctionBids become dicts of their fields."""
    if isinstance(value, (Person, Auction, Bid, AuctionBid)):
        return {f: to_plain(getattr(value, f)) for f in value.__slots__}
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """One line of JSON with sorted keys: equal values give equal text, on any interpreter."""
    return json.dumps(to_plain(value), sort_keys=True, separators=(",", ":"))
