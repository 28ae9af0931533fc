"""What ``exec`` and the runners call on user objects: the contract, as ``typing.Protocol``\\ s.

User objects reach the executors as payloads of graph nodes. The model's base classes
(:class:`~headrace.model.window.BoundedWindow`, :class:`~headrace.model.window.WindowFn`,
:class:`~headrace.model.sources.BoundedSource`, ...) implement these protocols; a user object, or
an object made by another SDK, that implements them works without subclassing. Each protocol
lists exactly the methods some executor calls, and where:

=====================  ===========================================================================
protocol               called by
=====================  ===========================================================================
``Window``             ``exec.panes`` and ``runners.tasks`` (end of window: output time, GC time,
                       ordering of merged windows); windows are also dict keys (hash, equality)
``WindowFn``           ``exec.operators`` (``WindowInto``: ``assign_us`` fast path, ``assign``),
                       ``exec.panes`` and ``runners.tasks`` (``merge``, ``is_merging``,
                       ``get_transformed_output_time`` for ``OUTPUT_AT_EARLIEST_TRANSFORMED``)
``CombineFnLike``      ``exec.grouping`` and ``exec.panes`` (lifted and streaming combining)
``BoundedSourceLike``  ``runners.coordinator`` (``split``) and ``runners.tasks`` (``read``,
                       ``as_list``)
``UnboundedReaderLike``  the streaming driver (poll, watermark, checkpoint, commit after the run
                       committed, close)
``FinalizerLike``      the coordinators, after the whole run (``commit``) or on failure (``abort``)
=====================  ===========================================================================

The protocols are ``runtime_checkable``, so a runner can check a payload before it runs; the
direct runner relies on duck typing and the graph validation of :mod:`headrace.graph.validate`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "BoundedSourceLike",
    "CombineFnLike",
    "FinalizerLike",
    "UnboundedReaderLike",
    "Window",
    "WindowFn",
]


@runtime_checkable
class Window(Protocol):
    """A window: hashable, comparable for equality, with an inclusive end in microseconds."""

    def max_timestamp_us(self) -> int:
        """The last microsecond inside the window (Beam's ``max_timestamp()``)."""
        ...

    def __hash__(self) -> int: ...

    def __eq__(self, other: object) -> bool: ...


@runtime_checkable
class WindowFn(Protocol):
    """A window function: assigns windows to timestamps and merges windows (sessions)."""

    def assign(self, assign_context: Any) -> Iterable[Any]:
        """The windows of one element (``assign_context.timestamp``, ``.element``)."""
        ...

    def merge(self, merge_context: Any) -> None:
        """Report merges through ``merge_context.merge(to_be_merged, result)``."""
        ...

    def is_merging(self) -> bool: ...

    def get_transformed_output_time(self, window: Any, input_timestamp: Any) -> Any:
        """The output time of a pane under ``OUTPUT_AT_EARLIEST_TRANSFORMED``."""
        ...


@runtime_checkable
class CombineFnLike(Protocol):
    """A CombineFn as ``exec.grouping`` drives it (``compact``/``add_inputs`` are optional)."""

    def setup(self) -> None: ...

    def create_accumulator(self, *args: Any, **kwargs: Any) -> Any: ...

    def add_input(self, accumulator: Any, element: Any, *args: Any, **kwargs: Any) -> Any: ...

    def merge_accumulators(self, accumulators: Iterable[Any], *args: Any, **kwargs: Any) -> Any: ...

    def extract_output(self, accumulator: Any, *args: Any, **kwargs: Any) -> Any: ...

    def teardown(self) -> None: ...


@runtime_checkable
class BoundedSourceLike(Protocol):
    """A bounded source: split into parts that pickle, each read in one task."""

    def split(self, desired_num_splits: int) -> list[Any]: ...

    def read(self) -> Iterator[Any]: ...

    def as_list(self) -> list[Any] | None:
        """The elements, when they are already in memory (a fast path); otherwise None."""
        ...


@runtime_checkable
class UnboundedReaderLike(Protocol):
    """The reader of an unbounded source, polled by the streaming driver."""

    def poll(self, max_elements: int, timeout_s: float) -> list[Any]: ...

    def watermark_us(self) -> int: ...

    def checkpoint(self) -> Any: ...

    def commit(self, checkpoint: Any) -> None: ...

    def is_done(self) -> bool: ...

    def close(self) -> None: ...


@runtime_checkable
class FinalizerLike(Protocol):
    """What makes a sink's output visible after the whole run succeeded, or removes it."""

    def commit(self, results: list[Any]) -> None: ...

    def abort(self, results: list[Any]) -> None: ...
