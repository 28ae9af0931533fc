"""A spec's ``egress``: an fsspec URL or a :class:`SqlEgress`, checked and shown without secrets.

:func:`parse_egress` validates the field, :func:`sql_egress_to_dict` turns a :class:`SqlEgress`
back into plain data and :func:`hide_password` masks the password in any URL shown to a user.
:mod:`headrace.stages.egress` does the copying itself.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from headrace.stages.specfields import (
    SpecError,
    check_fields,
    check_string,
    describe,
    field_path,
    required,
)

__all__ = ["SqlEgress", "hide_password", "parse_egress", "sql_egress_to_dict"]


@dataclass(frozen=True)
class SqlEgress:
    """Load the output commit's ``.csv`` (or ``.jsonl``) files into one SQL ``table``.

    ``url`` is a SQLAlchemy URL (``sqlite:////srv/out.db``, ``postgresql://user@host/db``);
    its repr hides any password.

    >>> SqlEgress("postgresql://etl:secret@db/shop", "orders")
    SqlEgress(url='postgresql://etl:***@db/shop', table='orders', format='csv')
    """

    url: str
    table: str
    format: Literal["csv", "jsonl"] = "csv"

    def __repr__(self) -> str:
        return (
            f"SqlEgress(url={hide_password(self.url)!r}, table={self.table!r}, "
            f"format={self.format!r})"
        )


_USER_PASSWORD = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*://[^/@:?#]*):[^/@?#]*@")
_QUERY_PASSWORD = re.compile(r"([?&](?:password|passwd|pwd|secret|token)=)[^&#]*", re.IGNORECASE)


def hide_password(url: str) -> str:
    """``url`` with its password (in ``user:password@`` or a ``password=`` query) as ``***``.

    >>> hide_password("postgresql://etl:s3cret@db:5432/shop?password=x&sslmode=require")
    'postgresql://etl:***@db:5432/shop?password=***&sslmode=require'
    >>> hide_password("s3://bucket/out")
    's3://bucket/out'
    """
    return _QUERY_PASSWORD.sub(r"\1***", _USER_PASSWORD.sub(r"\1:***@", url))


_EGRESS_FIELDS = ("sql", "table", "format")
_EGRESS_FORMATS = ("csv", "jsonl")
# SQLite (a file) or PostgreSQL, with the drivers headrace installs.
_SQL_URL = re.compile(r"(?:sqlite(?:\+pysqlite)?:///\S+|postgres(?:ql)?(?:\+psycopg)?://\S+)")
_SQL_SCHEME = re.compile(r"(?:sqlite|postgres|postgresql)(?:\+\w+)?://", re.IGNORECASE)
_SQL_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,62}"
_SQL_TABLE = re.compile(rf"(?:{_SQL_NAME}\.)?{_SQL_NAME}")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")


def parse_egress(value: object, path: str) -> str | SqlEgress:
    """An fsspec URL string, or ``{sql: <SQLAlchemy URL>, table: <name>, format: csv|jsonl}``."""
    if isinstance(value, Mapping):
        fields = check_fields(value, path, _EGRESS_FIELDS, "a SQL egress")
        url = check_string(required(fields, "sql", path), field_path(path, "sql"))
        if not _SQL_URL.fullmatch(url):
            raise SpecError(
                field_path(path, "sql"),
                "must be a SQLAlchemy URL of an SQLite file or a PostgreSQL database, such as "
                "'sqlite:////srv/out.db' or 'postgresql://user@host:5432/db', "
                f"got {hide_password(url)!r}",
            )
        table = check_string(required(fields, "table", path), field_path(path, "table"))
        if not _SQL_TABLE.fullmatch(table):
            raise SpecError(
                field_path(path, "table"),
                "must be a table name of letters, digits and '_' (not starting with a digit, "
                f"at most 63 characters), optionally 'schema.table', got {table!r}",
            )
        fmt = fields.get("format", "csv")
        if fmt not in _EGRESS_FORMATS:
            raise SpecError(field_path(path, "format"), f"must be 'csv' or 'jsonl', got {fmt!r}")
        return SqlEgress(url, table, fmt)
    if not isinstance(value, str):
        raise SpecError(
            path,
            "must be an fsspec URL such as 's3://bucket/dir', or a mapping such as "
            f"{{sql: 'postgresql://user@host/db', table: orders}}, got {describe(value)}",
        )
    url = check_string(value, path)
    if _SQL_SCHEME.match(url):
        raise SpecError(
            path,
            f"must be an fsspec URL; {hide_password(url)!r} is a database: write "
            f"{{sql: {hide_password(url)!r}, table: <name>}} to load the files into a table",
        )
    if not _URL.fullmatch(url):
        raise SpecError(
            path,
            "must be an fsspec URL with a scheme, such as 's3://bucket/dir' or "
            f"'file:///srv/out', got {hide_password(url)!r}",
        )
    return url


def sql_egress_to_dict(egress: SqlEgress, include_defaults: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"sql": egress.url, "table": egress.table}
    if include_defaults or egress.format != "csv":
        out["format"] = egress.format
    return out
