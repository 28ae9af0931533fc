"""Field-based grouping and projection: ``GroupBy`` (with ``aggregate_field``) and ``Select``.

Beam's ``apache_beam.transforms.core.GroupBy`` and ``Select``. A field is a string (an attribute
name: ``'user'`` reads ``element.user``) or a callable of the element.

* ``GroupBy('k')`` gives ``(key, [elements])`` with the field's value as key;
  ``GroupBy('a', b=fn)`` (several fields, or ``force_tuple_keys()``) keys by a named tuple
  ``Key(a=..., b=...)``.
* ``.aggregate_field(field, combine_fn, dest)`` (repeatable) combines a field per key instead;
  the output is a named tuple ``Result(<key fields>..., <dests>...)``.
* ``Select('a', b=fn)`` maps each element to ``Row(a=..., b=...)``; an unnamed callable is
  named ``arg00``, ``arg01``...
"""

from __future__ import annotations

import collections
import copy
from collections.abc import Callable, Sequence
from typing import Any

from headrace.model.pvalue import PCollection
from headrace.model.row import Row
from headrace.model.transforms.combinefns import TupleCombineFn
from headrace.model.transforms.core import CombinePerKey, GroupByKey, Map
from headrace.model.transforms.ptransform import PTransform

__all__ = ["GroupBy", "Select"]

_NAMED_TUPLES: dict[tuple[str, tuple[str, ...]], type] = {}


def _named_tuple(type_name: str, fields: tuple[str, ...]) -> type:
    """One named tuple class per (name, fields), pickled by its name and fields (as Beam's)."""
    key = (type_name, fields)
    found = _NAMED_TUPLES.get(key)
    if found is not None:
        return found
    made: Any = collections.namedtuple(type_name, fields)  # type: ignore[misc]
    made.__reduce__ = _reduce_named_tuple  # type: ignore[method-assign]
    _NAMED_TUPLES[key] = made
    return made


def _reduce_named_tuple(self: Any) -> tuple[Any, ...]:
    return (_make_named_tuple, (type(self).__name__, type(self)._fields, tuple(self)))


def _make_named_tuple(type_name: str, fields: tuple[str, ...], values: tuple[Any, ...]) -> Any:
    return _named_tuple(type_name, fields)(*values)


class _Attribute:
    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, element: Any) -> Any:
        return getattr(element, self.name)


def _field(expr: Any, pos: Any) -> Callable[[Any], Any]:
    if isinstance(expr, str):
        return _Attribute(expr)
    if callable(expr):
        return expr
    raise TypeError(f"Field expression {expr!r} at {pos} must be a callable or a string.")


class _KeyOf:
    """The grouping key of an element: one field's value, or a ``Key`` named tuple."""

    def __init__(self, fields: Sequence[tuple[str, Callable[[Any], Any]]], as_tuple: bool) -> None:
        self.exprs = [expr for _, expr in fields]
        self.names = tuple(name for name, _ in fields)
        self.as_tuple = as_tuple

    def __call__(self, element: Any) -> Any:
        if not self.as_tuple:
            return self.exprs[0](element)
        return _named_tuple("Key", self.names)(*(expr(element) for expr in self.exprs))


class _PairWithKey:
    def __init__(self, key: _KeyOf) -> None:
        self.key = key

    def __call__(self, element: Any) -> tuple[Any, Any]:
        return (self.key(element), element)


class _KeyAndFields:
    def __init__(self, key: _KeyOf, exprs: list[Callable[[Any], Any]]) -> None:
        self.key = key
        self.exprs = exprs

    def __call__(self, element: Any) -> tuple[Any, list[Any]]:
        return (self.key(element), [expr(element) for expr in self.exprs])


class _ToResult:
    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names

    def __call__(self, kv: tuple[Any, Any]) -> Any:
        key, values = kv
        return _named_tuple("Result", self.names)(*key, *values)


class GroupBy(PTransform):
    """Group elements by one or more fields (Beam's ``beam.GroupBy``).

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     rows = p | Create([Row(user="a", n=1), Row(user="a", n=2), Row(user="b", n=5)])
    ...     totals = rows | GroupBy("user").aggregate_field("n", sum, "total")
    ...     assert_that(totals, equal_to([("a", 3), ("b", 5)]))
    """

    def __init__(self, *fields: Any, **kwargs: Any) -> None:
        super().__init__()
        if len(fields) == 1 and not kwargs:
            self._force_tuple_keys = False
            name = fields[0] if isinstance(fields[0], str) else "key"
            key_fields = [(name, _field(fields[0], 0))]
        else:
            self._force_tuple_keys = True
            key_fields = [
                (f if isinstance(f, str) else f"key{ix}", _field(f, ix))
                for ix, f in enumerate(fields)
            ]
            key_fields += [(name, _field(expr, name)) for name, expr in kwargs.items()]
        self._key_fields = key_fields

    def aggregate_field(self, field: Any, combine_fn: Any, dest: str) -> _GroupAndAggregate:
        """Combine ``field`` per key with ``combine_fn`` into the output field ``dest``."""
        return _GroupAndAggregate(self, ()).aggregate_field(field, combine_fn, dest)

    def force_tuple_keys(self, value: bool = True) -> GroupBy:
        """A copy keyed by a ``Key`` named tuple even for a single field."""
        copied = copy.copy(self)
        copied._force_tuple_keys = value
        return copied

    def _key_of(self, as_tuple: bool | None = None) -> _KeyOf:
        tuple_keys = self._force_tuple_keys if as_tuple is None else as_tuple
        return _KeyOf(self._key_fields, tuple_keys or len(self._key_fields) != 1)

    def default_label(self) -> str:
        return f"GroupBy({', '.join(name for name, _ in self._key_fields)})"

    def expand(self, pcoll: PCollection) -> PCollection:
        keyed = pcoll | "KeyByFields" >> Map(_PairWithKey(self._key_of()))
        return keyed | GroupByKey()


class _GroupAndAggregate(PTransform):
    def __init__(self, grouping: GroupBy, aggregations: Sequence[tuple[Any, Any, str]]) -> None:
        super().__init__()
        self._grouping = grouping
        self._aggregations = list(aggregations)

    def aggregate_field(self, field: Any, combine_fn: Any, dest: str) -> _GroupAndAggregate:
        return _GroupAndAggregate(
            self._grouping, [*self._aggregations, (_field(field, 0), combine_fn, dest)]
        )

    def default_label(self) -> str:
        return f"{self._grouping.default_label()}.Aggregate"

    def expand(self, pcoll: PCollection) -> PCollection:
        key = self._grouping._key_of(as_tuple=True)
        exprs = [expr for expr, _, _ in self._aggregations]
        names = key.names + tuple(dest for _, _, dest in self._aggregations)
        keyed = pcoll | "KeyAndFields" >> Map(_KeyAndFields(key, exprs))
        combined = keyed | CombinePerKey(TupleCombineFn(*(fn for _, fn, _ in self._aggregations)))
        return combined | "ToResult" >> Map(_ToResult(names))


class _ToRow:
    def __init__(self, fields: list[tuple[str, Callable[[Any], Any]]]) -> None:
        self.fields = fields

    def __call__(self, element: Any) -> Row:
        return Row(**{name: expr(element) for name, expr in self.fields})


class Select(PTransform):
    """Map each element to a ``Row`` of the given fields (Beam's ``beam.Select``).

    >>> from headrace.model.pipeline import Pipeline
    >>> from headrace.model.transforms.core import Create
    >>> from headrace.testing.util import assert_that, equal_to
    >>> with Pipeline() as p:
    ...     rows = p | Create([Row(a=1, b=2)]) | Select("a", twice=lambda r: r.b * 2)
    ...     assert_that(rows, equal_to([Row(a=1, twice=4)]))
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._fields = [
            (expr if isinstance(expr, str) else f"arg{ix:02d}", _field(expr, ix))
            for ix, expr in enumerate(args)
        ] + [(name, _field(expr, name)) for name, expr in kwargs.items()]

    def default_label(self) -> str:
        return f"ToRows({', '.join(name for name, _ in self._fields)})"

    def expand(self, pcoll: PCollection) -> PCollection:
        return pcoll | "ToRow" >> Map(_ToRow(self._fields))
