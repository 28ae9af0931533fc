"""Globs with Pachyderm's meaning (its ohmyglob library): examples and a property test.

The examples follow ohmyglob's readme.md and extglob_test.go, and the cases of Pachyderm's
tests and docs named on each test. The property builds random globs as syntax trees, renders
each one both as glob text and, independently of :mod:`headrace.store.globs`, as the regular
expression ohmyglob's compiler (compiler/compiler.go) makes of it, and checks that the store's
tree walk finds exactly the files and folders that expression matches, with the same groups.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headrace.store import trees
from headrace.store.errors import InvalidPath
from headrace.store.globs import compile_glob, normalize_glob
from headrace.store.trees import EMPTY_ROOT, DirEntry, Entry, MemoryNodeStore


def matches(glob: str, path: str) -> bool:
    return compile_glob(glob).match(path) is not None


@pytest.mark.parametrize(
    ("glob", "yes", "no"),
    [
        # ohmyglob readme.md, with '/' as the separator as Pachyderm compiles globs
        ("/[abc]at", ["/cat", "/bat"], ["/fat", "/at"]),
        ("/[!abc]at", ["/fat"], ["/cat", "/at"]),
        ("/[a-c]at", ["/cat", "/bat"], ["/fat"]),
        ("/{cat,bat,[fr]at}", ["/cat", "/bat", "/fat", "/rat"], ["/at", "/zat"]),
        ("/@(a)", ["/a"], ["/", "/aa"]),
        ("/*(a)", ["/", "/a", "/aaa"], ["/aaX", "/bbb"]),
        ("/+(a)", ["/a", "/aa"], ["/", "/aaX"]),
        ("/?(a)", ["/", "/a"], ["/aa"]),
        ("/!(a)", ["/", "/aa", "/aaX", "/bbb"], ["/a"]),
        ("/?at", ["/cat"], ["/at", "/c/t"]),
        # Pachyderm's beginner tutorial globs (docs-content: getting-started/beginner-tutorial)
        ("/*.{png,jpg,jpeg}", ["/a.png", "/b.jpeg"], ["/a.gif", "/d/a.png"]),
        ("/!(*.*)", ["/images", "/edges"], ["/a.png", "/x/y"]),
        # '**' is '.*': it crosses folders, so '/**/*.csv' needs a folder in between
        ("/**/*.csv", ["/d/x.csv", "/d/e/x.csv"], ["/top.csv"]),
        ("/a/**", ["/a/b", "/a/b/c"], ["/a", "/b/c"]),
        ("/a**", ["/a", "/ab/c"], ["/b"]),
        # '|' alternates inside a group
        ("/(a|b)/*", ["/a/x", "/b/y"], ["/c/z", "/a|b/x"]),
        # outside the construct they belong to, ')', '|', ',' and '}' are literal
        ("/x)y|z,w}", ["/x)y|z,w}"], ["/x"]),
        # a POSIX class; as in ohmyglob its brackets stay in the set
        ("/[[:digit:]]*", ["/1a", "/[a"], ["/a1"]),
    ],
)
def test_glob_examples(glob: str, yes: list[str], no: list[str]) -> None:
    for path in yes:
        assert matches(glob, path), (glob, path)
    for path in no:
        assert not matches(glob, path), (glob, path)


def test_captures_number_groups_by_opening_parenthesis() -> None:
    """ohmyglob readme.md: Capture("test/a*(a|b)/*(*).go") of "test/aaaa/x.go"."""
    compiled = compile_glob("test/a*(a|b)/*(*).go")
    assert compiled.groups == 2
    m = compiled.match("/test/aaaa/x.go")
    assert m is not None and m.groups() == ("aaa", "x")
    assert compile_glob("/{a,b}(*)").groups == 1  # braces do not capture


def test_a_negation_is_a_prefix_test_when_something_follows_it() -> None:
    """ohmyglob compiler.Compile: when text, '*' or '**' follows the first '!(..)', each
    negation refuses its alternatives as a prefix of the rest; otherwise as the whole rest."""
    assert not matches("/!(a)/b", "/abc/b")
    assert matches("/!(a)/b", "/xa/b")
    assert matches("/!(a)", "/abc")


@pytest.mark.parametrize(
    ("glob", "same"),
    [("*.csv", "/*.csv"), ("/in/*/", "/in/*"), ("in/(*)/", "/in/(*)"), ("/", "/"), ("", "/")],
)
def test_leading_and_trailing_slashes_do_not_matter(glob: str, same: str) -> None:
    """Pachyderm cleans globs to '/' + the glob without surrounding '/' (TestJoinTrailingSlash
    expects '/(*)/' to match the files '/(*)' matches)."""
    assert normalize_glob(glob) == same
    assert compile_glob(glob).regex.pattern == compile_glob(same).regex.pattern


@pytest.mark.parametrize(
    ("glob", "problem"),
    [
        ("/[", "never closed"),
        ("/[]", "empty set"),
        ("/(*", "never closed"),
        ("/{a,b", "never closed"),
        ("/()", "must not be empty"),
        ("/^(a)", "not a glob construct"),
        ("/a\\", "escapes nothing"),
        ("/a//b", "empty segment"),
        ("/a/../b", "'..' is not allowed"),
        ("/a\tb", "control character"),
        ("/({*|b})", "another construct"),
    ],
)
def test_malformed_globs_are_refused(glob: str, problem: str) -> None:
    """ohmyglob accepts some of these and then matches oddly; headrace refuses them."""
    with pytest.raises(InvalidPath, match=re.escape(problem)):
        compile_glob(glob)


# --- the property ----------------------------------------------------------------------------

NAMES = ["a", "b", "ab", "ba", "a.b", "b.a", "aa", ".a"]


def _lit() -> st.SearchStrategy[tuple[str, str]]:
    return st.text("ab.", min_size=1, max_size=2).map(lambda t: (t, re.escape(t)))


def _simple() -> st.SearchStrategy[tuple[str, str]]:
    """An element inside a group or braces: literal text or '*'."""
    return st.one_of(_lit(), st.just(("*", "[^/]*")))


@st.composite
def _element(draw: st.DrawFn) -> tuple[str, str, str]:
    """One glob element: (kind, glob text, reference regex)."""
    kind = draw(
        st.sampled_from(["lit", "star", "single", "class", "brace", "group", "super", "neg"])
    )
    if kind == "lit":
        text, regex = draw(_lit())
        return kind, text, regex
    if kind == "star":
        return kind, "*", "[^/]*"
    if kind == "single":
        return kind, "?", "[^/]"
    if kind == "class":
        chars = "".join(sorted(draw(st.sets(st.sampled_from("ab."), min_size=1))))
        negated = draw(st.booleans())
        body = re.escape(chars)
        return (
            kind,
            ("[!" if negated else "[") + chars + "]",
            ("[^" if negated else "[") + body + "]",
        )
    if kind == "super":
        return kind, "**", ".*"
    alternative = st.lists(_simple(), min_size=1, max_size=2).filter(
        lambda alt: "".join(t for t, _ in alt).count("**") == 0  # '*' then '*' reads as '**'
    )
    alternatives = draw(st.lists(alternative, min_size=1, max_size=3))
    texts = ["".join(t for t, _ in alt) for alt in alternatives]
    regexes = ["".join(r for _, r in alt) for alt in alternatives]
    if kind == "brace":
        return kind, "{" + ",".join(texts) + "}", "(?:" + "|".join(regexes) + ")"
    if kind == "neg":
        return kind, "!(" + "|".join(texts) + ")", "|".join(regexes)  # finished by _render
    quantifier = draw(st.sampled_from("@?*+"))
    inner = "|".join(regexes)
    regex = {
        "@": f"({inner})",
        "?": f"((?:{inner})?)",
        "*": f"((?:{inner})*)",
        "+": f"((?:{inner})+)",
    }
    return kind, quantifier + "(" + "|".join(texts) + ")", regex[quantifier]


def _render(segments: list[list[tuple[str, str, str]]]) -> tuple[str, str]:
    """The glob text and the reference regex of a glob's segments."""
    flat = [e for k, seg in enumerate(segments) for e in ([("lit", "/", "/")] if k else []) + seg]
    first_neg = next((i for i, e in enumerate(flat) if e[0] == "neg"), None)
    bounded = (
        first_neg is not None
        and any(  # the '/' between segments is text too
            e[0] in ("lit", "star", "super") for e in flat[first_neg + 1 :]
        )
    )
    glob, regex = [], []
    for seg in segments:
        glob.append("/")
        regex.append("/")
        for kind, text, rx in seg:
            glob.append(text)
            if kind == "neg":
                end = "" if bounded else r"\Z"
                alts = "|".join(a + end for a in rx.split("|"))
                rx = f"((?:(?!(?:{alts}))[^/]*))"
            regex.append(rx)
    return "".join(glob), "".join(regex)


def _fine(seg: list[tuple[str, str, str]]) -> bool:
    """Leave out element orders whose text would read as another construct ('*' then '*' is
    '**'; a lone '.' or '..' segment is refused)."""
    kinds = [k for k, _, _ in seg]
    texts = "".join(t for _, t, _ in seg)
    if texts in (".", ".."):
        return False
    return all(
        not (a in ("star", "super") and b in ("star", "super")) for a, b in zip(kinds, kinds[1:])
    )


@pytest.mark.slow
@settings(max_examples=200, deadline=None)
@given(
    segments=st.lists(
        st.lists(_element(), min_size=1, max_size=3).filter(_fine), min_size=1, max_size=3
    ),
    paths=st.lists(
        st.lists(st.sampled_from(NAMES), min_size=1, max_size=4).map(lambda n: "/" + "/".join(n)),
        max_size=25,
    ),
)
def test_store_glob_agrees_with_a_reference_translation(segments, paths) -> None:  # type: ignore[no-untyped-def]
    glob, reference = _render(segments)
    files = sorted({p for p in paths if not any(q.startswith(p + "/") for q in paths)})
    store = MemoryNodeStore()
    key = lambda p: p.replace("/", "\x00")  # noqa: E731  (tree order: '/' sorts first)
    root = (
        trees.build(store, [Entry(p, "h", 1) for p in sorted(files, key=key)])
        if files
        else EMPTY_ROOT
    )
    candidates = set(files) | {p[:i] for p in files for i in range(1, len(p)) if p[i] == "/"}
    ref = re.compile(reference)
    want = sorted((p for p in candidates if ref.fullmatch(p)), key=key)
    got = [*trees.glob(store, root, glob)]
    assert [e.path for e in got] == want, (glob, reference)
    assert all(isinstance(e, DirEntry) == (e.path not in files) for e in got)
    compiled = compile_glob(glob)
    for path in want:
        m, r = compiled.match(path), ref.fullmatch(path)
        assert m is not None and r is not None and m.groups() == r.groups(), (glob, path)
