"""Grouping and combining tables with a memory budget: the two sides of a shuffle.

Writer side (:class:`GroupTable`), one per grouping per task. It keeps a dict in memory:

========  =====================  =====================================================
mode      group key              value
========  =====================  =====================================================
gbk       key, or (key, window)  list of values
combine   key, or (key, window)  accumulator (lifted CombineFn, or a fast-path number)
merging   key                    list of (window, timestamp_us, value) (merging windows)
========  =====================  =====================================================

When the estimated size passes the budget, the table is *spilled*: items are split by a stable
hash of the key into partitions (one per reading task) and, inside each partition, into
``SUB_BUCKETS`` sub-buckets; each partition goes to one blob of the run's
:class:`~headrace.exec.spill.SpillSpace` (a file, for the direct runner) whose index says where
each sub-bucket's block is. ``close()`` returns one list of runs per partition: the in-memory table
itself (:class:`MemoryRun`, single-process only) and/or :class:`FileRun` descriptors. A table that
never spilled is closed into one *whole* block per partition instead, in the table's own order:
sorting 100 k groups into sub-buckets scattered the writer's walk over memory and cost as much as
the pickling. The run descriptors and their blobs are :mod:`headrace.exec.runs`.

Reader side (:func:`read_partition`): merges the runs of one partition. When everything fits the
budget it merges in one dict, reading each run's blob once; otherwise it first splits any whole
run into sub-buckets (one run in memory at a time, no larger than its writer's budget), then
merges sub-bucket by sub-bucket, splitting a sub-bucket again (with another hash salt) while it is
still over budget. So a grouping over data several times the budget finishes with bounded memory.
"""

from __future__ import annotations

import sys
from array import array
from collections import _count_elements, defaultdict  # type: ignore[attr-defined]
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from operator import itemgetter
from typing import Any

from headrace.exec.gcpolicy import leave_for_exit
from headrace.exec.keys import stable_hash
from headrace.exec.runs import (
    SUB_BUCKETS,
    FileRun,
    MemoryRun,
    Run,
    load_block,
    load_blocks,
    plain_values,
    write_file_run,
    write_whole_run,
)
from headrace.exec.spill import SpillSpace

__all__ = [
    "FileRun",
    "GroupTable",
    "MemoryRun",
    "Merger",
    "Run",
    "plain_values",
    "read_partition",
]

_MISSING = object()
_second = itemgetter(1)
# Typed value columns of a shuffle writer's groups (see GroupTable._add_gbk_typed): exact type
# of every value -> array typecode. Only these exact types: array('q') would take a bool or a
# numpy int and give back an int, array('d') an int and give back a float.
_TYPECODES = {int: "q", float: "d"}


def _deep_size(obj: Any) -> int:
    size = sys.getsizeof(obj)
    if isinstance(obj, (tuple, list)):
        size += (
            sum(sys.getsizeof(o) for o in obj[:16]) * max(1, len(obj)) // max(1, min(16, len(obj)))
        )
    elif isinstance(obj, dict):
        size += sum(sys.getsizeof(k) + sys.getsizeof(v) for k, v in list(obj.items())[:16])
    return size


class Merger:
    """How values of one mode combine: adding inputs, merging runs, and the output value."""

    def __init__(self, mode: str, combine: tuple[Any, tuple[Any, ...], dict[str, Any]] | None):
        self.mode = mode
        self.fn = None
        self.fast = None
        if combine is not None:
            fn, self.args, self.kwargs = combine
            self.fn = fn
            self.fast = getattr(fn, "fast_path", None)

    def setup(self) -> None:
        if self.fn is not None:
            self.fn.setup(*self.args, **self.kwargs)

    def teardown(self) -> None:
        if self.fn is not None:
            self.fn.teardown(*self.args, **self.kwargs)

    def merge_into(self, target: dict[Any, Any], items: Iterable[tuple[Any, Any]]) -> None:
        """Merge run items (group key, value) into ``target``."""
        if self.mode != "combine":
            get = target.get
            for k, vs in items:
                cur = get(k)
                if cur is None:
                    target[k] = vs
                elif type(cur) is list or (type(cur) is type(vs) and cur.typecode == vs.typecode):
                    cur.extend(vs)
                else:  # a typed column meets a list or another typecode: plain lists
                    target[k] = cur.tolist() + list(vs)
            return
        fast = self.fast
        get = target.get
        if fast in ("sum", "count"):
            for k, a in items:
                target[k] = get(k, 0) + a
        elif fast == "min":
            for k, a in items:
                cur = get(k, _MISSING)
                if cur is _MISSING or a < cur:
                    target[k] = a
        elif fast == "max":
            for k, a in items:
                cur = get(k, _MISSING)
                if cur is _MISSING or a > cur:
                    target[k] = a
        else:
            fn, args, kwargs = self.fn, self.args, self.kwargs
            assert fn is not None
            for k, a in items:
                cur = get(k, _MISSING)
                target[k] = (
                    a if cur is _MISSING else fn.merge_accumulators([cur, a], *args, **kwargs)
                )

    def compact(self, table: dict[Any, Any]) -> None:
        if self.mode == "combine" and self.fast is None and self.fn is not None:
            fn, args, kwargs = self.fn, self.args, self.kwargs
            if type(fn).compact is not _base_compact(fn):
                for k, a in table.items():
                    table[k] = fn.compact(a, *args, **kwargs)

    def output(self, acc: Any) -> Any:
        if self.fast is not None or self.fn is None:
            return acc
        return self.fn.extract_output(acc, *self.args, **self.kwargs)


def _base_compact(fn: Any) -> Any:
    for cls in type(fn).__mro__:
        if cls.__name__ == "CombineFn":
            return cls.__dict__.get("compact")
    return None


class GroupTable:
    """The writer side of one grouping in one task. See the module docstring."""

    def __init__(
        self,
        label: str,
        mode: str,
        merger: Merger,
        num_partitions: int,
        spill: SpillSpace,
        budget_bytes: int,
        windowed: bool,
        track_ts: str | None = None,
        in_memory_handoff: bool = True,
        elements_as_keys: bool = False,
    ) -> None:
        self.label = label
        self.elements_as_keys = elements_as_keys
        self.mode = mode
        self.merger = merger
        self.num_partitions = num_partitions
        self.space = spill
        self.budget = budget_bytes
        self.windowed = windowed
        self.track_ts = track_ts  # None, "min" or "max": OUTPUT_AT_EARLIEST / OUTPUT_AT_LATEST
        self.in_memory_handoff = in_memory_handoff and num_partitions == 1
        self.table: dict[Any, Any] = defaultdict(list) if mode != "combine" else {}
        # Lifted sums fed by add_assigned: window -> key -> sum, folded into ``table`` (as
        # (key, window) groups) before the table is spilled or handed over; see _fold_windows.
        self.by_window: dict[Any, dict[Any, Any]] = {}
        self.window_groups = 0
        self.ts: dict[Any, int] | None = {} if track_ts else None
        self.values = 0
        self.per_value = 0
        self.per_key = 0
        self.runs: list[list[Run]] = [[] for _ in range(num_partitions)]
        self.spills = 0
        self.typecode: str | None = None  # values in array(typecode) columns (gbk writers)
        self._gbk_add: Callable[[list[Any]], None] | None = None  # see _add_gbk_auto
        self.add: Callable[[list[Any]], None] = self._choose_add()

    # -- adding ---------------------------------------------------------------------------------

    def _choose_add(self) -> Callable[[list[Any]], None]:
        if self.mode == "merging":
            return self._add_merging
        if self.windowed:
            return self._add_windowed
        if self.mode == "gbk":
            if not self.in_memory_handoff and self.ts is None and not self.elements_as_keys:
                return self._add_gbk_auto  # written for another task: maybe typed columns
            return self._add_gbk
        fast = self.merger.fast
        if fast == "count" or (fast == "sum" and self.elements_as_keys):
            return self._add_count
        if fast == "sum":
            return self._add_sum
        if fast in ("min", "max"):
            return self._add_minmax
        return self._add_combine

    def _sample(self, chunk: list[Any]) -> None:
        sample = chunk[:32]
        if self.windowed:
            sample = [wv.value for wv in sample]
        self._sample_values(sample)

    def _sample_values(self, sample: list[Any]) -> None:
        if self.elements_as_keys:
            sample = [(x, 0) for x in sample]
        try:
            keys = sum(sys.getsizeof(kv[0]) for kv in sample)
            vals = sum(_deep_size(kv[1]) for kv in sample)
        except (TypeError, IndexError):
            return  # the add loop reports non-pairs with a clear message
        n = max(1, len(sample))
        self.per_value = vals // n + 8
        self.per_key = keys // n + 120

    def _after_add(self, n: int) -> None:
        self.values += n
        if not self.per_key:
            return
        if self.mode == "combine":
            estimate = (len(self.table) + self.window_groups) * (self.per_key + self.per_value)
        else:
            estimate = self.values * self.per_value + len(self.table) * self.per_key
        if estimate > self.budget:
            self.spill()

    def _add_gbk(self, chunk: list[Any]) -> None:
        if not self.per_key:
            self._sample(chunk)
        table = self.table
        try:
            for k, v in chunk:
                table[k].append(v)
        except (TypeError, ValueError) as e:
            raise self._bad_pair(chunk, e) from e
        self._after_add(len(chunk))

    def _add_gbk_auto(self, chunk: list[Any]) -> None:
        """GroupByKey of a shuffle writer: from the first chunk on, keep each group's values in
        an ``array`` when every value is an exact ``int`` (or every one a ``float``). Pickling an
        array copies its buffer, where pickling a list of ints walks objects scattered over the
        heap: that walk cost as much as grouping. Readers get lists back (:func:`plain_values`).
        Receivers hold this bound method, so it dispatches to the add chosen."""
        add = self._gbk_add
        if add is None:
            try:
                types = set(map(type, map(_second, chunk)))
            except (TypeError, IndexError, KeyError):
                types = set()  # not pairs: the list path reports it
            code = _TYPECODES.get(types.pop()) if len(types) == 1 else None
            if code is None:
                add = self._add_gbk
            else:
                self.typecode = code
                self.table = defaultdict(partial(array, code))
                add = self._add_gbk_typed
            self._gbk_add = add
        add(chunk)

    def _add_gbk_typed(self, chunk: list[Any]) -> None:
        if not self.per_key:
            self._sample(chunk)
        code = self.typecode
        assert code is not None
        if set(map(type, map(_second, chunk))) != {_CODE_TYPES[code]}:
            self._untype()
            self._add_gbk(chunk)
            return
        table = self.table
        try:
            for k, v in chunk:
                table[k].append(v)
        except OverflowError:
            # An int beyond 64 bits: the elements before it are in; go on with lists from it.
            first = next(i for i, (_, v) in enumerate(chunk) if not _fits_int64(v))
            self._untype()
            self.values += first
            self._add_gbk(chunk[first:])
            return
        self._after_add(len(chunk))

    def _untype(self) -> None:
        """From typed columns to lists, for good (a value of another type arrived)."""
        self.table = defaultdict(list, {k: a.tolist() for k, a in self.table.items()})
        self.typecode = None
        self._gbk_add = self._add_gbk

    def _add_sum(self, chunk: list[Any]) -> None:
        if not self.per_key:
            self._sample(chunk)
        table = self.table
        get = table.get
        try:
            for k, v in chunk:
                table[k] = get(k, 0) + v
        except (TypeError, ValueError) as e:
            raise self._bad_pair(chunk, e) from e
        self._after_add(len(chunk))

    def _add_count(self, chunk: list[Any]) -> None:
        if not self.per_key:
            self._sample(chunk)
        table = self.table
        get = table.get
        if self.elements_as_keys:
            try:
                _count_elements(table, chunk)
            except TypeError as e:
                raise self._bad_key(chunk, e) from e
            self._after_add(len(chunk))
            return
        try:
            for k, _ in chunk:
                table[k] = get(k, 0) + 1
        except (TypeError, ValueError) as e:
            raise self._bad_pair(chunk, e) from e
        self._after_add(len(chunk))

    def _add_minmax(self, chunk: list[Any]) -> None:
        if not self.per_key:
            self._sample(chunk)
        table = self.table
        get = table.get
        is_min = self.merger.fast == "min"
        try:
            for k, v in chunk:
                cur = get(k, _MISSING)
                if cur is _MISSING or (v < cur if is_min else v > cur):
                    table[k] = v
        except (TypeError, ValueError) as e:
            raise self._bad_pair(chunk, e) from e
        self._after_add(len(chunk))

    def _add_combine(self, chunk: list[Any]) -> None:
        if not self.per_key:
            self._sample(chunk)
            self._sample_acc()
        m = self.merger
        fn, args, kwargs = m.fn, m.args, m.kwargs
        assert fn is not None
        table = self.table
        get = table.get
        try:
            if _overrides(fn, "add_inputs"):
                groups: dict[Any, list[Any]] = defaultdict(list)
                for k, v in chunk:
                    groups[k].append(v)
                for k, vs in groups.items():
                    acc = get(k, _MISSING)
                    if acc is _MISSING:
                        acc = fn.create_accumulator(*args, **kwargs)
                    table[k] = fn.add_inputs(acc, vs, *args, **kwargs)
            else:
                add, create = fn.add_input, fn.create_accumulator
                for k, v in chunk:
                    acc = get(k, _MISSING)
                    if acc is _MISSING:
                        acc = create(*args, **kwargs)
                    table[k] = add(acc, v, *args, **kwargs)
        except (TypeError, ValueError) as e:
            if _is_pair_problem(chunk):
                raise self._bad_pair(chunk, e) from e
            raise
        self._after_add(len(chunk))

    def _sample_acc(self) -> None:
        if self.table:
            acc = next(iter(self.table.values()))
            self.per_value = max(self.per_value, _deep_size(acc) + 8)

    def _add_windowed(self, chunk: list[Any]) -> None:
        """Non-merging windows: the group key is (key, window)."""
        if not self.per_key:
            self._sample(chunk)
        if (
            self.ts is None
            and self.mode == "combine"
            and self.merger.fast == "sum"
            and not self.elements_as_keys
        ):
            self._add_windowed_sum(chunk)
            return
        pairs: list[tuple[Any, Any]] = []
        append = pairs.append
        ts_table, track = self.ts, self.track_ts
        as_keys = self.elements_as_keys
        try:
            for wv in chunk:
                if as_keys:
                    k, v = wv.value, None
                else:
                    k, v = wv.value
                for w in wv.windows:
                    gk = (k, w)
                    append((gk, v))
                    if ts_table is not None:
                        t = wv.timestamp_us
                        cur = ts_table.get(gk)
                        if cur is None or (t < cur if track == "min" else t > cur):
                            ts_table[gk] = t
        except (TypeError, ValueError) as e:
            raise self._bad_pair([wv.value for wv in chunk], e) from e
        self._add_group_pairs(pairs)

    def _add_group_pairs(self, pairs: list[tuple[Any, Any]]) -> None:
        """Add ``((key, window), value)`` pairs (non-merging windows)."""
        n = self.values
        if self.mode == "gbk":
            table = self.table
            for gk, v in pairs:
                table[gk].append(v)
        else:
            saved, self.windowed = self.windowed, False
            try:
                self._choose_add_plain()(pairs)
            finally:
                self.windowed = saved
            self.values = n
        self._after_add(len(pairs))

    @property
    def takes_assigned(self) -> bool:
        """Whether :meth:`add_assigned` may feed this table: windowed (key, value) pairs
        grouped per key and non-merging window, with no element timestamps kept."""
        return (
            self.windowed
            and self.mode in ("gbk", "combine")
            and self.ts is None
            and not self.elements_as_keys
        )

    def add_assigned(self, groups: dict[Any, list[Any]]) -> None:
        """Add ``window -> [(key, value), ...]`` groups: elements whose window an operator
        fused before this table has just assigned (see ``ParDoOperator.fuse_window_into``), so
        no ``WindowedValue`` is made for them. Only when :attr:`takes_assigned`.
        """
        if not self.per_key:
            for values in groups.values():
                self._sample_values(values[:32])
                break
        try:
            if self.mode == "combine" and self.merger.fast == "sum":
                self._add_assigned_sum(groups)
                return
            pairs = [((k, w), v) for w, values in groups.items() for k, v in values]
        except (TypeError, ValueError) as e:
            raise self._bad_pair([kv for values in groups.values() for kv in values], e) from e
        self._add_group_pairs(pairs)

    def _add_assigned_sum(self, groups: dict[Any, list[Any]]) -> None:
        """Sum per window and key, in one dict per window (``by_window``).

        The work per element is a dict update keyed by the key alone (hashed in C), where a
        ``(key, window)`` key would call the window's ``__hash__`` in Python every time. The
        groups become ``(key, window)`` entries of ``table`` once, in :meth:`_fold_windows`.
        Sums are added in another order than one by one, which a CombineFn allows.
        """
        by_window = self.by_window
        added = n = 0
        for w, values in groups.items():
            sub = by_window.get(w)
            if sub is None:
                sub = by_window[w] = {}
            before = len(sub)
            get = sub.get
            for k, v in values:
                sub[k] = get(k, 0) + v
            added += len(sub) - before
            n += len(values)
        self.window_groups += added
        self._after_add(n)

    def _fold_windows(self) -> None:
        """Move the per-window sums of :meth:`_add_assigned_sum` into ``table``."""
        if not self.by_window:
            return
        table = self.table
        get = table.get
        for w, sub in self.by_window.items():
            for k, total in sub.items():
                gk = (k, w)
                table[gk] = get(gk, 0) + total
        self.by_window = {}
        self.window_groups = 0

    def _add_windowed_sum(self, chunk: list[Any]) -> None:
        """A lifted sum over non-merging windows: one dict update per (element, window)."""
        table = self.table
        get = table.get
        added = 0
        try:
            for wv in chunk:
                k, v = wv.value
                windows = wv.windows
                if len(windows) == 1:
                    gk = (k, windows[0])
                    table[gk] = get(gk, 0) + v
                    added += 1
                else:
                    for w in windows:
                        gk = (k, w)
                        table[gk] = get(gk, 0) + v
                        added += 1
        except (TypeError, ValueError) as e:
            raise self._bad_pair([wv.value for wv in chunk], e) from e
        self._after_add(added)

    def _choose_add_plain(self) -> Callable[[list[Any]], None]:
        fast = self.merger.fast
        if fast == "count" or (fast == "sum" and self.elements_as_keys):
            return self._add_count_raw
        if fast == "sum":
            return self._add_sum_raw
        if fast in ("min", "max"):
            return self._add_minmax_raw
        return self._add_combine_raw

    def _add_sum_raw(self, pairs: list[Any]) -> None:
        table = self.table
        get = table.get
        for k, v in pairs:
            table[k] = get(k, 0) + v

    def _add_count_raw(self, pairs: list[Any]) -> None:
        table = self.table
        get = table.get
        for k, _ in pairs:
            table[k] = get(k, 0) + 1

    def _add_minmax_raw(self, pairs: list[Any]) -> None:
        saved = self.per_key
        self.per_key = 1
        try:
            self._add_minmax(pairs)
        finally:
            self.per_key = saved

    def _add_combine_raw(self, pairs: list[Any]) -> None:
        saved = self.per_key
        self.per_key = 1
        try:
            self._add_combine(pairs)
        finally:
            self.per_key = saved

    def _add_merging(self, chunk: list[Any]) -> None:
        if not self.per_key:
            self._sample(chunk)
        table = self.table
        try:
            for wv in chunk:
                k, v = wv.value
                lst = table[k]
                t = wv.timestamp_us
                for w in wv.windows:
                    lst.append((w, t, v))
        except (TypeError, ValueError) as e:
            raise self._bad_pair([wv.value for wv in chunk], e) from e
        self._after_add(len(chunk))

    def _bad_key(self, chunk: list[Any], cause: Exception) -> Exception:
        for element in chunk:
            try:
                hash(element)
            except TypeError:
                return TypeError(
                    f"{self.label!r} got the unhashable element {_short(element)} of type "
                    f"{type(element).__name__}; elements counted or grouped as keys must be "
                    "hashable (use a tuple, not a list)"
                )
        return cause

    def _bad_pair(self, chunk: list[Any], cause: Exception) -> Exception:
        if self.elements_as_keys:
            return self._bad_key(chunk, cause)
        for element in chunk:
            if not (isinstance(element, (tuple, list)) and len(element) == 2):
                return ValueError(
                    f"{self.label!r} needs (key, value) pairs, got {_short(element)}; "
                    "key the elements first, e.g. beam.Map(lambda x: (key_of(x), x))"
                )
            try:
                hash(element[0])
            except TypeError:
                return TypeError(
                    f"{self.label!r} got the unhashable key {_short(element[0])} of type "
                    f"{type(element[0]).__name__}; keys must be hashable (use a tuple, not a list)"
                )
        return cause

    # -- spilling and closing --------------------------------------------------------------------

    def _group_key_hash(self, gk: Any, salt: int = 0) -> int:
        key = gk[0] if self.windowed and self.mode != "merging" else gk
        return stable_hash(key, salt)

    def spill(self) -> None:
        """Write the table to one file per partition and start a new, empty table."""
        self._fold_windows()
        if not self.table:
            return
        self.merger.compact(self.table)
        for p, run in enumerate(self._write_runs(self.table, self.ts)):
            if run is not None:
                self.runs[p].append(run)
        self.spills += 1
        if self.typecode is not None:
            self.table = defaultdict(partial(array, self.typecode))
        else:
            self.table = defaultdict(list) if self.mode != "combine" else {}
        if self.ts is not None:
            self.ts = {}
        self.values = 0

    def _write_runs(
        self, table: dict[Any, Any], ts: dict[Any, int] | None, whole: bool = False
    ) -> list[FileRun | None]:
        nparts = self.num_partitions
        runs: list[FileRun | None] = []
        if whole:
            parts: list[list[Any]] = [[] for _ in range(nparts)]
            if nparts == 1:
                parts[0] = (
                    list(table.items())
                    if ts is None
                    else [(gk, v, ts.get(gk)) for gk, v in table.items()]
                )
            else:
                hash_of = self._group_key_hash
                for gk, v in table.items():
                    item = (gk, v, ts.get(gk)) if ts is not None else (gk, v)
                    parts[hash_of(gk) % nparts].append(item)
            code = self.typecode
            runs = [
                write_whole_run(self.space, items, nparts, code) if items else None
                for items in parts
            ]
        else:
            buckets: list[list[list[Any]]] = [
                [[] for _ in range(SUB_BUCKETS)] for _ in range(nparts)
            ]
            for gk, v in table.items():
                h = self._group_key_hash(gk)
                item = (gk, v, ts.get(gk)) if ts is not None else (gk, v)
                buckets[h % nparts][(h // nparts) % SUB_BUCKETS].append(item)
            for p in range(nparts):
                if not any(buckets[p]):
                    runs.append(None)
                    continue
                runs.append(
                    write_file_run(self.space, buckets[p], 0, parts=nparts, typecode=self.typecode)
                )
        written = sum(sum(n for _, n in r.index.values()) for r in runs if r is not None)
        ratio = max(1.0, self._estimate() / written) if written else 1.0
        for r in runs:
            if r is not None:
                r.mem_ratio = ratio
        return runs

    def close(self) -> list[list[Run]]:
        """Finish writing; one list of runs per partition."""
        self._fold_windows()
        if self.table:
            if self.in_memory_handoff:
                self.runs[0].append(MemoryRun(dict(self.table), self.ts, self._estimate()))
            else:
                self.merger.compact(self.table)
                # Never spilled: the table is at most the budget, and so is one whole block.
                whole = self.spills == 0
                for p, run in enumerate(self._write_runs(self.table, self.ts, whole)):
                    if run is not None:
                        self.runs[p].append(run)
                leave_for_exit(self.table, self._estimate(), self.budget)  # exec/gcpolicy.py
            self.table = {}
        return self.runs

    def _estimate(self) -> int:
        if self.mode == "combine":
            return (len(self.table) + self.window_groups) * (self.per_key + self.per_value)
        return self.values * self.per_value + len(self.table) * self.per_key


_CODE_TYPES = {code: t for t, code in _TYPECODES.items()}


def _fits_int64(v: int) -> bool:
    return -(2**63) <= v < 2**63


def _overrides(fn: Any, name: str) -> bool:
    impl = getattr(type(fn), name, None)
    for cls in type(fn).__mro__:
        if cls.__name__ == "CombineFn" and name in cls.__dict__:
            return impl is not cls.__dict__[name]
    return False


def _is_pair_problem(chunk: list[Any]) -> bool:
    return any(not (isinstance(e, (tuple, list)) and len(e) == 2) for e in chunk)


def _short(value: Any) -> str:
    from headrace.exec.errors import truncated_repr

    return truncated_repr(value)


def _split_whole(spill: SpillSpace, run: FileRun, windowed: bool, mode: str) -> FileRun:
    """A whole run rewritten with one block per sub-bucket (the writer's own sub-buckets)."""
    buckets: list[list[Any]] = [[] for _ in range(SUB_BUCKETS)]
    parts = run.parts
    for items in load_blocks(spill, run, list(range(SUB_BUCKETS))):
        for item in items:
            buckets[(_gk_hash(item[0], windowed, mode, 0) // parts) % SUB_BUCKETS].append(item)
    out = write_file_run(spill, buckets, 0, parts=parts, typecode=run.typecode)
    out.mem_ratio = run.mem_ratio
    return out


def read_partition(
    runs: list[Run],
    merger: Merger,
    windowed: bool,
    track_ts: str | None,
    budget_bytes: int,
    spill: SpillSpace,
    mode: str,
) -> Iterator[tuple[dict[Any, Any], dict[Any, int] | None]]:
    """Yield merged (table, timestamps) pieces that together hold every group of the partition."""
    if not runs:
        return
    if len(runs) == 1 and isinstance(runs[0], MemoryRun):
        yield runs[0].table, runs[0].ts
        return
    total = sum(r.nbytes for r in runs)
    if total <= budget_bytes:
        yield _merge_all(runs, merger, track_ts, list(range(SUB_BUCKETS)), spill, windowed, mode)
        return
    # Over budget: spill any in-memory run and split any whole run, so that every run can be
    # read sub-bucket by sub-bucket. The split copies are this reader's own; the runs it was
    # given stay as they are (a retried task reads them again).
    file_runs = [r for r in runs if isinstance(r, FileRun) and not r.whole]
    copies = [
        _split_whole(spill, r, windowed, mode) for r in runs if isinstance(r, FileRun) and r.whole
    ]
    for r in runs:
        if isinstance(r, MemoryRun):
            file_runs.append(_memory_to_file(r, spill, windowed, mode))
            r.table = {}
    yield from _read_bucketed(
        file_runs + copies, merger, windowed, track_ts, budget_bytes, spill, mode, 0
    )
    for r in copies:
        spill.delete(r.key)


def _gk_hash(gk: Any, windowed: bool, mode: str, salt: int) -> int:
    key = gk[0] if windowed and mode != "merging" else gk
    return stable_hash(key, salt)


def _memory_to_file(run: MemoryRun, spill: SpillSpace, windowed: bool, mode: str) -> FileRun:
    buckets: list[list[Any]] = [[] for _ in range(SUB_BUCKETS)]
    ts = run.ts
    for gk, v in run.table.items():
        h = _gk_hash(gk, windowed, mode, 0)
        # partition count is 1 whenever a MemoryRun exists, so the sub-bucket is h % SUB_BUCKETS
        buckets[h % SUB_BUCKETS].append((gk, v, ts.get(gk)) if ts is not None else (gk, v))
    out = write_file_run(spill, buckets, salt=0)
    written = out.nbytes
    out.mem_ratio = max(1.0, run.nbytes / written) if written else 1.0
    return out


def _read_bucketed(
    runs: list[FileRun],
    merger: Merger,
    windowed: bool,
    track_ts: str | None,
    budget: int,
    spill: SpillSpace,
    mode: str,
    depth: int,
) -> Iterator[tuple[dict[Any, Any], dict[Any, int] | None]]:
    for s in range(SUB_BUCKETS):
        size = sum(r.block_bytes(s) for r in runs)
        if not size:
            continue
        if size <= budget or depth >= 4:
            yield _merge_all(runs, merger, track_ts, [s], spill, windowed, mode)
            continue
        # Still too big: split this sub-bucket again with another salt, one block at a time.
        salt = depth + 1
        sub_runs = []
        for r in runs:
            items = load_block(spill, r, s)
            if not items:
                continue
            buckets: list[list[Any]] = [[] for _ in range(SUB_BUCKETS)]
            for item in items:
                buckets[_gk_hash(item[0], windowed, mode, salt) % SUB_BUCKETS].append(item)
            del items
            sub_run = write_file_run(spill, buckets, salt, typecode=r.typecode)
            sub_run.mem_ratio = r.mem_ratio
            sub_runs.append(sub_run)
        yield from _read_bucketed(
            sub_runs, merger, windowed, track_ts, budget, spill, mode, depth + 1
        )
        for r in sub_runs:
            spill.delete(r.key)


def _merge_all(
    runs: list[Any],
    merger: Merger,
    track_ts: str | None,
    sub_buckets: list[int],
    spill: SpillSpace,
    windowed: bool,
    mode: str,
) -> tuple[dict[Any, Any], dict[Any, int] | None]:
    target: dict[Any, Any] = {}
    ts_target: dict[Any, int] | None = {} if track_ts else None
    for r in runs:
        if isinstance(r, MemoryRun):
            merger.merge_into(target, r.table.items())
            if ts_target is not None and r.ts:
                _merge_ts(ts_target, r.ts.items(), track_ts)
            continue
        for items in load_blocks(spill, r, sub_buckets):
            if not items:
                continue
            if ts_target is not None:
                merger.merge_into(target, ((gk, v) for gk, v, _ in items))
                _merge_ts(ts_target, ((gk, t) for gk, _, t in items if t is not None), track_ts)
            else:
                merger.merge_into(target, items)
    return target, ts_target


def _merge_ts(target: dict[Any, int], items: Iterable[tuple[Any, int]], how: str | None) -> None:
    for gk, t in items:
        cur = target.get(gk)
        if cur is None or (t < cur if how == "min" else t > cur):
            target[gk] = t
