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
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import cloudpickle

__all__ = [
    "PRIMITIVE_KINDS",
    "PCollectionNode",
    "Payload",
    "PipelineGraph",
    "SideInputNode",
    "TransformNode",
    "WindowingStrategy",
]

PRIMITIVE_KINDS = frozenset(
    {"Impulse", "Read", "ParDo", "GroupByKey", "CombinePerKey", "Flatten", "WindowInto", "Finalize"}
)
FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True, eq=False)
class Payload:
    """An opaque user object, pickled with cloudpickle.

    ``load()`` returns a fresh copy each call, so every executor owns its own DoFn instance.
    Equality is by bytes.
    """

    data: bytes

    @classmethod
    def of(cls, obj: Any) -> Payload:
        return cls(cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))

    def load(self) -> Any:
        return pickle.loads(self.data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Payload) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)

    def to_json(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    @classmethod
    def from_json(cls, text: str) -> Payload:
        return cls(base64.b64decode(text))


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
        out: list[TransformNode] = []

        def visit(tid: str) -> None:
            node = self.transforms[tid]
            if node.parts and node.kind != "CombinePerKey":
                for part in node.parts:
                    visit(part)
            elif node.parts and node.kind == "CombinePerKey":
                out.append(node)
            else:
                out.append(node)

        for root in self.roots:
            visit(root)
        return out

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
        if d.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"unsupported pipeline graph format {d.get('format')!r}; "
                f"this headrace reads format {FORMAT_VERSION}"
            )
        transforms = {t["id"]: TransformNode.from_dict(t) for t in d["transforms"]}
        pcolls = {p["id"]: PCollectionNode.from_dict(p) for p in d["pcollections"]}
        return cls(transforms=transforms, pcollections=pcolls, roots=tuple(d["roots"]))

    @classmethod
    def from_json(cls, text: str) -> PipelineGraph:
        return cls.from_dict(json.loads(text))
