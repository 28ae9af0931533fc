"""Tests of headrace.model.userstate: state and timer specs, @on_timer, discovery and validation."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

from headrace.model.coders import StrUtf8Coder, VarIntCoder
from headrace.model.transforms.combinefns import CountCombineFn
from headrace.model.transforms.dofn import CombineFn, DoFn
from headrace.model.userstate import (
    BagStateSpec,
    CombiningValueStateSpec,
    ReadModifyWriteStateSpec,
    SetStateSpec,
    StateSpec,
    TimeDomain,
    TimerSpec,
    check_merging_windows,
    describe_stateful_dofn,
    get_dofn_specs,
    get_state_specs,
    get_timer_specs,
    is_stateful_dofn,
    on_timer,
    timer_callbacks,
    validate_stateful_dofn,
)

# -- module-level DoFns (picklable by reference) ---------------------------------------------------

BUFFER = BagStateSpec("buffer", VarIntCoder())
TOTAL = CombiningValueStateSpec("total", sum)
FLUSH = TimerSpec("flush", TimeDomain.WATERMARK)
EXPIRY = TimerSpec("expiry", TimeDomain.REAL_TIME)


class BufferDoFn(DoFn):
    def process(
        self,
        kv,
        buffer=DoFn.StateParam(BUFFER),
        flush=DoFn.TimerParam(FLUSH),
        window=DoFn.WindowParam,
    ):
        buffer.add(kv[1])
        flush.set(window.max_timestamp())

    @on_timer(FLUSH)
    def on_flush(self, key=DoFn.KeyParam, buffer=DoFn.StateParam(BUFFER)):
        yield key, list(buffer.read())


class TwoTimersDoFn(DoFn):
    def process(
        self,
        kv,
        total=DoFn.StateParam(TOTAL),
        flush=DoFn.TimerParam(FLUSH),
        expiry=DoFn.TimerParam(EXPIRY),
    ):
        total.add(kv[1])

    @on_timer(FLUSH)
    def on_flush(self, total=DoFn.StateParam(TOTAL)):
        yield total.read()

    @on_timer(EXPIRY)
    def on_expiry(self, seen=DoFn.StateParam(SetStateSpec("seen"))):
        yield from seen.read()


class Stateless(DoFn):
    def process(self, x):
        yield x


# -- TimeDomain ------------------------------------------------------------------------------------


def test_time_domain_values_and_aliases():
    assert TimeDomain.WATERMARK == "WATERMARK"
    assert TimeDomain.REAL_TIME == "REAL_TIME"
    assert TimeDomain.EVENT_TIME is TimeDomain.WATERMARK
    assert TimeDomain.PROCESSING_TIME is TimeDomain.REAL_TIME
    assert TimeDomain.from_string("EVENT_TIME") is TimeDomain.WATERMARK
    assert TimeDomain.from_string("REAL_TIME") is TimeDomain.REAL_TIME
    assert TimeDomain.is_event_time("WATERMARK")
    assert not TimeDomain.is_event_time(TimeDomain.PROCESSING_TIME)
    with pytest.raises(ValueError, match="unknown time domain 'SOON'"):
        TimeDomain.from_string("SOON")


# -- specs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ReadModifyWriteStateSpec, BagStateSpec, SetStateSpec])
def test_state_spec_name_and_coder(cls):
    spec = cls("cell", StrUtf8Coder())
    assert spec.name == "cell"
    assert spec.coder == StrUtf8Coder()
    assert cls("cell").coder is None
    assert repr(spec) == f"{cls.__name__}(cell)"
    assert isinstance(spec, StateSpec)


@pytest.mark.parametrize("cls", [ReadModifyWriteStateSpec, BagStateSpec, SetStateSpec])
def test_state_spec_rejects_bad_name_and_coder(cls):
    with pytest.raises(TypeError, match="non-empty string name"):
        cls("")
    with pytest.raises(TypeError, match="non-empty string name"):
        cls(3)
    with pytest.raises(TypeError, match=r"coder=<class 'int'>, which is not a Coder"):
        cls("cell", int)


def test_state_spec_kinds():
    assert ReadModifyWriteStateSpec("a").kind == "value"
    assert BagStateSpec("a").kind == "bag"
    assert SetStateSpec("a").kind == "set"
    assert CombiningValueStateSpec("a", sum).kind == "combining"


def test_combining_spec_argument_forms():
    plain = CombiningValueStateSpec("total", sum)
    assert plain.coder is None and plain.combine_fn.apply([1, 2]) == 3
    with_coder = CombiningValueStateSpec("total", VarIntCoder(), sum)
    assert with_coder.coder == VarIntCoder() and with_coder.combine_fn.apply([4]) == 4
    by_keyword = CombiningValueStateSpec("count", combine_fn=CountCombineFn())
    assert isinstance(by_keyword.combine_fn, CountCombineFn)


def test_combining_spec_needs_a_combine_fn():
    with pytest.raises(ValueError, match="needs a combine_fn"):
        CombiningValueStateSpec("total")
    with pytest.raises(ValueError, match="needs a combine_fn"):
        CombiningValueStateSpec("total", VarIntCoder())
    with pytest.raises(TypeError, match=r"combine_fn=5.*pass a CombineFn"):
        CombiningValueStateSpec("total", None, 5)


def test_timer_spec():
    spec = TimerSpec("flush", "WATERMARK")
    assert spec.time_domain is TimeDomain.WATERMARK
    assert TimerSpec("t", TimeDomain.PROCESSING_TIME).time_domain is TimeDomain.REAL_TIME
    assert repr(spec) == "TimerSpec(flush, WATERMARK)"
    with pytest.raises(ValueError, match=r"TimerSpec\('t'\) has time domain 'LATER'"):
        TimerSpec("t", "LATER")
    with pytest.raises(ValueError, match="DEPENDENT_REAL_TIME"):
        TimerSpec("t", TimeDomain.DEPENDENT_REAL_TIME)
    with pytest.raises(TypeError, match="non-empty string name"):
        TimerSpec("", TimeDomain.WATERMARK)


def test_on_timer_rejects_non_specs_and_stacks_timers():
    """One method may serve two timers (stacked @on_timer), as in Beam's userstate_test
    test_two_timers_one_function."""
    with pytest.raises(TypeError, match="needs a TimerSpec"):
        on_timer(BUFFER)

    class TwoTimers(DoFn):
        def process(self, kv, a=DoFn.TimerParam(FLUSH), b=DoFn.TimerParam(EXPIRY)):
            yield kv

        @on_timer(FLUSH)
        @on_timer(FLUSH)  # the same spec again is harmless
        @on_timer(EXPIRY)
        def fire(self):
            yield "fired"

    callbacks = timer_callbacks(TwoTimers())
    assert set(callbacks) == {FLUSH.name, EXPIRY.name}
    assert callbacks[FLUSH.name].__func__ is callbacks[EXPIRY.name].__func__


# -- discovery -------------------------------------------------------------------------------------


def test_describe_finds_state_timers_and_callbacks():
    info = describe_stateful_dofn(BufferDoFn())
    assert info.state_specs == {"buffer": BUFFER}
    assert info.timer_specs == {"flush": FLUSH}
    assert info.callbacks == {"flush": "on_flush"}
    assert info.is_stateful


def test_describe_includes_state_used_only_in_callbacks():
    info = describe_stateful_dofn(TwoTimersDoFn())
    assert set(info.state_specs) == {"total", "seen"}
    assert info.timer_specs == {"flush": FLUSH, "expiry": EXPIRY}
    assert info.callbacks == {"flush": "on_flush", "expiry": "on_expiry"}


def test_helpers_agree_with_describe():
    dofn = TwoTimersDoFn()
    assert set(get_state_specs(dofn)) == {"total", "seen"}
    assert get_timer_specs(dofn) == {"flush": FLUSH, "expiry": EXPIRY}
    states, timers = get_dofn_specs(dofn)
    assert TOTAL in states and timers == {FLUSH, EXPIRY}
    callbacks = timer_callbacks(dofn)
    assert callbacks["flush"].__self__ is dofn
    assert callbacks["expiry"].__func__ is TwoTimersDoFn.on_expiry
    assert is_stateful_dofn(dofn)
    assert not is_stateful_dofn(Stateless())
    validate_stateful_dofn(dofn)
    validate_stateful_dofn(Stateless())


def test_stateless_dofn_has_no_specs():
    info = describe_stateful_dofn(Stateless())
    assert (info.state_specs, info.timer_specs, info.callbacks) == ({}, {}, {})
    assert not info.is_stateful


def test_timer_without_callback_is_an_error_naming_the_dofn():
    lonely = TimerSpec("lonely", TimeDomain.WATERMARK)

    class NoCallback(DoFn):
        def process(self, kv, t=DoFn.TimerParam(lonely)):
            t.set(0)

    with pytest.raises(
        ValueError, match=r"DoFn NoCallback uses timer 'lonely' but has no callback"
    ):
        describe_stateful_dofn(NoCallback())


def test_overriding_a_callback_without_the_decorator_loses_it():
    class Child(BufferDoFn):
        def on_flush(self, key=DoFn.KeyParam, buffer=DoFn.StateParam(BUFFER)):
            yield key

    with pytest.raises(ValueError, match="DoFn Child uses timer 'flush' but has no callback"):
        describe_stateful_dofn(Child())


def test_subclass_inherits_callbacks():
    class Child(BufferDoFn):
        pass

    assert describe_stateful_dofn(Child()).callbacks == {"flush": "on_flush"}


def test_duplicate_state_names_are_an_error():
    class TwoBuffers(DoFn):
        def process(
            self,
            kv,
            a=DoFn.StateParam(BagStateSpec("buf")),
            b=DoFn.StateParam(SetStateSpec("buf")),
        ):
            pass

    with pytest.raises(
        ValueError, match=r"DoFn TwoBuffers declares two different state specs named 'buf'"
    ):
        describe_stateful_dofn(TwoBuffers())


def test_same_spec_object_in_two_params_is_fine():
    class Twice(DoFn):
        def process(self, kv, a=DoFn.StateParam(BUFFER), b=DoFn.StateParam(BUFFER)):
            pass

    assert describe_stateful_dofn(Twice()).state_specs == {"buffer": BUFFER}


def test_state_and_timer_may_share_a_name():
    same = BagStateSpec("flush")

    class Shared(BufferDoFn):
        def process(self, kv, s=DoFn.StateParam(same), flush=DoFn.TimerParam(FLUSH)):
            pass

    info = describe_stateful_dofn(Shared())
    assert info.state_specs["flush"] is same and info.timer_specs["flush"] is FLUSH


def test_duplicate_timer_names_are_an_error():
    other = TimerSpec("flush", TimeDomain.REAL_TIME)

    class Clash(BufferDoFn):
        def process(self, kv, a=DoFn.TimerParam(FLUSH), b=DoFn.TimerParam(other)):
            pass

    with pytest.raises(
        ValueError, match="DoFn Clash declares two different timer specs named 'flush'"
    ):
        describe_stateful_dofn(Clash())


def test_timer_param_and_callback_with_different_specs_of_one_name():
    other = TimerSpec("flush", TimeDomain.WATERMARK)

    class Mismatch(DoFn):
        def process(self, kv, t=DoFn.TimerParam(other)):
            pass

        @on_timer(FLUSH)
        def fired(self):
            pass

    with pytest.raises(
        ValueError, match="DoFn Mismatch has two different TimerSpecs named 'flush'"
    ):
        describe_stateful_dofn(Mismatch())


def test_two_callbacks_for_one_timer_are_an_error():
    class TwoCallbacks(DoFn):
        def process(self, kv, t=DoFn.TimerParam(FLUSH)):
            pass

        @on_timer(FLUSH)
        def first(self):
            pass

        @on_timer(FLUSH)
        def second(self):
            pass

    with pytest.raises(
        ValueError, match=r"two @on_timer callbacks for timer 'flush': first\(\) and second\(\)"
    ):
        describe_stateful_dofn(TwoCallbacks())


def test_spec_in_the_wrong_param_kind():
    class StateWithTimer(BufferDoFn):
        def process(self, kv, s=DoFn.StateParam(FLUSH)):
            pass

    with pytest.raises(
        ValueError, match=r"StateWithTimer.process\(\) parameter 's'.*use DoFn.TimerParam"
    ):
        describe_stateful_dofn(StateWithTimer())

    class TimerWithState(DoFn):
        def process(self, kv, t=DoFn.TimerParam(BUFFER)):
            pass

    with pytest.raises(
        ValueError, match=r"TimerWithState.process\(\) parameter 't'.*use DoFn.StateParam"
    ):
        describe_stateful_dofn(TimerWithState())

    class StateWithJunk(DoFn):
        def process(self, kv, s=DoFn.StateParam("buffer")):
            pass

    with pytest.raises(ValueError, match="StateParam needs a state spec"):
        describe_stateful_dofn(StateWithJunk())


def test_check_merging_windows():
    check_merging_windows([BUFFER, TOTAL, SetStateSpec("s")], "ParDo(X)")
    with pytest.raises(
        ValueError, match=r"'ParDo\(Last\)' uses ReadModifyWriteStateSpec\('last'\) in merging"
    ):
        check_merging_windows([BUFFER, ReadModifyWriteStateSpec("last")], "ParDo(Last)")


# -- pickling --------------------------------------------------------------------------------------


class MeanFn(CombineFn):
    def create_accumulator(self):
        return (0, 0)

    def add_input(self, acc, x):
        return (acc[0] + x, acc[1] + 1)

    def merge_accumulators(self, accs):
        return (sum(a[0] for a in accs), sum(a[1] for a in accs))

    def extract_output(self, acc):
        return acc[0] / acc[1] if acc[1] else None


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
@pytest.mark.parametrize(
    "spec",
    [
        ReadModifyWriteStateSpec("v", VarIntCoder()),
        BagStateSpec("b"),
        SetStateSpec("s", StrUtf8Coder()),
        CombiningValueStateSpec("c", sum),
        CombiningValueStateSpec("m", MeanFn()),
        TimerSpec("t", TimeDomain.REAL_TIME),
    ],
    ids=repr,
)
def test_specs_pickle(dumps, spec):
    back = pickle.loads(dumps(spec))
    assert type(back) is type(spec)
    assert back.name == spec.name
    assert repr(back) == repr(spec)
    if isinstance(spec, StateSpec):
        assert back.coder == spec.coder
    if isinstance(spec, CombiningValueStateSpec):
        assert back.combine_fn.apply([1, 2, 3]) == spec.combine_fn.apply([1, 2, 3])
    if isinstance(spec, TimerSpec):
        assert back.time_domain is TimeDomain.REAL_TIME


def test_lambda_combining_spec_pickles_with_cloudpickle():
    spec = CombiningValueStateSpec("biggest", lambda xs: max(xs, default=0))
    back = pickle.loads(cloudpickle.dumps(spec))
    assert back.combine_fn.apply([3, 9, 2]) == 9


@pytest.mark.parametrize("dumps", [pickle.dumps, cloudpickle.dumps], ids=["pickle", "cloudpickle"])
def test_stateful_dofn_pickles_and_still_validates(dumps):
    back = pickle.loads(dumps(TwoTimersDoFn()))
    info = describe_stateful_dofn(back)
    assert set(info.state_specs) == {"total", "seen"}
    assert info.callbacks == {"flush": "on_flush", "expiry": "on_expiry"}


def test_locally_defined_stateful_dofn_pickles_by_value():
    local_timer = TimerSpec("tick", TimeDomain.WATERMARK)
    local_bag = BagStateSpec("items")

    class Local(DoFn):
        def process(self, kv, items=DoFn.StateParam(local_bag), tick=DoFn.TimerParam(local_timer)):
            items.add(kv)

        @on_timer(local_timer)
        def on_tick(self, items=DoFn.StateParam(local_bag)):
            yield from items.read()

    back = pickle.loads(cloudpickle.dumps(Local()))
    info = describe_stateful_dofn(back)
    assert info.callbacks == {"tick": "on_tick"}
    assert info.state_specs["items"].name == "items"
    # the spec objects stay shared between the params and the callback after pickling
    assert (info.timer_specs["tick"],) == getattr(type(back).on_tick, "_headrace_on_timer")
    assert info.timer_specs["tick"] is getattr(type(back).on_tick, "_headrace_on_timer")[0]


def test_a_stateful_dofn_on_unkeyed_input_fails_with_beams_message() -> None:
    """Beam's userstate_test test_stateful_dofn_nonkeyed_input matches this message."""
    from headrace.model.pipeline import Pipeline
    from headrace.model.transforms.core import Create, ParDo

    class Counting(DoFn):
        COUNT = BagStateSpec("count", VarIntCoder())

        def process(self, element, count=DoFn.StateParam(COUNT)):
            yield element

    p = Pipeline()
    with pytest.raises(
        ValueError,
        match=r"Input elements to the transform .* with stateful DoFn must be key-value pairs\.",
    ):
        _ = p | Create([1, 2]) | ParDo(Counting())
