"""Windowed word count: count the words of text files as they land in a folder (streaming).

The pipeline watches a file pattern (``--input``, e.g. ``'incoming/*.txt'``), reads each new file
once, splits its lines into words and counts them per fixed window of event time
(``--window_size`` seconds). Each window's counts are written to their own file as soon as the
watermark passes the end of the window, by the windowed ``WriteToText``:
``{output}-[{window start}, {window end})-00000-of-00001.txt``, one ``word: count`` line per word
(Beam Python's names: window bounds in seconds since the epoch; see
:mod:`headrace.io.windowedsink`).

Event time (``--timestamp``):

* ``mtime`` (the default): every word of a file takes the file's modification time, so a file's
  words count in the window in which the file was written. The watermark is the time of the
  latest folder scan minus ``--watermark_lag`` seconds; a file that appears with a modification
  time older than that (copied with its times preserved, say) is late and its words are dropped,
  so raise ``--watermark_lag`` if files may arrive that late.
* ``processing_time``: every word takes the time of the scan that found its file.

Write files elsewhere and rename them into the folder, so that no file is read half-written.

The run lasts until ``--stop_after`` seconds have passed or ``--max_files`` files were read
(without either it runs until cancelled); at the stop, the folder is scanned one last time and
every window still open is written. Written as for Apache Beam, except for the import of
``ReadFromTextContinuously`` (Beam builds the same from ``fileio.MatchContinuously``).

Run it with ``python -m headrace.examples.windowed_wordcount --input 'incoming/*.txt'
--output out/counts --window_size 60 --stop_after 600``.

>>> import os, pathlib, tempfile
>>> d = tempfile.mkdtemp()
>>> for name, text, mtime in [("1.txt", "a b a", 5), ("2.txt", "b", 50), ("3.txt", "a", 70)]:
...     path = pathlib.Path(d, name)
...     _ = path.write_text(text)
...     os.utime(path, (mtime, mtime))
>>> main(["--input", os.path.join(d, "*.txt"), "--output", os.path.join(d, "out", "counts"),
...       "--window_size", "60", "--max_files", "3", "--interval", "0.01"])
>>> for path in sorted(pathlib.Path(d, "out").iterdir()):
...     print(path.name, sorted(path.read_text().splitlines()))
counts-[0.0, 60.0)-00000-of-00001.txt ['a: 2', 'b: 2']
counts-[60.0, 120.0)-00000-of-00001.txt ['a: 1']
>>> import shutil; shutil.rmtree(d)
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence

from headrace import beam
from headrace.beam import window
from headrace.beam.options.pipeline_options import PipelineOptions
from headrace.io.streaming import ReadFromTextContinuously

__all__ = ["main", "run"]

WORD = re.compile(r"[A-Za-z']+")


def run(
    input_pattern: str,
    output_prefix: str,
    window_size: float,
    options: PipelineOptions,
    *,
    interval: float = 1.0,
    timestamp: str = "mtime",
    watermark_lag: float = 0.0,
    stop_after: float | None = None,
    max_files: int | None = None,
) -> None:
    """Count the words of new files matching ``input_pattern`` per window; see the module doc."""
    with beam.Pipeline(options=options) as p:
        (
            p
            | "Watch"
            >> ReadFromTextContinuously(
                input_pattern,
                interval,
                timestamp=timestamp,
                watermark_lag=watermark_lag,
                stop_after=stop_after,
                max_files=max_files,
            )
            | "Window" >> beam.WindowInto(window.FixedWindows(window_size))
            | "Split" >> beam.FlatMap(WORD.findall)
            | "Lower" >> beam.Map(str.lower)
            | "Count" >> beam.combiners.Count.PerElement()
            | "Format" >> beam.MapTuple(lambda word, n: f"{word}: {n}")
            | "Write" >> beam.io.WriteToText(output_prefix, file_name_suffix=".txt", num_shards=1)
        )


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line ``argv`` and run until the stop condition (or forever)."""
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--input", required=True, help="file pattern to watch, e.g. 'in/*.txt'")
    parser.add_argument("--output", default="windowed-wordcount/counts", help="output prefix")
    parser.add_argument("--window_size", type=float, default=60.0, help="window, seconds")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between scans")
    parser.add_argument(
        "--timestamp",
        choices=("mtime", "processing_time"),
        default="mtime",
        help="event time of a file's words: its modification time or the scan that found it",
    )
    parser.add_argument(
        "--watermark_lag", type=float, default=0.0, help="seconds the watermark trails the scans"
    )
    parser.add_argument("--stop_after", type=float, help="stop after this many seconds")
    parser.add_argument("--max_files", type=int, help="stop after reading this many files")
    args, pipeline_args = parser.parse_known_args(argv)
    run(
        args.input,
        args.output,
        args.window_size,
        PipelineOptions(pipeline_args, streaming=True),
        interval=args.interval,
        timestamp=args.timestamp,
        watermark_lag=args.watermark_lag,
        stop_after=args.stop_after,
        max_files=args.max_files,
    )


if __name__ == "__main__":
    main()
