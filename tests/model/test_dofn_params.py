"""DoFn parameter markers: which ones headrace fills in, and the ones it refuses loudly."""

from __future__ import annotations

import pytest

import headrace.beam as beam
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import Create, Map, ParDo
from headrace.model.transforms.dofn import DoFn
from headrace.model.userstate import TimeDomain, TimerSpec, describe_stateful_dofn, on_timer
from headrace.testing.util import assert_that, equal_to

TICK = TimerSpec("tick", TimeDomain.WATERMARK)


class ElementAsParam(DoFn):
    def process(self, element=DoFn.ElementParam):
        yield element * 10


class ElementAndTimestamp(DoFn):
    def process(self, element=DoFn.ElementParam, ts=DoFn.TimestampParam):
        yield (element, float(ts))


class DynamicTagCallback(DoFn):
    def process(self, kv, tick=DoFn.TimerParam(TICK)):
        tick.set(1)

    @on_timer(TICK)
    def on_tick(self, tag=DoFn.DynamicTimerTagParam):
        yield tag


class AsksBundleFinalizer(DoFn):
    def process(self, x, finalizer=DoFn.BundleFinalizerParam):
        yield x


def test_element_param_as_the_element_parameter() -> None:
    """``process(self, element=DoFn.ElementParam)`` gets the element once, as in Beam's
    ``transforms/core_test.py`` and the ``pardo`` snippets (it used to fail with "multiple values
    for argument 'element'")."""
    with Pipeline() as p:
        out = p | Create([1, 2]) | ParDo(ElementAsParam())
        assert_that(out, equal_to([10, 20]))


def test_element_param_with_other_params() -> None:
    with Pipeline() as p:
        out = p | Create([3]) | ParDo(ElementAndTimestamp())
        assert_that(out, equal_to([(3, float(beam.utils.timestamp.MIN_TIMESTAMP))]))


def test_dynamic_timer_tag_param_exists_and_is_refused_in_a_callback() -> None:
    """Beam's ``DoFn.DynamicTimerTagParam`` (userstate_test imports it); headrace has no timer
    families, so a callback asking for the tag is refused when the DoFn is inspected."""
    assert repr(DoFn.DynamicTimerTagParam) == "DoFn.DynamicTimerTagParam"
    with pytest.raises(NotImplementedError, match="DynamicTimerTagParam"):
        describe_stateful_dofn(DynamicTagCallback())


def test_unsupported_param_is_refused_at_construction() -> None:
    with Pipeline() as p, pytest.raises(NotImplementedError, match="BundleFinalizerParam"):
        _ = p | Create([1]) | ParDo(AsksBundleFinalizer())


def test_unsupported_param_in_a_map_function_is_refused() -> None:
    with Pipeline() as p, pytest.raises(NotImplementedError, match="WatermarkEstimatorParam"):
        _ = p | Create([1]) | Map(lambda x, w=DoFn.WatermarkEstimatorParam: x)


def test_time_domain_at_beam_paths() -> None:
    """``apache_beam.transforms.timeutil.TimeDomain`` and ``apache_beam.TimeDomain``."""
    from headrace.beam.transforms.timeutil import TimeDomain as FromTimeutil

    assert FromTimeutil is beam.TimeDomain is TimeDomain
    assert beam.TimeDomain.WATERMARK == "WATERMARK"
    assert beam.TimeDomain.REAL_TIME == "REAL_TIME"


EVENTS_FILE = "events"


class _Recorder:
    """A context manager class (picklable by reference) that logs enter/exit to a file."""

    def __init__(self, path, name):
        self.path, self.name = path, name

    def __enter__(self):
        with open(self.path, "a") as f:
            f.write(f"enter {self.name}\n")
        return self.name.upper()

    def __exit__(self, *exc):
        with open(self.path, "a") as f:
            f.write(f"exit {self.name}\n")
        return False


def test_setup_and_bundle_context_params_in_map(tmp_path) -> None:
    """Beam's ``map_context`` snippet: ``beam.Map(f, a=DoFn.SetupContextParam(cm),
    b=DoFn.BundleContextParam(cm))`` (apache_beam/examples/snippets/transforms/elementwise)."""
    path = str(tmp_path / EVENTS_FILE)
    setup = DoFn.SetupContextParam(_Recorder, args=(path, "setup"))
    bundle = DoFn.BundleContextParam(_Recorder, args=(path, "bundle"))

    def label(x, s=setup, b=bundle):
        return f"{x}-{s}-{b}"

    with Pipeline() as p:
        out = p | Create(["a", "b"]) | Map(label)
        assert_that(out, equal_to(["a-SETUP-BUNDLE", "b-SETUP-BUNDLE"]))
    events = (tmp_path / EVENTS_FILE).read_text().splitlines()
    assert events.count("enter setup") == events.count("exit setup") >= 1
    assert events.count("enter bundle") == events.count("exit bundle") >= 1
    assert events[0] == "enter setup" and events[-1] == "exit setup"


def test_setup_context_param_in_a_dofn(tmp_path) -> None:
    path = str(tmp_path / EVENTS_FILE)

    class Local(DoFn):
        def process(self, x, conn=DoFn.SetupContextParam(_Recorder, args=(path, "db"))):
            yield f"{x}:{conn}"

    with Pipeline() as p:
        assert_that(p | Create([1]) | ParDo(Local()), equal_to(["1:DB"]))
    assert (tmp_path / EVENTS_FILE).read_text().splitlines() == ["enter db", "exit db"]


def test_context_param_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        DoFn.SetupContextParam(3)
