"""A commit's file tree: a content-addressed, history-independent search tree (a prolly tree).

A tree maps file paths to :class:`Entry` (path, content hash, size). Directories are not stored:
a directory exists while some file path lies under it. A path cannot be both a file and a
directory of other files (``/a`` and ``/a/b``); :func:`build` and :func:`apply` refuse that.

**Order.** Paths are ordered segment by segment (``/a`` < ``/a/b`` < ``/a-c``): the order of
:func:`sort_key`, which is string order with ``/`` sorting before every other character. So a
directory's files are contiguous, a directory's children come in name order, and a file that
clashes with a directory is immediately followed by the directory's first file.

**Nodes.** Leaves (level 0) hold sorted entries; an internal node of level L holds, per child of
level L-1, the child's first path, key, file count and total size. A node's key is the blake3
hex digest of its bytes, so a tree is named by its root key and two trees share every equal node.
Node boundaries depend on content only: an entry ends its leaf when a hash of its path falls
below a threshold (1 in 64), an item ends its internal node when its child's key does (1 in 64);
a node is also cut at 1024 items or 256 KiB (an internal node only once it has two children).
Levels are chunked in turn until a level has a single node: the root. So one set of entries
always gives the same nodes and root whatever the order of the edits that produced it, and an
edit rewrites only the nodes on its path (plus, rarely, a neighbour whose boundary it moved).

**Encoding and reading** of nodes live in :mod:`headrace.store.treenodes`; :func:`glob` and
:func:`diff` in :mod:`headrace.store.treequery`. This module re-exports them, so
``trees.<name>`` reaches every function of a tree.

**Building** is a stack of chunkers, one per level (:class:`_Builder`). Entries go to level 0;
when a level's pending items reach a boundary they become a node, whose item goes to the level
above. :func:`apply` walks the old tree in order merging in the changes and feeds the same
builder, but hands over a whole old subtree as one item when no change falls in its range and
every level at or below it is empty (a fresh chunker would rebuild exactly that subtree). After
the last change the builder meets an old boundary within a node or so per level and the rest is
reused, so a few changes cost O(height) nodes and many changes a merge-rebuild. A chunker can
close a node holding one child at the top; ``finish`` steps down from such nodes to the canonical
root. The empty tree is :data:`EMPTY_ROOT`, which is never stored.

>>> store = MemoryNodeStore()
>>> root = build(store, [Entry("/a/x.csv", "h1", 10), Entry("/a/y.csv", "h2", 20)])
>>> get(store, root, "/a/y.csv")
Entry(path='/a/y.csv', hash='h2', size=20)
>>> root2 = apply(store, root, {"/a/x.csv": None, "/b.txt": Entry("/b.txt", "h3", 5)})
>>> [e.path for e in list(store, root2)]
['/a/y.csv', '/b.txt']
>>> [*diff(store, root, root2)]  # doctest: +NORMALIZE_WHITESPACE
[('/a/x.csv', Entry(path='/a/x.csv', hash='h1', size=10), None),
 ('/b.txt', None, Entry(path='/b.txt', hash='h3', size=5))]
"""

from __future__ import annotations

import builtins
import operator
import re
import zlib
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice, repeat
from typing import Literal, overload

from blake3 import blake3

from headrace.store.errors import InvalidPath
from headrace.store.refs import normalize_path
from headrace.store.treenodes import (
    EMPTY_ROOT,
    DirEntry,
    Entry,
    MemoryNodeStore,
    NodeStore,
    _decode,
    _encode,
    _Node,
    _prefix_range,
    _Reader,
    _Scanner,
    _slices,
    get,
    sort_key,
)
from headrace.store.treequery import diff, glob

__all__ = [
    "EMPTY_ROOT",
    "DirEntry",
    "Entry",
    "MemoryNodeStore",
    "NodeStore",
    "apply",
    "build",
    "count_and_size",
    "diff",
    "get",
    "glob",
    "iter_entries",
    "iter_runs",
    "list",
    "reachable_nodes",
    "sort_key",
]


# Shape of the tree. Changing any of these changes every root key. Tests shrink them.
# (The encoding's version, _FORMAT, is in treenodes.)
_LEAF_THRESHOLD = 2**32 // 64  # an entry ends its leaf when its path hash is below this
_NODE_THRESHOLD = 2**32 // 64  # an item ends its node when its child key is below this
_MAX_ITEMS = 1024
_MAX_BYTES = 256 * 1024  # characters of a node's paths and hashes (or child keys)
_GOLDEN = 0x9E3779B1  # spreads a CRC over all 32 bits (Fibonacci hashing)
_WRITE_BATCH = 2048  # nodes per NodeStore.put_nodes call while building
_FEED_BATCH = 4096  # entries checked and chunked together

_PATH = r"(?:/(?!\.\.?(?:/|\n|\Z))[^/\x00-\x1f\x7f\\\ud800-\udfff]+)+"
_VALID_PATH = re.compile(_PATH).fullmatch
_VALID_PATHS = re.compile(rf"{_PATH}(?:\n{_PATH})*").fullmatch  # newline-joined paths


# ---------------------------------------------------------------------------------------------
# Building


def _path_error(path: object) -> InvalidPath:
    """The error for a path that ``_VALID_PATH`` refuses."""
    if not isinstance(path, str):
        return InvalidPath(f"a path must be a str, got {type(path).__name__}")
    normal = normalize_path(path, allow_root=False)  # raises with the precise reason
    if normal != path:
        return InvalidPath(f"path {path!r} is not normalised; write {normal!r}")
    return InvalidPath(f"path {path!r} holds characters that are not valid UTF-8 text")


def _clash(file: str, other: str) -> InvalidPath:
    return InvalidPath(
        f"{file!r} is a file, so it cannot also be a directory holding {other!r}; "
        "delete or rename one of them"
    )


class _Pending:
    """Items waiting on one internal level: the children of the node being filled."""

    __slots__ = ("counts", "firsts", "keys", "nbytes", "sizes")

    def __init__(self) -> None:
        self.firsts: builtins.list[str] = []
        self.keys: builtins.list[str] = []
        self.counts: builtins.list[int] = []
        self.sizes: builtins.list[int] = []
        self.nbytes = 0


class _Builder:
    """Chunks a sorted stream of entries and reused subtrees into nodes.

    State: the entries of the open leaf (``paths``, ``hashes``, ``sizes``, ``nbytes``), the
    items of the open node of each internal level (``inner[j]`` holds nodes of level j-1), the
    highest level that received anything (``top``), the last path fed (for order and clash
    checks) and the encoded nodes not yet written (``out``). ``feed`` and ``reuse`` add; a
    boundary closes a level's open node into an item of the level above; ``finish`` closes every
    level and returns the root.
    """

    def __init__(self, store: NodeStore) -> None:
        self.store = store
        self.out: dict[str, bytes] = {}
        self.paths: builtins.list[str] = []
        self.hashes: builtins.list[str] = []
        self.sizes: builtins.list[int] = []
        self.nbytes = 0
        self.inner: builtins.list[_Pending] = [_Pending()]  # index 0 unused
        self.top = 0
        self.last = "\n"  # no path equals or starts with this
        self.last_key = ""

    def feed(self, entries: Iterable[tuple[str, str, int]]) -> None:
        """Add entries, which must be in tree order, after everything added so far."""
        it = iter(entries)
        while batch := builtins.list(islice(it, _FEED_BATCH)):
            try:
                paths, hashes, sizes = zip(*batch)
                keys = builtins.list(map(str.replace, paths, repeat("/"), repeat("\x00")))
            except (ValueError, TypeError, AttributeError):
                raise self._bad_input(batch) from None
            self._check(paths, keys)
            # Entries that end a leaf by their path hash; the caps are applied per run.
            crc, golden, threshold = zlib.crc32, _GOLDEN, _LEAF_THRESHOLD
            ends = [
                i
                for i, c in enumerate(map(crc, map(str.encode, paths)))
                if (c * golden) & 0xFFFFFFFF < threshold
            ]
            start = 0
            for end in ends:
                self._add_run(paths, hashes, sizes, start, end + 1, True)
                start = end + 1
            if start < len(paths):
                self._add_run(paths, hashes, sizes, start, len(paths), False)
            self.last, self.last_key = paths[-1], keys[-1]

    def _add_run(
        self,
        paths: tuple[str, ...],
        hashes: tuple[str, ...],
        sizes: tuple[int, ...],
        a: int,
        b: int,
        boundary: bool,
    ) -> None:
        """Add entries ``a..b-1`` to the open leaf; only the last may be a hash boundary."""
        leaf_paths, leaf_hashes, leaf_sizes = self.paths, self.hashes, self.sizes
        nbytes = self.nbytes + sum(map(len, paths[a:b])) + sum(map(len, hashes[a:b]))
        if len(leaf_paths) + b - a < _MAX_ITEMS and nbytes < _MAX_BYTES:  # no cap is reached
            leaf_paths.extend(paths[a:b])
            leaf_hashes.extend(hashes[a:b])
            leaf_sizes.extend(sizes[a:b])
            self.nbytes = nbytes
            if boundary:
                self._close_leaf()
            return
        nbytes = self.nbytes
        for i in range(a, b):
            leaf_paths.append(paths[i])
            leaf_hashes.append(hashes[i])
            leaf_sizes.append(sizes[i])
            nbytes += len(paths[i]) + len(hashes[i])
            if len(leaf_paths) >= _MAX_ITEMS or nbytes >= _MAX_BYTES or (boundary and i == b - 1):
                self._close_leaf()
                nbytes = 0
        self.nbytes = nbytes

    def _check(self, paths: tuple[str, ...], keys: builtins.list[str]) -> None:
        """Refuse unsorted, duplicate, invalid or clashing paths in a batch."""
        last_key = self.last_key
        if keys[0] <= last_key or not all(map(operator.lt, keys, islice(keys, 1, None))):
            before = [self.last, *paths]
            i = next(i for i in range(len(keys)) if keys[i] <= (keys[i - 1] if i else last_key))
            path, prev = paths[i], before[i]
            if _VALID_PATH(path) is None:
                raise _path_error(path)
            if path == prev:
                raise InvalidPath(f"path {path!r} appears twice; a tree holds each path once")
            raise ValueError(
                f"entries must come in tree order (sorted by trees.sort_key): {path!r} came "
                f"after {prev!r}"
            )
        if _VALID_PATHS("\n".join(paths)) is None:
            raise _path_error(next(p for p in paths if _VALID_PATH(p) is None))
        if last_key and keys[0].startswith(last_key + "\x00"):
            raise _clash(self.last, paths[0])
        if any(map(str.startswith, islice(keys, 1, None), keys)):  # rare: verify precisely
            for i in range(1, len(keys)):
                if keys[i].startswith(keys[i - 1] + "\x00"):
                    raise _clash(paths[i - 1], paths[i])

    @staticmethod
    def _bad_input(batch: builtins.list[tuple[str, str, int]]) -> Exception:
        for item in batch:
            if not isinstance(item, tuple) or len(item) != 3:
                return TypeError(f"a tree entry must be an Entry(path, hash, size), got {item!r}")
            if not isinstance(item[0], str):
                return _path_error(item[0])
        return TypeError("tree entries must be Entry(path, hash, size) values")

    def fresh(self, level: int) -> bool:
        """Whether no items wait on levels 0..level (a node of ``level`` may be reused)."""
        if self.paths:
            return False
        inner = self.inner
        return not any(inner[j].keys for j in range(1, min(level + 1, len(inner))))

    def reuse(self, level: int, first: str, key: str, count: int, size: int) -> None:
        """Add an existing node of ``level`` whose first path is ``first`` (needs ``fresh``)."""
        first_key = first.replace("/", "\x00")
        if self.last_key and first_key.startswith(self.last_key + "\x00"):
            raise _clash(self.last, first)
        self.last, self.last_key = first, first_key
        self._push(level + 1, first, key, count, size)

    def _close_leaf(self) -> None:
        paths, sizes = self.paths, self.sizes
        data = _encode(0, paths, self.hashes, None, sizes)
        key = blake3(data).hexdigest()
        self._write(key, data)
        self._push(1, paths[0], key, len(paths), sum(sizes))
        paths.clear()
        self.hashes.clear()
        sizes.clear()
        self.nbytes = 0

    def _push(self, j: int, first: str, key: str, count: int, size: int) -> None:
        inner = self.inner
        while len(inner) <= j:
            inner.append(_Pending())
        self.top = max(self.top, j)
        pending = inner[j]
        pending.firsts.append(first)
        pending.keys.append(key)
        pending.counts.append(count)
        pending.sizes.append(size)
        pending.nbytes += len(first) + len(key)
        if (
            int(key[:8], 16) < _NODE_THRESHOLD
            or len(pending.keys) >= _MAX_ITEMS
            or (pending.nbytes >= _MAX_BYTES and len(pending.keys) > 1)
        ):  # (a cap never cuts a single child: that would repeat on every level above)
            self._close_inner(j)

    def _close_inner(self, j: int) -> None:
        p = self.inner[j]
        data = _encode(j, p.firsts, p.keys, p.counts, p.sizes)
        key = blake3(data).hexdigest()
        self._write(key, data)
        first, count, size = p.firsts[0], sum(p.counts), sum(p.sizes)
        self.inner[j] = _Pending()
        self._push(j + 1, first, key, count, size)

    def _write(self, key: str, data: bytes) -> None:
        self.out[key] = data
        if len(self.out) >= _WRITE_BATCH:
            self.store.put_nodes(self.out)
            self.out = {}

    def finish(self) -> str:
        """Close every level; write the nodes; return the root key."""
        j = 0
        while True:
            if j == 0:
                if self.paths:
                    self._close_leaf()
                elif self.top == 0:
                    return EMPTY_ROOT
            else:
                pending = self.inner[j]
                if self.top == j and len(pending.keys) == 1:
                    root = pending.keys[0]
                    break
                if pending.keys:
                    self._close_inner(j)
            j += 1
        # A root with a single child is not canonical (a fresh build of the same entries can
        # stop one level lower): step down to the first node with two or more children.
        while True:
            data = self.out.get(root)
            node = _decode(data, root) if data is not None else _Reader(self.store).node(root)
            if node.level == 0 or len(node.refs) > 1:
                break
            self.out.pop(root, None)
            root = node.refs[0]
        if self.out:
            self.store.put_nodes(self.out)
            self.out = {}
        return root


def build(store: NodeStore, entries: Iterable[Entry]) -> str:
    """Store a tree of ``entries`` and return its root key.

    Entries must be sorted by :func:`sort_key` of their paths (raises ValueError otherwise)
    with normalised, unique paths, none a directory of another (raises InvalidPath). The input
    is streamed: memory stays at a few nodes whatever its length.
    """
    builder = _Builder(store)
    builder.feed(entries)
    return builder.finish()


def apply(store: NodeStore, root: str, changes: Mapping[str, Entry | None]) -> str:
    """Store the tree ``root`` with ``changes`` applied and return its root key.

    ``changes`` maps a normalised path to its new :class:`Entry` (added or replaced) or to None
    (deleted; deleting a path that is not a file does nothing). Only the nodes whose content
    changes are rewritten; the result equals :func:`build` of the resulting entries.
    """
    if not changes:
        return root
    try:
        ordered = sorted((path.replace("/", "\x00"), path, e) for path, e in changes.items())
    except (AttributeError, TypeError):
        bad = next(path for path in changes if not isinstance(path, str))
        raise _path_error(bad) from None
    for _, path, entry in ordered:
        if _VALID_PATH(path) is None:
            raise _path_error(path)
        if entry is not None and entry[0] != path:
            raise ValueError(f"the change for {path!r} carries an entry for {entry[0]!r}")
    keys = [k for k, _, _ in ordered]
    news = [entry for _, _, entry in ordered]
    builder = _Builder(store)
    reader = _Reader(store)
    total = len(keys)
    ci = 0  # the next change to merge

    def merge_leaf(node: _Node, hi: str | None) -> None:
        nonlocal ci
        paths, hashes, sizes, skeys = node.paths, node.refs, node.sizes, node.skeys()
        merged: builtins.list[tuple[str, str, int]] = []
        i = 0
        while ci < total and (hi is None or keys[ci] < hi):
            k = keys[ci]
            j = bisect_left(skeys, k, i)
            merged.extend(zip(paths[i:j], hashes[i:j], sizes[i:j]))
            i = j + 1 if j < len(skeys) and skeys[j] == k else j
            entry = news[ci]
            if entry is not None:
                merged.append(entry)
            ci += 1
        merged.extend(zip(paths[i:], hashes[i:], sizes[i:]))
        builder.feed(merged)

    def visit(node: _Node, hi: str | None) -> None:
        if node.level == 0:
            merge_leaf(node, hi)
            return
        skeys, refs, n = node.skeys(), node.refs, len(node.refs)
        level = node.level - 1
        for i in range(n):
            child_hi = skeys[i + 1] if i + 1 < n else hi
            if (ci == total or (child_hi is not None and keys[ci] >= child_hi)) and builder.fresh(
                level
            ):
                builder.reuse(level, node.paths[i], refs[i], node.counts[i], node.sizes[i])
            else:
                visit(reader.node(refs[i]), child_hi)

    visit(reader.node(root), None)
    return builder.finish()


# ---------------------------------------------------------------------------------------------
# Listing and counting


def iter_runs(
    store: NodeStore,
    root: str,
    prefix: str = "/",
    start_after: str | None = None,
    limit: int | None = None,
) -> Iterator[tuple[Sequence[str], Sequence[str], Sequence[int]]]:
    """The files at or under ``prefix`` in tree order, after the path ``start_after`` and at
    most ``limit`` of them, as runs of parallel sequences ``(paths, hashes, sizes)`` (one run
    per leaf; do not modify them): the cheapest way to read many files, making no object per
    file. The leaves are read in batches sized by ``limit`` (growing ones without it).

    >>> store = MemoryNodeStore()
    >>> root = build(store, [Entry("/a", "h1", 1), Entry("/b", "h2", 2), Entry("/c", "h3", 3)])
    >>> [(paths[:], sizes[:]) for paths, _, sizes in iter_runs(store, root, start_after="/a")]
    [(['/b', '/c'], (2, 3))]
    """
    lo, hi = _prefix_range(normalize_path(prefix))
    if limit is not None and limit <= 0:
        return
    if start_after is not None:
        after = start_after.replace("/", "\x00") + "\x00"
        lo = after if lo is None or after > lo else lo
    reader = _Reader(store)
    left = limit
    for node, a, z in _slices(reader, reader.node(root), None, lo, hi, limit):
        if left is not None:
            z = min(z, a + left)
            left -= z - a
        if a == 0 and z == len(node.paths):
            yield node.paths, node.refs, node.sizes
        else:
            yield node.paths[a:z], node.refs[a:z], node.sizes[a:z]
        if left == 0:
            return


def iter_entries(store: NodeStore, root: str, prefix: str = "/") -> Iterator[Entry]:
    """Every file at or under ``prefix`` (a directory or file path), in tree order."""
    for paths, hashes, sizes in iter_runs(store, root, prefix):
        yield from map(Entry, paths, hashes, sizes)


@overload
def list(
    store: NodeStore,
    root: str,
    prefix: str = ...,
    start_after: str | None = ...,
    limit: int | None = ...,
    recursive: Literal[True] = ...,
) -> builtins.list[Entry]: ...


@overload
def list(
    store: NodeStore,
    root: str,
    prefix: str = ...,
    start_after: str | None = ...,
    limit: int | None = ...,
    *,
    recursive: bool,
) -> builtins.list[Entry | DirEntry]: ...


def list(
    store: NodeStore,
    root: str,
    prefix: str = "/",
    start_after: str | None = None,
    limit: int | None = None,
    recursive: bool = True,
) -> builtins.list[Entry] | builtins.list[Entry | DirEntry]:
    """One page of the files at or under ``prefix``, in tree order.

    ``start_after``: the last path of the previous page (exclusive). ``limit``: page length.
    With ``recursive=False``, the direct children of the directory ``prefix``: its files as
    :class:`Entry` and its subdirectories as :class:`DirEntry` (in name order; a page that
    stops at a :class:`DirEntry` continues after the whole directory). If ``prefix`` is a
    file, the page holds just that file.
    """
    prefix = normalize_path(prefix)
    if recursive:
        out: builtins.list[Entry] = []
        for paths, hashes, sizes in iter_runs(store, root, prefix, start_after, limit):
            out.extend(map(Entry, paths, hashes, sizes))
        return out
    lo, hi = _prefix_range(prefix)
    reader = _Reader(store)
    if limit is not None and limit <= 0:
        return []
    if start_after is not None:
        after = start_after.replace("/", "\x00") + "\x01"
        lo = after if lo is None or after > lo else lo
    children: builtins.list[Entry | DirEntry] = []
    start = len(prefix) + 1 if prefix != "/" else 1
    scanner = _Scanner(reader, root, lo, hi)
    for entry in scanner:
        path = entry.path
        cut = path.find("/", start)
        if cut < 0 or path == prefix:
            children.append(entry)
        else:
            children.append(DirEntry(path[:cut]))
            scanner.skip = path[:cut].replace("/", "\x00") + "\x01"
        if limit is not None and len(children) >= limit:
            break
    return children


def count_and_size(store: NodeStore, root: str, prefix: str = "/") -> tuple[int, int]:
    """Number and total size of the files at or under ``prefix``, reading only the nodes on
    the edges of the range (whole subtrees inside it are counted from their parents)."""
    lo, hi = _prefix_range(normalize_path(prefix))
    reader = _Reader(store)

    def walk(node: _Node, node_hi: str | None) -> tuple[int, int]:
        skeys = node.skeys()
        if node.level == 0:
            a = 0 if lo is None else bisect_left(skeys, lo)
            z = len(skeys) if hi is None else bisect_left(skeys, hi)
            return max(z - a, 0), sum(node.sizes[a:z])
        count = size = 0
        n = len(skeys)
        for i in range(n):
            child_lo = skeys[i]
            child_hi = skeys[i + 1] if i + 1 < n else node_hi
            if (hi is not None and child_lo >= hi) or (
                lo is not None and child_hi is not None and child_hi <= lo
            ):
                continue
            if (lo is None or child_lo >= lo) and (
                hi is None or (child_hi is not None and child_hi <= hi)
            ):
                count += node.counts[i]
                size += node.sizes[i]
            else:
                c, s = walk(reader.node(node.refs[i]), child_hi)
                count += c
                size += s
        return count, size

    return walk(reader.node(root), None)


def reachable_nodes(store: NodeStore, root: str) -> Iterator[str]:
    """Keys of every stored node of the tree ``root`` (none for :data:`EMPTY_ROOT`); leaves
    are named by their parents, not read."""
    if root == EMPTY_ROOT:
        return
    reader = _Reader(store)
    stack = [root]
    yield root
    while stack:
        node = reader.node(stack.pop())
        if node.level:
            yield from node.refs
            if node.level > 1:
                stack.extend(reversed(node.refs))
