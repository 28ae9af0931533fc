"""User state and timers at run time: what a stateful DoFn receives, keyed by (key, window).

State
    :class:`StateStore` owns every cell of one stateful ParDo executor, laid out as
    ``cells[state name][window][key] -> cell``, where a cell is the bare Python value: the value
    (read-modify-write), a ``list`` (bag), a ``set`` (set) or the accumulator (combining; a plain
    number for ``sum``/``min``/``max``/``count``). An empty cell is absent, and a window with no
    cells left is removed, so memory holds only live state and no per-key wrapper objects.

    The accessors (:class:`BagState`, ...) are built once per executor and read the current key
    and window from a shared :class:`StateScope`, which the executor moves before each call of
    ``process`` or of a timer callback; no object is created per element. Values are kept as the
    objects given (not encoded), so a DoFn must not mutate a value after writing it.

    Who moves it: the DoFn (through the accessors), the executor (``clear_window`` when a window
    expires, ``merge_windows`` when windows merge).

Timers
    :class:`TimerQueue` holds at most one pending timer per (key, window, timer name); setting it
    again replaces the firing time, ``clear`` removes it. Per time domain a heap orders timers by
    firing time (then by when they were set); replaced timers leave stale heap entries that are
    skipped when popped and compacted away when they pile up. The executor calls
    ``pop_ready(domain, up_to_us)`` when the input watermark (``TimeDomain.WATERMARK``) or the
    processing-time clock (``TimeDomain.REAL_TIME``) advances, runs the callbacks, and calls it
    again until it returns nothing, since a callback may set new timers that are already due.
    :meth:`TimerQueue.min_pending_watermark_timer` is the watermark hold: the executor's output
    watermark may not pass the earliest pending event-time timer.

Time values are ``int`` microseconds, as everywhere in the executors.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from typing import Any

from headrace.model.timestamp import Timestamp, to_micros
from headrace.model.userstate import (
    BagStateSpec,
    CombiningValueStateSpec,
    ReadModifyWriteStateSpec,
    SetStateSpec,
    StateSpec,
    TimeDomain,
    TimerSpec,
)

__all__ = [
    "BagState",
    "CombiningValueState",
    "ReadModifyWriteState",
    "SetState",
    "StateScope",
    "StateStore",
    "Timer",
    "TimerQueue",
]

_MISSING: Any = object()
_FAST_COMBINE = frozenset({"sum", "min", "max", "count"})
_COMPACT_MIN_STALE = 1024


class StateScope:
    """The (key, window) that state accessors and timers currently act on."""

    __slots__ = ("key", "window")

    def __init__(self, key: Any = None, window: Any = None) -> None:
        self.key = key
        self.window = window

    def __repr__(self) -> str:
        return f"StateScope({self.key!r}, {self.window!r})"


# -- state accessors -------------------------------------------------------------------------------


class _State:
    __slots__ = ("_cells", "_scope")

    def __init__(self, cells: dict[Any, dict[Any, Any]], scope: StateScope) -> None:
        self._cells = cells
        self._scope = scope

    def _get(self) -> Any:
        per_window = self._cells.get(self._scope.window)
        if per_window is None:
            return _MISSING
        return per_window.get(self._scope.key, _MISSING)

    def _put(self, cell: Any) -> None:
        scope = self._scope
        per_window = self._cells.get(scope.window)
        if per_window is None:
            self._cells[scope.window] = {scope.key: cell}
        else:
            per_window[scope.key] = cell

    def clear(self) -> None:
        """Empty this cell for the current key and window."""
        scope = self._scope
        per_window = self._cells.get(scope.window)
        if per_window is not None and per_window.pop(scope.key, _MISSING) is not _MISSING:
            if not per_window:
                del self._cells[scope.window]

    def prefetch(self) -> None:
        """Accepted for Beam compatibility; state is in memory, so this does nothing."""


class ReadModifyWriteState(_State):
    """One value per key and window: ``read()`` (None when unset), ``write(value)``, ``clear()``."""

    __slots__ = ()

    def read(self) -> Any:
        """The value written last, or None."""
        value = self._get()
        return None if value is _MISSING else value

    def write(self, value: Any) -> None:
        """Replace the value."""
        self._put(value)


class BagState(_State):
    """Values added per key and window: ``add(value)``, ``read()``, ``clear()``."""

    __slots__ = ()

    def add(self, value: Any) -> None:
        """Add ``value`` to the bag."""
        scope = self._scope
        per_window = self._cells.get(scope.window)
        if per_window is None:
            self._cells[scope.window] = {scope.key: [value]}
            return
        bag = per_window.get(scope.key)
        if bag is None:
            per_window[scope.key] = [value]
        else:
            bag.append(value)

    def read(self) -> tuple[Any, ...]:
        """The values added so far, in the order added (a snapshot)."""
        bag = self._get()
        return () if bag is _MISSING else tuple(bag)


class SetState(_State):
    """Distinct values per key and window: ``add(value)``, ``read()``, ``clear()``."""

    __slots__ = ()

    def add(self, value: Any) -> None:
        """Add ``value`` to the set (values must be hashable)."""
        scope = self._scope
        per_window = self._cells.get(scope.window)
        if per_window is None:
            self._cells[scope.window] = {scope.key: {value}}
            return
        values = per_window.get(scope.key)
        if values is None:
            per_window[scope.key] = {value}
        else:
            values.add(value)

    def read(self) -> set[Any]:
        """The distinct values added so far (a copy)."""
        values = self._get()
        return set() if values is _MISSING else set(values)


class CombiningValueState(_State):
    """A value combined with the spec's CombineFn: ``add(value)``, ``read()``, ``clear()``."""

    __slots__ = ("_fast", "_fn")

    def __init__(
        self, cells: dict[Any, dict[Any, Any]], scope: StateScope, combine_fn: Any
    ) -> None:
        super().__init__(cells, scope)
        self._fn = combine_fn
        fast = getattr(combine_fn, "fast_path", None)
        self._fast = fast if fast in _FAST_COMBINE else None

    def add(self, value: Any) -> None:
        """Combine ``value`` into the accumulator."""
        acc = self._get()
        fast = self._fast
        if fast is None:
            fn = self._fn
            if acc is _MISSING:
                acc = fn.create_accumulator()
            self._put(fn.add_input(acc, value))
        elif fast == "sum":
            self._put(value if acc is _MISSING else acc + value)
        elif fast == "count":
            self._put(1 if acc is _MISSING else acc + 1)
        elif fast == "min":
            self._put(value if acc is _MISSING or value < acc else acc)
        else:
            self._put(value if acc is _MISSING or value > acc else acc)

    def read(self) -> Any:
        """The combined output of everything added (the CombineFn's empty result if nothing)."""
        acc = self._get()
        if acc is _MISSING:
            fn = self._fn
            return fn.extract_output(fn.create_accumulator())
        if self._fast is not None:
            return acc
        return self._fn.extract_output(acc)


def _merge_cells(spec: StateSpec, cells: list[Any], fast: str | None) -> Any:
    if isinstance(spec, BagStateSpec):
        merged: list[Any] = []
        for bag in cells:
            merged.extend(bag)
        return merged
    if isinstance(spec, SetStateSpec):
        return set().union(*cells)
    if isinstance(spec, CombiningValueStateSpec):
        if fast in ("sum", "count"):
            return sum(cells[1:], cells[0])
        if fast == "min":
            return min(cells)
        if fast == "max":
            return max(cells)
        return spec.combine_fn.merge_accumulators(cells)
    raise TypeError(f"cannot merge state of {spec!r}")


# -- the store -------------------------------------------------------------------------------------


class StateStore:
    """Every state cell of one stateful ParDo executor, per (key, window, state name).

    ``owner`` names the transform in error messages.

    >>> from headrace.model.userstate import BagStateSpec
    >>> store = StateStore([BagStateSpec("buffer")])
    >>> scope = StateScope("k", None)
    >>> buffer = store.accessors(scope)["buffer"]
    >>> buffer.add(1); buffer.add(2)
    >>> buffer.read(), len(store)
    ((1, 2), 1)
    >>> store.clear_window("k", None)
    >>> buffer.read(), len(store)
    ((), 0)
    """

    def __init__(
        self, specs: Iterable[StateSpec] | Mapping[str, StateSpec], owner: str = "stateful ParDo"
    ) -> None:
        items = list(specs.values()) if isinstance(specs, Mapping) else list(specs)
        self.owner = owner
        self.specs: dict[str, StateSpec] = {}
        for spec in items:
            if not isinstance(spec, StateSpec):
                raise TypeError(f"{owner!r}: StateStore needs state specs, got {spec!r}")
            if spec.name in self.specs and self.specs[spec.name] is not spec:
                raise ValueError(f"{owner!r} has two state specs named {spec.name!r}")
            self.specs[spec.name] = spec
        self._cells: dict[str, dict[Any, dict[Any, Any]]] = {name: {} for name in self.specs}
        for spec in self.specs.values():
            if isinstance(spec, CombiningValueStateSpec):
                spec.combine_fn.setup()

    def accessor(self, name: str, scope: StateScope) -> Any:
        """The accessor of state ``name``, acting on whatever (key, window) ``scope`` holds."""
        spec = self.specs.get(name)
        if spec is None:
            raise KeyError(f"{self.owner!r} has no state named {name!r}; it has {list(self.specs)}")
        cells = self._cells[name]
        if isinstance(spec, CombiningValueStateSpec):
            return CombiningValueState(cells, scope, spec.combine_fn)
        if isinstance(spec, BagStateSpec):
            return BagState(cells, scope)
        if isinstance(spec, SetStateSpec):
            return SetState(cells, scope)
        if isinstance(spec, ReadModifyWriteStateSpec):
            return ReadModifyWriteState(cells, scope)
        raise TypeError(f"{self.owner!r}: unsupported state spec {spec!r}")

    def accessors(self, scope: StateScope) -> dict[str, Any]:
        """One accessor per state spec, by name, all acting on ``scope``."""
        return {name: self.accessor(name, scope) for name in self.specs}

    def state(self, name: str, key: Any, window: Any) -> Any:
        """The accessor of state ``name`` fixed to one key and window (handy in tests)."""
        return self.accessor(name, StateScope(key, window))

    def clear_window(self, key: Any, window: Any) -> None:
        """Drop every cell of ``key`` in ``window`` (when the window expires)."""
        for by_window in self._cells.values():
            per_window = by_window.get(window)
            if per_window is not None and per_window.pop(key, _MISSING) is not _MISSING:
                if not per_window:
                    del by_window[window]

    def drop_window(self, window: Any) -> None:
        """Drop every cell of every key in ``window``."""
        for by_window in self._cells.values():
            by_window.pop(window, None)

    def windows(self) -> set[Any]:
        """The windows that hold some state."""
        out: set[Any] = set()
        for by_window in self._cells.values():
            out.update(by_window)
        return out

    def keys(self, window: Any) -> set[Any]:
        """The keys that hold some state in ``window``."""
        out: set[Any] = set()
        for by_window in self._cells.values():
            out.update(by_window.get(window, ()))
        return out

    def is_empty(self, key: Any, window: Any) -> bool:
        """Whether ``key`` has no state in ``window``."""
        for by_window in self._cells.values():
            per_window = by_window.get(window)
            if per_window is not None and key in per_window:
                return False
        return True

    def merge_windows(self, key: Any, old_windows: Iterable[Any], new_window: Any) -> None:
        """Move ``key``'s state of ``old_windows`` into ``new_window``, merging cells.

        Bags concatenate, sets unite, combining values merge their accumulators. Read-modify-write
        state cannot merge (as in Beam): a :class:`ValueError` says so, before anything changes.
        """
        olds = [w for w in old_windows if w != new_window]
        if not olds:
            return
        for spec in self.specs.values():
            if isinstance(spec, ReadModifyWriteStateSpec):
                raise ValueError(
                    f"{self.owner!r} uses ReadModifyWriteStateSpec({spec.name!r}) in merging "
                    "windows (such as Sessions), where two windows' values cannot be merged; use a "
                    "CombiningValueStateSpec, BagStateSpec or SetStateSpec, or non-merging windows"
                )
        for name, spec in self.specs.items():
            by_window = self._cells[name]
            found: list[Any] = []
            for window in olds:
                per_window = by_window.get(window)
                if per_window is None:
                    continue
                cell = per_window.pop(key, _MISSING)
                if cell is not _MISSING:
                    found.append(cell)
                    if not per_window:
                        del by_window[window]
            if not found:
                continue
            target = by_window.setdefault(new_window, {})
            existing = target.get(key, _MISSING)
            if existing is not _MISSING:
                found.insert(0, existing)
            fast = None
            if isinstance(spec, CombiningValueStateSpec):
                fast = getattr(spec.combine_fn, "fast_path", None)
                fast = fast if fast in _FAST_COMBINE else None
            target[key] = found[0] if len(found) == 1 else _merge_cells(spec, found, fast)

    def teardown(self) -> None:
        """Call ``teardown`` on the CombineFns of combining state."""
        for spec in self.specs.values():
            if isinstance(spec, CombiningValueStateSpec):
                spec.combine_fn.teardown()

    def __len__(self) -> int:
        """The number of non-empty cells."""
        return sum(len(per) for by_window in self._cells.values() for per in by_window.values())

    def __repr__(self) -> str:
        return f"StateStore({list(self.specs)}, cells={len(self)})"


# -- timers ----------------------------------------------------------------------------------------


class Timer:
    """A timer handed to a DoFn: ``set(timestamp)`` (a Timestamp or seconds) and ``clear()``.

    Acts on the (key, window) of its :class:`StateScope`; setting it again replaces the time.
    """

    __slots__ = ("_domain", "_name", "_queue", "_scope")

    def __init__(self, name: str, domain: str, queue: TimerQueue, scope: StateScope) -> None:
        self._name = name
        self._domain = domain
        self._queue = queue
        self._scope = scope

    def set(self, timestamp: Any, dynamic_timer_tag: str = "") -> None:
        """Fire at ``timestamp`` (event time for WATERMARK timers, else processing time)."""
        if dynamic_timer_tag:
            raise NotImplementedError(
                f"timer {self._name!r}: dynamic timer tags (timer families) are not supported; "
                "declare one TimerSpec per timer"
            )
        ts_us = timestamp.micros if type(timestamp) is Timestamp else to_micros(timestamp)
        scope = self._scope
        self._queue.set(scope.key, scope.window, self._name, self._domain, ts_us)

    def clear(self, dynamic_timer_tag: str = "") -> None:
        """Cancel the timer if it is pending."""
        if dynamic_timer_tag:
            raise NotImplementedError(
                f"timer {self._name!r}: dynamic timer tags (timer families) are not supported"
            )
        scope = self._scope
        self._queue.clear(scope.key, scope.window, self._name)

    def __repr__(self) -> str:
        return f"Timer({self._name}, {self._domain})"


_TimerId = tuple[Any, Any, str]


class TimerQueue:
    """Pending timers of one executor: at most one per (key, window, name), ordered per domain.

    >>> q = TimerQueue()
    >>> q.set("a", None, "flush", "WATERMARK", 30)
    >>> q.set("b", None, "flush", "WATERMARK", 10)
    >>> q.set("a", None, "flush", "WATERMARK", 20)  # replaces a's timer
    >>> q.min_pending_watermark_timer()
    10
    >>> q.pop_ready("WATERMARK", 25)
    [('b', None, 'flush', 10), ('a', None, 'flush', 20)]
    >>> q.next_time("WATERMARK") is None
    True
    """

    def __init__(self) -> None:
        self._heaps: dict[str, list[tuple[int, int, Any, Any, str]]] = {
            TimeDomain.WATERMARK: [],
            TimeDomain.REAL_TIME: [],
        }
        # (key, window, name) -> (firing time, sequence number, domain)
        self._pending: dict[_TimerId, tuple[int, int, str]] = {}
        self._names: set[str] = set()
        self._seq = 0
        self._stale = 0

    def _heap(self, domain: str) -> list[tuple[int, int, Any, Any, str]]:
        heap = self._heaps.get(domain)
        if heap is None:
            raise ValueError(
                f"unknown time domain {domain!r}; use TimeDomain.WATERMARK or TimeDomain.REAL_TIME"
            )
        return heap

    def timer(self, spec: TimerSpec, scope: StateScope) -> Timer:
        """The :class:`Timer` object for ``spec`` acting on ``scope``."""
        return Timer(spec.name, spec.time_domain, self, scope)

    def set(self, key: Any, window: Any, name: str, domain: str, ts_us: int) -> None:
        """Set (or move) the timer ``name`` of ``key`` in ``window`` to fire at ``ts_us``."""
        ident = (key, window, name)
        old = self._pending.get(ident)
        if old is not None:
            if old[0] == ts_us and old[2] == domain:
                return
            self._stale += 1
        else:
            self._names.add(name)
        heap = self._heap(domain)
        self._seq += 1
        self._pending[ident] = (ts_us, self._seq, domain)
        heapq.heappush(heap, (ts_us, self._seq, key, window, name))
        if self._stale > _COMPACT_MIN_STALE and self._stale > len(self._pending):
            self._compact()

    def clear(self, key: Any, window: Any, name: str) -> None:
        """Cancel the timer ``name`` of ``key`` in ``window`` (nothing if not pending)."""
        if self._pending.pop((key, window, name), None) is not None:
            self._stale += 1
            if self._stale > _COMPACT_MIN_STALE and self._stale > len(self._pending):
                self._compact()

    def get(self, key: Any, window: Any, name: str) -> tuple[str, int] | None:
        """``(domain, firing time)`` of a pending timer, or None."""
        entry = self._pending.get((key, window, name))
        return None if entry is None else (entry[2], entry[0])

    def clear_window(self, key: Any, window: Any) -> None:
        """Cancel every timer of ``key`` in ``window``."""
        for name in self._names:
            self.clear(key, window, name)

    def merge_windows(self, key: Any, old_windows: Iterable[Any], new_window: Any) -> None:
        """Move ``key``'s timers of ``old_windows`` to ``new_window``.

        Per timer name the earliest firing time wins (it also holds the watermark least long
        wrong); a DoFn that sets its timer again while processing the merged window replaces it.
        """
        olds = [w for w in old_windows if w != new_window]
        for name in list(self._names):
            best: tuple[int, int, str] | None = self._pending.get((key, new_window, name))
            moved = False
            for window in olds:
                entry = self._pending.pop((key, window, name), None)
                if entry is None:
                    continue
                self._stale += 1
                moved = True
                if best is None or entry[0] < best[0]:
                    best = entry
            if moved and best is not None:
                self.set(key, new_window, name, best[2], best[0])

    def _drop_stale_top(self, heap: list[tuple[int, int, Any, Any, str]]) -> None:
        pending = self._pending
        while heap:
            _ts, seq, key, window, name = heap[0]
            entry = pending.get((key, window, name))
            if entry is not None and entry[1] == seq:
                return
            heapq.heappop(heap)
            self._stale -= 1

    def next_time(self, domain: str) -> int | None:
        """The earliest firing time pending in ``domain`` (int microseconds), or None."""
        heap = self._heap(domain)
        self._drop_stale_top(heap)
        return heap[0][0] if heap else None

    def min_pending_watermark_timer(self) -> int | None:
        """The watermark hold of pending event-time timers: their earliest firing time, or None."""
        return self.next_time(TimeDomain.WATERMARK)

    def pop_ready(self, domain: str, up_to_us: int) -> list[tuple[Any, Any, str, int]]:
        """Remove and return the timers of ``domain`` due at or before ``up_to_us``.

        In firing-time order: ``(key, window, timer name, firing time in microseconds)``.
        """
        heap = self._heap(domain)
        pending = self._pending
        out: list[tuple[Any, Any, str, int]] = []
        pop = heapq.heappop
        while heap and heap[0][0] <= up_to_us:
            ts_us, seq, key, window, name = pop(heap)
            ident = (key, window, name)
            entry = pending.get(ident)
            if entry is None or entry[1] != seq:
                self._stale -= 1
                continue
            del pending[ident]
            out.append((key, window, name, ts_us))
        return out

    def _compact(self) -> None:
        heaps: dict[str, list[tuple[int, int, Any, Any, str]]] = {d: [] for d in self._heaps}
        for (key, window, name), (ts_us, seq, domain) in self._pending.items():
            heaps[domain].append((ts_us, seq, key, window, name))
        for heap in heaps.values():
            heapq.heapify(heap)
        self._heaps = heaps
        self._stale = 0

    def __len__(self) -> int:
        """The number of pending timers."""
        return len(self._pending)

    def __bool__(self) -> bool:
        return bool(self._pending)

    def __repr__(self) -> str:
        return f"TimerQueue(pending={len(self._pending)})"
