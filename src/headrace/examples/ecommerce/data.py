"""Deterministic raw data for the e-commerce example: orders and customers (no download).

:func:`generate` writes the two raw layouts the example's stages read::

    root/customers/<region>.csv          customer_id,name,email,phone,birth_date,city,timezone
    root/orders/<region>/<YYYY-MM-DD>.csv order_id,customer_id,ordered_at,product,colour,
                                          price,quantity,returned

``ordered_at`` is the customer's local time without an offset; ``timezone`` is an IANA name of
the customer's city. Colours are spelt the way a shop's many suppliers spell them (``"Navy
Blue"``, ``"NAVY"``, ``"#000080"``, ``"gray"``, ``"Crimson"``...). A small share of orders
(``missing_customers``) refer to customers not in the customers file, as after a deleted account.

Whether an order was returned is drawn from a logistic model of what the cleaned data shows, so
there is something to learn: young customers, odd colours (canonical ``other``), navy (it looks
black on screen), the US region and expensive orders are returned more often; customers over 55,
white and black less. Emails and phones are fictional (``example.com``, ``555`` numbers).

Each region's customers come from a random generator seeded with ``(seed, region)`` and each
day's orders from one seeded with ``(seed, region, day)``, so :func:`generate_next_day` writes
exactly the file that :func:`generate` with one more day would have written: the next commit of
an incremental walkthrough.

>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp:
...     paths = generate(Path(tmp), days=2, regions=("eu",), orders_per_day=3)
...     print([p.relative_to(tmp).as_posix() for p in paths])
...     print(generate_next_day(Path(tmp), "eu", orders_per_day=3).relative_to(tmp).as_posix())
['customers/eu.csv', 'orders/eu/2024-03-25.csv', 'orders/eu/2024-03-26.csv']
orders/eu/2024-03-27.csv
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Sequence
from pathlib import Path

from headrace.examples.ecommerce.cleaning import (
    CUSTOMER_FIELDS,
    ORDER_FIELDS,
    age_at,
    age_band,
)
from headrace.examples.ecommerce.tables import read_csv, write_csv

__all__ = [
    "REGION_CITIES",
    "START_DAY",
    "generate",
    "generate_next_day",
]

START_DAY = dt.date(2024, 3, 25)
"""The first day :func:`generate` writes (its week spans Europe's change to summer time)."""

REGION_CITIES: dict[str, tuple[tuple[str, str], ...]] = {
    "eu": (
        ("Paris", "Europe/Paris"),
        ("Berlin", "Europe/Berlin"),
        ("London", "Europe/London"),
        ("Madrid", "Europe/Madrid"),
        ("Helsinki", "Europe/Helsinki"),
    ),
    "us": (
        ("New York", "America/New_York"),
        ("Chicago", "America/Chicago"),
        ("Denver", "America/Denver"),
        ("Los Angeles", "America/Los_Angeles"),
    ),
    "apac": (
        ("Tokyo", "Asia/Tokyo"),
        ("Sydney", "Australia/Sydney"),
        ("Singapore", "Asia/Singapore"),
        ("Mumbai", "Asia/Kolkata"),
    ),
}
"""Cities and their timezones per region; any other region's customers live in Reykjavik."""

_OTHER_CITIES = (("Reykjavik", "Atlantic/Reykjavik"),)
_PHONE_PREFIX = {"eu": "+33 6", "us": "+1 212 555", "apac": "+81 90"}

_FIRST = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Tim", "Margaret",
          "Ken", "Radia", "Linus", "Sophie", "Yukihiro", "Hedy", "Dennis", "Katherine", "Guido",
          "Mary", "Niklaus", "Annie", "John", "Karen", "Leslie")  # fmt: skip
_LAST = ("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Lee",
         "Hamilton", "Thompson", "Perlman", "Torvalds", "Wilson", "Matsumoto", "Lamarr",
         "Ritchie", "Johnson", "van Rossum", "Kenyon", "Wirth", "Easley", "Backus",
         "Sparck Jones", "Lamport")  # fmt: skip
_PRODUCTS = (("t-shirt", 19.0), ("socks", 8.0), ("cap", 15.0), ("hoodie", 49.0),
             ("jeans", 69.0), ("dress", 79.0), ("sneakers", 89.0), ("jacket", 139.0),
             ("coat", 219.0))  # fmt: skip
# Canonical colour, how often it is ordered, and the spellings seen in the raw data.
_COLOURS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    ("black", 6, ("black", "Black", "BLACK", "#000000", "Jet Black")),
    ("white", 5, ("white", "White", "#fff", "Off-White")),
    ("grey", 4, ("grey", "gray", "Grey", "GRAY", "Charcoal")),
    ("navy", 4, ("Navy Blue", "navy", "NAVY", "#000080", "navy-blue")),
    ("blue", 3, ("blue", "Royal Blue", "Sky blue")),
    ("red", 3, ("Red", "Crimson", "#FF0000", "burgundy")),
    ("green", 2, ("green", "Olive", "forest green")),
    ("beige", 2, ("beige", "Cream", "Sand")),
    ("other", 3, ("Tie-dye", "rainbow", "Chartreuse-ish", "#123456", "leopard")),
)
# Effects on the log-odds of a return.
_BASE = -2.3
_COLOUR_EFFECT = {"other": 2.2, "navy": 1.0, "white": -0.5, "black": -0.5}
_AGE_EFFECT = {"18-24": 1.6, "25-34": 0.6, "55-64": -0.6, "65+": -1.0}
_REGION_EFFECT = {"us": 0.5, "apac": -0.5}
_AMOUNT_EFFECT = 0.012  # per unit of amount above 60


def _check(regions: Sequence[str], days: int, orders_per_day: int, missing: float) -> None:
    for region in regions:
        if not region or "/" in region or region in (".", ".."):
            raise ValueError(f"region {region!r} cannot be a folder name; use names like 'eu'")
    if days < 0 or orders_per_day < 0:
        raise ValueError(f"days and orders_per_day must be >= 0, got {days} and {orders_per_day}")
    if not 0.0 <= missing <= 1.0:
        raise ValueError(f"missing_customers is a share between 0 and 1, got {missing}")


def _customers(region: str, count: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(f"headrace-ecommerce:{seed}:{region}:customers")
    cities = REGION_CITIES.get(region, _OTHER_CITIES)
    prefix = _PHONE_PREFIX.get(region, "+354 555")
    out = []
    for n in range(count):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        city, timezone = rng.choice(cities)
        age = rng.choice((19, 21, 23, 27, 30, 33, 36, 40, 44, 48, 52, 58, 63, 67, 72, 78))
        birth = dt.date(START_DAY.year - age, rng.randint(1, 12), rng.randint(1, 28))
        user = f"{first}.{last}".replace(" ", "")
        email = f"{user}{rng.randint(1, 99)}@example.{rng.choice(('com', 'org', 'net'))}"
        out.append(
            {
                "customer_id": f"{region.upper()}-C{n:04d}",
                "name": f"{first} {last}",
                "email": email if rng.random() < 0.7 else email.lower(),
                "phone": f"{prefix} {rng.randint(0, 9999):04d}",
                "birth_date": birth.isoformat(),
                "city": city,
                "timezone": timezone,
            }
        )
    return out


def _orders(
    region: str,
    day: dt.date,
    customers: Sequence[dict[str, str]],
    count: int,
    seed: int,
    missing: float,
) -> list[dict[str, str]]:
    rng = random.Random(f"headrace-ecommerce:{seed}:{region}:{day.isoformat()}")
    colour_names = [c for c, _, _ in _COLOURS]
    colour_weights = [w for _, w, _ in _COLOURS]
    spellings = {c: s for c, _, s in _COLOURS}
    drafts = []
    for _ in range(count):
        second = rng.randrange(24 * 3600)
        ordered_at = dt.datetime.combine(day, dt.time()) + dt.timedelta(seconds=second)
        if customers and rng.random() >= missing:
            customer = rng.choice(customers)
            customer_id = customer["customer_id"]
            born = dt.date.fromisoformat(customer["birth_date"])
            band = age_band(age_at(born, day))
        else:  # an account deleted since: the id is beyond those in the customers file
            customer_id = f"{region.upper()}-C{len(customers) + rng.randrange(1000):04d}"
            band = "unknown"
        product, base_price = rng.choice(_PRODUCTS)
        price = round(base_price * rng.uniform(0.8, 1.2), 2)
        quantity = rng.choices((1, 2, 3), weights=(7, 2, 1))[0]
        colour = rng.choices(colour_names, weights=colour_weights)[0]
        spelling = rng.choice(spellings[colour])
        logit = (
            _BASE
            + _COLOUR_EFFECT.get(colour, 0.0)
            + _AGE_EFFECT.get(band, 0.0)
            + _REGION_EFFECT.get(region, 0.0)
            + _AMOUNT_EFFECT * (price * quantity - 60.0)
        )
        returned = rng.random() < 1.0 / (1.0 + math.exp(-logit))
        drafts.append(
            {
                "customer_id": customer_id,
                "ordered_at": ordered_at.isoformat(),
                "product": product,
                "colour": spelling,
                "price": f"{price:.2f}",
                "quantity": str(quantity),
                "returned": str(int(returned)),
            }
        )
    drafts.sort(key=lambda order: order["ordered_at"])
    stamp = day.strftime("%Y%m%d")
    return [
        {"order_id": f"{region.upper()}-{stamp}-{k:04d}", **order} for k, order in enumerate(drafts)
    ]


def generate(
    root: Path,
    days: int = 7,
    regions: Sequence[str] = ("eu", "us", "apac"),
    orders_per_day: int = 40,
    seed: int = 0,
    *,
    customers_per_region: int = 50,
    missing_customers: float = 0.02,
    start: dt.date = START_DAY,
) -> list[Path]:
    """Write customers and ``days`` days of orders per region under ``root``; return the paths.

    The same arguments write the same bytes. Paths come back sorted; existing files of the same
    names are overwritten.

    >>> import tempfile
    >>> from headrace.examples.ecommerce.tables import read_csv
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     paths = generate(Path(tmp), days=1, regions=("us",), orders_per_day=5)
    ...     orders = read_csv(Path(tmp, "orders/us/2024-03-25.csv")).rows
    >>> len(paths), len(orders), orders[0]["order_id"]
    (2, 5, 'US-20240325-0000')
    """
    _check(regions, days, orders_per_day, missing_customers)
    root = Path(root)
    written = []
    for region in regions:
        customers = _customers(region, customers_per_region, seed)
        path = root / "customers" / f"{region}.csv"
        write_csv(path, CUSTOMER_FIELDS, customers)
        written.append(path)
        for offset in range(days):
            day = start + dt.timedelta(days=offset)
            orders = _orders(region, day, customers, orders_per_day, seed, missing_customers)
            path = root / "orders" / region / f"{day.isoformat()}.csv"
            write_csv(path, ORDER_FIELDS, orders)
            written.append(path)
    return sorted(written)


def generate_next_day(
    root: Path,
    region: str,
    orders_per_day: int = 40,
    seed: int = 0,
    *,
    missing_customers: float = 0.02,
) -> Path:
    """Write the orders of the day after the region's last orders file (or of :data:`START_DAY`
    if it has none) for the customers in ``root/customers/<region>.csv``; return its path.

    With the same ``seed``, ``orders_per_day`` and ``missing_customers`` as :func:`generate`,
    the file is the one :func:`generate` would have written with one more day.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = generate(Path(tmp), days=3, regions=("apac",), orders_per_day=2)
    ...     generate_next_day(Path(tmp), "apac", orders_per_day=2).name
    '2024-03-28.csv'
    """
    _check((region,), 0, orders_per_day, missing_customers)
    root = Path(root)
    customers_file = root / "customers" / f"{region}.csv"
    if not customers_file.is_file():
        raise FileNotFoundError(
            f"no customers file {customers_file}; write the raw data with generate() first"
        )
    customers = read_csv(customers_file).rows
    days = []
    for path in (root / "orders" / region).glob("*.csv"):
        try:
            days.append(dt.date.fromisoformat(path.stem))
        except ValueError:
            raise ValueError(
                f"{path}: an orders file must be named <YYYY-MM-DD>.csv; rename or remove it"
            ) from None
    day = max(days) + dt.timedelta(days=1) if days else START_DAY
    orders = _orders(region, day, customers, orders_per_day, seed, missing_customers)
    path = root / "orders" / region / f"{day.isoformat()}.csv"
    write_csv(path, ORDER_FIELDS, orders)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m headrace.examples.ecommerce.data DIR`` writes the raw data under DIR;
    ``--next-day REGION`` adds the next day of one region instead."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m headrace.examples.ecommerce.data",
        description="Write the e-commerce example's raw orders and customers as CSV files.",
    )
    parser.add_argument("root", type=Path, help="folder to write orders/ and customers/ under")
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--orders-per-day", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--next-day", metavar="REGION", help="add one day of this region")
    args = parser.parse_args(argv)
    if args.next_day:
        path = generate_next_day(args.root, args.next_day, args.orders_per_day, args.seed)
        print(path)
        return
    paths = generate(args.root, args.days, orders_per_day=args.orders_per_day, seed=args.seed)
    print(f"wrote {len(paths)} files under {args.root}")


if __name__ == "__main__":
    main()
