"""Window merging and output-timestamp rules, defined once for every executor.

Beam's rules (``WindowFn.merge`` through a merge context; the ``TimestampCombiner`` of a
windowing strategy) used to be spelled out separately by the batch grouping reader, the
streaming pane engine and the stateful executor. This module holds the shared pieces:

- :func:`merges` runs a window function's ``merge`` over a set of windows and returns what
  merged into what; :func:`merge_mapping` the same as ``old window -> merged window``.
- :func:`timestamp_tracking` says which element timestamp a grouping keeps per group:
  the earliest (``OUTPUT_AT_EARLIEST``, ``OUTPUT_AT_EARLIEST_TRANSFORMED``), the latest
  (``OUTPUT_AT_LATEST``) or none (``END_OF_WINDOW``: the window's end is the output time).
- :func:`transformed_output_time` applies ``get_transformed_output_time`` in microseconds.
- :func:`group_merged_windows` is the batch reader's merge of one partition's
  ``key -> [(window, timestamp, value)]`` into one output per key and merged window.

The pane engine of :mod:`headrace.exec.panes` keeps its own incremental form of merging (windows
arrive one at a time and carry pane state); it follows the same rules.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from headrace.model.timestamp import Timestamp, to_micros
from headrace.model.window import PANE_ON_TIME_NOT_LAST, WindowedValue, WindowFn

__all__ = [
    "group_merged_windows",
    "merge_mapping",
    "merges",
    "timestamp_tracking",
    "transformed_output_time",
]


def merges(window_fn: Any, windows: Iterable[Any]) -> list[tuple[list[Any], Any]]:
    """``(windows merged, result)`` for each merge ``window_fn`` makes of ``windows``."""
    context = WindowFn.MergeContext(set(windows))
    window_fn.merge(context)
    return [(list(olds), result) for olds, result in context.merges]


def merge_mapping(window_fn: Any, windows: Iterable[Any]) -> dict[Any, Any]:
    """``old window -> merged window`` for every window that merged (others are absent)."""
    mapping: dict[Any, Any] = {}
    for olds, result in merges(window_fn, windows):
        for w in olds:
            mapping[w] = result
    return mapping


def timestamp_tracking(timestamp_combiner: str | None) -> str | None:
    """``"min"``, ``"max"`` or None: which element timestamp a group's output time follows.

    >>> timestamp_tracking("OUTPUT_AT_EARLIEST_TRANSFORMED"), timestamp_tracking("END_OF_WINDOW")
    ('min', None)
    """
    if timestamp_combiner in ("OUTPUT_AT_EARLIEST", "OUTPUT_AT_EARLIEST_TRANSFORMED"):
        return "min"
    if timestamp_combiner == "OUTPUT_AT_LATEST":
        return "max"
    return None


def transformed_output_time(window_fn: Any, window: Any, t_us: int) -> int:
    """The output time ``window_fn`` gives ``t_us`` in ``window`` (microseconds)."""
    return to_micros(window_fn.get_transformed_output_time(window, Timestamp(micros=t_us)))


def group_merged_windows(
    table: dict[Any, list[Any]],
    window_fn: Any,
    track: str | None,
    out_windowed: bool,
    transformed: bool,
) -> Iterator[Any]:
    """One ``(key, values)`` per key and merged window, ordered by window end within a key.

    ``table`` maps each key to its ``(window, timestamp_us, value)`` entries. With
    ``out_windowed`` each output is a :class:`WindowedValue` in its merged window, at the time
    the timestamp combiner says (``track``; ``transformed`` for the transformed variant).
    """
    for k, entries in table.items():
        mapping = merge_mapping(window_fn, {w for w, _, _ in entries})
        groups: dict[Any, list[Any]] = {}
        times: dict[Any, int] = {}
        for w, t, v in entries:
            mw = mapping.get(w, w)
            groups.setdefault(mw, []).append(v)
            cur = times.get(mw)
            if cur is None or (t < cur if track == "min" else t > cur):
                times[mw] = t
        for mw in sorted(groups, key=lambda w: w.max_timestamp_us()):
            value = (k, groups[mw])
            if not out_windowed:
                yield value
                continue
            t = times[mw] if track else mw.max_timestamp_us()
            if transformed:
                t = transformed_output_time(window_fn, mw, t)
            yield WindowedValue(value, t, (mw,), PANE_ON_TIME_NOT_LAST)
