"""headrace: Beam-model pipelines, a fast direct runner, versioned repos, incremental stages.

Build pipelines with :mod:`headrace.beam` (Apache Beam's names) or :mod:`headrace.model`.
"""

__version__ = "0.1.0"
