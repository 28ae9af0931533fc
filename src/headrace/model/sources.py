"""Sources: the interfaces every input implements, finite (:class:`BoundedSource`) or endless
(:class:`UnboundedSource` with its :class:`UnboundedReader`).

A source describes data to read; it does not hold open handles, so it pickles and travels to
worker processes. A runner asks a source to ``split`` itself into roughly ``desired_num_splits``
parts and sends each part to a worker.

Bounded sources
---------------
The worker calls ``read`` on its part. ``read`` yields plain elements (or
:class:`~headrace.model.window.TimestampedValue` to give an element an event timestamp).

Unbounded sources: the contract
-------------------------------
An unbounded source is read by a *polling* runner (``streaming=True``). Two objects take part:

* :class:`UnboundedSource`, a picklable description (a stream name, a file pattern, ...).
* :class:`UnboundedReader`, the live reader of one split, holding connections and a position.
  It lives in one worker and is called from one thread at a time; it never travels.

What the runner does, in order:

1. **Split, once.** At job start it calls ``source.split(n)`` and keeps the returned list with the
   job's saved state. Each split is read by exactly one reader at a time; checkpoints belong to
   the split that produced them. Splitting must be deterministic (the same source and ``n`` give
   the same splits), so a restarted job that splits again gets the same parts.
2. **Open.** For each split, ``split.create_reader(checkpoint)`` with the split's last persisted
   checkpoint, or ``None`` when there is none. A reader created from a checkpoint continues right
   after it: nothing the checkpoint covers is returned again, everything after it is.
   Creating a reader from a checkpoint also *commits* it (see 4): the previous reader may have
   died between persisting the checkpoint and committing it. With ``None``, a reader of a system
   that keeps positions itself (a Redis consumer group, a NATS durable consumer) resumes after
   what was committed there; a reader of a source without one (a periodic impulse, a watched
   folder) starts from the beginning.
3. **Poll, in a loop.** ``reader.poll(max_elements, timeout_s)`` returns a list of at most
   ``max_elements`` elements, waiting at most about ``timeout_s`` seconds for the first one, and
   ``[]`` when none arrived in that time (``timeout_s=0`` never waits; a runner that reads
   several splits from one thread passes small timeouts). An element is a
   :class:`~headrace.model.window.TimestampedValue` (its event timestamp; :func:`timestamped_us`
   builds one cheaply) or a plain value, which the runner stamps with the processing time of the
   poll. After each poll the runner reads
   ``reader.watermark_us()``: a promise, in integer microseconds, that no element returned by a
   *later* poll has an earlier timestamp (``MIN_US`` when the reader cannot tell yet). It never
   goes backwards. An element that breaks the promise anyway is late data; the runner treats it
   as such (the reader does not drop it).
4. **Checkpoint, then commit.** Whenever it likes, between polls, the runner calls
   ``reader.checkpoint()``: a small, picklable position covering every element returned by
   ``poll`` so far. Once everything those elements produced is durably processed and the
   checkpoint is persisted, it calls ``reader.commit(checkpoint)``, which acknowledges the data to
   the system behind the source (Redis ``XACK``, a NATS ack, a stored offset). ``commit`` is
   idempotent, takes checkpoints in the order they were made, and ignores one older than a
   checkpoint already committed. A runner without durable state may commit right after
   processing. Data returned but not covered by the checkpoint the next reader starts from is
   delivered again: delivery is at least once, and exactly once for a runner that persists its
   outputs together with the checkpoint.
5. **Finish.** ``reader.is_done()`` turns true when a source with a natural end (a stop time, a
   number of files) will return nothing more; its watermark is then ``MAX_US`` and ``poll``
   returns ``[]``. The runner stops polling that split.
6. **Close.** ``reader.close()`` on finish, cancel or failure releases connections and threads.
   It does not commit. It is idempotent.

A minimal source and the runner's side of the contract (``CountingSource`` counts ``0..n-1``,
stamping ``i`` at ``i`` seconds; the checkpoint is the next number to emit):

>>> from headrace.model.window import TimestampedValue
>>> class CountingReader(UnboundedReader):
...     def __init__(self, n, start):
...         self.n, self.next = n, start
...     def poll(self, max_elements, timeout_s):
...         stop = min(self.n, self.next + max_elements)
...         out = [TimestampedValue(i, i) for i in range(self.next, stop)]
...         self.next = stop
...         return out
...     def watermark_us(self):
...         return MAX_US if self.is_done() else self.next * 1_000_000
...     def checkpoint(self):
...         return self.next
...     def is_done(self):
...         return self.next >= self.n
>>> class CountingSource(UnboundedSource):
...     def __init__(self, n):
...         self.n = n
...     def create_reader(self, checkpoint=None):
...         return CountingReader(self.n, checkpoint or 0)
>>> reader = CountingSource(5).create_reader()
>>> [tv.value for tv in reader.poll(3, timeout_s=0)], reader.watermark_us()
([0, 1, 2], 3000000)
>>> saved = reader.checkpoint()
>>> reader.commit(saved)
>>> reader.close()
>>> reader = CountingSource(5).create_reader(saved)  # a restart resumes after the checkpoint
>>> [tv.value for tv in reader.poll(10, timeout_s=0)], reader.is_done()
([3, 4], True)
>>> reader.watermark_us() == MAX_US
True
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from headrace.model.timestamp import MAX_US, MIN_US
from headrace.model.window import TimestampedValue

__all__ = [
    "MAX_US",
    "MIN_US",
    "BoundedSource",
    "UnboundedReader",
    "UnboundedSource",
    "timestamped_us",
]


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


def timestamped_us(value: Any, timestamp_us: int) -> TimestampedValue:
    """``TimestampedValue(value, ...)`` from integer microseconds, without a ``Timestamp`` object.

    Readers call this on their hot path.

    >>> timestamped_us("a", 1_500_000)
    TimestampedValue('a', 1.5)
    """
    tv = TimestampedValue.__new__(TimestampedValue)
    tv.value = value
    tv.timestamp_us = timestamp_us
    return tv


class UnboundedSource:
    """A picklable description of endless data, read by :class:`UnboundedReader` objects.

    Subclasses implement :meth:`create_reader` and may implement :meth:`split`. See the module
    docstring for the full contract and an example.
    """

    def split(self, desired_num_splits: int) -> list[UnboundedSource]:
        """Return sources that together read what this one reads (default: no split).

        Must be deterministic: the same source and ``desired_num_splits`` give the same splits.
        """
        return [self]

    def create_reader(self, checkpoint: Any = None) -> UnboundedReader:
        """Open a reader positioned right after ``checkpoint`` (at the start when ``None``).

        ``checkpoint`` is a value returned by :meth:`UnboundedReader.checkpoint` of a reader of
        this same split; the new reader treats it as committed.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement create_reader()")

    def display_data(self) -> dict[str, Any]:
        """Short facts shown in plans and the UI (stream, subject, file pattern, ...)."""
        return {}

    def default_label(self) -> str:
        return type(self).__name__


class UnboundedReader:
    """The live reader of one split of an :class:`UnboundedSource`.

    Subclasses implement :meth:`poll` and :meth:`checkpoint`, and usually :meth:`watermark_us`,
    :meth:`commit` and :meth:`close`. Called from one thread at a time.
    """

    def poll(self, max_elements: int, timeout_s: float) -> list[Any]:
        """Up to ``max_elements`` new elements; ``[]`` if none arrived within ``timeout_s``."""
        raise NotImplementedError(f"{type(self).__name__} must implement poll()")

    def watermark_us(self) -> int:
        """No element of a later poll has an earlier timestamp (``MIN_US`` when unknown)."""
        return MIN_US

    def checkpoint(self) -> Any:
        """A picklable position covering every element returned by :meth:`poll` so far."""
        raise NotImplementedError(f"{type(self).__name__} must implement checkpoint()")

    def commit(self, checkpoint: Any) -> None:
        """Acknowledge to the system that the data ``checkpoint`` covers is durably processed."""

    def is_done(self) -> bool:
        """True once the reader will return no more elements (default: never)."""
        return False

    def close(self) -> None:
        """Release connections and threads (idempotent; does not commit)."""

    def __enter__(self) -> UnboundedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
