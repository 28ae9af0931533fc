"""TestStream: a scripted unbounded source for testing streaming pipelines.

A :class:`TestStream` is built as a list of events, in order: elements arrive
(:class:`ElementEvent`), the watermark advances (:class:`WatermarkEvent`) and the processing-time
clock advances (:class:`ProcessingTimeEvent`). Applied to a pipeline it records a ``Read`` node
whose payload is a :class:`TestStreamSource` and whose output is unbounded; a streaming runner
replays the events in order, so a test controls exactly when each element, watermark and clock
move happens relative to the others. :class:`TestStreamSource` is an
:class:`~headrace.model.sources.UnboundedSource`; its :class:`TestStreamReader` replays one
output's events through the unbounded-reader contract (see :mod:`headrace.model.sources`).

As in Beam: an element given without a timestamp gets the current watermark of its output tag
(``MIN_TIMESTAMP`` before the first advance) or ``event_timestamp`` when given; the watermark of
each tag must move strictly forward; processing time advances by positive amounts. Several output
tags make several outputs: applying the stream then gives a dict from tag to PCollection.
"""

from __future__ import annotations

import io
import pickle
from array import array
from collections.abc import Iterable
from typing import Any, NoReturn

from headrace.graph.nodes import Payload
from headrace.model.coders import Coder
from headrace.model.immutable import deeply_immutable
from headrace.model.pvalue import PBegin, PCollection
from headrace.model.sources import UnboundedReader, UnboundedSource
from headrace.model.timestamp import MAX_US, MIN_US, Duration, Timestamp, to_micros
from headrace.model.transforms.ptransform import PTransform
from headrace.model.window import TimestampedValue, WindowedValue

__all__ = [
    "ElementEvent",
    "Event",
    "ProcessingTimeEvent",
    "TestStream",
    "TestStreamError",
    "TestStreamReader",
    "TestStreamSource",
    "WatermarkEvent",
]


class TestStreamError(ValueError, AssertionError):
    """An invalid TestStream event. Beam checks these with ``assert`` (AssertionError); headrace
    raises an error that is both a ValueError and an AssertionError, so code written for either
    catches it."""

    __test__ = False  # not a pytest test class


# The graph tag of the default (None) output.
MAIN_TAG = "main"


class Event:
    """One step of a :class:`TestStream`."""

    __slots__ = ()


class ElementEvent(Event):
    """Elements arriving on output ``tag`` (None: the main output), as TimestampedValues.

    An event made by :meth:`TestStream.add_elements` (or unpickled) keeps its elements as two
    columns, the values and their integer-microsecond timestamps (:meth:`columns`), and makes the
    ``TimestampedValue`` objects of :attr:`timestamped_values` only when they are asked for: a
    stream of many elements is then cheap to build, to store in the pipeline graph and to replay.

    >>> event = ElementEvent([TimestampedValue("a", 1), TimestampedValue("b", 2.5)])
    >>> event.columns()
    (['a', 'b'], [1000000, 2500000])
    >>> ElementEvent.from_columns(["a", "b"], [1_000_000, 2_500_000]) == event
    True
    """

    __slots__ = ("_stamps", "_tvs", "_values", "tag")

    def __init__(self, timestamped_values: Iterable[TimestampedValue], tag: Any = None) -> None:
        self._tvs: list[Any] | None = list(timestamped_values)
        self._values: list[Any] | None = None
        self._stamps: list[int] | None = None
        self.tag = tag

    @classmethod
    def from_columns(cls, values: list[Any], stamps: list[int], tag: Any = None) -> ElementEvent:
        """An event of ``values[i]`` at ``stamps[i]`` (int microseconds); the lists are kept."""
        if len(values) != len(stamps):
            raise ValueError(
                f"ElementEvent.from_columns: {len(values)} values but {len(stamps)} timestamps"
            )
        event = cls.__new__(cls)
        event._tvs = None
        event._values, event._stamps = values, stamps
        event.tag = tag
        return event

    @property
    def timestamped_values(self) -> list[Any]:
        """The elements as ``TimestampedValue`` s (made on first use from the columns)."""
        if self._tvs is None:
            assert self._values is not None and self._stamps is not None
            self._tvs = list(map(_stamped, self._values, self._stamps))
        return self._tvs

    def is_columnar(self) -> bool:
        """Whether every element is a value with a timestamp (always, unless the event was made
        from objects other than ``TimestampedValue`` s, which a runner must then take as given)."""
        if self._values is not None:
            return True
        assert self._tvs is not None
        return all(type(tv) is TimestampedValue for tv in self._tvs)

    def columns(self) -> tuple[list[Any], list[int]]:
        """The values and their timestamps (int microseconds), in order. Needs
        :meth:`is_columnar`."""
        if self._values is None or self._stamps is None:
            tvs = self.timestamped_values
            return [tv.value for tv in tvs], [tv.timestamp_us for tv in tvs]
        return self._values, self._stamps

    def __len__(self) -> int:
        return len(self._values) if self._values is not None else len(self._tvs or ())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ElementEvent) or self.tag != other.tag:
            return False
        if self._values is not None and other._values is not None:
            return self._values == other._values and self._stamps == other._stamps
        return self.timestamped_values == other.timestamped_values

    def __hash__(self) -> int:
        return hash((tuple(self.timestamped_values), self.tag))

    def __repr__(self) -> str:
        tag = "" if self.tag is None else f", tag={self.tag!r}"
        return f"ElementEvent({self.timestamped_values!r}{tag})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Stored as two columns, values and integer timestamps, pickled by the C pickler when it
        # can reproduce them: a TestStream of many elements is pickled into the pipeline graph,
        # and one TimestampedValue object per element made that the slowest part of a run.
        # Values plain pickle refuses, or would store as references into __main__ (which a
        # worker process cannot import), go as they are to the caller's pickler (cloudpickle).
        # The timestamps go as one int64 array (bytes to the pickler, not one int each).
        values, stamp_list = self.columns()
        stamps = array("q", stamp_list)
        try:
            data = _dumps_values(values)
        except Exception:  # lambdas, local classes, ...: cloudpickle stores those by value
            return (_element_event, (values, stamps, self.tag))
        if b"__main__" in data:
            return (_element_event, (values, stamps, self.tag))
        return (_element_event_from_pickle, (data, stamps, self.tag))


def _stamped(value: Any, timestamp_us: int) -> TimestampedValue:
    """``TimestampedValue(value, Timestamp(micros=timestamp_us))`` without converting the
    timestamp."""
    tv = TimestampedValue.__new__(TimestampedValue)
    tv.value, tv.timestamp_us = value, timestamp_us
    return tv


def _dumps_values(values: list[Any]) -> bytes:
    """``values`` pickled without the pickler's memo when they have no cycles.

    The memo (one entry per tuple and string, to share repeated references) made pickling a
    stream of many small elements cost as much as a run over them. Without it every element is
    stored on its own, as Beam encodes each element on its own: two elements holding the same
    object come back holding equal copies. Cyclic values need the memo and get it.
    """
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.fast = True  # no memo (CPython refuses cycles in this mode: ValueError)
    try:
        pickler.dump(values)
    except ValueError:
        return pickle.dumps(values, protocol=pickle.HIGHEST_PROTOCOL)
    return buffer.getvalue()


def _element_event(values: list[Any], stamps: Iterable[int], tag: Any) -> ElementEvent:
    return ElementEvent.from_columns(list(values), _stamp_list(stamps), tag)


def _element_event_from_pickle(data: bytes, stamps: Iterable[int], tag: Any) -> ElementEvent:
    return ElementEvent.from_columns(pickle.loads(data), _stamp_list(stamps), tag)


def _stamp_list(stamps: Iterable[int]) -> list[int]:
    # an int64 array (or, from older pickles, a list)
    return stamps.tolist() if isinstance(stamps, array) else list(stamps)


def _too_late(value: Any, timestamp_us: int) -> NoReturn:
    raise TestStreamError(
        f"TestStream: element {value!r} has timestamp {Timestamp(micros=timestamp_us)!r}; element "
        "timestamps must be before MAX_TIMESTAMP (after advance_watermark_to_infinity, give late "
        "elements explicit TimestampedValue timestamps)"
    )


class WatermarkEvent(Event):
    """The watermark of output ``tag`` advancing to ``new_watermark``."""

    __slots__ = ("new_watermark", "tag")

    def __init__(self, new_watermark: Any, tag: Any = None) -> None:
        self.new_watermark = Timestamp.of(new_watermark)
        self.tag = tag

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, WatermarkEvent)
            and self.new_watermark == other.new_watermark
            and self.tag == other.tag
        )

    def __hash__(self) -> int:
        return hash((self.new_watermark.micros, self.tag))

    def __repr__(self) -> str:
        tag = "" if self.tag is None else f", tag={self.tag!r}"
        return f"WatermarkEvent({self.new_watermark!r}{tag})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (WatermarkEvent, (self.new_watermark, self.tag))


class ProcessingTimeEvent(Event):
    """The processing-time clock advancing by ``advance_by`` (a Duration)."""

    __slots__ = ("advance_by",)

    def __init__(self, advance_by: Any) -> None:
        self.advance_by = Duration.of(advance_by)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProcessingTimeEvent) and self.advance_by == other.advance_by

    def __hash__(self) -> int:
        return hash(self.advance_by.micros)

    def __repr__(self) -> str:
        return f"ProcessingTimeEvent({self.advance_by!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (ProcessingTimeEvent, (self.advance_by,))


def _shareable(events: Iterable[Event]) -> bool:
    """Whether every event holds only values nothing can change (see :func:`deeply_immutable`)."""
    for event in events:
        if isinstance(event, ElementEvent):
            if event._values is None:  # TimestampedValue objects as given: pickled
                return False
            if not deeply_immutable(event._values, set(map(type, event._values))):
                return False
    return True


class TestStreamSource(UnboundedSource):
    """The payload of a TestStream's ``Read`` node: its events and output tags.

    ``output_tags`` maps each user tag (None for the main output) to its graph output tag. A
    runner may replay :meth:`events` itself (it then also drives its processing-time clock with
    the :class:`ProcessingTimeEvent` s), or read a single output through the
    :class:`~headrace.model.sources.UnboundedSource` contract: ``create_reader`` (on a stream with
    one output, or on ``for_tag(tag)``) gives a :class:`TestStreamReader`.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, events: Iterable[Event], output_tags: dict[Any, str]) -> None:
        self._events = tuple(events)
        self.output_tags = dict(output_tags)

    def events(self) -> tuple[Event, ...]:
        """The events, in the order they happen."""
        return self._events

    def is_bounded(self) -> bool:
        """A TestStream is unbounded."""
        return False

    def for_tag(self, tag: Any) -> TestStreamSource:
        """The events of one output: its elements and watermarks, and every clock move."""
        if tag not in self.output_tags:
            raise KeyError(f"TestStream has no output tagged {tag!r}; it has {self._tag_list()}")
        events = [
            e
            for e in self._events
            if isinstance(e, ProcessingTimeEvent) or getattr(e, "tag", None) == tag
        ]
        return TestStreamSource(events, {tag: self.output_tags[tag]})

    def create_reader(self, checkpoint: Any = None) -> TestStreamReader:
        """A reader replaying the events from ``checkpoint`` (the start when None)."""
        if len(self.output_tags) > 1:
            raise ValueError(
                f"this TestStream has outputs {self._tag_list()}; a reader reads one output: "
                "use source.for_tag(tag).create_reader()"
            )
        return TestStreamReader(self._events, checkpoint)

    def _tag_list(self) -> list[Any]:
        return sorted(self.output_tags, key=lambda t: (t is not None, str(t)))

    def default_label(self) -> str:
        return "TestStream"

    def display_data(self) -> dict[str, Any]:
        return {"events": len(self._events), "tags": sorted(map(str, self.output_tags))}

    def __repr__(self) -> str:
        return f"TestStreamSource(events={len(self._events)}, tags={self._tag_list()})"


class TestStreamReader(UnboundedReader):
    """Replays the events of a one-output TestStream through the unbounded-reader contract.

    ``poll`` returns the elements up to the next watermark or clock move; a watermark or clock
    move is consumed by a poll of its own that returns ``[]``, so the runner sees each one between
    element batches (through :meth:`watermark_us` and :meth:`processing_time_advance_us`). After
    the last event the stream is done and its watermark is the end of time, as in Beam. The
    checkpoint is ``(event index, elements of that event already returned)``.

    >>> stream = TestStream().add_elements([1, 2]).advance_watermark_to(10).add_elements([3])
    >>> reader = TestStreamSource(stream.events(), {None: "main"}).create_reader()
    >>> [tv.value for tv in reader.poll(100, 0)], reader.watermark_us() < 0
    ([1, 2], True)
    >>> reader.poll(100, 0), reader.watermark_us()
    ([], 10000000)
    >>> [tv.value for tv in reader.poll(100, 0)], reader.is_done(), reader.watermark_us() == MAX_US
    ([3], True, True)
    """

    __test__ = False  # not a pytest test class

    def __init__(self, events: tuple[Event, ...], checkpoint: Any = None) -> None:
        self._events = events
        pos, offset = checkpoint if checkpoint is not None else (0, 0)
        self._pos = int(pos)
        self._offset = int(offset)
        self._watermark_us = MIN_US
        self._clock_us = 0
        for event in events[: self._pos]:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        if isinstance(event, WatermarkEvent):
            self._watermark_us = event.new_watermark.micros
        elif isinstance(event, ProcessingTimeEvent):
            self._clock_us += event.advance_by.micros

    def poll(self, max_elements: int, timeout_s: float) -> list[Any]:
        """The next elements, up to the next watermark or clock move (never waits)."""
        out: list[Any] = []
        events = self._events
        while self._pos < len(events) and len(out) < max_elements:
            event = events[self._pos]
            if isinstance(event, ElementEvent):
                values = event.timestamped_values
                stop = self._offset + max_elements - len(out)
                out.extend(values[self._offset : stop])
                if stop >= len(values):
                    self._pos += 1
                    self._offset = 0
                else:
                    self._offset = stop
                continue
            if not out:
                self._apply(event)
                self._pos += 1
            break
        return out

    def watermark_us(self) -> int:
        """The last watermark replayed; the end of time once every event is replayed."""
        return MAX_US if self._pos >= len(self._events) else self._watermark_us

    def processing_time_advance_us(self) -> int:
        """How far the replayed clock moves have advanced processing time, in microseconds."""
        return self._clock_us

    def checkpoint(self) -> tuple[int, int]:
        return (self._pos, self._offset)

    def is_done(self) -> bool:
        return self._pos >= len(self._events)


class TestStream(PTransform):
    """A scripted unbounded input: elements, watermark moves and clock moves, in order.

    Builder methods return the stream, so calls chain.

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.window import TimestampedValue
    >>> stream = (
    ...     TestStream()
    ...     .add_elements(["a"], event_timestamp=5)
    ...     .advance_watermark_to(10)
    ...     .add_elements([TimestampedValue("b", 12), "c"])
    ...     .advance_processing_time(5)
    ...     .advance_watermark_to_infinity()
    ... )
    >>> for event in stream.events():
    ...     print(event)
    ElementEvent([TimestampedValue('a', 5)])
    WatermarkEvent(Timestamp(10))
    ElementEvent([TimestampedValue('b', 12), TimestampedValue('c', 10)])
    ProcessingTimeEvent(Duration(5))
    WatermarkEvent(Timestamp(9223372036854.775807))
    >>> events = Pipeline() | stream
    >>> events.is_bounded
    False
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        coder: Coder | None = None,
        events: Iterable[Event] | None = None,
        output_tags: Iterable[Any] | None = None,
        endpoint: str | None = None,
    ) -> None:
        super().__init__()
        if coder is not None and not isinstance(coder, Coder):
            raise TypeError(f"TestStream(coder=...) needs a Coder or None, got {coder!r}")
        if endpoint:
            raise NotImplementedError(
                "TestStream(endpoint=...) (a remote TestStreamService) is not supported; "
                "script the events with add_elements / advance_watermark_to instead"
            )
        self.coder = coder
        self.watermarks: dict[Any, Timestamp] = {None: Timestamp(micros=MIN_US)}
        self.output_tags: set[Any] = set(output_tags) if output_tags else set()
        self._events: list[Event] = []
        for event in events or ():
            if isinstance(event, (ElementEvent, WatermarkEvent)):
                self.output_tags.add(event.tag)
            self._add(event)

    def _add(self, event: Event) -> None:
        if isinstance(event, ElementEvent):
            if event.is_columnar():
                values, stamps = event.columns()
                if stamps and max(stamps) >= MAX_US:
                    at = next(i for i, t in enumerate(stamps) if t >= MAX_US)
                    _too_late(values[at], stamps[at])
            else:
                for tv in event.timestamped_values:
                    if tv.timestamp_us >= MAX_US:
                        _too_late(tv.value, tv.timestamp_us)
        elif isinstance(event, WatermarkEvent):
            current = self.watermarks.setdefault(event.tag, Timestamp(micros=MIN_US))
            if event.new_watermark.micros <= current.micros:
                tag = "" if event.tag is None else f" of output {event.tag!r}"
                raise TestStreamError(
                    f"TestStream: advance_watermark_to({event.new_watermark!r}) does not move the "
                    f"watermark{tag} forward from {current!r}; watermarks must strictly increase, "
                    "so pass a later time"
                )
            self.watermarks[event.tag] = event.new_watermark
        elif isinstance(event, ProcessingTimeEvent):
            if event.advance_by.micros <= 0:
                raise TestStreamError(
                    f"TestStream: advance_processing_time({event.advance_by!r}) must advance the "
                    "clock by a positive duration"
                )
        else:
            raise TypeError(
                f"TestStream: {event!r} is not an ElementEvent, WatermarkEvent or "
                "ProcessingTimeEvent"
            )
        self._events.append(event)

    def add_elements(
        self, elements: Iterable[Any], tag: Any = None, event_timestamp: Any = None
    ) -> TestStream:
        """Elements arriving on output ``tag``.

        Each may be a bare value, a ``TimestampedValue`` or a ``WindowedValue`` (its windows are
        ignored). Bare values get ``event_timestamp`` if given, else the tag's current watermark.
        """
        # A str is iterated like any iterable, as Beam does (apache_beam/testing/
        # test_stream.py): add_elements("ab") adds "a" and "b".
        self.output_tags.add(tag)
        current = self.watermarks.get(tag)
        if current is None:  # as Beam: a new tag starts at the minimum timestamp
            current = self.watermarks[tag] = Timestamp(micros=MIN_US)
        default_us = current.micros if event_timestamp is None else to_micros(event_timestamp)
        values = list(elements)
        stamped = (TimestampedValue, WindowedValue)
        if any(issubclass(t, stamped) for t in set(map(type, values))):  # C loop, not per element
            stamps = [e.timestamp_us if isinstance(e, stamped) else default_us for e in values]
            values = [e.value if isinstance(e, stamped) else e for e in values]
        else:  # bare values (the common case): one timestamp for all, no object per element
            stamps = [default_us] * len(values)
        self._add(ElementEvent.from_columns(values, stamps, tag))
        return self

    def advance_watermark_to(self, new_watermark: Any, tag: Any = None) -> TestStream:
        """Move the watermark of output ``tag`` to ``new_watermark`` (a Timestamp or seconds)."""
        self.output_tags.add(tag)
        self._add(WatermarkEvent(new_watermark, tag))
        return self

    def advance_watermark_to_infinity(self, tag: Any = None) -> TestStream:
        """Move the watermark of output ``tag`` to the end of time: that output is complete."""
        return self.advance_watermark_to(Timestamp(micros=MAX_US), tag)

    def advance_processing_time(self, advance_by: Any) -> TestStream:
        """Advance the processing-time clock by ``advance_by`` (a Duration or seconds)."""
        self._add(ProcessingTimeEvent(advance_by))
        return self

    def events(self) -> list[Event]:
        """The events so far, in order (a copy)."""
        return list(self._events)

    def _graph_tags(self) -> dict[Any, str]:
        tags = self.output_tags or {None}
        out: dict[Any, str] = {}
        for tag in sorted(tags, key=lambda t: (t is not None, str(t))):
            if tag is not None and not isinstance(tag, str):
                raise TypeError(f"TestStream output tags must be strings or None, got {tag!r}")
            if tag == MAIN_TAG and None in tags:
                raise ValueError(
                    f"TestStream uses both tag None and tag {MAIN_TAG!r}, which name the same "
                    "output; rename the tag"
                )
            out[tag] = MAIN_TAG if tag is None else tag
        return out

    def expand(self, pbegin: PBegin) -> Any:
        if not isinstance(pbegin, PBegin):
            raise TypeError(f"{self.label!r} must be applied to a pipeline, not {pbegin!r}")
        tags = self._graph_tags()
        source = TestStreamSource(self._events, tags)
        multi = list(tags) != [None]
        # Events of values nothing can change are kept by reference, as Create keeps its values:
        # pickled only when the graph goes to another process, never for a run in this one.
        result = pbegin.pipeline._apply_primitive(
            self,
            "Read",
            [],
            payload=Payload.shared(source) if _shareable(self._events) else source,
            outputs=tuple(tags.values()),
            bounded=False,
            multi_output=multi,
        )
        if not multi:
            return result
        outputs: dict[Any, PCollection] = {tag: result[graph] for tag, graph in tags.items()}
        return outputs
