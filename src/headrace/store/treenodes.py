"""Tree nodes: the value types of a file tree, how nodes are encoded, and how they are read.

The bottom of the tree modules: :mod:`headrace.store.trees` builds, edits, lists and counts
trees and :mod:`headrace.store.treequery` globs and diffs them, both on top of this module.
``trees`` re-exports every public name here; import them from there. The underscored helpers
(the decoded :class:`_Node`, the caching :class:`_Reader`, key ranges, :func:`_slices` and
:class:`_Scanner`) are shared with those two modules only.

**Encoding** (version 1, little-endian): ``B format, B level, I n``; then for a leaf ``n`` u64
sizes and the UTF-8 text of the ``n`` paths and ``n`` content hashes joined by newlines; for an
internal node ``n`` u64 counts, ``n`` u64 sizes and the text of first paths and child keys.
Paths cannot hold control characters and hashes are checked, so newlines separate safely.
Measured on 64-entry leaves: 1.9 us to encode and 5 us to decode, against 21 us and 10 us for
JSON, at 5% fewer bytes.

**Reading** works on sort keys (:func:`sort_key`): a path or directory covers the key range
``[lo, hi)`` of :func:`_prefix_range`; :func:`_slices` yields the leaves holding a range, each
with its index range, descending only into children that overlap it; :class:`_Scanner` walks the
entries of a range and can jump forward (past a directory) by looking the target up again from
the root; :func:`get` descends to the one leaf that can hold a path.
"""

from __future__ import annotations

import struct
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Iterator, Mapping
from typing import NamedTuple, Protocol

from blake3 import blake3

from headrace.store.errors import CorruptObject, ObjectNotFound

__all__ = [
    "EMPTY_ROOT",
    "DirEntry",
    "Entry",
    "MemoryNodeStore",
    "NodeStore",
    "get",
    "sort_key",
]

# The encoding's version; changing it (or the layout below) changes every root key.
_FORMAT = 1
_HEAD = struct.Struct("<BBI")


class Entry(NamedTuple):
    """A file in a tree: its normalised path, content hash and size in bytes."""

    path: str
    hash: str
    size: int


class DirEntry(NamedTuple):
    """A directory in a non-recursive listing or a glob result (implied by the files under it)."""

    path: str


class NodeStore(Protocol):
    """Where tree nodes live. ``put_nodes`` must accept nodes it already holds.

    A store may also offer ``get_nodes(keys) -> Mapping[str, bytes]``: the nodes among ``keys``
    that exist (missing ones left out, for ``get_node`` to report). Readers then fetch the
    children of a node they are about to visit together, one call instead of one per child.
    """

    def get_node(self, key: str) -> bytes: ...

    def put_nodes(self, nodes: dict[str, bytes]) -> None: ...


class MemoryNodeStore:
    """Tree nodes in a dict (for tests and scratch trees)."""

    def __init__(self) -> None:
        self.nodes: dict[str, bytes] = {}

    def get_node(self, key: str) -> bytes:
        try:
            return self.nodes[key]
        except KeyError:
            raise ObjectNotFound(
                f"tree node {key} is missing from the node store (run fsck)"
            ) from None

    def get_nodes(self, keys: Collection[str]) -> dict[str, bytes]:
        nodes = self.nodes
        return {key: nodes[key] for key in keys if key in nodes}

    def put_nodes(self, nodes: dict[str, bytes]) -> None:
        self.nodes.update(nodes)


def sort_key(path: str) -> str:
    """The key that orders paths as trees do: ``sorted(paths, key=sort_key)``.

    >>> sorted(["/a-c", "/a/b", "/a"], key=sort_key)
    ['/a', '/a/b', '/a-c']
    """
    return path.replace("/", "\x00")


# ---------------------------------------------------------------------------------------------
# Node encoding


class _Node:
    """A decoded node. Leaf: ``paths``, ``refs`` (content hashes), ``sizes``. Internal:
    ``paths`` (first path of each child), ``refs`` (child keys), ``counts``, ``sizes``."""

    __slots__ = ("_skeys", "counts", "level", "paths", "refs", "sizes")

    def __init__(
        self,
        level: int,
        paths: list[str],
        refs: list[str],
        counts: tuple[int, ...],
        sizes: tuple[int, ...],
    ) -> None:
        self.level = level
        self.paths = paths
        self.refs = refs
        self.counts = counts
        self.sizes = sizes
        self._skeys: list[str] | None = None

    def skeys(self) -> list[str]:
        """Sort keys of ``paths`` (computed once)."""
        if self._skeys is None:
            self._skeys = [p.replace("/", "\x00") for p in self.paths]
        return self._skeys


def _encode(
    level: int,
    paths: list[str],
    refs: list[str],
    counts: list[int] | None,
    sizes: list[int],
) -> bytes:
    n = len(paths)
    text = "\n".join(paths + refs)
    if text.count("\n") != 2 * n - 1 and n:
        bad = next(p for p, r in zip(paths, refs) if "\n" in p or "\n" in r)
        raise ValueError(f"the content hash of {bad!r} contains a newline; use a hex digest")
    try:
        numbers = struct.pack(f"<{n}Q", *sizes)
        if counts is not None:
            numbers = struct.pack(f"<{n}Q", *counts) + numbers
    except struct.error:
        bad = next(p for p, s in zip(paths, sizes) if type(s) is not int or not 0 <= s < 2**64)
        raise ValueError(f"the size of {bad!r} must be an int >= 0") from None
    return _HEAD.pack(_FORMAT, level, n) + numbers + text.encode()


def _decode(data: bytes, key: str) -> _Node:
    try:
        fmt, level, n = _HEAD.unpack_from(data)
        if fmt != _FORMAT:
            raise ValueError(f"format {fmt}")
        off = _HEAD.size
        counts: tuple[int, ...] = ()
        if level:
            counts = struct.unpack_from(f"<{n}Q", data, off)
            off += 8 * n
        sizes = struct.unpack_from(f"<{n}Q", data, off)
        parts = data[off + 8 * n :].decode().split("\n") if n else []
        if len(parts) != 2 * n:
            raise ValueError("bad text section")
    except (struct.error, ValueError) as e:
        raise CorruptObject(f"tree node {key} does not decode ({e}); run fsck") from None
    return _Node(level, parts[:n], parts[n:], counts, sizes)


EMPTY_ROOT: str = blake3(_encode(0, [], [], None, [])).hexdigest()
"""The root key of the empty tree (never stored; every function accepts it)."""

_EMPTY_NODE = _Node(0, [], [], (), ())


# Children fetched together (with a store's get_nodes): at most _MAX_BATCH when the caller says
# how many entries it wants; when it does not, the first batch is one child and each next one
# doubles, up to _GROWN_BATCH (a walk that jumps away wastes at most that much).
_MAX_BATCH = 256
_GROWN_BATCH = 32
_AHEAD_LIMIT = 4 * _MAX_BATCH  # fetched nodes not yet visited, at most (then forgotten)


class _Reader:
    """Fetches and decodes nodes, keeping recently used internal nodes. ``prefetch`` reads
    nodes that will be visited soon in one call of the store's ``get_nodes`` (kept in ``ahead``
    until visited)."""

    __slots__ = ("ahead", "batches", "cache", "fetch_many", "store")

    def __init__(self, store: NodeStore) -> None:
        self.store = store
        self.cache: dict[str, _Node] = {}
        self.ahead: dict[str, bytes] = {}
        self.batches: dict[int, int] = {}  # level -> size of the next batch of its children
        self.fetch_many: Callable[[list[str]], Mapping[str, bytes]] | None = getattr(
            store, "get_nodes", None
        )

    def node(self, key: str) -> _Node:
        node = self.cache.get(key)
        if node is None:
            if key == EMPTY_ROOT:
                return _EMPTY_NODE
            data = self.ahead.pop(key, None)
            node = _decode(self.store.get_node(key) if data is None else data, key)
            if node.level:
                if len(self.cache) >= 512:
                    self.cache.clear()
                self.cache[key] = node
        return node

    def prefetch(self, keys: list[str]) -> None:
        """Fetch the nodes ``keys`` together, if the store can and two or more are not held."""
        if self.fetch_many is None:
            return
        cache, ahead = self.cache, self.ahead
        wanted = [k for k in keys if k not in cache and k not in ahead and k != EMPTY_ROOT]
        if len(wanted) > 1:
            if len(ahead) + len(wanted) > _AHEAD_LIMIT:
                ahead.clear()  # fetched by a walk that then jumped elsewhere
            ahead.update(self.fetch_many(wanted))


# ---------------------------------------------------------------------------------------------
# Reading


def _prefix_range(prefix: str) -> tuple[str | None, str | None]:
    """Sort-key range [lo, hi) of ``prefix`` (a file or directory) and everything under it."""
    if prefix == "/":
        return None, None
    key = prefix.replace("/", "\x00")
    return key, key + "\x01"


def _slices(
    reader: _Reader,
    node: _Node,
    node_hi: str | None,
    lo: str | None,
    hi: str | None,
    want: int | None = None,
) -> Iterator[tuple[_Node, int, int]]:
    """Leaves under ``node`` holding keys in [lo, hi), in order, each with its index range.

    Children are fetched in batches (see :meth:`_Reader.prefetch`): with ``want``, the number of
    entries the caller will take at most, a batch holds the children that cover it (by their
    counts); without it, batches grow from one child (per level, over the reader's walk: reset
    ``reader.batches`` to start again), so a walk that stops or jumps early reads little ahead.
    """
    if node.level == 0:
        n = len(node.paths)
        a = 0 if lo is None else bisect_left(node.skeys(), lo)
        z = n
        if hi is not None and (node_hi is None or node_hi > hi):
            z = bisect_left(node.skeys(), hi)
        if a < z:
            yield node, a, z
        return
    skeys, refs, counts, n = node.skeys(), node.refs, node.counts, len(node.refs)
    i = 0 if lo is None else max(bisect_right(skeys, lo) - 1, 0)
    end = n if hi is None else bisect_left(skeys, hi, i)  # children starting before hi
    fetched = i  # children before this one were fetched in a batch (or need no fetching)
    while i < end:
        if i >= fetched:
            if want is None:
                batch = reader.batches.get(node.level, 1)
                reader.batches[node.level] = min(2 * batch, _GROWN_BATCH)
                j = min(end, i + batch)
            else:
                j, covered = i, 0
                while j < end and covered < want and j - i < _MAX_BATCH:
                    covered += counts[j]
                    j += 1
                if lo is not None and lo > skeys[i]:  # entered past its start: count it less
                    j = min(end, j + 1)
            reader.prefetch(refs[i:j])
            fetched = j
        child_hi = skeys[i + 1] if i + 1 < n else node_hi
        child_lo = lo if lo is not None and lo > skeys[i] else None
        for item in _slices(reader, reader.node(refs[i]), child_hi, child_lo, hi, want):
            yield item
            if want is not None:
                want -= item[2] - item[1]
        i += 1


class _Scanner:
    """Entries with keys in [lo, hi) in order; set ``skip`` to a key to jump forward to it."""

    def __init__(self, reader: _Reader, root: str, lo: str | None, hi: str | None) -> None:
        self.reader, self.root, self.lo, self.hi = reader, root, lo, hi
        self.skip: str | None = None

    def __iter__(self) -> Iterator[Entry]:
        lo = self.lo
        while True:
            self.reader.batches.clear()  # a jump: read ahead from one child again
            for node, a, z in _slices(self.reader, self.reader.node(self.root), None, lo, self.hi):
                paths, hashes, sizes = node.paths, node.refs, node.sizes
                i = a
                while i < z:
                    yield Entry(paths[i], hashes[i], sizes[i])
                    if self.skip is None:
                        i += 1
                        continue
                    lo, self.skip = self.skip, None
                    i = bisect_left(node.skeys(), lo, i + 1, z)
                    if i == z and z == len(paths):
                        break  # the target lies beyond this leaf: look it up from the root
                else:
                    continue
                break
            else:
                return


def get(store: NodeStore, root: str, path: str) -> Entry | None:
    """The entry of the file ``path`` (normalised), or None if there is no such file."""
    key = path.replace("/", "\x00")
    reader = _Reader(store)
    node = reader.node(root)
    while node.level:
        i = bisect_right(node.paths, key, key=sort_key) - 1
        if i < 0:
            return None
        node = reader.node(node.refs[i])
    i = bisect_left(node.paths, key, key=sort_key)
    if i < len(node.paths) and node.paths[i] == path:
        return Entry(path, node.refs[i], node.sizes[i])
    return None
