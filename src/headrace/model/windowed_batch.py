"""Windowed batches: several values that share one timestamp, window set and pane.

Beam's ``WindowedBatch`` / ``HomogeneousWindowedBatch`` (apache_beam/utils/windowed_value.py):
a batch is a :class:`~headrace.model.window.WindowedValue` whose value is the batch, so equality,
hashing and pickling are the windowed value's. ``from_windowed_values`` groups values by their
(timestamp, windows, pane) in first-seen order and builds each batch with ``produce_fn``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from headrace.model.window import BeamWindowedValue, WindowedValue

__all__ = ["HomogeneousWindowedBatch", "WindowedBatch"]


class WindowedBatch:
    """A batch of values with their windowing (base class; see HomogeneousWindowedBatch)."""

    def with_values(self, new_values: Any) -> WindowedBatch:
        raise NotImplementedError

    def as_windowed_values(self, explode_fn: Callable[[Any], Iterable[Any]]) -> Iterator[Any]:
        raise NotImplementedError

    @staticmethod
    def from_windowed_values(
        windowed_values: Sequence[Any], *, produce_fn: Callable[[list[Any]], Any]
    ) -> Iterator[WindowedBatch]:
        return HomogeneousWindowedBatch.from_windowed_values(windowed_values, produce_fn=produce_fn)


class HomogeneousWindowedBatch(WindowedBatch):
    """Values that all have the same timestamp, windows and pane.

    >>> from headrace.model.window import PANE_INFO_UNKNOWN
    >>> wb = HomogeneousWindowedBatch.of(["a", "b"], 3, (), PANE_INFO_UNKNOWN)
    >>> [wv.value for wv in wb.as_windowed_values(iter)], wb.timestamp
    (['a', 'b'], Timestamp(3))
    """

    def __init__(self, wv: Any) -> None:
        self._wv = wv

    @staticmethod
    def of(values: Any, timestamp: Any, windows: Any, pane_info: Any) -> HomogeneousWindowedBatch:
        make: Any = BeamWindowedValue
        return HomogeneousWindowedBatch(make(values, timestamp, windows, pane_info))

    @property
    def values(self) -> Any:
        return self._wv.value

    @property
    def timestamp(self) -> Any:
        return self._wv.timestamp

    @property
    def pane_info(self) -> Any:
        return self._wv.pane_info

    @property
    def windows(self) -> Any:
        return self._wv.windows

    def with_values(self, new_values: Any) -> HomogeneousWindowedBatch:
        return HomogeneousWindowedBatch(self._wv.with_value(new_values))

    def as_windowed_values(self, explode_fn: Callable[[Any], Iterable[Any]]) -> Iterator[Any]:
        for value in explode_fn(self._wv.value):
            yield self._wv.with_value(value)

    def as_empty_windowed_value(self) -> Any:
        return self._wv.with_value(None)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, HomogeneousWindowedBatch):
            return bool(self._wv == other._wv)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._wv)

    def __repr__(self) -> str:
        return f"HomogeneousWindowedBatch({self._wv!r})"

    @staticmethod
    def from_batch_and_windowed_value(*, batch: Any, windowed_value: Any) -> WindowedBatch:
        return HomogeneousWindowedBatch(windowed_value.with_value(batch))

    @staticmethod
    def from_windowed_values(
        windowed_values: Sequence[Any], *, produce_fn: Callable[[list[Any]], Any]
    ) -> Iterator[WindowedBatch]:
        groups: dict[WindowedValue, list[Any]] = {}
        for wv in windowed_values:
            groups.setdefault(wv.with_value(None), []).append(wv.value)
        for shared, values in groups.items():
            yield HomogeneousWindowedBatch(shared.with_value(produce_fn(values)))
