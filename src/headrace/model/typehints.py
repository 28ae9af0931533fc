"""Type hints accepted for Beam compatibility: recorded, not enforced.

Beam pipelines decorate DoFns and functions with ``@with_input_types(...)`` /
``@with_output_types(...)`` and write hints such as ``Tuple[str, int]``. headrace accepts them and
keeps them on the decorated object (``_type_hints``); it does not check elements against them yet.

>>> @with_output_types(Tuple[str, int])
... def pair(word):
...     return (word, 1)
>>> pair("a"), pair._type_hints["output"]
(('a', 1), typing.Tuple[str, int])
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = [
    "KV",
    "Any",
    "Dict",
    "Iterable",
    "Iterator",
    "List",
    "Optional",
    "Set",
    "Tuple",
    "Union",
    "with_input_types",
    "with_output_types",
]

Dict = typing.Dict  # noqa: UP006 - Beam's spelling
Iterable = typing.Iterable
Iterator = typing.Iterator
List = typing.List  # noqa: UP006
Optional = typing.Optional
Set = typing.Set  # noqa: UP006
Tuple = typing.Tuple  # noqa: UP006
Union = typing.Union
KV = typing.Tuple  # noqa: UP006 - Beam's KV[K, V] is a 2-tuple

_F = TypeVar("_F")


def _record(obj: Any, kind: str, hints: Any) -> Any:
    try:
        existing = dict(getattr(obj, "_type_hints", {}))
        existing[kind] = hints
        obj._type_hints = existing
    except (AttributeError, TypeError):
        pass
    return obj


def with_input_types(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
    """Record input type hints on a DoFn class or a function."""
    hints = args[0] if len(args) == 1 and not kwargs else (args, kwargs)
    return lambda obj: _record(obj, "input", hints)


def with_output_types(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
    """Record the output type hint on a DoFn class or a function."""
    hints = args[0] if len(args) == 1 and not kwargs else (args, kwargs)
    return lambda obj: _record(obj, "output", hints)
