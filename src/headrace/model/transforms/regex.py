"""``Regex``: Beam's regular-expression transforms over a PCollection of strings.

Each static method of :class:`Regex` returns a transform (Beam's ``apache_beam.transforms.util.
Regex``, built with ``@ptransform_fn``). ``regex`` is a pattern string or a compiled pattern.
``match`` anchors at the start of the string, ``find`` searches anywhere:

================  =========================================================================
``matches``       group ``group`` of each string whose start matches; others dropped
``all_matches``   the list of all groups (0..lastindex) of each string whose start matches
``matches_kv``    ``(group keyGroup, group valueGroup)`` of each string whose start matches
``find``          group ``group`` of the first match anywhere in each string
``find_all``      the list of group ``group`` of every match (``Regex.ALL``: ``(whole, first
                  group)`` pairs); ``outputEmpty=False`` leaves out empty matches
``find_kv``       ``(group keyGroup, group valueGroup)`` of every match, one pair each
``replace_all``   every match replaced by ``replacement`` (``re.sub``)
``replace_first`` the first match replaced
``split``         the list of pieces between matches; empty pieces left out unless
                  ``outputEmpty=True``
================  =========================================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from headrace.model.pvalue import PCollection
from headrace.model.transforms.core import FlatMap, Map
from headrace.model.transforms.ptransform import ptransform_fn

__all__ = ["Regex"]


def _compiled(regex: str | re.Pattern[str]) -> re.Pattern[str]:
    if isinstance(regex, str):
        return re.compile(regex)
    if isinstance(regex, re.Pattern):
        return regex
    raise TypeError(f"Regex needs a pattern string or a compiled re.Pattern, got {regex!r}")


class _Matches:
    def __init__(self, regex: re.Pattern[str], group: int | str) -> None:
        self.regex, self.group = regex, group

    def __call__(self, element: str) -> Iterator[Any]:
        m = self.regex.match(element)
        if m:
            yield m.group(self.group)


class _AllMatches:
    def __init__(self, regex: re.Pattern[str]) -> None:
        self.regex = regex

    def __call__(self, element: str) -> Iterator[list[Any]]:
        m = self.regex.match(element)
        if m:
            yield [m.group(i) for i in range((m.lastindex or 0) + 1)]


class _MatchesKV:
    def __init__(self, regex: re.Pattern[str], key: int | str, value: int | str) -> None:
        self.regex, self.key, self.value = regex, key, value

    def __call__(self, element: str) -> Iterator[tuple[Any, Any]]:
        m = self.regex.match(element)
        if m:
            yield (m.group(self.key), m.group(self.value))


class _Find:
    def __init__(self, regex: re.Pattern[str], group: int | str) -> None:
        self.regex, self.group = regex, group

    def __call__(self, element: str) -> Iterator[Any]:
        m = self.regex.search(element)
        if m:
            yield m.group(self.group)


class _FindAll:
    def __init__(self, regex: re.Pattern[str], group: int | str, output_empty: bool) -> None:
        self.regex, self.group, self.output_empty = regex, group, output_empty

    def __call__(self, element: str) -> Iterator[list[Any]]:
        found = self.regex.finditer(element)
        keep = self.output_empty
        if self.group == Regex.ALL:
            yield [(m.group(), m.groups()[0]) for m in found if keep or m.groups()[0]]
        else:
            yield [m.group(self.group) for m in found if keep or m.group(self.group)]


class _FindKV:
    def __init__(self, regex: re.Pattern[str], key: int | str, value: int | str) -> None:
        self.regex, self.key, self.value = regex, key, value

    def __call__(self, element: str) -> Iterator[tuple[Any, Any]]:
        for m in self.regex.finditer(element):
            yield (m.group(self.key), m.group(self.value))


class _Replace:
    def __init__(self, regex: re.Pattern[str], replacement: str, count: int) -> None:
        self.regex, self.replacement, self.count = regex, replacement, count

    def __call__(self, element: str) -> str:
        return self.regex.sub(self.replacement, element, count=self.count)


class _Split:
    def __init__(self, regex: re.Pattern[str], output_empty: bool) -> None:
        self.regex, self.output_empty = regex, output_empty

    def __call__(self, element: str) -> Iterator[list[str]]:
        pieces = self.regex.split(element)
        yield pieces if self.output_empty else [p for p in pieces if p]


@ptransform_fn
def matches(pcoll: PCollection, regex: Any, group: int | str = 0) -> PCollection:
    """Group ``group`` of each element whose start matches ``regex``."""
    return pcoll | FlatMap(_Matches(_compiled(regex), group))


@ptransform_fn
def all_matches(pcoll: PCollection, regex: Any) -> PCollection:
    """All groups (0 to the last) of each element whose start matches ``regex``."""
    return pcoll | FlatMap(_AllMatches(_compiled(regex)))


@ptransform_fn
def matches_kv(
    pcoll: PCollection, regex: Any, keyGroup: int | str, valueGroup: int | str = 0
) -> PCollection:
    """``(key group, value group)`` of each element whose start matches ``regex``."""
    return pcoll | FlatMap(_MatchesKV(_compiled(regex), keyGroup, valueGroup))


@ptransform_fn
def find(pcoll: PCollection, regex: Any, group: int | str = 0) -> PCollection:
    """Group ``group`` of the first match of ``regex`` anywhere in each element."""
    return pcoll | FlatMap(_Find(_compiled(regex), group))


@ptransform_fn
def find_all(
    pcoll: PCollection, regex: Any, group: int | str = 0, outputEmpty: bool = True
) -> PCollection:
    """For each element, the list of group ``group`` of every match of ``regex``."""
    return pcoll | FlatMap(_FindAll(_compiled(regex), group, outputEmpty))


@ptransform_fn
def find_kv(
    pcoll: PCollection, regex: Any, keyGroup: int | str, valueGroup: int | str = 0
) -> PCollection:
    """``(key group, value group)`` of every match of ``regex`` in each element."""
    return pcoll | FlatMap(_FindKV(_compiled(regex), keyGroup, valueGroup))


@ptransform_fn
def replace_all(pcoll: PCollection, regex: Any, replacement: str) -> PCollection:
    """Each element with every match of ``regex`` replaced by ``replacement``."""
    return pcoll | Map(_Replace(_compiled(regex), replacement, 0))


@ptransform_fn
def replace_first(pcoll: PCollection, regex: Any, replacement: str) -> PCollection:
    """Each element with its first match of ``regex`` replaced by ``replacement``."""
    return pcoll | Map(_Replace(_compiled(regex), replacement, 1))


@ptransform_fn
def split(pcoll: PCollection, regex: Any, outputEmpty: bool = False) -> PCollection:
    """Each element split on ``regex`` into a list (empty pieces dropped by default)."""
    return pcoll | FlatMap(_Split(_compiled(regex), outputEmpty))


class Regex:
    """Regular-expression transforms over strings (Beam's ``transforms.util.Regex``).

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     lines = p | Create(["a=1", "b=22", "nope"])
    ...     kv = lines | Regex.matches_kv(r"(\\w)=(\\d+)", 1, 2)
    ...     assert_that(kv, equal_to([("a", "1"), ("b", "22")]))
    """

    ALL = "__regex_all_groups"

    matches = staticmethod(matches)
    all_matches = staticmethod(all_matches)
    matches_kv = staticmethod(matches_kv)
    find = staticmethod(find)
    find_all = staticmethod(find_all)
    find_kv = staticmethod(find_kv)
    replace_all = staticmethod(replace_all)
    replace_first = staticmethod(replace_first)
    split = staticmethod(split)
