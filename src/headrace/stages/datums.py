"""Datums: how a stage's input splits into units of work, and each unit's id and hash.

This module owns datum computation only. Inputs are described by the small frozen dataclasses
here (:class:`PfsInput`, :class:`Cross`, :class:`Union`, :class:`Join`, :class:`Group`), kept
independent of the spec parser: ``headrace.stages.spec`` maps a validated spec onto them.

Semantics follow Pachyderm's:

- a **pfs** input's datums are its glob's matches in one commit, in tree order: a matched file is
  a datum holding that file, a matched directory a datum holding every file under it, and ``/``
  one datum holding the whole commit. Globs have Pachyderm's syntax and meaning
  (:mod:`headrace.store.globs`); their ``(..)`` groups, numbered by their opening parenthesis,
  capture what ``join_on`` and ``group_by`` refer to.
- **cross**: the cartesian product of its inputs' datums (first input outermost);
- **union**: its inputs' datums one after another (a datum produced twice is kept once);
- **join**: pfs inputs whose ``join_on`` key (``$1``, ``$2``, ``${1}``... expanded from each
  match's capture groups; literal text kept) is equal make one datum per combination of their
  matches; a key missing from some input makes no datum, unless inputs with ``outer_join``
  have matches for it: those matches alone then make datums (an inner input's match is left
  out, as Pachyderm's ``processMergeTask`` does);
- **group**: every match of its pfs inputs with the same ``group_by`` key makes one datum. A
  join among its inputs contributes the matches of each of its datums, each under the key its
  own input's ``group_by`` makes (Pachyderm's group iterator keys every input of a child datum
  separately); a match that is in several join datums is in its group once.

A :class:`Datum` holds one :class:`DatumInput` per match it is made of (its input's name, the
matched path, the files and the input's key). Its ``id`` comes from the input keys (the names,
unless a union's inputs share one) and matched paths only, so it is the same in every commit;
its ``hash`` also covers the files' paths and content hashes and the stage's ``salt`` and
``version``, so it changes exactly when what the datum would read changes: a datum whose hash
succeeded before can be skipped.

Cost: each pfs input is read with one glob (and, when directories match, one walk) of one
resolved commit; nothing is read per file or per datum.
"""

from __future__ import annotations

import contextlib
import gc
import itertools
import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import NamedTuple

import blake3

from headrace.stages.spec import CronInput, Input, PfsInput
from headrace.stages.spec import CrossInput as Cross
from headrace.stages.spec import GroupInput as Group
from headrace.stages.spec import JoinInput as Join
from headrace.stages.spec import UnionInput as Union
from headrace.store.errors import FileNotFound, InvalidPath
from headrace.store.globs import CompiledGlob, compile_glob
from headrace.store.records import FileInfo
from headrace.store.store import Store

__all__ = [
    "EMPTY_INPUT",
    "Cross",
    "Datum",
    "DatumInput",
    "Group",
    "Input",
    "Join",
    "PfsInput",
    "Union",
    "capture_key",
    "compute_datums",
    "datum_id",
    "datums_at",
    "input_keys",
    "input_names",
    "input_reads",
    "matches_of_changes",
    "resolve_commits",
]


# ---------------------------------------------------------------------------------------------
# Input descriptions


# ---------------------------------------------------------------------------------------------
# Datums


class DatumInput(NamedTuple):
    """One glob match in a datum: the input's ``name``, its ``files`` and the matched ``path``
    (a file, or a directory whose files are all included), and the ``key`` of the input it came
    from (see :func:`input_keys`; the name unless a union's inputs share it)."""

    name: str
    files: tuple[FileInfo, ...]
    path: str
    key: str


class Datum(NamedTuple):
    """A unit of work: ``id`` (stable across commits), its ``inputs`` and its content ``hash``."""

    id: str
    inputs: tuple[DatumInput, ...]
    hash: str


def input_names(input: Input) -> list[str]:
    """The names of the pfs inputs in ``input``, in order (a name shared in a union once).

    >>> input_names(Cross((PfsInput("a"), PfsInput("b", name="bee"))))
    ['a', 'bee']
    """
    return list(dict.fromkeys(p.name for p in _pfs_inputs(input)))


def input_keys(input: Input) -> list[str]:
    """The keys of what ``input`` reads, in order: a job records the commit it read for each.

    An input's key is its name, unless the inputs of a union share that name (as Pachyderm
    allows, so that the code reads one folder whichever input a datum comes from) and read
    different repos or branches: each of those is then ``name:repo@branch``.

    >>> input_keys(Union((PfsInput("a", name="in"), PfsInput("b", name="in"), PfsInput("c"))))
    ['in:a@master', 'in:b@master', 'c']
    """
    return list(dict.fromkeys(_leaf_keys(input).values()))


def input_reads(input: Input) -> list[tuple[str, str, str]]:
    """``(key, repo, branch)`` of each input key of ``input`` (see :func:`input_keys`).

    >>> input_reads(Union((PfsInput("a", name="in"), PfsInput("b", name="in"))))
    [('in:a@master', 'a', 'master'), ('in:b@master', 'b', 'master')]
    """
    out: dict[str, tuple[str, str, str]] = {}
    for pfs, key in _leaf_keys(input).items():
        out.setdefault(key, (key, pfs.repo, pfs.branch))
    return list(out.values())


def _leaf_keys(input: Input) -> dict[PfsInput, str]:
    reads: dict[str, set[tuple[str, str]]] = {}
    leaves = list(_pfs_inputs(input))
    for pfs in leaves:
        reads.setdefault(pfs.name, set()).add((pfs.repo, pfs.branch))
    return {
        pfs: pfs.name if len(reads[pfs.name]) == 1 else f"{pfs.name}:{pfs.repo}@{pfs.branch}"
        for pfs in leaves
    }


def resolve_commits(
    store: Store, input: Input, commits: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The commit id each pfs input of ``input`` reads, by input key (:func:`input_keys`).

    ``commits`` overrides an input's branch: a value is a commit id or branch of its repo
    (``"3f2a..."``, ``"dev"``) or a full reference (``"repo@dev^1"``).
    """
    return _resolve(store, input, _leaf_keys(input), commits)


def _resolve(
    store: Store, input: Input, keys: Mapping[PfsInput, str], commits: Mapping[str, str] | None
) -> dict[str, str]:
    _check(input)
    commits = dict(commits or {})
    unknown = sorted(set(commits) - set(keys.values()))
    if unknown:
        raise ValueError(
            f"compute_datums: commits names inputs {unknown} that are not in the stage's "
            f"input (its inputs are {input_keys(input)})"
        )
    out: dict[str, str] = {}
    for pfs, key in keys.items():
        if key in out:
            continue
        ref = commits.get(key, pfs.branch)
        if ref == EMPTY_INPUT:
            out[key] = EMPTY_INPUT
            continue
        if "@" not in ref:
            ref = f"{pfs.repo}@{ref}"
        out[key] = store.inspect_commit(ref).id
    return out


def compute_datums(
    store: Store,
    input: Input,
    commits: Mapping[str, str] | None = None,
    salt: str = "",
    version: str = "",
) -> list[Datum]:
    """The datums of ``input`` in ``store``, in a deterministic order.

    ``commits`` maps input names to the commit (or branch, or reference) to read instead of
    the input's own branch; see :func:`resolve_commits`. ``salt`` and ``version`` (the stage's)
    enter every datum's hash, so changing either reruns every datum.

    >>> import tempfile
    >>> store = Store.open(tempfile.mkdtemp())
    >>> _ = store.create_repo("logs")
    >>> files = [("/a/1.txt", b"1"), ("/a/2.txt", b"2"), ("/b.txt", b"")]
    >>> _ = store.put_files("logs@master", files)
    >>> for d in compute_datums(store, PfsInput("logs", glob="/*")):
    ...     print(d.inputs[0].path, [f.path for f in d.inputs[0].files])
    /a ['/a/1.txt', '/a/2.txt']
    /b.txt ['/b.txt']
    """
    keys = _leaf_keys(input)
    resolved = _resolve(store, input, keys, commits)
    leaves = {pfs: (resolved[key], key) for pfs, key in keys.items()}
    with _gc_paused():
        datums = _make_datums(_combine(store, input, leaves), _hash_prefix(salt, version))
    if not any(isinstance(i, Union) for i in _walk(input)):
        return datums
    seen: set[str] = set()  # a union of overlapping inputs can reach the same matches twice
    unique = []
    for d in datums:
        if d.id not in seen:
            seen.add(d.id)
            unique.append(d)
    return unique


def matches_of_changes(pfs: PfsInput, paths: Iterable[str]) -> set[str] | None:
    """The glob matches of ``pfs`` that contain any of the changed file ``paths``, whether the
    match still exists or not; None for a glob this cannot answer (with ``**``, a match's
    depth is not fixed).

    A glob of k segments without ``**`` (or another construct that can match ``/``) matches
    paths of exactly k segments: a changed file of k segments is its own match (if it
    matches), a deeper one lies in the directory match of its first k.

    >>> sorted(matches_of_changes(PfsInput("logs", glob="/*"), ["/a/1.txt", "/b.txt"]))
    ['/a', '/b.txt']
    >>> matches_of_changes(PfsInput("logs", glob="/**"), ["/a"]) is None
    True
    """
    compiled = _compiled(pfs)
    if not compiled.fixed_depth:
        return None
    if compiled.pattern == "/":
        return {"/"}
    depth = compiled.depth
    fullmatch = compiled.regex.fullmatch
    out: set[str] = set()
    for path in paths:
        segments = path.strip("/").split("/")
        if len(segments) < depth:
            continue
        candidate = "/" + "/".join(segments[:depth])
        if candidate not in out and fullmatch(candidate):
            out.add(candidate)
    return out


def capture_key(glob: str, template: str, path: str) -> str:
    """The ``join_on`` / ``group_by`` key ``template`` makes of ``path``'s match of ``glob``
    ("" when the path does not match).

    >>> capture_key("/(*)-(*).csv", "$2/$1", "/a-b.csv")
    'b/a'
    """
    compiled = compile_glob(glob)
    m = compiled.regex.fullmatch(path)
    if m is None:
        return ""
    return _key_maker(template, compiled.groups, path, "key")(m.groups())


def datum_id(name: str, path: str) -> str:
    """The id of the datum of one pfs input's match (what :func:`compute_datums` gives it).

    >>> import tempfile
    >>> store = Store.open(tempfile.mkdtemp())
    >>> _ = store.create_repo("logs")
    >>> _ = store.put_files("logs@master", [("/a/1.txt", b"1")])
    >>> [d.id for d in compute_datums(store, PfsInput("logs", "/*"))] == [datum_id("logs", "/a")]
    True
    """
    return blake3.blake3(f"{name}\x00{path}".encode()).hexdigest(16)


def datums_at(
    store: Store,
    pfs: PfsInput,
    commit: str,
    matches: Iterable[str],
    salt: str = "",
    version: str = "",
) -> dict[str, Datum]:
    """The datums of a single pfs input at the given match paths of ``commit``, by match path
    (a match that no longer holds any file is left out): the same datums, ids and hashes
    :func:`compute_datums` would make for them, at a cost that grows with the matches only."""
    ref = f"{pfs.repo}@{commit}"
    wanted = sorted(matches)
    files = store.lookup_files(ref, [m for m in wanted if m != "/"])
    parts: list[_Parts] = []
    for match in wanted:
        found = files.get(match)
        if found is not None:  # a file now
            parts.append((tuple.__new__(DatumInput, (pfs.name, (found,), match, pfs.name)),))
            continue
        try:
            under = tuple(store.walk_files(ref, prefix=match))
        except FileNotFound:  # nothing there any more: the datum vanished
            under = ()
        if under:
            parts.append((tuple.__new__(DatumInput, (pfs.name, under, match, pfs.name)),))
    return {d.inputs[0].path: d for d in _make_datums(parts, _hash_prefix(salt, version))}


# ---------------------------------------------------------------------------------------------
# Combining inputs

_Parts = tuple[DatumInput, ...]
_Leaves = Mapping[PfsInput, tuple[str, str]]  # each pfs input's commit and key

EMPTY_INPUT = ""  # the "commit" of an input branch that has none yet: no matches


def _pfs_inputs(input: Input) -> Iterable[PfsInput]:
    if isinstance(input, PfsInput):
        yield input
    elif not isinstance(input, CronInput):
        for child in input.inputs:
            yield from _pfs_inputs(child)


def _walk(input: Input) -> Iterable[Input]:
    yield input
    if not isinstance(input, PfsInput | CronInput):
        for child in input.inputs:
            yield from _walk(child)


def _check(input: Input) -> None:
    """Refuse input trees whose datums would be ambiguous or that cannot be computed."""
    if isinstance(input, PfsInput):
        return
    if isinstance(input, CronInput):
        raise ValueError(
            f"cron input {input.name!r} makes ticks, not datums of repo files; the scheduler "
            "turns each tick into a commit of a cron repo, which a pfs input then reads"
        )
    kind = type(input).__name__.lower().removesuffix("input")
    if not isinstance(input.inputs, tuple) or not input.inputs:
        raise ValueError(f"a {kind} input needs a non-empty tuple of inputs")
    for child in input.inputs:
        if isinstance(input, Group) and isinstance(child, Join):
            for leaf in child.inputs:
                if isinstance(leaf, PfsInput) and not leaf.group_by:
                    raise ValueError(
                        f"input {leaf.name!r} of a join inside a group needs group_by as well "
                        "as join_on (such as '$1', a capture group of its glob)"
                    )
        elif isinstance(input, Join | Group) and not isinstance(child, PfsInput):
            allowed = "pfs and join inputs" if isinstance(input, Group) else "pfs inputs"
            raise ValueError(
                f"a {kind} input combines {allowed} only; got a {type(child).__name__}: "
                f"combine it with the {kind} in a cross or union instead"
            )
        _check(child)
    if isinstance(input, Union):
        return
    seen: dict[str, int] = {}
    for i, child in enumerate(input.inputs):
        for name in input_names(child):
            if name in seen and seen[name] != i:
                raise ValueError(
                    f"input name {name!r} appears twice in a {kind} input, so its datums "
                    "could not tell the inputs apart; give them distinct names"
                )
            seen[name] = i
    for pfs in input.inputs:
        if isinstance(input, Join) and isinstance(pfs, PfsInput) and not pfs.join_on:
            raise ValueError(
                f"join input {pfs.name!r} needs join_on (such as '$1', a capture group of "
                "its glob like '/(*).csv')"
            )
        if isinstance(input, Group) and isinstance(pfs, PfsInput) and not pfs.group_by:
            raise ValueError(
                f"group input {pfs.name!r} needs group_by (such as '$1', a capture group of "
                "its glob like '/(*)-*.csv')"
            )


def _combine(store: Store, input: Input, leaves: _Leaves) -> Iterable[_Parts]:
    if isinstance(input, PfsInput):
        return [(part,) for part in _matches(store, input, *leaves[input])]
    if isinstance(input, Union):
        return itertools.chain.from_iterable(
            _combine(store, child, leaves) for child in input.inputs
        )
    if isinstance(input, Cross):
        lists = [list(_combine(store, child, leaves)) for child in input.inputs]
        return (tuple(itertools.chain.from_iterable(p)) for p in itertools.product(*lists))
    if isinstance(input, Join):
        return _join(store, input, leaves)
    assert isinstance(input, Group), "cron inputs are refused by _check"
    return _group(store, input, leaves)


def _keyed(
    store: Store, pfs: PfsInput, leaf: tuple[str, str], template: str, what: str
) -> dict[str, list[DatumInput]]:
    """``pfs``'s matches by the key ``template`` makes of their capture groups."""
    compiled = _compiled(pfs)
    expand = _key_maker(template, compiled.groups, pfs.name, what)
    fullmatch = compiled.regex.fullmatch
    out: dict[str, list[DatumInput]] = {}
    for part in _matches(store, pfs, *leaf):
        m = fullmatch(part.path)
        assert m is not None, "the store globs with the same compiled regex"
        out.setdefault(expand(m.groups()), []).append(part)
    return out


_NO_MATCHES: list[DatumInput] = []


def _join(store: Store, input: Join, leaves: _Leaves) -> Iterable[_Parts]:
    keyed = []
    for pfs in input.inputs:
        assert pfs.join_on is not None
        keyed.append(_keyed(store, pfs, leaves[pfs], pfs.join_on, "join_on"))
    outer = [pfs.outer_join for pfs in input.inputs]
    for key in sorted(set().union(*keyed)):
        lists = [k.get(key, _NO_MATCHES) for k in keyed]
        if _NO_MATCHES in lists:  # only the outer inputs' matches make datums then
            lists = [found for found, is_outer in zip(lists, outer) if found and is_outer]
            if not lists:
                continue
        if all(len(found) == 1 for found in lists):
            yield tuple([found[0] for found in lists])
        else:
            yield from itertools.product(*lists)


def _group(store: Store, input: Group, leaves: _Leaves) -> Iterable[_Parts]:
    keyed = []
    for child in input.inputs:
        if isinstance(child, Join):
            keyed.append(_joined_by_group(store, child, leaves))
            continue
        assert child.group_by is not None
        keyed.append(_keyed(store, child, leaves[child], child.group_by, "group_by"))
    for key in sorted(set().union(*keyed)):
        yield tuple(itertools.chain.from_iterable(k.get(key, ()) for k in keyed))


def _joined_by_group(store: Store, join: Join, leaves: _Leaves) -> dict[str, list[DatumInput]]:
    """The matches of ``join``'s datums by the ``group_by`` key of the input each belongs to,
    in datum order, each match once."""
    makers = {pfs.name: _group_key_of(pfs) for pfs in join.inputs}
    out: dict[str, list[DatumInput]] = {}
    seen: set[tuple[str, str]] = set()
    for parts in _join(store, join, leaves):
        for part in parts:
            if (part.name, part.path) in seen:
                continue
            seen.add((part.name, part.path))
            out.setdefault(makers[part.name](part.path), []).append(part)
    return out


def _group_key_of(pfs: PfsInput) -> Callable[[str], str]:
    """The function giving a match path of ``pfs`` its ``group_by`` key."""
    assert pfs.group_by is not None
    compiled = _compiled(pfs)
    expand = _key_maker(pfs.group_by, compiled.groups, pfs.name, "group_by")
    fullmatch = compiled.regex.fullmatch

    def key(path: str) -> str:
        m = fullmatch(path)
        assert m is not None, "the store globs with the same compiled regex"
        return expand(m.groups())

    return key


# ---------------------------------------------------------------------------------------------
# One pfs input


def _matches(store: Store, pfs: PfsInput, commit: str, key: str) -> list[DatumInput]:
    """``pfs``'s glob matches in ``commit``, each with its files, in tree order; ``key`` is
    the input's key (:func:`input_keys`)."""
    if commit == EMPTY_INPUT:
        return []
    ref = f"{pfs.repo}@{commit}"
    compiled = _compiled(pfs)
    found = store.glob_files(ref, compiled.pattern)
    name = pfs.name
    new = tuple.__new__  # DatumInput(...) without the Python-level __new__: once per match
    if not any(f.type == "dir" for f in found):
        return [new(DatumInput, (name, (f,), f.path, key)) for f in found]
    files = list(store.walk_files(ref, prefix=compiled.literal_prefix))
    keys = [f.path.replace("/", "\x00") for f in files]  # tree order: '/' sorts first
    out = []
    for f in found:
        if f.type != "dir":
            out.append(DatumInput(name, (f,), f.path, key))
            continue
        if f.path == "/":
            out.append(DatumInput(name, tuple(files), "/", key))
            continue
        at = f.path.replace("/", "\x00")
        lo, hi = bisect_left(keys, at + "\x00"), bisect_left(keys, at + "\x01")
        out.append(DatumInput(name, tuple(files[lo:hi]), f.path, key))
    return out


def _compiled(pfs: PfsInput) -> CompiledGlob:
    """``pfs``'s compiled glob; a malformed one is a ValueError naming the input."""
    try:
        return compile_glob(pfs.glob)
    except InvalidPath as err:
        raise ValueError(f"input {pfs.name!r}: {err}") from None


_GROUP_REF = re.compile(r"\$(?:(\d+)|\{(\d+)\})")


def _key_maker(
    template: str, ngroups: int, name: str, what: str
) -> Callable[[tuple[str | None, ...]], str]:
    """A function making the key ``template`` describes from a match's groups."""
    if ngroups == 0:
        raise ValueError(
            f"input {name!r} has {what} {template!r} but its glob has no capture group; "
            "write one with parentheses, e.g. '/(*).csv'"
        )
    pieces: list[str | int] = []
    pos = 0
    for m in _GROUP_REF.finditer(template):
        if m.start() > pos:
            pieces.append(template[pos : m.start()])
        index = int(m.group(1) or m.group(2))
        if not 1 <= index <= ngroups:
            raise ValueError(
                f"input {name!r}: {what} {template!r} refers to ${index} but its glob has "
                f"{ngroups} capture group(s)"
            )
        pieces.append(index - 1)
        pos = m.end()
    if pos < len(template):
        pieces.append(template[pos:])
    if len(pieces) == 1 and isinstance(pieces[0], int):
        only = pieces[0]
        return lambda groups: groups[only] or ""
    return lambda groups: "".join(p if isinstance(p, str) else groups[p] or "" for p in pieces)


# ---------------------------------------------------------------------------------------------
# Ids and hashes


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: building 100k datums allocates several objects each
    and none of them cyclic, yet each allocation burst triggers collections that rescan the
    growing lists (more than half the time of a large computation)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _hash_prefix(salt: str, version: str) -> str:
    return f"{len(salt)}:{salt}{len(version)}:{version}\x03"


def _make_datums(combos: Iterable[_Parts], prefix: str) -> list[Datum]:
    """Datums of the given combinations of matches, with their ids and hashes.

    The id hashes each part's ``name NUL path`` (parts joined by ``\\x02``); the hash hashes
    ``prefix`` (salt and version, length-prefixed) then, per part, ``name NUL path NUL``,
    ``file path NUL content hash \\x01`` per file and ``\\x02``. Names, paths and
    content hashes hold no control characters (the store refuses them), so no two different
    datums encode alike. This loop runs once per datum: it is kept flat on purpose.
    """
    b3 = blake3.blake3
    new = tuple.__new__
    out: list[Datum] = []
    append = out.append
    memo: dict[int, tuple[str, str]] = {}  # by id(): every part stays alive in ``out``
    for parts in combos:
        if len(parts) == 1:
            _, files, path, name = parts[0]  # ids and hashes use the input's key
            key = name + "\x00" + path
            if len(files) == 1:
                f = files[0]
                text = f"{prefix}{key}\x00{f[0]}\x00{f[3]}\x01\x02"
            else:
                listing = "".join([f"{f[0]}\x00{f[3]}\x01" for f in files])
                text = f"{prefix}{key}\x00{listing}\x02"
        else:
            keys = []
            texts = [prefix]
            for p in parts:
                done = memo.get(id(p))  # a cross repeats each part in many datums
                if done is None:
                    _, files, path, name = p
                    part = name + "\x00" + path
                    if len(files) == 1:
                        f = files[0]
                        done = memo[id(p)] = (part, f"{part}\x00{f[0]}\x00{f[3]}\x01\x02")
                    else:
                        listing = "".join([f"{f[0]}\x00{f[3]}\x01" for f in files])
                        done = memo[id(p)] = (part, f"{part}\x00{listing}\x02")
                keys.append(done[0])
                texts.append(done[1])
            key = "\x02".join(keys)
            text = "".join(texts)
        datum_id = b3(key.encode()).hexdigest(16)
        append(new(Datum, (datum_id, parts, b3(text.encode()).hexdigest())))
    return out
