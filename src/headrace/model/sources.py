"""Bounded sources: the interface every finite input implements.

A source describes data to read; it does not hold open handles, so it pickles and travels to
worker processes. A runner asks a source to ``split`` itself into roughly ``desired_num_splits``
parts, sends each part to a worker, and calls ``read`` there. ``read`` yields plain elements (or
:class:`~headrace.model.window.TimestampedValue` to give an element an event timestamp).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["BoundedSource"]


class BoundedSource:
    """A finite, splittable collection of elements.

    Subclasses implement :meth:`read` and usually :meth:`split` and :meth:`estimate_size`.

    >>> class Numbers(BoundedSource):
    ...     def __init__(self, lo, hi):
    ...         self.lo, self.hi = lo, hi
    ...     def split(self, desired_num_splits):
    ...         step = max(1, -(-(self.hi - self.lo) // desired_num_splits))
    ...         return [Numbers(a, min(a + step, self.hi)) for a in range(self.lo, self.hi, step)]
    ...     def read(self):
    ...         return iter(range(self.lo, self.hi))
    >>> [list(s.read()) for s in Numbers(0, 5).split(2)]
    [[0, 1, 2], [3, 4]]
    """

    def split(self, desired_num_splits: int) -> list[BoundedSource]:
        """Return sources that together read exactly what this one reads (default: no split)."""
        return [self]

    def read(self) -> Iterator[Any]:
        """Yield the elements of this source."""
        raise NotImplementedError(f"{type(self).__name__} must implement read()")

    def estimate_size(self) -> int | None:
        """Approximate size in bytes, or None when unknown."""
        return None

    def as_list(self) -> list[Any] | None:
        """The elements as an existing list when the source already holds one (no copy)."""
        return None

    def display_data(self) -> dict[str, Any]:
        """Short facts shown in plans and the UI (file pattern, table, ...)."""
        return {}

    def default_label(self) -> str:
        return type(self).__name__
