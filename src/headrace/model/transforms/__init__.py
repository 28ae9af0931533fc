"""Transforms: the core primitives and the composites built from them."""
