"""Trigger state machines, shared by every runner, batch and streaming.

A :class:`TriggerMachine` is compiled once per grouping from a ``headrace.model.trigger``
description. It owns no per-window data: the caller keeps one *state* per pane (key and window),
a flat ``list`` made by :meth:`TriggerMachine.new_state`, and passes it to every call. The state is
plain data (bools, ints, ``None``), cheap to copy and to pickle.

State layout
------------
Each node of the trigger tree owns a slice of the list starting at its offset ``off``:
``state[off]`` is the node's *finished* flag; the node's own slots follow, then its children's
slices. Per node:

=====================  =======================================================================
node                   own slots
=====================  =======================================================================
DefaultTrigger         ``dirty``: an element arrived since the last firing
Always                 ``dirty``
AfterCount(n)          ``count``: elements since the node (re)started
AfterProcessingTime    ``deadline``: processing time (us) at which it fires, set by the first
                       element after the node (re)started
AfterWatermark         ``phase``: 0 before the ON_TIME firing, 1 after it; then the ``early``
                       and ``late`` children (each a Repeatedly)
Repeatedly             none; one child
AfterAny/All/OrFinally none; the children
AfterEach              ``index`` of the current child; the children
=====================  =======================================================================

Who moves the state
-------------------
The driver (``headrace.exec.panes.PaneEngine``) calls, for one pane:

- :meth:`~TriggerMachine.on_element` when an element joins the pane,
- :meth:`~TriggerMachine.should_fire` after an element, when the watermark passes the end of the
  window, and when processing time reaches :meth:`~TriggerMachine.next_deadline`,
- :meth:`~TriggerMachine.on_fire` when it emits the pane: repeated parts restart, one-shot parts
  are marked finished; :meth:`~TriggerMachine.is_finished` then says whether the window is closed,
- :meth:`~TriggerMachine.merge` when merging windows (Sessions) combine panes.

Every call takes a :class:`TriggerContext` carrying the window's end, the input watermark and the
processing time (all int microseconds). The watermark condition is Beam's: the end of the window
is passed when ``watermark > window.max_timestamp()``; a processing-time deadline is reached when
``now >= deadline``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from headrace.model.trigger import (
    AfterAll,
    AfterAny,
    AfterCount,
    AfterEach,
    AfterProcessingTime,
    AfterWatermark,
    Always,
    DefaultTrigger,
    Repeatedly,
    TriggerFn,
)
from headrace.model.window import PaneInfo, PaneInfoTiming

__all__ = ["TriggerContext", "TriggerMachine", "pane_info"]

State = list[Any]


class TriggerContext:
    """What a trigger sees: the window's max timestamp, the watermark and the processing time.

    Drivers keep one context and update its fields in place rather than allocate one per call.
    """

    __slots__ = ("max_timestamp", "now", "watermark", "window")

    def __init__(
        self, window: Any = None, max_timestamp: int = 0, watermark: int = 0, now: int = 0
    ) -> None:
        self.window = window
        self.max_timestamp = max_timestamp
        self.watermark = watermark
        self.now = now

    def __repr__(self) -> str:
        return (
            f"TriggerContext(window={self.window!r}, max_timestamp={self.max_timestamp}, "
            f"watermark={self.watermark}, now={self.now})"
        )


class _Node:
    """One node of a compiled trigger; see the module docstring for its slots."""

    __slots__ = ("children", "off", "size")
    own_slots: tuple[Any, ...] = ()

    def __init__(self, children: Sequence[_Node] = ()) -> None:
        self.children = tuple(children)
        self.off = 0
        self.size = 0

    def layout(self, off: int, initial: State) -> int:
        """Place this subtree at ``off`` in ``initial``; return the offset after it."""
        self.off = off
        initial.append(False)
        initial.extend(self.own_slots)
        end = off + 1 + len(self.own_slots)
        for child in self.children:
            end = child.layout(end, initial)
        self.size = end - off
        return end

    def reset(self, st: State, initial: State) -> None:
        o = self.off
        st[o : o + self.size] = initial[o : o + self.size]

    def on_element(self, st: State, ctx: TriggerContext) -> None:
        for c in self.children:
            if not st[c.off]:
                c.on_element(st, ctx)

    def should_fire(self, st: State, ctx: TriggerContext) -> bool:
        raise NotImplementedError

    def on_fire(self, st: State, ctx: TriggerContext, initial: State) -> None:
        raise NotImplementedError

    def merge(
        self, st: State, states: Sequence[State], ctx: TriggerContext, initial: State
    ) -> None:
        st[self.off] = all(s[self.off] for s in states)
        for c in self.children:
            c.merge(st, states, ctx, initial)

    def deadline(self, st: State, now: int) -> int | None:
        best = None
        for c in self.children:
            if not st[c.off]:
                d = c.deadline(st, now)
                if d is not None and (best is None or d < best):
                    best = d
        return best


class _Default(_Node):
    __slots__ = ()
    own_slots = (False,)

    def on_element(self, st: State, ctx: TriggerContext) -> None:
        st[self.off + 1] = True

    def should_fire(self, st: State, ctx: TriggerContext) -> bool:
        return bool(st[self.off + 1]) and ctx.watermark > ctx.max_timestamp

    def on_fire(self, st: State, ctx: TriggerContext, initial: State) -> None:
        st[self.off + 1] = False

    def merge(
        self, st: State, states: Sequence[State], ctx: TriggerContext, initial: State
    ) -> None:
        st[self.off] = False
        st[self.off + 1] = any(s[self.off + 1] for s in states)


class _Always(_Default):
    __slots__ = ()

    def should_fire(self, st: State, ctx: TriggerContext) -> bool:
        return bool(st[self.off + 1])


class _Count(_Node):
    __slots__ = ("count",)
    own_slots = (0,)

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def on_element(self, st: State, ctx: TriggerContext) -> None:
        st[self.off + 1] += 1

    def should_fire(self, st: State, ctx: TriggerContext) -> bool:
        return bool(st[self.off + 1] >= self.count)

    def on_fire(self, st: State, ctx: TriggerContext, initial: State) -> None:
        st[self.off] = True

    def merge(
        self, st: State, states: Sequence[State], ctx: TriggerContext, initial: State
    ) -> None:
        o = self.off
        st[o] = all(s[o] for s in states)
        st[o + 1] = sum(s[o + 1] for s in states)


class _ProcessingTime(_Node):
    __slots__ = ("delay",)
    own_slots = (None,)

    def __init__(self, delay_us: int) -> None:
        super().__init__()
        self.delay = delay_us

    def on_element(self, st: State, ctx: TriggerContext) -> None:
        if st[self.off + 1] is None:
            st[self.off + 1] = ctx.now + self.delay

    def should_fire(self, st: State, ctx: TriggerContext) -> bool:
        d = st[self.off + 1]
        return d is not None and ctx.now >= d

    def on_fire(self, st: State, ctx: TriggerContext, initial: State) -> None:
        st[self.off] = True

    def merge(
        self, st: State, states: Sequence[State], ctx: TriggerContext, initial: State
    ) -> None:
        o = self.off
        st[o] = all(s[o] for s in states)
        pending = [s[o + 1] for s in states if s[o + 1] is not None]
        st[o + 1] = min(pending) if pending else None

    def deadline(self, st: State, now: int) -> int | None:
        d = st[self.off + 1]
        return d if d is not None and d > now else None


class _Repeat(_Node):
    __slots__ = ()

    def should_fire(self, st: State, ctx: TriggerContext) -> bool:
        return self.children[0].should_fire(st, ctx)

    def on_fire(self, st: State, ctx: TriggerContext, initial: State) -> None:
        child = self.children[0]
        child.on_fire(st, ctx, initial)
        if st[child.off]:
            child.reset(st, initial)

    def merge(
        self, st: State, states: Sequence[State], ctx: TriggerContext, initial: State
    ) -> None:
        super().merge(st, states, ctx, initial)
        st[self.off] = False
        child = self.children[0]
        if st[child.off]:  # finished in every merged window: start it afresh
            child.reset(st, initial)


class _Watermark(_Node):
    """Children: ``early`` then ``late`` (either may be absent: see ``has_early``/``has_late``)."""

    __slots__ = ("early", "late")
    own_slots = (0,)

    def __init__(self, early: _Node | None, late: _Node | None) -> None:
        super().__init__([c for c in (early, late) if c is not None])
        self.early = early
        self.late = late

    def on_element(self, st: State, ctx: TriggerContext) -> None:
        child = self.early if st[self.off + 1] == 0 else self.late
        if child is not None:
            child.on_element(st, ctx)

    def should_fire(self, st: State, ctx: TriggerContext) -> bool:
        if st[self.off + 1] == 0:
            if ctx.watermark > ctx.max_timestamp:
                return True
            return self.early is not None and self.early.should_fire(st, ctx)
        return self.late is not None and self.late.should_fire(st, ctx)

    def on_fire(self, st: State, ctx: TriggerContext, initial: State) -> None:
        o = self.off
        if st[o + 1] == 0:
            if ctx.watermark > ctx.max_timestamp:
                st[o + 1] = 1
                if self.late is None:
                    st[o] = True
            elif self.early is not None:
                self.early.on_fire(st, ctx, initial)
        elif self.late is not None:
            self.late.on_fire(st, ctx, initial)

    def merge(
        self, st: State, states: Sequence[State], ctx: TriggerContext, initial: State
    ) -> None:
        o = self.off
        for c in self.children:
            c.merge(st, states, ctx, initial)
        passed = ctx.watermark > ctx.max_timestamp
        st[o + 1] = 1 if passed and any(s[o + 1] == 1 for s in states) else 0
        st[o] = st[o + 1] == 1 and self.late is None

    def deadline(self, st: State, now: int) -> int | None:
        child = self.early if st[self.off + 1] == 0 else self.late
        return child.deadline(st, now) if child is not None else None


class _Any(_Node):
    __slots__ = ()

    def should_fire(self, st: State, ctx: TriggerContext) -> bool:
        return any(not st[c.off] and c.should_fire(st, ctx) for c in self.children)

    def on_fire(self, st: State, ctx: TriggerContext, initial: State) -> None:
        fired = [c for c in self.children if not st[c.off] and c.should_fire(st, ctx)]
        for c in fired:
            c.on_fire(st, ctx, initial)
        if any(st[c.off] for c in fired):
            st[self.off] = True


class _All(_Node):
    __slots__ = ()

    def should_fire(self, st: State, ctx: TriggerContext) -> bool:
        return all(st[c.off] or c.should_fire(st, ctx) for c in self.children)

    def on_fire(self, st: State, ctx: TriggerContext, initial: State) -> None:
        for c in [c for c in self.children if not st[c.off] and c.should_fire(st, ctx)]:
            c.on_fire(st, ctx, initial)
        if all(st[c.off] for c in self.children):
            st[self.off] = True


class _Each(_Node):
    __slots__ = ()
    own_slots = (0,)

    def _current(self, st: State) -> _Node:
        return self.children[st[self.off + 1]]

    def on_element(self, st: State, ctx: TriggerContext) -> None:
        self._current(st).on_element(st, ctx)

    def should_fire(self, st: State, ctx: TriggerContext) -> bool:
        return self._current(st).should_fire(st, ctx)

    def on_fire(self, st: State, ctx: TriggerContext, initial: State) -> None:
        child = self._current(st)
        child.on_fire(st, ctx, initial)
        if st[child.off]:
            st[self.off + 1] += 1
            if st[self.off + 1] == len(self.children):
                st[self.off + 1] -= 1  # keep the index valid; the node is finished
                st[self.off] = True

    def merge(
        self, st: State, states: Sequence[State], ctx: TriggerContext, initial: State
    ) -> None:
        super().merge(st, states, ctx, initial)
        st[self.off + 1] = max(s[self.off + 1] for s in states)

    def deadline(self, st: State, now: int) -> int | None:
        return self._current(st).deadline(st, now)


def _compile(trigger: TriggerFn) -> _Node:
    if type(trigger) is DefaultTrigger:
        return _Default()
    if type(trigger) is Always:
        return _Always()
    if type(trigger) is AfterCount:
        return _Count(trigger.count)
    if type(trigger) is AfterProcessingTime:
        return _ProcessingTime(trigger.delay_us)
    if type(trigger) is Repeatedly:
        return _Repeat([_compile(trigger.underlying)])
    if type(trigger) is AfterWatermark:
        early = _compile(trigger.early) if trigger.early is not None else None
        late = _compile(trigger.late) if trigger.late is not None else None
        return _Watermark(early, late)
    if isinstance(trigger, AfterAny):  # AfterAny and OrFinally
        return _Any([_compile(t) for t in trigger.triggers])
    if type(trigger) is AfterAll:
        return _All([_compile(t) for t in trigger.triggers])
    if type(trigger) is AfterEach:
        return _Each([_compile(t) for t in trigger.triggers])
    raise TypeError(
        f"cannot run the trigger {trigger!r} ({type(trigger).__name__}): headrace runs the "
        "built-in triggers of headrace.beam.transforms.trigger (DefaultTrigger, AfterWatermark, "
        "AfterProcessingTime, AfterCount, Repeatedly, AfterAny, AfterAll, AfterEach, OrFinally, "
        "Always); compose those instead of subclassing TriggerFn"
    )


def _any_node(node: _Node, kind: type[_Node]) -> bool:
    return isinstance(node, kind) or any(_any_node(c, kind) for c in node.children)


class TriggerMachine:
    """The compiled state machine of one trigger; states live with the caller, one per pane.

    >>> from headrace.model.trigger import AfterCount, Repeatedly
    >>> m = TriggerMachine.for_trigger(Repeatedly(AfterCount(2)))
    >>> st, ctx = m.new_state(), TriggerContext(max_timestamp=59_999_999)
    >>> m.on_element(st, ctx); m.should_fire(st, ctx)
    False
    >>> m.on_element(st, ctx); m.should_fire(st, ctx)
    True
    >>> m.on_fire(st, ctx); m.should_fire(st, ctx), m.is_finished(st)
    (False, False)
    """

    __slots__ = (
        "_initial",
        "_root",
        "has_ontime_pane",
        "is_default",
        "trigger",
        "uses_processing_time",
    )

    def __init__(self, trigger: TriggerFn) -> None:
        self.trigger = trigger
        self._root = _compile(trigger)
        self._initial: State = []
        self._root.layout(0, self._initial)
        self.is_default = type(trigger) is DefaultTrigger
        self.has_ontime_pane = trigger.has_ontime_pane()
        self.uses_processing_time = _any_node(self._root, _ProcessingTime)

    @classmethod
    def for_trigger(cls, trigger: TriggerFn | None) -> TriggerMachine:
        """The machine for ``trigger`` (``None`` means the default trigger)."""
        return cls(DefaultTrigger() if trigger is None else trigger)

    def new_state(self) -> State:
        """A fresh state for a new pane."""
        return list(self._initial)

    def on_element(self, state: State, ctx: TriggerContext) -> None:
        """An element joined the pane (``ctx.now`` is its arrival in processing time)."""
        if not state[0]:
            self._root.on_element(state, ctx)

    def should_fire(self, state: State, ctx: TriggerContext) -> bool:
        """Whether the pane fires now."""
        return not state[0] and self._root.should_fire(state, ctx)

    def on_fire(self, state: State, ctx: TriggerContext) -> None:
        """The pane fired: restart repeated parts, finish one-shot ones."""
        self._root.on_fire(state, ctx, self._initial)

    def is_finished(self, state: State) -> bool:
        """Whether the trigger will never fire again for this pane."""
        return bool(state[0])

    def merge(self, states: Sequence[State], ctx: TriggerContext) -> State:
        """The state of a window merged from windows with ``states`` (``ctx``: the new window)."""
        st = list(self._initial)
        self._root.merge(st, states, ctx, self._initial)
        return st

    def next_deadline(self, state: State, ctx: TriggerContext) -> int | None:
        """The next processing time after ``ctx.now`` at which :meth:`should_fire` may turn true.

        ``None`` when no processing-time condition is pending.
        """
        if state[0]:
            return None
        return self._root.deadline(state, ctx.now)

    def __reduce__(self) -> tuple[Any, ...]:
        return (TriggerMachine, (self.trigger,))

    def __repr__(self) -> str:
        return f"TriggerMachine({self.trigger!r})"


def pane_info(
    index: int,
    nonspeculative_emitted: int,
    held: bool,
    watermark: int,
    max_timestamp: int,
    is_last: bool,
) -> PaneInfo:
    """The :class:`PaneInfo` of a window's next pane, as Beam defines it.

    ``index`` counts the panes already emitted for the window; ``nonspeculative_emitted`` counts
    those that were not EARLY. A pane is EARLY while the watermark has not passed the end of the
    window (its ``nonspeculative_index`` is -1). After that, the first pane is ON_TIME if the
    window still ``held`` the output watermark at or before its end (it had on-time elements, or
    an end-of-window hold after an EARLY pane); otherwise, and for every later pane, it is LATE.

    >>> pane_info(0, 0, True, watermark=60_000_000, max_timestamp=59_999_999, is_last=True)
    PaneInfo(first: True, last: True, timing: ON_TIME, index: 0, nonspeculative_index: 0)
    >>> pane_info(2, 1, False, watermark=70_000_000, max_timestamp=59_999_999, is_last=False)
    PaneInfo(first: False, last: False, timing: LATE, index: 2, nonspeculative_index: 1)
    """
    if watermark <= max_timestamp:
        timing, nonspeculative = PaneInfoTiming.EARLY, -1
    elif nonspeculative_emitted == 0 and held:
        timing, nonspeculative = PaneInfoTiming.ON_TIME, nonspeculative_emitted
    else:
        timing, nonspeculative = PaneInfoTiming.LATE, nonspeculative_emitted
    # Panes are values: equal ones are shared, as Beam shares its decoded PaneInfos
    # (windowed_value._BYTE_TO_PANE_INFO); one object per emitted pane was a cost per window.
    key = (is_last, timing, index, nonspeculative)
    info = _PANES.get(key)
    if info is None:
        info = PaneInfo(index == 0, is_last, timing, index, nonspeculative)
        if len(_PANES) < 4096:
            _PANES[key] = info
    return info


_PANES: dict[tuple[bool, PaneInfoTiming, int, int], PaneInfo] = {}
