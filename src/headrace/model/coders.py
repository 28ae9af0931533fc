"""Coders: turning element values into bytes and back, under Beam's coder names.

Coders are accepted wherever Beam accepts one (``WriteToText(coder=...)``, ``Create(...)``) and
are used by the executors when data leaves memory: spilling to disk and shuffling between
processes. Keys are partitioned by hashing their encoding, so a coder that says
:meth:`Coder.is_deterministic` must give equal values equal bytes in every process.

Two forms. ``encode``/``decode`` use the *outer* form: the bytes stand alone (a ``StrUtf8Coder``
writes just the UTF-8 bytes). Inside a composite (a tuple, a list) a coder writes its *nested*
form, which is self-delimiting (the same bytes with a varint length prefix where needed), through
``_encode_to(value, out: bytearray)`` and ``_decode_from(data, pos) -> (value, new_pos)``.
A user coder that only implements ``encode`` and ``decode`` gets a length-prefixed nested form.

Integers use zigzag varints: ``n`` maps to ``2n`` (``n >= 0``) or ``-2n - 1`` (``n < 0``), written
7 bits a byte, least significant group first, high bit set on every byte but the last. Small
magnitudes of either sign take one byte. This is *not* Beam's byte format (Beam writes negative
numbers as 10-byte two's complement varints); headrace never exchanges coded bytes with Beam.

Example:

>>> coder = TupleCoder([StrUtf8Coder(), VarIntCoder()])
>>> data = coder.encode(("héllo", -3))
>>> data
b'\\x06h\\xc3\\xa9llo\\x05'
>>> coder.decode(data)
('héllo', -3)
>>> coder.is_deterministic(), TupleCoder([StrUtf8Coder(), PickleCoder()]).is_deterministic()
(True, False)
>>> StrUtf8Coder().encode(3)
Traceback (most recent call last):
...
TypeError: StrUtf8Coder() cannot encode 3 (int): it encodes str values
"""

from __future__ import annotations

import base64
import operator
import pickle
import struct
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "Base64PickleCoder",
    "BooleanCoder",
    "BytesCoder",
    "Coder",
    "FastPrimitivesCoder",
    "FloatCoder",
    "IterableCoder",
    "ListCoder",
    "NullableCoder",
    "PickleCoder",
    "StrUtf8Coder",
    "ToBytesCoder",
    "ToStringCoder",
    "TupleCoder",
    "VarIntCoder",
]

_DOUBLE = struct.Struct(">d")
_PACK_DOUBLE = _DOUBLE.pack
_UNPACK_DOUBLE = _DOUBLE.unpack_from
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
_PICKLE_PROTOCOL = 5


# -- varints ---------------------------------------------------------------------------------------


def _write_uvarint(out: bytearray, n: int) -> None:
    """Append unsigned ``n`` as a varint (7 bits a byte, low group first)."""
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _read_uvarint(data: bytes, pos: int) -> tuple[int, int]:
    """Read an unsigned varint at ``pos``; return it and the position after it."""
    byte = data[pos]
    if byte < 0x80:
        return byte, pos + 1
    result = byte & 0x7F
    shift = 7
    while True:
        pos += 1
        byte = data[pos]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos + 1
        shift += 7


def _uvarint_size(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def _zigzag(n: int) -> int:
    return n << 1 if n >= 0 else ((-n) << 1) - 1


def _type_error(coder: Coder, value: Any, expected: str) -> TypeError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return TypeError(
        f"{coder!r} cannot encode {shown} ({type(value).__name__}): it encodes {expected}"
    )


# -- base ------------------------------------------------------------------------------------------


class Coder:
    """Base class of coders: ``encode(value) -> bytes`` and ``decode(bytes) -> value``.

    Subclasses implement ``encode`` and ``decode`` (and may override ``_encode_to`` /
    ``_decode_from`` for a cheaper nested form), ``is_deterministic`` if equal values always give
    equal bytes, and ``_get_component_coders`` if they wrap other coders. Coders compare equal when
    they have the same type and the same attributes, and must be picklable.
    """

    def encode(self, value: Any) -> bytes:
        """The outer (stand-alone) encoding of ``value``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement encode")

    @classmethod
    def from_type_hint(cls, typehint: Any, registry: Any) -> Coder:
        """The coder of this class for ``typehint`` (what a coder registry calls)."""
        return cls()

    def decode(self, encoded: bytes) -> Any:
        """The value whose outer encoding is ``encoded``."""
        raise NotImplementedError(f"{type(self).__name__} does not implement decode")

    def _encode_to(self, value: Any, out: bytearray) -> None:
        """Append the nested (self-delimiting) encoding of ``value`` to ``out``."""
        encoded = self.encode(value)
        _write_uvarint(out, len(encoded))
        out += encoded

    def _decode_from(self, data: bytes, pos: int) -> tuple[Any, int]:
        """Decode a nested encoding at ``pos``; return the value and the position after it."""
        size, pos = _read_uvarint(data, pos)
        end = pos + size
        if end > len(data):
            raise IndexError("truncated data")
        return self.decode(data[pos:end]), end

    def is_deterministic(self) -> bool:
        """Whether equal values always encode to equal bytes (needed for keys)."""
        return False

    def as_deterministic_coder(self, step_label: str, error_message: str | None = None) -> Coder:
        """This coder if it is deterministic; otherwise a ValueError naming ``step_label``."""
        if self.is_deterministic():
            return self
        raise ValueError(
            error_message
            or f"{self!r} is not deterministic, but step {step_label!r} needs a deterministic "
            "coder for its keys; use keys of primitive types or a deterministic coder"
        )

    def estimate_size(self, value: Any, nested: bool = False) -> int:
        """The size in bytes of the encoding of ``value`` (outer form unless ``nested``)."""
        if nested:
            out = bytearray()
            self._encode_to(value, out)
            return len(out)
        return len(self.encode(value))

    def _get_component_coders(self) -> Sequence[Coder]:
        """The coders this coder wraps, if any."""
        return ()

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and getattr(self, "__dict__", None) == getattr(
            other, "__dict__", None
        )

    def __hash__(self) -> int:
        return hash((type(self), tuple(self._get_component_coders())))

    def __repr__(self) -> str:
        components = ", ".join(repr(c) for c in self._get_component_coders())
        return f"{type(self).__name__}({components})"


def _decode_checked(coder: Coder, encoded: bytes) -> Any:
    """Decode a whole buffer with ``coder``'s nested form, with clear errors."""
    if not isinstance(encoded, bytes | bytearray | memoryview):
        raise TypeError(f"{coder!r} decodes bytes, got {type(encoded).__name__}")
    try:
        value, pos = coder._decode_from(encoded, 0)
    except (IndexError, struct.error):
        raise ValueError(
            f"{coder!r} cannot decode {len(encoded)} bytes: the data is truncated or was not "
            "written by this coder"
        ) from None
    if pos != len(encoded):
        raise ValueError(
            f"{coder!r} decoded {pos} of {len(encoded)} bytes: the data has trailing bytes or was "
            "not written by this coder"
        )
    return value


# -- primitive coders ------------------------------------------------------------------------------


class VarIntCoder(Coder):
    """Signed 64-bit integers as zigzag varints (1 byte for -64..63, at most 10 bytes)."""

    def encode(self, value: Any) -> bytes:
        out = bytearray()
        self._encode_to(value, out)
        return bytes(out)

    def decode(self, encoded: bytes) -> Any:
        return _decode_checked(self, encoded)

    def _encode_to(self, value: Any, out: bytearray) -> None:
        if type(value) is not int:
            value = self._as_int(value)
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(
                f"VarIntCoder encodes signed 64-bit integers, got {value}; use "
                "FastPrimitivesCoder or PickleCoder for larger integers"
            )
        _write_uvarint(out, value << 1 if value >= 0 else ((-value) << 1) - 1)

    def _decode_from(self, data: bytes, pos: int) -> tuple[Any, int]:
        z, pos = _read_uvarint(data, pos)
        return (z >> 1 if not z & 1 else -((z + 1) >> 1)), pos

    def _as_int(self, value: Any) -> int:
        try:
            return operator.index(value)
        except TypeError:
            raise _type_error(self, value, "int values") from None

    def is_deterministic(self) -> bool:
        return True

    def estimate_size(self, value: Any, nested: bool = False) -> int:
        if type(value) is not int:
            value = self._as_int(value)
        return _uvarint_size(_zigzag(value))


class FloatCoder(Coder):
    """Floats as 8-byte big-endian IEEE 754 doubles (ints are accepted and decode as floats)."""

    def encode(self, value: Any) -> bytes:
        try:
            return _PACK_DOUBLE(value)
        except struct.error:
            raise _type_error(self, value, "float values") from None

    def decode(self, encoded: bytes) -> Any:
        return _decode_checked(self, encoded)

    def _encode_to(self, value: Any, out: bytearray) -> None:
        out += self.encode(value)

    def _decode_from(self, data: bytes, pos: int) -> tuple[Any, int]:
        return _UNPACK_DOUBLE(data, pos)[0], pos + 8

    def is_deterministic(self) -> bool:
        return True

    def estimate_size(self, value: Any, nested: bool = False) -> int:
        return 8


class BooleanCoder(Coder):
    """``bool`` values as one byte, 0 or 1."""

    def encode(self, value: Any) -> bytes:
        if value is True:
            return b"\x01"
        if value is False:
            return b"\x00"
        raise _type_error(self, value, "bool values")

    def decode(self, encoded: bytes) -> Any:
        return _decode_checked(self, encoded)

    def _encode_to(self, value: Any, out: bytearray) -> None:
        out += self.encode(value)

    def _decode_from(self, data: bytes, pos: int) -> tuple[Any, int]:
        byte = data[pos]
        if byte > 1:
            raise ValueError(f"BooleanCoder found byte {byte} where 0 or 1 was expected")
        return byte == 1, pos + 1

    def is_deterministic(self) -> bool:
        return True

    def estimate_size(self, value: Any, nested: bool = False) -> int:
        return 1


class BytesCoder(Coder):
    """``bytes`` (or bytearray/memoryview, decoded as bytes): raw, length-prefixed when nested."""

    def encode(self, value: Any) -> bytes:
        if type(value) is bytes:
            return value
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        raise _type_error(self, value, "bytes values (use StrUtf8Coder for str)")

    def decode(self, encoded: bytes) -> Any:
        return bytes(encoded)

    def _encode_to(self, value: Any, out: bytearray) -> None:
        value = self.encode(value)
        _write_uvarint(out, len(value))
        out += value

    def _decode_from(self, data: bytes, pos: int) -> tuple[Any, int]:
        size, pos = _read_uvarint(data, pos)
        end = pos + size
        if end > len(data):
            raise IndexError("truncated data")
        return bytes(data[pos:end]), end

    def is_deterministic(self) -> bool:
        return True

    def estimate_size(self, value: Any, nested: bool = False) -> int:
        size = len(self.encode(value))
        return size + _uvarint_size(size) if nested else size


class StrUtf8Coder(Coder):
    """``str`` values as UTF-8: raw bytes, length-prefixed when nested."""

    def encode(self, value: Any) -> bytes:
        if isinstance(value, str):
            return value.encode("utf-8")
        raise _type_error(self, value, "str values")

    def decode(self, encoded: bytes) -> Any:
        return str(encoded, "utf-8")

    def _encode_to(self, value: Any, out: bytearray) -> None:
        data = self.encode(value)
        _write_uvarint(out, len(data))
        out += data

    def _decode_from(self, data: bytes, pos: int) -> tuple[Any, int]:
        size, pos = _read_uvarint(data, pos)
        end = pos + size
        if end > len(data):
            raise IndexError("truncated data")
        return str(data[pos:end], "utf-8"), end

    def is_deterministic(self) -> bool:
        return True


class ToStringCoder(Coder):
    """For text sinks: ``str`` as UTF-8, ``bytes`` as is, anything else as ``str(value)``.

    ``decode`` returns the UTF-8 text, so only ``str`` values round-trip exactly.
    """

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            return value.encode("utf-8")
        return str(value).encode("utf-8")

    def decode(self, encoded: bytes) -> Any:
        return str(encoded, "utf-8")


#: Beam's name for the text sinks' coder (``ToStringCoder`` is Beam's older alias).
ToBytesCoder = ToStringCoder


class PickleCoder(Coder):
    """Any picklable value, with pickle protocol 5. Not deterministic."""

    def encode(self, value: Any) -> bytes:
        try:
            return pickle.dumps(value, protocol=_PICKLE_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TypeError(f"{self!r} cannot pickle {type(value).__name__} value: {exc}") from exc

    def decode(self, encoded: bytes) -> Any:
        return pickle.loads(encoded)


class Base64PickleCoder(Coder):
    """Any picklable value, pickled and then base64-encoded (ASCII bytes). Not deterministic.

    >>> coder = Base64PickleCoder()
    >>> coder.decode(coder.encode({"a": 1})), coder.is_deterministic()
    ({'a': 1}, False)
    """

    def encode(self, value: Any) -> bytes:
        return base64.b64encode(PickleCoder().encode(value))

    def decode(self, encoded: bytes) -> Any:
        return pickle.loads(base64.b64decode(encoded))


# -- composite coders ------------------------------------------------------------------------------


class TupleCoder(Coder):
    """Fixed-length tuples (or lists), one coder per position; decodes to a tuple.

    Deterministic if every component coder is.
    """

    def __init__(self, components: Iterable[Coder]) -> None:
        self._coders = tuple(components)
        for coder in self._coders:
            if not isinstance(coder, Coder):
                raise TypeError(f"TupleCoder components must be Coders, got {coder!r}")

    def coders(self) -> tuple[Coder, ...]:
        """The component coders, by position."""
        return self._coders

    def _get_component_coders(self) -> Sequence[Coder]:
        return self._coders

    def _check(self, value: Any) -> Sequence[Any]:
        if not isinstance(value, tuple | list):
            raise _type_error(self, value, f"tuples of {len(self._coders)} elements")
        if len(value) != len(self._coders):
            raise TypeError(
                f"{self!r} cannot encode a {len(value)}-element {type(value).__name__}: it encodes "
                f"tuples of {len(self._coders)} elements"
            )
        return value

    def encode(self, value: Any) -> bytes:
        value = self._check(value)
        coders = self._coders
        if not coders:
            return b""
        out = bytearray()
        for coder, item in zip(coders[:-1], value):
            coder._encode_to(item, out)
        out += coders[-1].encode(value[-1])  # the last component needs no length prefix
        return bytes(out)

    def decode(self, encoded: bytes) -> Any:
        coders = self._coders
        if not coders or not isinstance(encoded, bytes | bytearray | memoryview):
            return _decode_checked(self, encoded)
        items: list[Any] = []
        pos = 0
        try:
            for coder in coders[:-1]:
                item, pos = coder._decode_from(encoded, pos)
                items.append(item)
        except (IndexError, struct.error):
            raise ValueError(f"{self!r} cannot decode {len(encoded)} bytes: truncated") from None
        items.append(coders[-1].decode(encoded[pos:]))
        return tuple(items)

    def _encode_to(self, value: Any, out: bytearray) -> None:
        for coder, item in zip(self._coders, self._check(value)):
            coder._encode_to(item, out)

    def _decode_from(self, data: bytes, pos: int) -> tuple[Any, int]:
        items = []
        for coder in self._coders:
            item, pos = coder._decode_from(data, pos)
            items.append(item)
        return tuple(items), pos

    def is_deterministic(self) -> bool:
        return all(c.is_deterministic() for c in self._coders)

    def __repr__(self) -> str:
        return f"TupleCoder([{', '.join(repr(c) for c in self._coders)}])"


class IterableCoder(Coder):
    """Any finite iterable of elements coded by ``elem_coder``; decodes to a list.

    Written as a varint count followed by the nested elements. Deterministic if the element coder
    is (and the iterable's order is).
    """

    def __init__(self, elem_coder: Coder) -> None:
        if not isinstance(elem_coder, Coder):
            raise TypeError(f"{type(self).__name__} needs a Coder, got {elem_coder!r}")
        self._elem_coder = elem_coder

    def value_coder(self) -> Coder:
        """The element coder."""
        return self._elem_coder

    def _get_component_coders(self) -> Sequence[Coder]:
        return (self._elem_coder,)

    def _items(self, value: Any) -> Sequence[Any]:
        if isinstance(value, list | tuple):
            return value
        try:
            return list(value)
        except TypeError:
            raise _type_error(self, value, "iterables") from None

    def encode(self, value: Any) -> bytes:
        out = bytearray()
        self._encode_to(value, out)
        return bytes(out)

    def decode(self, encoded: bytes) -> Any:
        return _decode_checked(self, encoded)

    def _encode_to(self, value: Any, out: bytearray) -> None:
        items = self._items(value)
        _write_uvarint(out, len(items))
        encode_to = self._elem_coder._encode_to
        for item in items:
            encode_to(item, out)

    def _decode_from(self, data: bytes, pos: int) -> tuple[Any, int]:
        count, pos = _read_uvarint(data, pos)
        decode_from = self._elem_coder._decode_from
        items = []
        for _ in range(count):
            item, pos = decode_from(data, pos)
            items.append(item)
        return items, pos

    def is_deterministic(self) -> bool:
        return self._elem_coder.is_deterministic()


class ListCoder(IterableCoder):
    """Lists of elements coded by ``elem_coder`` (same format as :class:`IterableCoder`)."""


class NullableCoder(Coder):
    """``None`` or a value coded by ``inner``: a marker byte (0 = None, 1 = value) first."""

    def __init__(self, inner: Coder) -> None:
        if not isinstance(inner, Coder):
            raise TypeError(f"NullableCoder needs a Coder, got {inner!r}")
        self._inner = inner

    def _get_component_coders(self) -> Sequence[Coder]:
        return (self._inner,)

    def encode(self, value: Any) -> bytes:
        if value is None:
            return b"\x00"
        return b"\x01" + self._inner.encode(value)

    def decode(self, encoded: bytes) -> Any:
        if not isinstance(encoded, bytes | bytearray | memoryview) or not encoded:
            return _decode_checked(self, encoded)
        marker = encoded[0]
        if marker == 0 and len(encoded) == 1:
            return None
        if marker == 1:
            return self._inner.decode(encoded[1:])
        raise ValueError(f"{self!r} cannot decode data starting with byte {marker}")

    def _encode_to(self, value: Any, out: bytearray) -> None:
        if value is None:
            out.append(0)
        else:
            out.append(1)
            self._inner._encode_to(value, out)

    def _decode_from(self, data: bytes, pos: int) -> tuple[Any, int]:
        marker = data[pos]
        if marker == 0:
            return None, pos + 1
        if marker == 1:
            return self._inner._decode_from(data, pos + 1)
        raise ValueError(f"{self!r} found marker byte {marker} where 0 or 1 was expected")

    def is_deterministic(self) -> bool:
        return self._inner.is_deterministic()


# -- FastPrimitivesCoder ---------------------------------------------------------------------------

_NONE = 0
_FALSE = 1
_TRUE = 2
_INT = 3  # zigzag varint, for signed 64-bit ints
_BIG_INT = 4  # varint length + signed big-endian two's complement bytes
_FLOAT = 5  # 8-byte big-endian double
_STR = 6  # varint length + UTF-8
_BYTES = 7  # varint length + bytes
_TUPLE = 8  # varint count + items
_LIST = 9  # varint count + items
_DICT = 10  # varint count + (key, value) pairs, in iteration order
_SET = 11  # varint count + items sorted by their encoding
_FROZENSET = 12  # as _SET
_FALLBACK = 255  # varint length + the fallback coder's outer encoding
_LENGTH_PREFIXED = frozenset({_STR, _BYTES, _BIG_INT, _FALLBACK})


class FastPrimitivesCoder(Coder):
    """Self-describing coder for Python primitives, with a fallback coder for anything else.

    Each value starts with a type byte. ``None``, ``bool``, ``int`` (any size), ``float``,
    ``str`` and ``bytes`` are written directly; ``tuple``, ``list``, ``dict``, ``set`` and
    ``frozenset`` recursively. Only these exact types are: subclasses (named tuples, enums, ``str``
    subclasses) go to ``fallback_coder`` (pickle by default) so they decode as themselves.

    Determinism: the encoding of primitives, and of tuples, lists, sets and frozensets built from
    them, depends only on the value (set elements are sorted by their encoding, so sets of strings
    agree across processes). Dicts keep their iteration order, so equal dicts inserted in
    different orders encode differently. Values handled by the fallback are deterministic only if
    the fallback coder is; :meth:`is_deterministic` answers for the coder as a whole, so with the
    default pickle fallback it is ``False``.

    >>> coder = FastPrimitivesCoder()
    >>> coder.decode(coder.encode({"a": [1, 2.5, None], "b": (b"x", {True})}))
    {'a': [1, 2.5, None], 'b': (b'x', {True})}
    >>> coder.encode(frozenset({"b", "a"})) == coder.encode(frozenset({"a", "b"}))
    True
    """

    def __init__(self, fallback_coder: Coder | None = None) -> None:
        if fallback_coder is None:
            fallback_coder = PickleCoder()
        if not isinstance(fallback_coder, Coder):
            raise TypeError(
                f"FastPrimitivesCoder needs a Coder as fallback, got {fallback_coder!r}"
            )
        self._fallback_coder = fallback_coder

    def _get_component_coders(self) -> Sequence[Coder]:
        return (self._fallback_coder,)

    def encode(self, value: Any) -> bytes:
        out = bytearray()
        self._encode_to(value, out)
        return bytes(out)

    def decode(self, encoded: bytes) -> Any:
        return _decode_checked(self, encoded)

    def is_deterministic(self) -> bool:
        return self._fallback_coder.is_deterministic()

    def as_deterministic_coder(self, step_label: str, error_message: str | None = None) -> Coder:
        """A variant that encodes primitives (and containers of them) deterministically, sorts a
        dict's entries by their encoding, and raises ``TypeError`` naming ``step_label`` for a
        value of any other type (which would otherwise be pickled, not deterministically).

        >>> coder = FastPrimitivesCoder().as_deterministic_coder("Dedupe")
        >>> coder.encode({"b": 1, "a": 2}) == coder.encode({"a": 2, "b": 1})
        True
        >>> coder.encode(object())
        Traceback (most recent call last):
        ...
        TypeError: step 'Dedupe' needs a deterministic encoding, but a value of type object ...
        """
        if self.is_deterministic():
            return self
        return _DeterministicFastPrimitivesCoder(step_label)

    def _encode_to(self, value: Any, out: bytearray) -> None:
        t = type(value)
        if t is str:
            data = value.encode("utf-8")
            out.append(_STR)
            _write_uvarint(out, len(data))
            out += data
        elif t is int:
            if _INT64_MIN <= value <= _INT64_MAX:
                out.append(_INT)
                _write_uvarint(out, value << 1 if value >= 0 else ((-value) << 1) - 1)
            else:
                data = value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)
                out.append(_BIG_INT)
                _write_uvarint(out, len(data))
                out += data
        elif t is float:
            out.append(_FLOAT)
            out += _PACK_DOUBLE(value)
        elif value is None:
            out.append(_NONE)
        elif t is bool:
            out.append(_TRUE if value else _FALSE)
        elif t is bytes:
            out.append(_BYTES)
            _write_uvarint(out, len(value))
            out += value
        elif t is tuple or t is list:
            out.append(_TUPLE if t is tuple else _LIST)
            _write_uvarint(out, len(value))
            for item in value:
                self._encode_to(item, out)
        elif t is dict:
            out.append(_DICT)
            _write_uvarint(out, len(value))
            for key, item in value.items():
                self._encode_to(key, out)
                self._encode_to(item, out)
        elif t is set or t is frozenset:
            out.append(_SET if t is set else _FROZENSET)
            _write_uvarint(out, len(value))
            parts = []
            for item in value:
                part = bytearray()
                self._encode_to(item, part)
                parts.append(part)
            parts.sort()
            for part in parts:
                out += part
        else:
            data = self._fallback_coder.encode(value)
            out.append(_FALLBACK)
            _write_uvarint(out, len(data))
            out += data

    def _decode_from(self, data: bytes, pos: int) -> tuple[Any, int]:
        tag = data[pos]
        pos += 1
        if tag in _LENGTH_PREFIXED:
            size, pos = _read_uvarint(data, pos)
            end = pos + size
            if end > len(data):
                raise IndexError("truncated data")
            if tag == _STR:
                return str(data[pos:end], "utf-8"), end
            if tag == _BYTES:
                return bytes(data[pos:end]), end
            if tag == _BIG_INT:
                return int.from_bytes(data[pos:end], "big", signed=True), end
            return self._fallback_coder.decode(bytes(data[pos:end])), end
        if tag == _INT:
            z, pos = _read_uvarint(data, pos)
            return (z >> 1 if not z & 1 else -((z + 1) >> 1)), pos
        if tag == _FLOAT:
            return _UNPACK_DOUBLE(data, pos)[0], pos + 8
        if tag == _NONE:
            return None, pos
        if tag == _TRUE:
            return True, pos
        if tag == _FALSE:
            return False, pos
        if _TUPLE <= tag <= _FROZENSET:
            count, pos = _read_uvarint(data, pos)
            decode_from = self._decode_from
            if tag == _DICT:
                result = {}
                for _ in range(count):
                    key, pos = decode_from(data, pos)
                    result[key], pos = decode_from(data, pos)
                return result, pos
            items = []
            for _ in range(count):
                item, pos = decode_from(data, pos)
                items.append(item)
            if tag == _LIST:
                return items, pos
            if tag == _TUPLE:
                return tuple(items), pos
            return (set(items) if tag == _SET else frozenset(items)), pos
        raise ValueError(f"{self!r} found unknown type byte {tag}")


class _RefuseToEncode(Coder):
    """The fallback of the deterministic FastPrimitivesCoder: refuses what it cannot encode."""

    def __init__(self, step_label: str) -> None:
        self._step_label = step_label

    def encode(self, value: Any) -> bytes:
        raise TypeError(
            f"step {self._step_label!r} needs a deterministic encoding, but a value of type "
            f"{type(value).__qualname__} would be pickled, which is not deterministic; give the "
            "input a type hint whose coder is deterministic (register one with "
            "coders.registry.register_coder) or map the values to primitives first"
        )

    def decode(self, encoded: bytes) -> Any:
        raise ValueError(f"nothing was encoded for step {self._step_label!r}")

    def is_deterministic(self) -> bool:
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _RefuseToEncode) and other._step_label == self._step_label

    def __hash__(self) -> int:
        return hash((type(self), self._step_label))


class _DeterministicFastPrimitivesCoder(FastPrimitivesCoder):
    """FastPrimitivesCoder whose encoding depends only on the value: dict entries are sorted by
    their encoding, and a value that is not a primitive or container of primitives is refused."""

    def __init__(self, step_label: str) -> None:
        super().__init__(_RefuseToEncode(step_label))

    def __reduce__(self) -> Any:
        return (type(self), (self._fallback_coder._step_label,))  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return "FastPrimitivesCoder(deterministic)"

    def _encode_to(self, value: Any, out: bytearray) -> None:
        if type(value) is not dict:
            super()._encode_to(value, out)
            return
        entries = []
        for key, item in value.items():
            entry = bytearray()
            self._encode_to(key, entry)
            self._encode_to(item, entry)
            entries.append(entry)
        entries.sort()
        out.append(_DICT)
        _write_uvarint(out, len(entries))
        for entry in entries:
            out += entry
