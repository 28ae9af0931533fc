"""Progress of a streaming run: one row per step, sampled, reported as run events.

A streaming run has no stages that finish one after another: every step runs for the whole run.
:class:`StreamingProgress` keeps one :class:`~headrace.runners.coordinator.StageProgress` per
step (the rows ``headrace run`` shows) and a sampler thread that, every
:data:`~headrace.runners.events.PROGRESS_S` seconds, copies each step's element counts from its
operator and emits ``StageUpdated`` when they moved and ``Watermark`` when the step's output
watermark advanced. The sampler only reads counters and the watermark table of the
:class:`~headrace.runners.direct.streaming.StreamingRun` (plain ints, written by the run's own
thread), so it adds nothing to the run's hot path.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from headrace.model.timestamp import MIN_US
from headrace.runners import events
from headrace.runners.coordinator import StageProgress
from headrace.runners.direct.streaming import StreamingRun

__all__ = ["StreamingProgress"]


class StreamingProgress:
    """The per-step rows and the sampler of one streaming run (see the module docstring)."""

    def __init__(self, run: StreamingRun, run_id: str) -> None:
        self.run = run
        self.run_id = run_id
        self.nodes = list(run.order)
        self.progress = [StageProgress(node.label) for node in self.nodes]
        self._watermarks = [MIN_US] * len(self.nodes)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        now = time.perf_counter()
        for p in self.progress:
            p.state, p.started = "running", now
        self._thread = threading.Thread(target=self._loop, name="headrace-steps", daemon=True)
        self._thread.start()

    def stop(self, state: str) -> None:
        """Stop sampling, take a last sample and mark every step ``state``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        now = time.perf_counter()
        for p in self.progress:
            p.state = state
            if p.started is not None:
                p.seconds = now - p.started

    def _loop(self) -> None:
        while not self._stop.wait(events.PROGRESS_S):
            self.sample()

    def _counts(self, node: Any) -> tuple[int, int]:
        """Elements into the step (its main inputs) and out of it (all its outputs), counted on
        the PCollections themselves, so sources, groupings and stateful steps count too."""
        counts = self.run.element_counts
        elements_in = sum(counts.get(pid, 0) for pid in node.inputs)
        elements_out = sum(counts.get(pid, 0) for _, pid in node.outputs)
        return elements_in, elements_out

    def sample(self) -> None:
        watermarks = self.run.watermarks
        for i, node in enumerate(self.nodes):
            p = self.progress[i]
            elements_in, elements_out = self._counts(node)
            if (elements_in, elements_out) != (p.elements_in, p.elements_out):
                p.elements_in, p.elements_out = elements_in, elements_out
                events.emit(events.StageUpdated(self.run_id, i, p.name, elements_in, elements_out))
            if node.outputs:
                wm = watermarks.get(node.outputs[0][1], MIN_US)
                if wm > self._watermarks[i]:
                    self._watermarks[i] = p.watermark_us = wm
                    events.emit(events.Watermark(self.run_id, p.name, wm))
