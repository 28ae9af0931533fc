"""Deterministic key hashing for partitioning and spilling.

Python's ``hash()`` of a str differs between processes (hash randomisation), so partitions are
chosen from a stable encoding of the key instead: the same key goes to the same partition in every
process and on every machine.
"""

from __future__ import annotations

import pickle
import struct
import zlib
from typing import Any

__all__ = ["stable_hash"]

_pack_double = struct.Struct(">d").pack


def _encode(key: Any) -> bytes:
    t = type(key)
    if t is str:
        return b"s" + key.encode("utf-8", "surrogatepass")
    if t is bytes:
        return b"b" + key
    if t is int:
        return b"i" + key.to_bytes((key.bit_length() + 8) // 8 or 1, "big", signed=True)
    if t is bool or key is None:
        return b"n" if key is None else (b"T" if key else b"F")
    if t is float:
        if key.is_integer() and abs(key) < 2**63:
            return _encode(int(key))  # 1.0 == 1 must land together
        return b"f" + _pack_double(key)
    if t is tuple:
        return b"(" + b"\x00".join(_encode(k) for k in key) + b")"
    if t is frozenset:
        return b"{" + b"\x00".join(sorted(_encode(k) for k in key)) + b"}"
    return b"p" + pickle.dumps(key, protocol=4)


def stable_hash(key: Any, salt: int = 0) -> int:
    """A non-negative 32-bit hash of ``key`` that is the same in every process.

    >>> stable_hash("apple") == stable_hash("apple"), stable_hash(1) == stable_hash(1.0)
    (True, True)
    """
    return zlib.crc32(_encode(key), salt)
