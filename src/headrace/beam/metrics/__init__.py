"""``apache_beam.metrics``."""

from headrace.beam.metrics import metric
from headrace.beam.metrics.metric import Metrics, MetricsFilter

__all__ = ["Metrics", "MetricsFilter", "metric"]
