"""Side-input views: turning a materialised PCollection into what a DoFn argument receives.

Global-window side inputs give one value for the whole run. A windowed side input gives one
value per side window; a main-input element in window ``w`` reads the side window that contains
``w``'s last timestamp, the last one the side's WindowFn assigns there when several do (Beam's
``default_window_mapping_fn``: with sliding windows of the same size and period, ``w`` itself).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from headrace.model.pvalue import EmptySideInput
from headrace.model.window import WindowedValue

__all__ = ["SideInput", "build_view"]

NO_DEFAULT = object()
_NO_DEFAULT = NO_DEFAULT


def build_view(kind: str, elements: list[Any], default: Any, label: str, side: str) -> Any:
    """The value a DoFn receives for a view of ``kind`` over ``elements``."""
    if kind == "singleton":
        if len(elements) == 1:
            return elements[0]
        if not elements:
            return EmptySideInput() if default is _NO_DEFAULT else default
        raise ValueError(
            f"{label!r}: side input AsSingleton({side}) has {len(elements)} elements but must "
            "have exactly one; use AsList or AsIter to read several"
        )
    if kind in ("iter", "list"):
        return elements
    if kind == "dict":
        try:
            return dict(elements)
        except (TypeError, ValueError):
            raise ValueError(
                f"{label!r}: side input AsDict({side}) needs (key, value) pairs"
            ) from None
    if kind == "multimap":
        out: defaultdict[Any, list[Any]] = defaultdict(list)  # a key never seen gives []
        try:
            for k, v in elements:
                out[k].append(v)
        except (TypeError, ValueError):
            raise ValueError(
                f"{label!r}: side input AsMultiMap({side}) needs (key, value) pairs"
            ) from None
        return out
    raise ValueError(f"unknown side input view {kind!r}")


class SideInput:
    """One side input of one operator, ready to be read per element window."""

    def __init__(
        self,
        kind: str,
        elements: Iterable[Any],
        default: Any,
        label: str,
        side: str,
        window_fn: Any,
        windowed_elements: bool,
    ) -> None:
        self.kind = kind
        self.label = label
        self.side = side
        self.default = default
        self.window_fn = window_fn
        if window_fn is None:
            values = [e.value for e in elements] if windowed_elements else list(elements)
            self.global_value = build_view(kind, values, default, label, side)
            self.per_window: dict[Any, Any] | None = None
        else:
            groups: dict[Any, list[Any]] = {}
            for wv in elements:
                assert isinstance(wv, WindowedValue)
                for w in wv.windows:
                    groups.setdefault(w, []).append(wv.value)
            self.per_window = groups
            self.global_value = None
            self._cache: dict[Any, Any] = {}

    @property
    def is_global(self) -> bool:
        return self.window_fn is None

    def value_for(self, main_window: Any) -> Any:
        if self.per_window is None:
            return self.global_value
        side_windows = (
            self.window_fn.assign_us(main_window.max_timestamp_us())
            if hasattr(self.window_fn, "assign_us")
            else tuple(self.window_fn.assign(_ctx(main_window)))
        )
        # the last window the side's WindowFn assigns to the main window's end, as Beam's
        # default_window_mapping_fn (map_via_end) takes: for sliding windows of one size and
        # period, the main window itself
        side_window = side_windows[-1]
        cached = self._cache.get(side_window, _NO_DEFAULT)
        if cached is _NO_DEFAULT:
            cached = build_view(
                self.kind, self.per_window.get(side_window, []), self.default, self.label, self.side
            )
            self._cache[side_window] = cached
        return cached


def _ctx(window: Any) -> Any:
    from headrace.model.window import WindowFn

    return WindowFn.AssignContext(window.max_timestamp(), window=window)
