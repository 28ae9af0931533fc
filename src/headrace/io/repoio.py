"""Reading and writing the versioned store's repositories: :class:`ReadFromRepo`,
:class:`WriteToRepo`.

The connectors live in three modules, each with the account of how it works:

- :mod:`headrace.io.reporead`: :class:`ReadFromRepo`, the commit it pins at construction and the
  source that lists, splits and reads the commit's files;
- :mod:`headrace.io.repowrite`: :class:`WriteToRepo`, the DoFns that store contents on workers
  and the finalizer that records them as one commit when the run succeeded;
- :mod:`headrace.io.repostore`: the store named by strings, opened lazily where work runs.

This module gathers their names, so ``headrace.io.repoio`` keeps offering both connectors.
"""

from __future__ import annotations

from headrace.io import reporead, repostore, repowrite
from headrace.io.reporead import ReadFromRepo
from headrace.io.repowrite import WriteToRepo

__all__ = ["ReadFromRepo", "WriteToRepo"]

# Internals under the names they had here before the split (the tests reach them here).
_StoreLocation = repostore.StoreLocation
_RepoSource = reporead._RepoSource
_WriteFilesDoFn = repowrite._WriteFilesDoFn
_WriteTextBundlesDoFn = repowrite._WriteTextBundlesDoFn
_RepoFinalizer = repowrite._RepoFinalizer
