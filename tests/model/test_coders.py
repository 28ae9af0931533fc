from __future__ import annotations

import collections
import enum
import math
import pickle

import cloudpickle
import pytest
from hypothesis import given
from hypothesis import strategies as st

from headrace.model.coders import (
    BooleanCoder,
    BytesCoder,
    Coder,
    FastPrimitivesCoder,
    FloatCoder,
    IterableCoder,
    ListCoder,
    NullableCoder,
    PickleCoder,
    StrUtf8Coder,
    ToStringCoder,
    TupleCoder,
    VarIntCoder,
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FLOATS = st.floats(allow_nan=False)
PRIMITIVES = st.none() | st.booleans() | st.integers() | FLOATS | st.text() | st.binary()
PRIMITIVE_CONTAINERS = st.recursive(
    PRIMITIVES,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=5)
    ),
    max_leaves=20,
)
HASHABLE_PRIMITIVES = st.none() | st.booleans() | st.integers() | FLOATS | st.text() | st.binary()

Point = collections.namedtuple("Point", ["x", "y"])


class Colour(enum.IntEnum):
    RED = 1


class Opaque:
    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return type(other) is Opaque and other.v == self.v

    def __hash__(self):
        return hash(self.v)


def round_trip(coder: Coder, value):
    encoded = coder.encode(value)
    assert isinstance(encoded, bytes)
    return coder.decode(encoded)


def nested_round_trip(coder: Coder, value):
    """Round trip through a tuple so the coder's nested form is used too."""
    wrapper = TupleCoder([coder, VarIntCoder()])
    return wrapper.decode(wrapper.encode((value, 7)))[0]


# -- round trips -----------------------------------------------------------------------------------


@given(INT64)
def test_varint_round_trip(n):
    coder = VarIntCoder()
    assert round_trip(coder, n) == n
    assert nested_round_trip(coder, n) == n
    assert coder.estimate_size(n) == len(coder.encode(n))


def test_varint_small_values_are_one_byte_and_bounds():
    coder = VarIntCoder()
    for n in (-64, -1, 0, 1, 63):
        assert len(coder.encode(n)) == 1
    assert len(coder.encode(2**63 - 1)) == 10
    assert coder.decode(coder.encode(-(2**63))) == -(2**63)
    with pytest.raises(ValueError, match="VarIntCoder.*64-bit.*2361183241434822606848"):
        coder.encode(2**71)


@given(FLOATS)
def test_float_round_trip(x):
    coder = FloatCoder()
    assert round_trip(coder, x) == x
    assert nested_round_trip(coder, x) == x
    assert len(coder.encode(x)) == 8


def test_float_format_and_special_values():
    coder = FloatCoder()
    assert coder.encode(1.0) == b"\x3f\xf0\x00\x00\x00\x00\x00\x00"  # big-endian double
    assert coder.decode(coder.encode(3)) == 3.0
    assert math.isnan(coder.decode(coder.encode(math.nan)))
    assert coder.decode(coder.encode(-math.inf)) == -math.inf


@given(st.booleans())
def test_boolean_round_trip(b):
    assert round_trip(BooleanCoder(), b) is b
    assert nested_round_trip(BooleanCoder(), b) is b


@given(st.binary())
def test_bytes_round_trip(b):
    assert round_trip(BytesCoder(), b) == b
    assert nested_round_trip(BytesCoder(), b) == b
    assert BytesCoder().encode(b) == b  # the outer form is the raw bytes


def test_bytes_accepts_bytearray_and_memoryview():
    assert BytesCoder().decode(BytesCoder().encode(bytearray(b"ab"))) == b"ab"
    assert BytesCoder().encode(memoryview(b"cd")) == b"cd"


@given(st.text())
def test_str_round_trip(s):
    assert round_trip(StrUtf8Coder(), s) == s
    assert nested_round_trip(StrUtf8Coder(), s) == s
    assert StrUtf8Coder().encode(s) == s.encode("utf-8")


@given(st.text())
def test_to_string_coder_str_round_trip(s):
    assert round_trip(ToStringCoder(), s) == s


def test_to_string_coder_bytes_and_others():
    coder = ToStringCoder()
    assert coder.encode(b"\xff raw") == b"\xff raw"
    assert coder.encode(3) == b"3"
    assert coder.encode((1, "a")) == b"(1, 'a')"
    assert coder.decode(b"abc") == "abc"


@given(PRIMITIVE_CONTAINERS)
def test_pickle_round_trip(value):
    assert round_trip(PickleCoder(), value) == value
    assert nested_round_trip(PickleCoder(), value) == value


def test_pickle_coder_uses_protocol_5_and_arbitrary_objects():
    assert PickleCoder().encode(1)[:2] == b"\x80\x05"
    assert PickleCoder().decode(PickleCoder().encode(Opaque(3))) == Opaque(3)


@given(st.tuples(INT64, st.text(), st.binary(), st.booleans()))
def test_tuple_round_trip(value):
    coder = TupleCoder([VarIntCoder(), StrUtf8Coder(), BytesCoder(), BooleanCoder()])
    assert round_trip(coder, value) == value
    assert nested_round_trip(coder, value) == value


@given(st.tuples(st.text(), st.text()))
def test_tuple_of_strings_outer_and_nested(value):
    coder = TupleCoder([StrUtf8Coder(), StrUtf8Coder()])
    assert round_trip(coder, value) == value
    assert nested_round_trip(coder, value) == value


def test_tuple_coder_edge_cases():
    assert round_trip(TupleCoder([]), ()) == ()
    assert round_trip(TupleCoder([StrUtf8Coder()]), ("x",)) == ("x",)
    assert round_trip(TupleCoder([VarIntCoder(), VarIntCoder()]), [1, 2]) == (1, 2)
    nested = TupleCoder([TupleCoder([StrUtf8Coder(), BytesCoder()]), StrUtf8Coder()])
    assert round_trip(nested, (("a", b"b"), "c")) == (("a", b"b"), "c")


@given(st.lists(st.text()))
def test_iterable_and_list_round_trip(items):
    for coder in (IterableCoder(StrUtf8Coder()), ListCoder(StrUtf8Coder())):
        assert round_trip(coder, items) == items
        assert nested_round_trip(coder, items) == items
        assert round_trip(coder, iter(items)) == items  # any iterable, decoded as a list


@given(st.none() | INT64)
def test_nullable_round_trip(value):
    coder = NullableCoder(VarIntCoder())
    assert round_trip(coder, value) == value
    assert nested_round_trip(coder, value) == value


@given(st.none() | st.text())
def test_nullable_str_round_trip(value):
    coder = NullableCoder(StrUtf8Coder())
    assert round_trip(coder, value) == value
    assert nested_round_trip(coder, value) == value


def test_nullable_str_distinguishes_none_and_empty():
    coder = NullableCoder(StrUtf8Coder())
    assert coder.decode(coder.encode("")) == ""
    assert coder.decode(coder.encode(None)) is None


@given(PRIMITIVE_CONTAINERS)
def test_fast_primitives_round_trip(value):
    coder = FastPrimitivesCoder()
    decoded = round_trip(coder, value)
    assert decoded == value
    assert type(decoded) is type(value)
    assert nested_round_trip(coder, value) == value


@given(st.sets(HASHABLE_PRIMITIVES, max_size=8), st.frozensets(st.text(), max_size=8))
def test_fast_primitives_sets_round_trip(s, fs):
    coder = FastPrimitivesCoder()
    assert round_trip(coder, s) == s
    decoded = round_trip(coder, fs)
    assert decoded == fs and type(decoded) is frozenset


def test_fast_primitives_types_are_preserved():
    coder = FastPrimitivesCoder()
    values = [
        None,
        True,
        False,
        0,
        -1,
        2**100,
        -(2**100),
        2**63,
        -(2**63) - 1,
        1.5,
        "ß",
        b"\x00",
        (1, (2,)),
        [1, [2]],
        {"k": {1: None}},
        Point(1, 2),
        Colour.RED,
        Opaque("x"),
        bytearray(b"ba"),
    ]
    for value in values:
        decoded = round_trip(coder, value)
        assert decoded == value
        assert type(decoded) is type(value), value


def test_fast_primitives_keeps_dict_order():
    coder = FastPrimitivesCoder()
    decoded = round_trip(coder, {"b": 1, "a": 2})
    assert list(decoded) == ["b", "a"]


def test_fast_primitives_custom_fallback():
    class ReprCoder(Coder):
        def encode(self, value):
            return repr(value).encode()

        def decode(self, encoded):
            return encoded.decode()

    coder = FastPrimitivesCoder(fallback_coder=ReprCoder())
    assert round_trip(coder, [1, Point(2, 3)]) == [1, "Point(x=2, y=3)"]


def test_user_coder_with_only_encode_decode_works_nested():
    class UpperCoder(Coder):
        def encode(self, value):
            return value.upper().encode()

        def decode(self, encoded):
            return encoded.decode()

    coder = TupleCoder([UpperCoder(), UpperCoder()])
    assert round_trip(coder, ("ab", "cd")) == ("AB", "CD")
    assert round_trip(ListCoder(UpperCoder()), ["x", "y"]) == ["X", "Y"]


# -- determinism -----------------------------------------------------------------------------------


def test_is_deterministic_flags():
    assert VarIntCoder().is_deterministic()
    assert FloatCoder().is_deterministic()
    assert BooleanCoder().is_deterministic()
    assert BytesCoder().is_deterministic()
    assert StrUtf8Coder().is_deterministic()
    assert not PickleCoder().is_deterministic()
    assert not ToStringCoder().is_deterministic()
    assert TupleCoder([VarIntCoder(), StrUtf8Coder()]).is_deterministic()
    assert not TupleCoder([VarIntCoder(), PickleCoder()]).is_deterministic()
    assert IterableCoder(StrUtf8Coder()).is_deterministic()
    assert not ListCoder(PickleCoder()).is_deterministic()
    assert NullableCoder(VarIntCoder()).is_deterministic()
    assert not NullableCoder(PickleCoder()).is_deterministic()
    assert not FastPrimitivesCoder().is_deterministic()
    assert FastPrimitivesCoder(fallback_coder=StrUtf8Coder()).is_deterministic()


def test_as_deterministic_coder():
    coder = TupleCoder([VarIntCoder(), StrUtf8Coder()])
    assert coder.as_deterministic_coder("GroupByKey") is coder
    with pytest.raises(ValueError, match="'MyGroup'"):
        PickleCoder().as_deterministic_coder("MyGroup")


@given(st.tuples(INT64, st.text(), FLOATS, st.binary(), st.booleans()))
def test_deterministic_coders_give_equal_bytes_for_equal_values(value):
    coder = TupleCoder([VarIntCoder(), StrUtf8Coder(), FloatCoder(), BytesCoder(), BooleanCoder()])
    copy = pickle.loads(pickle.dumps(value))
    assert coder.encode(value) == coder.encode(copy)


@given(
    st.recursive(
        PRIMITIVES,
        lambda inner: st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple),
        max_leaves=15,
    )
)
def test_fast_primitives_deterministic_for_primitives_tuples_lists(value):
    coder = FastPrimitivesCoder()
    assert coder.encode(value) == coder.encode(pickle.loads(pickle.dumps(value)))


def _set_in_order(items):
    result = set()
    for item in items:
        result.add(item)
    return result


@given(st.lists(st.text() | st.integers(), max_size=10, unique=True))
def test_fast_primitives_sets_encode_independently_of_insertion_order(items):
    coder = FastPrimitivesCoder()
    forwards = _set_in_order(items)
    backwards = _set_in_order(items[::-1])
    assert coder.encode(forwards) == coder.encode(backwards)
    assert coder.encode(frozenset(forwards)) == coder.encode(frozenset(backwards))


def test_set_encoding_is_independent_of_iteration_order():
    # 1 and 9 collide in a small hash table, so insertion order changes iteration order.
    coder = FastPrimitivesCoder()
    a = _set_in_order([1, 9])
    b = _set_in_order([9, 1])
    assert list(a) != list(b)
    assert coder.encode(a) == coder.encode(b)
    assert coder.encode(frozenset(a)) == coder.encode(frozenset(b))


# -- wrong types and bad data ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("coder", "value", "expected"),
    [
        (StrUtf8Coder(), 3, r"StrUtf8Coder\(\) cannot encode 3 \(int\): it encodes str"),
        (StrUtf8Coder(), b"x", r"StrUtf8Coder\(\) cannot encode b'x' \(bytes\)"),
        (BytesCoder(), "x", r"BytesCoder\(\) cannot encode 'x' \(str\).*StrUtf8Coder"),
        (VarIntCoder(), "3", r"VarIntCoder\(\) cannot encode '3' \(str\): it encodes int"),
        (VarIntCoder(), 1.5, r"VarIntCoder\(\) cannot encode 1.5 \(float\)"),
        (FloatCoder(), "1.0", r"FloatCoder\(\) cannot encode '1.0' \(str\)"),
        (BooleanCoder(), 1, r"BooleanCoder\(\) cannot encode 1 \(int\): it encodes bool"),
        (TupleCoder([VarIntCoder()]), 5, r"TupleCoder\(\[VarIntCoder\(\)\]\) cannot encode 5"),
        (TupleCoder([VarIntCoder()]), (1, 2), r"2-element tuple.*tuples of 1 element"),
        (TupleCoder([StrUtf8Coder(), VarIntCoder()]), (1, 2), r"StrUtf8Coder\(\) cannot encode 1"),
        (IterableCoder(VarIntCoder()), 5, r"IterableCoder\(VarIntCoder\(\)\) cannot encode 5"),
        (ListCoder(StrUtf8Coder()), [1], r"StrUtf8Coder\(\) cannot encode 1"),
        (NullableCoder(StrUtf8Coder()), 1, r"StrUtf8Coder\(\) cannot encode 1"),
        (PickleCoder(), lambda: 1, r"PickleCoder\(\) cannot pickle function"),
    ],
)
def test_wrong_type_raises_type_error_naming_coder(coder, value, expected):
    with pytest.raises(TypeError, match=expected):
        coder.encode(value)
    with pytest.raises(TypeError, match=expected):
        TupleCoder([VarIntCoder(), coder]).encode((1, value))
    with pytest.raises(TypeError, match=expected):
        TupleCoder([coder, VarIntCoder()]).encode((value, 1))


def test_long_values_are_shortened_in_errors():
    with pytest.raises(TypeError) as info:
        StrUtf8Coder().encode(list(range(1000)))
    assert len(str(info.value)) < 200


@pytest.mark.parametrize(
    ("coder", "value"),
    [
        (VarIntCoder(), 300),
        (FastPrimitivesCoder(), ("abc", [1, 2])),
        (TupleCoder([VarIntCoder(), VarIntCoder()]), (1, 300)),
        (IterableCoder(VarIntCoder()), [1, 2, 3]),
        (FloatCoder(), 1.5),
    ],
)
def test_truncated_and_trailing_data_raise_value_error(coder, value):
    data = coder.encode(value)
    with pytest.raises(ValueError, match="cannot decode|truncated"):
        coder.decode(data[:-1])
    if not isinstance(coder, TupleCoder):
        with pytest.raises(ValueError, match="trailing"):
            coder.decode(data + b"\x00")


def test_decode_bad_markers():
    with pytest.raises(ValueError, match="BooleanCoder"):
        BooleanCoder().decode(b"\x07")
    with pytest.raises(ValueError, match="NullableCoder"):
        NullableCoder(VarIntCoder()).decode(b"\x05\x01")
    with pytest.raises(ValueError, match="unknown type byte 99"):
        FastPrimitivesCoder().decode(b"\x63")
    with pytest.raises(TypeError, match="decodes bytes"):
        VarIntCoder().decode("abc")


# -- equality, hashing, repr, estimate_size --------------------------------------------------------


def test_equality_and_hash_by_type_and_components():
    assert VarIntCoder() == VarIntCoder()
    assert VarIntCoder() != StrUtf8Coder()
    assert TupleCoder([VarIntCoder(), StrUtf8Coder()]) == TupleCoder(
        [VarIntCoder(), StrUtf8Coder()]
    )
    assert TupleCoder([VarIntCoder(), StrUtf8Coder()]) != TupleCoder(
        [StrUtf8Coder(), VarIntCoder()]
    )
    assert IterableCoder(VarIntCoder()) != ListCoder(VarIntCoder())
    assert FastPrimitivesCoder() == FastPrimitivesCoder(PickleCoder())
    assert FastPrimitivesCoder() != FastPrimitivesCoder(StrUtf8Coder())
    assert len({VarIntCoder(), VarIntCoder(), TupleCoder([VarIntCoder()])}) == 2
    assert hash(NullableCoder(BytesCoder())) == hash(NullableCoder(BytesCoder()))


def test_repr():
    assert repr(VarIntCoder()) == "VarIntCoder()"
    assert repr(TupleCoder([VarIntCoder(), StrUtf8Coder()])) == (
        "TupleCoder([VarIntCoder(), StrUtf8Coder()])"
    )
    assert repr(ListCoder(BytesCoder())) == "ListCoder(BytesCoder())"
    assert repr(FastPrimitivesCoder()) == "FastPrimitivesCoder(PickleCoder())"


@given(PRIMITIVE_CONTAINERS)
def test_estimate_size_matches_encoding(value):
    coder = FastPrimitivesCoder()
    assert coder.estimate_size(value) == len(coder.encode(value))


def test_estimate_size_nested():
    assert StrUtf8Coder().estimate_size("abc") == 3
    assert StrUtf8Coder().estimate_size("abc", nested=True) == 4
    assert BytesCoder().estimate_size(b"x" * 200, nested=True) == 202
    assert VarIntCoder().estimate_size(-64) == 1
    assert VarIntCoder().estimate_size(64) == 2


# -- pickling --------------------------------------------------------------------------------------

ALL_CODERS = [
    VarIntCoder(),
    StrUtf8Coder(),
    BytesCoder(),
    FloatCoder(),
    BooleanCoder(),
    PickleCoder(),
    ToStringCoder(),
    TupleCoder([VarIntCoder(), StrUtf8Coder()]),
    IterableCoder(BytesCoder()),
    ListCoder(FloatCoder()),
    NullableCoder(BooleanCoder()),
    FastPrimitivesCoder(),
    FastPrimitivesCoder(fallback_coder=StrUtf8Coder()),
]


@pytest.mark.parametrize("coder", ALL_CODERS, ids=repr)
@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_every_coder_pickles(coder, dumps):
    restored = pickle.loads(dumps(coder))
    assert restored == coder
    assert hash(restored) == hash(coder)
    assert restored.is_deterministic() == coder.is_deterministic()


def test_restored_coder_still_works():
    coder = TupleCoder([FastPrimitivesCoder(), NullableCoder(StrUtf8Coder())])
    restored = pickle.loads(pickle.dumps(coder))
    value = ({"a": [1, None]}, None)
    assert restored.decode(coder.encode(value)) == value
