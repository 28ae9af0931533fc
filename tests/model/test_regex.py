"""``Regex`` transforms, pinned to the results of Beam's ``util_test.RegexTest`` cases.

Beam: ``apache_beam/transforms/util.py`` (``class Regex``) and ``util_test.py`` (``RegexTest``).
"""

from __future__ import annotations

import re

import cloudpickle
import pytest

import headrace.beam as beam
from headrace.beam.transforms.util import Regex
from headrace.testing.util import assert_that, equal_to


def check(values, transform, expected):
    with beam.Pipeline() as p:
        assert_that(p | beam.Create(values) | transform, equal_to(expected))


def test_matches_anchor_at_the_start():
    check(["aj", "xj", "yj", "zj"], Regex.matches("[xyz]"), ["x", "y", "z"])
    check(["a1", "b2"], Regex.matches(r"(?P<l>\w)(\d)", group="l"), ["a", "b"])
    check(["x", "ax"], Regex.matches(re.compile("x")), ["x"])


def test_all_matches_and_matches_kv():
    check(
        ["a x", "1 2 3", "b"],
        Regex.all_matches(r"(\w) (\w)"),
        [["a x", "a", "x"], ["1 2", "1", "2"]],
    )
    check(["a b c"], Regex.matches_kv(r"a (b) (c)", 1, 2), [("b", "c")])
    check(["a b c"], Regex.matches_kv(r"a (b) (c)", 1), [("b", "a b c")])


def test_find_find_all_and_find_kv():
    check(["ax yb", "nothing"], Regex.find("[xyz]"), ["x"])
    check(["a x y", "nope"], Regex.find_all("[xyz]"), [["x", "y"], []])
    check(["ax yb"], Regex.find_all("x*", outputEmpty=False), [["x"]])
    check(["ax yb"], Regex.find_all("(x)", group=Regex.ALL), [[("x", "x")]])
    check(["a=1 b=2"], Regex.find_kv(r"(\w)=(\d)", 1, 2), [("a", "1"), ("b", "2")])


def test_replace_and_split():
    check(["aa bb"], Regex.replace_all("a", "x"), ["xx bb"])
    check(["aa bb"], Regex.replace_first("a", "x"), ["xa bb"])
    check(["a,,b"], Regex.split(","), [["a", "b"]])
    check(["a,,b"], Regex.split(",", outputEmpty=True), [["a", "", "b"]])


def test_bad_pattern_and_pickling():
    with pytest.raises(TypeError, match="pattern"):
        with beam.Pipeline() as p:
            _ = p | beam.Create(["a"]) | Regex.matches(3)
    assert cloudpickle.loads(cloudpickle.dumps(Regex.find_kv("(a)", 1)))
    assert beam.Regex is Regex
