"""The file tree of a commit (headrace.store.trees) against a plain dict model.

Most tests shrink the node shape (``small_nodes``) so that trees of a few dozen entries already
have several levels and hit the size caps; a reference chunker written from the documented rule
pins the canonical shape, and apply is checked to give the same root as a fresh build whatever
the order of the edits.
"""

from __future__ import annotations

import contextlib
import pickle
import random
from collections.abc import Iterator

import cloudpickle
import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.store import trees
from headrace.store.errors import CorruptObject, InvalidPath, ObjectNotFound
from headrace.store.globs import compile_glob
from headrace.store.trees import (
    EMPTY_ROOT,
    DirEntry,
    Entry,
    MemoryNodeStore,
    sort_key,
)


@contextlib.contextmanager
def small_nodes(
    leaf: int = 4, node: int = 3, max_items: int = 6, max_bytes: int = 10**6
) -> Iterator[None]:
    """Nodes of ~``leaf`` entries and ~``node`` children, cut at ``max_items``/``max_bytes``."""
    saved = (trees._LEAF_THRESHOLD, trees._NODE_THRESHOLD, trees._MAX_ITEMS, trees._MAX_BYTES)
    trees._LEAF_THRESHOLD = 2**32 // leaf
    trees._NODE_THRESHOLD = 2**32 // node
    trees._MAX_ITEMS = max_items
    trees._MAX_BYTES = max_bytes
    try:
        yield
    finally:
        (trees._LEAF_THRESHOLD, trees._NODE_THRESHOLD, trees._MAX_ITEMS, trees._MAX_BYTES) = saved


SHAPES = [
    {},
    {"max_items": 3},
    {"leaf": 2, "node": 2, "max_items": 5, "max_bytes": 40},
]


class CountingStore(MemoryNodeStore):
    """Counts node reads (one per node, read alone or in a batch), batch calls and writes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.calls = 0  # get_node and get_nodes calls: the queries of a database
        self.written = 0

    def get_node(self, key: str) -> bytes:
        self.reads += 1
        self.calls += 1
        return super().get_node(key)

    def get_nodes(self, keys) -> dict[str, bytes]:
        found = super().get_nodes(keys)
        self.reads += len(found)
        self.calls += 1
        return found

    def put_nodes(self, nodes: dict[str, bytes]) -> None:
        self.written += len(nodes)
        super().put_nodes(nodes)


class PlainStore:
    """A node store without get_nodes: every node is read on its own."""

    def __init__(self, nodes: dict[str, bytes]) -> None:
        self.nodes = nodes
        self.reads = 0

    def get_node(self, key: str) -> bytes:
        self.reads += 1
        return self.nodes[key]

    def put_nodes(self, nodes: dict[str, bytes]) -> None:
        self.nodes.update(nodes)


def ordered(model: dict[str, Entry]) -> list[Entry]:
    return [model[p] for p in sorted(model, key=sort_key)]


def has_clash(paths) -> bool:
    keys = sorted(paths, key=sort_key)
    return any(b.startswith(a + "/") for a, b in zip(keys, keys[1:]))


def fresh_root(model: dict[str, Entry]) -> str:
    return trees.build(MemoryNodeStore(), ordered(model))


# --- a reference chunker, written from the rule in the module docstring ----------------------


def reference_root(entries: list[Entry]) -> str:
    """Chunk level by level until a level has a single node; encode with the module's codec."""

    def chunk(items, ends_here, nbytes, min_for_bytes=1):
        nodes, cur, size = [], [], 0
        for item in items:
            cur.append(item)
            size += nbytes(item)
            if (
                ends_here(item)
                or len(cur) >= trees._MAX_ITEMS
                or (size >= trees._MAX_BYTES and len(cur) >= min_for_bytes)
            ):
                nodes.append(cur)
                cur, size = [], 0
        if cur:
            nodes.append(cur)
        return nodes

    def leaf_end(e: Entry) -> bool:
        crc = __import__("zlib").crc32(e.path.encode())
        return (crc * 0x9E3779B1) & 0xFFFFFFFF < trees._LEAF_THRESHOLD

    if not entries:
        return EMPTY_ROOT
    level_items = []  # (first path, key, count, size)
    for leaf in chunk(entries, leaf_end, lambda e: len(e.path) + len(e.hash)):
        data = trees._encode(
            0, [e.path for e in leaf], [e.hash for e in leaf], None, [e.size for e in leaf]
        )
        level_items.append(
            (leaf[0].path, blake3(data).hexdigest(), len(leaf), sum(e.size for e in leaf))
        )
    level = 1
    while len(level_items) > 1:
        nodes = chunk(
            level_items,
            lambda it: int(it[1][:8], 16) < trees._NODE_THRESHOLD,
            lambda it: len(it[0]) + len(it[1]),
            min_for_bytes=2,
        )
        next_items = []
        for node in nodes:
            data = trees._encode(
                level,
                [it[0] for it in node],
                [it[1] for it in node],
                [it[2] for it in node],
                [it[3] for it in node],
            )
            next_items.append(
                (
                    node[0][0],
                    blake3(data).hexdigest(),
                    sum(it[2] for it in node),
                    sum(it[3] for it in node),
                )
            )
        level_items = next_items
        level += 1
    return level_items[0][1]


# --- strategies ------------------------------------------------------------------------------

SEGMENTS = ["a", "b", "a-b", "a.b", "c", "ü", "x y", "a b"]
paths_st = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4).map(
    lambda segs: "/" + "/".join(segs)
)
entry_for = st.tuples(st.sampled_from(["h0", "h1", "f" * 64]), st.integers(0, 3))


@st.composite
def valid_models(draw, max_size: int = 60) -> dict[str, Entry]:
    """A set of entries with no file/directory clash."""
    model: dict[str, Entry] = {}
    for path in draw(st.lists(paths_st, max_size=max_size)):
        if path in model or has_clash([*model, path]):
            continue
        h, size = draw(entry_for)
        model[path] = Entry(path, h, size)
    return model


ops_st = st.lists(
    st.lists(st.tuples(paths_st, st.one_of(st.none(), entry_for)), min_size=1, max_size=12),
    min_size=1,
    max_size=8,
)


# --- basics ----------------------------------------------------------------------------------


def test_sort_key_orders_by_segment() -> None:
    paths = ["/a-c", "/a/b", "/a.b", "/a", "/b", "/a/b/c", "/a/b-c"]
    assert sorted(paths, key=sort_key) == ["/a", "/a/b", "/a/b/c", "/a/b-c", "/a-c", "/a.b", "/b"]


def test_empty_tree() -> None:
    store = CountingStore()
    assert trees.build(store, []) == EMPTY_ROOT
    assert trees.get(store, EMPTY_ROOT, "/a") is None
    assert trees.list(store, EMPTY_ROOT) == []
    assert trees.list(store, EMPTY_ROOT, recursive=False) == []
    assert trees.count_and_size(store, EMPTY_ROOT) == (0, 0)
    assert [*trees.diff(store, EMPTY_ROOT, EMPTY_ROOT)] == []
    assert [*trees.reachable_nodes(store, EMPTY_ROOT)] == []
    assert [*trees.glob(store, EMPTY_ROOT, "/**")] == []
    assert [*trees.glob(store, EMPTY_ROOT, "/")] == []
    assert trees.apply(store, EMPTY_ROOT, {}) == EMPTY_ROOT
    assert trees.apply(store, EMPTY_ROOT, {"/a": None}) == EMPTY_ROOT
    assert store.reads == 0 and store.written == 0
    assert EMPTY_ROOT == blake3(trees._encode(0, [], [], None, [])).hexdigest()


def test_format_is_stable() -> None:
    """Root keys are persisted: changing the encoding or the chunking must be deliberate."""
    store = MemoryNodeStore()
    root = trees.build(store, [Entry("/a/x.csv", "0" * 64, 10), Entry("/b", "1" * 64, 2**40)])
    data = store.get_node(root)
    assert data[:6] == b"\x01\x00\x02\x00\x00\x00"  # format 1, leaf, 2 entries
    assert data.endswith(("/a/x.csv\n/b\n" + "0" * 64 + "\n" + "1" * 64).encode())
    assert root == blake3(data).hexdigest()
    assert root == "865db9547f01b80f1a08d6315643aad767827797eb0900b1b3d1012916e73eae"
    assert EMPTY_ROOT == blake3(b"\x01\x00\x00\x00\x00\x00").hexdigest()
    assert EMPTY_ROOT == "4fcb0e9e3c278d8048422e5f0a79527b505294c13a6292a8c2dac7f7366bd0cf"


def test_get_list_count_on_a_small_tree() -> None:
    store = MemoryNodeStore()
    entries = [Entry(p, "h" + p, len(p)) for p in ["/a/b", "/a/c/d", "/a-c", "/z"]]
    root = trees.build(store, entries)
    assert trees.get(store, root, "/a/c/d") == entries[1]
    assert trees.get(store, root, "/a/c") is None  # a directory is not a file
    assert trees.get(store, root, "/0") is None
    assert trees.list(store, root) == entries
    assert trees.list(store, root, "/a") == entries[:2]
    assert trees.list(store, root, "a/") == entries[:2]  # prefixes are normalised
    assert trees.list(store, root, "/a-c") == [entries[2]]  # a file prefix is the file
    assert trees.list(store, root, "/a/c/d/e") == []
    assert trees.count_and_size(store, root, "/a") == (2, len("/a/b") + len("/a/c/d"))
    assert trees.count_and_size(store, root) == (4, sum(e.size for e in entries))
    assert [*trees.iter_entries(store, root, "/a/c")] == [entries[1]]


def test_list_non_recursive_gives_files_and_directories() -> None:
    store = MemoryNodeStore()
    paths = ["/a/b", "/a/c/d", "/a/c/e/f", "/a/d", "/a-c", "/b/x"]
    root = trees.build(store, [Entry(p, "h", 1) for p in paths])
    assert trees.list(store, root, "/", recursive=False) == [
        DirEntry("/a"),
        Entry("/a-c", "h", 1),
        DirEntry("/b"),
    ]
    assert trees.list(store, root, "/a", recursive=False) == [
        Entry("/a/b", "h", 1),
        DirEntry("/a/c"),
        Entry("/a/d", "h", 1),
    ]
    assert trees.list(store, root, "/a-c", recursive=False) == [Entry("/a-c", "h", 1)]
    assert trees.list(store, root, "/nope", recursive=False) == []
    # a page that ends on a directory continues after the whole directory
    page = trees.list(store, root, "/a", limit=2, recursive=False)
    assert page == [Entry("/a/b", "h", 1), DirEntry("/a/c")]
    rest = trees.list(store, root, "/a", start_after=page[-1].path, recursive=False)
    assert rest == [Entry("/a/d", "h", 1)]


@pytest.mark.parametrize("recursive", [True, False])
def test_pagination_walks_everything_once(recursive: bool) -> None:
    with small_nodes():
        store = MemoryNodeStore()
        entries = [Entry(f"/d{i // 7:02d}/f{i:03d}", "h", i) for i in range(300)]
        entries += [Entry(f"/f{i:03d}", "h", i) for i in range(40)]
        entries.sort(key=lambda e: sort_key(e.path))
        root = trees.build(store, entries)
        expected = trees.list(store, root, recursive=recursive)
        for limit in (1, 3, 50):
            pages, after = [], None
            while True:
                page = trees.list(store, root, start_after=after, limit=limit, recursive=recursive)
                assert len(page) <= limit
                if not page:
                    break
                pages.extend(page)
                after = page[-1].path
            assert pages == expected
        if recursive:
            assert expected == entries
        else:
            assert len(expected) == 43 + 40  # directories /d00../d42 and files /f000../f039
            assert sum(isinstance(x, DirEntry) for x in expected) == 43
        assert trees.list(store, root, limit=0) == []


# --- errors ----------------------------------------------------------------------------------


def test_build_refuses_a_file_that_is_also_a_directory() -> None:
    with pytest.raises(InvalidPath, match=r"'/a' is a file.*'/a/b'"):
        trees.build(MemoryNodeStore(), [Entry("/a", "h", 1), Entry("/a/b", "h", 1)])
    # "/a-b" sorts after "/a/b": the clash is still adjacent in tree order
    with pytest.raises(InvalidPath, match=r"'/a' is a file.*'/a/b'"):
        trees.build(
            MemoryNodeStore(), [Entry("/a", "h", 1), Entry("/a/b", "h", 1), Entry("/a-b", "h", 1)]
        )
    # across feed batches
    entries = [Entry(f"/f{i:05d}", "h", 1) for i in range(trees._FEED_BATCH - 1)]
    entries += [Entry(f"/f{trees._FEED_BATCH - 2:05d}/x", "h", 1)]
    with pytest.raises(InvalidPath, match="is a file"):
        trees.build(MemoryNodeStore(), entries)
    entries[-1] = Entry(f"/f{trees._FEED_BATCH - 1:05d}", "h", 1)
    entries.append(Entry(f"/f{trees._FEED_BATCH - 1:05d}/x", "h", 1))
    with pytest.raises(InvalidPath, match="is a file"):
        trees.build(MemoryNodeStore(), entries)


@pytest.mark.parametrize("shape", SHAPES)
def test_apply_refuses_a_file_that_is_also_a_directory(shape) -> None:
    with small_nodes(**shape):
        store = MemoryNodeStore()
        model = {f"/d{i:03d}/f": Entry(f"/d{i:03d}/f", "h", 1) for i in range(200)}
        model.update({f"/e{i:03d}": Entry(f"/e{i:03d}", "h", 1) for i in range(200)})
        root = trees.build(store, ordered(model))
        for i in range(0, 200, 13):
            with pytest.raises(InvalidPath, match=rf"'/d{i:03d}' is a file.*'/d{i:03d}/f'"):
                trees.apply(store, root, {f"/d{i:03d}": Entry(f"/d{i:03d}", "h", 1)})
            with pytest.raises(InvalidPath, match=rf"'/e{i:03d}' is a file.*'/e{i:03d}/g'"):
                trees.apply(store, root, {f"/e{i:03d}/g": Entry(f"/e{i:03d}/g", "h", 1)})
        # both in one batch
        with pytest.raises(InvalidPath, match="'/n' is a file"):
            trees.apply(store, root, {"/n": Entry("/n", "h", 1), "/n/m": Entry("/n/m", "h", 1)})
        # replacing the file by a directory in one batch is fine
        new = trees.apply(store, root, {"/e005": None, "/e005/g": Entry("/e005/g", "h", 1)})
        del model["/e005"]
        model["/e005/g"] = Entry("/e005/g", "h", 1)
        assert new == fresh_root(model)


def test_build_refuses_bad_input() -> None:
    store = MemoryNodeStore()
    with pytest.raises(ValueError, match=r"tree order .*'/a' came after '/b'"):
        trees.build(store, [Entry("/b", "h", 1), Entry("/a", "h", 1)])
    with pytest.raises(InvalidPath, match="'/a' appears twice"):
        trees.build(store, [Entry("/a", "h", 1), Entry("/a", "h", 2)])
    for bad in ["a/b", "/a/", "/a//b", "/a/../b", "/./a", "/a\nb", "/a\\b", "/"]:
        with pytest.raises(InvalidPath):
            trees.build(store, [Entry(bad, "h", 1)])
    with pytest.raises(InvalidPath, match="not normalised; write '/a/b'"):
        trees.build(store, [Entry("/a/b/", "h", 1)])
    with pytest.raises(InvalidPath, match="must be a str"):
        trees.build(store, [Entry(3, "h", 1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="size of '/a' must be an int >= 0"):
        trees.build(store, [Entry("/a", "h", -1)])
    with pytest.raises(ValueError, match="size of '/a' must be an int >= 0"):
        trees.build(store, [Entry("/a", "h", 1.5)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="content hash of '/a' contains a newline"):
        trees.build(store, [Entry("/a", "h\nx", 1)])
    with pytest.raises(TypeError, match="must be an Entry"):
        trees.build(store, [("/a", "h")])  # type: ignore[list-item]
    assert store.nodes == {}


def test_apply_refuses_bad_changes() -> None:
    store = MemoryNodeStore()
    root = trees.build(store, [Entry("/a", "h", 1)])
    with pytest.raises(InvalidPath, match="not normalised; write '/b'"):
        trees.apply(store, root, {"b": Entry("b", "h", 1)})
    with pytest.raises(InvalidPath, match=r"'\.\.' is not allowed"):
        trees.apply(store, root, {"/x/../b": None})
    with pytest.raises(ValueError, match="change for '/b' carries an entry for '/c'"):
        trees.apply(store, root, {"/b": Entry("/c", "h", 1)})


def test_missing_and_corrupt_nodes() -> None:
    store = MemoryNodeStore()
    root = trees.build(store, [Entry("/a", "h", 1)])
    with pytest.raises(ObjectNotFound, match="tree node 00ff is missing"):
        trees.get(store, "00ff", "/a")
    store.nodes[root] = store.nodes[root][:-3]
    with pytest.raises(CorruptObject, match=f"tree node {root} does not decode"):
        trees.get(store, root, "/a")
    store.nodes[root] = b"\x09" + store.nodes[root][1:]
    with pytest.raises(CorruptObject, match="format 9"):
        trees.list(store, root)


def test_entries_and_stores_pickle() -> None:
    store = MemoryNodeStore()
    root = trees.build(store, [Entry("/a", "h", 1)])
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, cloudpickle.loads)):
        assert loads(dumps(Entry("/a", "h", 1))) == Entry("/a", "h", 1)
        assert loads(dumps(DirEntry("/d"))) == DirEntry("/d")
        assert trees.list(loads(dumps(store)), root) == [Entry("/a", "h", 1)]


# --- canonical shape and history independence -----------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@settings(max_examples=60, deadline=None)
@given(model=valid_models())
def test_build_matches_the_reference_chunker(shape, model) -> None:
    with small_nodes(**shape):
        store = MemoryNodeStore()
        root = trees.build(store, ordered(model))
        assert root == reference_root(ordered(model))
        assert set(trees.reachable_nodes(store, root)) == set(store.nodes)
        assert trees.list(store, root) == ordered(model)


def test_build_matches_the_reference_chunker_with_default_shape() -> None:
    rng = random.Random(5)
    model = {}
    for i in range(20_000):
        p = f"/{rng.choice('abc')}/{i:06d}" + ("x" * rng.randrange(60))
        model[p] = Entry(p, f"{i:064x}", i)
    assert fresh_root(model) == reference_root(ordered(model))


def test_long_paths_hit_the_byte_cap() -> None:
    rng = random.Random(9)
    model = {}
    for i in range(1500):
        p = f"/{i:05d}/" + "x" * rng.choice([10, 3000, 20_000, 100_000])
        model[p] = Entry(p, "h", i)
    store = MemoryNodeStore()
    root = trees.build(store, ordered(model))
    assert root == reference_root(ordered(model))
    # a node passes the cap by at most one entry (an internal node holds two children at least)
    assert max(map(len, store.nodes.values())) < trees._MAX_BYTES + 2 * 100_100
    sample = rng.sample(sorted(model), 50)
    edited = trees.apply(store, root, dict.fromkeys(sample))
    for p in sample:
        del model[p]
    assert edited == reference_root(ordered(model))
    assert trees.list(store, edited) == ordered(model)


@pytest.mark.parametrize("shape", SHAPES)
@settings(max_examples=60, deadline=None)
@given(ops=ops_st, data=st.data())
def test_edits_in_any_order_give_the_root_of_a_fresh_build(shape, ops, data) -> None:
    with small_nodes(**shape):
        store = MemoryNodeStore()
        root, model = EMPTY_ROOT, {}
        history = [(root, dict(model))]
        for batch in ops:
            changes = {p: (None if e is None else Entry(p, *e)) for p, e in batch}
            new_model = dict(model)
            for p, e in changes.items():
                if e is None:
                    new_model.pop(p, None)
                else:
                    new_model[p] = e
            if has_clash(new_model):
                with pytest.raises(InvalidPath, match="is a file, so it cannot also be"):
                    trees.apply(store, root, changes)
                continue
            root, model = trees.apply(store, root, changes), new_model
            assert root == fresh_root(model)
            history.append((root, dict(model)))
        # the same final set, inserted one entry at a time in a random order
        order = data.draw(st.permutations(sorted(model)))
        other = EMPTY_ROOT
        for p in order:
            other = trees.apply(store, other, {p: model[p]})
        assert other == root
        # and deleted again in another order
        for p in data.draw(st.permutations(sorted(model))):
            other = trees.apply(store, other, {p: None})
        assert other == EMPTY_ROOT
        # every tree in the history still reads as its model
        for old_root, old_model in history:
            check_reads(store, old_root, old_model)
            diffs = [*trees.diff(store, old_root, root)]
            assert diffs == model_diff(old_model, model)


def model_diff(a: dict[str, Entry], b: dict[str, Entry], prefix: str = "/"):
    paths = sorted(set(a) | set(b), key=sort_key)
    return [
        (p, a.get(p), b.get(p))
        for p in paths
        if a.get(p) != b.get(p) and (prefix == "/" or p == prefix or p.startswith(prefix + "/"))
    ]


def under(model: dict[str, Entry], prefix: str) -> list[Entry]:
    return [
        e
        for e in ordered(model)
        if prefix == "/" or e.path == prefix or e.path.startswith(prefix + "/")
    ]


def check_reads(store, root, model) -> None:
    assert trees.list(store, root) == ordered(model)
    for p in list(model)[:10]:
        assert trees.get(store, root, p) == model[p]
    assert trees.get(store, root, "/zz") is None
    dirs = {p[:i] for p in model for i in range(1, len(p)) if p[i] == "/"}
    for prefix in ["/", *sorted(dirs)[:10], *list(model)[:3]]:
        expect = under(model, prefix)
        assert trees.list(store, root, prefix) == expect
        assert [*trees.iter_entries(store, root, prefix)] == expect
        assert trees.count_and_size(store, root, prefix) == (
            len(expect),
            sum(e.size for e in expect),
        )


@pytest.mark.parametrize("shape", SHAPES)
@settings(max_examples=60, deadline=None)
@given(a=valid_models(), b=valid_models(), prefix=st.one_of(st.just("/"), paths_st))
def test_diff_agrees_with_the_model(shape, a, b, prefix) -> None:
    with small_nodes(**shape):
        store = MemoryNodeStore()
        ra, rb = trees.build(store, ordered(a)), trees.build(store, ordered(b))
        assert [*trees.diff(store, ra, rb, prefix)] == model_diff(a, b, prefix)
        assert [*trees.diff(store, rb, ra, prefix)] == model_diff(b, a, prefix)
        assert [*trees.diff(store, ra, ra, prefix)] == []
        # b as edits of a
        edited = trees.apply(store, ra, {p: b.get(p) for p in set(a) | set(b)})
        assert edited == rb


@pytest.mark.parametrize("shape", SHAPES)
@settings(max_examples=60, deadline=None)
@given(model=valid_models(), data=st.data())
def test_listing_agrees_with_the_model(shape, model, data) -> None:
    with small_nodes(**shape):
        store = MemoryNodeStore()
        root = trees.build(store, ordered(model))
        check_reads(store, root, model)
        prefix = data.draw(st.one_of(st.just("/"), paths_st))
        # direct children: files as entries, subdirectories once each, in tree order
        base = "" if prefix == "/" else prefix
        expect: list[Entry | DirEntry] = []
        for e in ordered(model):
            if e.path == prefix:
                expect.append(e)
            elif e.path.startswith(base + "/"):
                rest = e.path[len(base) + 1 :]
                if "/" in rest:
                    d = DirEntry(base + "/" + rest.split("/")[0])
                    if d not in expect:
                        expect.append(d)
                else:
                    expect.append(e)
        assert trees.list(store, root, prefix, recursive=False) == expect
        limit = data.draw(st.integers(1, 5))
        after = data.draw(st.one_of(st.none(), paths_st))
        full = trees.list(store, root, prefix)
        want = [e for e in full if after is None or sort_key(e.path) > sort_key(after)]
        assert trees.list(store, root, prefix, start_after=after, limit=limit) == want[:limit]


# --- glob ------------------------------------------------------------------------------------

GLOB_SEGMENTS = ["*", "a*", "?", "[ab]", "[!a]*", "**", "a", "b", "*.b", "x y", "*b", "[a-c]",
                 "{a,b*}", "(a|b)", "!(a*)", "@(a)*", "+(a)", "?(b)a", "*(a|b)", "a**"]  # fmt: skip


def reference_glob(model: dict[str, Entry], pattern: str) -> list[Entry | DirEntry]:
    """Every file and folder whose path the compiled glob matches, by brute force: the walk
    must find the same while skipping subtrees (the translation itself is checked against an
    independent one in tests/store/test_globs.py)."""
    match = compile_glob(pattern).match
    found: dict[str, Entry | DirEntry] = {}
    for e in model.values():
        names = e.path[1:].split("/")
        for d in range(1, len(names)):
            if match("/" + "/".join(names[:d])):
                found["/" + "/".join(names[:d])] = DirEntry("/" + "/".join(names[:d]))
        if match(e.path):
            found[e.path] = e
    return [found[p] for p in sorted(found, key=sort_key)]


@pytest.mark.parametrize("shape", SHAPES[:2])
@settings(max_examples=100, deadline=None)
@given(
    model=valid_models(),
    segs=st.lists(st.sampled_from(GLOB_SEGMENTS), min_size=1, max_size=4),
    trailing=st.booleans(),
)
def test_glob_agrees_with_a_reference_matcher(shape, model, segs, trailing) -> None:
    pattern = "/" + "/".join(segs) + ("/" if trailing else "")
    with small_nodes(**shape):
        store = MemoryNodeStore()
        root = trees.build(store, ordered(model))
        assert [*trees.glob(store, root, pattern)] == reference_glob(model, pattern)


def test_glob_examples() -> None:
    store = MemoryNodeStore()
    paths = ["/in/2024/a.csv", "/in/2024/b.json", "/in/2025/c.csv", "/in/top.csv", "/out/x"]
    root = trees.build(store, [Entry(p, "h", 1) for p in paths])

    def g(pattern: str) -> list[str]:
        return [x.path for x in trees.glob(store, root, pattern)]

    assert g("/") == ["/"]
    assert g("/*") == ["/in", "/out"]
    assert g("*") == ["/in", "/out"]
    assert g("/in/*") == ["/in/2024", "/in/2025", "/in/top.csv"]
    assert g("/in/*/") == g("/in/*")  # a trailing '/' is dropped (Pachyderm has no folder glob)
    assert g("/in/*/*.csv") == ["/in/2024/a.csv", "/in/2025/c.csv"]
    assert g("/**/*.csv") == ["/in/2024/a.csv", "/in/2025/c.csv", "/in/top.csv"]
    assert g("/in/**/*.csv") == ["/in/2024/a.csv", "/in/2025/c.csv"]  # a folder in between
    assert g("/in/*.{csv,json}") == ["/in/top.csv"]
    assert g("/in/*/*.{csv,json}") == ["/in/2024/a.csv", "/in/2024/b.json", "/in/2025/c.csv"]
    assert g("/in/!(*.*)") == ["/in/2024", "/in/2025"]
    assert g("/in/(2024|top.csv)") == ["/in/2024", "/in/top.csv"]
    assert g("/in/**") == ["/in/2024", "/in/2024/a.csv", "/in/2024/b.json", "/in/2025",
                           "/in/2025/c.csv", "/in/top.csv"]  # fmt: skip
    assert g("/in/202[!4]") == ["/in/2025"]
    assert g("/in/20?4/*") == ["/in/2024/a.csv", "/in/2024/b.json"]
    assert g("/in/2024") == ["/in/2024"]  # a literal directory
    assert g("/in/top.csv") == ["/in/top.csv"]
    assert g("/in/top.csv/") == ["/in/top.csv"]
    assert g("/in/nothing") == []
    assert g("/in/\\*") == []
    with pytest.raises(InvalidPath, match="never closed"):
        g("/in/[")
    with pytest.raises(InvalidPath, match="empty segment"):
        g("/in//x")


def test_glob_skips_subtrees_that_cannot_match() -> None:
    store = CountingStore()
    entries = [Entry(f"/d{i // 1000:03d}/f{i:06d}", "h", 1) for i in range(100_000)]
    root = trees.build(store, entries)
    store.reads = 0
    assert len([*trees.glob(store, root, "/*")]) == 100
    assert store.reads < 300  # ~1 leaf per directory, not the ~1600 leaves of the tree
    store.reads = 0
    assert len([*trees.glob(store, root, "/d05*/f*1")]) == 1000
    assert store.reads < 300  # only /d050../d059 are read


# --- cost: what is read and written ----------------------------------------------------------


def big_model(n: int) -> dict[str, Entry]:
    return {
        (p := f"/data/{i // 1000:03d}/part-{i:06d}.csv"): Entry(p, f"{i:064x}", i) for i in range(n)
    }


def test_diff_of_a_few_changes_reads_few_nodes() -> None:
    store = CountingStore()
    model = big_model(100_000)
    ra = trees.build(store, ordered(model))
    rng = random.Random(1)
    changes = {}
    for p in rng.sample(sorted(model), 10):
        changes[p] = Entry(p, "e" * 64, 1)
    nodes = len(store.nodes)
    store.written = 0
    rb = trees.apply(store, ra, changes)
    assert store.written <= 10 * 4  # leaf + parents per change, far below the tree's nodes
    assert nodes > 1500
    store.reads = 0
    out = [*trees.diff(store, ra, rb)]
    assert [p for p, _, _ in out] == sorted(changes, key=sort_key)
    assert store.reads <= 10 * 2 * 4  # per change and side: the nodes down to the leaf
    store.reads = 0
    assert [*trees.diff(store, ra, rb, "/data/050")] == [
        x for x in out if x[0].startswith("/data/050/")
    ]
    assert store.reads <= 2 * 4 + 2


def test_reads_cost_what_they_touch() -> None:
    store = CountingStore()
    model = big_model(100_000)
    root = trees.build(store, ordered(model))
    store.reads = 0
    assert trees.count_and_size(store, root) == (100_000, sum(range(100_000)))
    assert store.reads == 1
    store.reads = 0
    assert trees.count_and_size(store, root, "/data/042") == (1000, sum(range(42000, 43000)))
    assert store.reads <= 2 * 4  # the two edges of the range
    store.reads = 0
    assert trees.get(store, root, "/data/042/part-042123.csv") == model["/data/042/part-042123.csv"]
    assert store.reads <= 4
    store.reads = 0
    page = trees.list(store, root, "/data/042", start_after="/data/042/part-042500.csv", limit=10)
    assert [e.path for e in page] == [f"/data/042/part-{i:06d}.csv" for i in range(42501, 42511)]
    assert store.reads <= 4 + 1


def test_apply_with_many_changes_equals_a_rebuild() -> None:
    store = MemoryNodeStore()
    model = big_model(30_000)
    root = trees.build(store, ordered(model))
    changes: dict[str, Entry | None] = {}
    for i, p in enumerate(sorted(model)):
        if i % 3 == 0:
            changes[p] = None
        elif i % 3 == 1:
            changes[p] = Entry(p, "0" * 64, 0)
    changes.update({f"/new/{i:05d}": Entry(f"/new/{i:05d}", "1" * 64, 1) for i in range(5000)})
    new = trees.apply(store, root, changes)
    for p, e in changes.items():
        if e is None:
            del model[p]
        else:
            model[p] = e
    assert new == fresh_root(model)
    assert trees.list(store, new) == ordered(model)


# --- batched reads (get_nodes) and runs -------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@settings(max_examples=40, deadline=None)
@given(model=valid_models(), data=st.data())
def test_iter_runs_agrees_with_the_model(shape, model, data) -> None:
    with small_nodes(**shape):
        store = MemoryNodeStore()
        root = trees.build(store, ordered(model))
    paths = sorted(model, key=sort_key)
    prefix = data.draw(st.sampled_from(["/", *{p.rsplit("/", 1)[0] or "/" for p in paths}]))
    start_after = data.draw(st.sampled_from([None, *paths]))
    limit = data.draw(st.sampled_from([None, 0, 1, 2, 5, 100]))
    expected = [e for e in under(model, prefix) if start_after is None or
                sort_key(e.path) > sort_key(start_after)]  # fmt: skip
    if limit is not None:
        expected = expected[:limit]
    got = [
        Entry(*row)
        for paths_, hashes, sizes in trees.iter_runs(store, root, prefix, start_after, limit)
        for row in zip(paths_, hashes, sizes)
    ]
    assert got == expected
    plain = PlainStore(store.nodes)  # the same answers without get_nodes
    assert trees.list(plain, root, prefix, start_after, limit) == expected


def test_a_page_is_read_in_one_batch_per_parent() -> None:
    store = CountingStore()
    model = big_model(100_000)
    root = trees.build(store, ordered(model))
    plain = PlainStore(store.nodes)
    after = "/data/042/part-042500.csv"
    for limit in (10, 1000, 5000):
        store.reads = store.calls = plain.reads = 0
        page = trees.list(store, root, start_after=after, limit=limit)
        assert page == trees.list(plain, root, start_after=after, limit=limit)
        assert len(page) == limit
        # Every node read is one the page needs, but for one child read ahead on each internal
        # level (the page starts inside a child, whose count then overstates what is left)...
        assert plain.reads <= store.reads <= plain.reads + 2
        # ...and the nodes under one parent come in one call: the root, a batch of level-1
        # nodes, a batch of leaves under each level-1 node the page spans (about 4000 files).
        assert store.calls <= 3 + (limit + 3999) // 4000, (limit, store.calls)
        assert plain.reads >= limit // 64  # against a call per node


def test_a_full_walk_reads_each_node_once_in_few_calls() -> None:
    store = CountingStore()
    root = trees.build(store, ordered(big_model(100_000)))
    store.reads = store.calls = 0
    assert sum(1 for _ in trees.iter_entries(store, root)) == 100_000
    assert store.reads == len(store.nodes) >= 1500
    assert store.calls < store.reads / 10  # batches of up to 32 children


def test_read_ahead_is_bounded_when_a_walk_jumps() -> None:
    # A non-recursive listing jumps past every directory: it must not read ahead much.
    store = CountingStore()
    root = trees.build(store, ordered(big_model(100_000)))
    plain = PlainStore(store.nodes)
    store.reads = 0
    listed = trees.list(store, root, "/data", recursive=False)
    assert listed == trees.list(plain, root, "/data", recursive=False)
    assert len(listed) == 100
    assert store.reads <= plain.reads + 5


def test_missing_node_in_a_batch_is_reported_when_reached() -> None:
    with small_nodes():
        store = MemoryNodeStore()
        entries = [Entry(f"/f{i:03d}", "h", 1) for i in range(200)]
        root = trees.build(store, entries)
    leaves = [k for k in store.nodes if trees._decode(store.nodes[k], k).level == 0]
    first_leaf_paths = trees._decode(store.nodes[leaves[0]], leaves[0]).paths
    victim = next(k for k in leaves if trees._decode(store.nodes[k], k).paths[0] > "/f150")
    del store.nodes[victim]
    assert first_leaf_paths  # the start of the tree still lists
    assert trees.list(store, root, limit=3) == entries[:3]
    with pytest.raises(ObjectNotFound, match=victim):
        trees.list(store, root)
