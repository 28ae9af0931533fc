"""Datum computation: each input type against hand-computed datums, ids and hashes across
commits, errors, and a 100k-file input."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import cloudpickle
import pytest

from headrace.stages.datums import (
    Cross,
    Datum,
    Group,
    Join,
    PfsInput,
    Union,
    compute_datums,
    datum_id,
    input_keys,
    input_names,
    resolve_commits,
)
from headrace.store.store import Store

FILES = {
    "/x.csv": b"x",
    "/d1/p.csv": b"p",
    "/d1/q.txt": b"q",
    "/d2/r.csv": b"r",
    "/d2/sub/s.csv": b"s",
}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path)
    s.create_repo("a")
    s.put_files("a@master", FILES.items())
    yield s
    s.close()


def shape(datums: list[Datum]) -> list[list[tuple[str, str, list[str]]]]:
    """Each datum as [(input name, matched path, [file paths])...]."""
    return [[(i.name, i.path, [f.path for f in i.files]) for i in d.inputs] for d in datums]


def by_path(datums: list[Datum]) -> dict[str, Datum]:
    return {"+".join(i.path for i in d.inputs): d for d in datums}


# -- pfs ----------------------------------------------------------------------------------------


def test_root_glob_is_one_datum_with_every_file(store: Store) -> None:
    datums = compute_datums(store, PfsInput("a", glob="/"))
    assert shape(datums) == [
        [("a", "/", ["/d1/p.csv", "/d1/q.txt", "/d2/r.csv", "/d2/sub/s.csv", "/x.csv"])]
    ]
    files = datums[0].inputs[0].files
    assert all(f.type == "file" and f.hash for f in files)
    assert [f.size for f in files] == [1, 1, 1, 1, 1]


def test_star_glob_is_one_datum_per_top_level_entry(store: Store) -> None:
    assert shape(compute_datums(store, PfsInput("a", glob="/*"))) == [
        [("a", "/d1", ["/d1/p.csv", "/d1/q.txt"])],
        [("a", "/d2", ["/d2/r.csv", "/d2/sub/s.csv"])],
        [("a", "/x.csv", ["/x.csv"])],
    ]


def test_double_star_glob_matches_every_file_and_directory(store: Store) -> None:
    assert shape(compute_datums(store, PfsInput("a", glob="/**"))) == [
        [("a", "/d1", ["/d1/p.csv", "/d1/q.txt"])],
        [("a", "/d1/p.csv", ["/d1/p.csv"])],
        [("a", "/d1/q.txt", ["/d1/q.txt"])],
        [("a", "/d2", ["/d2/r.csv", "/d2/sub/s.csv"])],
        [("a", "/d2/r.csv", ["/d2/r.csv"])],
        [("a", "/d2/sub", ["/d2/sub/s.csv"])],
        [("a", "/d2/sub/s.csv", ["/d2/sub/s.csv"])],
        [("a", "/x.csv", ["/x.csv"])],
    ]


def test_nested_glob_matches_files_at_that_depth(store: Store) -> None:
    assert shape(compute_datums(store, PfsInput("a", glob="/*/*.csv"))) == [
        [("a", "/d1/p.csv", ["/d1/p.csv"])],
        [("a", "/d2/r.csv", ["/d2/r.csv"])],
    ]
    assert shape(compute_datums(store, PfsInput("a", glob="/d2/*"))) == [
        [("a", "/d2/r.csv", ["/d2/r.csv"])],
        [("a", "/d2/sub", ["/d2/sub/s.csv"])],
    ]
    assert shape(compute_datums(store, PfsInput("a", glob="/d2"))) == [
        [("a", "/d2", ["/d2/r.csv", "/d2/sub/s.csv"])]
    ]
    assert compute_datums(store, PfsInput("a", glob="/*.json")) == []


def test_capture_parentheses_do_not_change_matches(store: Store) -> None:
    plain = compute_datums(store, PfsInput("a", glob="/*/*.csv"))
    grouped = compute_datums(store, PfsInput("a", glob="/(*)/(*).csv"))
    assert grouped == plain


def test_input_name_defaults_to_repo_and_can_be_set(store: Store) -> None:
    datums = compute_datums(store, PfsInput("a", glob="/x.csv", name="raw"))
    assert shape(datums) == [[("raw", "/x.csv", ["/x.csv"])]]
    assert PfsInput("a").name == "a"


# -- cross and union ----------------------------------------------------------------------------


@pytest.fixture
def two(store: Store) -> Store:
    store.create_repo("b")
    store.put_files("b@master", [("/m.txt", b"m"), ("/n.txt", b"n")])
    return store


def test_cross_is_the_cartesian_product_first_input_outermost(two: Store) -> None:
    datums = compute_datums(two, Cross((PfsInput("a", glob="/*/*.csv"), PfsInput("b", glob="/*"))))
    assert [[i.path for i in d.inputs] for d in datums] == [
        ["/d1/p.csv", "/m.txt"],
        ["/d1/p.csv", "/n.txt"],
        ["/d2/r.csv", "/m.txt"],
        ["/d2/r.csv", "/n.txt"],
    ]
    assert [[i.name for i in d.inputs] for d in datums] == [["a", "b"]] * 4
    assert len({d.id for d in datums}) == 4


def test_cross_with_an_empty_side_has_no_datums(two: Store) -> None:
    cross = Cross((PfsInput("a", glob="/*.json"), PfsInput("b", glob="/*")))
    assert compute_datums(two, cross) == []


def test_union_concatenates_and_keeps_a_repeated_datum_once(two: Store) -> None:
    union = Union((PfsInput("b", glob="/*"), PfsInput("a", glob="/*/*.csv")))
    assert [[(i.name, i.path) for i in d.inputs] for d in compute_datums(two, union)] == [
        [("b", "/m.txt")],
        [("b", "/n.txt")],
        [("a", "/d1/p.csv")],
        [("a", "/d2/r.csv")],
    ]
    overlap = Union((PfsInput("a", glob="/*/*.csv"), PfsInput("a", glob="/d1/*")))
    assert [d.inputs[0].path for d in compute_datums(two, overlap)] == [
        "/d1/p.csv",
        "/d2/r.csv",
        "/d1/q.txt",
    ]


def test_nested_cross_of_union(two: Store) -> None:
    inner = Union((PfsInput("b", glob="/m.txt"), PfsInput("b", glob="/n.txt")))
    datums = compute_datums(two, Cross((inner, PfsInput("a", glob="/x.csv"))))
    assert [[i.path for i in d.inputs] for d in datums] == [
        ["/m.txt", "/x.csv"],
        ["/n.txt", "/x.csv"],
    ]


# -- join and group -----------------------------------------------------------------------------


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path)
    s.create_repo("orders")
    s.create_repo("customers")
    s.put_files(
        "orders@master",
        [(p, p.encode()) for p in ["/c1-a.csv", "/c1-b.csv", "/c2-a.csv", "/c4-a.csv"]],
    )
    s.put_files("customers@master", [(p, p.encode()) for p in ["/c1.json", "/c2.json", "/c3.json"]])
    yield s
    s.close()


def test_pachyderm_globs_make_the_datums_pachyderm_makes(tmp_path: Path) -> None:
    """Pachyderm's beginner tutorial globs: '/*.{png,jpg,jpeg}' (brace alternatives) and
    '/!(*.*)' (an extended glob: names without a dot); '(a|b)' alternates inside a group;
    '/**/*.csv' needs a folder in between ('**' is '.*' in ohmyglob's compiler)."""
    s = Store.open(tmp_path)
    s.create_repo("images")
    names = ["/a.png", "/b.jpg", "/c.jpeg", "/d.gif", "/e.csv", "/raw/f.csv", "/notes"]
    s.put_files("images@master", [(p, b"x") for p in names])

    def matched(glob: str) -> list[str]:
        return [d.inputs[0].path for d in compute_datums(s, PfsInput("images", glob=glob))]

    assert matched("/*.{png,jpg,jpeg}") == ["/a.png", "/b.jpg", "/c.jpeg"]
    assert matched("/!(*.*)") == ["/notes", "/raw"]
    assert matched("/(a|d).*") == ["/a.png", "/d.gif"]
    assert matched("/**/*.csv") == ["/raw/f.csv"]
    assert matched("*.csv") == ["/e.csv"]  # no leading '/' means the same
    assert matched("/*/") == matched("/*")  # a trailing '/' is dropped
    s.close()


def test_join_with_a_trailing_slash_glob(tmp_path: Path) -> None:
    """Pachyderm's TestJoinTrailingSlash (src/server/pps_test.go): two repos of 10 files
    joined on '/(*)/' give 10 datums (the trailing '/' is dropped, files match)."""
    s = Store.open(tmp_path)
    for repo in ("left", "right"):
        s.create_repo(repo)
        s.put_files(f"{repo}@master", [(f"/{i}", b"x") for i in range(10)])
    datums = compute_datums(
        s,
        Join(
            (
                PfsInput("left", glob="/(*)/", join_on="$1"),
                PfsInput("right", glob="/(*)/", join_on="$1"),
            )
        ),
    )
    assert len(datums) == 10
    assert all(d.inputs[0].path == d.inputs[1].path for d in datums)
    s.close()


def join(orders_outer: bool = False, customers_outer: bool = False) -> Join:
    return Join(
        (
            PfsInput("orders", glob="/(*)-*.csv", join_on="$1", outer_join=orders_outer),
            PfsInput("customers", glob="/(*).json", join_on="$1", outer_join=customers_outer),
        )
    )


def paths(datums: list[Datum]) -> list[list[str]]:
    return [[i.path for i in d.inputs] for d in datums]


def test_inner_join_pairs_matching_keys_only(shop: Store) -> None:
    assert paths(compute_datums(shop, join())) == [
        ["/c1-a.csv", "/c1.json"],
        ["/c1-b.csv", "/c1.json"],
        ["/c2-a.csv", "/c2.json"],
    ]


def test_outer_join_keeps_unmatched_of_the_outer_input(shop: Store) -> None:
    assert paths(compute_datums(shop, join(customers_outer=True))) == [
        ["/c1-a.csv", "/c1.json"],
        ["/c1-b.csv", "/c1.json"],
        ["/c2-a.csv", "/c2.json"],
        ["/c3.json"],
    ]
    assert paths(compute_datums(shop, join(orders_outer=True))) == [
        ["/c1-a.csv", "/c1.json"],
        ["/c1-b.csv", "/c1.json"],
        ["/c2-a.csv", "/c2.json"],
        ["/c4-a.csv"],
    ]
    both = compute_datums(shop, join(orders_outer=True, customers_outer=True))
    assert paths(both) == [
        ["/c1-a.csv", "/c1.json"],
        ["/c1-b.csv", "/c1.json"],
        ["/c2-a.csv", "/c2.json"],
        ["/c3.json"],
        ["/c4-a.csv"],
    ]
    assert [i.name for i in both[3].inputs] == ["customers"]


def test_three_way_join_with_one_outer_input_keeps_only_the_outer_match(tmp_path: Path) -> None:
    """Pachyderm's processMergeTask (src/internal/datum/task.go): when a key is missing from
    some input, the datum holds only the outer inputs' matches, not the inner ones that do
    have the key."""
    s = Store.open(tmp_path)
    for repo, names in (("a", ["/k1", "/k2", "/k3"]), ("b", ["/k1", "/k2"]), ("c", ["/k1"])):
        s.create_repo(repo)
        s.put_files(f"{repo}@master", [(n, b"x") for n in names])
    j = Join(
        (
            PfsInput("a", glob="/(*)", join_on="$1", outer_join=True),
            PfsInput("b", glob="/(*)", join_on="$1"),
            PfsInput("c", glob="/(*)", join_on="$1"),
        )
    )
    got = [[(i.name, i.path) for i in d.inputs] for d in compute_datums(s, j)]
    assert got == [
        [("a", "/k1"), ("b", "/k1"), ("c", "/k1")],
        [("a", "/k2")],  # b has k2 too, but c does not: only the outer input's match
        [("a", "/k3")],
    ]
    s.close()


def test_join_keys_from_nested_groups_braces_and_literal_text(shop: Store) -> None:
    # /(c(*))-(*).csv: $1 = "c1", $2 = "1", $3 = "a"; customers /c(*).json: $1 = "1".
    j = Join(
        (
            PfsInput("orders", glob="/(c(*))-(*).csv", join_on="k${2}"),
            PfsInput("customers", glob="/c(*).json", join_on="k$1"),
        )
    )
    assert paths(compute_datums(shop, j)) == [
        ["/c1-a.csv", "/c1.json"],
        ["/c1-b.csv", "/c1.json"],
        ["/c2-a.csv", "/c2.json"],
    ]
    on_two = Join(
        (
            PfsInput("orders", glob="/(*)-(*).csv", join_on="$1$2"),
            PfsInput("customers", glob="/(*).json", join_on="$1a"),  # literal 'a' after $1
        )
    )
    assert paths(compute_datums(shop, on_two)) == [
        ["/c1-a.csv", "/c1.json"],
        ["/c2-a.csv", "/c2.json"],
    ]


def test_group_one_input_gathers_matches_by_key(shop: Store) -> None:
    g = Group((PfsInput("orders", glob="/(*)-*.csv", group_by="$1"),))
    assert paths(compute_datums(shop, g)) == [
        ["/c1-a.csv", "/c1-b.csv"],
        ["/c2-a.csv"],
        ["/c4-a.csv"],
    ]


def test_group_across_inputs_keeps_keys_present_in_any(shop: Store) -> None:
    g = Group(
        (
            PfsInput("orders", glob="/(*)-*.csv", group_by="$1"),
            PfsInput("customers", glob="/(*).json", group_by="$1"),
        )
    )
    datums = compute_datums(shop, g)
    assert paths(datums) == [
        ["/c1-a.csv", "/c1-b.csv", "/c1.json"],
        ["/c2-a.csv", "/c2.json"],
        ["/c3.json"],
        ["/c4-a.csv"],
    ]
    assert [i.name for i in datums[0].inputs] == ["orders", "orders", "customers"]


def _foo_repos(tmp_path: Path) -> Store:
    """Pachyderm's TestIterators data (src/server/worker/datum/iterator_test.go): /foo0 ..
    /foo49, here in two repos so that the two inputs can have names of their own."""
    store = Store.open(tmp_path)
    for repo in ("left", "right"):
        store.create_repo(repo)
        store.put_files(f"{repo}@master", [(f"/foo{i}", b"input") for i in range(50)])
    return store


def test_group_of_a_join_as_pachyderm_groups_it(tmp_path: Path) -> None:
    """Pachyderm's TestIterators/GroupJoin: a join of /foo(?)(?) on $1$2 with /foo(?)(?) on
    $2$1, grouped by $1 and $2: every join datum's inputs are put under their own group_by
    key, which makes 4 datums of 8 files each."""
    store = _foo_repos(tmp_path)
    join = Join(
        (
            PfsInput("left", glob="/foo(?)(?)", join_on="$1$2", group_by="$1"),
            PfsInput("right", glob="/foo(?)(?)", join_on="$2$1", group_by="$2"),
        )
    )
    datums = compute_datums(store, Group((join,)))
    # Pachyderm compares each datum's sorted path segments
    assert sorted(sorted(i.path for i in d.inputs) for d in datums) == [
        sorted(["/foo11", "/foo11", "/foo12", "/foo21", "/foo13", "/foo31", "/foo14", "/foo41"]),
        sorted(["/foo21", "/foo12", "/foo22", "/foo22", "/foo23", "/foo32", "/foo24", "/foo42"]),
        sorted(["/foo31", "/foo13", "/foo32", "/foo23", "/foo33", "/foo33", "/foo34", "/foo43"]),
        sorted(["/foo41", "/foo14", "/foo42", "/foo24", "/foo43", "/foo34", "/foo44", "/foo44"]),
    ]
    first = datums[0]
    assert [(i.name, i.path) for i in first.inputs if i.name == "left"] == [
        ("left", "/foo11"), ("left", "/foo12"), ("left", "/foo13"), ("left", "/foo14"),
    ]  # fmt: skip
    store.close()


def test_group_of_a_join_and_a_pfs_input(tmp_path: Path) -> None:
    """A group may hold a join next to pfs inputs; the join's matches join their groups."""
    store = _foo_repos(tmp_path)
    join = Join(
        (
            PfsInput("left", glob="/foo1(?)", join_on="$1", group_by="$1"),
            PfsInput("right", glob="/foo(?)1", join_on="$1", group_by="$1"),
        )
    )
    extra = PfsInput("left", glob="/foo4(?)", group_by="$1", name="more")
    datums = compute_datums(store, Group((join, extra)))
    got = {d.inputs[0].path: [(i.name, i.path) for i in d.inputs] for d in datums}
    # join keys 1..4 exist in both inputs (foo11/foo11, foo12/foo21, ...); key 0 has foo10
    # but no foo01, so it only comes from 'more' (foo40)
    assert got["/foo40"] == [("more", "/foo40")]
    assert got["/foo12"] == [("left", "/foo12"), ("right", "/foo21"), ("more", "/foo42")]
    assert len(datums) == 10  # keys 0..9 from 'more'
    store.close()


def test_group_of_a_join_needs_group_by_on_the_joins_inputs(tmp_path: Path) -> None:
    store = _foo_repos(tmp_path)
    join = Join(
        (
            PfsInput("left", glob="/foo(?)", join_on="$1", group_by="$1"),
            PfsInput("right", glob="/foo(?)", join_on="$1"),
        )
    )
    with pytest.raises(ValueError, match="'right' of a join inside a group needs group_by"):
        compute_datums(store, Group((join,)))
    with pytest.raises(ValueError, match="combines pfs and join inputs only"):
        compute_datums(store, Group((Union((PfsInput("left", "/*", group_by="$1"),)),)))
    store.close()


def test_cross_of_a_join_and_a_pfs(shop: Store) -> None:
    shop.create_repo("model")
    shop.put_file("model@master:/w.bin", b"w")
    datums = compute_datums(shop, Cross((join(), PfsInput("model"))))
    assert paths(datums) == [
        ["/c1-a.csv", "/c1.json", "/"],
        ["/c1-b.csv", "/c1.json", "/"],
        ["/c2-a.csv", "/c2.json", "/"],
    ]


# -- ids and hashes across commits --------------------------------------------------------------


def test_ids_are_stable_and_hashes_change_exactly_for_changed_datums(store: Store) -> None:
    pfs = PfsInput("a", glob="/*")
    first_commit = store.inspect_commit("a@master").id
    before = by_path(compute_datums(store, pfs))
    with store.commit("a@master") as c:
        c.put_file("/d1/p.csv", b"p changed")  # modify: /d1 changes
        c.put_file("/d3/t.csv", b"t")  # add: /d3 appears
        c.delete_file("/x.csv")  # delete: /x.csv disappears
    after = by_path(compute_datums(store, pfs))
    assert sorted(before) == ["/d1", "/d2", "/x.csv"]
    assert sorted(after) == ["/d1", "/d2", "/d3"]
    assert after["/d1"].id == before["/d1"].id and after["/d1"].hash != before["/d1"].hash
    assert after["/d2"] == before["/d2"]  # same id, same hash, same files
    # the old commit still gives the old datums, and the same ids
    again = compute_datums(store, pfs, commits={"a": first_commit})
    assert by_path(again) == before
    assert compute_datums(store, pfs, commits={"a": "master^1"}) == again
    assert compute_datums(store, pfs, commits={"a": "a@master^1"}) == again


def test_adding_a_file_to_a_directory_datum_changes_its_hash(store: Store) -> None:
    pfs = PfsInput("a", glob="/*")
    before = by_path(compute_datums(store, pfs))
    store.put_file("a@master:/d2/sub/new.csv", b"n")
    after = by_path(compute_datums(store, pfs))
    assert after["/d2"].id == before["/d2"].id and after["/d2"].hash != before["/d2"].hash
    assert [after[p].hash for p in ("/d1", "/x.csv")] == [before[p].hash for p in ("/d1", "/x.csv")]


def test_renaming_a_file_inside_a_directory_datum_changes_its_hash(store: Store) -> None:
    pfs = PfsInput("a", glob="/*")
    before = by_path(compute_datums(store, pfs))
    with store.commit("a@master") as c:
        c.delete_file("/d1/q.txt")
        c.put_file("/d1/q2.txt", b"q")  # same content, new path
    after = by_path(compute_datums(store, pfs))
    assert after["/d1"].hash != before["/d1"].hash
    assert after["/d2"].hash == before["/d2"].hash


def test_rewriting_the_same_content_keeps_the_hash(store: Store) -> None:
    pfs = PfsInput("a", glob="/*/*.csv")
    before = compute_datums(store, pfs)
    store.put_file("a@master:/d1/p.csv", b"p")
    assert compute_datums(store, pfs) == before


def test_join_hashes_follow_both_sides(shop: Store) -> None:
    before = compute_datums(shop, join())
    shop.put_file("customers@master:/c1.json", b"new c1")
    after = compute_datums(shop, join())
    assert [d.id for d in after] == [d.id for d in before]
    assert [a.hash == b.hash for a, b in zip(after, before)] == [False, False, True]


def test_salt_and_version_change_every_hash_but_no_id(store: Store) -> None:
    pfs = PfsInput("a", glob="/*")
    base = compute_datums(store, pfs)
    for salt, version in (("s", ""), ("", "2"), ("2", "")):
        other = compute_datums(store, pfs, salt=salt, version=version)
        assert [d.id for d in other] == [d.id for d in base]
        assert all(o.hash != b.hash for o, b in zip(other, base))
    # salt and version are kept apart: ("ab", "") is not ("a", "b")
    h1 = compute_datums(store, pfs, salt="ab", version="")[0].hash
    h2 = compute_datums(store, pfs, salt="a", version="b")[0].hash
    assert h1 != h2


def test_id_depends_on_input_name_and_path(store: Store) -> None:
    named = compute_datums(store, PfsInput("a", glob="/x.csv", name="other"))
    plain = compute_datums(store, PfsInput("a", glob="/x.csv"))
    assert named[0].id != plain[0].id and named[0].hash != plain[0].hash
    assert len(plain[0].id) == 32 and len(plain[0].hash) == 64


def test_resolve_commits_and_input_names(two: Store) -> None:
    cross = Cross((PfsInput("a"), PfsInput("b", name="bee")))
    assert input_names(cross) == ["a", "bee"]
    assert resolve_commits(two, cross) == {
        "a": two.inspect_commit("a@master").id,
        "bee": two.inspect_commit("b@master").id,
    }


def test_union_inputs_sharing_a_name_read_their_own_repos(two: Store) -> None:
    """Pachyderm lets a union's inputs share a name (validateNames in
    src/server/pps/server/api_server.go) so that the code reads /pfs/<name> whichever input a
    datum came from. Same-named matches of different repos are different datums: a path in
    both repos makes two datums with their own ids, none dropped as a duplicate."""
    two.put_files("b@master", [("/x.csv", b"b's own x")])  # a path in both repos
    union = Union((PfsInput("a", "/*", name="in"), PfsInput("b", "/*", name="in")))
    assert input_names(union) == ["in"]
    assert input_keys(union) == ["in:a@master", "in:b@master"]
    assert resolve_commits(two, union) == {
        "in:a@master": two.inspect_commit("a@master").id,
        "in:b@master": two.inspect_commit("b@master").id,
    }
    datums = compute_datums(two, union)
    a = [d.inputs[0].path for d in compute_datums(two, PfsInput("a", "/*"))]
    b = [d.inputs[0].path for d in compute_datums(two, PfsInput("b", "/*"))]
    assert [d.inputs[0].path for d in datums] == a + b
    assert {i.name for d in datums for i in d.inputs} == {"in"}
    assert len({d.id for d in datums}) == len(a) + len(b)
    assert set(a) & set(b) == {"/x.csv"}
    # a single input keeps the datum ids it always had (its key is its name)
    plain = {d.inputs[0].path: d.id for d in compute_datums(two, PfsInput("a", "/*"))}
    assert plain == {p: datum_id("a", p) for p in a}
    # and the same repo under one name twice is still one input
    same = Union((PfsInput("a", "/*", name="in"), PfsInput("a", "/*/*", name="in")))
    assert input_keys(same) == ["in"]


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("input", "message"),
    [
        (Join((PfsInput("a", glob="/(*)"), PfsInput("b", glob="/(*)", join_on="$1"))), "join_on"),
        (Group((PfsInput("a", glob="/(*)"),)), "group_by"),
        (
            Join(
                (PfsInput("a", glob="/*", join_on="$1"), PfsInput("b", glob="/(*)", join_on="$1"))
            ),
            "no capture group",
        ),  # fmt: skip
        (Group((PfsInput("a", glob="/(*)", group_by="$2"),)), r"refers to \$2"),
        (Group((PfsInput("a", glob="/(*", group_by="$1"),)), "never closed"),
        (Cross((PfsInput("a"), PfsInput("b", name="a"))), "appears twice"),
        (Join((Union((PfsInput("a"),)), PfsInput("b", join_on="$1"))), "pfs inputs only"),  # type: ignore[arg-type]
        (Cross(()), "non-empty"),
    ],
)
def test_bad_inputs_are_refused_with_a_clear_error(
    two: Store, input: Cross | Join | Group, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        compute_datums(two, input)


def test_commits_naming_an_unknown_input_is_an_error(store: Store) -> None:
    with pytest.raises(ValueError, match=r"'zz'.*inputs are \['a'\]"):
        compute_datums(store, PfsInput("a"), commits={"zz": "master"})


# -- travel and scale ---------------------------------------------------------------------------


def test_datums_and_inputs_pickle(shop: Store) -> None:
    datums = compute_datums(shop, join(customers_outer=True))
    for dumps, loads in ((pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)):
        assert loads(dumps(datums)) == datums
        assert loads(dumps(join())) == join()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    s = Store.open(tmp_path_factory.mktemp("big"))
    s.create_repo("big")
    s.put_files(
        "big@master", ((f"/d{i % 100:03d}/f{i:06d}.csv", b"%d" % i) for i in range(100_000))
    )
    yield s
    s.close()


@pytest.mark.slow
def test_100k_files_in_one_call(big: Store) -> None:
    per_file = compute_datums(big, PfsInput("big", glob="/*/*"))
    assert len(per_file) == 100_000 and len({d.id for d in per_file}) == 100_000
    assert len({d.hash for d in per_file}) == 100_000
    per_dir = compute_datums(big, PfsInput("big", glob="/*"))
    assert len(per_dir) == 100 and {len(d.inputs[0].files) for d in per_dir} == {1000}
    whole = compute_datums(big, PfsInput("big", glob="/"))
    assert len(whole) == 1 and len(whole[0].inputs[0].files) == 100_000
    grouped = compute_datums(big, Group((PfsInput("big", glob="/(*)/*", group_by="$1"),)))
    assert len(grouped) == 100 and {len(d.inputs) for d in grouped} == {1000}
