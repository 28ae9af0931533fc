"""Glob patterns with Pachyderm's meaning: parsing one and compiling it to a regular expression.

This module owns the one glob translator of headrace. The store's tree walk
(:func:`headrace.store.treequery.glob`), ``file glob`` on the command line and the datums of a
stage (their capture groups for ``join_on`` and ``group_by``) all use :func:`compile_glob`, so
they cannot disagree.

Pachyderm compiles globs with its ``ohmyglob`` library (a fork of ``gobwas/glob``) to a regular
expression matched against the whole absolute path, with ``/`` as the separator. The same
syntax and meaning here:

- ``*`` any run of characters except ``/``; ``**`` any run of characters, ``/`` included (so
  ``/**/*.csv`` needs at least one folder in between, and ``/a/**`` is everything under ``/a``);
  ``?`` one character except ``/``;
- ``[abc]``, ``[a-z]``, ``[!abc]`` / ``[^abc]`` one character of (or not of) a set, with the
  POSIX classes ``[[:digit:]]``...; as in ohmyglob, a negated set may match ``/``;
- ``{png,jpg}`` alternatives (not captured);
- ``(a|b)`` and ``@(a|b)`` one of the alternatives, ``?(..)`` zero or one, ``*(..)`` any number,
  ``+(..)`` one or more, ``!(..)`` anything but them; each of these is a capture group, numbered
  by its opening parenthesis (``$1``, ``$2``... in ``join_on`` / ``group_by``);
- ``\\`` makes the next character literal; ``)``, ``|``, ``,`` and ``}`` outside the construct
  they close or separate are literal characters;
- a glob is made absolute and loses a trailing ``/``: ``*.csv``, ``/*.csv`` and ``/*.csv/`` are
  the same glob (Pachyderm has no folder-only glob).

Unlike ohmyglob, which accepts some malformed globs and then matches oddly, this module refuses
them (:class:`~headrace.store.errors.InvalidPath`): an unclosed ``[``, ``{`` or ``(``, an empty
set ``[]`` or group ``()``, a trailing ``\\``, an empty path segment, ``.`` or ``..``, a
separator (``,`` / ``|``) that belongs to another construct than the innermost one, and
control characters.

A compiled glob also says how the store can walk less than the whole tree: the literal leading
folders (:attr:`CompiledGlob.literal`) bound the key range read, and the leading segments that
cannot match a ``/`` (:attr:`CompiledGlob.prefix_matchers`) let a walk skip folders whose names
already fail.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from headrace.store.errors import InvalidPath

__all__ = ["CompiledGlob", "compile_glob", "normalize_glob"]

_POSIX = {
    ":alnum:": "0-9A-Za-z",
    ":alpha:": "A-Za-z",
    ":ascii:": "\x00-\x7f",
    ":blank:": "\t ",
    ":cntrl:": "\x00-\x1f\x7f",
    ":digit:": "0-9",
    ":graph:": "!-~",
    ":lower:": "a-z",
    ":print:": " -~",
    ":punct:": "!-/:-@[-`{-~",
    ":space:": "\t\n\v\f\r ",
    ":upper:": "A-Z",
    ":word:": "0-9A-Za-z_",
    ":xdigit:": "0-9A-Fa-f",
}

# Markers placed in the regex while compiling (control characters never occur in a glob: they
# are refused), resolved once the whole regex is known, as ohmyglob does for '!(...)'.
_NEG = "\x00"  # the end of one alternative of a '!(...)'
_BOUND = "\x01"  # after text, '*' and '**': what bounds a '!(...)''s scope

_BASIC_BREAKERS = frozenset("?*[{(")
_EXTENDED_BREAKERS = _BASIC_BREAKERS | frozenset("@!^+")
_CAPTURE_BREAKERS = _EXTENDED_BREAKERS | frozenset(")|")
_TERMS_BREAKERS = _EXTENDED_BREAKERS | frozenset("},")


@dataclass(frozen=True)
class CompiledGlob:
    """A glob compiled by :func:`compile_glob`.

    ``pattern`` is the normalised glob (absolute, no trailing ``/``); ``regex`` matches the
    absolute paths it matches and holds its capture groups (``groups`` of them). ``literal``
    is the number of leading path segments that are plain names (``literal_names``, escapes
    resolved), and ``exact`` whether the
    whole glob is a plain path. ``prefix_matchers[d - 1]`` tells whether a folder of ``d``
    segments can lead to a match, for the leading segments that cannot match ``/``; when it
    covers every segment (``fixed_depth``), every match has exactly ``depth`` segments.
    """

    pattern: str
    regex: re.Pattern[str]
    groups: int
    literal: int
    literal_names: tuple[str, ...]
    exact: bool
    depth: int
    prefix_matchers: tuple[Callable[[str], object], ...]

    @property
    def fixed_depth(self) -> bool:
        """Whether every match has exactly ``depth`` segments (no ``**`` and no ``/`` inside
        a construct or a negated set)."""
        return len(self.prefix_matchers) == self.depth

    @property
    def literal_prefix(self) -> str:
        """The folder named by the literal leading segments (``/`` when there are none)."""
        return "/" + "/".join(self.literal_names)

    def match(self, path: str) -> re.Match[str] | None:
        """The match of an absolute path (``/a/b``), or None."""
        return self.regex.fullmatch(path)


def normalize_glob(pattern: str) -> str:
    """The absolute form of a glob, without a trailing ``/``.

    >>> normalize_glob("*.csv"), normalize_glob("/in/*/"), normalize_glob("/")
    ('/*.csv', '/in/*', '/')
    """
    stripped = pattern.strip("/")
    if pattern.endswith("\\/") and stripped.endswith("\\"):
        stripped += "/"  # an escaped final '/' is part of the name
    return "/" + stripped


# ---------------------------------------------------------------------------------------------
# Lexing and parsing (ohmyglob's grammar, see the module docstring)

# Nodes: ("text", str) | ("any",) | ("super",) | ("single",) | ("list", chars, negated)
#        | ("anyof", [pattern, ...]) | ("capture", quantifier, [pattern, ...]);
# a pattern is a list of nodes.
_Node = tuple


class _Parser:
    def __init__(self, glob: str, shown: str) -> None:
        self.s = glob
        self.shown = shown
        self.i = 0
        # open constructs, innermost last: (kind, node) where kind is "{" or "("
        self.stack: list[tuple[str, list[list[_Node]]]] = []
        self.root: list[_Node] = []
        self.current = self.root

    def fail(self, why: str) -> InvalidPath:
        return InvalidPath(f"invalid glob {self.shown!r}: {why}")

    def in_terms(self) -> bool:
        return any(kind == "{" for kind, _ in self.stack)

    def in_capture(self) -> bool:
        return any(kind == "(" for kind, _ in self.stack)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.s[j] if j < len(self.s) else ""

    def open(self, kind: str, node: _Node, alternatives: list[list[_Node]]) -> None:
        self.current.append(node)
        alternatives.append([])
        self.stack.append((kind, alternatives))
        self.current = alternatives[-1]

    def open_capture(self, quantifier: str) -> None:
        if quantifier == "^":
            raise self.fail("'^(' is not a glob construct; write '!(' for a negation")
        alternatives: list[list[_Node]] = []
        self.open("(", ("capture", quantifier, alternatives), alternatives)

    def separate(self, kind: str, char: str) -> None:
        if not self.stack or self.stack[-1][0] != kind:
            raise self.fail(
                f"'{char}' separates alternatives of another construct; write '\\{char}'"
            )
        alternatives = self.stack[-1][1]
        alternatives.append([])
        self.current = alternatives[-1]

    def close(self, kind: str, char: str) -> None:
        if not self.stack or self.stack[-1][0] != kind:
            raise self.fail(f"'{char}' closes another construct than the innermost one")
        alternatives = self.stack.pop()[1]
        if kind == "(" and alternatives == [[]]:
            raise self.fail("a group '()' must not be empty")
        self.current = self.stack[-1][1][-1] if self.stack else self.root

    def parse(self) -> list[_Node]:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            self.i += 1
            nxt = self.peek()
            if c == "{":
                alternatives: list[list[_Node]] = []
                self.open("{", ("anyof", alternatives), alternatives)
            elif c == "," and self.in_terms():
                self.separate("{", c)
            elif c == "}" and self.in_terms():
                self.close("{", c)
            elif c == "|" and self.in_capture():
                self.separate("(", c)
            elif c == "[":
                self.range()
            elif c == "(":
                self.open_capture("@")
            elif c in "@!^+" and nxt == "(":
                self.i += 1
                self.open_capture(c)
            elif c in "@!^+":
                self.i -= 1
                self.text(_BASIC_BREAKERS)
            elif c == ")" and self.in_capture():
                self.close("(", c)
            elif c == "?":
                if nxt == "(":
                    self.i += 1
                    self.open_capture("?")
                else:
                    self.current.append(("single",))
            elif c == "*":
                if nxt == "*" and self.peek(1) != "(":
                    self.i += 1
                    self.current.append(("super",))
                elif nxt == "(":
                    self.i += 1
                    self.open_capture("*")
                else:
                    self.current.append(("any",))
            else:
                self.i -= 1
                if self.in_terms():
                    self.text(_TERMS_BREAKERS)
                elif self.in_capture():
                    self.text(_CAPTURE_BREAKERS)
                else:
                    self.text(_EXTENDED_BREAKERS)
        if self.stack:
            what = "'{' alternatives" if self.stack[-1][0] == "{" else "a '(' group"
            raise self.fail(f"{what} never closed; write '\\{self.stack[-1][0]}' for a literal one")
        return self.root

    def text(self, breakers: frozenset[str]) -> None:
        """Literal text up to the next breaker (the caller never starts on one)."""
        s, out = self.s, []
        while self.i < len(s):
            c = s[self.i]
            if c == "\\":
                if self.i + 1 == len(s):
                    raise self.fail("it ends with '\\', which escapes nothing")
                out.append(s[self.i + 1])
                self.i += 2
                continue
            if c in breakers and out:
                break
            out.append(c)
            self.i += 1
        if self.current and self.current[-1][0] == "text":
            self.current[-1] = ("text", self.current[-1][1] + "".join(out))
        else:
            self.current.append(("text", "".join(out)))

    def range(self) -> None:
        """A ``[...]`` set, read as ohmyglob reads it: the first unescaped ``!`` or ``^``
        anywhere in it negates it, ``[:digit:]``-style classes expand in place (their brackets
        then stay in the set, as in ohmyglob), ``-`` makes ranges."""
        s, chars, negated, posix = self.s, [], False, False
        while True:
            if self.i >= len(s):
                raise self.fail("a '[' set is never closed; write '\\[' for a literal '['")
            c = s[self.i]
            self.i += 1
            if c == "\\":
                if self.i >= len(s):
                    continue  # reported as never closed
                chars.append(s[self.i])
                self.i += 1
                continue
            if c == "[":
                posix = True
            elif c == "]":
                if not posix:
                    break
                posix = False
            elif not negated and c in "!^":
                negated = True
                continue
            chars.append(c)
        body = "".join(chars)
        for name, ranges in _POSIX.items():
            body = body.replace(name, ranges)
        if not body:
            raise self.fail("an empty set '[]' matches nothing")
        escaped = "".join(ch if ch == "-" else re.escape(ch) for ch in body)
        while "--" in escaped:  # Python reads '--' in a set as a future set difference
            escaped = escaped.replace("--", "-\\-", 1)
        self.current.append(("list", escaped, negated))


# ---------------------------------------------------------------------------------------------
# Compiling


def _can_match_slash(node: _Node) -> bool:
    kind = node[0]
    if kind == "super":
        return True
    if kind == "list":
        return bool(node[2]) or "/" in node[1]
    if kind == "text":
        return "/" in node[1]
    if kind in ("anyof", "capture"):
        return any(_can_match_slash(n) for alt in node[-1] for n in alt)
    return False


def _compile(node: _Node) -> str:
    kind = node[0]
    if kind == "text":
        return re.escape(node[1]) + _BOUND
    if kind == "any":
        return "[^/]*" + _BOUND
    if kind == "super":
        return ".*" + _BOUND
    if kind == "single":
        return "[^/]"
    if kind == "list":
        return ("[^" if node[2] else "[") + node[1] + "]"
    alternatives = ["".join(_compile(n) for n in alt) for alt in node[-1]]
    if kind == "anyof":
        return "(?:" + "|".join(alternatives) + ")"
    quantifier = node[1]
    if quantifier == "!":
        inner = (_NEG + "|").join(alternatives)
        return "((?:(?!(?:" + inner + _NEG + "))[^/]*))"
    inner = "|".join(alternatives)
    return {
        "@": "(" + inner + ")",
        "?": "((?:" + inner + ")?)",
        "*": "((?:" + inner + ")*)",
        "+": "((?:" + inner + ")+)",
    }[quantifier]


def _segments(root: list[_Node]) -> list[list[_Node]]:
    """The top-level nodes split at the top-level ``/`` (the first, empty segment dropped)."""
    segments: list[list[_Node]] = [[]]
    for node in root:
        if node[0] != "text":
            segments[-1].append(node)
            continue
        pieces = node[1].split("/")
        for k, piece in enumerate(pieces):
            if k:
                segments.append([])
            if piece:
                segments[-1].append(("text", piece))
    return segments[1:]


@functools.lru_cache(maxsize=512)
def compile_glob(pattern: str) -> CompiledGlob:
    """Compile a glob (see the module docstring for its syntax and meaning).

    Raises :class:`~headrace.store.errors.InvalidPath` for a glob that is malformed or that
    uses syntax headrace does not support, naming the problem.

    >>> g = compile_glob("/*.{png,jpg}")
    >>> bool(g.match("/a.png")), bool(g.match("/a.gif")), bool(g.match("/d/a.png"))
    (True, False, False)
    >>> g = compile_glob("/(*)_(a|b).csv")
    >>> g.groups, g.match("/x_b.csv").groups()
    (2, ('x', 'b'))
    >>> [bool(compile_glob("/!(*.*)").match(p)) for p in ["/images", "/a.png"]]
    [True, False]
    >>> [bool(compile_glob("/**/*.csv").match(p)) for p in ["/top.csv", "/d/x.csv"]]
    [False, True]
    """
    shown = pattern
    if any(ord(c) < 0x20 or c == "\x7f" for c in pattern):
        raise InvalidPath(f"invalid glob {shown!r}: it has a control character (tab, newline...)")
    text = normalize_glob(pattern)
    if text == "/":
        return CompiledGlob("/", re.compile("/"), 0, 0, (), True, 0, ())
    parser = _Parser(text, shown)
    root = parser.parse()
    segments = _segments(root)
    for seg in segments:
        if not seg:
            raise InvalidPath(f"invalid glob {shown!r}: it has an empty segment ('//')")
        if seg in ([("text", ".")], [("text", "..")]):
            raise InvalidPath(f"invalid glob {shown!r}: {seg[0][1]!r} is not allowed in a glob")
    # one regex piece per segment, each starting with its '/'
    pieces = ["/" + _BOUND + "".join(_compile(n) for n in seg) for seg in segments]
    joined = "".join(pieces)
    # ohmyglob's rule for '!(...)': when anything bounding follows the first negation, each
    # negation only refuses its alternatives as a prefix; otherwise as the rest of the path.
    end = joined.find(_NEG + ")")
    neg = "" if end < 0 or _BOUND in joined[end:] else r"\Z"
    pieces = [p.replace(_NEG, neg).replace(_BOUND, "") for p in pieces]
    regex = re.compile("".join(pieces))
    literal = 0
    while literal < len(segments) and all(n[0] == "text" for n in segments[literal]):
        literal += 1
    safe = 0
    while safe < len(segments) and not any(_can_match_slash(n) for n in segments[safe]):
        safe += 1
    prefix = tuple(re.compile("".join(pieces[: d + 1])).fullmatch for d in range(safe))
    return CompiledGlob(
        pattern=text,
        regex=regex,
        groups=regex.groups,
        literal=literal,
        literal_names=tuple("".join(n[1] for n in seg) for seg in segments[:literal]),
        exact=literal == len(segments),
        depth=len(segments),
        prefix_matchers=prefix,
    )
