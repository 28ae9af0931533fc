"""The direct runner: in-process (and multi-process) execution of a pipeline on this machine.

``runner``     :class:`DirectRunner` (options, choosing batch or streaming) and
               :class:`DirectPipelineResult` (the Job API: state, wait, cancel, metrics).
``workers``    :class:`~headrace.runners.direct.workers.LocalProcessExecutor`: forked worker
               processes, with dead-worker detection and one retry.
``streaming``  :class:`~headrace.runners.direct.streaming.StreamingRun`: the single event loop of
               a streaming run (sources, watermarks, pane engines, sinks).
``steps``      per-step progress of a streaming run, sampled and reported as run events.
"""

from headrace.runners.direct.runner import DirectPipelineResult, DirectRunner

__all__ = ["DirectPipelineResult", "DirectRunner"]
