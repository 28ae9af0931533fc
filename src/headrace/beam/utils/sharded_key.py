"""``apache_beam.utils.sharded_key``."""

from headrace.model.transforms.batching import ShardedKey

__all__ = ["ShardedKey"]
