"""Type hints with Beam's names, and the construction-time checks that use them.

Beam pipelines decorate DoFns and functions with ``@with_input_types(...)`` /
``@with_output_types(...)``, call ``transform.with_input_types(...)`` /
``.with_output_types(...)``, and write hints such as ``Tuple[str, int]``. headrace records them
(``_type_hints`` on the decorated object) and, when the pipeline option ``pipeline_type_check``
is on (the default), checks at construction that a transform's input hint is consistent with the
element type of the PCollection it is applied to; a violation raises :class:`TypeCheckError`
naming the transform and its producer, as Beam does. An output hint becomes the element type of
the transform's output. Element types that are unknown (``None``) or ``Any`` pass every check.

>>> @with_output_types(Tuple[str, int])
... def pair(word):
...     return (word, 1)
>>> pair("a"), pair._type_hints["output"]
(('a', 1), typing.Tuple[str, int])
>>> is_consistent_with(int, Union[int, str]), is_consistent_with(str, Tuple[K, V])
(True, False)
"""

from __future__ import annotations

import collections.abc
import inspect
import types
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
    "TypeCheckError",
    "TypeVariable",
    "Union",
    "format_hint",
    "is_consistent_with",
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
_P = TypeVar("_P")


class TypeCheckError(ValueError):
    """A type hint is violated (at construction, or at run time with ``runtime_type_check``)."""


class TypeVariable:
    """A named type variable (``TypeVariable[K]`` in messages); consistent with any type."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"TypeVariable[{self.name}]"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TypeVariable) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("TypeVariable", self.name))


K = TypeVariable("K")
V = TypeVariable("V")
#: What GroupByKey requires of its input elements.
KV_HINT = typing.Tuple[K, V]  # type: ignore[valid-type]  # noqa: UP006


def _record(obj: Any, kind: str, hints: Any) -> Any:
    try:
        existing = dict(getattr(obj, "_type_hints", {}))
        existing[kind] = hints
        obj._type_hints = existing
    except (AttributeError, TypeError):
        pass
    return obj


def with_input_types(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
    """Record input type hints on a DoFn class or a function (positional hints follow the
    parameters after ``self``; keyword hints name them)."""
    return lambda obj: _record(obj, "input", (args, kwargs))


def with_output_types(*args: Any, **kwargs: Any) -> Callable[[_F], _F]:
    """Record the output type hint on a DoFn class or a function."""
    hints = args[0] if len(args) == 1 and not kwargs else (args, kwargs)
    return lambda obj: _record(obj, "output", hints)


# -- consistency -----------------------------------------------------------------------------------

_ITERABLE_ORIGINS = (
    collections.abc.Iterable,
    collections.abc.Iterator,
    collections.abc.Sequence,
    collections.abc.Collection,
    collections.abc.Generator,
    list,
    set,
    frozenset,
)


def _is_any(hint: Any) -> bool:
    return hint is None or hint is Any or hint is object or isinstance(hint, TypeVariable | TypeVar)


def _union_args(hint: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(hint)
    return None


def is_consistent_with(sub: Any, base: Any) -> bool:
    """Whether a value of type ``sub`` may be used where ``base`` is required (lenient: unknown
    constructs are consistent)."""
    if _is_any(sub) or _is_any(base) or sub == base:
        return True
    sub_union = _union_args(sub)
    if sub_union is not None:
        return all(is_consistent_with(s, base) for s in sub_union)
    base_union = _union_args(base)
    if base_union is not None:
        return any(is_consistent_with(sub, b) for b in base_union)
    sub_origin, base_origin = typing.get_origin(sub) or sub, typing.get_origin(base) or base
    if not isinstance(sub_origin, type) or not isinstance(base_origin, type):
        return True
    if base_origin is float and sub_origin is int:
        return False
    if not issubclass(sub_origin, base_origin):
        return False
    sub_args, base_args = typing.get_args(sub), typing.get_args(base)
    if not sub_args or not base_args:
        return True
    if base_origin is tuple:
        if len(base_args) == 2 and base_args[1] is Ellipsis:
            elems = sub_args[:1] if sub_args[-1:] == (Ellipsis,) else sub_args
            return all(is_consistent_with(s, base_args[0]) for s in elems)
        if sub_args[-1:] == (Ellipsis,) or len(sub_args) != len(base_args):
            return sub_args[-1:] == (Ellipsis,)
        return all(is_consistent_with(s, b) for s, b in zip(sub_args, base_args, strict=True))
    if len(sub_args) == len(base_args):
        return all(is_consistent_with(s, b) for s, b in zip(sub_args, base_args, strict=True))
    return True


def format_hint(hint: Any) -> str:
    """A hint as Beam prints it: ``<class 'int'>``, ``Tuple[<class 'str'>, <class 'int'>]``,
    ``Tuple[TypeVariable[K], TypeVariable[V]]``.

    >>> format_hint(Tuple[K, V]), format_hint(Iterable[int])
    ('Tuple[TypeVariable[K], TypeVariable[V]]', "Iterable[<class 'int'>]")
    >>> format_hint(Tuple[None, str])
    "Tuple[None, <class 'str'>]"
    """
    if hint is Any:
        return "Any"
    if hint is None or hint is type(None):
        return "None"
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin is not None and args:
        name = _GENERIC_NAMES.get(origin, getattr(origin, "__name__", str(origin)))
        return f"{name}[{', '.join(format_hint(a) for a in args)}]"
    return repr(hint) if not isinstance(hint, type) else f"<class '{hint.__qualname__}'>"


_GENERIC_NAMES: dict[Any, str] = {
    tuple: "Tuple",
    list: "List",
    dict: "Dict",
    set: "Set",
    frozenset: "FrozenSet",
    typing.Union: "Union",
    types.UnionType: "Union",
    collections.abc.Iterable: "Iterable",
    collections.abc.Iterator: "Iterator",
    collections.abc.Generator: "Generator",
}


def iterable_element_type(hint: Any) -> Any:
    """The element type of an iterable hint (what a FlatMap or a DoFn emits), else ``None``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in _ITERABLE_ORIGINS and args:
        return args[0]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return args[0]
    return None


# -- hints of user functions -----------------------------------------------------------------------


def main_input_hint(fn: Any, process: Callable[..., Any] | None) -> Any:
    """The hint recorded for the element parameter of ``fn`` (a function or DoFn), if any."""
    hints = getattr(fn, "_type_hints", None) or getattr(type(fn), "_type_hints", None)
    if not hints or "input" not in hints:
        return None
    args, kwargs = hints["input"]
    if args:
        return args[0]
    if kwargs and process is not None:
        try:
            params = list(inspect.signature(process).parameters)
        except (TypeError, ValueError):
            return None
        if params and params[0] in kwargs:
            return kwargs[params[0]]
    return None


def output_hint(fn: Any) -> Any:
    """The output hint recorded on ``fn`` (a function or DoFn), if any."""
    hints = getattr(fn, "_type_hints", None) or getattr(type(fn), "_type_hints", None)
    if not hints or "output" not in hints:
        return None
    hint = hints["output"]
    if isinstance(hint, tuple) and len(hint) == 2 and isinstance(hint[1], dict):
        return hint[0][0] if hint[0] else None
    return hint


# -- element types of combiner outputs -------------------------------------------------------------


def key_value_types(hint: Any) -> tuple[Any, Any]:
    """``(K, V)`` of a ``Tuple[K, V]`` element type, else ``(Any, Any)``.

    >>> key_value_types(typing.Tuple[str, int]), key_value_types(None)
    ((<class 'str'>, <class 'int'>), (typing.Any, typing.Any))
    """
    args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is not Ellipsis:
        return args[0], args[1]
    return Any, Any


def list_of(hint: Any) -> Any:
    """``List[hint]`` (``List[Any]`` for an unknown element type)."""
    list_hint: Any = typing.List  # noqa: UP006 - Beam's form
    return list_hint[Any if hint is None else hint]


def typed(pcoll: _P, hint: Any) -> _P:
    """Set the element type of ``pcoll`` (the output of a composite whose result type is known
    from its input's, e.g. ``Count.PerKey``: ``Tuple[K, int]``) and return it."""
    pcoll.element_type = hint  # type: ignore[attr-defined]
    return pcoll


def kv_of(key: Any, value: Any) -> Any:
    """``Tuple[key, value]`` for hints known only at run time (``Any`` for ``None``)."""
    tuple_hint: Any = typing.Tuple  # noqa: UP006 - Beam's form
    return tuple_hint[Any if key is None else key, Any if value is None else value]


def dict_of(key: Any, value: Any) -> Any:
    """``Dict[key, value]`` (``Any`` for ``None``)."""
    dict_hint: Any = typing.Dict  # noqa: UP006 - Beam's form
    return dict_hint[Any if key is None else key, Any if value is None else value]


def set_of(hint: Any) -> Any:
    """``Set[hint]`` (``Set[Any]`` for ``None``)."""
    set_hint: Any = typing.Set  # noqa: UP006 - Beam's form
    return set_hint[Any if hint is None else hint]
