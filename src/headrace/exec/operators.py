"""Fused operators: ParDo (with fast paths for Map/FlatMap/Filter), WindowInto and Flatten.

Operators receive *chunks* (lists of elements) and push output chunks to their receivers, so a
fused chain handles a whole chunk per call with no serialisation. In the plain representation a
chunk holds bare values; in the windowed representation it holds
:class:`~headrace.model.window.WindowedValue` objects. Which one each PCollection uses is decided
by the planner (``ExecutionPlan.windowed``); an operator whose input is windowed but whose output
is not strips the wrappers.

Loop variables over input elements are always named ``x``: when user code raises,
:mod:`headrace.exec.errors` reads the failing element from that frame instead of tracking it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from itertools import starmap
from operator import length_hint
from typing import Any

from headrace.exec.errors import annotate, is_annotated
from headrace.exec.sideinputs import SideInput
from headrace.model.metrics import MetricsContainer, set_current_container
from headrace.model.pvalue import TaggedOutput
from headrace.model.timestamp import MIN_US, Timestamp, timestamp_of_micros
from headrace.model.window import (
    GLOBAL_WINDOWS_TUPLE,
    PANE_INFO_UNKNOWN,
    FixedWindows,
    TimestampedValue,
    WindowedValue,
    WindowFn,
)

__all__ = ["FlattenOperator", "Operator", "ParDoOperator", "WindowIntoOperator"]

Receiver = Callable[[list[Any]], None]
_BAD_RETURN = (str, bytes, dict)
FLUSH_AT = 16384  # general DoFns push partial output once it grows past this many elements
_ELEMENT_PARAMS = frozenset({"timestamp", "window", "pane", "element", "key"})


class Operator:
    """A node of a fused stage: takes chunks, pushes chunks to receivers."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.elements_in = 0
        self.elements_out = 0

    def setup(self) -> None:
        pass

    def start(self) -> None:
        pass

    def process(self, chunk: list[Any]) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        pass

    def teardown(self) -> None:
        pass


def _emit_to(receivers: list[Receiver]) -> Receiver:
    if not receivers:
        return lambda chunk: None
    if len(receivers) == 1:
        return receivers[0]

    def fan_out(chunk: list[Any]) -> None:
        for r in receivers:
            r(chunk)

    return fan_out


def _unwrap_plain(out: list[Any]) -> list[Any]:
    """Plain representation: TimestampedValue/WindowedValue outputs keep only their value."""
    return [_plain_value(o) if type(o) in (TimestampedValue, WindowedValue) else o for o in out]


def _plain_value(o: TimestampedValue | WindowedValue) -> Any:
    """The value of a wrapper bound for a plain (global window) collection.

    A WindowedValue naming other windows cannot be carried there: refuse it rather than drop
    its windows (Beam would keep them).
    """
    if type(o) is WindowedValue and o.windows != GLOBAL_WINDOWS_TUPLE:
        raise ValueError(
            f"a WindowedValue in windows {o.windows} was output into a globally windowed "
            "PCollection, where headrace keeps no windows; apply beam.WindowInto(...) to the "
            "input so that this transform's output is windowed"
        )
    return o.value


def _strip(chunk: list[Any]) -> list[Any]:
    return [wv.value for wv in chunk]


class FlattenOperator(Operator):
    """Passes chunks through (a Flatten's inputs all push into the same receivers)."""

    def __init__(self, label: str, receivers: list[Receiver], strip: bool) -> None:
        super().__init__(label)
        self.emit = _emit_to(receivers)
        self.strip = strip

    def process(self, chunk: list[Any]) -> None:
        self.elements_in += len(chunk)
        self.elements_out += len(chunk)
        self.emit(_strip(chunk) if self.strip else chunk)


def _per_window(chunk: list[WindowedValue]) -> list[WindowedValue]:
    """``chunk`` with each element in several windows split into one copy per window.

    Beam's window assignment runs once per (element, window) pair, so re-windowing an element
    of two sliding windows yields two elements (``WindowFn.AssignContext`` names one window).
    """
    for x in chunk:
        if len(x.windows) != 1:
            break
    else:
        return chunk
    out = []
    for x in chunk:
        if len(x.windows) == 1:
            out.append(x)
        else:
            out.extend(WindowedValue(x.value, x.timestamp_us, (w,), x.pane) for w in x.windows)
    return out


class WindowIntoOperator(Operator):
    """Assigns windows from each element's timestamp (and current window, for custom fns).

    An element in several windows (sliding windows) is re-windowed once per window, as in Beam.
    """

    def __init__(
        self,
        label: str,
        window_fn: Any,
        receivers: list[Receiver],
        in_windowed: bool,
        out_windowed: bool,
    ) -> None:
        super().__init__(label)
        self.window_fn = window_fn
        self.emit = _emit_to(receivers)
        self.in_windowed = in_windowed
        self.out_windowed = out_windowed
        self.fast = getattr(window_fn, "assign_us", None)
        self._cache: dict[int, tuple[Any, ...]] = {}

    def process(self, chunk: list[Any]) -> None:
        self.elements_in += len(chunk)
        if self.in_windowed:
            chunk = _per_window(chunk)
        if not self.out_windowed:
            out = _strip(chunk) if self.in_windowed else chunk
        elif not self.in_windowed:  # pragma: no cover - the planner makes such inputs windowed
            out = [WindowedValue(x, MIN_US, self.window_fn.assign_us(MIN_US)) for x in chunk]
        elif type(self.window_fn) is FixedWindows:
            # One shared window tuple per window start: no allocation per element, and equal
            # windows are the same object (cheap to hash and compare when grouping).
            size, offset, cache = self.window_fn.size_us, self.window_fn.offset_us, self._cache
            out = []
            append = out.append
            for x in chunk:
                t = x.timestamp_us
                start = t - (t - offset) % size
                windows = cache.get(start)
                if windows is None:
                    windows = self.window_fn.assign_us(t)
                    if len(cache) >= 65536:
                        cache.clear()
                    cache[start] = windows
                append(WindowedValue(x.value, t, windows, x.pane))
        elif self.fast is not None:
            assign, cache = self.fast, self._cache
            out = []
            append = out.append
            for x in chunk:
                t = x.timestamp_us
                windows = cache.get(t)
                if windows is None:
                    windows = assign(t)
                    if len(cache) < 65536:
                        cache[t] = windows
                append(WindowedValue(x.value, t, windows, x.pane))
        else:
            out = []
            fn = self.window_fn
            try:
                for x in chunk:
                    assigned: list[Any] = []
                    for w in x.windows:
                        assigned.extend(fn.assign(WindowFn.AssignContext(x.timestamp, x.value, w)))
                    out.append(WindowedValue(x.value, x.timestamp_us, tuple(assigned), x.pane))
            except Exception as e:
                raise annotate(e, self.label, what="assign()") from None
        self.elements_out += len(out)
        self.emit(out)


class ParDoOperator(Operator):
    """Runs a DoFn (or a Map-family function) over chunks.

    Fast paths (plain representation, no special parameters, no per-window side inputs):
    Map/Filter/MapTuple as list comprehensions, FlatMap as an ``extend`` loop. Everything else
    goes through :meth:`_process_general`, which handles tagged outputs, timestamps, windows and
    DoFn parameters.
    """

    def __init__(
        self,
        label: str,
        fn_kind: str,
        dofn: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        dofn_params: dict[str, str],
        main_tag: str,
        outputs: dict[str, list[Receiver]],
        out_windowed: dict[str, bool],
        in_windowed: bool,
        side_inputs: list[tuple[str, SideInput]],
        metrics: MetricsContainer,
        drop_unknown_tags: bool = False,
    ) -> None:
        super().__init__(label)
        # ``with_outputs()`` without tags (Beam's allow_unknown_tags): outputs to tags that the
        # pipeline never read have no PCollection and are dropped.
        self.drop_unknown_tags = drop_unknown_tags
        self.fn_kind = fn_kind
        self.dofn = dofn
        self.args = list(args)
        self.kwargs = dict(kwargs)
        self.dofn_params = dofn_params
        self.main_tag = main_tag
        self.emitters = {tag: _emit_to(rs) for tag, rs in outputs.items()}
        self.out_windowed = out_windowed
        self.in_windowed = in_windowed
        self.side_inputs = side_inputs
        self.metrics = metrics
        self.multi_output = len(outputs) > 1
        self.window_sides = [(slot, s) for slot, s in side_inputs if not s.is_global]
        for slot, side in side_inputs:
            if side.is_global:
                self._set_slot(self.args, self.kwargs, slot, side.global_value)
        self.user_fn: Any = getattr(dofn, "fn", None) if fn_kind != "dofn" else None
        self.process_fn: Any = self.user_fn if self.user_fn is not None else dofn.process
        # As Beam (apache_beam/runners/common.py): a str/bytes/dict returned by process() is
        # refused only for a user's DoFn class whose process is not a generator; Map/FlatMap
        # and ParDo(function) iterate it (FlatMap() over strings gives their characters).
        self.check_returns = (
            fn_kind == "dofn"
            and not getattr(dofn, "wraps_callable", False)
            and not inspect.isgeneratorfunction(getattr(dofn, "process", None))
        )
        self.unwrap = False
        self.process = self._choose()  # type: ignore[method-assign,assignment]

    @staticmethod
    def _set_slot(args: list[Any], kwargs: dict[str, Any], slot: str, value: Any) -> None:
        if slot.startswith("kw:"):
            kwargs[slot[3:]] = value
        else:
            args[int(slot)] = value

    def _choose(self) -> Callable[[list[Any]], None]:
        simple = (
            not self.in_windowed
            and not self.dofn_params
            and not self.window_sides
            and not self.multi_output
            and not self.out_windowed[self.main_tag]
        )
        if simple and not self.kwargs and self.fn_kind in ("map", "flatmap", "filter", "maptuple"):
            return self._fast(self._fast_body())
        if (
            self.fn_kind == "map"
            and not self.dofn_params
            and not self.window_sides
            and not self.multi_output
            and self.out_windowed[self.main_tag]
        ):
            return self._windowed_map()
        if (
            self.fn_kind == "dofn"
            and self.in_windowed
            and self.dofn_params
            and set(self.dofn_params.values()) <= _ELEMENT_PARAMS
            and not self.window_sides
            and not self.multi_output
            and not set(self.dofn_params) & set(self.kwargs)
        ):
            return self._windowed_dofn()
        return self._process_general

    # -- lifecycle -------------------------------------------------------------------------------

    def _call(self, what: str, method: Callable[[], Any]) -> Any:
        set_current_container(self.metrics)
        try:
            return method()
        except Exception as e:
            raise annotate(e, self.label, what=what) from None

    def setup(self) -> None:
        self._call("setup()", self.dofn.setup)

    def start(self) -> None:
        self._call("start_bundle()", self.dofn.start_bundle)

    def finish(self) -> None:
        results = self._call("finish_bundle()", self.dofn.finish_bundle)
        if results is None:
            return
        outs: dict[str, list[Any]] = {}
        for o in results:
            tag = self.main_tag
            if type(o) is TaggedOutput:
                tag, o = o.tag, o.value
            if tag not in self.emitters:
                if self.drop_unknown_tags:
                    continue
                raise self._unknown_tag(tag)
            if self.out_windowed[tag]:
                if type(o) is not WindowedValue:
                    if type(o) is TimestampedValue:
                        o = WindowedValue(o.value, o.timestamp_us, GLOBAL_WINDOWS_TUPLE)
                    else:
                        o = WindowedValue(o, MIN_US, GLOBAL_WINDOWS_TUPLE)
            elif type(o) in (WindowedValue, TimestampedValue):
                o = _plain_value(o)
            outs.setdefault(tag, []).append(o)
        for tag, out in outs.items():
            self.elements_out += len(out)
            self.emitters[tag](out)

    def teardown(self) -> None:
        self._call("teardown()", self.dofn.teardown)

    def _fail(self, e: Exception) -> BaseException:
        if is_annotated(e):
            return e
        return annotate(e, self.label)

    # -- fast paths ------------------------------------------------------------------------------

    def _finish_plain(self, out: list[Any]) -> None:
        if out and (self.unwrap or type(out[0]) in (TimestampedValue, WindowedValue)):
            self.unwrap = True
            out = _unwrap_plain(out)
        self.elements_out += len(out)
        self.emitters[self.main_tag](out)

    def _fast(self, body: Callable[[Iterator[Any]], list[Any]]) -> Callable[[list[Any]], None]:
        """Wrap a whole-chunk loop with counting, metrics scope and error annotation.

        The loop consumes an iterator over the chunk, so when user code raises, the iterator's
        position tells which element failed (comprehension variables are not kept in any frame
        on Python 3.12+, so the element cannot be read from the traceback there).
        """

        def process(chunk: list[Any]) -> None:
            self.elements_in += len(chunk)
            set_current_container(self.metrics)
            it = iter(chunk)
            try:
                out = body(it)
            except Exception as e:
                if is_annotated(e):
                    raise
                failed = len(chunk) - length_hint(it) - 1
                if 0 <= failed < len(chunk):
                    raise annotate(e, self.label, chunk[failed]) from None
                raise annotate(e, self.label) from None
            self._finish_plain(out)

        return process

    def _fast_body(self) -> Callable[[Iterator[Any]], list[Any]]:
        fn, args, kind = self.user_fn, self.args, self.fn_kind
        if kind == "map" and not args:
            return lambda it: list(map(fn, it))
        if kind == "map":
            return lambda it: [fn(x, *args) for x in it]
        if kind == "maptuple" and not args:
            return lambda it: list(starmap(fn, it))
        if kind == "maptuple":
            return lambda it: [fn(*x, *args) for x in it]
        if kind == "filter" and not args:
            return lambda it: list(filter(fn, it))
        if kind == "filter":
            return lambda it: [x for x in it if fn(x, *args)]

        finish, metrics = self._finish_plain, self.metrics

        def flatmap(it: Iterator[Any]) -> list[Any]:
            # A fan-out can make far more output than input: push it on in pieces as it grows,
            # so what follows (a grouping with a memory budget) sees it before the chunk ends.
            out: list[Any] = []
            extend = out.extend
            for x in it:
                r = fn(x, *args)
                if r is not None:
                    extend(r)
                    if len(out) > FLUSH_AT:
                        finish(out)
                        out = []
                        extend = out.extend
                        set_current_container(metrics)
            return out

        return flatmap

    def _windowed_map(self) -> Callable[[list[Any]], None]:
        """A Map whose output is windowed: one call and one wrapper per element.

        An output ``TimestampedValue`` sets the element's timestamp and keeps its windows (as
        :meth:`_process_general` does); any other output keeps the input's timestamp, windows and
        pane (or the global window at the minimum timestamp for a plain input).
        """
        fn, args, kwargs = self.user_fn, self.args, self.kwargs
        emit = self.emitters[self.main_tag]
        in_windowed = self.in_windowed
        wv, tv = WindowedValue, TimestampedValue

        def process(chunk: list[Any]) -> None:
            self.elements_in += len(chunk)
            set_current_container(self.metrics)
            out: list[Any] = []
            append = out.append
            try:
                if in_windowed:
                    for x in chunk:
                        o = fn(x.value, *args, **kwargs)
                        t = type(o)
                        if t is tv:
                            append(wv(o.value, o.timestamp_us, x.windows, x.pane))
                        elif t is wv:
                            append(o)
                        else:
                            append(wv(o, x.timestamp_us, x.windows, x.pane))
                else:
                    glob = GLOBAL_WINDOWS_TUPLE
                    for x in chunk:
                        o = fn(x, *args, **kwargs)
                        t = type(o)
                        if t is tv:
                            append(wv(o.value, o.timestamp_us, glob))
                        elif t is wv:
                            append(o)
                        else:
                            append(wv(o, MIN_US, glob))
            except Exception as e:
                raise self._fail(e) from None
            self.elements_out += len(out)
            emit(out)

        return process

    def fuse_window_into(
        self, window_op: WindowIntoOperator, add: Callable[[dict[Any, list[Any]]], None]
    ) -> bool:
        """Run this Map, ``window_op`` after it and a grouping table's ``add_assigned`` in one
        loop; return whether the pattern allowed it (the caller checked that this Map feeds
        only ``window_op`` and ``window_op`` only the table, a non-merging one keeping no
        element timestamps).

        Event time as users write it, ``Map(lambda e: TimestampedValue(...)) |
        WindowInto(FixedWindows(60)) | CombinePerKey(sum)``, then costs the user's function, the
        window arithmetic and a dict update per element: no ``WindowedValue`` is made between
        the three. Outputs, timestamps and windows are those of the unfused operators: a
        ``TimestampedValue`` output sets the timestamp, any other output keeps the input's, and
        an output ``WindowedValue`` in several windows is re-windowed once per window.
        """
        fn_ok = (
            self.fn_kind == "map"
            and not self.dofn_params
            and not self.window_sides
            and not self.multi_output
            and self.out_windowed[self.main_tag]
        )
        if not fn_ok or window_op.fast is None or not window_op.in_windowed:
            return False
        if not window_op.out_windowed:
            return False
        fn, args, kwargs = self.user_fn, self.args, self.kwargs
        in_windowed, wv, tv = self.in_windowed, WindowedValue, TimestampedValue
        assign, cache = window_op.fast, window_op._cache

        def general(it: Iterator[Any], groups: dict[Any, list[Any]]) -> int:
            copies = 0  # extra elements from outputs in several windows
            for x in it:
                if in_windowed:
                    o = fn(x.value, *args, **kwargs)
                    t = x.timestamp_us
                else:
                    o = fn(x, *args, **kwargs)
                    t = MIN_US
                kind = type(o)
                reps = 1
                if kind is tv:
                    t = o.timestamp_us
                    o = o.value
                elif kind is wv:
                    t, reps = o.timestamp_us, len(o.windows)
                    copies += reps - 1
                    o = o.value
                windows = cache.get(t)
                if windows is None:
                    windows = assign(t)
                    if len(cache) < 65536:
                        cache[t] = windows
                for _ in range(reps):
                    for w in windows:
                        values = groups.get(w)
                        if values is None:
                            values = groups[w] = []
                        values.append(o)
            return copies

        body = general
        if (
            type(window_op.window_fn) is FixedWindows
            and not in_windowed
            and not args
            and not kwargs
        ):
            size, offset = window_op.window_fn.size_us, window_op.window_fn.offset_us
            by_start: dict[int, Any] = {}  # window start -> the one window object

            def window_at(start: int, t: int) -> Any:
                w = by_start.get(start)
                if w is None:
                    if len(by_start) >= 65536:
                        by_start.clear()
                    w = by_start[start] = assign(t)[0]
                return w

            def fixed_plain(it: Iterator[Any], groups: dict[Any, list[Any]]) -> int:
                # Events come roughly in time order: the window (and its list) is looked up
                # only when an element's window start differs from the previous element's.
                copies = 0
                last: int | None = None
                push: Callable[[Any], None] = [].append
                for x in it:
                    o = fn(x)
                    if type(o) is tv:
                        t = o.timestamp_us
                        o = o.value
                    elif type(o) is wv:
                        copies += len(o.windows) - 1
                        w = window_at(
                            o.timestamp_us - (o.timestamp_us - offset) % size, o.timestamp_us
                        )
                        for _ in o.windows:
                            groups.setdefault(w, []).append(o.value)
                        continue
                    else:
                        t = MIN_US
                    start = t - (t - offset) % size
                    if start != last:
                        last = start
                        w = window_at(start, t)
                        values = groups.get(w)
                        if values is None:
                            values = groups[w] = []
                        push = values.append
                    push(o)
                return copies

            body = fixed_plain

        def process(chunk: list[Any]) -> None:
            n = len(chunk)
            self.elements_in += n
            window_op.elements_in += n
            set_current_container(self.metrics)
            groups: dict[Any, list[Any]] = {}
            it = iter(chunk)
            try:
                copies = body(it, groups)
            except Exception as e:
                if is_annotated(e):
                    raise
                failed = n - length_hint(it) - 1
                if 0 <= failed < n:
                    raise annotate(e, self.label, chunk[failed]) from None
                raise annotate(e, self.label) from None
            self.elements_out += n
            window_op.elements_out += n + copies
            add(groups)

        self.process = process  # type: ignore[method-assign]
        return True

    def _windowed_dofn(self) -> Callable[[list[Any]], None]:
        """A DoFn on windowed input asking for its element's timestamp, window, pane, element or
        key, with one output and no per-window side inputs: what :meth:`_process_general` does
        for it, with the parameters built by one specialised function per element instead of
        a dispatch on each parameter's kind and two dict merges.
        """
        process_fn, args, base = self.process_fn, self.args, self.kwargs
        emit, main = self.emitters[self.main_tag], self.main_tag
        out_windowed = self.out_windowed[main]
        per_window = "window" in self.dofn_params.values()
        wv, tv, ts_of = WindowedValue, TimestampedValue, timestamp_of_micros
        getters = {
            "timestamp": lambda x, w: ts_of(x.timestamp_us),
            "window": lambda x, w: w,
            "pane": lambda x, w: x.pane,
            "element": lambda x, w: x.value,
            "key": lambda x, w: x.value[0],
        }
        params = [(name, getters[kind]) for name, kind in self.dofn_params.items()]
        if len(params) == 1 and not base:
            ((name, get),) = params

            def kwargs_of(x: Any, w: Any) -> dict[str, Any]:
                return {name: get(x, w)}
        else:

            def kwargs_of(x: Any, w: Any) -> dict[str, Any]:
                kw = dict(base)
                for n, g in params:
                    kw[n] = g(x, w)
                return kw

        def process(chunk: list[Any]) -> None:
            self.elements_in += len(chunk)
            set_current_container(self.metrics)
            out: list[Any] = []
            append = out.append
            try:
                for x in chunk:
                    for window in x.windows if per_window else (None,):
                        r = process_fn(x.value, *args, **kwargs_of(x, window))
                        if r is None:
                            continue
                        if type(r) in _BAD_RETURN:
                            raise self._bad_return(r)
                        wins = (window,) if window is not None else x.windows
                        for o in r:
                            if type(o) is TaggedOutput:
                                if o.tag != main:
                                    raise self._unknown_tag(o.tag)
                                o = o.value
                            if out_windowed:
                                kind = type(o)
                                if kind is tv:
                                    o = wv(o.value, o.timestamp_us, wins, x.pane)
                                elif kind is not wv:
                                    o = wv(o, x.timestamp_us, wins, x.pane)
                            elif type(o) in (tv, wv):
                                o = _plain_value(o)
                            append(o)
                    if len(out) > FLUSH_AT:
                        self.elements_out += len(out)
                        emit(out)
                        out = []
                        append = out.append
                        set_current_container(self.metrics)
            except Exception as e:
                raise self._fail(e) from None
            if out:
                self.elements_out += len(out)
                emit(out)

        return process

    def _bad_return(self, r: Any) -> TypeError:
        return TypeError(
            f"{self.label!r} returned a {type(r).__name__} ({r!r:.60}) where an iterable of "
            "outputs was expected; return [value] (or yield value) to emit one element"
        )

    def _unknown_tag(self, tag: str) -> ValueError:
        declared = [t for t in self.emitters if t != self.main_tag]
        return ValueError(
            f"{self.label!r} emitted TaggedOutput({tag!r}, ...) but declares outputs "
            f"{declared}; add it with .with_outputs({tag!r}, ...)"
        )

    # -- general path ----------------------------------------------------------------------------

    def _param_kwargs(self, x: Any, window: Any) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        for name, kind in self.dofn_params.items():
            if kind == "timestamp":
                kw[name] = (
                    Timestamp(micros=x.timestamp_us)
                    if self.in_windowed
                    else Timestamp(micros=MIN_US)
                )
            elif kind == "window":
                kw[name] = window
            elif kind == "pane":
                kw[name] = x.pane if self.in_windowed else PANE_INFO_UNKNOWN
            elif kind == "element":
                kw[name] = x.value if self.in_windowed else x
            elif kind == "key":
                value = x.value if self.in_windowed else x
                kw[name] = value[0]
        return kw

    def _call_process(self, value: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        kind = self.fn_kind
        fn = self.process_fn
        if kind == "dofn":
            return fn(value, *args, **kwargs)
        if kind == "map":
            return (fn(value, *args, **kwargs),)
        if kind == "flatmap":
            return fn(value, *args, **kwargs)
        if kind == "filter":
            return (value,) if fn(value, *args, **kwargs) else ()
        if kind == "maptuple":
            return (fn(*value, *args, **kwargs),)
        return fn(*value, *args, **kwargs)  # flatmaptuple

    def _process_general(self, chunk: list[Any]) -> None:
        self.elements_in += len(chunk)
        set_current_container(self.metrics)
        outs: dict[str, list[Any]] = {tag: [] for tag in self.emitters}
        main = self.main_tag
        in_windowed = self.in_windowed
        per_window = bool(self.window_sides) or "window" in self.dofn_params.values()
        has_params = bool(self.dofn_params)
        check = self.check_returns
        drop_unknown = self.drop_unknown_tags
        out_windowed = self.out_windowed
        emitters = self.emitters
        pending = 0
        try:
            for x in chunk:
                if in_windowed:
                    windows = x.windows if per_window else (None,)
                    for window in windows:
                        args, kwargs = self.args, self.kwargs
                        if self.window_sides:
                            args, kwargs = list(args), dict(kwargs)
                            for slot, side in self.window_sides:
                                self._set_slot(args, kwargs, slot, side.value_for(window))
                        if has_params:
                            kwargs = {**kwargs, **self._param_kwargs(x, window)}
                        r = self._call_process(x.value, args, kwargs)
                        if r is None:
                            continue
                        if check and type(r) in _BAD_RETURN:
                            raise self._bad_return(r)
                        wins = (window,) if window is not None else x.windows
                        for o in r:
                            tag = main
                            if type(o) is TaggedOutput:
                                tag, o = o.tag, o.value
                                if tag not in outs:
                                    if drop_unknown:
                                        continue
                                    raise self._unknown_tag(tag)
                            if out_windowed[tag]:
                                if type(o) is TimestampedValue:
                                    o = WindowedValue(o.value, o.timestamp_us, wins, x.pane)
                                elif type(o) is WindowedValue:
                                    pass
                                else:
                                    o = WindowedValue(o, x.timestamp_us, wins, x.pane)
                            elif type(o) in (TimestampedValue, WindowedValue):
                                o = _plain_value(o)
                            outs[tag].append(o)
                            pending += 1
                else:
                    kwargs = self.kwargs
                    if has_params:
                        kwargs = {**kwargs, **self._param_kwargs(x, None)}
                    r = self._call_process(x, self.args, kwargs)
                    if r is None:
                        continue
                    if check and type(r) in _BAD_RETURN:
                        raise self._bad_return(r)
                    for o in r:
                        tag = main
                        if type(o) is TaggedOutput:
                            tag, o = o.tag, o.value
                            if tag not in outs:
                                if drop_unknown:
                                    continue
                                raise self._unknown_tag(tag)
                        if out_windowed[tag]:
                            if type(o) is TimestampedValue:
                                o = WindowedValue(o.value, o.timestamp_us, GLOBAL_WINDOWS_TUPLE)
                            elif type(o) is not WindowedValue:
                                o = WindowedValue(o, MIN_US, GLOBAL_WINDOWS_TUPLE)
                        elif type(o) in (TimestampedValue, WindowedValue):
                            o = _plain_value(o)
                        outs[tag].append(o)
                        pending += 1
                if pending > FLUSH_AT:
                    for tag, out in outs.items():
                        if out:
                            self.elements_out += len(out)
                            emitters[tag](out)
                            outs[tag] = []
                    pending = 0
                    set_current_container(self.metrics)
        except Exception as e:
            raise self._fail(e) from None
        for tag, out in outs.items():
            if out:
                self.elements_out += len(out)
                emitters[tag](out)
