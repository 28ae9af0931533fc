"""Event-time values: :class:`Timestamp` and :class:`Duration`, both exact integer microseconds.

Users pass seconds (ints or floats) wherever Beam accepts them; internally headrace keeps plain
``int`` microseconds on hot paths and builds these objects only at API surfaces.
"""

from __future__ import annotations

import datetime as _dt
import time
from functools import total_ordering
from typing import Any

__all__ = [
    "MAX_TIMESTAMP",
    "MIN_TIMESTAMP",
    "Duration",
    "Timestamp",
    "timestamp_of_micros",
    "to_micros",
]

MIN_US = -(2**63)
MAX_US = 2**63 - 1
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def to_micros(value: Any) -> int:
    """Seconds (int/float), a Timestamp or a Duration, as integer microseconds."""
    kind = type(value)  # exact float and int first: one per element where users stamp events
    if kind is float:
        return round(value * 1_000_000)
    if kind is int:
        return value * 1_000_000
    if isinstance(value, (Timestamp, Duration)):
        return value.micros
    if isinstance(value, int):
        return value * 1_000_000
    if isinstance(value, float):
        return round(value * 1_000_000)
    raise TypeError(f"expected seconds as int or float, a Timestamp or a Duration, got {value!r}")


def _seconds_text(micros: int) -> str:
    """Seconds as Beam's ``Timestamp``/``Duration`` reprs print them: ``12``, ``-0.500000``."""
    sign = "-" if micros < 0 else ""
    secs, frac = divmod(abs(micros), 1_000_000)
    return f"{sign}{secs}.{frac:06d}" if frac else f"{sign}{secs}"


def timestamp_of_micros(micros: int) -> Timestamp:
    """``Timestamp(micros=micros)`` for an int, without the constructor's argument handling
    (windows and DoFn parameters make one per element)."""
    t = object.__new__(Timestamp)
    t.micros = micros
    return t


@total_ordering
class Timestamp:
    """A point in event time with microsecond precision.

    >>> t = Timestamp(10) + 2.5
    >>> t, t.micros, float(t)
    (Timestamp(12.500000), 12500000, 12.5)
    >>> Timestamp(60) - Timestamp(15)
    Duration(45)
    >>> Timestamp(90) % 60
    Duration(30)
    >>> Timestamp(3) > 2
    True
    """

    __slots__ = ("micros",)

    def __init__(self, seconds: int | float = 0, micros: int = 0) -> None:
        self.micros = to_micros(seconds) + micros if seconds else int(micros)

    @classmethod
    def of(cls, value: Any) -> Timestamp:
        if isinstance(value, Timestamp):
            return value
        return cls(micros=to_micros(value))

    @classmethod
    def now(cls) -> Timestamp:
        return cls(micros=time.time_ns() // 1000)

    @classmethod
    def from_utc_datetime(cls, dt: _dt.datetime) -> Timestamp:
        if dt.tzinfo is None:
            raise ValueError("from_utc_datetime needs a timezone-aware datetime (tzinfo=UTC)")
        delta = dt - _EPOCH
        return cls(micros=(delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)

    @classmethod
    def from_rfc3339(cls, text: str) -> Timestamp:
        return cls.from_utc_datetime(_dt.datetime.fromisoformat(text.replace("Z", "+00:00")))

    def to_utc_datetime(self, has_tz: bool = False) -> _dt.datetime:
        """This instant as a UTC ``datetime``: naive unless ``has_tz``, as Beam's (a naive one
        prints without ``+00:00``).

        >>> str(Timestamp(1.5).to_utc_datetime()), str(Timestamp(0).to_utc_datetime(has_tz=True))
        ('1970-01-01 00:00:01.500000', '1970-01-01 00:00:00+00:00')
        """
        moment = _EPOCH + _dt.timedelta(microseconds=self.micros)
        return moment if has_tz else moment.replace(tzinfo=None)

    def to_rfc3339(self) -> str:
        """RFC 3339 in UTC as Beam writes it: microseconds only when non-zero.

        >>> Timestamp(10).to_rfc3339(), Timestamp(micros=1_500_000).to_rfc3339()
        ('1970-01-01T00:00:10Z', '1970-01-01T00:00:01.500000Z')
        """
        return self.to_utc_datetime().isoformat() + "Z"

    def seconds(self) -> float:
        return self.micros / 1_000_000

    def predecessor(self) -> Timestamp:
        return Timestamp(micros=self.micros - 1)

    def successor(self) -> Timestamp:
        return Timestamp(micros=self.micros + 1)

    def __float__(self) -> float:
        return self.micros / 1_000_000

    def __int__(self) -> int:
        return self.micros // 1_000_000

    def __repr__(self) -> str:
        return f"Timestamp({_seconds_text(self.micros)})"

    def __str__(self) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Timestamp, int, float)) and not isinstance(other, bool):
            return self.micros == to_micros(other)
        return NotImplemented

    def __lt__(self, other: Any) -> bool:
        if isinstance(other, Duration):
            return NotImplemented
        return self.micros < to_micros(other)

    def __hash__(self) -> int:
        return hash(self.micros)

    def __add__(self, other: Any) -> Timestamp:
        if isinstance(other, Timestamp):
            raise TypeError("cannot add two Timestamps; add a Duration or seconds")
        return Timestamp(micros=self.micros + to_micros(other))

    __radd__ = __add__

    def __sub__(self, other: Any) -> Any:
        if isinstance(other, Timestamp):
            return Duration(micros=self.micros - other.micros)
        return Timestamp(micros=self.micros - to_micros(other))

    def __mod__(self, other: Any) -> Duration:
        return Duration(micros=self.micros % to_micros(other))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Timestamp, (0, self.micros))


@total_ordering
class Duration:
    """A span of event or processing time with microsecond precision.

    >>> Duration(90).micros, Duration(seconds=1.5) + 1
    (90000000, Duration(2.500000))
    """

    __slots__ = ("micros",)

    def __init__(self, seconds: int | float = 0, micros: int = 0) -> None:
        self.micros = to_micros(seconds) + micros if seconds else int(micros)

    @classmethod
    def of(cls, value: Any) -> Duration:
        if isinstance(value, Duration):
            return value
        return cls(micros=to_micros(value))

    def __float__(self) -> float:
        return self.micros / 1_000_000

    def __repr__(self) -> str:
        return f"Duration({_seconds_text(self.micros)})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Duration, int, float)) and not isinstance(other, bool):
            return self.micros == to_micros(other)
        return NotImplemented

    def __lt__(self, other: Any) -> bool:
        return self.micros < to_micros(other)

    def __hash__(self) -> int:
        return hash(self.micros)

    def __neg__(self) -> Duration:
        return Duration(micros=-self.micros)

    def __add__(self, other: Any) -> Any:
        if isinstance(other, Timestamp):
            return Timestamp(micros=self.micros + other.micros)
        return Duration(micros=self.micros + to_micros(other))

    __radd__ = __add__

    def __sub__(self, other: Any) -> Duration:
        return Duration(micros=self.micros - to_micros(other))

    def __mul__(self, other: int) -> Duration:
        return Duration(micros=self.micros * other)

    def __mod__(self, other: Any) -> Duration:
        return Duration(micros=self.micros % to_micros(other))

    def __reduce__(self) -> tuple[Any, ...]:
        return (Duration, (0, self.micros))


MIN_TIMESTAMP = Timestamp(micros=MIN_US)
MAX_TIMESTAMP = Timestamp(micros=MAX_US)
