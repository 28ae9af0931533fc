"""Row: named fields, equality, hashing, repr, pickling."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

from headrace.model.row import Row


def test_fields_and_access():
    r = Row(a=1, b="x")
    assert (r.a, r.b) == (1, "x")
    assert r._asdict() == {"a": 1, "b": "x"}
    assert r._fields() == ("a", "b")
    assert list(r) == [1, "x"]
    assert len(r) == 2
    with pytest.raises(AttributeError):
        _ = r.c


def test_asdict_is_a_copy():
    r = Row(a=1)
    d = r._asdict()
    d["a"] = 2
    assert r.a == 1


def test_equality_and_hash_ignore_field_order():
    assert Row(a=1, b=2) == Row(b=2, a=1)
    assert hash(Row(a=1, b=2)) == hash(Row(b=2, a=1))
    assert Row(a=1) != Row(a=2)
    assert Row(a=1) != Row(b=1)
    assert Row(a=1) != {"a": 1}
    assert Row(a=1) != (1,)
    assert len({Row(a=1), Row(a=1), Row(a=2)}) == 2


def test_repr_like_beam():
    assert repr(Row(a=1, b="x")) == "Row(a=1, b='x')"
    assert repr(Row()) == "Row()"


def test_nested_rows_and_pickling():
    r = Row(id=3, inner=Row(x=[1, 2]), tags=("a",))
    for dumps in (pickle.dumps, cloudpickle.dumps):
        clone = pickle.loads(dumps(r))
        assert clone == r and type(clone) is Row and clone.inner.x == [1, 2]


def test_from_mapping():
    assert Row._from_mapping({"a": 1}) == Row(a=1)
