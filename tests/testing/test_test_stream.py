"""Tests of headrace.testing.test_stream: the TestStream builder, validation and graph node."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

from headrace.model.coders import VarIntCoder
from headrace.model.pipeline import Pipeline
from headrace.model.pvalue import PCollection
from headrace.model.sources import UnboundedReader, UnboundedSource
from headrace.model.timestamp import (
    MAX_TIMESTAMP,
    MAX_US,
    MIN_TIMESTAMP,
    MIN_US,
    Duration,
    Timestamp,
)
from headrace.model.window import GLOBAL_WINDOWS_TUPLE, TimestampedValue, WindowedValue
from headrace.testing.test_stream import (
    ElementEvent,
    Event,
    ProcessingTimeEvent,
    TestStream,
    TestStreamReader,
    TestStreamSource,
    WatermarkEvent,
)


def tv(value, seconds):
    return TimestampedValue(value, seconds)


def test_builder_produces_the_event_list():
    stream = (
        TestStream()
        .add_elements(["a", "b"])
        .advance_watermark_to(10)
        .add_elements([tv("late", 3), "c"])
        .add_elements(["d"], event_timestamp=12.5)
        .advance_processing_time(Duration(2))
        .advance_processing_time(0.5)
        .advance_watermark_to(Timestamp(20))
        .advance_watermark_to_infinity()
    )
    assert stream.events() == [
        ElementEvent([tv("a", MIN_TIMESTAMP), tv("b", MIN_TIMESTAMP)]),
        WatermarkEvent(10),
        ElementEvent([tv("late", 3), tv("c", 10)]),
        ElementEvent([tv("d", 12.5)]),
        ProcessingTimeEvent(2),
        ProcessingTimeEvent(Duration(micros=500_000)),
        WatermarkEvent(20),
        WatermarkEvent(MAX_TIMESTAMP),
    ]
    assert stream.watermarks[None] == MAX_TIMESTAMP
    assert stream.output_tags == {None}


def test_events_returns_a_copy():
    stream = TestStream().advance_watermark_to(1)
    stream.events().clear()
    assert len(stream.events()) == 1


def test_windowed_values_keep_their_timestamp_only():
    wv = WindowedValue("x", 7_000_000, GLOBAL_WINDOWS_TUPLE)
    stream = TestStream().add_elements([wv])
    assert stream.events() == [ElementEvent([tv("x", 7)])]


def test_event_types_and_equality():
    assert isinstance(ElementEvent([]), Event)
    assert WatermarkEvent(5) == WatermarkEvent(Timestamp(5))
    assert WatermarkEvent(5) != WatermarkEvent(5, tag="a")
    assert ProcessingTimeEvent(1) == ProcessingTimeEvent(Duration(1))
    assert ElementEvent([tv(1, 1)]) != ElementEvent([tv(1, 2)])
    assert len({WatermarkEvent(5), WatermarkEvent(5), ProcessingTimeEvent(5)}) == 2
    assert WatermarkEvent(5).new_watermark == Timestamp(5)
    assert ProcessingTimeEvent(1.5).advance_by == Duration(1.5)
    assert repr(WatermarkEvent(5, tag="t")) == "WatermarkEvent(Timestamp(5), tag='t')"


# -- validation ------------------------------------------------------------------------------------


def test_watermark_must_not_go_backwards():
    stream = TestStream().advance_watermark_to(10)
    with pytest.raises(
        ValueError,
        match=r"advance_watermark_to\(Timestamp\(5\)\) does not move the watermark "
        r"forward from Timestamp\(10\)",
    ):
        stream.advance_watermark_to(5)
    assert len(stream.events()) == 1  # the refused event was not recorded


def test_watermark_must_strictly_increase():
    stream = TestStream().advance_watermark_to(10)
    with pytest.raises(ValueError, match="must strictly increase"):
        stream.advance_watermark_to(10)


def test_watermarks_are_per_tag():
    stream = TestStream().advance_watermark_to(10, tag="a").advance_watermark_to(5, tag="b")
    with pytest.raises(ValueError, match="watermark of output 'b' forward from Timestamp\\(5\\)"):
        stream.advance_watermark_to(4, tag="b")
    stream.add_elements([1], tag="b")
    assert stream.events()[-1] == ElementEvent([tv(1, 5)], tag="b")
    assert stream.output_tags == {"a", "b"}


def test_processing_time_must_advance():
    with pytest.raises(ValueError, match="positive duration"):
        TestStream().advance_processing_time(0)
    with pytest.raises(ValueError, match="positive duration"):
        TestStream().advance_processing_time(-1)


def test_element_timestamps_must_be_before_the_end_of_time():
    stream = TestStream().advance_watermark_to_infinity()
    with pytest.raises(ValueError, match="must be before MAX_TIMESTAMP"):
        stream.add_elements(["too late"])
    stream.add_elements([tv("late but explicit", 5)])
    assert stream.events()[-1] == ElementEvent([tv("late but explicit", 5)])


def test_add_elements_iterates_a_str_as_beam_does():
    """Beam (apache_beam/testing/test_stream.py) iterates ``elements``: a str gives its
    characters (Beam's test_stream_test adds ``add_elements('c', tag='main')``)."""
    stream = TestStream().advance_watermark_to(5).add_elements("ab")
    assert stream.events()[-1] == ElementEvent([tv("a", 5), tv("b", 5)])


def test_invalid_events_raise_what_beam_raises_too():
    """Beam asserts (AssertionError); headrace's error is also a ValueError."""
    with pytest.raises(AssertionError, match="must strictly increase"):
        TestStream().advance_watermark_to(5).advance_watermark_to(4)
    with pytest.raises(AssertionError, match="positive duration"):
        TestStream().advance_processing_time(-1)


def test_constructor_events_are_validated():
    events = [ElementEvent([tv(1, 1)], tag="x"), WatermarkEvent(5, tag="x"), ProcessingTimeEvent(1)]
    stream = TestStream(events=events, coder=VarIntCoder())
    assert stream.events() == events
    assert stream.output_tags == {"x"}
    assert stream.coder == VarIntCoder()
    with pytest.raises(ValueError, match="must strictly increase"):
        TestStream(events=[WatermarkEvent(5), WatermarkEvent(1)])
    with pytest.raises(TypeError, match="is not an ElementEvent"):
        TestStream(events=["junk"])


def test_constructor_rejects_unsupported_arguments():
    with pytest.raises(TypeError, match="needs a Coder"):
        TestStream(coder=int)
    with pytest.raises(NotImplementedError, match="endpoint"):
        TestStream(endpoint="localhost:1234")


# -- in a pipeline ---------------------------------------------------------------------------------


def read_node(p):
    graph = p.to_graph()
    reads = [t for t in graph.transforms.values() if t.kind == "Read"]
    assert len(reads) == 1
    return graph, reads[0]


def test_applying_records_an_unbounded_read_of_a_test_stream_source():
    p = Pipeline()
    stream = TestStream().add_elements([1, 2]).advance_watermark_to_infinity()
    out = p | "Events" >> stream
    assert isinstance(out, PCollection)
    assert out.is_bounded is False
    graph, node = read_node(p)
    assert node.label == "Events"
    assert [tag for tag, _ in node.outputs] == ["main"]
    assert graph.pcollections[node.outputs[0][1]].bounded is False
    source = node.payload.load()
    assert isinstance(source, TestStreamSource)
    assert source.is_bounded() is False
    assert list(source.events()) == stream.events()
    assert source.output_tags == {None: "main"}


def test_several_tags_give_a_dict_of_outputs():
    p = Pipeline()
    stream = (
        TestStream()
        .add_elements(["a"], tag="letters")
        .add_elements([1], tag="numbers")
        .advance_watermark_to_infinity(tag="letters")
        .advance_watermark_to_infinity(tag="numbers")
    )
    outs = p | stream
    assert set(outs) == {"letters", "numbers"}
    assert all(isinstance(pc, PCollection) and not pc.is_bounded for pc in outs.values())
    _, node = read_node(p)
    assert sorted(tag for tag, _ in node.outputs) == ["letters", "numbers"]
    assert node.payload.load().output_tags == {"letters": "letters", "numbers": "numbers"}


def test_default_and_named_tags_together():
    p = Pipeline()
    outs = p | TestStream().add_elements([1]).add_elements([2], tag="side")
    assert set(outs) == {None, "side"}
    _, node = read_node(p)
    assert node.payload.load().output_tags == {None: "main", "side": "side"}


def test_tag_main_clashes_with_the_default_output():
    stream = TestStream().add_elements([1]).add_elements([2], tag="main")
    with pytest.raises(ValueError, match="both tag None and tag 'main'"):
        Pipeline() | stream


def test_non_string_tags_are_refused_when_applied():
    stream = TestStream().add_elements([1], tag=3)
    with pytest.raises(TypeError, match="tags must be strings or None, got 3"):
        Pipeline() | stream


def test_empty_stream_has_one_output():
    out = Pipeline() | TestStream()
    assert isinstance(out, PCollection) and not out.is_bounded


def test_graph_json_round_trip_keeps_the_events():
    p = Pipeline()
    stream = TestStream().add_elements([tv("x", 3)]).advance_processing_time(1)
    p | stream
    again = Pipeline.from_json(p.to_json())
    _, node = read_node(again)
    assert list(node.payload.load().events()) == stream.events()


# -- the reader ----------------------------------------------------------------------------------


def values(batch):
    return [(t.value, t.timestamp_us // 1_000_000) for t in batch]


def test_source_is_an_unbounded_source_with_a_reader():
    source = TestStreamSource(TestStream().add_elements([1]).events(), {None: "main"})
    assert isinstance(source, UnboundedSource)
    assert source.split(4) == [source]
    reader = source.create_reader()
    assert isinstance(reader, UnboundedReader) and isinstance(reader, TestStreamReader)


def test_reader_replays_elements_watermarks_and_clock_moves():
    stream = (
        TestStream()
        .add_elements([tv("a", 1), tv("b", 2)])
        .add_elements([tv("c", 3)])
        .advance_watermark_to(5)
        .advance_processing_time(2)
        .add_elements([tv("late", 1), tv("d", 6)])
        .advance_processing_time(3)
    )
    reader = TestStreamSource(stream.events(), {None: "main"}).create_reader()
    assert reader.watermark_us() == MIN_US
    assert values(reader.poll(100, 0)) == [("a", 1), ("b", 2), ("c", 3)]
    assert reader.watermark_us() == MIN_US
    assert reader.poll(100, 0) == []
    assert reader.watermark_us() == 5_000_000
    assert reader.processing_time_advance_us() == 0
    assert reader.poll(100, 0) == []
    assert reader.processing_time_advance_us() == 2_000_000
    assert values(reader.poll(100, 0)) == [("late", 1), ("d", 6)]
    assert not reader.is_done()
    assert reader.poll(100, 0) == []
    assert reader.processing_time_advance_us() == 5_000_000
    assert reader.is_done() and reader.watermark_us() == MAX_US
    assert reader.poll(100, 0) == []
    reader.close()


def test_reader_respects_max_elements_and_resumes_from_a_checkpoint():
    stream = TestStream().add_elements(list(range(5))).advance_watermark_to(9).add_elements([5, 6])
    source = TestStreamSource(stream.events(), {None: "main"})
    reader = source.create_reader()
    assert [t.value for t in reader.poll(2, 0)] == [0, 1]
    assert [t.value for t in reader.poll(2, 0)] == [2, 3]
    saved = reader.checkpoint()
    assert [t.value for t in reader.poll(2, 0)] == [4]
    assert reader.poll(2, 0) == []
    again = pickle.loads(pickle.dumps(source)).create_reader(saved)
    assert [t.value for t in again.poll(10, 0)] == [4]
    assert again.poll(10, 0) == [] and again.watermark_us() == 9_000_000
    late = source.create_reader(again.checkpoint())
    assert late.watermark_us() == 9_000_000  # recomputed from the replayed events
    assert [t.value for t in late.poll(10, 0)] == [5, 6]
    assert late.is_done()


def test_reader_reads_one_tag_at_a_time():
    stream = (
        TestStream()
        .add_elements(["a"], tag="letters")
        .advance_watermark_to(3, tag="numbers")
        .add_elements([1], tag="numbers")
        .advance_processing_time(1)
        .advance_watermark_to(4, tag="letters")
    )
    source = TestStreamSource(stream.events(), {"letters": "letters", "numbers": "numbers"})
    with pytest.raises(ValueError, match=r"use source.for_tag\(tag\).create_reader\(\)"):
        source.create_reader()
    with pytest.raises(KeyError, match="no output tagged 'words'"):
        source.for_tag("words")
    letters = source.for_tag("letters").create_reader()
    assert [t.value for t in letters.poll(10, 0)] == ["a"]
    assert letters.poll(10, 0) == [] and letters.processing_time_advance_us() == 1_000_000
    assert letters.poll(10, 0) == [] and letters.watermark_us() == MAX_US
    numbers = source.for_tag("numbers")
    assert numbers.output_tags == {"numbers": "numbers"}
    reader = numbers.create_reader()
    assert reader.poll(10, 0) == [] and reader.watermark_us() == 3_000_000
    assert values(reader.poll(10, 0)) == [(1, 3)]


# -- pickling --------------------------------------------------------------------------------------


def sample_stream():
    return (
        TestStream(coder=VarIntCoder())
        .add_elements([1, tv(2, 5)])
        .advance_watermark_to(10, tag=None)
        .add_elements([3], tag="other")
        .advance_processing_time(2)
        .advance_watermark_to_infinity()
    )


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_test_stream_and_events_pickle(dumps):
    stream = sample_stream()
    back = pickle.loads(dumps(stream))
    assert back.events() == stream.events()
    assert back.output_tags == stream.output_tags
    assert back.watermarks == stream.watermarks
    back.advance_watermark_to_infinity(tag="other")  # the copy keeps building
    for event in stream.events():
        assert pickle.loads(dumps(event)) == event


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_source_pickles(dumps):
    stream = sample_stream()
    source = TestStreamSource(stream.events(), {None: "main", "other": "other"})
    back = pickle.loads(dumps(source))
    assert list(back.events()) == stream.events()
    assert back.output_tags == source.output_tags


def test_beam_path():
    from headrace.beam.testing import test_stream as beam_test_stream

    assert beam_test_stream.TestStream is TestStream
    assert set(beam_test_stream.__all__) >= {
        "TestStream",
        "ElementEvent",
        "WatermarkEvent",
        "ProcessingTimeEvent",
    }


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_element_events_pickle_as_columns_whatever_their_values(dumps):
    """An element event is stored as values and integer timestamps; values plain pickle cannot
    store (a lambda under cloudpickle) or could only store as a reference into ``__main__``
    round-trip as well, with their timestamps."""

    class Local:
        def __init__(self, x: int) -> None:
            self.x = x

    Local.__module__ = "__main__"
    Local.__qualname__ = "Local"  # pickle finds no such class in __main__: it refuses
    plain = ElementEvent([tv(("k", 1), 5), tv(("k", 2), -1.5), tv("x", 0)], tag="t")
    back = pickle.loads(dumps(plain))
    assert back == plain and back.tag == "t"
    assert [v.timestamp_us for v in back.timestamped_values] == [5_000_000, -1_500_000, 0]
    if dumps is cloudpickle.dumps:
        odd = pickle.loads(dumps(ElementEvent([tv(lambda: 7, 3), tv(Local(4), 4)])))
        (fn, local) = [v.value for v in odd.timestamped_values]
        assert fn() == 7 and local.x == 4
        assert [v.timestamp_us for v in odd.timestamped_values] == [3_000_000, 4_000_000]


def test_add_elements_keeps_columns_and_makes_timestamped_values_only_on_demand():
    """Bare values share the event timestamp; stamped ones keep theirs (a WindowedValue's windows
    are dropped, as before); the TimestampedValue objects appear only when asked for and equal
    the ones the columns describe."""
    stream = TestStream().add_elements(["a", "b"], event_timestamp=7)
    stream.add_elements(["c", tv("d", 2), WindowedValue("e", 3_000_000, GLOBAL_WINDOWS_TUPLE)])
    first, second = stream.events()
    assert first.is_columnar() and first._tvs is None
    assert first.columns() == (["a", "b"], [7_000_000, 7_000_000])
    assert second.columns() == (["c", "d", "e"], [MIN_US, 2_000_000, 3_000_000])
    assert first._tvs is None and second._tvs is None
    assert second.timestamped_values == [tv("c", MIN_TIMESTAMP), tv("d", 2), tv("e", 3)]
    assert len(first) == 2 and len(second) == 3


def test_columnar_and_object_element_events_are_equal_and_validated_alike():
    columns = ElementEvent.from_columns(["x", "y"], [1_000_000, 2_000_000], tag="t")
    objects = ElementEvent([tv("x", 1), tv("y", 2)], tag="t")
    assert columns == objects and objects == columns and hash(columns) == hash(objects)
    assert objects.columns() == columns.columns()
    with pytest.raises(ValueError, match="2 values but 1 timestamps"):
        ElementEvent.from_columns(["x", "y"], [1])
    late = ElementEvent.from_columns(["ok", "bad"], [0, MAX_US])
    with pytest.raises(ValueError, match="element 'bad' has timestamp"):
        TestStream(events=[late])
    with pytest.raises(ValueError, match="element 'bad' has timestamp"):
        TestStream(events=[ElementEvent([tv("ok", 0), tv("bad", MAX_TIMESTAMP)])])


def test_element_event_of_other_objects_is_not_columnar():
    """An ElementEvent made by hand from WindowedValues is replayed as given (with its windows):
    a runner must not read it as columns."""
    wv = WindowedValue("v", 5, GLOBAL_WINDOWS_TUPLE)
    assert not ElementEvent([wv]).is_columnar()
    assert ElementEvent([tv("v", 0)]).is_columnar()


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_element_events_pickle_each_element_on_its_own_and_keep_cycles(dumps):
    """Elements are stored without the pickler's memo, each on its own as Beam encodes them:
    two elements sharing one object come back with equal, separate copies. Cyclic values still
    round-trip (they are pickled with the memo). Extreme timestamps survive the int64 column."""
    shared = {"n": 1}
    cyclic: list = ["c"]
    cyclic.append(cyclic)
    event = ElementEvent.from_columns([shared, shared, "x"], [MIN_US, MAX_US - 1, 0])
    back = pickle.loads(dumps(event))
    a, b, x = back.columns()[0]
    assert a == b == shared and a is not b and x == "x"
    assert back.columns()[1] == [MIN_US, MAX_US - 1, 0]
    loop = pickle.loads(dumps(ElementEvent.from_columns([cyclic], [5])))
    (value,) = loop.columns()[0]
    assert value[0] == "c" and value[1] is value


def _read_node(stream: TestStream):
    p = Pipeline()
    pc = p | stream
    graph = p.to_graph()
    return graph.transforms[graph.pcollections[pc.node_id].producer]


def test_a_stream_of_immutable_values_is_kept_by_reference():
    """As Create: values nothing can change are not pickled into the graph when it is built
    (a run in this process reads the very events), only when the graph leaves the process."""
    stream = TestStream().add_elements([("a", 1), ("b", 2)]).advance_watermark_to(10)
    node = _read_node(stream)
    assert node.payload is not None and node.payload.is_shared
    source = node.payload.load()
    assert source.events()[0] is stream._events[0]  # the same event, no copy
    copied = pickle.loads(pickle.dumps(node.payload)).load()
    assert copied.events() == source.events() and copied.events()[0] is not source.events()[0]


def test_a_stream_of_mutable_values_is_pickled_when_applied():
    rows = [["a", 1]]
    stream = TestStream().add_elements(rows)
    node = _read_node(stream)
    assert node.payload is not None and not node.payload.is_shared
    rows[0][1] = "changed after the TestStream was applied"
    (event,) = node.payload.load().events()
    assert event.columns()[0] == [["a", 1]]
