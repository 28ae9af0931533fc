"""``apache_beam.metrics.metric``."""

from headrace.model.metrics import (
    MetricResults,
    Metrics,
    MetricsFilter,
)

__all__ = ["MetricResults", "Metrics", "MetricsFilter"]
