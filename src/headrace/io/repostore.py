"""Where a repo connector's store is: named by strings, opened lazily where the work runs.

:class:`ReadFromRepo <headrace.io.reporead.ReadFromRepo>` and :class:`WriteToRepo
<headrace.io.repowrite.WriteToRepo>` take the store as strings (``store_home``, ``db``,
``objects``, as :meth:`~headrace.store.store.Store.open` takes them) and resolve them when the
transform is applied, into a :class:`StoreLocation`. Sources, DoFns and finalizers carry that
location (it pickles as three strings) and open the store where they run; a :class:`LazyStore`
opens it on first use and pickles as its location, never as an open store.

``headrace.store.store`` (and SQLAlchemy under it) is imported only when a store is opened, and
``headrace.store.objects`` only when objects are read, so importing ``headrace.io`` stays fast.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from headrace.store.errors import StoreError

if TYPE_CHECKING:
    from headrace.store.objects import ObjectStore
    from headrace.store.store import Store

__all__ = ["LazyStore", "StoreLocation", "error_in_context"]


@dataclass(frozen=True)
class StoreLocation:
    """A store named by strings (picklable); :meth:`open` opens it wherever it runs."""

    home: str
    db: str
    objects: str

    @classmethod
    def open_new(
        cls, home: str | os.PathLike[str] | None, db: str | None, objects: str | None
    ) -> tuple[Store, StoreLocation]:
        """Open the store as :meth:`Store.open` would; return it and its resolved location."""
        from headrace.store.store import Store, default_home  # SQLAlchemy: load on first use

        home_path = os.path.abspath(os.fspath(home) if home is not None else default_home())
        store = Store.open(home_path, db, objects)
        return store, cls(home_path, store.meta.url, store.objects.url)

    def open(self) -> Store:
        """Open the store (in this process)."""
        from headrace.store.store import Store

        return Store.open(self.home, self.db, self.objects)

    def object_store(self) -> ObjectStore:
        """The object store alone, for reading objects without the metadata database."""
        from headrace.store.objects import ObjectStore

        return ObjectStore(self.objects)


def error_in_context(e: StoreError, what: str) -> StoreError:
    """The same kind of error with ``what`` in front of its message."""
    try:
        return type(e)(f"{what}: {e}")
    except TypeError:
        return e


class LazyStore:
    """A store opened on first use in the process where it is used; pickles as its location."""

    def __init__(self, location: StoreLocation) -> None:
        self.location = location
        self._store: Store | None = None

    def get(self) -> Store:
        """The store, opened on the first call."""
        if self._store is None:
            self._store = self.location.open()
        return self._store

    def close(self) -> None:
        """Close the store if it was opened; a later :meth:`get` opens it again."""
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"location": self.location, "_store": None}
