"""Cron ticks: hand-computed next ticks for every macro and field form, the day-of-month /
day-of-week OR rule, leap days, ``@every``, tick names, and a property against a brute-force
minute scan."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.stages.cron import next_tick, parse_tick_name, tick_name
from headrace.stages.spec import SpecError, expand_cron, load_spec


def at(text: str) -> float:
    """Epoch seconds of a UTC time written 'YYYY-MM-DD HH:MM[:SS[.fff]]'."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def nxt(spec: str, after: str) -> str:
    """The next tick as 'YYYY-MM-DD HH:MM' (asserting it is a whole minute)."""
    t = next_tick(spec, at(after))
    assert t % 60 == 0
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M")


# ---------------------------------------------------------------------------------------------
# Hand-computed ticks (2026-11-21 is a Saturday)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("@hourly", "2026-11-21 07:00"),
        ("@daily", "2026-11-22 00:00"),
        ("@midnight", "2026-11-22 00:00"),
        ("@weekly", "2026-11-22 00:00"),  # the next Sunday
        ("@monthly", "2026-12-01 00:00"),
        ("@yearly", "2027-01-01 00:00"),
        ("@annually", "2027-01-01 00:00"),
        ("@DAILY", "2026-11-22 00:00"),
    ],
)
def test_macros(spec: str, expected: str) -> None:
    assert nxt(spec, "2026-11-21 06:59:30") == expected


def test_macros_roll_over() -> None:
    assert nxt("@weekly", "2026-11-22 00:00") == "2026-11-29 00:00"
    assert nxt("@monthly", "2026-12-15 12:00") == "2027-01-01 00:00"
    assert nxt("@hourly", "2026-12-31 23:00") == "2027-01-01 00:00"
    assert nxt("@yearly", "2027-01-01 00:00") == "2028-01-01 00:00"


def test_strictly_after() -> None:
    assert nxt("0 7 * * *", "2026-11-21 07:00") == "2026-11-22 07:00"
    assert nxt("0 7 * * *", "2026-11-21 06:59:59.999") == "2026-11-21 07:00"
    assert nxt("* * * * *", "2026-11-21 07:00") == "2026-11-21 07:01"
    assert nxt("* * * * *", "2026-11-21 07:00:01") == "2026-11-21 07:01"


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        ("*/15 * * * *", "2026-11-21 10:07", "2026-11-21 10:15"),
        ("*/15 * * * *", "2026-11-21 10:45", "2026-11-21 11:00"),
        ("5/20 * * * *", "2026-11-21 10:46", "2026-11-21 11:05"),  # N/step runs from N
        ("10-20/5 * * * *", "2026-11-21 10:20", "2026-11-21 11:10"),
        ("0 9-17/4 * * *", "2026-11-21 13:00", "2026-11-21 17:00"),
        ("0 9-17/4 * * *", "2026-11-21 17:00", "2026-11-22 09:00"),
        ("0 0 */10 * *", "2026-11-21 00:00", "2026-12-01 00:00"),  # days 1, 11, 21, 31
        ("0 0 */10 * *", "2026-12-21 00:00", "2026-12-31 00:00"),
        ("0 0 1 */5 *", "2026-07-01 00:00", "2026-11-01 00:00"),  # months 1, 6, 11
    ],
)
def test_steps(spec: str, after: str, expected: str) -> None:
    assert nxt(spec, after) == expected


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        # Friday 17:30 is the last tick of the week, so Monday morning is next.
        ("30 9-17 * * mon-fri", "2026-11-20 17:30", "2026-11-23 09:30"),
        ("30 9-17 * * 1-5", "2026-11-20 12:31", "2026-11-20 13:30"),
        ("0 0 1,15 * *", "2026-11-15 00:00", "2026-12-01 00:00"),
        ("0 0 1 jan,JUL *", "2026-07-01 00:00", "2027-01-01 00:00"),
        ("0 0 1 mar-may *", "2026-11-21 00:00", "2027-03-01 00:00"),
        ("0 12 * * SUN", "2026-11-21 00:00", "2026-11-22 12:00"),
        ("0 0 * * 7", "2026-11-21 00:00", "2026-11-22 00:00"),  # 7 is Sunday too
        ("0 0 * * 0", "2026-11-21 00:00", "2026-11-22 00:00"),
        ("0 0 * * fri-7", "2026-11-21 00:00", "2026-11-22 00:00"),  # Fri, Sat, Sun
        ("0 0 * * wed", "2026-11-21 00:00", "2026-11-25 00:00"),
        ("0 0 31 * *", "2026-04-01 00:00", "2026-05-31 00:00"),  # April has no 31st
        ("0 0 30 * *", "2026-01-30 00:00", "2026-03-30 00:00"),  # nor February a 30th
        ("59 23 31 12 *", "2026-12-31 23:59", "2027-12-31 23:59"),
    ],
)
def test_ranges_lists_and_names(spec: str, after: str, expected: str) -> None:
    assert nxt(spec, after) == expected


@pytest.mark.parametrize(
    ("spec", "after", "expected"),
    [
        # Both restricted: the 13th OR any Monday. 2026-12-13 is a Sunday, 12-14 a Monday.
        ("0 0 13 * mon", "2026-12-08 00:00", "2026-12-13 00:00"),
        ("0 0 13 * mon", "2026-12-13 00:00", "2026-12-14 00:00"),
        ("0 0 13 * fri", "2026-11-14 00:00", "2026-11-20 00:00"),
        # '*/2' is a restriction (Sun, Tue, Thu, Sat), so the 1st OR those days: Sunday 11-22.
        ("0 0 1 * */2", "2026-11-21 00:00", "2026-11-22 00:00"),
        # One side unrestricted: both must hold.
        ("0 0 13 * *", "2026-12-08 00:00", "2026-12-13 00:00"),
        ("0 0 13 * ?", "2026-12-08 00:00", "2026-12-13 00:00"),
        ("0 0 * * mon", "2026-12-08 00:00", "2026-12-14 00:00"),
        ("0 0 ? * mon", "2026-12-08 00:00", "2026-12-14 00:00"),
        ("0 0 ? * mon", "2026-12-13 00:00", "2026-12-14 00:00"),
    ],
)
def test_day_of_month_or_day_of_week(spec: str, after: str, expected: str) -> None:
    assert nxt(spec, after) == expected


def test_leap_days() -> None:
    assert nxt("0 0 29 2 *", "2025-01-01 00:00") == "2028-02-29 00:00"
    assert nxt("0 0 29 2 *", "2028-02-29 00:00") == "2032-02-29 00:00"
    # 2100 is not a leap year: eight years between two February 29ths.
    assert nxt("0 0 29 2 *", "2096-02-29 00:00") == "2104-02-29 00:00"
    assert nxt("0 0 29 feb *", "2000-01-01 00:00") == "2000-02-29 00:00"  # 2000 is one
    assert nxt("0 0 28-31 2 *", "2027-02-28 00:00") == "2028-02-28 00:00"


def test_every() -> None:
    t = at("2026-11-21 06:59:30")
    assert next_tick("@every 10s", t) == t + 10
    assert next_tick("@every 1h30m", t) == t + 5400
    assert next_tick("@every 250ms", t + 0.5) == t + 0.75
    assert next_tick("@every   2m", t) == t + 120  # as written, before normalising


def test_whitespace_and_case_as_the_spec_allows() -> None:
    assert nxt("  0   7 * *  SAT ", "2026-11-21 06:00") == "2026-11-21 07:00"


def test_before_the_epoch() -> None:
    assert nxt("0 0 1 1 *", "1969-06-01 00:00") == "1970-01-01 00:00"
    assert next_tick("0 0 1 1 *", -1.0) == 0.0


def test_invalid_specs_raise_spec_errors() -> None:
    with pytest.raises(SpecError, match=r"^spec: a cron expression has 5 fields"):
        next_tick("* * * *", 0)
    with pytest.raises(SpecError, match="unknown schedule"):
        next_tick("@fortnightly", 0)


@pytest.mark.parametrize("spec", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 30,31 feb ?"])
def test_schedules_that_never_fire_are_refused(spec: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(
            {
                "name": "s",
                "input": {"cron": {"name": "tick", "spec": spec}},
                "transform": {"python": "m:f"},
            }
        )
    assert str(info.value).startswith("input.cron.spec: day of month field ")
    assert "would never fire" in str(info.value)
    with pytest.raises(SpecError, match="would never fire"):
        next_tick(spec, 0)


@pytest.mark.parametrize("spec", ["0 0 31 4,5 *", "0 0 30 2 mon", "0 0 29 2 *"])
def test_schedules_that_fire_rarely_are_accepted(spec: str) -> None:
    assert next_tick(spec, 0) > 0


def test_far_schedules_give_the_far_tick() -> None:
    after = at("2025-01-01 00:00")
    assert next_tick("0 0 29 2 *", after) == at("2028-02-29 00:00")
    # Day of month and day of week both restricted: either qualifies (every December Sunday
    # and 31 December), so the first December Sunday of 2025 comes first.
    assert next_tick("59 23 31 12 sun", after) == at("2025-12-07 23:59")


def test_expand_cron() -> None:
    fields = expand_cron("0,30 */8 1-7 * 1-5/2")
    assert fields.minutes == (0, 30)
    assert fields.hours == (0, 8, 16)
    assert fields.days == (1, 2, 3, 4, 5, 6, 7)
    assert fields.months == tuple(range(1, 13))
    assert fields.weekdays == (1, 3, 5)
    assert (fields.any_day, fields.any_weekday) == (False, False)
    assert expand_cron("0 0 * * 5-7").weekdays == (0, 5, 6)
    assert expand_cron("0 0 * * 7/2").weekdays == (0,)
    assert expand_cron("0 0 * * */1").any_weekday is True
    assert expand_cron("@yearly") == expand_cron("0 0 1 1 *")
    with pytest.raises(SpecError, match=r"^input\.cron\.spec: '@every 5s' is a period"):
        expand_cron("@every 5s", "input.cron.spec")


# ---------------------------------------------------------------------------------------------
# Tick names


def test_tick_names() -> None:
    t = at("2026-11-21 07:00")
    assert tick_name(t) == "2026-11-21T07:00:00Z"
    assert tick_name(t + 59.999) == "2026-11-21T07:00:59Z"  # whole seconds, rounded down
    assert tick_name(0) == "1970-01-01T00:00:00Z"
    assert tick_name(-1) == "1969-12-31T23:59:59Z"
    assert parse_tick_name("2026-11-21T07:00:00Z") == t
    assert parse_tick_name("2026-11-21T07:00:00.25Z") == t + 0.25
    for s in (0.0, t, at("2028-02-29 23:59:59"), at("2104-02-29 00:00")):
        assert parse_tick_name(tick_name(s)) == s


def test_tick_names_sort_as_times() -> None:
    times = [at("2026-11-21 07:00"), at("2026-11-21 07:00:01"), at("2027-01-01 00:00"), 0.0]
    assert sorted(times) == sorted(times, key=tick_name)
    assert sorted(map(tick_name, times)) == [tick_name(t) for t in sorted(times)]


@pytest.mark.parametrize(
    "name",
    [
        "2026-11-21 07:00:00",
        "2026-11-21T07:00:00",
        "2026-11-21T07:00Z",
        "2026-11-21T07:00:00+00:00",
        "2026-02-30T00:00:00Z",
        "2026-11-21T24:00:00Z",
        "tick",
    ],
)
def test_parse_tick_name_refuses(name: str) -> None:
    with pytest.raises(ValueError, match=r"^not a tick name: .*expected UTC time like"):
        parse_tick_name(name)


# ---------------------------------------------------------------------------------------------
# Property: next_tick equals a brute-force scan. The oracle builds each field's text and value
# set together, so it shares no parsing with spec.py.


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]
    star: bool  # '*' or '?' without a step above 1


MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DAYS = "sun mon tue wed thu fri sat".split()


def field_items(low: int, high: int, names: list[str] | None, question: bool) -> st.SearchStrategy:
    # The open end of '*' and 'N/step' is Saturday (6) for the day of week.
    top = 6 if high == 7 else high

    def word(n: int, draw_name: bool) -> str:
        if names and draw_name and n - low < len(names):
            return names[n - low].upper() if n % 2 else names[n - low]
        return str(n)

    @st.composite
    def item(draw: st.DrawFn) -> tuple[str, set[int], bool]:
        kind = draw(st.sampled_from(["star", "number", "range", "start_step"]))
        step = draw(st.sampled_from([1, 1, 2, 3, 5, 7, 15]))
        named = draw(st.booleans())
        if kind == "star":
            symbol = "?" if question and draw(st.booleans()) else "*"
            text = symbol if step == 1 else f"{symbol}/{step}"
            return text, set(range(low, top + 1, step)), step == 1
        a = draw(st.integers(low, high))
        if kind == "number":
            return word(a, named), {a}, False
        if kind == "range":
            b = draw(st.integers(a, high))
            suffix = "" if step == 1 else f"/{step}"
            return f"{word(a, named)}-{word(b, named)}{suffix}", set(range(a, b + 1, step)), False
        return f"{a}/{step}", set(range(a, max(a, top) + 1, step)), False

    @st.composite
    def field(draw: st.DrawFn) -> Field:
        items = draw(st.lists(item(), min_size=1, max_size=3))
        values = set().union(*(v for _, v, _ in items))
        if high == 7 and 7 in values:
            values = (values - {7}) | {0}
        star = any(s for _, _, s in items)
        return Field(",".join(t for t, _, _ in items), frozenset(values), star)

    return field()


def schedules() -> st.SearchStrategy[tuple[Field, ...]]:
    return st.tuples(
        field_items(0, 59, None, False),
        field_items(0, 23, None, False),
        field_items(1, 31, None, True),
        field_items(1, 12, MONTHS, False),
        field_items(0, 7, DAYS, True),
    )


def day_matches(fields: tuple[Field, ...], year: int, month: int, day: int) -> bool:
    _, _, dom, months, dow = fields
    if month not in months.values:
        return False
    weekday = (calendar.weekday(year, month, day) + 1) % 7
    in_dom, in_dow = day in dom.values, weekday in dow.values
    if not dom.star and not dow.star:
        return in_dom or in_dow
    return in_dom and in_dow


def date_matches(fields: tuple[Field, ...], day_number: int) -> bool:
    """Whether the day ``day_number`` days after 1970-01-01 matches."""
    date = datetime.fromtimestamp(day_number * 86400, UTC)
    return day_matches(fields, date.year, date.month, date.day)


def fires_at(fields: tuple[Field, ...], minute: int) -> bool:
    """Whether the schedule fires at ``minute`` minutes after the epoch."""
    return (
        minute % 60 in fields[0].values
        and minute % 1440 // 60 in fields[1].values
        and date_matches(fields, minute // 1440)
    )


def can_fire(fields: tuple[Field, ...]) -> bool:
    # Every (month, day) pair of a leap year: does some day ever match?
    return any(
        day_matches(fields, 2028, month, day)
        for month in range(1, 13)
        for day in range(1, calendar.monthrange(2028, month)[1] + 1)
    )


AFTER = st.integers(int(at("1990-01-01 00:00")), int(at("2110-01-01 00:00"))).map(
    lambda s: s + 0.5 if s % 3 == 0 else float(s)
)


@settings(max_examples=200, deadline=None)
@given(schedules(), AFTER)
def test_next_tick_matches_a_minute_scan(fields: tuple[Field, ...], after: float) -> None:
    spec = " ".join(f.text for f in fields)
    if not can_fire(fields):
        with pytest.raises(SpecError, match="would never fire"):
            next_tick(spec, after)
        return
    got = next_tick(spec, after)
    window = 3 * 1440  # minutes
    first = int(after // 60) + 1
    days = {d: date_matches(fields, d) for d in range(first // 1440, (first + window) // 1440 + 1)}
    expected = next(
        (
            m * 60
            for m in range(first, first + window)
            if m % 60 in fields[0].values and m % 1440 // 60 in fields[1].values and days[m // 1440]
        ),
        None,
    )
    if expected is None:
        assert got >= (first + window) * 60, spec
        assert fires_at(fields, int(got // 60)), spec
    else:
        assert got == expected, spec


@settings(max_examples=200, deadline=None)
@given(schedules(), AFTER)
def test_next_tick_matches_a_day_then_minute_scan(fields: tuple[Field, ...], after: float) -> None:
    # Sparse schedules: scan days (up to nine years: the longest wait is a leap day's eight),
    # then every minute of each day whose date matches.
    spec = " ".join(f.text for f in fields)
    if not can_fire(fields):
        return
    got = next_tick(spec, after)
    first = int(after // 60) + 1
    day_start = first - first % 1440
    expected = None
    for d in range(9 * 366):
        start = day_start + d * 1440
        if not date_matches(fields, start // 1440):
            continue
        minutes = range(max(start, first), start + 1440)
        expected = next((m * 60 for m in minutes if fires_at(fields, m)), None)
        if expected is not None:
            break
    assert got == expected, spec
