"""User score: the total score of every user over a whole file of game events (batch).

The first of the mobile-gaming pipelines: read event lines, parse them (counting and skipping
lines that do not parse), sum the scores per user and write ``user: NAME, total_score: N`` lines.
Event time plays no part: every event counts, however late it arrived.

Run it with ``python -m headrace.examples.gaming.user_score --output out/user_scores``; without
``--input`` it generates a game first (see :mod:`~headrace.examples.gaming.events`).

>>> import os, pathlib, tempfile
>>> d = tempfile.mkdtemp()
>>> _ = pathlib.Path(d, "ev.csv").write_text(
...     "ann_Red,Red,5,1714521600000,x\\nbob_Blue,Blue,2,1714521660000,x\\nann_Red,Red,4,0,x\\n")
>>> run(["--input", os.path.join(d, "ev.csv"), "--output", os.path.join(d, "out")])
>>> print(pathlib.Path(d, "out-00000-of-00001.txt").read_text(), end="")
user: ann_Red, total_score: 9
user: bob_Blue, total_score: 2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from headrace import beam
from headrace.beam.options.pipeline_options import PipelineOptions
from headrace.examples.gaming.events import ParseGameEventFn, generate_events, write_events

__all__ = [
    "ExtractAndSumScore",
    "UserScore",
    "format_user_score",
    "input_or_generated",
    "main",
    "run",
]


class ExtractAndSumScore(beam.PTransform):
    """``(value of field, score)`` for each parsed event, summed per key: ``(key, total)``.

    ``field`` is ``"user"`` or ``"team"``.

    >>> from headrace.beam.testing.util import assert_that, equal_to
    >>> with beam.Pipeline() as p:
    ...     events = p | beam.Create([{"team": "a", "score": 2}, {"team": "a", "score": 3}])
    ...     assert_that(events | ExtractAndSumScore("team"), equal_to([("a", 5)]))
    """

    def __init__(self, field: str) -> None:
        super().__init__()
        if field not in ("user", "team"):
            raise ValueError(f"ExtractAndSumScore sums per 'user' or 'team', not {field!r}")
        self.field = field

    def expand(self, events: beam.PCollection) -> beam.PCollection:
        field = self.field
        return (
            events
            | f"Extract{field.capitalize()}Score" >> beam.Map(lambda e: (e[field], e["score"]))
            | f"Sum{field.capitalize()}Scores" >> beam.CombinePerKey(sum)
        )


class UserScore(beam.PTransform):
    """Event lines in, ``(user, total score)`` out.

    >>> from headrace.beam.testing.util import assert_that, equal_to
    >>> with beam.Pipeline() as p:
    ...     lines = p | beam.Create(["u1,t,3,0,x", "u2,t,1,0,x", "u1,t,4,9,x"])
    ...     assert_that(lines | UserScore(), equal_to([("u1", 7), ("u2", 1)]))
    """

    def expand(self, lines: beam.PCollection) -> beam.PCollection:
        return (
            lines
            | "ParseGameEvent" >> beam.ParDo(ParseGameEventFn())
            | "ExtractAndSumScore" >> ExtractAndSumScore("user")
        )


def format_user_score(user: str, total: Any) -> str:
    """The output line of one user.

    >>> format_user_score("u1", 7)
    'user: u1, total_score: 7'
    """
    return f"user: {user}, total_score: {total}"


def input_or_generated(path: str | None, where: str) -> str:
    """``path``, or a freshly generated game written to ``where`` when ``path`` is None."""
    if path is not None:
        return path
    written = write_events(where, generate_events())
    print(f"generated {written}", file=sys.stderr)
    return str(written)


def run(argv: Sequence[str] | None = None) -> None:
    """Parse the command line ``argv`` and run the pipeline to the end."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", help="event lines to read (default: a generated game)")
    parser.add_argument("--output", default="gaming-output/user_scores", help="output prefix")
    args, pipeline_args = parser.parse_known_args(argv)
    source = input_or_generated(args.input, "gaming-input/events.csv")
    with beam.Pipeline(options=PipelineOptions(pipeline_args)) as p:
        (
            p
            | "ReadInputText" >> beam.io.ReadFromText(source)
            | "UserScore" >> UserScore()
            | "FormatUserScoreSums" >> beam.MapTuple(format_user_score)
            | "WriteUserScoreSums"
            >> beam.io.WriteToText(args.output, file_name_suffix=".txt", num_shards=1)
        )


def main() -> None:
    """Entry point: ``python -m headrace.examples.gaming.user_score [options]``."""
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
