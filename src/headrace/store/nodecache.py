"""Tree nodes as the metadata serves them: a cache shared across transactions, and the node store
bound to one transaction.

Tree nodes are content-addressed and immutable (:mod:`headrace.store.treenodes`): the bytes of a
key never change, so a node read in one transaction may be served to any later one.
:class:`NodeCache` keeps recently read nodes for one :class:`~headrace.store.metadata.Metadata`
(least recently used out first, bounded by bytes, safe to share between threads).

What the cache can get wrong is only *absence*: a node that gc deleted (or that a rolled-back
transaction wrote) may still be served from the cache. Reads reach nodes through commit roots,
whose nodes gc never deletes, so this matters only to a check that wants to know what the database
holds: ``fsck`` reads with ``Metadata.tree_nodes(conn, cached=False)``, and
``Metadata.delete_tree_nodes`` evicts the keys it deletes.

:class:`TreeNodes` is the node store (``get_node``, ``get_nodes``, ``put_nodes``) of the trees
module, bound to one transaction's connection: reads go to the cache first, then to the database,
many keys in one query with ``get_nodes``. Writes go to the database only (the cache fills on
reads).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from headrace.store.metadata import Metadata

__all__ = ["DEFAULT_NODE_CACHE_BYTES", "NodeCache", "TreeNodes"]

DEFAULT_NODE_CACHE_BYTES = 64 * 1024 * 1024
"""The node cache of a Metadata holds about this many bytes unless told otherwise."""

_ENTRY_OVERHEAD = 200  # bytes counted per cached node beyond its data (key, objects, links)
_PRIVATE_BYTES = 16 * 1024 * 1024  # the cache of an uncached TreeNodes (one transaction)


class NodeCache:
    """Tree nodes by key, holding about ``capacity`` bytes (each node counts its length plus a
    fixed overhead); the least recently used go first. Thread-safe. ``capacity=0`` keeps nothing.

    >>> cache = NodeCache(capacity=1500)
    >>> cache.put("k1", b"x" * 600)
    >>> cache.put("k2", b"y" * 100)
    >>> cache.get("k1") is not None, "k2" in cache
    (True, True)
    >>> cache.put("k3", b"z" * 300)  # over capacity: k2, least recently used, goes
    >>> sorted(cache.keys())
    ['k1', 'k3']
    >>> cache.discard(["k1"]); sorted(cache.keys())
    ['k3']
    """

    __slots__ = ("__weakref__", "_items", "_lock", "capacity", "nbytes")

    def __init__(self, capacity: int = DEFAULT_NODE_CACHE_BYTES) -> None:
        if capacity < 0:
            raise ValueError(f"NodeCache capacity must be >= 0 bytes, got {capacity}")
        self.capacity = capacity
        self.nbytes = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        _CACHES.add(self)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def keys(self) -> list[str]:
        """The cached keys, least recently used first."""
        with self._lock:
            return list(self._items)

    def get(self, key: str) -> bytes | None:
        """The node's bytes if cached (it becomes the most recently used), else None."""
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The cached ones among ``keys``, by key."""
        out: dict[str, bytes] = {}
        with self._lock:
            items = self._items
            for key in keys:
                data = items.get(key)
                if data is not None:
                    items.move_to_end(key)
                    out[key] = data
        return out

    def put(self, key: str, data: bytes) -> None:
        """Keep a node (evicting the least recently used beyond capacity)."""
        self.put_many({key: data})

    def put_many(self, nodes: Mapping[str, bytes]) -> None:
        """Keep several nodes (evicting the least recently used beyond capacity)."""
        capacity = self.capacity
        with self._lock:
            items = self._items
            for key, data in nodes.items():
                cost = len(data) + _ENTRY_OVERHEAD
                if cost > capacity or key in items:
                    continue
                items[key] = data
                self.nbytes += cost
            while self.nbytes > capacity:
                _, old = items.popitem(last=False)
                self.nbytes -= len(old) + _ENTRY_OVERHEAD

    def discard(self, keys: Iterable[str]) -> None:
        """Forget ``keys`` (those not cached are ignored)."""
        with self._lock:
            items = self._items
            for key in keys:
                old = items.pop(key, None)
                if old is not None:
                    self.nbytes -= len(old) + _ENTRY_OVERHEAD

    def clear(self) -> None:
        """Forget every node."""
        with self._lock:
            self._items.clear()
            self.nbytes = 0


_CACHES: weakref.WeakSet[NodeCache] = weakref.WeakSet()


def _new_locks_after_fork() -> None:
    # A forked child has one thread: a lock another thread of the parent held stays held.
    for cache in list(_CACHES):
        cache._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_locks_after_fork)


class TreeNodes:
    """The tree nodes of one :class:`~headrace.store.metadata.Metadata`, read and written in the
    transaction ``conn``; reads go through ``cache`` (the Metadata's shared one, or, given None,
    a cache private to this object, so that every node is read from the database once).
    """

    __slots__ = ("cache", "conn", "metadata")

    def __init__(self, metadata: Metadata, conn: Connection, cache: NodeCache | None) -> None:
        self.metadata = metadata
        self.conn = conn
        self.cache = cache if cache is not None else NodeCache(_PRIVATE_BYTES)

    def get_node(self, key: str) -> bytes:
        """The node's bytes; :class:`~headrace.store.errors.ObjectNotFound` if it does not
        exist."""
        data = self.cache.get(key)
        if data is None:
            data = self.metadata.get_tree_node(self.conn, key)
            self.cache.put(key, data)
        return data

    def get_nodes(self, keys: Collection[str]) -> dict[str, bytes]:
        """The nodes among ``keys`` that exist, by key, reading the uncached ones in one query
        per batch (missing ones are left out: :meth:`get_node` reports them)."""
        found = self.cache.get_many(keys)
        if len(found) < len(keys):
            fetched = self.metadata.get_tree_nodes(self.conn, [k for k in keys if k not in found])
            self.cache.put_many(fetched)
            found.update(fetched)
        return found

    def put_nodes(self, nodes: Mapping[str, bytes]) -> None:
        """Store nodes by key (existing keys are kept)."""
        self.metadata.put_tree_nodes(self.conn, nodes)
