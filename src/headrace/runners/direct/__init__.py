"""The direct runner: in-process (and multi-process) execution of a pipeline on this machine."""

from headrace.runners.direct.runner import DirectPipelineResult, DirectRunner

__all__ = ["DirectPipelineResult", "DirectRunner"]
