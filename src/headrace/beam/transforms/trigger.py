"""``apache_beam.transforms.trigger``."""

from headrace.model.trigger import (
    AccumulationMode,
    AfterAll,
    AfterAny,
    AfterCount,
    AfterEach,
    AfterProcessingTime,
    AfterWatermark,
    Always,
    DataLossReason,
    DefaultTrigger,
    OrFinally,
    Repeatedly,
    TriggerFn,
)

__all__ = [
    "AccumulationMode",
    "AfterAll",
    "AfterAny",
    "AfterCount",
    "AfterEach",
    "AfterProcessingTime",
    "AfterWatermark",
    "Always",
    "DataLossReason",
    "DefaultTrigger",
    "OrFinally",
    "Repeatedly",
    "TriggerFn",
]
