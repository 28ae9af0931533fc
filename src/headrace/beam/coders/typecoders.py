"""``apache_beam.coders.typecoders``: the coder registry."""

from headrace.model.coder_registry import CoderRegistry, registry

__all__ = ["CoderRegistry", "registry"]
