"""Per-column typing of CSV fields, as Beam's ``ReadFromCsv`` types them through pandas.

Beam reads CSV with ``pandas.read_csv`` in chunks of 10,000 lines (``apache_beam/dataframe/io.py``)
and turns each chunk into schema'd rows (``ReadViaPandas``: object columns become strings, missing
values become ``None``). pandas infers one type per column of a chunk, never per value, so
``02134`` stays the string ``'02134'`` in a column that also holds ``'ma-02'``, and a column never
mixes ints and strings. This module reproduces that inference without pandas, for one column:

1. A field equal to a missing-value marker (pandas' default ``na_values``: ``''``, ``NA``,
   ``NaN``, ``nan``, ``null``, ``None``, ``N/A``, ...) is missing.
2. If every other field is an integer literal (ASCII digits, optional sign, surrounding ASCII
   whitespace allowed): with nothing missing, the column is ``int``; with a missing field it is
   ``float`` (pandas has no missing int), missing fields ``None``. A literal beyond int64 met
   before any non-integer makes pandas retry uint64, else keep strings (see ``_overflowed``;
   this follows pandas 2.2 in the common cases, not in every ordering of signed literals).
3. Else, if every other field is a decimal literal or ``inf``/``infinity`` (any case, signed),
   the column is ``float``, missing fields ``None``. Literals are converted as pandas' default
   converter (``precise_xstrtod``) does: 17 significant digits, then one scaling by a power of
   ten; it differs from Python's ``float`` in the last bit for some long literals. A literal
   out of the double range makes the column strings.
4. Else, if every other field is one of ``True/TRUE/true/False/FALSE/false``: with nothing
   missing the column is ``bool``; with a missing field pandas keeps objects, which Beam turns
   into the strings ``'True'``/``'False'`` (and ``None``).
5. Else the column is ``str``; missing fields are ``None``.
6. A column with only missing fields is ``None`` throughout.

The tests in ``tests/io/test_csv_typing.py`` compare these rules with pandas itself.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["BEAM_CSV_CHUNK_LINES", "DEFAULT_NA_VALUES", "type_csv_column"]

BEAM_CSV_CHUNK_LINES = 10_000
"""Lines per pandas chunk in Beam's CSV reader: inference is per column of one chunk."""

DEFAULT_NA_VALUES = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
"""pandas' default missing-value markers (``pandas._libs.parsers.STR_NA_VALUES``, pandas 2)."""

_WS = " \t\n\v\f\r"
_INT = re.compile(rf"[{_WS}]*[+-]?[0-9]+[{_WS}]*\Z").match
_FLOAT = re.compile(
    rf"[{_WS}]*([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]{{1,17}}))?[{_WS}]*\Z"
).match
_SIMPLE_FLOAT = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)\Z").match
_INFINITIES = {"inf": math.inf, "+inf": math.inf, "-inf": -math.inf}
_INFINITIES.update({k + "inity": v for k, v in _INFINITIES.items()})
_POWERS = [float(f"1e{i}") for i in range(309)]
_MAX_DIGITS = 17  # pandas' precise_xstrtod keeps 17 significant digits
_TRUE = frozenset({"True", "TRUE", "true"})
_FALSE = frozenset({"False", "FALSE", "false"})
_BOOLS = _TRUE | _FALSE
_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1


def type_csv_column(fields: Sequence[str], na_values: frozenset[str]) -> list[Any]:
    """The values of one column of one chunk, typed by the rules in the module docstring.

    >>> type_csv_column(["02134", "10001"], DEFAULT_NA_VALUES)
    [2134, 10001]
    >>> type_csv_column(["02134", "ma-02"], DEFAULT_NA_VALUES)
    ['02134', 'ma-02']
    >>> type_csv_column(["1", ""], DEFAULT_NA_VALUES)
    [1.0, None]
    >>> type_csv_column(["true", "False"], DEFAULT_NA_VALUES)
    [True, False]
    """
    if na_values:
        present = [f for f in fields if f not in na_values]
        missing = len(present) != len(fields)
    else:
        present = list(fields)
        missing = False
    if not present:
        return [None] * len(fields)
    ints = _int_scan(present)
    if type(ints) is list:
        if not missing:
            return ints
        # pandas marks missing ints with int64's minimum, so that value reads as missing too
        it = iter(None if v == _INT64[0] else float(v) for v in ints)
        return [None if f in na_values else next(it) for f in fields]
    if ints:
        unsigned = _overflowed(fields, na_values)
        if unsigned is not None:
            return unsigned
    floats = _floats(present)
    if floats is not None:
        if not missing:
            return floats
        values = iter(floats)
        return [None if f in na_values else next(values) for f in fields]
    if all(f in _BOOLS for f in present):
        if not missing:
            return [f in _TRUE for f in fields]
        return [None if f in na_values else str(f in _TRUE) for f in fields]
    if not missing:
        return list(fields)
    return [None if f in na_values else f for f in fields]


def _floats(present: list[str]) -> list[float] | None:
    """The fields as pandas converts them to float, or None if one is not a float literal."""
    out = []
    simple = _SIMPLE_FLOAT
    for f in present:
        if len(f) <= 16 and simple(f):
            out.append(float(f))  # at most 15 digits, no exponent: Python's value is pandas'
            continue
        m = _FLOAT(f)
        if m is None:
            inf = _INFINITIES.get(f.lower())
            if inf is None:
                return None
            out.append(inf)
            continue
        sign, whole, frac, exp = m.groups()
        frac = frac or ""
        digits = len(whole) + len(frac)
        if not digits:
            return None
        exponent = (int(exp) if exp else 0) - len(frac)
        if digits <= 15 and -22 <= exponent <= 22:
            # exact digits scaled once by an exact power: the correctly rounded value
            out.append(float(f))
            continue
        value = _precise_xstrtod(sign == "-", whole, frac, int(exp) if exp else 0)
        if value is None:
            return None
        out.append(value)
    return out


def _precise_xstrtod(negative: bool, whole: str, frac: str, exp: int) -> float | None:
    """pandas' ``precise_xstrtod`` (tokenizer.c): None where it reports a range error."""
    number = 0.0
    exponent = 0
    taken = 0
    for ch in whole:
        if taken < _MAX_DIGITS:
            number = number * 10.0 + (ord(ch) - 48)
            taken += 1
        else:
            exponent += 1
    decimals = 0
    for ch in frac:
        if taken >= _MAX_DIGITS:
            break
        number = number * 10.0 + (ord(ch) - 48)
        taken += 1
        decimals += 1
    exponent -= decimals
    if negative:
        number = -number
    exponent += exp
    if exponent > 308:
        return None
    if exponent > 0:
        number *= _POWERS[exponent]
    elif exponent < -308:
        if exponent < -616:
            number = 0.0
        else:
            number /= _POWERS[-308 - exponent]
            number /= _POWERS[308]
    else:
        number /= _POWERS[-exponent]
    if math.isinf(number):
        return None
    return number


def _int_scan(present: list[str]) -> list[int] | bool:
    """The int64 values; else True if a literal beyond int64 precedes any non-int, else False."""
    try:
        values = [int(f) for f in present]  # fast; accepts a few things pandas does not
    except ValueError:
        values = None
    low, high = _INT64
    if values is not None and all(f.isdigit() and f.isascii() for f in present):
        if all(low <= v <= high for v in values):
            return values
    for f in present:
        if not _INT(f):
            return False
        if not low <= int(f) <= high:
            return True
    return values if values is not None else False


def _overflowed(fields: Sequence[str], na_values: frozenset[str]) -> list[Any] | None:
    """pandas 2.2 on an int column that overflows int64: it retries the column as uint64.

    The retry reads the fields in order. A non-integer sends pandas on to the float rule (None
    here); a literal beyond uint64 stops it with the column as strings, missing fields
    recognised; so does, at the end, a literal below int64. Otherwise, if some field was negative
    or missing the column keeps every field as its text (missing markers included), else it is
    the unsigned ints.
    """
    mixed = below = False
    for f in fields:
        if f in na_values:
            mixed = True
            continue
        if not _INT(f):
            return None
        v = int(f)
        if v > _UINT64_MAX:
            return [None if f in na_values else f for f in fields]
        below = below or v < _INT64[0]
        mixed = mixed or v < 0
    if below:
        return [None if f in na_values else f for f in fields]
    return list(fields) if mixed else [int(f) for f in fields]
