"""Checks of single stage-spec fields, and :class:`SpecError`, the error they raise.

Each ``check_*`` function takes a value parsed from YAML or JSON and the field path it came from
(``input.cross[1].pfs.glob``), returns the value normalised, or raises :class:`SpecError` whose
message starts with that path. :mod:`headrace.stages.spec` builds the spec tree from them;
:mod:`headrace.stages.cronspec` and :mod:`headrace.stages.egressspec` check their own fields
with them. Globs and their ``(...)`` capture groups (:func:`split_capture_groups`) live here too,
since a glob is one field and ``join_on`` / ``group_by`` templates refer to its groups.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from typing import Any

from headrace.store.errors import InvalidName, InvalidPath
from headrace.store.globs import compile_glob
from headrace.store.refs import validate_name

__all__ = [
    "SpecError",
    "check_bool",
    "check_capture_template",
    "check_fields",
    "check_glob",
    "check_int",
    "check_name",
    "check_string",
    "describe",
    "field_path",
    "parse_duration",
    "plain_number",
    "required",
    "split_capture_groups",
]


class SpecError(ValueError):
    """A stage spec that does not parse or validate; ``path`` is the offending field path."""

    def __init__(self, path: str, problem: str, source: str | None = None) -> None:
        self.path = path
        self.problem = problem
        self.source = source
        text = f"{path}: {problem}" if path else problem
        super().__init__(f"{source}: {text}" if source else text)

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, str, str | None]]:
        return (SpecError, (self.path, self.problem, self.source))


# Shown (in tracebacks, reprs, pickles) under the module users import it from.
SpecError.__module__ = "headrace.stages.spec"


def field_path(path: str, key: str) -> str:
    """The path of field ``key`` inside ``path`` (``input.pfs`` + ``glob``)."""
    return f"{path}.{key}" if path else key


def describe(value: object) -> str:
    """A short description of a wrong value for an error message."""
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def check_fields(data: object, path: str, known: tuple[str, ...], what: str) -> Mapping[str, Any]:
    """Check ``data`` is a mapping with only ``known`` keys; drop keys whose value is null."""
    if not isinstance(data, Mapping):
        raise SpecError(path or "spec", f"{what} must be a mapping of fields, got {describe(data)}")
    for key in data:
        if not isinstance(key, str):
            raise SpecError(path or "spec", f"field names must be strings, got {key!r}")
        if key not in known:
            raise SpecError(field_path(path, key), _unknown(key, known))
    return {k: v for k, v in data.items() if v is not None}


def _unknown(key: str, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"unknown field {key!r}; did you mean {close[0]!r}?"
    return f"unknown field {key!r}; known fields here: {', '.join(known)}"


def required(fields: Mapping[str, Any], key: str, path: str) -> Any:
    """The value of ``key``; a SpecError naming it if it is missing."""
    if key not in fields:
        raise SpecError(field_path(path, key), "is required")
    return fields[key]


def check_string(value: object, path: str, allow_empty: bool = False) -> str:
    """A string without control characters (tabs and newlines allowed), non-blank unless
    ``allow_empty``."""
    if not isinstance(value, str):
        hint = " (quote it)" if isinstance(value, int | float | bool) else ""
        raise SpecError(path, f"must be a string{hint}, got {describe(value)}")
    if not allow_empty and not value.strip():
        raise SpecError(path, "must not be empty")
    if _CONTROL(value.replace("\n", "").replace("\t", "")):
        raise SpecError(path, f"must not contain control characters, got {value!r}")
    return value


_CONTROL = re.compile(r"[\x00-\x1f\x7f]").search


def check_bool(value: object, path: str) -> bool:
    """``true`` or ``false``, nothing else (not 0 or 1)."""
    if not isinstance(value, bool):
        raise SpecError(path, f"must be true or false, got {describe(value)}")
    return value


def check_int(value: object, path: str, minimum: int) -> int:
    """A whole number (not a bool) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(path, f"must be a whole number, got {describe(value)}")
    if value < minimum:
        raise SpecError(path, f"must be at least {minimum}, got {value}")
    return value


def check_name(value: object, path: str, what: str) -> str:
    """A valid store name of a ``what`` (repo, branch, stage, input)."""
    text = check_string(value, path)
    try:
        return validate_name(text, what)
    except InvalidName as err:
        raise SpecError(path, str(err)) from None


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h|d)")
_DURATION = re.compile(rf"(?:{_DURATION_PART.pattern})+")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object, path: str) -> float:
    """Seconds of ``30``, ``2.5``, ``"30s"``, ``"5m"``, ``"1h30m"`` or ``"250ms"``; > 0."""
    if isinstance(value, bool):
        seconds = math.nan
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            if not _DURATION.fullmatch(text):
                seconds = math.nan
            else:
                seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
    else:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise SpecError(
            path,
            "must be a positive duration such as 30 (seconds), '30s', '5m', '1h30m' or "
            f"'250ms', got {describe(value)}",
        )
    return seconds


def plain_number(value: Any) -> Any:
    """Floats that are whole numbers as ints, so ``5m`` round-trips as ``300``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# ---------------------------------------------------------------------------------------------
# Globs and capture groups


def split_capture_groups(glob: str) -> tuple[str, int]:
    """The glob in its normal form (absolute, no trailing ``/``) and its number of capture
    groups: ``(..)``, ``@(..)``, ``?(..)``, ``*(..)``, ``+(..)`` and ``!(..)``, numbered by
    their opening parenthesis; ``{a,b}`` alternatives capture nothing. A malformed glob is a
    ValueError saying what is wrong.

    >>> split_capture_groups("/(*)-(*).csv")
    ('/(*)-(*).csv', 2)
    >>> split_capture_groups("*.{png,jpg}/")
    ('/*.{png,jpg}', 0)
    """
    try:
        compiled = compile_glob(glob)
    except InvalidPath as err:
        raise ValueError(str(err)) from None
    return compiled.pattern, compiled.groups


def check_glob(value: object, path: str) -> tuple[str, int]:
    """A glob Pachyderm's way (a missing leading ``/`` and a trailing ``/`` make no
    difference), as written, and the number of its capture groups. Syntax headrace does not
    support is refused here, so it never silently matches nothing."""
    glob = check_string(value, path)
    try:
        _, groups = split_capture_groups(glob)
    except ValueError as err:
        raise SpecError(path, str(err)) from None
    return glob, groups


_GROUP_REF = re.compile(r"\$(?:\{(\d+)\}|(\d+))")


def check_capture_template(value: object, path: str, glob: str, groups: int) -> str:
    """A ``join_on`` / ``group_by`` template that refers only to capture groups ``glob`` has."""
    template = check_string(value, path)
    refs = [int(a or b) for a, b in _GROUP_REF.findall(template)]
    if not refs:
        raise SpecError(
            path,
            f"must refer to at least one capture group of the glob, like '$1', got {template!r}",
        )
    for ref in refs:
        if not 1 <= ref <= groups:
            if groups == 0:
                fix = "put parentheses around the part to match on, e.g. '/(*).csv'"
            else:
                fix = f"it has {groups} group{'s' if groups > 1 else ''} ($1..${groups})"
            raise SpecError(
                path, f"refers to ${ref} but the glob {glob!r} has no such group; {fix}"
            )
    return template
