"""Game stats: team scores without spammy users, and how long people play (batch or streaming).

The fourth mobile-gaming pipeline adds two analyses to the windowed team scores:

* **Abuse detection with a side input.** In each fixed window (``--fixed_window_duration``
  minutes), the total score of every user is compared with the mean of all users' totals in
  that window; a user above ``SCORE_WEIGHT`` (2.5) times the mean is taken for a robot or a
  cheat. The mean reaches the comparison as a singleton side input, and the spammy users reach
  the team sums as a dict side input, each read in the window of the element that reads it, so
  team scores leave out the spammers of that window only.
* **Session lengths with session windows.** A user's plays less than ``--session_gap`` minutes
  apart form one session (merging ``Sessions`` windows). Each session's length (its window's
  span: first play to last play plus the gap) is stamped at the session's end, re-windowed
  into fixed windows of ``--user_activity_window_duration`` minutes and averaged there.

Output: ``PREFIX_teams-*.txt`` (``team: NAME, total_score: N, window_start: ...``) and
``PREFIX_sessions-*.txt`` (``window_start: ..., mean_session_minutes: M``).

Run it over a file in batch (``--input``, default a generated game) or over a replayed game in
a streaming run (``--replay test_stream``); with the default trigger both give the same result,
except for events that arrive later than the watermark allows, which streaming drops.

>>> import os, pathlib, tempfile
>>> d = tempfile.mkdtemp()
>>> lines = [f"bot_Red,Red,90,{1714521600000 + 60_000 * i},x" for i in range(5)]
>>> lines += [f"u{i}_Red,Red,10,1714521600000,x" for i in range(1, 5)]
>>> lines += ["u1_Red,Red,10,1714521720000,x", "u9_Blue,Blue,3,1714521600000,x"]
>>> _ = pathlib.Path(d, "ev.csv").write_text("\\n".join(lines) + "\\n")
>>> run(["--input", os.path.join(d, "ev.csv"), "--output", os.path.join(d, "out")])
>>> print(pathlib.Path(d, "out_teams-00000-of-00001.txt").read_text(), end="")
team: Red, total_score: 50, window_start: 2024-05-01 00:00:00.000
team: Blue, total_score: 3, window_start: 2024-05-01 00:00:00.000
>>> print(pathlib.Path(d, "out_sessions-00000-of-00001.txt").read_text(), end="")
window_start: 2024-05-01 00:00:00.000, mean_session_minutes: 6.0
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from headrace import beam
from headrace.beam.options.pipeline_options import PipelineOptions
from headrace.examples.gaming.events import generate_events, readable_time, to_test_stream
from headrace.examples.gaming.hourly_team_score import TeamScoreLine
from headrace.examples.gaming.leader_board import ParseAndStamp
from headrace.examples.gaming.user_score import ExtractAndSumScore, input_or_generated

__all__ = [
    "SCORE_WEIGHT",
    "CalculateSpammyUsers",
    "MeanSessionLengths",
    "SessionLengthLine",
    "TeamScoresWithoutSpammers",
    "UserSessionActivity",
    "main",
    "run",
]

SCORE_WEIGHT = 2.5
"""A user whose window total exceeds this many times the mean user total is spammy."""


class CalculateSpammyUsers(beam.PTransform):
    """``(user, score)`` pairs in, ``(user, window total)`` of the spammy users out.

    The mean of the users' totals in each window is a singleton side input of the filter.

    >>> from headrace.beam.testing.util import assert_that, equal_to
    >>> with beam.Pipeline() as p:
    ...     scores = p | beam.Create([("bot", 100), *((f"u{i}", 10) for i in range(9))])
    ...     assert_that(scores | CalculateSpammyUsers(), equal_to([("bot", 100)]))
    """

    def __init__(self, score_weight: float = SCORE_WEIGHT) -> None:
        super().__init__()
        self.score_weight = score_weight

    def expand(self, user_scores: beam.PCollection) -> beam.PCollection:
        sum_scores = user_scores | "SumUsersScores" >> beam.CombinePerKey(sum)
        # Beam writes CombineGlobally(...).as_singleton_view() here; headrace refuses default
        # values outside the global window even for a view, so the mean is combined without
        # defaults (every window with a user score has a mean) and read with AsSingleton.
        global_mean = beam.pvalue.AsSingleton(
            sum_scores
            | "UserTotals" >> beam.Values()
            | "MeanUserTotal"
            >> beam.CombineGlobally(beam.combiners.MeanCombineFn()).without_defaults()
        )
        weight = self.score_weight
        return sum_scores | "ProcessAndFilter" >> beam.Filter(
            lambda user_total, mean: user_total[1] > mean * weight, global_mean
        )


class TeamScoresWithoutSpammers(beam.PTransform):
    """Parsed, stamped events in, ``(team, total)`` per fixed window without spammy users.

    >>> from headrace.beam.testing.util import assert_that, equal_to
    >>> plays = [("bot", "A", 100), *((f"u{i}", "A" if i % 2 else "B", 10) for i in range(9))]
    >>> def stamp(user, team, score):
    ...     return beam.window.TimestampedValue({"user": user, "team": team, "score": score}, 0)
    >>> with beam.Pipeline() as p:
    ...     events = p | beam.Create(plays) | beam.MapTuple(stamp)
    ...     assert_that(events | TeamScoresWithoutSpammers(), equal_to([("A", 40), ("B", 50)]))
    """

    def __init__(self, fixed_window_duration: float = 60, score_weight: float = SCORE_WEIGHT):
        super().__init__()
        self.fixed_window_duration = fixed_window_duration
        self.score_weight = score_weight

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        windowed = events | "WindowIntoFixedWindows" >> beam.WindowInto(
            beam.window.FixedWindows(self.fixed_window_duration * 60)
        )
        spammers = beam.pvalue.AsDict(
            windowed
            | "ExtractUserScores" >> beam.Map(lambda e: (e["user"], e["score"]))
            | "CalculateSpammyUsers" >> CalculateSpammyUsers(self.score_weight)
        )
        return (
            windowed
            | "FilterOutSpammers"
            >> beam.Filter(lambda e, spammy: e["user"] not in spammy, spammers)
            | "ExtractAndSumScore" >> ExtractAndSumScore("team")
        )


class UserSessionActivity(beam.DoFn):
    """The length of a user's session window, in minutes."""

    def process(self, element: Any, window: Any = beam.DoFn.WindowParam) -> Iterator[float]:
        yield (window.end.micros - window.start.micros) / 60_000_000


class MeanSessionLengths(beam.PTransform):
    """Parsed, stamped events in, mean session length (minutes) per fixed window out.

    A session ends ``session_gap`` minutes after its last play; its length is stamped at its
    end, so it is averaged in the window of ``user_activity_window_duration`` minutes where it
    ended.

    >>> from headrace.beam.testing.util import assert_that, equal_to
    >>> plays = [("a", 0), ("a", 120), ("b", 60), ("a", 3600)]  # a: 2 sessions, b: 1
    >>> def stamp(user, t):
    ...     return beam.window.TimestampedValue({"user": user, "score": 1}, t)
    >>> with beam.Pipeline() as p:
    ...     events = p | beam.Create(plays) | beam.MapTuple(stamp)
    ...     assert_that(events | MeanSessionLengths(5, 30), equal_to([6.0, 5.0]))
    """

    def __init__(self, session_gap: float = 5, user_activity_window_duration: float = 30):
        super().__init__()
        self.session_gap = session_gap
        self.user_activity_window_duration = user_activity_window_duration

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        return (
            events
            | "ExtractUserScores" >> beam.Map(lambda e: (e["user"], e["score"]))
            | "WindowIntoSessions"
            >> beam.WindowInto(
                beam.window.Sessions(self.session_gap * 60),
                timestamp_combiner=beam.window.TimestampCombiner.OUTPUT_AT_EOW,
            )
            # Only the existence of each session matters here, not what it adds up to.
            | "OneValuePerSession" >> beam.CombinePerKey(lambda _: None)
            | "UserSessionActivity" >> beam.ParDo(UserSessionActivity())
            | "WindowToExtractSessionMean"
            >> beam.WindowInto(beam.window.FixedWindows(self.user_activity_window_duration * 60))
            | "MeanSessionLength"
            >> beam.CombineGlobally(beam.combiners.MeanCombineFn()).without_defaults()
        )


class SessionLengthLine(beam.DoFn):
    """Format a mean session length with the start of its window."""

    def process(self, mean: float, window: Any = beam.DoFn.WindowParam) -> Iterator[str]:
        start = readable_time(window.start.micros / 1000)
        yield f"window_start: {start}, mean_session_minutes: {round(mean, 3)}"


def run(argv: Sequence[str] | None = None) -> None:
    """Parse the command line ``argv`` and run the pipeline to the end."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", help="event lines to read (default: a generated game)")
    parser.add_argument("--output", default="gaming-output/game_stats", help="output prefix")
    parser.add_argument(
        "--replay",
        choices=("none", "test_stream"),
        default="none",
        help="test_stream: replay a generated game in a streaming run instead of reading a file",
    )
    parser.add_argument("--fixed_window_duration", type=float, default=60, help="minutes")
    parser.add_argument("--session_gap", type=float, default=5, help="minutes")
    parser.add_argument("--user_activity_window_duration", type=float, default=30, help="minutes")
    args, pipeline_args = parser.parse_known_args(argv)
    options = PipelineOptions(pipeline_args)
    with beam.Pipeline(options=options) as p:
        if args.replay == "test_stream":
            lines = p | "ReplayGame" >> to_test_stream(generate_events())
        else:
            source = input_or_generated(args.input, "gaming-input/events.csv")
            lines = p | "ReadInputText" >> beam.io.ReadFromText(source)
        events = lines | "ParseAndStamp" >> ParseAndStamp()
        (
            events
            | "TeamScores" >> TeamScoresWithoutSpammers(args.fixed_window_duration)
            | "TeamScoreLine" >> beam.ParDo(TeamScoreLine())
            | "WriteTeamSums"
            >> beam.io.WriteToText(args.output + "_teams", file_name_suffix=".txt", num_shards=1)
        )
        (
            events
            | "SessionLengths"
            >> MeanSessionLengths(args.session_gap, args.user_activity_window_duration)
            | "SessionLengthLine" >> beam.ParDo(SessionLengthLine())
            | "WriteAvgSessionLength"
            >> beam.io.WriteToText(args.output + "_sessions", file_name_suffix=".txt", num_shards=1)
        )


def main() -> None:
    """Entry point: ``python -m headrace.examples.gaming.game_stats [options]``."""
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
