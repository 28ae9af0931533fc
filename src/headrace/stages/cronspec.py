"""Cron schedules of a spec's ``cron`` inputs: checking their syntax and expanding their fields.

A schedule is a 5-field cron expression (minute, hour, day of month, month, day of week; names
such as ``jan`` or ``mon`` allowed), a macro (``@daily``, ``@weekly``, ...) or ``@every
<duration>``. :func:`check_cron_spec` validates one and returns it normalised (the form stored
in :class:`~headrace.stages.spec.CronInput`); :func:`expand_cron` gives the value sets of its
fields, which :mod:`headrace.stages.cron` steps through to find the ticks.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from headrace.stages.specfields import SpecError, check_string, parse_duration

__all__ = ["CronFields", "check_cron_spec", "expand_cron"]

# Each macro and the 5-field expression it stands for.
_CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (field name, lowest, highest, names of lowest.. or None, '?' allowed)
_CRON_LAYOUT: tuple[tuple[str, int, int, tuple[str, ...] | None, bool], ...] = (
    ("minute", 0, 59, None, False),
    ("hour", 0, 23, None, False),
    ("day of month", 1, 31, None, True),
    ("month", 1, 12, _MONTHS, False),
    ("day of week", 0, 7, _DAYS, True),
)
_CRON_ITEM = re.compile(r"(\*|\?|[A-Za-z0-9]+)(?:-([A-Za-z0-9]+))?(?:/(\d+))?")


def check_cron_spec(value: object, path: str) -> str:
    """Check a 5-field cron expression, a macro (``@daily``) or ``@every <duration>``."""
    text = " ".join(check_string(value, path).split())
    example = "use 5 fields ('*/15 * * * *'), a macro such as '@daily', or '@every 10s'"
    if text.startswith("@"):
        if text.startswith("@every"):
            rest = text[len("@every") :].strip()
            if not rest:
                raise SpecError(path, f"'@every' needs a duration such as '@every 10s'; {example}")
            parse_duration(rest, path)
            return f"@every {rest}"
        if text.lower() in _CRON_MACROS:
            return text.lower()
        raise SpecError(path, f"unknown schedule {text!r}; {example}")
    parts = text.split(" ")
    if len(parts) != 5:
        raise SpecError(
            path, f"a cron expression has 5 fields, got {len(parts)} in {text!r}; {example}"
        )
    for part, (field, low, high, names, question) in zip(parts, _CRON_LAYOUT, strict=True):
        for item in part.split(","):
            problem = _cron_item(item, low, high, names, question)
            if problem:
                raise SpecError(path, f"{field} field {part!r}: {problem}; {example}")
    fields = _expand_cron_fields(text)
    if not fields.any_day and fields.any_weekday and not _day_occurs(fields):
        raise SpecError(
            path,
            f"day of month field {parts[2]!r} never falls in month field {parts[3]!r}, so "
            f"{text!r} would never fire; pick days that exist in those months",
        )
    return text


def _cron_item(
    item: str, low: int, high: int, names: tuple[str, ...] | None, question: bool
) -> str | None:
    match = _CRON_ITEM.fullmatch(item)
    if not match:
        return f"cannot read {item!r}"
    start, end, step = match.groups()
    if step is not None and int(step) < 1:
        return "a step must be at least 1"
    if start in ("*", "?"):
        if start == "?" and not question:
            return "'?' is only allowed for the day of month or day of week"
        return f"cannot read {item!r}" if end is not None else None
    for text in (start, end):
        if text is None:
            continue
        if text.isdigit():
            number = int(text)
        elif names is not None and text.lower() in names:
            number = names.index(text.lower()) + low
        else:
            return f"cannot read {text!r}"
        if not low <= number <= high:
            return f"{number} is outside {low}-{high}"
    if end is not None and _cron_number(start, low, names) > _cron_number(end, low, names):
        return f"the range {item!r} runs backwards"
    return None


def _cron_number(text: str, low: int, names: tuple[str, ...] | None) -> int:
    return int(text) if text.isdigit() else (names or ()).index(text.lower()) + low


class CronFields(NamedTuple):
    """The values each field of a 5-field cron expression allows, each sorted ascending.

    ``weekdays`` run 0 (Sunday) to 6 (7 is folded into 0). ``any_day`` / ``any_weekday`` say
    the day-of-month / day-of-week field is unrestricted (``*`` or ``?``, without a step
    above 1). When both are restricted a day matches if either field matches; otherwise
    both must.
    """

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: tuple[int, ...]
    months: tuple[int, ...]
    weekdays: tuple[int, ...]
    any_day: bool
    any_weekday: bool


def expand_cron(spec: str, path: str = "spec") -> CronFields:
    """The value sets of a cron expression or macro (validated first; errors name ``path``).

    ``N/step`` runs from N to the field's end; ``*`` and ``N/step`` in the day of week end at
    Saturday (6), so 7 means Sunday only when written.

    >>> f = expand_cron("*/20 9-17/4 * jan,jul mon-fri")
    >>> f.minutes, f.hours, f.months, f.weekdays, f.any_day, f.any_weekday
    ((0, 20, 40), (9, 13, 17), (1, 7), (1, 2, 3, 4, 5), True, False)
    >>> expand_cron("@weekly").weekdays
    (0,)
    >>> expand_cron("@every 10s")
    Traceback (most recent call last):
    ...
    headrace.stages.spec.SpecError: spec: '@every 10s' is a period, not calendar fields; ...
    """
    text = check_cron_spec(spec, path)
    if text.startswith("@every "):
        raise SpecError(
            path,
            f"{text!r} is a period, not calendar fields; its ticks are the previous tick plus "
            "CronInput.every seconds",
        )
    return _expand_cron_fields(_CRON_MACROS.get(text, text))


@lru_cache(maxsize=512)
def _expand_cron_fields(text: str) -> CronFields:
    """The value sets of a 5-field expression that :func:`check_cron_spec` already accepted."""
    sets: list[tuple[int, ...]] = []
    stars: list[bool] = []
    for part, (field, low, high, names, _) in zip(text.split(" "), _CRON_LAYOUT, strict=True):
        top = 6 if field == "day of week" else high
        chosen: set[int] = set()
        star = False
        for item in part.split(","):
            match = _CRON_ITEM.fullmatch(item)
            assert match is not None, f"{item!r} was validated"
            start, end, step_text = match.groups()
            step = int(step_text) if step_text is not None else 1
            if start in ("*", "?"):
                first, last = low, top
                star = star or step == 1
            else:
                first = _cron_number(start, low, names)
                if end is not None:
                    last = _cron_number(end, low, names)
                else:
                    last = max(first, top) if step_text is not None else first
            chosen.update(range(first, last + 1, step))
        if field == "day of week" and 7 in chosen:
            chosen.discard(7)
            chosen.add(0)
        sets.append(tuple(sorted(chosen)))
        stars.append(star)
    minutes, hours, days, months, weekdays = sets
    return CronFields(minutes, hours, days, months, weekdays, stars[2], stars[4])


# The most days each month can have (February in a leap year).
_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _day_occurs(fields: CronFields) -> bool:
    """Whether some allowed day of month exists in some allowed month."""
    return any(day <= _MONTH_DAYS[month - 1] for month in fields.months for day in fields.days)
