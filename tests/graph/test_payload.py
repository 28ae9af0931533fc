"""Graph payloads keep what failure reports need, whatever the pickler does to code objects."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import traceback

import pytest

import headrace.beam as beam
from headrace.graph.nodes import Payload

USER_CODE = """
def inverse(x):
    return 1 / x


class Doubler:
    def process(self, x):
        yield inverse(x) * 2
"""


def _load_user_module(tmp_path):
    path = tmp_path / "user_code.py"
    path.write_text(textwrap.dedent(USER_CODE), encoding="utf-8")
    namespace: dict[str, object] = {"__name__": "user_code_not_importable"}
    exec(compile(path.read_text(), str(path), "exec"), namespace)
    return path, namespace


def test_a_loaded_function_keeps_its_file_and_lines(tmp_path):
    """cloudpickle 3.1.3 renames pickled code to <dynamic-code>; a payload must not."""
    path, ns = _load_user_module(tmp_path)
    inverse = Payload.of(ns["inverse"]).load()
    assert inverse.__code__.co_filename == str(path)
    with pytest.raises(ZeroDivisionError) as info:
        inverse(0)
    frames = traceback.extract_tb(info.value.__traceback__)
    assert (frames[-1].filename, frames[-1].lineno, frames[-1].name) == (str(path), 3, "inverse")
    assert frames[-1].line == "return 1 / x"


def test_a_loaded_object_keeps_the_file_of_its_methods(tmp_path):
    path, ns = _load_user_module(tmp_path)
    doubler = Payload.of(ns["Doubler"]()).load()
    with pytest.raises(ZeroDivisionError) as info:
        list(doubler.process(0))
    files = {f.filename for f in traceback.extract_tb(info.value.__traceback__)[1:]}
    assert files == {str(path)}


def test_a_payload_loads_in_a_fresh_interpreter(tmp_path):
    """What a worker on another process gets: the bytes alone, nothing inherited."""
    path, ns = _load_user_module(tmp_path)
    data = Payload.of(ns["inverse"]).data
    script = (
        "import pickle, sys; f = pickle.loads(sys.stdin.buffer.read()); "
        "print(f(4), f.__code__.co_filename)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], input=data, capture_output=True, check=True
    )
    assert proc.stdout.decode().split() == ["0.25", str(path)]


@pytest.mark.parametrize(
    ("transform", "data", "bad"),
    [
        (beam.Map(lambda x: 1 / x), [3, 2, 0, 5], 0),
        (beam.Map(lambda x, k: k / x, 1), [3, 0, 5], 0),
        (beam.MapTuple(lambda k, v: v / k), [(1, 2), (0, 3), (4, 4)], (0, 3)),
        (beam.MapTuple(lambda k, v, d: v / k / d, 1), [(1, 2), (0, 3)], (0, 3)),
        (beam.Filter(lambda x: 1 / x), [1, 0, 2], 0),
        (beam.Filter(lambda x, k: k / x, 1), [1, 0, 2], 0),
        (beam.FlatMap(lambda x: [1 / x]), [4, 0, 2], 0),
    ],
)
def test_the_failing_element_is_named_on_every_fast_path(transform, data, bad):
    """The element comes from the chunk's position, not from a frame's locals (Python 3.12+)."""
    with pytest.raises(ZeroDivisionError) as info:
        with beam.Pipeline() as p:
            p | beam.Create(data) | "Step" >> transform
    assert f"transform 'Step' failed on element {bad!r}" in "\n".join(info.value.__notes__)
