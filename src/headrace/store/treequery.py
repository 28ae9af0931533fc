"""Queries over file trees: :func:`diff` of two trees and :func:`glob` pattern matching.

Both read a tree (:mod:`headrace.store.treenodes`) without building one, and both cost what
their answer needs rather than the size of the tree: ``diff`` skips every subtree whose key is
the same on both sides, and ``glob`` reads only the key range under the pattern's literal
leading directories and jumps past directories that cannot match. :mod:`headrace.store.trees`
re-exports both (``trees.diff``, ``trees.glob``).
"""

from __future__ import annotations

from collections.abc import Iterator

from headrace.store.globs import compile_glob
from headrace.store.refs import normalize_path
from headrace.store.treenodes import (
    EMPTY_ROOT,
    DirEntry,
    Entry,
    NodeStore,
    _prefix_range,
    _Reader,
    _Scanner,
    _slices,
    get,
)

__all__ = ["diff", "glob"]


# ---------------------------------------------------------------------------------------------
# Diff

# Stacks of pending items, next on top: (level, sort key, node key) for nodes and
# (-1, sort key, entry) for entries.
_Item = tuple[int, str, "str | Entry"]


def diff(
    store: NodeStore, root_a: str, root_b: str, prefix: str = "/"
) -> Iterator[tuple[str, Entry | None, Entry | None]]:
    """Files that differ between two trees, as ``(path, entry in a or None, entry in b or
    None)`` in tree order, restricted to ``prefix``. Subtrees with equal keys are skipped
    without being read, so the cost follows the size of the difference."""
    lo, hi = _prefix_range(normalize_path(prefix))
    if root_a == root_b:
        return
    reader = _Reader(store)

    def start(root: str) -> list[_Item]:
        return [] if root == EMPTY_ROOT else [(reader.node(root).level, "", root)]

    def expand(stack: list[_Item]) -> None:
        _, _, ref = stack.pop()
        assert isinstance(ref, str)
        node = reader.node(ref)
        skeys, refs, n = node.skeys(), node.refs, len(node.refs)
        if node.level == 0:
            paths, sizes = node.paths, node.sizes
            for i in range(n - 1, -1, -1):
                k = skeys[i]
                if (lo is None or k >= lo) and (hi is None or k < hi):
                    stack.append((-1, k, Entry(paths[i], refs[i], sizes[i])))
            return
        level = node.level - 1
        for i in range(n - 1, -1, -1):
            if hi is not None and skeys[i] >= hi:
                continue
            if lo is not None and i + 1 < n and skeys[i + 1] <= lo:
                continue
            stack.append((level, skeys[i], refs[i]))

    a, b = start(root_a), start(root_b)
    while a and b:
        level_a, key_a, ref_a = a[-1]
        level_b, key_b, ref_b = b[-1]
        if level_a < 0 and level_b < 0:
            assert isinstance(ref_a, Entry) and isinstance(ref_b, Entry)
            if key_a < key_b:
                yield ref_a.path, ref_a, None
                a.pop()
            elif key_b < key_a:
                yield ref_b.path, None, ref_b
                b.pop()
            else:
                if ref_a != ref_b:
                    yield ref_a.path, ref_a, ref_b
                a.pop()
                b.pop()
        elif ref_a == ref_b:  # the same subtree on both sides
            a.pop()
            b.pop()
        elif level_a < 0:
            if key_a < key_b:
                assert isinstance(ref_a, Entry)
                yield ref_a.path, ref_a, None
                a.pop()
            else:
                expand(b)
        elif level_b < 0:
            if key_b < key_a:
                assert isinstance(ref_b, Entry)
                yield ref_b.path, None, ref_b
                b.pop()
            else:
                expand(a)
        elif level_a > level_b or (level_a == level_b and key_a < key_b):
            expand(a)
        elif level_b > level_a or key_b < key_a:
            expand(b)
        else:
            expand(a)
            expand(b)
    for stack, side in ((a, 0), (b, 1)):
        while stack:
            if stack[-1][0] >= 0:
                expand(stack)
                continue
            entry = stack.pop()[2]
            assert isinstance(entry, Entry)
            yield (entry.path, entry, None) if side == 0 else (entry.path, None, entry)


# ---------------------------------------------------------------------------------------------
# Glob


def glob(store: NodeStore, root: str, pattern: str) -> Iterator[Entry | DirEntry]:
    """Files (:class:`Entry`) and directories (:class:`DirEntry`) matching ``pattern``, in
    tree order, as Pachyderm globs datums.

    The glob's syntax and meaning are Pachyderm's (:mod:`headrace.store.globs`): ``*`` within
    a name, ``**`` across folders (``/**/x.csv`` needs a folder in between), ``?``, ``[a-z]``,
    ``{a,b}``, ``(a|b)`` and the extended globs ``!(..)``, ``@(..)``, ``?(..)``, ``*(..)``,
    ``+(..)``. A glob is made absolute and loses a trailing ``/``; ``/`` alone is the root
    directory. Files and directories both match. Only the range under the pattern's literal
    leading directories is read, and subtrees that cannot match are skipped. A malformed glob
    raises :class:`InvalidPath`.

    >>> from headrace.store.trees import MemoryNodeStore, build
    >>> store = MemoryNodeStore()
    >>> root = build(store, [Entry("/in/a.csv", "h", 1), Entry("/in/b/c.csv", "h", 2)])
    >>> [*glob(store, root, "/in/*")]
    [Entry(path='/in/a.csv', hash='h', size=1), DirEntry(path='/in/b')]
    >>> [e.path for e in glob(store, root, "/**/*.csv")]
    ['/in/a.csv', '/in/b/c.csv']
    """
    compiled = compile_glob(pattern)
    text = compiled.pattern
    if text == "/":
        if root != EMPTY_ROOT:
            yield DirEntry("/")
        return
    if compiled.exact:  # no wildcard: one path
        path = compiled.literal_prefix
        found = get(store, root, path)
        if found is not None:
            yield found
        else:
            key = path.replace("/", "\x00")
            reader = _Reader(store)
            if next(_slices(reader, reader.node(root), None, key + "\x00", key + "\x01"), None):
                yield DirEntry(path)
        return
    literal = compiled.literal
    nsegs = compiled.depth
    # matches[d]: whether a path of d segments can lead to a match, for the leading segments
    # that cannot match '/'; deeper ones are tested against the whole glob
    safe = len(compiled.prefix_matchers)
    matches = dict(enumerate(compiled.prefix_matchers, start=1))
    full = compiled.regex.fullmatch
    reader = _Reader(store)
    lo, hi = _prefix_range(compiled.literal_prefix)
    if lo is not None and hi is not None:
        lo += "\x00"  # strictly under the literal directory
    scanner = _Scanner(reader, root, lo, hi)
    parent: str | None = None  # the directory of the previous entry, and its segments
    dirs: list[str] = []
    for entry in scanner:
        path = entry.path
        cut = path.rfind("/")
        if path[:cut] != parent:  # test the directories the previous entry was not in
            parent = path[:cut]
            names = parent.split("/")  # ["", seg1, ...]: a directory of depth d is names[:d+1]
            shared, limit = 0, min(len(dirs), len(names)) - 1
            while shared < limit and dirs[shared + 1] == names[shared + 1]:
                shared += 1
            dirs = names
            skipped = False
            for d in range(max(shared, literal) + 1, len(names)):
                candidate = "/".join(names[: d + 1])
                if d > safe:
                    if full(candidate):
                        yield DirEntry(candidate)
                    continue
                if d == nsegs and matches[d](candidate):
                    yield DirEntry(candidate)
                if d == nsegs or not matches[d](candidate):  # nothing below can match
                    scanner.skip = candidate.replace("/", "\x00") + "\x01"
                    skipped = True
                    break
            if skipped:
                continue
        depth = len(dirs)
        if depth > safe:
            if full(path):
                yield entry
        elif depth == nsegs and matches[depth](path):
            yield entry
