"""Progress of the pipelines a script runs: a live rich display and a summary table per run.

A :class:`RunMonitor` is a run-event listener (:mod:`headrace.runners.events`): every number it
shows comes from the events a runner emits, the same stream the job service records, so any
runner that emits them (direct, local processes, Ray) gets the display for free.

- ``RunSubmitted`` starts tracking a run (its stages, or its steps when it streams) and keeps
  the result handle, used only to wait for runs the script did not wait for and to cancel them;
- ``StageStarted`` / ``StageUpdated`` / ``StageFinished`` move a batch stage's state and counts;
  ``RunStarted`` marks every step of a streaming run running, ``StageUpdated`` moves its counts
  and ``Watermark`` its output watermark;
- ``RunFinished`` ends the run. Its summary table is printed once, when the script waited for
  it (or the watcher thread noticed the end, or the script ended), and it leaves the live display.

Threads: events arrive from the runner's threads; the script's own thread waits through the
wrapped ``wait_until_finish``; in live mode one watcher thread redraws the display a few times
per second and reports runs that ended. Every change to the tracked runs and every print happens
under one lock, so a summary is never printed twice nor torn by a redraw.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from headrace.model.result import PipelineState
from headrace.model.timestamp import MIN_US
from headrace.runners import events

_YEAR_10000_US = 253_402_300_800_000_000

__all__ = ["ObservedResult", "RunMonitor", "RunView", "StageRow", "format_rate", "format_watermark"]


class ObservedResult(Protocol):
    """The result handle a ``RunSubmitted`` event carries: waited for and cancelled, never read."""

    def wait_until_finish(self, duration: float | None = None) -> PipelineState: ...

    def cancel(self) -> PipelineState: ...


_STATE_STYLES = {
    "pending": "dim",
    "running": "yellow",
    "done": "green",
    "failed": "bold red",
    "cancelled": "magenta",
    "not run": "dim",
}


def format_rate(elements: int, seconds: float) -> str:
    """Elements per second, readable at a glance.

    >>> format_rate(1500, 0.5), format_rate(12_345_678, 2.0), format_rate(5, 0.0)
    ('3,000', '6.2M', '-')
    """
    if seconds <= 0 or elements <= 0:
        return "-"
    rate = elements / seconds
    if rate >= 10_000_000:
        return f"{rate / 1_000_000:,.0f}M"
    if rate >= 1_000_000:
        return f"{rate / 1_000_000:.1f}M"
    return f"{rate:,.0f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@dataclass
class StageRow:
    """One stage (batch) or step (streaming) as the events have described it so far."""

    name: str
    state: str = "pending"  # pending -> running -> done | failed
    started: float | None = None  # event time (time.time()) of StageStarted / RunStarted
    elements_in: int = 0
    elements_out: int = 0
    seconds: float | None = None  # set when the stage finished
    spills: int = 0
    watermark_us: int | None = None


@dataclass
class RunView:
    """A run rebuilt from its events: what the display shows, and nothing else.

    >>> from headrace.runners import events as ev
    >>> view = RunView.submitted(ev.RunSubmitted("r1", False, ("Read ... Parse",), at=10.0))
    >>> stage = "Read ... Parse"
    >>> for e in (ev.RunStarted("r1", at=10.0), ev.StageStarted("r1", 0, stage, 2, at=10.5),
    ...           ev.StageUpdated("r1", 0, stage, 40, 39, at=11.0)):
    ...     view.apply(e)
    >>> row = view.stages[0]
    >>> row.state, row.elements_in, row.elements_out, view.state
    ('running', 40, 39, 'RUNNING')
    >>> view.apply(ev.RunFinished("r1", "DONE", at=12.0))
    >>> view.finished, view.elapsed(now=99.0)
    (True, 2.0)
    """

    run_id: str
    streaming: bool
    stages: list[StageRow]
    submitted_at: float
    state: str = "PENDING"  # a PipelineState name
    finished_at: float | None = None

    @classmethod
    def submitted(cls, event: events.RunSubmitted) -> RunView:
        rows = [StageRow(name) for name in event.stages]
        return cls(event.run_id, event.streaming, rows, event.at)

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    def _row(self, index: int, name: str) -> StageRow | None:
        if 0 <= index < len(self.stages) and self.stages[index].name == name:
            return self.stages[index]
        return next((r for r in self.stages if r.name == name), None)

    def apply(self, event: events.RunEvent) -> None:
        """Move the view by one event of this run."""
        if isinstance(event, events.RunStarted):
            self.state = "RUNNING"
            if self.streaming:  # a streaming run's steps all run from the start
                for row in self.stages:
                    row.state, row.started = "running", event.at
        elif isinstance(event, events.RunFinished):
            self.state, self.finished_at = event.state, event.at
            if self.streaming:
                step_state = "done" if event.state in ("DONE", "DRAINED") else "failed"
                for row in self.stages:
                    if row.started is not None:
                        row.seconds = max(event.at - row.started, 0.0)
                    row.state = step_state
        elif isinstance(event, events.Watermark):
            found = self._row(-1, event.step)
            if found is not None:
                found.watermark_us = event.watermark_us
        elif isinstance(event, events.StageStarted | events.StageUpdated | events.StageFinished):
            stage = self._row(event.stage, event.name)
            if stage is None:
                return
            if isinstance(event, events.StageStarted):
                stage.state, stage.started = "running", event.at
            else:
                stage.elements_in, stage.elements_out = event.elements_in, event.elements_out
            if isinstance(event, events.StageFinished):
                stage.state, stage.seconds, stage.spills = event.state, event.seconds, event.spills

    def stage_state(self, row: StageRow) -> str:
        """The state to show: a stage still running when the run failed or was cancelled took
        part in that end; one never started did not run."""
        if row.state == "running" and self.state == "FAILED":
            return "failed"
        if row.state == "running" and self.state == "CANCELLED":
            return "cancelled"
        if row.state == "pending" and self.finished:
            return "not run"
        if row.state == "failed" and self.streaming and self.state == "CANCELLED":
            return "cancelled"
        return row.state

    def stage_seconds(self, row: StageRow, now: float) -> float | None:
        if row.seconds is not None:
            return row.seconds
        if row.started is None:
            return None
        end = self.finished_at if self.finished_at is not None else now
        return max(end - row.started, 0.0)

    def elapsed(self, now: float) -> float:
        end = self.finished_at if self.finished_at is not None else now
        return max(end - self.submitted_at, 0.0)


@dataclass(eq=False)
class _Tracked:
    view: RunView
    result: ObservedResult | None
    number: int
    reported: bool = False
    waited: bool = False  # the script waited for the end (and saw any failure itself)

    def finished(self) -> bool:
        return self.view.finished


def _state_text(state: str) -> Text:
    return Text(state, style=_STATE_STYLES.get(state, ""))


def live_table(tracked: _Tracked, now: float) -> Table:
    """The live view of one run: state, counts and throughput per stage (or step)."""
    view = tracked.view
    title = f"pipeline {tracked.number}: {view.state} {view.elapsed(now):.1f} s"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("step" if view.streaming else "stage", overflow="fold")
    table.add_column("state")
    table.add_column("in", justify="right")
    table.add_column("out", justify="right")
    table.add_column("elements/s", justify="right")
    table.add_column("seconds", justify="right")
    if view.streaming:
        table.add_column("watermark", justify="right")
    for i, row in enumerate(view.stages):
        seconds = view.stage_seconds(row, now)
        cells: list[RenderableType] = [
            f"S{i} {row.name}",
            _state_text(view.stage_state(row)),
            f"{row.elements_in:,}",
            f"{row.elements_out:,}",
            format_rate(row.elements_in or row.elements_out, seconds or 0.0),
            _seconds(seconds),
        ]
        if view.streaming:
            cells.append(format_watermark(row.watermark_us))
        table.add_row(*cells)
    return table


def format_watermark(micros: int | None) -> str:
    """A step's output watermark for the table: UTC time, or the ends of time.

    >>> format_watermark(1_700_000_000_123_000)
    '2023-11-14 22:13:20.123'
    >>> format_watermark(None), format_watermark(2**63 - 1)
    ('-', 'end')
    """
    if micros is None or micros <= MIN_US:
        return "-"
    if micros >= _YEAR_10000_US:  # the end of time, or the end of the global window
        return "end"
    moment = datetime.fromtimestamp(micros / 1e6, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def summary_table(tracked: _Tracked, now: float) -> Table:
    """The end-of-run table: per stage its state, elements in and out, seconds and spills (per
    step and its last watermark for a streaming run)."""
    view = tracked.view
    title = f"pipeline {tracked.number}: {view.state} in {view.elapsed(now):.2f} s"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("step" if view.streaming else "stage", overflow="fold")
    table.add_column("state")
    table.add_column("in", justify="right")
    table.add_column("out", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("watermark" if view.streaming else "spills", justify="right")
    table.add_column("elements/s", justify="right")
    for i, row in enumerate(view.stages):
        seconds = view.stage_seconds(row, now)
        table.add_row(
            f"S{i} {row.name}",
            _state_text(view.stage_state(row)),
            f"{row.elements_in:,}",
            f"{row.elements_out:,}",
            _seconds(seconds),
            format_watermark(row.watermark_us) if view.streaming else f"{row.spills:,}",
            format_rate(row.elements_in or row.elements_out, seconds or 0.0),
        )
    return table


class RunMonitor:
    """Shows the progress of the runs a script submits, from their run events, on ``console``.

    Register :meth:`on_event` as a run-event listener (``events.listening(monitor.on_event)``).
    ``console=None`` shows nothing (``--quiet``) but still tracks runs, so that
    :meth:`wait_all` can wait for runs the script started without waiting for them.
    ``live=True`` draws a live display (only sensible on a terminal); otherwise only the summary
    table of each run is printed when it ends.
    """

    def __init__(
        self,
        console: Console | None,
        *,
        live: bool = False,
        refresh_per_second: float = 4.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._console = console
        self._live_enabled = live and console is not None
        self._interval = 1.0 / refresh_per_second
        self._clock = clock  # the clock of the events' ``at``
        self._lock = threading.RLock()
        self._tracked: list[_Tracked] = []
        self._by_run: dict[str, _Tracked] = {}
        self._live: Live | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def results(self) -> list[ObservedResult]:
        """The result handle of every run seen so far, in order."""
        with self._lock:
            return [t.result for t in self._tracked if t.result is not None]

    @property
    def views(self) -> list[RunView]:
        """Every run seen so far, as its events describe it."""
        with self._lock:
            return [t.view for t in self._tracked]

    def on_event(self, event: events.RunEvent) -> None:
        """The listener: track a submitted run, move it by its later events."""
        with self._lock:
            if isinstance(event, events.RunSubmitted):
                self._submitted(event)
                return
            tracked = self._by_run.get(event.run_id)
            if tracked is None:
                return  # a run submitted before the monitor listened
            tracked.view.apply(event)

    def _submitted(self, event: events.RunSubmitted) -> None:
        tracked = _Tracked(RunView.submitted(event), event.result, len(self._tracked) + 1)
        self._tracked.append(tracked)
        self._by_run[event.run_id] = tracked
        if tracked.result is not None:
            self._wrap_wait(tracked)
        if self._live_enabled:
            self._start_live()

    def _wrap_wait(self, tracked: _Tracked) -> None:
        result = tracked.result
        assert result is not None
        original = result.wait_until_finish

        def wait_until_finish(duration: float | None = None) -> PipelineState:
            try:
                return original(duration)
            finally:
                if tracked.finished():
                    tracked.waited = True
                    self._report(tracked)

        try:
            result.wait_until_finish = wait_until_finish  # type: ignore[method-assign]
        except AttributeError:  # a result type with slots: the watcher or close() reports it
            pass

    def wait_all(self) -> BaseException | None:
        """Wait for the runs the script did not wait for; the first failure among them, or None.

        A failure the script already saw through ``wait_until_finish`` is its own to handle.
        """
        with self._lock:
            pending = [t.result for t in self._tracked if not t.waited and t.result is not None]
        first: BaseException | None = None
        for result in pending:
            try:
                result.wait_until_finish()
            except BaseException as e:
                if first is None:
                    first = e
        return first

    def cancel_running(self) -> None:
        """Cancel every tracked run that has not finished (best effort)."""
        with self._lock:
            running = [t.result for t in self._tracked if not t.finished() and t.result]
        for result in running:
            try:
                result.cancel()
            except Exception:  # cancelling is best effort while reporting another failure
                pass

    def close(self) -> None:
        """Report every finished run and stop the live display and its thread."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join()
            self._watcher = None
        with self._lock:
            for tracked in self._tracked:
                if not tracked.reported and tracked.finished():
                    self._report(tracked)
            self._stop_live()

    # -- internals (called with the lock held) -------------------------------------------------

    def _report(self, tracked: _Tracked) -> None:
        with self._lock:
            if tracked.reported:
                return
            tracked.reported = True
            if self._console is None:
                return
            table = summary_table(tracked, self._clock())
            if self._live is not None and not all(t.reported for t in self._tracked):
                self._live.update(self._render())
                self._live.console.print(table)  # above the display of the runs still going
            else:
                self._stop_live()
                self._console.print(table)

    def _render(self) -> RenderableType:
        now = self._clock()
        return Group(*(live_table(t, now) for t in self._tracked if not t.reported))

    def _start_live(self) -> None:
        if self._live is None:
            assert self._console is not None
            self._live = Live(
                self._render(),
                console=self._console,
                auto_refresh=False,
                transient=True,
                redirect_stdout=_same_terminal(self._console),
                redirect_stderr=True,
            )
            self._live.start(refresh=True)
        if self._watcher is None:
            self._watcher = threading.Thread(
                target=self._watch, name="headrace-progress", daemon=True
            )
            self._watcher.start()

    def _stop_live(self) -> None:
        if self._live is not None:
            live, self._live = self._live, None
            live.stop()

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                for tracked in self._tracked:
                    if not tracked.reported and tracked.finished():
                        self._report(tracked)
                if self._live is not None:
                    self._live.update(self._render(), refresh=True)


def _same_terminal(console: Console) -> bool:
    """Whether stdout is a terminal too, so moving prints above the display keeps them visible."""
    stdout: Any = sys.stdout
    try:
        return bool(console.is_terminal and stdout.isatty())
    except (AttributeError, ValueError):
        return False
