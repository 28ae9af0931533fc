"""``apache_beam.transforms.window`` (also reachable as ``beam.window``)."""

from headrace.model.timestamp import MAX_TIMESTAMP, MIN_TIMESTAMP, Duration, Timestamp
from headrace.model.window import BeamWindowedValue as WindowedValue
from headrace.model.window import (
    BoundedWindow,
    FixedWindows,
    GlobalWindow,
    GlobalWindows,
    IntervalWindow,
    NonMergingWindowFn,
    PaneInfo,
    PaneInfoTiming,
    Sessions,
    SlidingWindows,
    TimestampCombiner,
    TimestampedValue,
    WindowFn,
)

__all__ = [
    "MAX_TIMESTAMP",
    "MIN_TIMESTAMP",
    "BoundedWindow",
    "Duration",
    "FixedWindows",
    "GlobalWindow",
    "GlobalWindows",
    "IntervalWindow",
    "NonMergingWindowFn",
    "PaneInfo",
    "PaneInfoTiming",
    "Sessions",
    "SlidingWindows",
    "Timestamp",
    "TimestampCombiner",
    "TimestampedValue",
    "WindowFn",
    "WindowedValue",
]
