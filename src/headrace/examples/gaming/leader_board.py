"""Leader board: live team and user scores over an endless stream of game events (streaming).

The third mobile-gaming pipeline answers two questions while the game goes on:

* **Team scores per window of event time** (``--team_window_duration`` minutes, an hour by
  default). Waiting for the watermark to pass the end of a window gives a complete result, but
  late; so the window also fires *early* panes, ``--early_firing`` minutes of processing time
  after the first event of the pane, and *late* panes, one for each event that arrives after the
  watermark passed the window but within the allowed lateness (``--allowed_lateness`` minutes).
  Panes accumulate: each one holds the window's whole total so far, so a reader simply keeps the
  last one. Events later than the allowed lateness are dropped (and counted in the
  ``droppedDueToLateness`` metric).
* **User scores since the game began**: the global window with a running total that fires
  every ``--user_firing`` minutes of processing time (``Repeatedly(AfterProcessingTime)``,
  accumulating).

The events come from :mod:`~headrace.examples.gaming.events`: either replayed by a ``TestStream``
on a simulated clock (``--replay test_stream``, the default: instant and deterministic) or by an
unbounded source on the real clock, ``--speedup`` times faster than the game
(``--replay realtime``); in both, the watermark trails the arrivals by ``--watermark_lag``
seconds. Any other unbounded source of event lines works the same way: apply
:class:`ParseAndStamp`, then :class:`CalculateTeamScores` and :class:`CalculateUserScores`.

Output: ``PREFIX_teams-*.txt`` (``team: NAME, total_score: N, window_start: ..., timing: EARLY,
pane: 0``) and ``PREFIX_users-*.txt`` (``user: NAME, total_score: N, pane: 0``).

>>> from headrace.beam.testing.test_stream import TestStream
>>> from headrace.beam.testing.util import assert_that, equal_to
>>> stream = (TestStream()
...     .add_elements(["a,Red,5,1000,x", "b,Red,2,2000,x"], event_timestamp=1)
...     .advance_processing_time(301)         # 5 minutes later: an EARLY pane
...     .add_elements(["a,Red,4,3000,x"], event_timestamp=3)
...     .advance_watermark_to(3601)           # the first hour is complete: ON_TIME
...     .add_elements(["c,Red,1,9000,x"], event_timestamp=9)  # late, but allowed: LATE
...     .advance_watermark_to_infinity())
>>> with beam.Pipeline() as p:
...     events = p | stream | ParseAndStamp()
...     panes = events | CalculateTeamScores() | beam.ParDo(TeamScorePane())
...     assert_that(panes, equal_to([
...         ("Red", 7, 0.0, "EARLY", 0), ("Red", 11, 0.0, "ON_TIME", 1),
...         ("Red", 12, 0.0, "LATE", 2)]))
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from headrace import beam
from headrace.beam.options.pipeline_options import PipelineOptions
from headrace.beam.transforms.trigger import (
    AccumulationMode,
    AfterCount,
    AfterProcessingTime,
    AfterWatermark,
    Repeatedly,
)
from headrace.examples.gaming.events import (
    EventReplaySource,
    ParseGameEventFn,
    generate_events,
    readable_time,
    to_test_stream,
)
from headrace.examples.gaming.user_score import ExtractAndSumScore
from headrace.model.transforms.unbounded import ReadUnbounded

__all__ = [
    "CalculateTeamScores",
    "CalculateUserScores",
    "ParseAndStamp",
    "TeamScorePane",
    "UserScorePane",
    "format_team_pane",
    "format_user_pane",
    "main",
    "run",
]


class ParseAndStamp(beam.PTransform):
    """Event lines in, parsed events stamped with the time they were played out.

    >>> from headrace.beam.testing.util import assert_that, equal_to
    >>> with beam.Pipeline() as p:
    ...     stamps = (p | beam.Create(["u,t,1,1500,x"]) | ParseAndStamp()
    ...               | beam.Map(lambda e, ts=beam.DoFn.TimestampParam: float(ts)))
    ...     assert_that(stamps, equal_to([1.5]))
    """

    def expand(self, lines: beam.PCollection) -> beam.PCollection:
        return (
            lines
            | "ParseGameEvent" >> beam.ParDo(ParseGameEventFn())
            | "AddEventTimestamps"
            >> beam.Map(lambda e: beam.window.TimestampedValue(e, e["timestamp"]))
        )


class CalculateTeamScores(beam.PTransform):
    """``(team, total)`` per fixed window, with early, on-time and late accumulating panes.

    ``team_window_duration`` and ``allowed_lateness`` are minutes of event time;
    ``early_firing_s`` is seconds of processing time after the first element of a pane.
    See the module docstring for a run with every kind of pane.

    >>> from headrace.beam.testing.test_stream import TestStream
    >>> from headrace.beam.testing.util import assert_that, equal_to
    >>> stream = TestStream().add_elements(["u,Red,3,0,x"]).advance_watermark_to_infinity()
    >>> with beam.Pipeline() as p:
    ...     totals = p | stream | ParseAndStamp() | CalculateTeamScores()
    ...     assert_that(totals, equal_to([("Red", 3)]))
    """

    def __init__(
        self,
        team_window_duration: float = 60,
        allowed_lateness: float = 120,
        early_firing_s: float = 300,
    ) -> None:
        super().__init__()
        self.team_window_duration = team_window_duration
        self.allowed_lateness = allowed_lateness
        self.early_firing_s = early_firing_s

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        return (
            events
            | "LeaderboardTeamFixedWindows"
            >> beam.WindowInto(
                beam.window.FixedWindows(self.team_window_duration * 60),
                trigger=AfterWatermark(
                    early=AfterProcessingTime(self.early_firing_s), late=AfterCount(1)
                ),
                accumulation_mode=AccumulationMode.ACCUMULATING,
                allowed_lateness=self.allowed_lateness * 60,
            )
            | "ExtractAndSumScore" >> ExtractAndSumScore("team")
        )


class CalculateUserScores(beam.PTransform):
    """``(user, total so far)`` in the global window, every ``firing_s`` s of processing time.

    >>> from headrace.beam.testing.test_stream import TestStream
    >>> from headrace.beam.testing.util import assert_that, equal_to
    >>> stream = (TestStream().add_elements(["u,t,2,0,x"]).advance_processing_time(600)
    ...           .add_elements(["u,t,3,0,x"]).advance_processing_time(600)
    ...           .advance_watermark_to_infinity())
    >>> with beam.Pipeline() as p:
    ...     totals = p | stream | ParseAndStamp() | CalculateUserScores(firing_s=600)
    ...     assert_that(totals, equal_to([("u", 2), ("u", 5)]))
    """

    def __init__(self, allowed_lateness: float = 120, firing_s: float = 600) -> None:
        super().__init__()
        self.allowed_lateness = allowed_lateness
        self.firing_s = firing_s

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        return (
            events
            | "LeaderboardUserGlobalWindows"
            >> beam.WindowInto(
                beam.window.GlobalWindows(),
                trigger=Repeatedly(AfterProcessingTime(self.firing_s)),
                accumulation_mode=AccumulationMode.ACCUMULATING,
                allowed_lateness=self.allowed_lateness * 60,
            )
            | "ExtractAndSumScore" >> ExtractAndSumScore("user")
        )


class TeamScorePane(beam.DoFn):
    """``(team, total)`` as ``(team, total, window start in seconds, timing, pane index)``."""

    def process(
        self,
        team_score: tuple[str, Any],
        window: Any = beam.DoFn.WindowParam,
        pane: Any = beam.DoFn.PaneInfoParam,
    ) -> Iterator[tuple[str, Any, float, str, int]]:
        team, total = team_score
        yield (team, total, float(window.start), pane.timing.name, pane.index)


class UserScorePane(beam.DoFn):
    """``(user, total)`` as ``(user, total, pane index)``."""

    def process(
        self, user_score: tuple[str, Any], pane: Any = beam.DoFn.PaneInfoParam
    ) -> Iterator[tuple[str, Any, int]]:
        user, total = user_score
        yield (user, total, pane.index)


def format_team_pane(team: str, total: Any, start_s: float, timing: str, index: int) -> str:
    """The output line of one team pane.

    >>> format_team_pane("Red", 12, 1714521600.0, "LATE", 2)
    'team: Red, total_score: 12, window_start: 2024-05-01 00:00:00.000, timing: LATE, pane: 2'
    """
    start = readable_time(start_s * 1000)
    return (
        f"team: {team}, total_score: {total}, window_start: {start}, timing: {timing}, "
        f"pane: {index}"
    )


def format_user_pane(user: str, total: Any, index: int) -> str:
    """The output line of one user pane.

    >>> format_user_pane("u1", 30, 0)
    'user: u1, total_score: 30, pane: 0'
    """
    return f"user: {user}, total_score: {total}, pane: {index}"


def run(argv: Sequence[str] | None = None) -> None:
    """Parse the command line ``argv`` and run the streaming pipeline until the replay ends."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="gaming-output/leader_board", help="output prefix")
    parser.add_argument(
        "--replay",
        choices=("test_stream", "realtime"),
        default="test_stream",
        help="replay the generated game with a TestStream (simulated clock) or in real time",
    )
    parser.add_argument("--speedup", type=float, default=600.0, help="realtime: game speed")
    parser.add_argument("--num_users", type=int, default=20, help="players in the generated game")
    parser.add_argument("--duration", type=int, default=180, help="game length, minutes")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated game")
    parser.add_argument("--watermark_lag", type=float, default=60, help="seconds behind arrivals")
    parser.add_argument("--team_window_duration", type=float, default=60, help="minutes")
    parser.add_argument("--allowed_lateness", type=float, default=120, help="minutes")
    parser.add_argument(
        "--early_firing", type=float, default=5, help="minutes of processing time per early pane"
    )
    parser.add_argument(
        "--user_firing", type=float, default=10, help="minutes of processing time per user pane"
    )
    args, pipeline_args = parser.parse_known_args(argv)
    events = generate_events(
        num_users=args.num_users, duration_minutes=args.duration, seed=args.seed
    )
    # Processing-time delays are minutes of game time: on the real clock they shrink by the speedup.
    scale = 60.0 / args.speedup if args.replay == "realtime" else 60.0
    options = PipelineOptions(pipeline_args, streaming=True)
    with beam.Pipeline(options=options) as p:
        if args.replay == "realtime":
            source = EventReplaySource(events, args.speedup, args.watermark_lag)
            lines = p | "ReplayGame" >> ReadUnbounded(source)
        else:
            lines = p | "ReplayGame" >> to_test_stream(events, 60, int(args.watermark_lag))
        events_pc = lines | "ParseAndStamp" >> ParseAndStamp()
        (
            events_pc
            | "CalculateTeamScores"
            >> CalculateTeamScores(
                args.team_window_duration, args.allowed_lateness, args.early_firing * scale
            )
            | "TeamScorePane" >> beam.ParDo(TeamScorePane())
            | "FormatTeamPane" >> beam.MapTuple(format_team_pane)
            | "WriteTeamScores"
            >> beam.io.WriteToText(args.output + "_teams", file_name_suffix=".txt", num_shards=1)
        )
        (
            events_pc
            | "CalculateUserScores"
            >> CalculateUserScores(args.allowed_lateness, args.user_firing * scale)
            | "UserScorePane" >> beam.ParDo(UserScorePane())
            | "FormatUserPane" >> beam.MapTuple(format_user_pane)
            | "WriteUserScores"
            >> beam.io.WriteToText(args.output + "_users", file_name_suffix=".txt", num_shards=1)
        )


def main() -> None:
    """Entry point: ``python -m headrace.examples.gaming.leader_board [options]``."""
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
