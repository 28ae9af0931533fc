"""When a cron input ticks, and what a tick's file is called.

:func:`next_tick` gives the first tick strictly after a time, for a schedule as
:func:`~headrace.stages.spec.load_spec` normalises it: a 5-field cron expression (minute, hour,
day of month, month, day of week), a macro such as ``@daily``, or ``@every <duration>``. Times
are epoch seconds and calendars are UTC. The expression's value sets come from
:func:`~headrace.stages.spec.expand_cron`, so the spec and the scheduler read it one way.

Days follow the usual cron rule: when both the day of month and the day of week are restricted
(neither is ``*`` or ``?``), a day matches if either matches; otherwise both must. A stepped
star such as ``*/2`` counts as restricted, as in robfig/cron v3 (which Pachyderm uses); Vixie
cron would count it as ``*``. ``N/step`` runs from N to the field's end. The search
skips whole months, days and hours that cannot match, so a yearly schedule costs a handful of
steps; a schedule whose days never occur (``0 0 30 2 *``) is refused by the spec.

Why not a library: croniter 7.0.0 was tried in its place and the property tests in
``tests/stages/test_cron.py`` (a brute-force minute scan) failed at once: it reads the range
``0-0`` as ``*`` (``* 0-0 * * *`` after 00:59 gives 01:00) and refuses ``?/2``. This module is
small and checked against that scan on random expressions; replace it only with a library
that passes the same tests.

:func:`tick_name` names a tick's file (``2026-11-21T07:00:00Z``: RFC 3339, UTC, whole seconds,
so names sort as times do); :func:`parse_tick_name` reads one back.
"""

from __future__ import annotations

import calendar
import math
import re
from bisect import bisect_left
from datetime import UTC, datetime

from headrace.stages.spec import CronFields, CronInput, expand_cron

__all__ = ["next_tick", "parse_tick_name", "tick_name"]


def next_tick(spec: str, after: float) -> float:
    """The first tick of schedule ``spec`` strictly after ``after`` (epoch seconds, UTC).

    Cron expressions and macros tick on whole minutes; ``@every <duration>`` ticks at
    ``after`` plus the period.

    >>> t = parse_tick_name("2026-11-21T06:59:30Z")
    >>> tick_name(next_tick("0 7 * * *", t))
    '2026-11-21T07:00:00Z'
    >>> tick_name(next_tick("@monthly", t))
    '2026-12-01T00:00:00Z'
    >>> next_tick("@every 1m30s", t) - t
    90.0
    """
    # The period of '@every ...' (normalised as the spec does); None for calendar schedules.
    every = CronInput("", " ".join(spec.split())).every
    if every is not None:
        return after + every
    fields = expand_cron(spec)
    # Whole minutes from the epoch: the first candidate is the minute after ``after``.
    minute = math.floor(after / 60) + 1
    start = datetime.fromtimestamp(minute * 60, UTC)
    year, month, day, hour, minute_of_hour = _search(
        fields, start.year, start.month, start.day, start.hour, start.minute
    )
    return float(calendar.timegm((year, month, day, hour, minute_of_hour, 0)))


def _search(
    f: CronFields, year: int, month: int, day: int, hour: int, minute: int
) -> tuple[int, int, int, int, int]:
    """The first (year, month, day, hour, minute) at or after the given one that matches."""
    months, days, hours, minutes = f.months, f.days, f.hours, f.minutes
    weekdays = frozenset(f.weekdays)
    by_day_only = not f.any_day and f.any_weekday  # jump straight to the next allowed day
    either = not f.any_day and not f.any_weekday  # the day of month OR the day of week
    day_set = frozenset(days)
    # The spec refuses schedules whose days never occur, so a match comes within 8 years
    # (the longest gap between two February 29ths); the bound only guards against a bug.
    for _ in range(100_000):
        if month not in months:
            i = bisect_left(months, month)
            if i == len(months):
                year, month = year + 1, months[0]
            else:
                month = months[i]
            day, hour, minute = 1, 0, 0
            continue
        length = calendar.monthrange(year, month)[1]
        if by_day_only and day not in day_set:
            i = bisect_left(days, day)
            day, hour, minute = (days[i] if i < len(days) else 32), 0, 0
        if day > length:
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            day, hour, minute = 1, 0, 0
            continue
        weekday = (calendar.weekday(year, month, day) + 1) % 7  # 0 = Sunday
        if either:
            day_ok = day in day_set or weekday in weekdays
        else:
            day_ok = day in day_set and weekday in weekdays
        if not day_ok:
            day, hour, minute = day + 1, 0, 0
            continue
        i = bisect_left(hours, hour)
        if i == len(hours):
            day, hour, minute = day + 1, 0, 0
            continue
        if hours[i] != hour:
            hour, minute = hours[i], 0
        i = bisect_left(minutes, minute)
        if i == len(minutes):
            hour, minute = hour + 1, 0
            if hour == 24:
                day, hour = day + 1, 0
            continue
        return year, month, day, hour, minutes[i]
    raise RuntimeError(f"no cron tick found for {f}; this is a bug in headrace")


_TICK_NAME = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,9})?Z")


def tick_name(t: float) -> str:
    """The file name of the tick at ``t``: RFC 3339 in UTC, to the whole second (rounded down).

    >>> tick_name(1795244400.0)
    '2026-11-21T07:00:00Z'
    """
    moment = datetime.fromtimestamp(math.floor(t), UTC)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}Z"
    )


def parse_tick_name(name: str) -> float:
    """The epoch seconds of a tick name made by :func:`tick_name` (a fraction is allowed).

    >>> parse_tick_name("2026-11-21T07:00:00Z")
    1795244400.0
    >>> parse_tick_name("2026-11-21 07:00")
    Traceback (most recent call last):
    ...
    ValueError: not a tick name: '2026-11-21 07:00'; expected UTC time like '2026-11-21T07:00:00Z'
    """
    match = _TICK_NAME.fullmatch(name)
    problem = None
    if match is not None:
        year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
        try:
            datetime(year, month, day, hour, minute, second)
        except ValueError as err:
            problem = str(err)
        else:
            whole = calendar.timegm((year, month, day, hour, minute, second))
            return whole + float(match.group(7) or 0.0)
    why = f" ({problem})" if problem else ""
    raise ValueError(
        f"not a tick name: {name!r}{why}; expected UTC time like '2026-11-21T07:00:00Z'"
    )
