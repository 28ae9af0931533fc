"""Draining a streaming run (Beam's drain, as Dataflow does it): the sources are read no more,
every window fires with what was read, and the run finishes DRAINED (Beam's terminal state
for it, ``PipelineState.is_terminal``). Cancelling instead
fires nothing more."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from headrace import beam
from headrace.io.streaming.periodic import PeriodicImpulse
from headrace.model.options import PipelineOptions
from headrace.model.result import PipelineState
from headrace.model.window import FixedWindows


def _append(path: str, value: int) -> None:
    with open(path, "a") as f:
        f.write(f"{value}\n")


def _endless(out: Path) -> beam.Pipeline:
    """Ticks every 10 ms for ever, summed per hour window; each sum appended to ``out`` (the
    DoFns are pickled into the run, so they write a file rather than a list)."""
    p = beam.Pipeline(options=PipelineOptions(["--streaming"]))
    path = str(out)
    _ = (
        p
        | "Ticks" >> PeriodicImpulse(start_timestamp=time.time(), fire_interval=0.01)
        | "Ones" >> beam.Map(lambda t: 1)
        | "Hour" >> beam.WindowInto(FixedWindows(3600))
        | "Sum" >> beam.CombineGlobally(sum).without_defaults()
        | "Out" >> beam.Map(lambda n: _append(path, n))
    )
    return p


def _ones(result) -> int:
    return next(p.elements_in for p in result.progress if p.name == "Ones")


def _sums(out: Path) -> list[int]:
    return [int(x) for x in out.read_text().split()] if out.exists() else []


def _wait(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_drain_stops_the_sources_fires_the_windows_and_finishes_drained(tmp_path):
    out = tmp_path / "sums.txt"
    result = _endless(out).run()
    _wait(lambda: _ones(result) >= 5, "some ticks")
    assert _sums(out) == []  # the hour window is open: nothing fired yet
    assert result.drain() == PipelineState.RUNNING  # drain returns at once
    assert result.wait_until_finish(60_000) == PipelineState.DRAINED
    read = _ones(result)
    # the window fired at the end with everything read (the ticks may straddle an hour)
    assert sum(_sums(out)) == read and len(_sums(out)) in (1, 2)
    time.sleep(0.1)
    assert _ones(result) == read  # and nothing was read after


def test_cancel_fires_nothing_more(tmp_path):
    out = tmp_path / "sums.txt"
    result = _endless(out).run()
    _wait(lambda: _ones(result) >= 5, "some ticks")
    assert result.cancel() == PipelineState.CANCELLED
    assert _sums(out) == []


def test_a_batch_run_refuses_drain_naming_cancel():
    p = beam.Pipeline()
    _ = p | beam.Create([1, 2]) | beam.Map(lambda x: time.sleep(0.2) or x)
    result = p.run()
    with pytest.raises(ValueError, match=r"batch run: drain applies to streaming runs.*cancel"):
        result.drain()
    assert result.wait_until_finish() == PipelineState.DONE
