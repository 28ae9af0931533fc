"""``apache_beam.utils.windowed_value``."""

from headrace.model.window import PANE_INFO_UNKNOWN, PaneInfo, PaneInfoTiming
from headrace.model.window import BeamWindowedValue as WindowedValue
from headrace.model.windowed_batch import HomogeneousWindowedBatch, WindowedBatch

__all__ = [
    "PANE_INFO_UNKNOWN",
    "HomogeneousWindowedBatch",
    "PaneInfo",
    "PaneInfoTiming",
    "WindowedBatch",
    "WindowedValue",
]
