"""Deterministic (key, value) pairs generated on the fly: a headrace BoundedSource.

Pair ``i`` (``0 <= i < n``) has key ``(i * 7919) % keys`` and value ``i`` (or ``i`` as a
zero-padded decimal string of ``value_digits`` characters). 7919 is prime, so with a number of
keys it does not divide, every key gets ``n // keys`` or one more pairs, spread over the whole
range. The source splits into contiguous index ranges and generates each range at C speed (map
and zip over ranges), so neither building the pipeline nor sending splits to workers costs time
in proportion to ``n``, and the plain-Python baselines iterate exactly the same pairs.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterator
from typing import Any

from headrace.model.sources import BoundedSource

__all__ = ["STEP", "PairSource"]

STEP = 7919


class PairSource(BoundedSource):
    """Pairs ``i`` in ``[start, stop)`` of the sequence described in the module docstring."""

    def __init__(
        self, n: int, keys: int, value_digits: int = 0, start: int = 0, stop: int | None = None
    ) -> None:
        if keys % STEP == 0:
            raise ValueError(f"keys must not be a multiple of {STEP}")
        self.n, self.keys, self.value_digits = n, keys, value_digits
        self.start, self.stop = start, n if stop is None else stop

    def split(self, desired_num_splits: int) -> list[BoundedSource]:
        size = self.stop - self.start
        parts = max(1, min(desired_num_splits, size))
        bounds = [self.start + size * i // parts for i in range(parts + 1)]
        return [
            PairSource(self.n, self.keys, self.value_digits, lo, hi)
            for lo, hi in itertools.pairwise(bounds)
        ]

    def read(self) -> Iterator[Any]:
        lo, hi = self.start, self.stop
        keys = map(operator.mod, range(lo * STEP, hi * STEP, STEP), itertools.repeat(self.keys))
        if self.value_digits:
            values: Iterator[Any] = map(f"{{:0{self.value_digits}d}}".format, range(lo, hi))
        else:
            values = iter(range(lo, hi))
        return zip(keys, values)

    def estimate_size(self) -> int:
        return (self.stop - self.start) * (16 + self.value_digits)

    def display_data(self) -> dict[str, Any]:
        return {"pairs": self.stop - self.start, "keys": self.keys}
