"""``Windowing``: a windowing strategy as a user-facing value (Beam's ``core.Windowing``).

The graph keeps windowing as :class:`headrace.graph.nodes.WindowingStrategy` (plain data with
payloads); this class is the object Beam code builds and compares: a window function, a trigger,
an accumulation mode, a timestamp combiner and an allowed lateness.
"""

from __future__ import annotations

from typing import Any

from headrace.model.timestamp import Duration
from headrace.model.trigger import AccumulationMode, DefaultTrigger, TriggerFn
from headrace.model.window import GlobalWindows, TimestampCombiner, WindowFn

__all__ = ["Windowing"]


class Windowing:
    """A windowing strategy (Beam's ``Windowing``).

    Without a trigger the default trigger and DISCARDING are used; a non-default trigger needs an
    ``accumulation_mode``, as in Beam.

    >>> Windowing(GlobalWindows()).is_default()
    True
    >>> from headrace.model.window import FixedWindows
    >>> Windowing(FixedWindows(10)) == Windowing(FixedWindows(10))
    True
    """

    def __init__(
        self,
        windowfn: WindowFn,
        triggerfn: TriggerFn | None = None,
        accumulation_mode: AccumulationMode | None = None,
        timestamp_combiner: TimestampCombiner | None = None,
        allowed_lateness: Any = 0,
        environment_id: str | None = None,
    ) -> None:
        if not isinstance(windowfn, WindowFn):
            raise TypeError(f"Windowing needs a WindowFn, got {windowfn!r}")
        if triggerfn is None:
            triggerfn = DefaultTrigger()
        if accumulation_mode is None:
            if triggerfn != DefaultTrigger():
                raise ValueError("accumulation_mode must be provided for non-trivial triggers")
            accumulation_mode = AccumulationMode.DISCARDING
        self.windowfn = windowfn
        self.triggerfn = triggerfn
        self.accumulation_mode = accumulation_mode
        self.allowed_lateness = Duration.of(allowed_lateness)
        self.environment_id = environment_id
        self.timestamp_combiner = timestamp_combiner or TimestampCombiner.OUTPUT_AT_EOW
        self._is_default = (
            isinstance(windowfn, GlobalWindows)
            and triggerfn == DefaultTrigger()
            and accumulation_mode == AccumulationMode.DISCARDING
            and self.timestamp_combiner == TimestampCombiner.OUTPUT_AT_EOW
            and self.allowed_lateness == 0
        )

    def is_default(self) -> bool:
        return self._is_default

    def _key(self) -> tuple[Any, ...]:
        return (
            self.windowfn,
            self.triggerfn,
            self.accumulation_mode,
            self.timestamp_combiner,
            self.allowed_lateness,
            self.environment_id,
        )

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return False
        assert isinstance(other, Windowing)
        return (self._is_default and other._is_default) or self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"Windowing({self.windowfn}, {self.triggerfn}, {self.accumulation_mode}, "
            f"{self.timestamp_combiner}, {self.environment_id})"
        )
