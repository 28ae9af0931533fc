"""Windows, window functions and the windowed-element representation.

Timestamps inside headrace are ``int`` microseconds. :class:`WindowedValue` is the per-element
wrapper (value, timestamp, windows, pane) used only where a windowing strategy needs it; in the
global window with no timestamps in use, runners move plain values instead.

Built-in window functions expose a fast ``assign_us(timestamp_us)`` used by the executors; custom
window functions implement Beam's ``assign(context)`` / ``merge(context)`` interface.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any

from headrace.model.timestamp import (
    MAX_TIMESTAMP,
    MAX_US,
    MIN_TIMESTAMP,
    MIN_US,
    Duration,
    Timestamp,
    timestamp_of_micros,
    to_micros,
)

__all__ = [
    "MAX_TIMESTAMP",
    "MIN_TIMESTAMP",
    "BeamWindowedValue",
    "BoundedWindow",
    "Duration",
    "FixedWindows",
    "GlobalWindow",
    "GlobalWindows",
    "IntervalWindow",
    "NonMergingWindowFn",
    "PaneInfo",
    "PaneInfoTiming",
    "Sessions",
    "SlidingWindows",
    "Timestamp",
    "TimestampCombiner",
    "TimestampedValue",
    "WindowFn",
    "WindowedValue",
]

GLOBAL_WINDOW_MAX_US = (
    MAX_US - 86_400_000_000
)  # the global window ends a day before the end of time


class BoundedWindow:
    """A window: a span of event time that elements are grouped by."""

    __slots__ = ()

    def max_timestamp(self) -> Timestamp:
        raise NotImplementedError

    @property
    def end(self) -> Timestamp:
        return Timestamp(micros=self.max_timestamp().micros + 1)

    def max_timestamp_us(self) -> int:
        return self.max_timestamp().micros


class GlobalWindow(BoundedWindow):
    """The single window that covers all of time (a singleton)."""

    __slots__ = ()
    _instance: GlobalWindow | None = None

    def __new__(cls) -> GlobalWindow:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    @property
    def start(self) -> Timestamp:
        return MIN_TIMESTAMP

    def max_timestamp(self) -> Timestamp:
        return Timestamp(micros=GLOBAL_WINDOW_MAX_US)

    def max_timestamp_us(self) -> int:
        return GLOBAL_WINDOW_MAX_US

    def __repr__(self) -> str:
        return "GlobalWindow"

    def __reduce__(self) -> tuple[Any, ...]:
        return (GlobalWindow, ())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GlobalWindow)

    def __hash__(self) -> int:
        return 0x61A0B1


GLOBAL_WINDOW = GlobalWindow()
GLOBAL_WINDOWS_TUPLE: tuple[BoundedWindow, ...] = (GLOBAL_WINDOW,)


class IntervalWindow(BoundedWindow):
    """The half-open interval ``[start, end)`` of event time.

    >>> w = IntervalWindow(60, 120)
    >>> w.start, w.end, w.max_timestamp()
    (Timestamp(60), Timestamp(120), Timestamp(119.999999))
    >>> w.intersects(IntervalWindow(100, 200)), w.union(IntervalWindow(100, 200))
    (True, [60.0, 200.0))
    """

    __slots__ = ("_end", "_hash", "_start")

    def __init__(self, start: Any, end: Any) -> None:
        self._start = to_micros(start)
        self._end = to_micros(end)
        self._hash = hash((self._start, self._end))

    @classmethod
    def from_us(cls, start_us: int, end_us: int) -> IntervalWindow:
        w = cls.__new__(cls)
        w._start = start_us
        w._end = end_us
        w._hash = hash((start_us, end_us))
        return w

    @property
    def start(self) -> Timestamp:
        return timestamp_of_micros(self._start)

    @property
    def end(self) -> Timestamp:
        return timestamp_of_micros(self._end)

    @property
    def start_us(self) -> int:
        return self._start

    @property
    def end_us(self) -> int:
        return self._end

    def max_timestamp(self) -> Timestamp:
        return timestamp_of_micros(self._end - 1)

    def max_timestamp_us(self) -> int:
        return self._end - 1

    def intersects(self, other: IntervalWindow) -> bool:
        return self._start < other._end and other._start < self._end

    def union(self, other: IntervalWindow) -> IntervalWindow:
        return IntervalWindow.from_us(min(self._start, other._start), max(self._end, other._end))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, IntervalWindow)
            and self._start == other._start
            and self._end == other._end
        )

    def __lt__(self, other: IntervalWindow) -> bool:
        return (self._end, self._start) < (other._end, other._start)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        # Beam prints a window as the half-open interval of float seconds (window.py).
        return f"[{self._start / 1_000_000}, {self._end / 1_000_000})"

    def __reduce__(self) -> tuple[Any, ...]:
        if type(self) is IntervalWindow:
            return (IntervalWindow.from_us, (self._start, self._end))
        # A subclass (a user's window with more fields, as Nexmark's WinningBids has) keeps its
        # class and its attributes.
        state = getattr(self, "__dict__", None)
        return (_rebuild_interval_window, (type(self), self._start, self._end, state))


def _rebuild_interval_window(
    cls: type[IntervalWindow], start_us: int, end_us: int, state: dict[str, Any] | None
) -> IntervalWindow:
    w = cls.from_us(start_us, end_us)
    if state:
        w.__dict__.update(state)
    return w


def _secs(us: int) -> str:
    s, frac = divmod(us, 1_000_000)
    return str(s) if not frac else str(us / 1_000_000)


class TimestampedValue:
    """A value with an event timestamp; yield it from a DoFn to set the element's timestamp.

    >>> TimestampedValue("click", 12.5).timestamp
    Timestamp(12.500000)
    """

    __slots__ = ("timestamp_us", "value")

    def __init__(self, value: Any, timestamp: Any) -> None:
        self.value = value
        # Seconds as a float or int are what a Map building event times passes, once per
        # element: convert them here as to_micros does, without its isinstance chain.
        kind = type(timestamp)
        if kind is float:
            self.timestamp_us = round(timestamp * 1_000_000)
        elif kind is int:
            self.timestamp_us = timestamp * 1_000_000
        else:
            self.timestamp_us = to_micros(timestamp)

    @property
    def timestamp(self) -> Timestamp:
        return Timestamp(micros=self.timestamp_us)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TimestampedValue)
            and self.value == other.value
            and self.timestamp_us == other.timestamp_us
        )

    def __hash__(self) -> int:
        return hash((self.value, self.timestamp_us))

    def __repr__(self) -> str:
        return f"TimestampedValue({self.value!r}, {_secs(self.timestamp_us)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (TimestampedValue, (self.value, Timestamp(micros=self.timestamp_us)))


class PaneInfoTiming(enum.IntEnum):
    """When a pane fired relative to the watermark.

    >>> PaneInfoTiming.to_string(PaneInfoTiming.LATE), PaneInfoTiming.from_string("EARLY")
    ('LATE', <PaneInfoTiming.EARLY: 0>)
    """

    EARLY = 0
    ON_TIME = 1
    LATE = 2
    UNKNOWN = 3

    @classmethod
    def to_string(cls, value: int) -> str:
        """The name of a timing value, as Beam's ``PaneInfoTiming.to_string``."""
        return cls(value).name

    @classmethod
    def from_string(cls, value: str) -> PaneInfoTiming:
        """The timing named ``value`` (``'EARLY'``, ``'ON_TIME'``, ``'LATE'``, ``'UNKNOWN'``)."""
        return cls[value]


class PaneInfo:
    """Which firing of a window produced an element."""

    __slots__ = ("index", "is_first", "is_last", "nonspeculative_index", "timing")

    def __init__(
        self,
        is_first: bool,
        is_last: bool,
        timing: PaneInfoTiming,
        index: int,
        nonspeculative_index: int,
    ) -> None:
        self.is_first = is_first
        self.is_last = is_last
        self.timing = timing
        self.index = index
        self.nonspeculative_index = nonspeculative_index

    def _key(self) -> tuple[Any, ...]:
        return (self.is_first, self.is_last, self.timing, self.index, self.nonspeculative_index)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PaneInfo) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        return (
            f"PaneInfo(first: {self.is_first}, last: {self.is_last}, timing: {self.timing.name}, "
            f"index: {self.index}, nonspeculative_index: {self.nonspeculative_index})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (PaneInfo, self._key())


PANE_INFO_UNKNOWN = PaneInfo(True, True, PaneInfoTiming.UNKNOWN, 0, 0)
PANE_ONLY_FIRING = PaneInfo(True, True, PaneInfoTiming.ON_TIME, 0, 0)
# The one pane of a window other than the global window in batch: Beam Python's trigger driver
# marks a pane last only when its trigger finished, and the default trigger never does.
PANE_ON_TIME_NOT_LAST = PaneInfo(True, False, PaneInfoTiming.ON_TIME, 0, 0)


class WindowedValue:
    """An element with its timestamp (int microseconds), windows and pane.

    This is the executors' representation: its constructor takes **microseconds**. Beam's
    ``WindowedValue(value, timestamp, windows, pane_info)`` takes seconds; user code gets that
    constructor as :class:`BeamWindowedValue` (exported as ``WindowedValue`` by
    ``headrace.beam``), which builds instances of this class.
    """

    __slots__ = ("_timestamp", "pane", "timestamp_us", "value", "windows")
    _timestamp: Timestamp

    def __init__(
        self,
        value: Any,
        timestamp_us: int,
        windows: tuple[BoundedWindow, ...],
        pane: PaneInfo = PANE_INFO_UNKNOWN,
    ) -> None:
        self.value = value
        self.timestamp_us = timestamp_us
        self.windows = windows
        self.pane = pane

    @property
    def timestamp(self) -> Timestamp:
        """The timestamp as a :class:`Timestamp`, made on first use and kept (Beam keeps it
        too: ``wv.timestamp is wv.timestamp``).

        >>> wv = WindowedValue(None, 3_000_000, ())
        >>> wv.timestamp is wv.timestamp, wv.timestamp
        (True, Timestamp(3))
        """
        try:
            ts: Timestamp = self._timestamp
        except AttributeError:
            ts = self._timestamp = Timestamp(micros=self.timestamp_us)
            return ts
        if ts.micros != self.timestamp_us:  # the executors may move an element's timestamp
            ts = self._timestamp = Timestamp(micros=self.timestamp_us)
        return ts

    @property
    def timestamp_micros(self) -> int:
        """The timestamp in microseconds (Beam's attribute name)."""
        return self.timestamp_us

    @property
    def pane_info(self) -> PaneInfo:
        """The pane (Beam's attribute name)."""
        return self.pane

    def with_value(self, value: Any) -> WindowedValue:
        return WindowedValue(value, self.timestamp_us, self.windows, self.pane)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, WindowedValue)
            and self.value == other.value
            and self.timestamp_us == other.timestamp_us
            and self.windows == other.windows
            and self.pane == other.pane
        )

    def __hash__(self) -> int:
        return hash((self.value, self.timestamp_us, self.windows))

    def __repr__(self) -> str:
        # Beam's format (utils/windowed_value.py): (value, seconds, windows, pane).
        us = self.timestamp_us
        when = "MIN_TIMESTAMP" if us == MIN_US else "MAX_TIMESTAMP" if us == MAX_US else us / 1e6
        return f"({self.value!r}, {when}, {self.windows}, {self.pane!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (WindowedValue, (self.value, self.timestamp_us, self.windows, self.pane))


class _BeamWindowedValueMeta(type):
    """Makes :class:`BeamWindowedValue` a constructor of :class:`WindowedValue` instances."""

    def __call__(
        cls,
        value: Any,
        timestamp: Any,
        windows: Iterable[BoundedWindow],
        pane_info: PaneInfo | None = None,
    ) -> WindowedValue:
        return WindowedValue(
            value,
            to_micros(timestamp),
            tuple(windows),
            PANE_INFO_UNKNOWN if pane_info is None else pane_info,
        )

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, WindowedValue)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, WindowedValue)


class BeamWindowedValue(metaclass=_BeamWindowedValueMeta):
    """Beam's ``WindowedValue(value, timestamp, windows, pane_info)``: timestamp in **seconds**.

    An int or float is seconds, as in Beam (``utils/windowed_value.py``); a :class:`Timestamp`
    is taken as is. The result is a :class:`WindowedValue`, the executors' own type, so a DoFn
    may yield it (from ``finish_bundle`` for instance) and the element lands in its windows.

    >>> wv = BeamWindowedValue("a", 5, [IntervalWindow(0, 10)])
    >>> wv.timestamp, wv.timestamp_micros, wv
    (Timestamp(5), 5000000, ('a', 5.0, ([0.0, 10.0),), PaneInfo(first: True, last: True, \
timing: UNKNOWN, index: 0, nonspeculative_index: 0)))
    >>> isinstance(wv, BeamWindowedValue)
    True
    """


class TimestampCombiner(enum.Enum):
    """How the output timestamp of a grouping is chosen from its inputs' timestamps."""

    OUTPUT_AT_EOW = "OUTPUT_AT_EOW"
    OUTPUT_AT_EARLIEST = "OUTPUT_AT_EARLIEST"
    OUTPUT_AT_LATEST = "OUTPUT_AT_LATEST"
    OUTPUT_AT_EARLIEST_TRANSFORMED = "OUTPUT_AT_EARLIEST_TRANSFORMED"


class WindowFn:
    """Assigns windows to elements (Beam's interface).

    Subclasses implement ``assign(context)`` returning windows for ``context.timestamp`` (and
    ``context.element``); merging window functions also implement ``merge(context)``.
    """

    class AssignContext:
        __slots__ = ("element", "timestamp", "window")

        def __init__(self, timestamp: Any, element: Any = None, window: Any = None) -> None:
            self.timestamp = Timestamp.of(timestamp)
            self.element = element
            self.window = window

    class MergeContext:
        """Given to ``merge``: the current windows and a way to merge some of them."""

        def __init__(self, windows: Iterable[BoundedWindow]) -> None:
            self.windows = list(windows)
            self.merges: list[tuple[list[BoundedWindow], BoundedWindow]] = []

        def merge(self, to_be_merged: Iterable[BoundedWindow], merge_result: BoundedWindow) -> None:
            self.merges.append((list(to_be_merged), merge_result))

    def assign(self, assign_context: WindowFn.AssignContext) -> Iterable[BoundedWindow]:
        raise NotImplementedError(f"{type(self).__name__} must implement assign(context)")

    def merge(self, merge_context: WindowFn.MergeContext) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement merge(context)")

    def is_merging(self) -> bool:
        return True

    def get_transformed_output_time(self, window: BoundedWindow, input_timestamp: Timestamp) -> Any:
        return input_timestamp

    def get_window_coder(self) -> Any:
        return None

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.__dict__ == other.__dict__

    def __hash__(self) -> int:
        return hash(type(self))


class NonMergingWindowFn(WindowFn):
    """A window function whose windows never merge."""

    def merge(self, merge_context: WindowFn.MergeContext) -> None:
        pass

    def is_merging(self) -> bool:
        return False


class GlobalWindows(NonMergingWindowFn):
    """Everything in the one global window (the default)."""

    def assign(self, assign_context: WindowFn.AssignContext) -> Iterable[BoundedWindow]:
        return [GLOBAL_WINDOW]  # a list, as Beam's assign() returns

    def assign_us(self, timestamp_us: int) -> tuple[BoundedWindow, ...]:
        return GLOBAL_WINDOWS_TUPLE

    @classmethod
    def windowed_value(
        cls,
        value: Any,
        timestamp: Any = MIN_TIMESTAMP,
        pane_info: PaneInfo = PANE_INFO_UNKNOWN,
    ) -> WindowedValue:
        """``value`` in the global window at ``timestamp`` (seconds or a Timestamp), as Beam's.

        >>> GlobalWindows.windowed_value("x").windows
        (GlobalWindow,)
        """
        return WindowedValue(value, to_micros(timestamp), GLOBAL_WINDOWS_TUPLE, pane_info)

    @classmethod
    def windowed_value_at_end_of_window(cls, value: Any) -> WindowedValue:
        """``value`` in the global window at the window's last timestamp."""
        return WindowedValue(value, GLOBAL_WINDOW_MAX_US, GLOBAL_WINDOWS_TUPLE)

    def __repr__(self) -> str:
        return "GlobalWindows()"


class FixedWindows(NonMergingWindowFn):
    """Tumbling windows of ``size`` seconds, aligned to ``offset``.

    >>> FixedWindows(60).assign(WindowFn.AssignContext(125))
    [[120.0, 180.0)]
    """

    def __init__(self, size: Any, offset: Any = 0) -> None:
        self.size_us = to_micros(size)
        if self.size_us <= 0:
            raise ValueError(f"FixedWindows size must be positive, got {size!r}")
        self.offset_us = to_micros(offset) % self.size_us

    @property
    def size(self) -> Duration:
        return Duration(micros=self.size_us)

    @property
    def offset(self) -> Timestamp:
        return Timestamp(micros=self.offset_us)

    def assign_us(self, timestamp_us: int) -> tuple[BoundedWindow, ...]:
        start = timestamp_us - (timestamp_us - self.offset_us) % self.size_us
        return (IntervalWindow.from_us(start, start + self.size_us),)

    def assign(self, assign_context: WindowFn.AssignContext) -> Iterable[BoundedWindow]:
        return list(self.assign_us(assign_context.timestamp.micros))

    def __repr__(self) -> str:
        return f"FixedWindows({_secs(self.size_us)})"


class SlidingWindows(NonMergingWindowFn):
    """Windows of ``size`` seconds starting every ``period`` seconds; an element is in several.

    >>> SlidingWindows(60, 30).assign(WindowFn.AssignContext(45))
    [[30.0, 90.0), [0.0, 60.0)]
    """

    def __init__(self, size: Any, period: Any, offset: Any = 0) -> None:
        self.size_us = to_micros(size)
        self.period_us = to_micros(period)
        if self.size_us <= 0 or self.period_us <= 0:
            raise ValueError("SlidingWindows size and period must be positive")
        self.offset_us = to_micros(offset) % self.period_us

    @property
    def size(self) -> Duration:
        return Duration(micros=self.size_us)

    @property
    def period(self) -> Duration:
        return Duration(micros=self.period_us)

    def assign_us(self, timestamp_us: int) -> tuple[BoundedWindow, ...]:
        last = timestamp_us - (timestamp_us - self.offset_us) % self.period_us
        out = []
        start = last
        while start > timestamp_us - self.size_us:
            out.append(IntervalWindow.from_us(start, start + self.size_us))
            start -= self.period_us
        return tuple(out)

    def assign(self, assign_context: WindowFn.AssignContext) -> Iterable[BoundedWindow]:
        return list(self.assign_us(assign_context.timestamp.micros))

    def __repr__(self) -> str:
        return f"SlidingWindows({_secs(self.size_us)}, {_secs(self.period_us)})"


class Sessions(WindowFn):
    """Windows that merge while elements arrive less than ``gap_size`` seconds apart.

    >>> ctx = WindowFn.MergeContext([IntervalWindow(0, 10), IntervalWindow(5, 15),
    ...                              IntervalWindow(30, 40)])
    >>> Sessions(10).merge(ctx)
    >>> ctx.merges
    [([[0.0, 10.0), [5.0, 15.0)], [0.0, 15.0))]
    """

    def __init__(self, gap_size: Any) -> None:
        self.gap_us = to_micros(gap_size)
        if self.gap_us <= 0:
            raise ValueError(f"Sessions gap_size must be positive, got {gap_size!r}")

    @property
    def gap_size(self) -> Duration:
        return Duration(micros=self.gap_us)

    def assign_us(self, timestamp_us: int) -> tuple[BoundedWindow, ...]:
        return (IntervalWindow.from_us(timestamp_us, timestamp_us + self.gap_us),)

    def assign(self, assign_context: WindowFn.AssignContext) -> Iterable[BoundedWindow]:
        return list(self.assign_us(assign_context.timestamp.micros))

    def merge(self, merge_context: WindowFn.MergeContext) -> None:
        windows: list[Any] = sorted(merge_context.windows, key=_interval_key)
        run: list[Any] = []
        run_end = MIN_US
        for w in windows:
            if run and w.start_us < run_end:
                run.append(w)
                run_end = max(run_end, w.end_us)
                continue
            if len(run) > 1:
                merge_context.merge(run, IntervalWindow.from_us(run[0].start_us, run_end))
            run, run_end = [w], w.end_us
        if len(run) > 1:
            merge_context.merge(run, IntervalWindow.from_us(run[0].start_us, run_end))

    def is_merging(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"Sessions({_secs(self.gap_us)})"


def _interval_key(w: Any) -> tuple[int, int]:
    return (w.start_us, w.end_us)
