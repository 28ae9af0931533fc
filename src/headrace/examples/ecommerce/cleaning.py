"""The row-cleaning stages of the e-commerce example: ``enrich``, ``mask`` and ``standardise``.

Each stage function has the ``python`` transform signature ``(inputs, output) -> None``: it
reads every file of its datum and writes one file at the same repo path under ``output``.

``enrich`` (orders joined with customers) writes :data:`ENRICHED_FIELDS`::

    order_id,region,customer_id,ordered_at,product,colour,price,quantity,returned,
    name,email,phone,birth_date,city,timezone

``mask`` removes personal data and writes :data:`MASKED_FIELDS`:

* ``name`` becomes ``initials`` (``"Ada Lovelace"`` → ``"A.L."``);
* ``email`` becomes ``customer_key``, the first 16 hex digits of the SHA-256 of the trimmed,
  lowercased address: the same customer gets the same key in every file and every region, and
  the address is not stored. It is a pseudonym, not anonymity: whoever holds a list of addresses
  can hash them and find the matches. A real shop would add a secret key (an HMAC);
* ``birth_date`` becomes ``age``, in whole years on the local date of the order;
* ``phone`` and ``customer_id`` (the key back into the customer table) are dropped;
  ``city`` and ``timezone`` are kept.

``standardise`` makes values comparable and writes :data:`STANDARD_FIELDS`: ``age`` becomes
``age_band`` (:func:`age_band`), ``colour`` a canonical name (:func:`canonical_colour`),
``ordered_at`` moves from local time to UTC (:func:`to_utc`, using the customer's ``timezone``,
which is then dropped) and ``amount = price * quantity`` is added (exact decimals, rounded half
up to cents).

An order whose customer is unknown keeps empty customer fields all the way: empty
``customer_key``, ``initials`` and ``ordered_at`` (no timezone, so no UTC time) and the age band
``unknown``. A value that cannot be read raises
:class:`~headrace.examples.ecommerce.tables.DataError` naming the stage, file and line, so the
datum fails with a message that says what to fix.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from headrace.examples.ecommerce.tables import (
    DataError,
    csv_files,
    input_dir,
    read_csv,
    require_columns,
    write_csv,
)

__all__ = [
    "AGE_BANDS",
    "COLOURS",
    "CUSTOMER_FIELDS",
    "ENRICHED_FIELDS",
    "MASKED_FIELDS",
    "ORDER_FIELDS",
    "STANDARD_FIELDS",
    "age_at",
    "age_band",
    "canonical_colour",
    "customer_key",
    "enrich",
    "initials",
    "mask",
    "standardise",
    "to_utc",
]

ORDER_FIELDS = (
    "order_id",
    "customer_id",
    "ordered_at",
    "product",
    "colour",
    "price",
    "quantity",
    "returned",
)
"""Columns of a raw orders file ``/<region>/<YYYY-MM-DD>.csv``."""

CUSTOMER_FIELDS = ("customer_id", "name", "email", "phone", "birth_date", "city", "timezone")
"""Columns of a raw customers file ``/<region>.csv``."""

ENRICHED_FIELDS = (
    "order_id",
    "region",
    *ORDER_FIELDS[1:],
    *CUSTOMER_FIELDS[1:],
)
"""Columns written by :func:`enrich`."""

MASKED_FIELDS = (
    "order_id",
    "region",
    "customer_key",
    "initials",
    "age",
    "city",
    "timezone",
    "ordered_at",
    "product",
    "colour",
    "price",
    "quantity",
    "returned",
)
"""Columns written by :func:`mask`: no name, email, phone, birth date or customer id."""

STANDARD_FIELDS = (
    "order_id",
    "region",
    "customer_key",
    "initials",
    "age_band",
    "city",
    "ordered_at",
    "product",
    "colour",
    "price",
    "quantity",
    "amount",
    "returned",
)
"""Columns written by :func:`standardise`; ``ordered_at`` is UTC (``...Z``)."""

AGE_BANDS = ("0-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+", "unknown")
"""Every value :func:`age_band` gives."""

_BAND_LOWS = (0, 18, 25, 35, 45, 55, 65)

COLOURS = (
    "black",
    "white",
    "grey",
    "navy",
    "blue",
    "red",
    "green",
    "yellow",
    "orange",
    "pink",
    "purple",
    "brown",
    "beige",
    "other",
)
"""Every value :func:`canonical_colour` gives."""

_COLOUR_NAMES: dict[str, tuple[str, ...]] = {
    "black": ("black", "jet black", "#000000"),
    "white": ("white", "off white", "ivory", "#ffffff"),
    "grey": ("grey", "gray", "light grey", "light gray", "dark grey", "dark gray", "charcoal",
             "silver", "#808080", "#c0c0c0"),
    "navy": ("navy", "navy blue", "dark blue", "#000080"),
    "blue": ("blue", "royal blue", "sky blue", "light blue", "#0000ff"),
    "red": ("red", "crimson", "scarlet", "burgundy", "maroon", "#ff0000", "#dc143c"),
    "green": ("green", "olive", "forest green", "khaki", "#008000"),
    "yellow": ("yellow", "mustard", "#ffff00"),
    "orange": ("orange", "#ffa500"),
    "pink": ("pink", "rose", "#ffc0cb"),
    "purple": ("purple", "violet", "lilac", "#800080"),
    "brown": ("brown", "chocolate", "tan", "#a52a2a"),
    "beige": ("beige", "cream", "sand", "#f5f5dc"),
}  # fmt: skip
_COLOUR_OF = {spelling: colour for colour, names in _COLOUR_NAMES.items() for spelling in names}


# ---------------------------------------------------------------------------------------------
# Value helpers


def initials(name: str) -> str:
    """The initials of a full name, each followed by a dot; empty for an empty name.

    >>> initials("Ada Lovelace"), initials(" jean-luc  picard "), initials("")
    ('A.L.', 'J.P.', '')
    """
    return "".join(f"{word[0].upper()}." for word in name.split())


def customer_key(email: str) -> str:
    """A stable pseudonym for a customer: 16 hex digits of the SHA-256 of the trimmed, lowercased
    email address; empty for an empty address.

    >>> customer_key("Ada@Example.com") == customer_key(" ada@example.com")
    True
    >>> customer_key("ada@example.com")
    'b5fc85e55755f9e0'
    >>> customer_key("")
    ''
    """
    email = email.strip().lower()
    if not email:
        return ""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()[:16]


def age_at(birth_date: dt.date, on: dt.date) -> int:
    """Completed years of age on a date (someone born on 29 February ages on 1 March).

    >>> age_at(dt.date(1990, 6, 15), dt.date(2024, 6, 14)), age_at(dt.date(1990, 6, 15), dt.date(2024, 6, 15))
    (33, 34)
    >>> age_at(dt.date(2000, 2, 29), dt.date(2023, 2, 28))
    22
    """  # noqa: E501
    before_birthday = (on.month, on.day) < (birth_date.month, birth_date.day)
    return on.year - birth_date.year - before_birthday


def age_band(age: int | str | None) -> str:
    """The band of an age in years: ``"0-17"``, ``"18-24"``, ``"25-34"`` ... ``"65+"``, and
    ``"unknown"`` for a missing (``None`` or ``""``) or negative age.

    >>> [age_band(a) for a in (17, 18, 24, 25, 64, 65, 101, "30", "", None)]
    ['0-17', '18-24', '18-24', '25-34', '55-64', '65+', '65+', '25-34', 'unknown', 'unknown']
    """
    if age is None or age == "":
        return "unknown"
    try:
        years = int(age)
    except ValueError:
        raise ValueError(f"age {age!r} is not a whole number of years") from None
    if years < 0:
        return "unknown"
    band = "unknown"
    for low, name in zip(_BAND_LOWS, AGE_BANDS, strict=False):
        if years >= low:
            band = name
    return band


def canonical_colour(colour: str) -> str:
    """The canonical name (one of :data:`COLOURS`) of a colour however it is spelt: any case,
    hyphens or extra spaces, British or American spelling, shade names such as ``"Crimson"`` and
    hex codes (``"#000080"``, ``"#fff"``) of the table's colours. Anything else is ``"other"``.

    >>> [canonical_colour(c) for c in ("Navy Blue", "NAVY", "#000080", "gray", "Crimson",
    ...                                "off-white", "#FFF", "Tie-dye", "")]
    ['navy', 'navy', 'navy', 'grey', 'red', 'white', 'white', 'other', 'other']
    """
    text = " ".join(colour.lower().replace("-", " ").replace("_", " ").split())
    if len(text) == 4 and text.startswith("#"):  # #abc is #aabbcc
        text = "#" + "".join(c * 2 for c in text[1:])
    return _COLOUR_OF.get(text, "other")


_ZONES: dict[str, ZoneInfo] = {}


def _zone(name: str) -> ZoneInfo:
    zone = _ZONES.get(name)
    if zone is None:
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {name!r}; use an IANA name such as 'Europe/Paris' or "
                "'America/New_York'"
            ) from None
        _ZONES[name] = zone
    return zone


def to_utc(local_time: str, timezone: str) -> str:
    """An ISO 8601 local time (no offset) in an IANA timezone as UTC, ``YYYY-MM-DDTHH:MM:SSZ``.

    Around a daylight-saving change a local time can be ambiguous (it happens twice when clocks
    go back: the earlier instant is meant) or impossible (it is skipped when clocks go forward:
    it is read with the offset in force before the change). A time that already carries an
    offset is converted with that offset and ``timezone`` is ignored.

    >>> to_utc("2024-03-31T01:30:00", "Europe/Paris")  # winter time, UTC+1
    '2024-03-31T00:30:00Z'
    >>> to_utc("2024-03-31T03:30:00", "Europe/Paris")  # summer time since 02:00, UTC+2
    '2024-03-31T01:30:00Z'
    >>> to_utc("2024-03-10 01:59:59", "America/New_York")
    '2024-03-10T06:59:59Z'
    >>> to_utc("2024-01-01T00:00:00", "Mars/Olympus")
    Traceback (most recent call last):
    ...
    ValueError: unknown timezone 'Mars/Olympus'; use an IANA name such as 'Europe/Paris' or 'America/New_York'
    """  # noqa: E501
    try:
        moment = dt.datetime.fromisoformat(local_time)
    except ValueError:
        raise ValueError(
            f"cannot read the time {local_time!r}; write it as ISO 8601 local time such as "
            "'2024-03-31T14:05:00'"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_zone(timezone))
    return moment.astimezone(dt.UTC).replace(tzinfo=None).isoformat() + "Z"


_CENT = decimal.Decimal("0.01")


def _amount(price: str, quantity: str) -> str:
    """``price * quantity`` in exact decimal arithmetic, rounded half up to cents."""
    try:
        value = decimal.Decimal(price.strip())
    except decimal.InvalidOperation:
        value = decimal.Decimal("NaN")
    if not value.is_finite():
        raise ValueError(f"price {price!r} is not a number; write it like '19.99'")
    try:
        count = int(quantity)
    except ValueError:
        raise ValueError(f"quantity {quantity!r} is not a whole number") from None
    return str((value * count).quantize(_CENT, rounding=decimal.ROUND_HALF_UP))


# ---------------------------------------------------------------------------------------------
# Stages


def _region_of(rel: str, stage: str) -> str:
    parts = PurePosixPath(rel).parts
    if len(parts) < 2:
        raise DataError(
            stage, f"/{rel}", "expected a file at /<region>/<day>.csv; move it into a region folder"
        )
    return parts[0]


def _load_customers(root: Path) -> dict[str, dict[str, dict[str, str]]]:
    """Customers by region (the file's name without ``.csv``) and id."""
    by_region: dict[str, dict[str, dict[str, str]]] = {}
    for rel, path in csv_files(root):
        table = read_csv(path)
        require_columns(table, CUSTOMER_FIELDS, "enrich", f"/{rel}", "a customers file")
        customers = by_region.setdefault(PurePosixPath(rel).stem, {})
        for row, line in zip(table.rows, table.lines):
            customer_id = row["customer_id"]
            if customer_id in customers:
                raise DataError(
                    "enrich",
                    f"/{rel}",
                    f"customer {customer_id!r} appears twice; keep one row per customer",
                    line,
                )
            customers[customer_id] = row
    return by_region


def enrich(inputs: Mapping[str, Path], output: Path) -> None:
    """Join orders with their customers: the ``enrich`` stage.

    Inputs ``orders`` (files ``/<region>/<day>.csv``) and ``customers`` (files ``/<region>.csv``,
    possibly absent). Each orders file is written at the same path with a ``region`` column (its
    folder) and the columns of its customer in the customers file of that region. An order whose
    customer is not found is kept with empty customer columns; one line per file on stdout says
    how many orders it had and how many had no known customer.

    >>> import tempfile
    >>> from headrace.examples.ecommerce.tables import write_csv
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = Path(tmp)
    ...     write_csv(root / "orders/eu/2024-03-25.csv", ORDER_FIELDS, [
    ...         {"order_id": "o1", "customer_id": "c1"}, {"order_id": "o2", "customer_id": "c9"}])
    ...     write_csv(root / "customers/eu.csv", CUSTOMER_FIELDS,
    ...               [{"customer_id": "c1", "name": "Ada Lovelace", "city": "London"}])
    ...     enrich({"orders": root / "orders", "customers": root / "customers"}, root / "out")
    ...     print((root / "out/eu/2024-03-25.csv").read_text(), end="")
    enrich: /eu/2024-03-25.csv: 2 orders, 1 without a known customer
    order_id,region,customer_id,ordered_at,product,colour,price,quantity,returned,name,email,phone,birth_date,city,timezone
    o1,eu,c1,,,,,,,Ada Lovelace,,,,London,
    o2,eu,c9,,,,,,,,,,,,
    """
    orders_root = input_dir(inputs, "orders", "enrich")
    customers_root = Path(inputs["customers"]) if "customers" in inputs else None
    by_region = _load_customers(customers_root) if customers_root is not None else {}
    no_customer = dict.fromkeys(CUSTOMER_FIELDS[1:], "")
    for rel, path in csv_files(orders_root):
        file = f"/{rel}"
        region = _region_of(rel, "enrich")
        table = read_csv(path)
        require_columns(table, ORDER_FIELDS, "enrich", file, "an orders file")
        customers = by_region.get(region, {})
        rows = []
        missing = 0
        for order in table.rows:
            customer = customers.get(order["customer_id"])
            if customer is None:
                missing += 1
                customer = no_customer
            rows.append({**customer, **order, "region": region})
        print(f"enrich: {file}: {len(rows)} orders, {missing} without a known customer")
        write_csv(output / rel, ENRICHED_FIELDS, rows)


def mask(inputs: Mapping[str, Path], output: Path) -> None:
    """Remove personal data from enriched orders: the ``mask`` stage (see the module docstring).

    Reads every file of its one input and writes :data:`MASKED_FIELDS` at the same path.

    >>> import tempfile
    >>> from headrace.examples.ecommerce.tables import write_csv
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = Path(tmp)
    ...     write_csv(root / "in/eu/2024-03-25.csv", ENRICHED_FIELDS, [{
    ...         "order_id": "o1", "ordered_at": "2024-03-25T10:00:00", "name": "Ada Lovelace",
    ...         "email": "ada@example.com", "phone": "+44 1", "birth_date": "1990-03-26"}])
    ...     mask({"enrich": root / "in"}, root / "out")
    ...     print((root / "out/eu/2024-03-25.csv").read_text(), end="")
    order_id,region,customer_key,initials,age,city,timezone,ordered_at,product,colour,price,quantity,returned
    o1,,b5fc85e55755f9e0,A.L.,33,,,2024-03-25T10:00:00,,,,,
    """
    for rel, path in csv_files(input_dir(inputs, None, "mask")):
        file = f"/{rel}"
        table = read_csv(path)
        require_columns(table, ENRICHED_FIELDS, "mask", file, "the output of enrich")
        rows = []
        for row, line in zip(table.rows, table.lines):
            age = ""
            if row["birth_date"]:
                try:
                    born = dt.date.fromisoformat(row["birth_date"])
                    ordered = dt.datetime.fromisoformat(row["ordered_at"]).date()
                except ValueError as err:
                    raise DataError(
                        "mask",
                        file,
                        f"order {row['order_id']}: cannot read birth_date "
                        f"{row['birth_date']!r} or ordered_at {row['ordered_at']!r} as ISO "
                        f"dates ({err}); write them like '1990-06-15' and '2024-03-25T10:00:00'",
                        line,
                    ) from None
                age = str(age_at(born, ordered))
            rows.append(
                {
                    **row,
                    "customer_key": customer_key(row["email"]),
                    "initials": initials(row["name"]),
                    "age": age,
                }
            )
        write_csv(output / rel, MASKED_FIELDS, rows)


def standardise(inputs: Mapping[str, Path], output: Path) -> None:
    """Age bands, canonical colours, UTC times and amounts: the ``standardise`` stage.

    Reads every file of its one input (the output of :func:`mask`) and writes
    :data:`STANDARD_FIELDS` at the same path. An unknown timezone or an unreadable time, price
    or quantity fails with the file and line; an empty timezone (unknown customer) gives an
    empty ``ordered_at``.

    >>> import tempfile
    >>> from headrace.examples.ecommerce.tables import write_csv
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     root = Path(tmp)
    ...     write_csv(root / "in/eu/2024-03-31.csv", MASKED_FIELDS, [{
    ...         "order_id": "o1", "age": "30", "timezone": "Europe/Paris", "colour": "NAVY",
    ...         "ordered_at": "2024-03-31T03:30:00", "price": "19.99", "quantity": "3"}])
    ...     standardise({"mask": root / "in"}, root / "out")
    ...     print((root / "out/eu/2024-03-31.csv").read_text(), end="")
    order_id,region,customer_key,initials,age_band,city,ordered_at,product,colour,price,quantity,amount,returned
    o1,,,,25-34,,2024-03-31T01:30:00Z,,navy,19.99,3,59.97,
    """
    for rel, path in csv_files(input_dir(inputs, None, "standardise")):
        file = f"/{rel}"
        table = read_csv(path)
        require_columns(table, MASKED_FIELDS, "standardise", file, "the output of mask")
        rows = []
        for row, line in zip(table.rows, table.lines):
            try:
                utc = to_utc(row["ordered_at"], row["timezone"]) if row["timezone"] else ""
                amount = _amount(row["price"], row["quantity"])
                band = age_band(row["age"])
            except ValueError as err:
                raise DataError(
                    "standardise", file, f"order {row['order_id']}: {err}", line
                ) from None
            rows.append(
                {
                    **row,
                    "age_band": band,
                    "colour": canonical_colour(row["colour"]),
                    "ordered_at": utc,
                    "amount": amount,
                }
            )
        write_csv(output / rel, STANDARD_FIELDS, rows)
