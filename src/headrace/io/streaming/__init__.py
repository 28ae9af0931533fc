"""Unbounded sources for streaming pipelines (``streaming=True``), one module per source.

* :mod:`~headrace.io.streaming.periodic`: ``PeriodicImpulse``, ``PeriodicSequence``.
* :mod:`~headrace.io.streaming.filewatch`: ``MatchContinuously``, ``ReadFromTextContinuously``.
* :mod:`~headrace.io.streaming.redis_streams`: ``ReadFromRedisStreams`` (needs ``redis``).
* :mod:`~headrace.io.streaming.nats_jetstream`: ``ReadFromNatsJetStream`` (needs ``nats-py``).

The Redis and NATS client libraries are the ``streaming`` extra
(``pip install 'headrace[streaming]'``); they are imported only when a reader opens. Each
connector is a composite over :class:`~headrace.model.transforms.unbounded.ReadUnbounded` and has
a ``source`` attribute, an :class:`~headrace.model.sources.UnboundedSource` whose readers follow
the contract in :mod:`headrace.model.sources`. The connector modules themselves load on first
use of one of their names (PEP 562 ``__getattr__``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from headrace.io.streaming.filewatch import MatchContinuously, ReadFromTextContinuously
    from headrace.io.streaming.nats_jetstream import ReadFromNatsJetStream
    from headrace.io.streaming.periodic import PeriodicImpulse, PeriodicSequence, RebaseMode
    from headrace.io.streaming.redis_streams import ReadFromRedisStreams

__all__ = [
    "MatchContinuously",
    "PeriodicImpulse",
    "PeriodicSequence",
    "ReadFromNatsJetStream",
    "ReadFromRedisStreams",
    "ReadFromTextContinuously",
    "RebaseMode",
]

# Where each public name lives.
_EXPORTS = {
    "MatchContinuously": "filewatch",
    "PeriodicImpulse": "periodic",
    "PeriodicSequence": "periodic",
    "ReadFromNatsJetStream": "nats_jetstream",
    "ReadFromRedisStreams": "redis_streams",
    "ReadFromTextContinuously": "filewatch",
    "RebaseMode": "periodic",
}
_SUBMODULES = frozenset({"filewatch", "nats_jetstream", "periodic", "redis_streams"})


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS, *_SUBMODULES})
