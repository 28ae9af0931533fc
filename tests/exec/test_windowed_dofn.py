"""The fast path of a DoFn asking for its element's timestamp, window, pane, element or key
(``ParDoOperator._windowed_dofn``) against the general path it stands in for."""

from __future__ import annotations

from typing import Any

import pytest

from headrace.exec.operators import FLUSH_AT, ParDoOperator
from headrace.model.metrics import MetricsContainer
from headrace.model.pvalue import TaggedOutput
from headrace.model.transforms.dofn import DoFn
from headrace.model.window import (
    GLOBAL_WINDOWS_TUPLE,
    PANE_ONLY_FIRING,
    IntervalWindow,
    TimestampedValue,
    WindowedValue,
)

W1, W2 = IntervalWindow(0, 60), IntervalWindow(30, 90)


class AllParams(DoFn):
    def process(
        self,
        x,
        scale,
        t=DoFn.TimestampParam,
        w=DoFn.WindowParam,
        p=DoFn.PaneInfoParam,
        e=DoFn.ElementParam,
        k=DoFn.KeyParam,
        tag="main",
    ):
        yield (x, scale, t.micros, w, p.timing, e, k)
        yield TimestampedValue((k, "stamped"), t.micros / 1e6 + 1)
        yield TaggedOutput(tag, (k, "tagged"))
        yield WindowedValue((k, "as is"), 5, GLOBAL_WINDOWS_TUPLE)


class WindowOnly(DoFn):
    def process(self, x, w=DoFn.WindowParam):
        if x[1] % 3:
            return [(x[0], w.start.micros)]
        return None


PARAMS = {
    "all": (
        AllParams(),
        (10,),
        {"tag": "main"},
        {"t": "timestamp", "w": "window", "p": "pane", "e": "element", "k": "key"},
    ),
    "window_only": (WindowOnly(), (), {}, {"w": "window"}),
}


def _operator(name: str, out_windowed: bool, sink: list[Any]) -> ParDoOperator:
    dofn, args, kwargs, params = PARAMS[name]
    return ParDoOperator(
        label="Reify",
        fn_kind="dofn",
        dofn=dofn,
        args=args,
        kwargs=kwargs,
        dofn_params=params,
        main_tag="main",
        outputs={"main": [sink.extend]},
        out_windowed={"main": out_windowed},
        in_windowed=True,
        side_inputs=[],
        metrics=MetricsContainer("Reify"),
    )


def _as_tuples(out: list[Any]) -> list[Any]:
    return [
        (o.value, o.timestamp_us, o.windows, o.pane) if type(o) is WindowedValue else o for o in out
    ]


@pytest.mark.parametrize("out_windowed", [True, False])
@pytest.mark.parametrize("name", sorted(PARAMS))
def test_the_fast_path_outputs_what_the_general_path_does(name, out_windowed):
    chunk = [
        WindowedValue(
            (f"k{i % 4}", i), i * 1_000_000, (W1, W2) if i % 2 else (W1,), PANE_ONLY_FIRING
        )
        for i in range(50)
    ]
    general: list[Any] = []
    fast: list[Any] = []
    op = _operator(name, out_windowed, general)
    assert op.process.__name__ == "process"  # the fast path was chosen
    op._process_general(chunk)
    _operator(name, out_windowed, fast).process(chunk)
    assert _as_tuples(fast) == _as_tuples(general)
    assert len(fast) > 20


def test_large_outputs_are_pushed_in_pieces():
    pieces: list[int] = []
    op = _operator("window_only", True, [])
    op.emitters["main"] = lambda out: pieces.append(len(out))
    op.process = op._windowed_dofn()  # type: ignore[method-assign]
    op.process([WindowedValue(("k", 1), 0, (W1,))] * (FLUSH_AT + 10))
    assert len(pieces) == 2 and sum(pieces) == FLUSH_AT + 10


def test_an_undeclared_tag_is_refused():
    dofn, args, _, params = PARAMS["all"]
    op = _operator("all", True, [])
    op.kwargs = {"tag": "other"}
    op.process = op._windowed_dofn()  # type: ignore[method-assign]
    with pytest.raises(ValueError, match="TaggedOutput\\('other'"):
        op.process([WindowedValue(("k", 1), 0, (W1,))])


def test_errors_read_as_on_the_general_path():
    class Bad(DoFn):
        def process(self, x, w=DoFn.WindowParam):
            yield WindowedValue(x, 0, (w,))

    messages = []
    for fast in (False, True):
        op = _operator("window_only", False, [])
        op.dofn = op.process_fn = Bad()
        op.process_fn = op.dofn.process
        run = op._windowed_dofn() if fast else op._process_general
        with pytest.raises(ValueError) as info:
            run([WindowedValue(("k", 1), 0, (W1,))])
        messages.append(str(info.value) + "\n".join(getattr(info.value, "__notes__", [])))
    assert messages[0] == messages[1]
    assert "'Reify' failed on element ('k', 1)" in messages[0]
