"""Progress of the pipelines a script runs: a live rich display and a summary table per run.

A :class:`RunMonitor` is told about each pipeline result as the runner hands it out
(:meth:`RunMonitor.observe`). Each observed run is *tracked* until it is *reported*: the moment the
run has finished and the script waited for it (or the watcher thread noticed the end, or the
script ended), its summary table is printed once and it leaves the live display.

Threads: the script's own thread calls ``observe`` and, through the wrapped
``wait_until_finish``, ``finish``; in live mode one watcher thread redraws the display a few times
per second and reports runs that ended. Every change to the tracked list and every print happens
under one lock, so a summary is never printed twice nor torn by a redraw.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from headrace.model.result import PipelineState
from headrace.model.timestamp import MIN_US

_YEAR_10000_US = 253_402_300_800_000_000

__all__ = ["ObservedResult", "RunMonitor", "StageView", "format_rate", "format_watermark"]


class StageView(Protocol):
    """The per-stage counts a runner publishes (``StageProgress`` of the direct runner)."""

    name: str
    state: str
    elements_in: int
    elements_out: int
    seconds: float
    spills: int


class ObservedResult(Protocol):
    """A pipeline result that publishes per-stage progress, such as ``DirectPipelineResult``."""

    @property
    def state(self) -> PipelineState: ...

    progress: Sequence[StageView]
    started: float
    finished: float | None

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


@dataclass(eq=False)
class _Tracked:
    result: ObservedResult
    number: int
    stage_started: dict[int, float] = field(default_factory=dict)
    reported: bool = False
    waited: bool = False  # the script waited for the end (and saw any failure itself)

    def finished(self) -> bool:
        if getattr(self.result, "finished", None) is not None:
            return True
        if hasattr(self.result, "finished"):
            return False
        return PipelineState.is_terminal(self.result.state)

    def note_starts(self, now: float) -> None:
        for i, stage in enumerate(self.result.progress):
            if stage.state == "running" and i not in self.stage_started:
                self.stage_started[i] = now

    def stage_state(self, stage: StageView) -> str:
        run_state = self.result.state
        if stage.state == "running" and run_state == PipelineState.FAILED:
            return "failed"
        if stage.state == "running" and run_state == PipelineState.CANCELLED:
            return "cancelled"
        if stage.state == "pending" and PipelineState.is_terminal(run_state):
            return "not run"
        return stage.state

    def stage_seconds(self, i: int, stage: StageView, now: float) -> float | None:
        if stage.state == "done":
            return stage.seconds
        start = self.stage_started.get(i)
        if start is None:
            return None
        end = self.result.finished if self.result.finished is not None else now
        return max(end - start, 0.0)

    def elapsed(self, now: float) -> float:
        end = self.result.finished if self.result.finished is not None else now
        return max(end - self.result.started, 0.0)


def _state_text(state: str) -> Text:
    return Text(state, style=_STATE_STYLES.get(state, ""))


def live_table(tracked: _Tracked, now: float) -> Table:
    """The live view of one run: state, counts and throughput per stage."""
    title = f"pipeline {tracked.number}: {tracked.result.state} {tracked.elapsed(now):.1f} s"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("stage", overflow="fold")
    table.add_column("state")
    table.add_column("in", justify="right")
    table.add_column("out", justify="right")
    table.add_column("elements/s", justify="right")
    table.add_column("seconds", justify="right")
    stages = tracked.result.progress
    watermarks = any(getattr(s, "watermark_us", None) is not None for s in stages)
    if watermarks:
        table.add_column("watermark", justify="right")
    for i, stage in enumerate(stages):
        seconds = tracked.stage_seconds(i, stage, now)
        row: list[RenderableType] = [
            f"S{i} {stage.name}",
            _state_text(tracked.stage_state(stage)),
            f"{stage.elements_in:,}",
            f"{stage.elements_out:,}",
            format_rate(stage.elements_in, seconds or 0.0),
            _seconds(seconds),
        ]
        if watermarks:
            row.append(format_watermark(getattr(stage, "watermark_us", None)))
        table.add_row(*row)
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
    """The end-of-run table: per stage its state, elements in and out, seconds and spills."""
    result = tracked.result
    title = f"pipeline {tracked.number}: {result.state} in {tracked.elapsed(now):.2f} s"
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("stage", overflow="fold")
    table.add_column("state")
    table.add_column("in", justify="right")
    table.add_column("out", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("spills", justify="right")
    table.add_column("elements/s", justify="right")
    for i, stage in enumerate(result.progress):
        seconds = tracked.stage_seconds(i, stage, now)
        table.add_row(
            f"S{i} {stage.name}",
            _state_text(tracked.stage_state(stage)),
            f"{stage.elements_in:,}",
            f"{stage.elements_out:,}",
            _seconds(seconds),
            f"{stage.spills:,}",
            format_rate(stage.elements_in, seconds or 0.0),
        )
    return table


class RunMonitor:
    """Tracks pipeline results while a script runs and shows their progress on ``console``.

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
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._console = console
        self._live_enabled = live and console is not None
        self._interval = 1.0 / refresh_per_second
        self._clock = clock
        self._lock = threading.RLock()
        self._tracked: list[_Tracked] = []
        self._live: Live | None = None
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    @property
    def results(self) -> list[ObservedResult]:
        """Every run observed so far, in order."""
        with self._lock:
            return [t.result for t in self._tracked]

    def observe(self, result: ObservedResult) -> None:
        """Start tracking ``result``; its summary is printed when the script waits for it."""
        with self._lock:
            tracked = _Tracked(result, len(self._tracked) + 1)
            tracked.note_starts(self._clock())
            self._tracked.append(tracked)
            self._wrap_wait(tracked)
            if self._live_enabled:
                self._start_live()

    def _wrap_wait(self, tracked: _Tracked) -> None:
        original = tracked.result.wait_until_finish

        def wait_until_finish(duration: float | None = None) -> PipelineState:
            try:
                return original(duration)
            finally:
                if tracked.finished():
                    tracked.waited = True
                    self._report(tracked)

        try:
            tracked.result.wait_until_finish = wait_until_finish  # type: ignore[method-assign]
        except AttributeError:  # a result type with slots: the watcher or close() reports it
            pass

    def finish(self, result: ObservedResult) -> None:
        """Report ``result`` now if it has finished (idempotent)."""
        with self._lock:
            for tracked in self._tracked:
                if tracked.result is result and tracked.finished():
                    self._report(tracked)

    def wait_all(self) -> BaseException | None:
        """Wait for the runs the script did not wait for; the first failure among them, or None.

        A failure the script already saw through ``wait_until_finish`` is its own to handle.
        """
        with self._lock:
            pending = [t.result for t in self._tracked if not t.waited]
        first: BaseException | None = None
        for result in pending:
            try:
                result.wait_until_finish()
            except BaseException as e:
                if first is None:
                    first = e
        return first

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
        tables = []
        for tracked in self._tracked:
            if not tracked.reported:
                tracked.note_starts(now)
                tables.append(live_table(tracked, now))
        return Group(*tables)

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
