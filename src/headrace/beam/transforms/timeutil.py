"""``apache_beam.transforms.timeutil``: the time domains of timers."""

from headrace.model.userstate import TimeDomain

__all__ = ["TimeDomain"]
