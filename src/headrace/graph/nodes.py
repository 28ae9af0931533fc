"""Nodes of the pipeline graph and their JSON form.

A :class:`PipelineGraph` is a mapping of transform ids to :class:`TransformNode` and of PCollection
ids to :class:`PCollectionNode`. Edges are ids. Composite transforms are recorded with the ids of
their parts, so a viewer can fold or unfold them; runners execute only the primitive leaves.

Primitive kinds:

``Impulse``      emits one empty-bytes element.
``Read``         payload: a bounded source; emits its elements.
``ParDo``        payload: ``(dofn, args, kwargs)``; side inputs listed in ``side_inputs``.
``GroupByKey``   groups ``(key, value)`` pairs per key and window.
``CombinePerKey`` payload: a CombineFn; a composite the planner may lift (it is also runnable as
                 GroupByKey + combine, which is what its recorded parts do).
``Flatten``      merges several PCollections.
``WindowInto``   payload: the window function; re-assigns windows.
``Finalize``     payload: a finalizer; its input is handed over when the whole run succeeded.

The kinds are named as constants, with the typed shape of each kind's ``params``, in
:mod:`headrace.graph.kinds`; :mod:`headrace.graph.validate` checks a whole graph.
"""

from __future__ import annotations

import base64
import collections
import io
import json
import marshal
import pickle
import threading
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import cloudpickle

from headrace.graph.kinds import COMBINE_PER_KEY, PRIMITIVE_KINDS, executable_leaves
from headrace.graph.validate import GraphError, validate_graph

__all__ = [
    "PRIMITIVE_KINDS",
    "PCollectionNode",
    "Payload",
    "PipelineGraph",
    "SideInputNode",
    "TransformNode",
    "WindowingStrategy",
    "dumps",
]

FORMAT_VERSION = 1

_T = TypeVar("_T")


def _load_code(data: bytes) -> types.CodeType:
    code = marshal.loads(data)
    if not isinstance(code, types.CodeType):  # pragma: no cover - only our own bytes get here
        raise TypeError("a pickled code object did not unmarshal to code")
    return code


def _reduce_code(code: types.CodeType) -> tuple[Any, tuple[bytes]]:
    return _load_code, (marshal.dumps(code),)


class _GraphPickler(cloudpickle.Pickler):
    """cloudpickle, except that code objects keep every field, their file name included.

    Failure reports name the user's file and line from the code objects that raised. cloudpickle
    is free to rewrite what it stores of a code object (3.1.3 replaces the file name with
    ``<dynamic-code>``), so code objects are stored with :mod:`marshal`, which keeps the whole
    object. marshal's format belongs to one Python version; a payload is loaded by the
    interpreter that wrote it or by a worker running the same version.
    """

    # A pickler's dispatch_table is the pickle module's documented hook for per-type reducers;
    # cloudpickle's reducer_override still handles functions and classes first. The table is a
    # plain dict made per pickler (so copyreg registrations made since import count): the C
    # pickler looks every object's type up in it, and a ChainMap would run Python code per
    # object (a third of pickling 100k TimestampedValues).

    def __init__(self, file: io.BytesIO, protocol: int) -> None:
        self.dispatch_table = {
            **dict(cloudpickle.Pickler.dispatch_table),
            types.CodeType: _reduce_code,
        }
        super().__init__(file, protocol=protocol)


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` as graph payloads are pickled (cloudpickle, code objects kept whole)."""
    buffer = io.BytesIO()
    _GraphPickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buffer.getvalue()


_UNLOADED: Any = object()


class Payload:
    """An opaque user object, pickled with cloudpickle.

    ``load()`` returns a fresh copy each call, so every executor owns its own DoFn instance.
    Equality is by bytes.

    A *shared* payload (:meth:`shared`) holds an object that runners only read and never
    change, such as the elements of a ``Create`` made of immutable values. It is pickled only
    when its bytes are first needed (the JSON form, equality, a plan sent to another process),
    once, and ``load()`` returns that one object instead of a copy. Unpickled elsewhere it stays
    shared: the first ``load()`` there unpickles it, and later ones (also of other copies of the
    same bytes, such as the plan a Ray task receives) return the same object.
    """

    __slots__ = ("_data", "_obj", "_shared")

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data
        self._obj: Any = _UNLOADED
        self._shared = False

    @classmethod
    def of(cls, obj: Any) -> Payload:
        return cls(dumps(obj))

    @classmethod
    def shared(cls, obj: Any) -> Payload:
        """A payload holding ``obj`` itself, pickled only when its bytes are needed."""
        payload = cls.__new__(cls)
        payload._data, payload._obj, payload._shared = None, obj, True
        return payload

    @property
    def is_shared(self) -> bool:
        return self._shared

    @property
    def data(self) -> bytes:
        if self._data is None:
            self._data = dumps(self._obj)
        return self._data

    def load(self) -> Any:
        if not self._shared:
            assert self._data is not None
            return pickle.loads(self._data)
        if self._obj is _UNLOADED:
            self._obj = _load_shared(self.data)
        return self._obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (_shared_payload if self._shared else Payload, (self.data,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Payload) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)

    def __repr__(self) -> str:
        size = "unpickled" if self._data is None else f"{len(self._data)} bytes"
        return f"Payload({'shared, ' if self._shared else ''}{size})"

    def to_json(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @classmethod
    def from_json(cls, text: str) -> Payload:
        return cls(base64.b64decode(text))


def _shared_payload(data: bytes) -> Payload:
    payload = Payload(data)
    payload._shared = True
    return payload


# The shared payloads last unpickled in this process, by their bytes: a Ray worker or a
# subprocess gets the plan anew with every task, and the tasks of one source (index ranges of a
# Create's elements) would each unpickle all of its elements again.
_LOADED: collections.OrderedDict[bytes, Any] = collections.OrderedDict()
_LOADED_KEEP = 4
_loaded_lock = threading.Lock()


def _load_shared(data: bytes) -> Any:
    with _loaded_lock:
        obj = _LOADED.get(data, _UNLOADED)
        if obj is not _UNLOADED:
            _LOADED.move_to_end(data)
            return obj
    obj = pickle.loads(data)
    with _loaded_lock:
        _LOADED[data] = obj
        while len(_LOADED) > _LOADED_KEEP:
            _LOADED.popitem(last=False)
    return obj


@dataclass(frozen=True, slots=True)
class WindowingStrategy:
    """How a PCollection is windowed and when its groupings fire.

    ``window_fn`` is None for the global window (the common, fast case). ``trigger`` is None for the
    default trigger. Lateness is in microseconds. ``fire_at_expiry``: when a window expires with
    elements its trigger never emitted, emit them as a last pane (off by default, as in Beam).
    """

    window_fn: Payload | None = None
    merging: bool = False
    trigger: Payload | None = None
    accumulation_mode: str = "DISCARDING"
    allowed_lateness_us: int = 0
    timestamp_combiner: str = "OUTPUT_AT_EOW"
    window_fn_name: str = "GlobalWindows"
    fire_at_expiry: bool = False

    @property
    def is_global(self) -> bool:
        return self.window_fn is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "window_fn": self.window_fn.to_json() if self.window_fn else None,
            "merging": self.merging,
            "trigger": self.trigger.to_json() if self.trigger else None,
            "accumulation_mode": self.accumulation_mode,
            "allowed_lateness_us": self.allowed_lateness_us,
            "timestamp_combiner": self.timestamp_combiner,
            "window_fn_name": self.window_fn_name,
            "fire_at_expiry": self.fire_at_expiry,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> WindowingStrategy:
        return cls(
            window_fn=Payload.from_json(d["window_fn"]) if d["window_fn"] else None,
            merging=d["merging"],
            trigger=Payload.from_json(d["trigger"]) if d["trigger"] else None,
            accumulation_mode=d["accumulation_mode"],
            allowed_lateness_us=d["allowed_lateness_us"],
            timestamp_combiner=d["timestamp_combiner"],
            window_fn_name=d["window_fn_name"],
            fire_at_expiry=d.get("fire_at_expiry", False),
        )


GLOBAL_WINDOWING = WindowingStrategy()


@dataclass(frozen=True, slots=True)
class PCollectionNode:
    """A PCollection: who produces it, its windowing, and whether it is bounded."""

    id: str
    producer: str
    tag: str | None
    windowing: WindowingStrategy = GLOBAL_WINDOWING
    bounded: bool = True
    element_type: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "producer": self.producer,
            "tag": self.tag,
            "windowing": self.windowing.to_dict(),
            "bounded": self.bounded,
            "element_type": self.element_type,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PCollectionNode:
        return cls(
            id=d["id"],
            producer=d["producer"],
            tag=d["tag"],
            windowing=WindowingStrategy.from_dict(d["windowing"]),
            bounded=d["bounded"],
            element_type=d["element_type"],
        )


@dataclass(frozen=True, slots=True)
class SideInputNode:
    """A side input of a ParDo: the PCollection it reads and how it is viewed.

    ``view`` is one of ``singleton``, ``iter``, ``list``, ``dict``, ``multimap``; ``default`` is the
    pickled default value of a singleton view, when one was given; ``slot`` says where the view is
    passed: a positional index (``"0"``) or ``"kw:name"`` for a keyword argument.
    """

    pcollection: str
    view: str
    default: Payload | None = None
    slot: str = "0"

    def to_dict(self) -> dict[str, Any]:
        return {
            "pcollection": self.pcollection,
            "view": self.view,
            "default": self.default.to_json() if self.default else None,
            "slot": self.slot,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SideInputNode:
        default = Payload.from_json(d["default"]) if d["default"] else None
        return cls(pcollection=d["pcollection"], view=d["view"], default=default, slot=d["slot"])


@dataclass(frozen=True, slots=True)
class TransformNode:
    """One applied transform. ``outputs`` maps output tags to PCollection ids, in order."""

    id: str
    label: str
    kind: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[tuple[str, str], ...] = ()
    payload: Payload | None = None
    side_inputs: tuple[SideInputNode, ...] = ()
    parent: str | None = None
    parts: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_primitive(self) -> bool:
        return self.kind in PRIMITIVE_KINDS

    def output(self, tag: str | None = None) -> str:
        """The id of the output with ``tag`` (the first output when tag is None)."""
        if tag is None:
            return self.outputs[0][1]
        for t, pid in self.outputs:
            if t == tag:
                return pid
        raise KeyError(f"transform {self.label!r} has no output tagged {tag!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "kind": self.kind,
            "inputs": list(self.inputs),
            "outputs": [list(o) for o in self.outputs],
            "payload": self.payload.to_json() if self.payload else None,
            "side_inputs": [s.to_dict() for s in self.side_inputs],
            "parent": self.parent,
            "parts": list(self.parts),
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TransformNode:
        return cls(
            id=d["id"],
            label=d["label"],
            kind=d["kind"],
            inputs=tuple(d["inputs"]),
            outputs=tuple((t, p) for t, p in d["outputs"]),
            payload=Payload.from_json(d["payload"]) if d["payload"] else None,
            side_inputs=tuple(SideInputNode.from_dict(s) for s in d["side_inputs"]),
            parent=d["parent"],
            parts=tuple(d["parts"]),
            params=dict(d["params"]),
        )


@dataclass(frozen=True, slots=True)
class PipelineGraph:
    """The whole pipeline: transforms and PCollections keyed by id, top-level ids in order."""

    transforms: Mapping[str, TransformNode]
    pcollections: Mapping[str, PCollectionNode]
    roots: tuple[str, ...]

    def primitives(self) -> list[TransformNode]:
        """Primitive transforms in the order they were applied (a topological order)."""
        return list(executable_leaves(self, lambda node: node.kind == COMBINE_PER_KEY))

    def consumers(self) -> dict[str, list[str]]:
        """PCollection id -> ids of the primitive transforms that read it (main or side input)."""
        result: dict[str, list[str]] = {pid: [] for pid in self.pcollections}
        for node in self.primitives():
            for pid in node.inputs:
                result[pid].append(node.id)
            for side in node.side_inputs:
                result[side.pcollection].append(node.id)
        return result

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "transforms": [t.to_dict() for t in self.transforms.values()],
            "pcollections": [p.to_dict() for p in self.pcollections.values()],
            "roots": list(self.roots),
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PipelineGraph:
        """The graph ``to_dict`` wrote, checked by :func:`~headrace.graph.validate.validate_graph`.

        A missing or mistyped field raises :class:`~headrace.graph.validate.GraphError` naming
        the entry (transform label or PCollection id) and the field.
        """
        if d.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported pipeline graph format {d.get('format')!r}; "
                f"this headrace reads format {FORMAT_VERSION}"
            )
        transforms = {}
        for i, t in enumerate(d.get("transforms", ())):
            node = _decoded(TransformNode.from_dict, t, f"transform {t.get('label', f'#{i}')!r}")
            transforms[node.id] = node
        pcolls = {}
        for i, p in enumerate(d.get("pcollections", ())):
            pc = _decoded(PCollectionNode.from_dict, p, f"PCollection {p.get('id', f'#{i}')!r}")
            pcolls[pc.id] = pc
        graph = cls(transforms=transforms, pcollections=pcolls, roots=tuple(d.get("roots", ())))
        return validate_graph(graph)

    @classmethod
    def from_json(cls, text: str) -> PipelineGraph:
        return cls.from_dict(json.loads(text))


def _decoded(make: Callable[[Mapping[str, Any]], _T], entry: Any, what: str) -> _T:
    if not isinstance(entry, Mapping):
        raise GraphError(f"{what}: expected an object, got {type(entry).__name__}")
    try:
        return make(entry)
    except KeyError as e:
        raise GraphError(f"{what}: missing field {e.args[0]!r}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise GraphError(f"{what}: malformed ({e})") from None
