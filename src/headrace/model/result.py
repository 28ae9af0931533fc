"""The Job API every runner returns: :class:`PipelineResult` and :class:`PipelineState`.

States move ``STOPPED -> RUNNING -> DONE | FAILED | CANCELLED``; the last three are terminal.
Only the runner that owns a result moves its state.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.model.metrics import MetricResults

__all__ = ["PipelineResult", "PipelineState"]


class PipelineState(enum.StrEnum):
    """Where a run is. Compare with ``result.state == PipelineState.DONE``.

    Beam's names, all of them; the direct runner's runs go STOPPED → RUNNING → one of DONE,
    FAILED, CANCELLED, or DRAINED when a streaming run was drained (as on Dataflow). The job
    service also shows DRAINING and CANCELLING while a request is under way.

    >>> PipelineState.is_terminal(PipelineState.DRAINED), PipelineState.is_terminal("RUNNING")
    (True, False)
    """

    UNKNOWN = "UNKNOWN"
    STARTING = "STARTING"
    STOPPED = "STOPPED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    UPDATED = "UPDATED"
    DRAINING = "DRAINING"
    DRAINED = "DRAINED"
    PENDING = "PENDING"
    CANCELLING = "CANCELLING"
    RESOURCE_CLEANING_UP = "RESOURCE_CLEANING_UP"
    PAUSING = "PAUSING"
    PAUSED = "PAUSED"
    UNRECOGNIZED = "UNRECOGNIZED"

    @classmethod
    def is_terminal(cls, state: PipelineState | str) -> bool:
        return state in (cls.DONE, cls.FAILED, cls.CANCELLED, cls.UPDATED, cls.DRAINED)

    def __str__(self) -> str:
        return self.value


class PipelineResult:
    """A handle on a run: its state, a way to wait for it or cancel it, and its metrics."""

    def __init__(self, state: PipelineState = PipelineState.STOPPED) -> None:
        self._state = state

    @property
    def state(self) -> PipelineState:
        return self._state

    def wait_until_finish(self, duration: float | None = None) -> PipelineState:
        """Wait for the run to end (at most ``duration`` milliseconds, as in Beam)."""
        raise NotImplementedError

    def cancel(self) -> PipelineState:
        raise NotImplementedError

    def metrics(self) -> MetricResults:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.state}>"

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")
