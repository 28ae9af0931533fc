"""How a Create's values travel in the pipeline graph: plain values through the C pickler,
anything else through cloudpickle, and the same elements come out either way."""

from __future__ import annotations

import pickle

import pytest

from headrace.graph.nodes import Payload
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import Create, Map, _CreateSource
from headrace.model.window import TimestampedValue
from headrace.testing.util import assert_that, equal_to


def test_plain_values_are_stored_with_the_c_pickler():
    values = [("user1", 3, 0.5), ("user2", 4, 1.5)] * 10
    source = Payload.of(_CreateSource(values)).load()
    assert source.values == values
    reducer, args = _CreateSource(values).__reduce__()
    assert reducer is not _CreateSource and isinstance(args[0], bytes)
    assert pickle.loads(args[0]) == values


@pytest.mark.parametrize(
    "value",
    [lambda: 7, TimestampedValue(("k", 1), 5)],
    ids=["lambda", "timestamped"],
)
def test_values_plain_pickle_cannot_take_round_trip(value):
    source = Payload.of(_CreateSource([value, 1])).load()
    got = source.values[0]
    if callable(got):
        assert got() == 7
    else:
        assert got == value


def test_values_referring_to_main_go_through_cloudpickle():
    """A class of the user's script (``__main__``) is stored by value, as cloudpickle does, since
    a worker process cannot import the user's ``__main__``."""

    class Point:  # pickle finds no Point in __main__: it refuses, and cloudpickle takes it
        def __init__(self, x: int) -> None:
            self.x = x

    Point.__module__ = "__main__"
    Point.__qualname__ = "Point"
    reducer, _ = _CreateSource([Point(1)]).__reduce__()
    assert reducer is _CreateSource
    assert Payload.of(_CreateSource([Point(2)])).load().values[0].x == 2


def test_create_of_local_objects_runs():
    """In this process; worker processes receive task inputs through plain pickle, which
    refuses local classes (a separate, older limitation)."""

    class Box:
        def __init__(self, x: int) -> None:
            self.x = x

    with Pipeline() as p:
        out = p | Create([Box(1), Box(2)]) | Map(lambda b: b.x)
        assert_that(out, equal_to([1, 2]))


def test_create_infers_a_single_element_type():
    p = Pipeline()
    assert (p | "Ints" >> Create([1, 2, 3])).element_type is int
    assert (p | "Mixed" >> Create([1, "a"])).element_type is None
