"""The graph contract (issue 10, item 4): kinds as constants, typed params, checked graphs.

A graph received as JSON is checked the way Beam's portable job server checks a pipeline proto
before running it (``pipeline_validator`` in Beam's Java ``runners-core-construction``: every
referenced id must exist, each transform's inputs and outputs must match its URN); headrace's
errors name the transform's label and the field at fault.
"""

from __future__ import annotations

import json

import pytest

from headrace.graph import GraphError, PipelineGraph, validate_graph
from headrace.graph.kinds import COMBINE_PER_KEY, PARDO, PRIMITIVE_KINDS, executable_leaves
from headrace.model.pipeline import Pipeline
from headrace.model.transforms.core import CombinePerKey, Create, Map
from headrace.plan.stages import leaves_of
from headrace.runners.direct import DirectRunner
from headrace.runners.direct.streaming import streaming_leaves


def _pipeline() -> Pipeline:
    p = Pipeline()
    pairs = p | "Nums" >> Create([1, 2, 3]) | "Pair" >> Map(lambda x: (x % 2, x))
    _ = pairs | "Sum" >> CombinePerKey(sum)
    return p


def _json_with(change) -> str:
    data = json.loads(_pipeline().to_graph().to_json())
    change(data)
    return json.dumps(data)


def _node(data, label: str) -> dict:
    return next(t for t in data["transforms"] if t["label"] == label)


def test_a_built_graph_round_trips_through_json_and_validates() -> None:
    graph = _pipeline().to_graph()
    again = PipelineGraph.from_json(graph.to_json())
    assert validate_graph(again) is again
    assert [n.label for n in again.primitives()] == [n.label for n in graph.primitives()]


def test_a_json_graph_with_a_dangling_input_names_the_transform() -> None:
    text = _json_with(lambda d: _node(d, "Pair").update(inputs=["pc-missing"]))
    with pytest.raises(GraphError, match=r"transform 'Pair' .*input 'pc-missing' is not a PCol"):
        PipelineGraph.from_json(text)


def test_a_json_graph_missing_a_field_names_the_entry_and_the_field() -> None:
    text = _json_with(lambda d: _node(d, "Pair").pop("kind"))
    with pytest.raises(GraphError, match=r"transform 'Pair': missing field 'kind'"):
        PipelineGraph.from_json(text)


def test_params_of_the_wrong_type_name_the_transform_and_the_param() -> None:
    text = _json_with(lambda d: _node(d, "Pair")["params"].update(fn_kind=3))
    with pytest.raises(GraphError, match=r"transform 'Pair' .*params\['fn_kind'\] should be str"):
        PipelineGraph.from_json(text)
    text = _json_with(lambda d: _node(d, "Pair")["params"].update(fn_kind="mapp"))
    with pytest.raises(GraphError, match=r"params\['fn_kind'\] is 'mapp'; expected one of"):
        PipelineGraph.from_json(text)


def test_an_unknown_primitive_kind_is_refused() -> None:
    text = _json_with(lambda d: _node(d, "Pair").update(kind="Teleport"))
    with pytest.raises(GraphError, match=r"'Pair' .*kind Teleport.*unknown kind"):
        PipelineGraph.from_json(text)


def test_the_runner_checks_a_graph_at_submission() -> None:
    graph = _pipeline().to_graph()
    pair = next(n for n in graph.transforms.values() if n.label == "Pair")
    broken = PipelineGraph(
        transforms={**graph.transforms, pair.id: type(pair)(**{**_fields(pair), "payload": None})},
        pcollections=graph.pcollections,
        roots=graph.roots,
    )
    with pytest.raises(GraphError, match=r"transform 'Pair' .*has no payload"):
        DirectRunner().run_pipeline(broken, None)


def _fields(node) -> dict:
    return {name: getattr(node, name) for name in node.__dataclass_fields__}


def test_one_walk_decides_what_runs_planner_and_streaming_differ_only_in_whole_composites() -> None:
    graph = _pipeline().to_graph()
    batch = [n.label for n in leaves_of(graph)]
    stream = [n.label for n in streaming_leaves(graph)]
    assert batch == stream == ["Nums", "Pair", "Sum"]  # Sum: lifted (batch), one step (stream)
    parts = [n.label for n in executable_leaves(graph)]
    assert "Sum" not in parts and parts[:2] == ["Nums", "Pair"]
    assert all(n.kind in PRIMITIVE_KINDS for n in executable_leaves(graph))
    assert {PARDO, COMBINE_PER_KEY} <= PRIMITIVE_KINDS


def test_the_model_objects_meet_the_protocols_exec_relies_on() -> None:
    """What exec calls on user objects is written down (exec/protocols.py) and kept true."""
    from headrace.exec import protocols
    from headrace.io.filebasedsink import FileFinalizer
    from headrace.model.sources import BoundedSource, UnboundedReader
    from headrace.model.transforms.dofn import CallableWrapperCombineFn
    from headrace.model.window import FixedWindows, GlobalWindow, IntervalWindow, Sessions

    assert isinstance(IntervalWindow(0, 10), protocols.Window)
    assert isinstance(GlobalWindow(), protocols.Window)
    for fn in (FixedWindows(10), Sessions(5)):
        assert isinstance(fn, protocols.WindowFn)
    assert isinstance(CallableWrapperCombineFn(sum), protocols.CombineFnLike)
    assert issubclass(BoundedSource, protocols.BoundedSourceLike)
    assert issubclass(UnboundedReader, protocols.UnboundedReaderLike)
    assert issubclass(FileFinalizer, protocols.FinalizerLike)
    assert not isinstance(object(), protocols.WindowFn)


def test_the_model_records_every_kinds_params_in_its_typed_shape():
    """The model builds each kind's params as its TypedDict (graph.kinds.PARAMS_OF): a ParDo
    records every ParDoParams field, groupings record no field outside GroupingParams, and the
    values have the declared types (the JSON form stays a plain dict)."""
    from typing import get_type_hints

    import headrace.beam as beam
    from headrace.graph.kinds import PARAMS_OF, PARDO

    p = beam.Pipeline()
    (
        p
        | beam.Create([("a", 1), ("b", 2)])
        | beam.Map(lambda kv: kv)
        | beam.CombinePerKey(sum)
        | beam.GroupByKey()
        | beam.FlatMap(_tagged).with_outputs("extra", main="main")
    )
    graph = p.to_graph()
    seen = set()
    for node in graph.transforms.values():
        shape = PARAMS_OF.get(node.kind)
        if shape is None:
            continue
        seen.add(node.kind)
        hints = get_type_hints(shape)
        assert type(node.params) is dict and set(node.params) <= set(hints), node.label
        if node.kind == PARDO:  # every field but the optional allow_unknown_tags
            assert set(node.params) >= set(hints) - {"allow_unknown_tags"}, node.label
            assert node.params["tags"][0] == node.params["main_tag"]
    assert seen == set(PARAMS_OF)
    assert validate_graph(graph) is graph


def _tagged(kv):
    """A DoFn body with a second output: the key to "extra"."""
    import headrace.beam as beam

    yield kv
    yield beam.pvalue.TaggedOutput("extra", kv[0])
