"""Unbounded sources for streaming pipelines (``streaming=True``), one module per source.

* :mod:`~headrace.io.streaming.periodic`: ``PeriodicImpulse``, ``PeriodicSequence``.
* :mod:`~headrace.io.streaming.filewatch`: ``MatchContinuously``, ``ReadFromTextContinuously``.
* :mod:`~headrace.io.streaming.redis_streams`: ``ReadFromRedisStreams`` (needs ``redis``).
* :mod:`~headrace.io.streaming.nats_jetstream`: ``ReadFromNatsJetStream`` (needs ``nats-py``).

The Redis and NATS client libraries are the ``streaming`` extra
(``pip install 'headrace[streaming]'``); they are imported only when a reader opens. Each
connector is a composite over :class:`~headrace.model.transforms.unbounded.ReadUnbounded` and has
a ``source`` attribute, an :class:`~headrace.model.sources.UnboundedSource` whose readers follow
the contract in :mod:`headrace.model.sources`.
"""

from __future__ import annotations

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
