"""``Row``: a record with named fields, like ``beam.Row``.

Rows are what schema-aware sources (CSV, JSON, Parquet/Avro with ``as_rows=True``) produce. A row is
a plain object whose fields are its attributes; two rows are equal when they have the same field
names and values (field order does not matter), and equal rows hash alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["Row"]


class Row:
    """A record with named fields.

    >>> r = Row(name="ada", age=36)
    >>> r.name, r.age
    ('ada', 36)
    >>> r
    Row(name='ada', age=36)
    >>> r._asdict()
    {'name': 'ada', 'age': 36}
    >>> r == Row(age=36, name="ada")
    True
    >>> name, age = r   # iterating yields the values, in field order
    """

    def __init__(self, **fields: Any) -> None:
        self.__dict__.update(fields)

    @classmethod
    def _from_mapping(cls, fields: Mapping[str, Any]) -> Row:
        """Build a row from a mapping without copying it through keyword arguments."""
        row = cls.__new__(cls)
        row.__dict__.update(fields)
        return row

    def _asdict(self) -> dict[str, Any]:
        """The fields as a new ``dict``, in field order."""
        return dict(self.__dict__)

    def _fields(self) -> tuple[str, ...]:
        """The field names, in order."""
        return tuple(self.__dict__)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.__dict__.values())

    def __len__(self) -> int:
        return len(self.__dict__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.__dict__.items(), key=lambda kv: kv[0])))

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"Row({shown})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_make_row, (tuple(self.__dict__.items()),))


def _make_row(items: tuple[tuple[str, Any], ...]) -> Row:
    return Row._from_mapping(dict(items))
