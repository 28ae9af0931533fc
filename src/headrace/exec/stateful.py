"""Stateful ParDo in streaming runs: user state and timers per key and window.

State of one executor (:class:`StatefulParDo`):

``store``   every state cell, per (state name, window, key): a ``StateStore``.
``timers``  pending timers, one per (key, window, timer name): a ``TimerQueue``.
``scope``   the (key, window) the DoFn is acting on: moved before every ``process`` call and every
            timer callback; the state accessors and timer objects read it.

Who moves it: elements (``process``) write state and set timers; watermark and processing-time
advances (``advance``) fire due timers, in time order, until none is due (a callback may set a
timer that is already due), then clear the state of windows past their garbage-collection time
(window end + allowed lateness). The output watermark is held at the earliest pending event-time
timer. At the end of input the watermark reaches +infinity, so every event-time timer fires.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from headrace.exec.errors import annotate
from headrace.exec.userstate import StateScope, StateStore, TimerQueue
from headrace.exec.windowing import merges
from headrace.graph.nodes import TransformNode, WindowingStrategy
from headrace.model.metrics import MetricsContainer, set_current_container
from headrace.model.pvalue import TaggedOutput
from headrace.model.timestamp import MAX_US, MIN_US, Timestamp
from headrace.model.userstate import TimeDomain, check_merging_windows, describe_stateful_dofn
from headrace.model.window import GLOBAL_WINDOWS_TUPLE, TimestampedValue, WindowedValue

__all__ = ["StatefulParDo"]

Emit = Callable[[list[Any]], None]


class StatefulParDo:
    """Runs a DoFn that declares state or timers (see the module docstring)."""

    def __init__(
        self,
        node: TransformNode,
        strategy: WindowingStrategy,
        emitters: dict[str, Emit],
        metrics: MetricsContainer,
    ) -> None:
        assert node.payload is not None
        self.node = node
        self.label = node.label
        self.dofn, self.args, self.kwargs = node.payload.load()
        info = describe_stateful_dofn(self.dofn)
        self.main_tag = node.params.get("main_tag", "main")
        self.emitters = emitters
        self.metrics = metrics
        self.lateness_us = strategy.allowed_lateness_us
        self.window_fn = (
            strategy.window_fn.load() if strategy.merging and strategy.window_fn else None
        )
        if self.window_fn is not None:
            check_merging_windows(info.state_specs.values(), self.label)
        self.active: dict[Any, set[Any]] = {}  # merging windows only: key -> live windows
        self.scope = StateScope()
        self.store = StateStore(info.state_specs, owner=self.label)
        self.timers = TimerQueue()
        accessors = self.store.accessors(self.scope)
        timer_objs = {
            n: self.timers.timer(spec, self.scope) for n, spec in info.timer_specs.items()
        }
        self.process_call = self._binder(self.dofn.process, accessors, timer_objs)
        self.callbacks = {
            name: self._binder(getattr(self.dofn, method), accessors, timer_objs)
            for name, method in info.callbacks.items()
        }
        self.watermark = MIN_US

    def _binder(
        self, fn: Callable[..., Any], accessors: dict[str, Any], timers: dict[str, Any]
    ) -> Callable[[Any, int, Any], Any]:
        """A caller of ``fn`` that passes the special parameters it asks for."""
        fixed: dict[str, Any] = {}
        dynamic: list[tuple[str, str]] = []
        for p in inspect.signature(fn).parameters.values():
            marker = p.default
            kind = getattr(marker, "kind", None)
            spec: Any = getattr(marker, "spec", None)
            if kind == "state":
                fixed[p.name] = accessors[spec.name]
            elif kind == "timer":
                fixed[p.name] = timers[spec.name]
            elif kind in ("key", "window", "timestamp", "pane"):
                dynamic.append((p.name, kind))
        scope = self.scope

        def call(element: Any, ts_us: int, pane: Any) -> Any:
            kwargs = dict(fixed)
            for name, kind in dynamic:
                if kind == "key":
                    kwargs[name] = scope.key
                elif kind == "window":
                    kwargs[name] = scope.window
                elif kind == "timestamp":
                    kwargs[name] = Timestamp(micros=ts_us)
                else:
                    kwargs[name] = pane
            if element is _NO_ELEMENT:
                return fn(**kwargs)
            return fn(element, *self.args, **self.kwargs, **kwargs)

        return call

    # -- lifecycle -------------------------------------------------------------------------------

    def _guard(self, what: str, method: Callable[[], Any]) -> Any:
        set_current_container(self.metrics)
        try:
            return method()
        except Exception as e:
            raise annotate(e, self.label, what=what) from None

    def setup(self) -> None:
        self._guard("setup()", self.dofn.setup)
        self._guard("start_bundle()", self.dofn.start_bundle)

    def finish(self) -> None:
        self.advance(MAX_US, None)
        results = self._guard("finish_bundle()", self.dofn.finish_bundle)
        if results is not None:
            out = [o if type(o) is WindowedValue else _global(o) for o in results]
            self.emitters[self.main_tag](out)

    def teardown(self) -> None:
        self._guard("teardown()", self.dofn.teardown)

    # -- elements and timers ---------------------------------------------------------------------

    def _emit(self, results: Any, ts_us: int, window: Any, pane: Any) -> None:
        if results is None:
            return
        outs: dict[str, list[Any]] = {}
        for o in results:
            tag = self.main_tag
            if type(o) is TaggedOutput:
                tag, o = o.tag, o.value
            if type(o) is TimestampedValue:
                wv = WindowedValue(o.value, o.timestamp_us, (window,), pane)
            elif type(o) is WindowedValue:
                wv = o
            else:
                wv = WindowedValue(o, ts_us, (window,), pane)
            outs.setdefault(tag, []).append(wv)
        for tag, chunk in outs.items():
            emitter = self.emitters.get(tag)
            if emitter is None:
                raise ValueError(
                    f"{self.label!r} emitted to undeclared output {tag!r}; add it with "
                    ".with_outputs()"
                )
            emitter(chunk)

    def process(self, chunk: list[Any]) -> None:
        set_current_container(self.metrics)
        scope, call = self.scope, self.process_call
        try:
            for x in chunk:
                try:
                    key = x.value[0]
                except (TypeError, IndexError, KeyError):
                    raise ValueError(
                        f"{self.label!r} uses state or timers, so its input must be "
                        f"(key, value) pairs; got {x.value!r}"
                    ) from None
                windows = self._merge(key, x.windows) if self.window_fn is not None else x.windows
                for window in windows:
                    scope.key, scope.window = key, window
                    self._emit(
                        call(x.value, x.timestamp_us, x.pane), x.timestamp_us, window, x.pane
                    )
        except Exception as e:
            raise annotate(e, self.label) from None

    def _merge(self, key: Any, new_windows: Any) -> list[Any]:
        """Merging windows (Sessions): merge ``key``'s live windows with the new ones, moving
        state and timers into the merged windows; return the windows the element now lives in."""
        active = self.active.setdefault(key, set())
        active.update(new_windows)
        mapping = {}
        for olds, merged in merges(self.window_fn, active):
            self.store.merge_windows(key, olds, merged)
            self.timers.merge_windows(key, olds, merged)
            active.difference_update(olds)
            active.add(merged)
            for w in olds:
                mapping[w] = merged
        return list(dict.fromkeys(mapping.get(w, w) for w in new_windows))

    def advance(self, watermark_us: int, now_us: int | None) -> int:
        """Fire due timers and expire state; return the hold on the output watermark."""
        set_current_container(self.metrics)
        self.watermark = max(self.watermark, watermark_us)
        self._fire(TimeDomain.WATERMARK, self.watermark)
        if now_us is not None:
            self._fire(TimeDomain.REAL_TIME, now_us)
        self._expire()
        hold = self.timers.min_pending_watermark_timer()
        return MAX_US if hold is None else hold

    def _fire(self, domain: str, up_to_us: int) -> None:
        while True:
            ready = self.timers.pop_ready(domain, up_to_us)
            if not ready:
                return
            for key, window, name, ts_us in ready:
                self.scope.key, self.scope.window = key, window
                try:
                    results = self.callbacks[name](_NO_ELEMENT, ts_us, None)
                except Exception as e:
                    raise annotate(e, self.label, what=f"the {name!r} timer callback") from None
                self._emit(results, ts_us, window, None)

    def _expire(self) -> None:
        wm = self.watermark
        for window in list(self.store.windows()):
            if window.max_timestamp_us() + self.lateness_us < wm:
                for key in list(self.store.keys(window)):
                    self.store.clear_window(key, window)
                    self.timers.clear_window(key, window)
                    if self.window_fn is not None and key in self.active:
                        self.active[key].discard(window)


_NO_ELEMENT = object()


def _global(value: Any) -> WindowedValue:
    return WindowedValue(value, MIN_US, GLOBAL_WINDOWS_TUPLE)
