"""``apache_beam.typehints.decorators``: the type-hint decorators."""

from headrace.model.typehints import TypeCheckError, with_input_types, with_output_types

__all__ = ["TypeCheckError", "with_input_types", "with_output_types"]
