"""Hourly team score: the total score of every team in each hour of event time (batch).

The second mobile-gaming pipeline. Where :mod:`~headrace.examples.gaming.user_score` ignores
time, this one stamps each event with the time it was played and cuts event time into fixed
windows (``--window_duration`` minutes, an hour by default), so a late-arriving event still
counts in the hour it was played. ``--start_min`` and ``--stop_min`` (``YYYY-MM-DD-HH-MM``, UTC)
keep only the events played strictly after the first and strictly before the second. Output
lines: ``team: NAME, total_score: N, window_start: YYYY-MM-DD HH:MM:SS.mmm``.

Run it with ``python -m headrace.examples.gaming.hourly_team_score --output out/hourly``.

>>> import os, pathlib, tempfile
>>> d = tempfile.mkdtemp()
>>> _ = pathlib.Path(d, "ev.csv").write_text(
...     "a_Red,Red,5,1714521600000,x\\n"  # 00:00
...     "b_Red,Red,2,1714525199000,x\\n"  # 00:59:59
...     "a_Red,Red,4,1714525200000,x\\n"  # 01:00
...     "c_Blue,Blue,1,1714532400000,x\\n")  # 03:00, after --stop_min
>>> run(["--input", os.path.join(d, "ev.csv"), "--output", os.path.join(d, "out"),
...      "--stop_min", "2024-05-01-02-00"])
>>> print(pathlib.Path(d, "out-00000-of-00001.txt").read_text(), end="")
team: Red, total_score: 7, window_start: 2024-05-01 00:00:00.000
team: Red, total_score: 4, window_start: 2024-05-01 01:00:00.000
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from headrace import beam
from headrace.beam.options.pipeline_options import PipelineOptions
from headrace.examples.gaming.events import ParseGameEventFn, readable_time
from headrace.examples.gaming.user_score import ExtractAndSumScore, input_or_generated

__all__ = ["HourlyTeamScore", "TeamScoreLine", "main", "parse_minute", "run"]

_DEFAULT_START = "1970-01-01-00-00"
_DEFAULT_STOP = "2100-01-01-00-00"


def parse_minute(text: str) -> float:
    """``YYYY-MM-DD-HH-MM`` (UTC) as seconds since the epoch.

    >>> parse_minute("2024-05-01-01-30")
    1714527000.0
    """
    try:
        moment = _dt.datetime.strptime(text, "%Y-%m-%d-%H-%M").replace(tzinfo=_dt.UTC)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a minute in the form YYYY-MM-DD-HH-MM (UTC), e.g. 2024-05-01-13-00"
        ) from None
    return moment.timestamp()


class HourlyTeamScore(beam.PTransform):
    """Event lines in, ``(team, total)`` per fixed window of ``window_duration`` minutes out.

    Only events played strictly after ``start_min`` and strictly before ``stop_min`` (seconds
    since the epoch, or None for no bound) count.

    >>> from headrace.beam.testing.util import assert_that, equal_to
    >>> with beam.Pipeline() as p:
    ...     lines = p | beam.Create(["u,A,1,0,x", "u,A,2,3599999,x", "u,A,4,3600000,x"])
    ...     assert_that(lines | HourlyTeamScore(), equal_to([("A", 3), ("A", 4)]))
    """

    def __init__(
        self,
        start_min: float | None = None,
        stop_min: float | None = None,
        window_duration: int = 60,
    ) -> None:
        super().__init__()
        if window_duration <= 0:
            raise ValueError(
                f"window_duration must be a positive number of minutes, got {window_duration}"
            )
        self.start_min = start_min
        self.stop_min = stop_min
        self.window_duration = window_duration

    def expand(self, lines: beam.PCollection) -> beam.PCollection:
        events = lines | "ParseGameEvent" >> beam.ParDo(ParseGameEventFn())
        start, stop = self.start_min, self.stop_min
        if start is not None:
            events = events | "FilterStartTime" >> beam.Filter(lambda e: e["timestamp"] > start)
        if stop is not None:
            events = events | "FilterEndTime" >> beam.Filter(lambda e: e["timestamp"] < stop)
        return (
            events
            | "AddEventTimestamps"
            >> beam.Map(lambda e: beam.window.TimestampedValue(e, e["timestamp"]))
            | "FixedWindowsTeam"
            >> beam.WindowInto(beam.window.FixedWindows(self.window_duration * 60))
            | "ExtractAndSumScore" >> ExtractAndSumScore("team")
        )


class TeamScoreLine(beam.DoFn):
    """Format ``(team, total)`` with the start of its window."""

    def process(
        self, team_score: tuple[str, Any], window: Any = beam.DoFn.WindowParam
    ) -> Iterator[str]:
        team, total = team_score
        start = readable_time(window.start.micros / 1000)
        yield f"team: {team}, total_score: {total}, window_start: {start}"


def run(argv: Sequence[str] | None = None) -> None:
    """Parse the command line ``argv`` and run the pipeline to the end."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", help="event lines to read (default: a generated game)")
    parser.add_argument("--output", default="gaming-output/hourly_team_score", help="output prefix")
    parser.add_argument("--window_duration", type=int, default=60, help="window size, minutes")
    parser.add_argument(
        "--start_min",
        default=_DEFAULT_START,
        help="keep events played after this minute (YYYY-MM-DD-HH-MM, UTC)",
    )
    parser.add_argument(
        "--stop_min",
        default=_DEFAULT_STOP,
        help="keep events played before this minute (YYYY-MM-DD-HH-MM, UTC)",
    )
    args, pipeline_args = parser.parse_known_args(argv)
    try:
        start, stop = parse_minute(args.start_min), parse_minute(args.stop_min)
    except ValueError as e:
        parser.error(f"--start_min/--stop_min: {e}")
    source = input_or_generated(args.input, "gaming-input/events.csv")
    with beam.Pipeline(options=PipelineOptions(pipeline_args)) as p:
        (
            p
            | "ReadInputText" >> beam.io.ReadFromText(source)
            | "HourlyTeamScore" >> HourlyTeamScore(start, stop, args.window_duration)
            | "TeamScoreLine" >> beam.ParDo(TeamScoreLine())
            | "WriteTeamScoreSums"
            >> beam.io.WriteToText(args.output, file_name_suffix=".txt", num_shards=1)
        )


def main() -> None:
    """Entry point: ``python -m headrace.examples.gaming.hourly_team_score [options]``."""
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
