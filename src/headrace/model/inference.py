"""Output types of simple functions, read from their bytecode.

Beam infers the output type of a Map's function from its bytecode
(apache_beam/typehints/trivial_inference.py). headrace infers only straight-line functions that
build their result from their arguments and constants, which is what Beam's own tests exercise:
``lambda x: (x, 1)`` on ``str`` input gives ``Tuple[str, int]``. For anything else (calls,
branches, attribute access, closures, unknown input types) nothing is inferred and the output
type stays unknown, so no check is made that Beam might make: a missed check, never a wrong one.
"""

from __future__ import annotations

import dis
import functools
import types
import typing
from collections.abc import Sequence
from typing import Any

__all__ = ["infer_return_type"]

_IGNORED = frozenset({"RESUME", "NOP", "CACHE", "PRECALL"})


def infer_return_type(fn: Any, input_types: Sequence[Any]) -> Any:
    """The type ``fn`` returns for arguments of ``input_types``, or ``None`` if unknown.

    >>> infer_return_type(lambda x: (x, 1), [str])
    typing.Tuple[str, int]
    >>> infer_return_type(lambda x: len(x), [str]) is None
    True
    """
    if not isinstance(fn, types.FunctionType):
        return None
    steps = _steps(fn.__code__)
    if steps is None:
        return None
    stack: list[Any] = []
    for op, arg in steps:
        if op == "LOAD_FAST":
            if arg >= len(input_types) or input_types[arg] is None:
                return None
            stack.append(input_types[arg])
        elif op == "LOAD_CONST":
            stack.append(_const_type(fn.__code__.co_consts[arg]))
        elif op == "RETURN_CONST":
            return _const_type(fn.__code__.co_consts[arg])
        elif op == "BUILD_TUPLE":
            items = stack[len(stack) - arg :] if arg else []
            del stack[len(stack) - arg :]
            tuple_hint: Any = typing.Tuple  # noqa: UP006 - Beam's form
            stack.append(tuple_hint[tuple(items)] if items else tuple_hint[()])
        elif op == "RETURN_VALUE":
            return stack[-1] if len(stack) == 1 else None
        else:  # pragma: no cover - _steps admits only the operations above
            return None
    return None


def _const_type(value: Any) -> Any:
    """A constant's type; a constant tuple (Python folds ``(1, "a")``) item by item."""
    if type(value) is tuple:
        tuple_hint: Any = typing.Tuple  # noqa: UP006 - Beam's form
        return tuple_hint[tuple(_const_type(v) for v in value)] if value else tuple_hint[()]
    return type(value)


@functools.lru_cache(maxsize=512)
def _steps(code: types.CodeType) -> tuple[tuple[str, int], ...] | None:
    """The instructions of ``code`` if it is straight-line and uses only supported operations."""
    out = []
    for ins in dis.get_instructions(code):
        if ins.opname in _IGNORED:
            continue
        if ins.opname not in (
            "LOAD_FAST",
            "LOAD_CONST",
            "RETURN_CONST",
            "BUILD_TUPLE",
            "RETURN_VALUE",
        ):
            return None
        out.append((ins.opname, int(ins.arg or 0)))
    return tuple(out)
