"""The versioned data store: repos, branches, immutable commits, content-addressed files.

Design (one concern per module; the store imports nothing of headrace but itself):

``errors``    the error classes; every message names what it is about.
``refs``      names, references (``repo@branch^2:/path``) and path normalisation.
``objects``   :class:`ObjectStore`: content-addressed blobs (blake3) in any fsspec location,
              verified on every read, optionally zstd-compressed, written atomically.
``content``   how one file's bytes become objects: small files are packed together into pack
              objects, large files are cut into content-defined chunks (FastCDC), so unchanged
              chunks are stored once. A file's :class:`Content` (its blake3 hash, size and layout of
              segments) is what trees refer to; equal content is stored once.
``trees``     a commit's file tree: a content-addressed, history-independent search tree over
              sorted paths (node boundaries chosen by hashing, so an edit rewrites only the nodes
              on its path and two trees share every unchanged node). Lookup, paginated listing,
              glob and diff (which skips shared nodes) cost what they touch, not the repo's size.
              ``treenodes`` holds the node encoding and reading, ``treequery`` glob and diff.
``metadata``  SQL metadata through SQLAlchemy (SQLite in WAL mode by default, PostgreSQL by
              URL): repos, branches, commits, staged changes of open commits, provenance, file
              contents, tree nodes; every mutation one transaction. ``schema`` holds the tables
              and migrations, ``sql`` engines and dialect helpers.
``records``   the plain records the API returns; ``maintenance`` merge, fsck and gc.
``commits``   references resolved to commits; commits started and finished (``OPEN -> FINISHED``)
              inside a caller's transaction.
``writing``   files written into commits: data made into Contents, recorded as changes staged on
              an open commit or as a one-shot commit; the ``with store.commit(...)`` handle.
``reading``   files, listings, globs and diffs of a commit, and file bytes written to local paths.
``store``     :class:`Store`, the Python API tying them together (commits as context managers,
              file operations, diff, merge, provenance, fsck, gc): a facade over the modules above.

Write order makes crashes harmless: object bytes are written (idempotently, under their hash)
before the metadata transaction that references them; a crash leaves at most unreferenced
objects, which ``gc`` removes, and never a half-visible commit.
"""

from typing import Any

__all__ = ["Store"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing a light module of this package (refs, errors) does not load
    # SQLAlchemy and the object store.
    if name == "Store":
        from headrace.store.store import Store

        return Store
    raise AttributeError(f"module 'headrace.store' has no attribute {name!r}")
