"""``apache_beam.transforms.ptransform``."""

from headrace.model.transforms.ptransform import PTransform, ptransform_fn

__all__ = ["PTransform", "ptransform_fn"]
