"""Triggers and accumulation modes: *when* in processing time a window's results are emitted.

These are plain, picklable descriptions with Beam's names and constructor signatures. They hold
no state and do nothing by themselves: ``headrace.exec.triggers`` compiles a trigger into a state
machine that the grouping operators drive per key and window, in batch and in streaming alike.

A trigger *fires* to emit a pane of a window. Some triggers *finish* after firing (``AfterCount``,
``AfterProcessingTime``, ``AfterWatermark`` without late firings): elements that arrive for the
window after that are dropped and counted. :meth:`TriggerFn.may_finish` says whether that can
happen, so a pipeline can warn about it.

>>> AfterWatermark(early=AfterCount(100), late=AfterProcessingTime(60))
AfterWatermark(early=AfterCount(100), late=AfterProcessingTime(delay=60))
>>> Repeatedly(AfterCount(2)).may_finish(), AfterCount(2).may_finish()
(False, True)
"""

from __future__ import annotations

import enum
import numbers
from typing import Any

from headrace.model.timestamp import to_micros

__all__ = [
    "AccumulationMode",
    "AfterAll",
    "AfterAny",
    "AfterCount",
    "AfterEach",
    "AfterProcessingTime",
    "AfterWatermark",
    "Always",
    "DataLossReason",
    "DefaultTrigger",
    "OrFinally",
    "Repeatedly",
    "TriggerFn",
]


class AccumulationMode(enum.IntEnum):
    """What a window's later panes contain after an earlier pane fired.

    ``DISCARDING``: only the elements that arrived since the previous pane.
    ``ACCUMULATING``: every element of the window so far.
    """

    DISCARDING = 1
    ACCUMULATING = 2


class DataLossReason(enum.Flag):
    """Why a trigger may lose data (Beam's ``trigger.DataLossReason``): ``MAY_FINISH`` when it
    can stop firing while late data may still come; ``NO_POTENTIAL_LOSS`` otherwise.
    ``CONDITION_NOT_GUARANTEED`` exists for Beam's sake (deprecated there; never returned)."""

    NO_POTENTIAL_LOSS = 0
    MAY_FINISH = enum.auto()
    CONDITION_NOT_GUARANTEED = enum.auto()


class TriggerFn:
    """Base class of triggers: a description of when a window's panes fire.

    Compose the built-in triggers; custom subclasses are not executed.
    """

    __slots__ = ()

    def may_finish(self, allowed_lateness: Any = None) -> bool:
        """Whether this trigger can stop firing, so that later elements of a window are dropped.

        ``allowed_lateness`` (seconds, optional) refines the answer where it matters: a trigger
        that finishes once the watermark passes the end of the window loses nothing when no
        lateness is allowed.
        """
        raise NotImplementedError

    def may_lose_data(self, windowing: Any) -> DataLossReason:
        """Beam's question about the same thing as :meth:`may_finish`, for a ``Windowing``
        (its ``allowed_lateness`` decides for ``AfterWatermark`` without a late trigger).

        >>> from headrace.model.window import GlobalWindows
        >>> from headrace.model.windowing import Windowing
        >>> w = Windowing(GlobalWindows(), AfterCount(2), AccumulationMode.DISCARDING)
        >>> AfterCount(2).may_lose_data(w), Repeatedly(AfterCount(2)).may_lose_data(w)
        (<DataLossReason.MAY_FINISH: 1>, <DataLossReason.NO_POTENTIAL_LOSS: 0>)
        """
        if self.may_finish(windowing.allowed_lateness):
            return DataLossReason.MAY_FINISH
        return DataLossReason.NO_POTENTIAL_LOSS

    def has_ontime_pane(self) -> bool:
        """Whether this trigger fires when the watermark passes the end of the window."""
        raise NotImplementedError

    def get_continuation_trigger(self) -> TriggerFn:
        """The trigger Beam gives a grouping's output (so that a trigger that fires once, or
        several times, keeps doing so downstream).

        >>> AfterEach(AfterCount(2), AfterCount(5)).get_continuation_trigger()
        Repeatedly(AfterAny(AfterCount(1), AfterCount(1)))
        """
        return self

    def _key(self) -> tuple[Any, ...]:
        return ()

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TriggerFn)
            and type(self) is type(other)
            and self._key() == other._key()
        )

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self._key())


class DefaultTrigger(TriggerFn):
    """Fire when the watermark passes the end of the window, then once per late element.

    Semantically ``Repeatedly(AfterWatermark())``; it never finishes.

    >>> DefaultTrigger() == DefaultTrigger(), DefaultTrigger().may_finish()
    (True, False)
    """

    __slots__ = ()

    def may_finish(self, allowed_lateness: Any = None) -> bool:
        return False

    def has_ontime_pane(self) -> bool:
        return True

    def __repr__(self) -> str:
        return "DefaultTrigger()"


class Always(TriggerFn):
    """Fire for every element (a pane per element); never finishes.

    >>> Always()
    Always
    """

    __slots__ = ()

    def may_finish(self, allowed_lateness: Any = None) -> bool:
        return False

    def has_ontime_pane(self) -> bool:
        return False

    def __repr__(self) -> str:
        return "Always"


class AfterProcessingTime(TriggerFn):
    """Fire once, ``delay`` seconds of processing time after the first element of the pane.

    >>> AfterProcessingTime(30).delay_us
    30000000
    """

    __slots__ = ("delay", "delay_us")

    def __init__(self, delay: Any = 0) -> None:
        self.delay = delay
        self.delay_us = to_micros(delay)
        if self.delay_us < 0:
            raise ValueError(
                f"AfterProcessingTime needs a delay of 0 or more seconds, got {delay!r}"
            )

    def _key(self) -> tuple[Any, ...]:
        return (self.delay,)

    def may_finish(self, allowed_lateness: Any = None) -> bool:
        return True

    def has_ontime_pane(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"AfterProcessingTime(delay={self.delay!r})"

    def get_continuation_trigger(self) -> TriggerFn:
        # Beam's continuation is _AfterSynchronizedProcessingTime, which its runners fire on
        # every element and never finish: Always() does exactly that here.
        return Always()


class AfterCount(TriggerFn):
    """Fire once, when the pane holds at least ``count`` elements.

    >>> AfterCount(3)
    AfterCount(3)
    """

    __slots__ = ("count",)
    count: int

    def __init__(self, count: int) -> None:
        if isinstance(count, bool) or not isinstance(count, numbers.Integral) or count < 1:
            raise ValueError(f"AfterCount needs a positive integer count, got {count!r}")
        self.count = int(count)

    def _key(self) -> tuple[Any, ...]:
        return (self.count,)

    def may_finish(self, allowed_lateness: Any = None) -> bool:
        return True

    def has_ontime_pane(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"AfterCount({self.count})"

    def get_continuation_trigger(self) -> TriggerFn:
        return AfterCount(1)


class Repeatedly(TriggerFn):
    """Fire whenever ``underlying`` fires, starting it afresh after each firing; never finishes.

    >>> Repeatedly(AfterCount(2))
    Repeatedly(AfterCount(2))
    """

    __slots__ = ("underlying",)

    def __init__(self, underlying: TriggerFn) -> None:
        self.underlying = _check_trigger(underlying, "Repeatedly")

    def _key(self) -> tuple[Any, ...]:
        return (self.underlying,)

    def may_finish(self, allowed_lateness: Any = None) -> bool:
        return False

    def has_ontime_pane(self) -> bool:
        return self.underlying.has_ontime_pane()

    def __repr__(self) -> str:
        return f"Repeatedly({self.underlying!r})"

    def get_continuation_trigger(self) -> TriggerFn:
        return Repeatedly(self.underlying.get_continuation_trigger())


class AfterWatermark(TriggerFn):
    """Fire when the watermark passes the end of the window (the ON_TIME pane).

    ``early``: fire repeatedly with it before that (EARLY panes). ``late``: fire repeatedly with it
    after that, for elements within the allowed lateness (LATE panes). Without ``late`` the
    trigger finishes after the ON_TIME pane. Like Beam, ``early`` and ``late`` are kept wrapped in
    :class:`Repeatedly`.

    >>> AfterWatermark(late=AfterCount(1)).late
    Repeatedly(AfterCount(1))
    """

    __slots__ = ("early", "late")

    def __init__(self, early: TriggerFn | None = None, late: TriggerFn | None = None) -> None:
        self.early = _repeated(early, "AfterWatermark(early=...)")
        self.late = _repeated(late, "AfterWatermark(late=...)")

    def _key(self) -> tuple[Any, ...]:
        return (self.early, self.late)

    def __reduce__(self) -> tuple[Any, ...]:
        return (AfterWatermark, (self.early, self.late))

    def may_finish(self, allowed_lateness: Any = None) -> bool:
        if self.late is not None:
            return False
        return allowed_lateness is None or to_micros(allowed_lateness) > 0

    def has_ontime_pane(self) -> bool:
        return True

    def __repr__(self) -> str:
        parts = []
        if self.early is not None:
            parts.append(f"early={self.early.underlying!r}")
        if self.late is not None:
            parts.append(f"late={self.late.underlying!r}")
        return f"AfterWatermark({', '.join(parts)})"

    def get_continuation_trigger(self) -> TriggerFn:
        early = self.early.get_continuation_trigger() if self.early is not None else None
        late = self.late.get_continuation_trigger() if self.late is not None else None
        return AfterWatermark(early, late)


class _Composite(TriggerFn):
    __slots__ = ("triggers",)

    def __init__(self, *triggers: TriggerFn) -> None:
        name = type(self).__name__
        if not triggers:
            raise ValueError(f"{name} needs at least one trigger, e.g. {name}(AfterCount(10))")
        self.triggers = tuple(_check_trigger(t, name) for t in triggers)

    def _key(self) -> tuple[Any, ...]:
        return self.triggers

    def has_ontime_pane(self) -> bool:
        return any(t.has_ontime_pane() for t in self.triggers)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(t) for t in self.triggers)})"

    def get_continuation_trigger(self) -> TriggerFn:
        return type(self)(*(t.get_continuation_trigger() for t in self.triggers))


class AfterAny(_Composite):
    """Fire when any subtrigger fires; finished once a subtrigger that fired has finished.

    >>> AfterAny(AfterCount(10), AfterProcessingTime(60)).may_finish()
    True
    """

    __slots__ = ()

    def may_finish(self, allowed_lateness: Any = None) -> bool:
        return any(t.may_finish(allowed_lateness) for t in self.triggers)


class AfterAll(_Composite):
    """Fire when every subtrigger has fired (at once or earlier); finished when all have.

    >>> AfterAll(AfterCount(2), Repeatedly(AfterCount(1))).may_finish()
    False
    """

    __slots__ = ()

    def may_finish(self, allowed_lateness: Any = None) -> bool:
        return all(t.may_finish(allowed_lateness) for t in self.triggers)


class AfterEach(_Composite):
    """Run the subtriggers in sequence: fire with the first until it finishes, then the next.

    >>> AfterEach(AfterCount(1), AfterCount(2))
    AfterEach(AfterCount(1), AfterCount(2))
    """

    __slots__ = ()

    def may_finish(self, allowed_lateness: Any = None) -> bool:
        return all(t.may_finish(allowed_lateness) for t in self.triggers)

    def get_continuation_trigger(self) -> TriggerFn:
        return Repeatedly(AfterAny(*(t.get_continuation_trigger() for t in self.triggers)))


class OrFinally(AfterAny):
    """Fire whenever ``trigger`` fires, until ``finally_trigger`` fires: that fires a last pane.

    >>> OrFinally(Repeatedly(AfterCount(2)), AfterCount(5)).may_finish()
    True
    """

    __slots__ = ()

    def __init__(self, trigger: TriggerFn, finally_trigger: TriggerFn) -> None:
        super().__init__(trigger, finally_trigger)

    def __reduce__(self) -> tuple[Any, ...]:
        return (OrFinally, self.triggers)


def _check_trigger(trigger: Any, where: str) -> TriggerFn:
    if isinstance(trigger, type) and issubclass(trigger, TriggerFn):
        raise TypeError(f"{where} needs a trigger instance, got the class {trigger.__name__}")
    if not isinstance(trigger, TriggerFn):
        raise TypeError(f"{where} needs a trigger such as AfterCount(10), got {trigger!r}")
    return trigger


def _repeated(trigger: TriggerFn | None, where: str) -> Repeatedly | None:
    if trigger is None:
        return None
    if isinstance(trigger, Repeatedly):
        return trigger
    return Repeatedly(_check_trigger(trigger, where))
