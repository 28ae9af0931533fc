"""The coder registry: which coder encodes values of a type (Beam's ``coders.registry``).

``registry.register_coder(MyType, MyCoder)`` records a user coder class for a type;
``registry.get_coder(hint)`` returns a coder for a type or a ``typing`` hint: the registered
class, the standard coder of ``int``/``float``/``str``/``bytes``/``bool``, composite coders for
``Tuple[...]``, ``List[...]``, ``Iterable[...]`` and ``Optional[...]``, and otherwise the
fallback (:class:`~headrace.model.coders.FastPrimitivesCoder`).

headrace's runners group keys by Python equality, not by encoded bytes, so a registered coder
does not change how a GroupByKey groups; a registered type's keys must compare equal by ``==``
and ``hash`` when their encodings are equal.
"""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any

from headrace.model.coders import (
    BooleanCoder,
    BytesCoder,
    Coder,
    FastPrimitivesCoder,
    FloatCoder,
    IterableCoder,
    ListCoder,
    NullableCoder,
    StrUtf8Coder,
    TupleCoder,
    VarIntCoder,
)

__all__ = ["CoderRegistry", "registry"]


class CoderRegistry:
    """Type-to-coder associations.

    >>> class Point:
    ...     pass
    >>> class PointCoder(Coder):
    ...     pass
    >>> reg = CoderRegistry()
    >>> reg.register_coder(Point, PointCoder)
    >>> type(reg.get_coder(Point)).__name__, reg.get_coder(typing.Tuple[int, str])
    ('PointCoder', TupleCoder([VarIntCoder(), StrUtf8Coder()]))
    """

    def __init__(self, fallback_coder: Coder | None = None) -> None:
        self._coders: dict[Any, type[Coder]] = {
            int: VarIntCoder,
            float: FloatCoder,
            bytes: BytesCoder,
            bool: BooleanCoder,
            str: StrUtf8Coder,
        }
        self.custom_types: list[Any] = []
        self._fallback: Coder = fallback_coder or FastPrimitivesCoder()

    def register_coder(self, typehint_type: Any, typehint_coder_class: type[Coder]) -> None:
        """Use ``typehint_coder_class`` (a Coder class, not an instance) for ``typehint_type``."""
        if not isinstance(typehint_coder_class, type) or not issubclass(
            typehint_coder_class, Coder
        ):
            raise TypeError(
                "register_coder needs a Coder class (not an instance), got "
                f"{typehint_coder_class!r}"
            )
        if typehint_type not in self.custom_types:
            self.custom_types.append(typehint_type)
        self._coders[typehint_type] = typehint_coder_class

    def register_fallback_coder(self, fallback_coder: Coder) -> None:
        """Use ``fallback_coder`` for types without a registered coder."""
        self._fallback = fallback_coder

    def get_custom_type_coder_tuples(self, types: Any = None) -> list[tuple[Any, type[Coder]]]:
        return [(t, self._coders[t]) for t in self.custom_types if types is None or t in types]

    def get_coder(self, typehint: Any) -> Coder:
        """A coder for values of ``typehint``."""
        coder_class = self._coders.get(typehint) if _hashable(typehint) else None
        if coder_class is not None:
            return coder_class.from_type_hint(typehint, self)
        origin = typing.get_origin(typehint)
        args = typing.get_args(typehint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            return TupleCoder([self.get_coder(a) for a in args])
        if origin is tuple and len(args) == 2:
            return IterableCoder(self.get_coder(args[0]))
        if origin is list and args:
            return ListCoder(self.get_coder(args[0]))
        if origin in (collections.abc.Iterable, collections.abc.Sequence) and args:
            return IterableCoder(self.get_coder(args[0]))
        if origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
            inner = next(a for a in args if a is not type(None))
            return NullableCoder(self.get_coder(inner))
        return self._fallback

    def verify_deterministic(self, key_coder: Coder, op_name: str, silent: bool = True) -> Coder:
        """``key_coder`` if it is deterministic, else its deterministic variant; a ``ValueError``
        naming ``op_name`` when it has none.

        >>> registry.verify_deterministic(VarIntCoder(), "GroupByKey")
        VarIntCoder()
        >>> registry.verify_deterministic(FastPrimitivesCoder(), "Count").encode(("a", 1))
        b'\\x08\\x02\\x06\\x01a\\x03\\x02'
        """
        if key_coder.is_deterministic():
            return key_coder
        return key_coder.as_deterministic_coder(
            op_name,
            f'The key coder "{_coder_name(key_coder)}" for {op_name} is not deterministic. '
            "Equal values could be encoded differently and give wrong results: give the step's "
            "input a type hint whose coder is deterministic, or register a deterministic coder "
            "for the key type (registry.register_coder).",
        )


def _coder_name(coder: Coder) -> str:
    """A coder without components by its class name (as Beam names it), others by repr."""
    return repr(coder) if coder._get_component_coders() else type(coder).__name__


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


#: The registry Beam code reaches as ``coders.registry``.
registry = CoderRegistry()
