"""Build and run one Nexmark query, batch or streaming, on whichever runner is given.

Like :mod:`queries`, this imports only ``headrace.beam``, so ``beam_side.py`` runs it on Apache
Beam unchanged. Two ways to feed the events, both as users write them:

- **batch**: ``Create(events) | Map(timestamped)`` (the event's ``date_time`` becomes the
  element timestamp, as Beam's launcher does after parsing its input);
- **streaming**: a ``TestStream`` of the timestamped events in steps of ``step`` events, each
  followed by a watermark advance to the next step's first event time and a processing-time
  advance of the event time a step spans; then the watermark goes to infinity.

The query's results are written as canonical JSON lines (``model.canonical``) by
:class:`WriteLinesFn`, one file per bundle under ``out_prefix`` (``WriteToText`` refuses
unbounded input in the global window on Beam); :func:`read_results` reads them back.
"""

from __future__ import annotations

import glob
import os
import uuid
from typing import Any

import headrace.beam as beam
from headrace.beam.testing.test_stream import TestStream
from nexmark.model import canonical
from nexmark.queries import DEFAULT_PARAMS, QUERIES, millis_to_timestamp, timestamped

__all__ = ["MODES", "build", "make_test_stream", "read_results"]

MODES = ("batch", "streaming")
STEP_EVENTS = 1000


class WriteLinesFn(beam.DoFn):
    """Write each bundle's elements (strings) as lines of a new file ``<prefix>-<uuid>``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.lines: list[str] = []

    def start_bundle(self) -> None:
        self.lines = []

    def process(self, line):  # type: ignore[no-untyped-def]
        self.lines.append(line)

    def finish_bundle(self) -> None:
        if self.lines:
            os.makedirs(os.path.dirname(self.prefix), exist_ok=True)
            with open(f"{self.prefix}-{uuid.uuid4().hex}", "w", encoding="utf-8") as f:
                f.write("\n".join(self.lines) + "\n")
            self.lines = []


def make_test_stream(events: list[Any], step: int = STEP_EVENTS) -> Any:
    """The events as a TestStream: ``step`` at a time, each step followed by time advances.

    After the last step processing time advances once more (by as much as after the others),
    so that processing-time panes still open fire; only then does the watermark go to
    infinity.
    """
    stream = TestStream()
    span_ms = (events[1].date_time - events[0].date_time) * step if len(events) > 1 else 0
    for lo in range(0, len(events), step):
        chunk = events[lo : lo + step]
        stream.add_elements([timestamped(e) for e in chunk])
        if lo + step < len(events):
            stream.advance_watermark_to(millis_to_timestamp(events[lo + step].date_time))
        stream.advance_processing_time(span_ms / 1000)
    return stream.advance_watermark_to_infinity()


def build(
    p: Any, events: list[Any], query: int, mode: str, out_prefix: str, params: Any = None
) -> None:
    """Add query ``query`` over ``events`` in ``mode`` to pipeline ``p``, writing its results."""
    if mode == "batch":
        source = p | "Events" >> beam.Create(events) | "Timestamp" >> beam.Map(timestamped)
    elif mode == "streaming":
        source = p | "Events" >> make_test_stream(events)
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    results = QUERIES[query](source, params or DEFAULT_PARAMS)
    (results | "Canonical" >> beam.Map(canonical) | "Write" >> beam.ParDo(WriteLinesFn(out_prefix)))


def read_results(out_prefix: str) -> list[str]:
    """The result lines a run wrote under ``out_prefix``, sorted (a multiset as a list)."""
    lines: list[str] = []
    for path in glob.glob(glob.escape(out_prefix) + "*"):
        with open(path, encoding="utf-8") as f:
            lines.extend(line.rstrip("\n") for line in f)
    return sorted(lines)
