"""Trigger transcripts: scripted streaming runs with the panes they must emit.

Every ``tests/runners/transcripts/*.yaml`` file (format: ``transcripts/README.md``) becomes one
test: a pipeline ``TestStream -> WindowInto -> GroupByKey -> reify`` runs through the direct
runner in streaming mode, and the reified panes (key, window, sorted values, output timestamp,
PaneInfo) must equal the transcript's ``expected`` list; the ``droppedDueToLateness`` counter of
the grouping must equal ``dropped``. The expected panes were worked out by hand from Beam's
documented semantics, not recorded from a run.
"""

from __future__ import annotations

import pathlib
from collections import Counter
from typing import Any, NamedTuple

import pytest
import yaml

import headrace.beam as beam
from headrace.beam import window
from headrace.beam.testing.test_stream import TestStream
from headrace.beam.testing.util import assert_that, equal_to
from headrace.beam.transforms import trigger as tr
from headrace.model.result import PipelineState
from headrace.model.timestamp import Duration, Timestamp, to_micros

TRANSCRIPTS = pathlib.Path(__file__).parent / "transcripts"
GROUP_LABEL = "Group"


# -- a window function with a transformed output time (for OUTPUT_AT_EARLIEST_TRANSFORMED) -------


class ShiftedOutputFixedWindows(window.FixedWindows):
    """FixedWindows whose output time for an element is ``timestamp + shift``, capped at the
    window's max timestamp (Beam requires a shifted output time to stay inside the window)."""

    def __init__(self, size: Any, shift: Any) -> None:
        super().__init__(size)
        self.shift_us = to_micros(shift)

    def get_transformed_output_time(self, w: Any, input_timestamp: Any) -> Any:
        shifted = Timestamp.of(input_timestamp).micros + self.shift_us
        return Timestamp(micros=min(shifted, w.max_timestamp_us()))

    def __repr__(self) -> str:
        return f"ShiftedOutputFixedWindows({self.size_us / 1e6:g}, {self.shift_us / 1e6:g})"


# -- the transcript format ---------------------------------------------------------------------


class Pane(NamedTuple):
    """One emitted pane, in a form that compares exactly (times in microseconds)."""

    key: Any
    window: tuple[Any, ...]  # ("global",) or (start_us, end_us)
    values: tuple[Any, ...]
    timestamp_us: int
    is_first: bool
    is_last: bool
    timing: str
    index: int
    nonspeculative_index: int


class TranscriptError(ValueError):
    """A transcript file does not follow the format of transcripts/README.md."""


def _fail(name: str, message: str) -> TranscriptError:
    return TranscriptError(
        f"transcript {name}: {message} (see tests/runners/transcripts/README.md)"
    )


def _check_keys(name: str, where: str, mapping: Any, required: set[str], optional: set[str]):
    if not isinstance(mapping, dict):
        raise _fail(name, f"{where} must be a mapping, got {mapping!r}")
    missing = required - set(mapping)
    unknown = set(mapping) - required - optional
    if missing:
        raise _fail(name, f"{where} lacks {sorted(missing)}")
    if unknown:
        raise _fail(name, f"{where} has unknown keys {sorted(unknown)}")


def _seconds(name: str, value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(name, f"{where} must be a number of seconds, got {value!r}")
    return to_micros(value)


_BARE_TRIGGERS = {"DefaultTrigger": tr.DefaultTrigger, "Always": tr.Always}
_COMPOSITES = {"AfterAny": tr.AfterAny, "AfterAll": tr.AfterAll, "AfterEach": tr.AfterEach}


def parse_trigger(spec: Any, name: str = "<inline>") -> tr.TriggerFn:
    """The trigger a nested transcript spec describes, e.g. ``{Repeatedly: {AfterCount: 2}}``."""
    if isinstance(spec, str):
        if spec in _BARE_TRIGGERS:
            return _BARE_TRIGGERS[spec]()
        if spec == "AfterWatermark":
            return tr.AfterWatermark()
        raise _fail(name, f"unknown trigger {spec!r}")
    if not isinstance(spec, dict) or len(spec) != 1:
        raise _fail(name, f"a trigger is a name or a one-key mapping, got {spec!r}")
    ((kind, arg),) = spec.items()
    if kind == "AfterCount":
        return tr.AfterCount(arg)
    if kind == "AfterProcessingTime":
        _seconds(name, arg, "AfterProcessingTime")
        return tr.AfterProcessingTime(arg)
    if kind == "Repeatedly":
        return tr.Repeatedly(parse_trigger(arg, name))
    if kind == "AfterWatermark":
        arg = arg or {}
        _check_keys(name, "AfterWatermark", arg, set(), {"early", "late"})
        early = parse_trigger(arg["early"], name) if "early" in arg else None
        late = parse_trigger(arg["late"], name) if "late" in arg else None
        return tr.AfterWatermark(early=early, late=late)
    if kind in _COMPOSITES:
        if not isinstance(arg, list) or not arg:
            raise _fail(name, f"{kind} takes a non-empty list of triggers, got {arg!r}")
        return _COMPOSITES[kind](*(parse_trigger(t, name) for t in arg))
    if kind == "OrFinally":
        if not isinstance(arg, list) or len(arg) != 2:
            raise _fail(name, f"OrFinally takes [trigger, finally_trigger], got {arg!r}")
        return tr.OrFinally(parse_trigger(arg[0], name), parse_trigger(arg[1], name))
    raise _fail(name, f"unknown trigger {kind!r}")


def parse_window_fn(spec: Any, name: str) -> Any:
    """The window function of a transcript: ``global`` or ``{fixed|sliding|...: {...}}``."""
    if spec == "global":
        return window.GlobalWindows()
    if not isinstance(spec, dict) or len(spec) != 1:
        raise _fail(name, f"window_fn must be 'global' or a one-key mapping, got {spec!r}")
    ((kind, args),) = spec.items()
    if kind == "fixed":
        _check_keys(name, "fixed", args, {"size"}, {"offset"})
        return window.FixedWindows(args["size"], args.get("offset", 0))
    if kind == "sliding":
        _check_keys(name, "sliding", args, {"size", "period"}, set())
        return window.SlidingWindows(args["size"], args["period"])
    if kind == "sessions":
        _check_keys(name, "sessions", args, {"gap"}, set())
        return window.Sessions(args["gap"])
    if kind == "shifted_output_fixed":
        _check_keys(name, "shifted_output_fixed", args, {"size", "shift"}, set())
        return ShiftedOutputFixedWindows(args["size"], args["shift"])
    raise _fail(name, f"unknown window_fn {kind!r}")


def _window_key(name: str, spec: Any) -> tuple[Any, ...]:
    if spec == "global":
        return ("global",)
    if isinstance(spec, list) and len(spec) == 2:
        return (_seconds(name, spec[0], "window start"), _seconds(name, spec[1], "window end"))
    raise _fail(name, f"a pane's window is 'global' or [start, end], got {spec!r}")


def _actual_window_key(w: Any) -> tuple[Any, ...]:
    if isinstance(w, window.IntervalWindow):
        return (w.start_us, w.end_us)
    return ("global",)


def _sorted_values(values: Any) -> tuple[Any, ...]:
    return tuple(sorted(values, key=lambda v: (type(v).__name__, v)))


class Transcript(NamedTuple):
    name: str
    description: str
    window_fn: Any
    trigger: tr.TriggerFn
    accumulation_mode: Any
    allowed_lateness: Any
    timestamp_combiner: Any
    stream: TestStream
    expected: list[Pane]
    dropped: int
    features: frozenset[str]
    fire_at_expiry: bool


_ELEMENT_KEYS = ({"value", "timestamp"}, {"key"})
_PANE_KEYS = (
    {"window", "values", "timestamp", "is_first", "is_last", "timing", "index"},
    {"key", "nonspeculative_index"},
)
_TIMINGS = {"EARLY", "ON_TIME", "LATE"}
_MODES = {
    "discarding": tr.AccumulationMode.DISCARDING,
    "accumulating": tr.AccumulationMode.ACCUMULATING,
}


def _build_stream(name: str, events: Any) -> TestStream:
    if not isinstance(events, list) or not events:
        raise _fail(name, "events must be a non-empty list")
    stream = TestStream()
    for i, event in enumerate(events):
        where = f"event {i + 1}"
        if event == "end":
            stream = stream.advance_watermark_to_infinity()
            continue
        if not isinstance(event, dict) or len(event) != 1:
            raise _fail(name, f"{where} must be 'end' or a one-key mapping, got {event!r}")
        ((kind, arg),) = event.items()
        if kind == "elements":
            if not isinstance(arg, list) or not arg:
                raise _fail(name, f"{where}: elements takes a non-empty list")
            values = []
            for e in arg:
                _check_keys(name, f"{where} element", e, *_ELEMENT_KEYS)
                ts = _seconds(name, e["timestamp"], f"{where} timestamp")
                values.append(
                    window.TimestampedValue((e.get("key", "k"), e["value"]), Timestamp(micros=ts))
                )
            stream = stream.add_elements(values)
        elif kind == "advance_watermark":
            stream = stream.advance_watermark_to(Timestamp(micros=_seconds(name, arg, where)))
        elif kind == "advance_processing_time":
            stream = stream.advance_processing_time(Duration(micros=_seconds(name, arg, where)))
        else:
            raise _fail(name, f"{where}: unknown event {kind!r}")
    return stream


def _expected_pane(name: str, i: int, spec: Any) -> Pane:
    where = f"expected pane {i + 1}"
    _check_keys(name, where, spec, *_PANE_KEYS)
    win = _window_key(name, spec["window"])
    ts = spec["timestamp"]
    if ts == "end_of_window":
        if win == ("global",):
            ts_us = window.GlobalWindow().max_timestamp_us()
        else:
            ts_us = win[1] - 1
    else:
        ts_us = _seconds(name, ts, f"{where} timestamp")
    if spec["timing"] not in _TIMINGS:
        raise _fail(name, f"{where}: timing must be one of {sorted(_TIMINGS)}")
    for flag in ("is_first", "is_last"):
        if not isinstance(spec[flag], bool):
            raise _fail(name, f"{where}: {flag} must be true or false")
    default_nonspec = -1 if spec["timing"] == "EARLY" else None
    nonspec = spec.get("nonspeculative_index", default_nonspec)
    if nonspec is None:
        raise _fail(name, f"{where}: a non-EARLY pane needs nonspeculative_index")
    return Pane(
        spec.get("key", "k"),
        win,
        _sorted_values(spec["values"]),
        ts_us,
        spec["is_first"],
        spec["is_last"],
        spec["timing"],
        spec["index"],
        nonspec,
    )


def _features(trigger: tr.TriggerFn) -> set[str]:
    out = {type(trigger).__name__}
    if isinstance(trigger, tr.AfterWatermark):  # early/late are kept wrapped in Repeatedly
        subs = [t.underlying for t in (trigger.early, trigger.late) if t is not None]
    else:
        subs = [trigger.underlying] if isinstance(trigger, tr.Repeatedly) else []
    for sub in subs:
        out |= _features(sub)
    for sub in getattr(trigger, "triggers", ()):
        out |= _features(sub)
    return out


def load_transcript(path: pathlib.Path) -> Transcript:
    """Read and validate one transcript file."""
    name = path.stem
    doc = yaml.safe_load(path.read_text())
    _check_keys(
        name, "the document", doc, {"description", "windowing", "events", "expected"}, {"dropped"}
    )
    w = doc["windowing"]
    _check_keys(
        name,
        "windowing",
        w,
        {"window_fn", "trigger"},
        {"accumulation_mode", "allowed_lateness", "timestamp_combiner", "fire_at_expiry"},
    )
    window_fn = parse_window_fn(w["window_fn"], name)
    trigger = parse_trigger(w["trigger"], name)
    mode_name = w.get("accumulation_mode", "discarding")
    if mode_name not in _MODES:
        raise _fail(name, f"accumulation_mode must be one of {sorted(_MODES)}")
    lateness = w.get("allowed_lateness", 0)
    _seconds(name, lateness, "allowed_lateness")
    combiner_name = w.get("timestamp_combiner", "OUTPUT_AT_EOW")
    try:
        combiner = window.TimestampCombiner[combiner_name]
    except KeyError:
        raise _fail(name, f"unknown timestamp_combiner {combiner_name!r}") from None
    fire_at_expiry = w.get("fire_at_expiry", False)
    if not isinstance(fire_at_expiry, bool):
        raise _fail(name, f"fire_at_expiry must be true or false, got {fire_at_expiry!r}")
    expected = doc["expected"] or []
    if not isinstance(expected, list):
        raise _fail(name, "expected must be a list of panes")
    panes = [_expected_pane(name, i, p) for i, p in enumerate(expected)]
    dropped = doc.get("dropped", 0)
    if isinstance(dropped, bool) or not isinstance(dropped, int) or dropped < 0:
        raise _fail(name, f"dropped must be a count, got {dropped!r}")
    window_kind = "global" if w["window_fn"] == "global" else next(iter(w["window_fn"]))
    features = _features(trigger) | {mode_name, combiner_name, f"window:{window_kind}"}
    if dropped:
        features.add("dropped")
    if fire_at_expiry:
        features.add("fire_at_expiry")
    if any(p.timing == "LATE" for p in panes):
        features.add("late_pane")
    return Transcript(
        name,
        doc["description"],
        window_fn,
        trigger,
        _MODES[mode_name],
        lateness,
        combiner,
        _build_stream(name, doc["events"]),
        panes,
        dropped,
        frozenset(features),
        fire_at_expiry,
    )


class ReifyPanes(beam.DoFn):
    """Each grouped element as a :class:`Pane`."""

    def process(
        self,
        kv,
        w=beam.DoFn.WindowParam,
        timestamp=beam.DoFn.TimestampParam,
        pane=beam.DoFn.PaneInfoParam,
    ):
        key, values = kv
        yield Pane(
            key,
            _actual_window_key(w),
            _sorted_values(values),
            Timestamp.of(timestamp).micros,
            pane.is_first,
            pane.is_last,
            pane.timing.name,
            pane.index,
            pane.nonspeculative_index,
        )


def _dropped_count(result: Any) -> int:
    counters = result.metrics().query(
        beam.metrics.MetricsFilter().with_name("droppedDueToLateness")
    )["counters"]
    return sum(m.committed for m in counters if m.key.step == GROUP_LABEL)


# -- the tests ---------------------------------------------------------------------------------

PATHS = sorted(TRANSCRIPTS.glob("*.yaml"))


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_transcript(path: pathlib.Path) -> None:
    t = load_transcript(path)
    p = beam.Pipeline()
    grouped = (
        p
        | t.stream
        | beam.WindowInto(
            t.window_fn,
            trigger=t.trigger,
            accumulation_mode=t.accumulation_mode,
            timestamp_combiner=t.timestamp_combiner,
            allowed_lateness=t.allowed_lateness,
            fire_at_expiry=t.fire_at_expiry,
        )
        | GROUP_LABEL >> beam.GroupByKey()
    )
    assert_that(grouped | beam.ParDo(ReifyPanes()), equal_to(t.expected))
    result = p.run()
    assert result.wait_until_finish() == PipelineState.DONE
    assert _dropped_count(result) == t.dropped, f"{t.name}: elements dropped as late or closed"


def test_transcripts_cover_every_trigger_mode_combiner_and_window() -> None:
    covered: Counter[str] = Counter()
    for path in PATHS:
        covered.update(load_transcript(path).features)
    wanted = {
        "DefaultTrigger",
        "AfterWatermark",
        "AfterProcessingTime",
        "AfterCount",
        "Repeatedly",
        "AfterAny",
        "AfterAll",
        "AfterEach",
        "OrFinally",
        "Always",
        "discarding",
        "accumulating",
        "OUTPUT_AT_EOW",
        "OUTPUT_AT_EARLIEST",
        "OUTPUT_AT_LATEST",
        "OUTPUT_AT_EARLIEST_TRANSFORMED",
        "window:global",
        "window:fixed",
        "window:sliding",
        "window:sessions",
        "dropped",
        "late_pane",
    }
    assert wanted - set(covered) == set()
    assert len(PATHS) >= 25


def test_trigger_specs_build_the_named_triggers() -> None:
    spec = {
        "OrFinally": [
            {"Repeatedly": {"AfterAny": [{"AfterCount": 2}, {"AfterProcessingTime": 5}]}},
            {"AfterWatermark": {"early": {"AfterCount": 1}, "late": "Always"}},
        ]
    }
    assert parse_trigger(spec) == tr.OrFinally(
        tr.Repeatedly(tr.AfterAny(tr.AfterCount(2), tr.AfterProcessingTime(5))),
        tr.AfterWatermark(early=tr.AfterCount(1), late=tr.Always()),
    )
    assert parse_trigger({"AfterEach": ["DefaultTrigger", {"AfterAll": ["AfterWatermark"]}]}) == (
        tr.AfterEach(tr.DefaultTrigger(), tr.AfterAll(tr.AfterWatermark()))
    )


@pytest.mark.parametrize(
    "spec, message",
    [
        ("Never", "unknown trigger 'Never'"),
        ({"AfterCount": 2, "Always": None}, "one-key mapping"),
        ({"OrFinally": [{"AfterCount": 1}]}, "OrFinally takes"),
        ({"AfterWatermark": {"eraly": {"AfterCount": 1}}}, "unknown keys ['eraly']"),
    ],
)
def test_bad_trigger_specs_are_refused_with_the_reason(spec: Any, message: str) -> None:
    with pytest.raises(TranscriptError) as info:
        parse_trigger(spec, "t")
    assert message in str(info.value)


def test_a_transcript_with_a_typo_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(
        "description: x\n"
        "windowing: {window_fn: global, trigger: DefaultTrigger}\n"
        "events: [{elements: [{value: 1, timestamp: 1}]}, end]\n"
        "expected:\n"
        "  - {window: global, values: [1], timestamp: end_of_window, is_first: true,\n"
        "     is_last: true, timing: ON_TIME, index: 0, nonspecualtive_index: 0}\n"
    )
    with pytest.raises(TranscriptError, match="unknown keys"):
        load_transcript(path)


def test_the_shifted_window_fn_pickles() -> None:
    import pickle

    import cloudpickle

    fn = ShiftedOutputFixedWindows(10, 3)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        back = pickle.loads(dumps(fn))
        w = window.IntervalWindow(0, 10)
        assert back.get_transformed_output_time(w, Timestamp(2)) == Timestamp(5)
        assert back.get_transformed_output_time(w, Timestamp(8)) == Timestamp(micros=9_999_999)
