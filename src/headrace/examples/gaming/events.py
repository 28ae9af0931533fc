"""Deterministic game events for the mobile-gaming examples (generated here, no download).

:func:`generate_events` plays a small game: ``num_users`` players in ``num_teams`` teams score
points during ``duration_minutes`` of event time. Human players play in sessions (bursts of plays
10 s to 2.5 min apart, then a break); the first ``robots`` players are robots that play all the
time for high scores, which :mod:`~headrace.examples.gaming.game_stats` should flag as spammy.

Every event has two times: its *event time* (``timestamp_ms``, when it was played) and its
*arrival time* (``arrival_ms``, when it reaches the pipeline). Most events arrive up to 20 s after
they were played, so they arrive out of order; a fraction ``late_fraction`` arrives 10 to 90
minutes after, which makes them late data for a streaming pipeline. Events come back in arrival
order; the same arguments give the same events.

The text form is one CSV line per event, ``user,team,score,timestamp_ms,readable_ts``::

    user3_BasaltHeron,BasaltHeron,12,1714521623456,2024-05-01 00:00:23.456

Ways to feed a pipeline: :func:`write_events` (a file of lines, in arrival order),
:func:`timestamped_events` (``TimestampedValue`` lines for ``beam.Create``),
:func:`to_test_stream` (a ``TestStream`` replaying arrivals on a simulated clock, see
:func:`replay_schedule`) and :class:`EventReplaySource` (an unbounded source replaying arrivals on
the real clock, sped up). :class:`ParseGameEventFn` turns lines back into dicts.

>>> events = generate_events(num_users=4, num_teams=2, duration_minutes=30)
>>> events == generate_events(num_users=4, num_teams=2, duration_minutes=30)
True
>>> print(events[0].to_csv())
user0_AmberOtter,AmberOtter,76,1714521628537,2024-05-01 00:00:28.537
>>> sorted({e.team for e in events})
['AmberOtter', 'BasaltHeron']
"""

from __future__ import annotations

import datetime as _dt
import logging
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from headrace import beam
from headrace.beam.testing.test_stream import TestStream
from headrace.model.sources import MAX_US, UnboundedReader, UnboundedSource, timestamped_us

__all__ = [
    "START_MS",
    "EventReplaySource",
    "GameEvent",
    "ParseGameEventFn",
    "generate_events",
    "parse_event",
    "readable_time",
    "replay_schedule",
    "team_names",
    "timestamped_events",
    "to_test_stream",
    "write_events",
]

START_MS = 1_714_521_600_000
"""Default start of the generated game: 2024-05-01 00:00:00 UTC, in milliseconds."""

_TEAM_WORDS = (
    "AmberOtter",
    "BasaltHeron",
    "CobaltLynx",
    "DuneBeetle",
    "EmberFox",
    "FjordSeal",
    "GarnetMoth",
    "HazelWren",
)

_log = logging.getLogger(__name__)


class GameEvent(NamedTuple):
    """One play: who, in which team, how many points, when played and when it arrived."""

    user: str
    team: str
    score: int
    timestamp_ms: int
    arrival_ms: int

    def to_csv(self) -> str:
        """The event as a CSV line (without the arrival time, which only a replay knows)."""
        return (
            f"{self.user},{self.team},{self.score},{self.timestamp_ms},"
            f"{readable_time(self.timestamp_ms)}"
        )


def readable_time(ms: float) -> str:
    """Milliseconds since the epoch as ``YYYY-MM-DD HH:MM:SS.mmm`` (UTC).

    >>> readable_time(START_MS + 1500)
    '2024-05-01 00:00:01.500'
    """
    moment = _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def team_names(n: int) -> list[str]:
    """``n`` distinct team names.

    >>> team_names(3)
    ['AmberOtter', 'BasaltHeron', 'CobaltLynx']
    """
    return [
        _TEAM_WORDS[i % len(_TEAM_WORDS)] + (str(i // len(_TEAM_WORDS)) if i >= 8 else "")
        for i in range(n)
    ]


def generate_events(
    num_users: int = 20,
    num_teams: int = 4,
    duration_minutes: int = 120,
    *,
    robots: int = 1,
    late_fraction: float = 0.05,
    seed: int = 1,
    start_ms: int = START_MS,
) -> list[GameEvent]:
    """The events of one generated game, in arrival order (see the module docstring).

    >>> events = generate_events(num_users=3, num_teams=1, duration_minutes=10, late_fraction=0)
    >>> all(0 <= e.arrival_ms - e.timestamp_ms <= 20_000 for e in events)
    True
    >>> max(e.score for e in events if e.user.startswith("user0_")) >= 60  # the robot
    True
    """
    if num_users < 1 or num_teams < 1 or duration_minutes < 1:
        raise ValueError(
            "generate_events needs num_users, num_teams and duration_minutes of at least 1, got "
            f"{num_users}, {num_teams}, {duration_minutes}"
        )
    if not 0.0 <= late_fraction <= 1.0:
        raise ValueError(f"late_fraction must be between 0 and 1, got {late_fraction!r}")
    rng = random.Random(seed)
    teams = team_names(num_teams)
    duration_ms = duration_minutes * 60_000
    plays: list[tuple[str, str, int, int]] = []
    for i in range(num_users):
        team = teams[i % num_teams]
        user = f"user{i}_{team}"
        if i < robots:
            t = rng.randint(0, 30_000)
            while t < duration_ms:
                plays.append((user, team, rng.randint(60, 100), t))
                t += rng.randint(20_000, 60_000)
            continue
        for _ in range(rng.randint(1, 4)):
            t = rng.randrange(duration_ms)
            for _ in range(rng.randint(2, 10)):
                if t >= duration_ms:
                    break
                plays.append((user, team, rng.randint(0, 20), t))
                t += rng.randint(10_000, 150_000)
    events = []
    for user, team, score, t in plays:
        if rng.random() < late_fraction:
            delay = rng.randint(10 * 60_000, 90 * 60_000)
        else:
            delay = rng.randint(0, 20_000)
        events.append(GameEvent(user, team, score, start_ms + t, start_ms + t + delay))
    events.sort(key=lambda e: (e.arrival_ms, e.user, e.timestamp_ms))
    return events


def write_events(path: str | Path, events: Iterable[GameEvent]) -> Path:
    """Write ``events`` as CSV lines, in the order given; return the path.

    >>> import os, tempfile
    >>> p = write_events(os.path.join(tempfile.mkdtemp(), "ev.csv"), generate_events(2, 1, 5))
    >>> p.read_text().splitlines()[0].count(",")
    4
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        f.writelines(e.to_csv() + "\n" for e in events)
    return path


def timestamped_events(events: Iterable[GameEvent]) -> list[beam.TimestampedValue]:
    """Each event's CSV line stamped with its event time, for ``beam.Create``.

    >>> timestamped_events(generate_events(1, 1, 1))[0].timestamp.micros % 1000
    0
    """
    return [timestamped_us(e.to_csv(), e.timestamp_ms * 1000) for e in events]


# -- replaying arrivals ------------------------------------------------------------------------


def replay_schedule(
    events: Sequence[GameEvent], step_s: int = 60, watermark_lag_s: int = 60
) -> list[tuple[list[GameEvent], int]]:
    """Cut arrivals into steps of ``step_s`` seconds of processing time, with their watermarks.

    Returns ``(events arriving in the step, watermark in ms after the step)`` for every step from
    the first arrival (floored to ``step_s``) to the last. The watermark after the step that ends
    at ``T`` is ``T - watermark_lag_s`` plus half a second, so it never sits on a window boundary
    (whole minutes): whether a window is complete is never a tie. Events of a step are processed
    under the watermark of the step before; an event played more than about ``watermark_lag_s``
    before it arrives can therefore be late.

    >>> events = generate_events(2, 1, 5, late_fraction=0)
    >>> steps = replay_schedule(events, step_s=60, watermark_lag_s=30)
    >>> sum(len(batch) for batch, _ in steps) == len(events)
    True
    >>> steps[0][1] - (events[0].arrival_ms // 60_000 * 60_000)
    30500
    """
    if step_s <= 0 or watermark_lag_s < 0:
        raise ValueError(
            f"replay_schedule needs step_s > 0 and watermark_lag_s >= 0, got {step_s}, "
            f"{watermark_lag_s}"
        )
    if not events:
        return []
    step_ms = step_s * 1000
    start = min(e.arrival_ms for e in events) // step_ms * step_ms
    batches: dict[int, list[GameEvent]] = {}
    for e in events:
        batches.setdefault((e.arrival_ms - start) // step_ms, []).append(e)
    last = max(batches)
    return [
        (batches.get(k, []), start + (k + 1) * step_ms - watermark_lag_s * 1000 + 500)
        for k in range(last + 1)
    ]


def to_test_stream(
    events: Sequence[GameEvent], step_s: int = 60, watermark_lag_s: int = 60
) -> TestStream:
    """A TestStream replaying ``events`` by arrival, in steps (see :func:`replay_schedule`).

    Each step adds the lines that arrived in it (stamped with their event times), advances the
    processing-time clock by ``step_s`` and then the watermark; the stream ends with the
    watermark at infinity.

    >>> stream = to_test_stream(generate_events(2, 1, 3), step_s=60)
    >>> [type(e).__name__ for e in stream.events()][:3]
    ['ElementEvent', 'ProcessingTimeEvent', 'WatermarkEvent']
    """
    stream = TestStream()
    for batch, watermark_ms in replay_schedule(events, step_s, watermark_lag_s):
        if batch:
            stream.add_elements(timestamped_events(batch))
        stream.advance_processing_time(step_s)
        stream.advance_watermark_to(beam.window.Timestamp(micros=watermark_ms * 1000))
    return stream.advance_watermark_to_infinity()


class EventReplaySource(UnboundedSource):
    """Replays ``events`` by arrival time on the real clock, ``speedup`` times faster.

    An unbounded source (read with ``ReadUnbounded``, in a streaming run): elements are the CSV
    lines stamped with their event times; the watermark is the replayed arrival time minus
    ``watermark_lag_s`` (so events that arrive much later than they were played are late, as from
    a real game). The checkpoint is the number of events emitted; a reader restored from it
    resumes the replay at the next event. It is done after the last event.

    >>> reader = EventReplaySource(generate_events(2, 1, 2), speedup=1e9).create_reader()
    >>> lines = reader.poll(1000, timeout_s=0.1)
    >>> len(lines) == reader.checkpoint(), reader.is_done(), reader.watermark_us() == MAX_US
    (True, True, True)
    """

    def __init__(
        self, events: Sequence[GameEvent], speedup: float = 60.0, watermark_lag_s: float = 60.0
    ) -> None:
        if speedup <= 0:
            raise ValueError(f"EventReplaySource needs a positive speedup, got {speedup!r}")
        self.events = list(events)
        self.speedup = float(speedup)
        self.watermark_lag_s = float(watermark_lag_s)

    def create_reader(self, checkpoint: Any = None) -> _ReplayReader:
        return _ReplayReader(self, int(checkpoint or 0))

    def display_data(self) -> dict[str, Any]:
        return {"events": len(self.events), "speedup": self.speedup}


class _ReplayReader(UnboundedReader):
    def __init__(self, source: EventReplaySource, position: int) -> None:
        self._events = source.events
        self._speedup = source.speedup
        self._lag_ms = source.watermark_lag_s * 1000
        self._next = position
        first = self._events[position].arrival_ms if position < len(self._events) else 0
        self._origin_ms = first
        self._started = time.monotonic()
        self._watermark_us = -(2**63)

    def _game_now_ms(self) -> float:
        return self._origin_ms + (time.monotonic() - self._started) * 1000 * self._speedup

    def poll(self, max_elements: int, timeout_s: float) -> list[Any]:
        deadline = time.monotonic() + timeout_s
        events = self._events
        while True:
            now = self._game_now_ms()
            out: list[Any] = []
            while self._next < len(events) and len(out) < max_elements:
                e = events[self._next]
                if e.arrival_ms > now:
                    break
                out.append(timestamped_us(e.to_csv(), e.timestamp_ms * 1000))
                self._next += 1
            mark = int((now - self._lag_ms) * 1000)
            self._watermark_us = max(self._watermark_us, mark)
            if out or self.is_done():
                return out
            wait = min(
                deadline - time.monotonic(),
                (events[self._next].arrival_ms - now) / 1000 / self._speedup,
            )
            if wait <= 0:
                return out
            time.sleep(wait)

    def watermark_us(self) -> int:
        return MAX_US if self.is_done() else self._watermark_us

    def checkpoint(self) -> int:
        return self._next

    def is_done(self) -> bool:
        return self._next >= len(self._events)


# -- parsing ------------------------------------------------------------------------------------


def parse_event(line: str | bytes) -> dict[str, Any]:
    """A CSV event line as ``{'user', 'team', 'score', 'timestamp'}`` (timestamp in seconds).

    Raises ValueError for a line that is not an event.

    >>> parse_event("user1_AmberOtter,AmberOtter,7,1714521600250,2024-05-01 00:00:00.250")
    {'user': 'user1_AmberOtter', 'team': 'AmberOtter', 'score': 7, 'timestamp': 1714521600.25}
    """
    if isinstance(line, bytes):
        line = line.decode("utf-8")
    fields = line.split(",")
    if len(fields) < 4 or not fields[0] or not fields[1]:
        raise ValueError(f"not a game event (user,team,score,timestamp_ms,...): {line!r}")
    return {
        "user": fields[0],
        "team": fields[1],
        "score": int(fields[2]),
        "timestamp": int(fields[3]) / 1000.0,
    }


class ParseGameEventFn(beam.DoFn):
    """Parse CSV event lines into dicts; count and log lines that do not parse, and skip them.

    >>> from headrace.beam.testing.util import assert_that, equal_to
    >>> with beam.Pipeline() as p:
    ...     users = (p | beam.Create(["u1,t1,5,1000,x", "garbage"])
    ...                | beam.ParDo(ParseGameEventFn()) | beam.Map(lambda e: e["user"]))
    ...     assert_that(users, equal_to(["u1"]))
    """

    def __init__(self) -> None:
        self.num_parse_errors = beam.metrics.Metrics.counter(type(self), "num_parse_errors")

    def process(self, element: str | bytes) -> Iterator[dict[str, Any]]:
        try:
            yield parse_event(element)
        except ValueError:
            self.num_parse_errors.inc()
            _log.warning("skipping a line that is not a game event: %r", element)
